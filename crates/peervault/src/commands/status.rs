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
