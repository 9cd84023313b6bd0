//! `ls [PREFIX] [--recursive] [--json]` (`list` at the prompt)
//!
//! With no prefix and no `--recursive`, every file as before (a flat vault
//! lists as it always did). With a prefix, one level of that folder: its files
//! and its folders with their file count and size; `--recursive` lists every
//! file under it.

use std::process::ExitCode;

use super::{Console, Surface};
use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    prefix: Option<&str>,
    recursive: bool,
    json: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    let mut files = ops.list().await?;
    if let Some(prefix) = prefix {
        if recursive {
            let start = format!("{}/", prefix.trim_end_matches('/'));
            files.retain(|f| f.name.starts_with(&start));
        } else {
            let level = super::tree::one_level(files, Some(prefix));
            if json {
                say!("{}", serde_json::to_string_pretty(&level)?);
            } else if level.is_empty() {
                say!("Nothing under '{}/'.", prefix.trim_end_matches('/'));
            } else {
                say!("{}", ui::level_table(&level));
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
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
