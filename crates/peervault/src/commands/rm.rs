//! `rm <name> [--yes]` (`delete` at the prompt) and `clean [--yes]`

use std::process::ExitCode;

use peervault_node::HumanSize;

use super::Console;
use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    name: &str,
    yes: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    // Ask about a file that exists: a missing name fails before any question.
    ops.stat(name).await?;
    if !yes
        && !console.confirm(
            &format!("Delete '{name}' from the vault? Every node will drop its copy."),
            &format!("delete '{name}'"),
        )?
    {
        say!("Kept '{name}'.");
        return Ok(ExitCode::SUCCESS);
    }
    let out = ops.delete(name).await?;
    say!(
        "File '{}' deleted successfully ({} freed on this node)",
        out.name,
        HumanSize(out.freed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// `clean [--yes]`
pub async fn clean(
    ops: &impl Operations,
    yes: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    if !yes {
        let held = ops.list().await?.iter().filter(|f| f.local).count();
        let bytes = ops.quota().await?.used_bytes;
        let question = format!(
            "Remove this node's copies of {} ({} on disk)? The vault still lists them and other nodes keep theirs.",
            ui::plural(held, "file"),
            HumanSize(bytes)
        );
        if !console.confirm(&question, "clean")? {
            say!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let report = ops.clean().await?;
    say!("{}", ui::clean_lines(&report));
    Ok(ExitCode::SUCCESS)
}
