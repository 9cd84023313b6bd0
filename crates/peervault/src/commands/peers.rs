//! `peervault peers [--json]`

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn run(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Peers).await?;
    let Response::Peers { peers } = reply else {
        return Err(super::unexpected(reply));
    };
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
