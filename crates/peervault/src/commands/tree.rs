//! Trees: `put -r DIR`, `get -r PREFIX -o DIR`, `ls PREFIX`, `rm -r PREFIX`.
//!
//! A `/` in a name makes a folder; a tree is every name under `PREFIX/`. Each
//! file keeps what it was on its disk ([`FileMeta`]: mode, modification time,
//! and for a symbolic link its target: links are stored, never followed), so
//! `get -r` writes the tree back as it was. `put -r` is incremental: a file
//! whose size, mode, modification time and content match the stored version is
//! not sent again.
//!
//! Names are keys, not paths (`../x` is a valid name), so `get -r` maps each
//! name under the prefix to a path below the destination only if every part of
//! it is a plain component; anything else is refused, never written outside.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use peervault_node::{FileInfo, FileMeta, HumanSize};

use super::{Console, Surface};
use crate::ops::Operations;
use crate::progress::Progress;
use crate::ui;

/// Files of a tree stored, or read, at once.
const TREE_FILES_AT_ONCE: usize = 8;

/// What a walk of a directory found.
#[derive(Debug, Default)]
struct Walk {
    /// (path on disk, path relative to the root with `/`, metadata).
    entries: Vec<(PathBuf, String, std::fs::Metadata)>,
    /// What cannot be stored (sockets, devices, FIFOs), with why.
    skipped: Vec<String>,
}

/// Every regular file and symbolic link under `root`, in name order (links
/// are not followed).
fn walk(root: &Path) -> anyhow::Result<Walk> {
    let mut out = Walk::default();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name();
            let Some(name) = name.to_str() else {
                out.skipped.push(format!(
                    "{} (its name is not UTF-8)",
                    child.path().display()
                ));
                continue;
            };
            let rel = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(child.path())
                .with_context(|| format!("cannot read {}", child.path().display()))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                pending.push((child.path(), rel));
            } else if kind.is_file() || kind.is_symlink() {
                out.entries.push((child.path(), rel, meta));
            } else {
                out.skipped.push(format!(
                    "{} (not a file, folder or link)",
                    child.path().display()
                ));
            }
        }
    }
    out.entries.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// What a file on disk was, as the vault keeps it.
fn meta_of(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<FileMeta> {
    let link_target = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .with_context(|| format!("cannot read the link {}", path.display()))?;
        Some(
            target
                .to_str()
                .with_context(|| format!("the target of {} is not UTF-8", path.display()))?
                .to_string(),
        )
    } else {
        None
    };
    Ok(FileMeta {
        mode: Some(meta.mode() & 0o7777),
        modified_unix_ms: Some(meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000),
        link_target,
        object: None,
    })
}

