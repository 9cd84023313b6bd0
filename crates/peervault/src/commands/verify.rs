//! `peervault verify [name] [--json]`: exits 1 if any chunk is damaged.

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn run(client: &Client, name: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Verify { name }).await?;
    let Response::Verified { files } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&files)?);
    } else {
        say!("{}", ui::verify_lines(&files));
    }
    Ok(if files.iter().all(|f| f.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
