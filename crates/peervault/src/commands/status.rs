//! `status [--json]` and `metrics [--json]`

use std::process::ExitCode;

use crate::ops::Operations;
use crate::ui;

pub async fn run(ops: &impl Operations, json: bool) -> anyhow::Result<ExitCode> {
    let status = ops.status().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        say!("{}", ui::status_block(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// `metrics [--json]`
pub async fn metrics(ops: &impl Operations, json: bool) -> anyhow::Result<ExitCode> {
    let metrics = ops.metrics().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        say!("{}", ui::metrics_block(&metrics));
    }
    Ok(ExitCode::SUCCESS)
}

/// `redundancy [K+M|none] [--json]`.
pub async fn redundancy(
    ops: &impl Operations,
    set: Option<peervault_node::Keeping>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let changed = set.is_some();
    let status = ops.redundancy(set).await?;
    if json {
        say!("{}", serde_json::to_string(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let how = match status.redundancy.as_str() {
        "none" => "whole copies (--replicas of them)".to_string(),
        coded => format!("erasure coded {coded}"),
    };
    let from = match status.source.as_str() {
        "vault" => "the vault's setting",
        "flag" => "this node's --redundancy (the vault has no setting)",
        _ => "the default (the vault has no setting)",
    };
    if changed {
        say!(
            "The vault now keeps files as {how}. Every node re-encodes the files kept otherwise \
             in the background; they stay readable throughout (`peervault redundancy` shows \
             how many are left)."
        );
    } else {
        say!("Files are kept as {how}: {from}.");
        say!(
            "{} files kept otherwise when this node last looked; it has re-encoded {} ({}) since it started.",
            status.files_kept_otherwise,
            status.files_reencoded,
            peervault_node::HumanSize(status.bytes_reencoded)
        );
    }
    Ok(ExitCode::SUCCESS)
}
