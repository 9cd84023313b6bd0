//! Embedding PeerVault: two nodes in one program form a vault; a file stored on
//! one is replicated to the other and read back there.
//!
//! Run it with `cargo run -p peervault-node --example embed`. It also runs as a
//! test (`cargo test -p peervault-node --example embed`), so it cannot rot.

use std::time::Duration;

use peervault_node::invitations::InvitationCode;
use peervault_node::{KeyInput, Node, NodeConfig, Replicas};
use tokio::io::AsyncReadExt;

async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // The first node makes the vault's key (kept in its data dir) and listens on a
    // free loopback port; the second joins it with an invitation it hands out
    // (one device, expiring in a day; the key reaches the new node sealed to it).
    let first = Node::start(NodeConfig::new(dir.join("first"), KeyInput::Stored)).await?;
    let code = InvitationCode::parse(&first.invite(None).await?.code)?;
    let mut config = NodeConfig::new(dir.join("second"), KeyInput::Invitation(code));
    config.replicas = Replicas::Count(2);
    let second = Node::start(config).await?;
    for _ in 0..300 {
        if !second.peers().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Store on the second node: two copies, one on each node.
    let report = second
        .store("notes.txt", &b"remember the milk\n"[..], None)
        .await?;
    println!(
        "stored notes.txt: {} of {} copies durable",
        report.replication.copies, report.replication.target
    );

    // Read it on the first node.
    let mut text = String::new();
    first
        .get_reader("notes.txt")
        .await?
        .read_to_string(&mut text)
        .await?;
    println!("read on the other node: {text:?}");
    assert_eq!(text, "remember the milk\n");
    for file in first.list().await? {
        println!(
            "{} ({} bytes, {} copies)",
            file.name, file.size, file.replicas
        );
    }

    second.stop().await;
    first.stop().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    run(dir.path()).await
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        super::run(dir.path()).await.expect("the example works");
    }
}
