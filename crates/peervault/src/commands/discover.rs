//! `discover [--json]`

use std::process::ExitCode;

use crate::ops::Operations;
use crate::ui;

pub async fn run(ops: &impl Operations, json: bool) -> anyhow::Result<ExitCode> {
    let discovery = ops.discovery().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&discovery)?);
    } else {
        say!("{}", ui::discovery_block(&discovery));
    }
    Ok(ExitCode::SUCCESS)
}
