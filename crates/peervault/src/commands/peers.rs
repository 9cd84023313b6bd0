//! `peers [--json]`

use std::process::ExitCode;

use crate::ops::Operations;
use crate::ui;

pub async fn run(ops: &impl Operations, json: bool) -> anyhow::Result<ExitCode> {
    let peers = ops.peers().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&peers)?);
    } else if peers.is_empty() {
        say!(
            "No connected peers. Join a network with -bootstrap HOST:PORT when starting the node."
        );
    } else {
        say!("Connected Peers ({}):", peers.len());
        say!("{}", ui::peers_table(&peers));
    }
    Ok(ExitCode::SUCCESS)
}
