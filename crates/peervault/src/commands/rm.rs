//! `rm <name> [--yes]` (`delete` at the prompt) and `clean [NAME...] [--yes]`

use std::process::ExitCode;

use peervault_node::{DeleteOutcome, FileInfo, HumanSize};

use super::Console;
use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    name: &str,
    purge: bool,
    yes: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    // Ask about a file that exists: a missing name fails before any question
    // (a deleted one may still be purged, while versions of it are kept).
    match purge {
        true => drop(ops.versions(name).await?),
        false => drop(ops.stat(name).await?),
    }
    let question = if purge {
        format!(
            "Delete '{name}' and every old version of it from the vault, for good? \
             Nothing can bring it back."
        )
    } else {
        format!("Delete '{name}' from the vault? Every node will drop its copy.")
    };
    if !yes && !console.confirm(&question, &format!("delete '{name}'"))? {
        say!("Kept '{name}'.");
        return Ok(ExitCode::SUCCESS);
    }
    let out = ops.delete(name, purge).await?;
    say!("{}", deleted_line(&out));
    Ok(ExitCode::SUCCESS)
}

/// What `rm` says of a delete: what it freed, or how to undo it.
pub(super) fn deleted_line(out: &DeleteOutcome) -> String {
    let name = &out.name;
    if out.recoverable {
        format!(
            "File '{name}' deleted successfully (its last version is kept: \
             undelete {name} brings it back; rm --purge deletes it for good)"
        )
    } else {
        format!(
            "File '{name}' deleted successfully ({} freed on this node)",
            HumanSize(out.freed_bytes)
        )
    }
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
