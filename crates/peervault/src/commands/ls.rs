//! `ls [--json]` (`list` at the prompt)

use std::process::ExitCode;

use super::{Console, Surface};
use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    json: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    let files = ops.list().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&files)?);
    } else if files.is_empty() {
        say!(
            "The vault is empty. Store a file with: {}",
            match console.surface() {
                Surface::Shell => "peervault put <path>",
                Surface::Prompt => "store <path>",
            }
        );
    } else {
        say!("Files in the vault ({}):", ui::plural(files.len(), "file"));
        say!("{}", ui::files_table(&files));
    }
    Ok(ExitCode::SUCCESS)
}
