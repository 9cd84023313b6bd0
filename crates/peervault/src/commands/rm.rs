//! `peervault rm <name> [--yes]` and `peervault clean [--yes]`

use std::process::ExitCode;

use anyhow::bail;
use peervault_node::HumanSize;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn run(client: &Client, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    // Ask about a file that exists: a missing name fails before any question.
    client
        .call(&Request::Stat {
            name: name.to_string(),
        })
        .await?;
    if !yes {
        if !ui::stdin_is_terminal() {
            bail!(
                "refusing to delete '{name}' without confirmation: pass --yes when not on a terminal"
            );
        }
        if !ui::confirm(&format!("Delete '{name}' from the vault?"))? {
            say!("Kept '{name}'.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let reply = client
        .call(&Request::Delete {
            name: name.to_string(),
        })
        .await?;
    let Response::Deleted { name, freed_bytes } = reply else {
        return Err(super::unexpected(reply));
    };
    say!(
        "File '{name}' deleted successfully ({} freed on this node)",
        HumanSize(freed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// `peervault clean [--yes]`
pub async fn clean(client: &Client, yes: bool) -> anyhow::Result<ExitCode> {
    if !yes {
        if !ui::stdin_is_terminal() {
            bail!("refusing to clean without confirmation: pass --yes when not on a terminal");
        }
        if !ui::confirm(
            "Remove this node's copies of every file? The vault and other nodes' copies stay.",
        )? {
            say!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let reply = client.call(&Request::Clean).await?;
    let Response::Cleaned { report } = reply else {
        return Err(super::unexpected(reply));
    };
    say!("{}", ui::clean_lines(&report));
    Ok(ExitCode::SUCCESS)
}
