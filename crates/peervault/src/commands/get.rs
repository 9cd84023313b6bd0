//! `peervault get <name> [-o PATH]`

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peervault_node::{FileInfo, HumanSize};

use crate::atomic_file::AtomicFile;
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
        None => {
            let mut stdout = tokio::io::stdout();
            client.get(name, &mut stdout, &mut show).await?;
        }
        Some(dest) => {
            let mut target = AtomicFile::create(dest)
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            let info = client.get(name, target.file(), &mut show).await?;
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
