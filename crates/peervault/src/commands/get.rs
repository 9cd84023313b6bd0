//! `get <name> [PATH | -o PATH] [--force]` (`get <name> [dest]` at the prompt)
//!
//! A destination's missing folders are made (and removed again if the read
//! fails); a file already there is replaced only with `--force` or a yes at a
//! terminal, since `get` used to overwrite without a word.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use peervault_node::{FileInfo, HumanSize};

use super::{Console, Surface};
use crate::atomic_file::Download;
use crate::ops::{Operations, Wanted};
use crate::progress::Progress;

/// Files up to this size that are text are shown by `get` at the prompt when no
/// destination is given.
const PRINT_LIMIT_BYTES: u64 = 64 * 1024;

pub async fn run(
    ops: &impl Operations,
    wanted: Wanted<'_>,
    output: Option<&Path>,
    force: bool,
    quiet: bool,
    console: &mut impl Console,
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
        None if on_terminal => show_text(ops, wanted).await?,
        None => {
            ops.read_to_stdout(wanted, &mut show).await?;
        }
        Some(dest) => {
            // A missing name fails before any question about the destination
            // (an old version may be of a name deleted since: the read says).
            if wanted.version.is_none() {
                ops.stat(wanted.name).await?;
            }
            if !may_replace(dest, force, console)? {
                say!("Kept {}.", dest.display());
                return Ok(ExitCode::SUCCESS);
            }
            let made = make_parents(dest)
                .with_context(|| format!("cannot make the folders of {}", dest.display()))?;
            let written = download(ops, wanted, dest, &mut show).await;
            if let Some(bar) = &bar {
                bar.finish();
            }
            let info = written.inspect_err(|_| remove_made(&made))?;
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

/// Reads `name` into `dest`, which is complete or untouched at the end.
pub(super) async fn download(
    ops: &impl Operations,
    name: Wanted<'_>,
    dest: &Path,
    show: crate::ops::ReadProgress<'_>,
) -> anyhow::Result<FileInfo> {
    let cannot_write = || format!("cannot write {}", dest.display());
    let mut target = Download::open(dest).await.with_context(cannot_write)?;
    let info = ops.read_into(name, &mut target, show).await?;
    target.commit().await.with_context(cannot_write)?;
    Ok(info)
}

/// Whether `dest` may be written: yes if nothing is there (a device or FIFO
/// is written into, never replaced); a file there needs `--force` or a yes.
fn may_replace(dest: &Path, force: bool, console: &mut impl Console) -> anyhow::Result<bool> {
    let existing = match peervault_node::files::destination(dest) {
        Ok(peervault_node::files::Destination::Replace(real)) => std::fs::metadata(real).ok(),
        // Devices and FIFOs are written into; a directory fails with its reason later.
        _ => None,
    };
    let Some(existing) = existing.filter(|_| !force) else {
        return Ok(true);
    };
    let question = format!(
        "{} exists ({}). Replace it?",
        dest.display(),
        HumanSize(existing.len())
    );
    if !console.can_ask() {
        bail!(
            "{} exists; add --force to replace it, or give another path",
            dest.display()
        );
    }
    console.confirm(&question, &format!("replace {}", dest.display()))
}

/// Makes the missing folders above `dest`; returns them, deepest first.
fn make_parents(dest: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut dir = dest.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        dir = d.parent();
    }
    if let Some(deepest) = missing.first() {
        std::fs::create_dir_all(deepest)?;
    }
    Ok(missing)
}

/// Removes the folders [`make_parents`] made, if they are still empty.
fn remove_made(made: &[PathBuf]) {
    for dir in made {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// At the prompt without a destination: a short text file is shown; anything
/// else needs one.
async fn show_text(ops: &impl Operations, wanted: Wanted<'_>) -> anyhow::Result<()> {
    let name = wanted.name;
    let size = match wanted.version {
        None => ops.stat(name).await?.size,
        Some(label) => {
            let versions = ops.versions(name).await?;
            let version = versions.iter().find(|v| v.version.starts_with(label));
            version.map_or(0, |v| v.size)
        }
    };
    if size > PRINT_LIMIT_BYTES {
        bail!(
            "'{name}' is {} (too long to show); give a destination: get {name} <path> (-o - writes it here anyway)",
            HumanSize(size)
        );
    }
    let mut bytes = Vec::new();
    ops.read_to(wanted, &mut bytes, &mut |_, _| {}).await?;
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
    fn parents_are_made_and_removed_deepest_first() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/c.txt");
        let made = make_parents(&dest).unwrap();
        assert_eq!(made, vec![dir.path().join("a/b"), dir.path().join("a")]);
        assert!(dir.path().join("a/b").is_dir());
        assert!(
            make_parents(&dest).unwrap().is_empty(),
            "nothing more to make"
        );
        remove_made(&made);
        assert!(!dir.path().join("a").exists());
        assert!(make_parents(Path::new("plain.txt")).unwrap().is_empty());
    }

    #[test]
    fn printable_text() {
        assert!(is_printable_text(b"hello\nworld\t!\r\n"));
        assert!(!is_printable_text(b"\x1b[2J"));
        assert!(!is_printable_text(&[0xff, 0xfe]));
    }
}
