//! `peervault discover [--json]`

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn run(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Discover).await?;
    let Response::Discovery { discovery } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&discovery)?);
    } else {
        say!("{}", ui::discovery_block(&discovery));
    }
    Ok(ExitCode::SUCCESS)
}
