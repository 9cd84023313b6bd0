//! `versions NAME [--json]`, `undelete NAME` and `restore NAME --version V`
//! (the same at the prompt), over the history the vault keeps of every name
//! (see `peervault_node::versions`).

use std::process::ExitCode;

use peervault_node::HumanSize;

use crate::ops::Operations;
use crate::ui;

pub async fn list(ops: &impl Operations, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let versions = ops.versions(name).await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "Versions of '{name}' ({}, newest first):",
        ui::plural(versions.len(), "version")
    );
    let mut table = ui::new_table(&["Version", "Written (UTC)", "Size", "Hash", ""]);
    for v in &versions {
        let what = match (v.current, v.deleted, v.purged) {
            (_, true, true) => "deleted for good (rm --purge)",
            (true, true, false) => "deleted (undelete brings back the newest version)",
            (true, false, _) => "current",
            (false, true, false) => "deleted",
            (false, false, _) => "",
        };
        table.add_row(vec![
            v.version.clone(),
            v.time.replace('T', " ").trim_end_matches('Z').to_string(),
            if v.deleted {
                "-".into()
            } else {
                HumanSize(v.size).to_string()
            },
            v.hash.chars().take(8).collect(),
            what.to_string(),
        ]);
    }
    say!("{table}");
    Ok(ExitCode::SUCCESS)
}

pub async fn undelete(ops: &impl Operations, name: &str) -> anyhow::Result<ExitCode> {
    let file = ops.undelete(name).await?;
    say!(
        "'{}' is back ({}, hash {}); the other nodes get it at once, or when they return",
        file.name,
        HumanSize(file.size),
        short_hash(&file.hash),
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(ops: &impl Operations, name: &str, version: &str) -> anyhow::Result<ExitCode> {
    let file = ops.restore(name, version).await?;
    say!(
        "'{}' is now version {version} again ({}, hash {}); the version it replaced is kept",
        file.name,
        HumanSize(file.size),
        short_hash(&file.hash),
    );
    Ok(ExitCode::SUCCESS)
}

fn short_hash(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}
