//! `peervault -demo`: three nodes in this process, on free loopback ports, with a
//! temporary vault, going through a short story with real operations: store a
//! file, see it replicated, stop a node, read the file on a node that never held
//! it, delete it everywhere, show the metrics. Everything is removed at the end.
//!
//! It is also a smoke test: CI runs it and expects exit code 0, so every step
//! checks what it shows instead of assuming it.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use peervault_node::{HumanSize, NetworkKey, Node, NodeConfig, Replicas};

use crate::ui;

/// How long any one step may take before the demo gives up.
const STEP_LIMIT: Duration = Duration::from_secs(30);
const FILE_NAME: &str = "demo-story.txt";

fn step(text: &str) {
    println!("\n==> {text}");
    let _ = std::io::stdout().flush();
}

/// Polls `check` until it holds or the step limit passes.
async fn until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + STEP_LIMIT;
    while !check().await {
        if Instant::now() > deadline {
            bail!("the demo gave up waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A text worth storing: about 2 MiB, so that it spans several chunks.
fn story() -> Vec<u8> {
    let mut text = String::new();
    let mut line = 0;
    while text.len() < 2 * 1024 * 1024 + 12_345 {
        line += 1;
        text.push_str(&format!(
            "{line:6}: every byte of this line is encrypted, replicated and verified.\n"
        ));
    }
    text.into_bytes()
}

async fn read_all(node: &Node, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut reader = node.get(name).await?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("peervault-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo")?;
    // A key of its own, made for this run.
    let key = NetworkKey::generate()?;
    println!(
        "PeerVault demo: three nodes in this process, a vault in {}",
        dir.path().display()
    );

    step("Starting three nodes on 127.0.0.1 (two copies of each file)");
    let mut nodes: Vec<Node> = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let mut config = NodeConfig::new(dir.path().join(name), key.clone());
        config.replicas = Replicas::Count(2);
        config.quota_bytes = Some(1 << 30);
        if let Some(first) = nodes.first() {
            let addr = first.status().await?.listen_addrs[0].clone();
            config.net.bootstrap = vec![peervault_node::Endpoint::parse(&addr)?];
        }
        let node = Node::start(config).await?;
        let addr = node.status().await?.listen_addrs.join(", ");
        println!("    {name:8} {}  {addr}", node.peer_id());
        nodes.push(node);
    }
    for node in &nodes {
        until("every node sees the other two", || async {
            node.peers().await.len() >= 2
        })
        .await?;
    }
    println!("    all three are connected to each other");

    step(&format!("Storing {FILE_NAME} on alpha"));
    let text = story();
    let hash = blake3::hash(&text);
    let report = nodes[0]
        .store(FILE_NAME, &text[..], Some(text.len() as u64))
        .await?;
    println!(
        "    {}",
        ui::stored_line(
            &report.file,
            report.replication.copies,
            report.replication.target
        )
    );
    if !report.replication.complete() {
        bail!("the file reached only {} copies", report.replication.copies);
    }

    step("Listing the vault on charlie");
    // Holders know at once; the others hear of the file a moment later.
    for node in &nodes {
        until("every node knows the file", || async {
            node.stat(FILE_NAME).await.is_ok()
        })
        .await?;
    }
    println!("{}", ui::files_table(&nodes[2].list().await?));

    // Stop the writer; read on a node that holds no copy, so the bytes must come
    // from the other holder.
    let mut holds = Vec::new();
    for node in &nodes {
        holds.push(node.stat(FILE_NAME).await?.local);
    }
    let reader = (1..3)
        .find(|&i| !holds[i])
        .context("a node without a copy")?;
    let names = ["alpha", "bravo", "charlie"];
    step(&format!(
        "Stopping alpha (the writer), then reading the file on {}",
        names[reader]
    ));
    let alpha = nodes.remove(0);
    alpha.shutdown(Duration::from_secs(5)).await;
    drop(alpha);
    let reader_node = &nodes[reader - 1];
    let other = &nodes[2 - reader];
    let started = Instant::now();
    let back = read_all(reader_node, FILE_NAME).await?;
    if blake3::hash(&back) != hash {
        bail!("the file read back differs from the one stored");
    }
    println!(
        "    {} read {} from {} in {:.0?}; its BLAKE3 hash matches ({})",
        names[reader],
        HumanSize(back.len() as u64),
        names[3 - reader],
        started.elapsed(),
        &hash.to_hex()[..8]
    );

    step(&format!(
        "Deleting the file from {} (every node drops it)",
        names[reader]
    ));
    let out = reader_node.delete(FILE_NAME).await?;
    println!(
        "    deleted; {} freed on {}",
        HumanSize(out.freed_bytes),
        names[reader]
    );
    until("the other node forgets the file", || async {
        other.stat(FILE_NAME).await.is_err()
    })
    .await?;
    println!("    {} no longer lists it", names[3 - reader]);

    step(&format!("Metrics of {}", names[reader]));
    println!(
        "{}",
        ui::metrics_block(&reader_node.metrics_snapshot().await)
    );

    step("Stopping the nodes and removing the temporary vault");
    for node in nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
    let path = dir.path().to_path_buf();
    dir.close()
        .with_context(|| format!("cannot remove {}", path.display()))?;
    println!("\nDemo complete. Run a real node with: peervault -addr :3000 -interactive");
    Ok(ExitCode::SUCCESS)
}
