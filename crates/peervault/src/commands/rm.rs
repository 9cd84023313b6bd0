//! `rm <name> [--yes]` (`delete` at the prompt) and `clean [NAME...] [--yes]`

use std::process::ExitCode;

use peervault_node::{FileInfo, HumanSize};

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

/// `clean [NAME...] [--yes]`
pub async fn clean(
    ops: &impl Operations,
    names: &[String],
    yes: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    if !yes {
        let files = ops.list().await?;
        let held: Vec<&FileInfo> = files
            .iter()
            .filter(|f| f.local && (names.is_empty() || names.contains(&f.name)))
            .collect();
        let what = if names.is_empty() {
            format!(
                "{} ({} on disk)",
                ui::plural(held.len(), "file"),
                HumanSize(ops.quota().await?.used_bytes)
            )
        } else {
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut question = format!(
            "Remove this node's copies of {what}? The vault still lists them and other nodes keep theirs."
        );
        let only_here = held.iter().filter(|f| f.replicas <= 1).count();
        if names.is_empty() && only_here > 0 {
            question.push_str(&format!(
                " {} no copy on another node and would be lost.",
                match only_here {
                    1 => "1 of them has".to_string(),
                    n => format!("{n} of them have"),
                }
            ));
        }
        if !console.confirm(&question, "clean")? {
            say!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let report = ops.clean(names).await?;
    say!("{}", ui::clean_lines(&report));
    Ok(ExitCode::SUCCESS)
}