/// `put -r DIR [--name PREFIX]`
pub async fn put(
    ops: &impl Operations,
    dir: &Path,
    prefix: Option<String>,
    quiet: bool,
    keeping: peervault_node::Keeping,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    let prefix = match prefix {
        Some(p) => p.trim_end_matches('/').to_string(),
        None => ui::vault_name_for(dir, "give one with --name")?,
    };
    let found = walk(dir)?;
    let stored: HashMap<String, FileInfo> = ops
        .list()
        .await?
        .into_iter()
        .filter(|f| f.name.starts_with(&format!("{prefix}/")))
        .map(|f| (f.name.clone(), f))
        .collect();
    let total: u64 = found.entries.iter().map(|(_, _, m)| m.len()).sum();
    let bar = Progress::bytes(Some(total), &format!("storing {prefix}/"), quiet);
    let count = found.entries.len();
    // First what must go (unchanged files are checked here, one at a time)...
    let mut unchanged = 0usize;
    let mut checked_bytes = 0u64;
    let mut to_send = Vec::new();
    for (path, rel, meta) in &found.entries {
        let name = format!("{prefix}/{rel}");
        let file_meta = meta_of(path, meta)?;
        let size = if file_meta.link_target.is_some() {
            0
        } else {
            meta.len()
        };
        if let Some(old) = stored.get(&name)
            && old.size == size
            && old.meta == file_meta
            && (file_meta.link_target.is_some() || same_content(path, &old.hash)?)
        {
            unchanged += 1;
            checked_bytes += size;
            bar.set(checked_bytes);
            continue;
        }
        to_send.push((name, path.clone(), file_meta, size));
    }
    // At the prompt, a tree that would not fit gets the offer to make room
    // that a single store gets (from the shell, the first put that does not
    // fit fails with the quota's numbers).
    let sent_bytes: u64 = to_send.iter().map(|(_, _, _, size)| size).sum();
    bar.finish();
    if console.surface() == Surface::Prompt
        && sent_bytes > 0
        && !super::put::make_room(ops, console, sent_bytes).await?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = Progress::bytes(Some(total), &format!("storing {prefix}/"), quiet);
    bar.set(checked_bytes);
    // ... then the rest, several at a time: each file is made durable on every
    // holder before its put returns, and one at a time a folder of small files
    // waited on one fsync after another.
    let done = std::sync::atomic::AtomicU64::new(checked_bytes);
    let files_done = std::sync::atomic::AtomicUsize::new(unchanged);
    let sent = to_send.len();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(to_send)
        .map(|(name, path, file_meta, size)| {
            let (bar, done, files_done) = (&bar, &done, &files_done);
            let prefix = &prefix;
            async move {
                let data: Box<dyn tokio::io::AsyncRead + Unpin + Send> =
                    if file_meta.link_target.is_some() {
                        Box::new(tokio::io::empty())
                    } else {
                        Box::new(
                            tokio::fs::File::open(&path)
                                .await
                                .with_context(|| format!("cannot open {}", path.display()))?,
                        )
                    };
                ops.store(&name, Some(size), file_meta, keeping, data, &mut |_| {})
                    .await
                    .with_context(|| format!("{name} was not stored"))?;
                use std::sync::atomic::Ordering::Relaxed;
                bar.set(done.fetch_add(size, Relaxed) + size);
                let n = files_done.fetch_add(1, Relaxed) + 1;
                bar.note(&format!("storing {prefix}/: {n} of {count} files"));
                Ok(())
            }
        })
        .buffer_unordered(TREE_FILES_AT_ONCE)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    bar.finish();
    say!(
        "Stored {} ({}) under {prefix}/; {} unchanged{}",
        ui::plural(sent, "file"),
        HumanSize(sent_bytes),
        unchanged,
        if found.skipped.is_empty() {
            String::new()
        } else {
            format!("; {} skipped", found.skipped.len())
        }
    );
    for why in &found.skipped {
        eprintln!("  skipped: {why}");
    }
    Ok(ExitCode::SUCCESS)
}

/// True if the file at `path` hashes to `hash` (hex BLAKE3).
fn same_content(path: &Path, hash: &str) -> anyhow::Result<bool> {
    let mut hasher = blake3::Hasher::new();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    hasher
        .update_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().as_str() == hash)
}

/// The files of the vault under `prefix/`, by name; an error that says so if
/// there are none.
async fn under(ops: &impl Operations, prefix: &str) -> anyhow::Result<Vec<FileInfo>> {
    let start = format!("{prefix}/");
    let files: Vec<FileInfo> = ops
        .list()
        .await?
        .into_iter()
        .filter(|f| f.name.starts_with(&start))
        .collect();
    if files.is_empty() {
        bail!("no files under '{prefix}/' in the vault (ls shows what there is)");
    }
    Ok(files)
}

/// The path below `root` for `rel` (a name less its prefix), if every part of
/// it is a plain component: `..`, `.`, empty parts and absolute names never
/// reach outside the destination.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let path = Path::new(rel);
    // Checked part by part as written: `Path` would drop a trailing `.`.
    let plain = !rel.is_empty()
        && rel
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(path))
}

