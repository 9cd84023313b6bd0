//! `peervault put <path> [--name NAME]`

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use peervault_node::CopyProgress;

use crate::control::client::{Client, PutProgress};
use crate::control::proto::Response;
use crate::progress::Progress;
use crate::ui;

pub async fn run(
    client: &Client,
    path: &Path,
    name: Option<String>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let reply = if path.as_os_str() == "-" {
        let Some(name) = name else {
            bail!("reading standard input needs a name: peervault put - --name NAME");
        };
        let bar = Progress::bytes(None, &format!("storing {name}"), quiet);
        client
            .put(&name, None, tokio::io::stdin(), &mut |p| {
                show(&bar, p, None)
            })
            .await?
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().await?;
        if meta.is_dir() {
            bail!(
                "{} is a directory; put stores one file at a time",
                path.display()
            );
        }
        let name = match name {
            Some(name) => name,
            None => ui::vault_name_for(path, "give one with --name")?,
        };
        let bar = Progress::bytes(Some(meta.len()), &format!("storing {name}"), quiet);
        let size = meta.len();
        client
            .put(&name, Some(size), file, &mut |p| show(&bar, p, Some(size)))
            .await?
    };
    let Response::Stored {
        file,
        copies,
        target,
        failures,
        ..
    } = reply
    else {
        return Err(super::unexpected(reply));
    };
    say!("{}", ui::stored_line(&file, copies, target));
    for failure in failures {
        eprintln!("  not copied: {failure}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the bar: bytes while uploading, then the copies as they become durable.
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
