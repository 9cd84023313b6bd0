//! `peervault status [--json]` and `peervault metrics [--json]`

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn run(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Status).await?;
    let Response::Status { status } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        say!("{}", ui::status_block(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// `peervault metrics [--json]`
pub async fn metrics(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Metrics).await?;
    let Response::Metrics { metrics } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        say!("{}", ui::metrics_block(&metrics));
    }
    Ok(ExitCode::SUCCESS)
}
