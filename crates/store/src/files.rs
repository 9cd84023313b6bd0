//! Writing a whole file to a path someone gave, without ever replacing what they
//! did not mean to replace.
//!
//! The all-or-nothing way to write a file is a temporary file beside it, fsynced,
//! then renamed over it. Renaming over a path replaces whatever the path named:
//! `get -o /dev/null` run as root turned the machine's `/dev/null` into a regular
//! file, and a FIFO or a symlink would have gone the same way. So every such write
//! first asks what the path is ([`destination`]):
//!
//! * nothing yet, or a regular file: replaced atomically, as before;
//! * a symlink: followed, as `cp` does; the file it leads to is replaced, the link
//!   stays a link;
//! * a character or block device or a FIFO: written into as it is, never renamed
//!   over (the caller decides whether that makes sense for it);
//! * a directory or a socket: refused, with the reason.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Symlinks followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// What kind of file a path names that is not replaced but written into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    CharDevice,
    BlockDevice,
    Fifo,
}

impl std::fmt::Display for SpecialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpecialKind::CharDevice => "a character device",
            SpecialKind::BlockDevice => "a block device",
            SpecialKind::Fifo => "a FIFO",
        })
    }
}

/// How to write a whole file to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A regular file, or nothing yet (symlinks resolved): write beside it and
    /// rename over it.
    Replace(PathBuf),
    /// A device or FIFO (symlinks resolved): write into it as it is.
    WriteInto(PathBuf, SpecialKind),
}

impl Destination {
    /// The path that will really be written (symlinks resolved).
    pub fn path(&self) -> &Path {
        match self {
            Destination::Replace(path) | Destination::WriteInto(path, _) => path,
        }
    }
}

/// Follows `path`'s symlinks (also a dangling last one, whose target may be
/// created) and says how a whole file is to be written there.
pub fn destination(path: &Path) -> io::Result<Destination> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Destination::Replace(current));
            }
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&current)?;
            current = match current.parent() {
                Some(parent) if target.is_relative() => parent.join(target),
                _ => target,
            };
            continue;
        }
        return if kind.is_file() {
            Ok(Destination::Replace(current))
        } else if kind.is_char_device() {
            Ok(Destination::WriteInto(current, SpecialKind::CharDevice))
        } else if kind.is_block_device() {
            Ok(Destination::WriteInto(current, SpecialKind::BlockDevice))
        } else if kind.is_fifo() {
            Ok(Destination::WriteInto(current, SpecialKind::Fifo))
        } else if kind.is_dir() {
            Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory; give a file path", path.display()),
            ))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a socket; refusing to write a file there",
                    path.display()
                ),
            ))
        };
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} goes through too many symbolic links", path.display()),
    ))
}

/// Hex of 8 random bytes, to make a file name unique. A collision only makes a
/// `create_new` fail, which surfaces as an I/O error.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A fresh name for a temporary file beside `target` (hidden, marked with
/// `tag`), to be written and then renamed over `target`.
pub fn temp_beside(target: &Path, tag: &str) -> io::Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", target.display()),
        )
    })?;
    Ok(parent_dir(target).join(format!(
        ".{}.{tag}-{}",
        name.to_string_lossy(),
        random_suffix()
    )))
}

/// Writes `bytes` as the whole content of the regular file at `path` (following
/// symlinks), atomically and durably, with permissions `mode` for a new file: a
/// temporary file beside it, fsynced, renamed over it, then the directory
/// fsynced. A device, FIFO, directory or socket there is refused, not replaced.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let target = match destination(path)? {
        Destination::Replace(target) => target,
        Destination::WriteInto(_, kind) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is {kind}, not a regular file; refusing to replace it",
                    path.display()
                ),
            ));
        }
    };
    let temp = temp_beside(&target, "tmp")?;
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        crate::segments::sync_dir(parent_dir(&target))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn regular_files_and_new_paths_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write_atomically(&file, b"one", 0o600).unwrap();
        write_atomically(&file, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        assert_eq!(destination(&file).unwrap(), Destination::Replace(file));
    }

    #[test]
    fn a_symlink_is_followed_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        let link = dir.path().join("link");
        fs::write(&real, b"old").unwrap();
        symlink("real", &link).unwrap();
        write_atomically(&link, b"new", 0o600).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        // A dangling link: its target is created.
        let dangling = dir.path().join("dangling");
        symlink("made-later", &dangling).unwrap();
        write_atomically(&dangling, b"x", 0o600).unwrap();
        assert_eq!(fs::read(dir.path().join("made-later")).unwrap(), b"x");
        assert!(
            fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A loop is an error, not a hang.
        symlink("loop-b", dir.path().join("loop-a")).unwrap();
        symlink("loop-a", dir.path().join("loop-b")).unwrap();
        assert!(destination(&dir.path().join("loop-a")).is_err());
    }

    #[test]
    fn fifos_directories_and_sockets_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(
            destination(&fifo).unwrap(),
            Destination::WriteInto(fifo.clone(), SpecialKind::Fifo)
        );
        let e = write_atomically(&fifo, b"x", 0o600).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(destination(dir.path()).is_err());
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let e = destination(&socket).unwrap_err();
        assert!(e.to_string().contains("socket"), "{e}");
    }
}
