//! `get <name> [PATH | -o PATH]` (`get <name> [dest]` at the prompt)

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use peervault_node::{FileInfo, HumanSize};

use super::{Console, Surface};
use crate::atomic_file::Download;
use crate::ops::Operations;
use crate::progress::Progress;

/// Files up to this size that are text are shown by `get` at the prompt when no
/// destination is given.
const PRINT_LIMIT_BYTES: u64 = 64 * 1024;

pub async fn run(
    ops: &impl Operations,
    name: &str,
    output: Option<&Path>,
    quiet: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    let mut bar: Option<Progress> = None;
    let mut show = |done: u64, info: &FileInfo| {
        bar.get_or_insert_with(|| {
            Progress::bytes(Some(info.size), &format!("reading {}", info.name), quiet)
        })
        .set(done)
    };
    // Bytes to a terminal only as the prompt shows them (short text), unless
    // `-o -` asks for them anyway: binary data would garble it.
    let on_terminal = output.is_none()
        && (console.surface() == Surface::Prompt || std::io::stdout().is_terminal());
    match output.filter(|p| p.as_os_str() != "-") {
        None if on_terminal => show_text(ops, name).await?,
        None => {
            ops.read_to_stdout(name, &mut show).await?;
        }
        Some(dest) => {
            let mut target = Download::open(dest)
                .await
                .with_context(|| format!("cannot write {}", dest.display()))?;
            let info = ops.read_into(name, &mut target, &mut show).await?;
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

/// At the prompt without a destination: a short text file is shown; anything
/// else needs one.
async fn show_text(ops: &impl Operations, name: &str) -> anyhow::Result<()> {
    let info = ops.stat(name).await?;
    if info.size > PRINT_LIMIT_BYTES {
        bail!(
            "'{name}' is {} (too long to show); give a destination: get {name} <path> (-o - writes it here anyway)",
            HumanSize(info.size)
        );
    }
    let mut bytes = Vec::new();
    ops.read_to(name, &mut bytes, &mut |_, _| {}).await?;
    if !is_printable_text(&bytes) {
        bail!(
            "'{name}' is {} of binary data; give a destination: get {name} <path> (-o - writes it here anyway)",
            HumanSize(bytes.len() as u64)
        );
    }
    say!(
        "File '{name}' retrieved successfully ({}):",
        HumanSize(bytes.len() as u64)
    );
    let text = String::from_utf8_lossy(&bytes);
    say!("{}", text.strip_suffix('\n').unwrap_or(&text));
    Ok(())
}

/// True for bytes worth printing on a terminal.
fn is_printable_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .map(|s| {
            s.chars()
                .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text() {
        assert!(is_printable_text(b"hello\nworld\t!\r\n"));
        assert!(!is_printable_text(b"\x1b[2J"));
        assert!(!is_printable_text(&[0xff, 0xfe]));
    }
}
