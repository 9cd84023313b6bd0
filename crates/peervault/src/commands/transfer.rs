//! `send <name> <peer>` and `fetch <name> <peer>`: copies to or from one named
//! peer (a number from `peers`, a peer id, or an address).

use std::process::ExitCode;

use crate::ops::Operations;

pub async fn send(ops: &impl Operations, name: &str, peer: &str) -> anyhow::Result<ExitCode> {
    let peer = ops.send(name, peer).await?;
    say!("File '{name}' sent to {peer}: it holds a complete, durable copy");
    Ok(ExitCode::SUCCESS)
}

pub async fn fetch(ops: &impl Operations, name: &str, peer: &str) -> anyhow::Result<ExitCode> {
    let (peer, chunks) = ops.fetch(name, peer).await?;
    say!("File '{name}' fetched from {peer} ({chunks} chunks copied); this node now holds it");
    Ok(ExitCode::SUCCESS)
}
