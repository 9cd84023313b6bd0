//! `peervault invite [--json]`: a code that lets another node join this vault.

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};

pub async fn run(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Invite).await?;
    let Response::Invite { code } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::json!({ "code": code }));
    } else {
        say!("{code}");
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!(
                "Start the new node with:  peervault -join {code}\n\
                 (anyone holding this code can join the vault and read everything in it)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
