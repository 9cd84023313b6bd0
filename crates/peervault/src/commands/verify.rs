//! `verify [name] [--json]`: exits 1 if any chunk is damaged.

use std::process::ExitCode;

use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let files = ops.verify(name).await?;
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
