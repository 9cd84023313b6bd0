//! `peervault get <name> [-o PATH]`

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peervault_node::{FileInfo, HumanSize};

use crate::atomic_file::Download;
use crate::control::client::Client;
use crate::progress::Progress;

pub async fn run(
    client: &Client,
    name: &str,
    output: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let mut bar: Option<Progress> = None;
    let mut show = |done: u64, info: &FileInfo| {
        bar.get_or_insert_with(|| {
            Progress::bytes(Some(info.size), &format!("reading {}", info.name), quiet)
        })
        .set(done)
    };
    match output.filter(|p| p.as_os_str() != "-") {
        // Standard output redirected to a file: the node writes into it directly.
        None if stdout_is_a_file() => {
            client
                .get_into(name, std::io::stdout().as_fd(), &mut show)
                .await?;
        }
        None => {
            let mut stdout = tokio::io::stdout();
            client.get(name, &mut stdout, &mut show).await?;
        }
        Some(dest) => {
            let mut target = Download::open(dest)
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            let info = match target.regular_fd() {
                Some(fd) => client.get_into(name, fd, &mut show).await?,
                // A device or FIFO: streamed into, never replaced.
                None => client.get(name, target.file(), &mut show).await?,
            };
            if let Some(bar) = &bar {
                bar.finish();
            }
            target
                .commit()
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            say!(
                "File '{}' retrieved successfully to {} ({})",
                info.name,
                dest.display(),
                HumanSize(info.size)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether standard output is a regular file (`get name > file`), which the node
/// can be given to write into; pipes and terminals are streamed to.
fn stdout_is_a_file() -> bool {
    rustix::fs::fstat(std::io::stdout())
        .map(|stat| {
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
}