/// `get -r PREFIX -o DIR [--force]`
pub async fn get(
    ops: &impl Operations,
    prefix: &str,
    out: &Path,
    force: bool,
    quiet: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    let prefix = prefix.trim_end_matches('/');
    let files = under(ops, prefix).await?;
    let mut plan = Vec::new();
    let mut refused = Vec::new();
    for f in files {
        match inside(out, &f.name[prefix.len() + 1..]) {
            Some(path) => plan.push((f, path)),
            None => refused.push(f.name),
        }
    }
    let existing = plan
        .iter()
        .filter(|(_, p)| std::fs::symlink_metadata(p).is_ok())
        .count();
    if existing > 0 && !force {
        let question = format!(
            "{} under {} exist. Replace them?",
            ui::plural(existing, "file"),
            out.display()
        );
        if !console.can_ask() {
            bail!(
                "{} under {} exist; add --force to replace them, or give another folder",
                ui::plural(existing, "file"),
                out.display()
            );
        }
        if !console.confirm(&question, "replace files")? {
            say!("Nothing written.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let total: u64 = plan.iter().map(|(f, _)| f.size).sum();
    let bar = Progress::bytes(Some(total), &format!("reading {prefix}/"), quiet);
    let count = plan.len();
    // Folders and links first, in order; then the files, several at a time (one
    // at a time, a tree of small files waited on one round trip after another).
    let mut files = Vec::new();
    for (f, path) in &plan {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make the folder {}", parent.display()))?;
        }
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if f.meta.link_target.is_some() || is_link {
            // Replace a link itself, never the file it leads to.
            if std::fs::symlink_metadata(path).is_ok() {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot replace {}", path.display()))?;
            }
        }
        match &f.meta.link_target {
            Some(target) => std::os::unix::fs::symlink(target, path)
                .with_context(|| format!("cannot make the link {}", path.display()))?,
            None => files.push((f, path)),
        }
    }
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
    let done = AtomicU64::new(0);
    let written = AtomicUsize::new(count - files.len());
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(files)
        .map(|(f, path)| {
            let (bar, done, written) = (&bar, &done, &written);
            async move {
                let mut seen = 0u64;
                let mut show = |n: u64, _: &FileInfo| {
                    bar.set(done.fetch_add(n - seen, Relaxed) + n - seen);
                    seen = n;
                };
                super::get::download(ops, f.name.as_str().into(), path, &mut show).await?;
                restore_meta(path, &f.meta)?;
                let n = written.fetch_add(1, Relaxed) + 1;
                bar.note(&format!("reading {prefix}/: {n} of {count} files"));
                Ok(())
            }
        })
        .buffer_unordered(TREE_FILES_AT_ONCE)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let (written, done) = (written.into_inner(), done.into_inner());
    bar.finish();
    say!(
        "Wrote {} ({}) from {prefix}/ to {}",
        ui::plural(written, "file"),
        HumanSize(done),
        out.display()
    );
    if !refused.is_empty() {
        eprintln!(
            "not written (their names would lead outside {}): {}",
            out.display(),
            refused.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives a written file back its mode and modification time.
fn restore_meta(path: &Path, meta: &FileMeta) -> anyhow::Result<()> {
    if let Some(mode) = meta.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    if let Some(ms) = meta.modified_unix_ms {
        let when = if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        };
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_modified(when)
            .with_context(|| format!("cannot set the time of {}", path.display()))?;
    }
    Ok(())
}

/// `rm -r PREFIX [--purge] [--yes]`
pub async fn rm(
    ops: &impl Operations,
    prefix: &str,
    purge: bool,
    yes: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    let prefix = prefix.trim_end_matches('/');
    let files = under(ops, prefix).await?;
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    if !yes && !console.confirm(
        &format!(
            "Delete {} ({}) under '{prefix}/' from the vault? Every node will drop its copies{}.",
            ui::plural(files.len(), "file"),
            HumanSize(bytes),
            if purge {
                ", with every old version, for good"
            } else {
                " (undelete brings each back while its versions are kept)"
            }
        ),
        &format!("delete '{prefix}/'"),
    )? {
        say!("Kept '{prefix}/'.");
        return Ok(ExitCode::SUCCESS);
    }
    for f in &files {
        ops.delete(&f.name, purge).await?;
    }
    say!(
        "Deleted {} ({}) under '{prefix}/'",
        ui::plural(files.len(), "file"),
        HumanSize(bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// One level of the vault under `prefix` (the whole vault for `None`): its
/// files, and its folders with their file count and total size.
pub fn one_level(files: Vec<FileInfo>, prefix: Option<&str>) -> Vec<serde_json::Value> {
    let start = prefix.map_or(String::new(), |p| format!("{}/", p.trim_end_matches('/')));
    let mut out = Vec::new();
    let mut folders: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for f in files.into_iter().filter(|f| f.name.starts_with(&start)) {
        match f.name[start.len()..].split_once('/') {
            Some((folder, _)) => {
                let entry = folders.entry(format!("{start}{folder}/")).or_default();
                entry.0 += 1;
                entry.1 += f.size;
            }
            None => out.push(serde_json::to_value(&f).unwrap_or_default()),
        }
    }
    let mut listed: Vec<serde_json::Value> = folders
        .into_iter()
        .map(|(name, (files, size))| {
            serde_json::json!({"name": name, "type": "folder", "files": files, "size": size})
        })
        .collect();
    listed.extend(out);
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_lead_outside_the_destination() {
        let root = Path::new("/dest");
        assert_eq!(
            inside(root, "a/b.txt"),
            Some(PathBuf::from("/dest/a/b.txt"))
        );
        for hostile in ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "", "a/."] {
            assert_eq!(inside(root, hostile), None, "{hostile}");
        }
    }
}
