//! `peervault get <name> [-o PATH]`

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peervault_node::HumanSize;

use crate::atomic_file::AtomicFile;
use crate::control::client::Client;

pub async fn run(client: &Client, name: &str, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    match output.filter(|p| p.as_os_str() != "-") {
        None => {
            let mut stdout = tokio::io::stdout();
            client.get(name, &mut stdout, &mut |_, _| {}).await?;
        }
        Some(dest) => {
            let mut target = AtomicFile::create(dest)
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            let info = client.get(name, target.file(), &mut |_, _| {}).await?;
            target
                .commit()
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            println!(
                "File '{}' retrieved successfully to {} ({})",
                info.name,
                dest.display(),
                HumanSize(info.size)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
