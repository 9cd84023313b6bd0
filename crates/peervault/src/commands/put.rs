//! `put <path> [NAME | --name NAME]` (`store <path> [name]` at the prompt)

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use peervault_node::{CopyProgress, FileInfo, FileMeta, HumanSize, Keeping, NodeError, StoreError};
use tokio::io::AsyncRead;

use super::{Console, Surface};
use crate::control::client::PutProgress;
use crate::ops::Operations;
use crate::progress::Progress;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    path: &Path,
    name: Option<String>,
    quiet: bool,
    keeping: Keeping,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    let (data, size, name): (Box<dyn AsyncRead + Unpin + Send>, _, _) = if path.as_os_str() == "-" {
        let Some(name) = name else {
            bail!("reading standard input needs a name: peervault put - --name NAME");
        };
        (Box::new(tokio::io::stdin()), None, name)
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().await?;
        if meta.is_dir() {
            bail!("{} is a directory; a store takes one file", path.display());
        }
        let name = match name {
            Some(name) => name,
            None => ui::vault_name_for(
                path,
                match console.surface() {
                    Surface::Shell => "give one with --name",
                    Surface::Prompt => "give one: store <path> <name>",
                },
            )?,
        };
        (Box::new(file), Some(meta.len()), name)
    };
    if let Some(size) = size
        && console.surface() == Surface::Prompt
        && !make_room(ops, console, size).await?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = Progress::bytes(size, &format!("storing {name}"), quiet);
    let stored = ops
        .store(&name, size, FileMeta::default(), keeping, data, &mut |p| {
            show(&bar, p, size)
        })
        .await;
    bar.finish();
    let stored = stored?;
    say!(
        "{}",
        ui::stored_line(&stored.file, stored.copies, stored.target)
    );
    for failure in stored.failures {
        eprintln!("  not copied: {failure}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the bar: bytes while storing, then the copies as they become durable.
fn show(bar: &Progress, progress: PutProgress, size: Option<u64>) {
    match progress {
        PutProgress::Sent(sent) => {
            bar.set(sent);
            if Some(sent) == size {
                bar.note("stored; copying to peers");
            }
        }
        PutProgress::Copies { copies, target } => bar.copies(CopyProgress { copies, target }),
    }
}

/// At the prompt, before a store that would not fit the quota: first the offer
/// to drop this node's copies of files that other nodes also hold (they stay in
/// the vault), then the original's offer to delete files held here from every
/// node. False if the user cancelled (or nothing can go); then nothing was
/// stored and nothing removed that the user did not pick.
pub(super) async fn make_room(
    ops: &impl Operations,
    console: &mut impl Console,
    size: u64,
) -> anyhow::Result<bool> {
    loop {
        let (needed, available) = match ops.check_fits(size).await {
            Ok(()) => return Ok(true),
            Err(e) => match e.downcast_ref::<NodeError>() {
                Some(NodeError::Store(StoreError::QuotaExceeded {
                    needed, available, ..
                })) => (*needed, *available),
                _ => return Err(e),
            },
        };
        let files: Vec<FileInfo> = ops.list().await?.into_iter().filter(|f| f.local).collect();
        say!("⚠️  Insufficient storage space!");
        say!(
            "Required: {}, Available: {} (Need to free: {})",
            HumanSize(needed),
            HumanSize(available),
            HumanSize(needed.saturating_sub(available))
        );
        if files.is_empty() {
            say!(
                "No file held on this node can be deleted to make room; raise the quota with: quota set <size>"
            );
            return Ok(false);
        }
        let droppable: Vec<FileInfo> = files.iter().filter(|f| f.replicas > 1).cloned().collect();
        if !droppable.is_empty() {
            say!(
                "\nFiles other nodes also hold: dropping this node's copy frees the space here, and the file stays in the vault (read from the nodes that hold it):"
            );
            say!("{}", ui::deletion_table(&droppable));
            let answer = console
                .read_line("Enter file numbers whose copy here to drop (e.g., 1,3), Enter to delete files instead, or 'cancel': ")?
                .unwrap_or_else(|| "cancel".into());
            match answer.trim() {
                "" => {}
                cancel if cancel.eq_ignore_ascii_case("cancel") => {
                    say!("Store cancelled; nothing was removed.");
                    return Ok(false);
                }
                answer => {
                    match ui::parse_choices(answer, droppable.len()) {
                        Ok(chosen) => {
                            let names: Vec<String> =
                                chosen.iter().map(|i| droppable[*i].name.clone()).collect();
                            let report = ops.clean(&names).await?;
                            say!(
                                "Dropped this node's copies of {} ({} freed); the vault still has them.",
                                names
                                    .iter()
                                    .map(|n| format!("'{n}'"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                HumanSize(report.bytes_freed)
                            );
                        }
                        Err(why) => eprintln!("error: {why}"),
                    }
                    continue;
                }
            }
        }
        say!(
            "\nFiles available for deletion (a deleted file is removed from every node, with its old versions, for good):"
        );
        say!("{}", ui::deletion_table(&files));
        let answer = console
            .read_line("Enter file numbers to delete (comma-separated, e.g., 1,3,5) or 'cancel': ")?
            .unwrap_or_default();
        let answer = answer.trim();
        if answer.is_empty() || answer.eq_ignore_ascii_case("cancel") {
            say!("Store cancelled; nothing was deleted.");
            return Ok(false);
        }
        let chosen = match ui::parse_choices(answer, files.len()) {
            Ok(chosen) => chosen,
            Err(why) => {
                eprintln!("error: {why}");
                continue;
            }
        };
        for i in chosen {
            let name = &files[i].name;
            // To make room: old versions too, or nothing would be freed.
            let out = ops.delete(name, true).await?;
            say!("{}", super::rm::deleted_line(&out));
        }
    }
}
