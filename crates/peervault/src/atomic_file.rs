//! Writing a download so that the destination is either complete or untouched.
//!
//! Bytes go to a temporary file beside the destination; only when the whole file
//! has arrived verified is it fsynced and renamed over the destination. If anything
//! fails (an integrity error, a lost node, Ctrl-C) the temporary file is removed and
//! the destination keeps whatever it held before.
//!
//! That is for regular files. [`Download::open`] first asks what the destination
//! is (`peervault_node::files::destination`): a symlink is followed (the file it
//! leads to is replaced, the link stays), and a character or block device or a
//! FIFO is written into as it is, never renamed over: `get -o /dev/null` run as
//! root once turned the machine's `/dev/null` into a regular file.

use std::io;
use std::path::{Path, PathBuf};

use peervault_node::files::{Destination, SpecialKind, destination};
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// Where a download goes.
#[derive(Debug)]
pub enum Download {
    /// A regular file, or a new one: written beside it, renamed over it at the end.
    Atomic(AtomicFile),
    /// A device or FIFO: written into as it is.
    Direct { file: File, kind: SpecialKind },
}

impl Download {
    /// Opens `dest` for a download (following symlinks; a directory or socket is
    /// refused with the reason).
    pub async fn open(dest: &Path) -> io::Result<Download> {
        match destination(dest)? {
            Destination::Replace(real) => Ok(Download::Atomic(AtomicFile::create(&real).await?)),
            Destination::WriteInto(real, kind) => {
                // No truncation or creation: it is the user's device or FIFO.
                let file = File::options().write(true).open(&real).await?;
                Ok(Download::Direct { file, kind })
            }
        }
    }

    /// The file to write into.
    pub fn file(&mut self) -> &mut File {
        match self {
            Download::Atomic(atomic) => atomic.file(),
            Download::Direct { file, .. } => file,
        }
    }

    /// The regular file's descriptor, which the node may write into itself
    /// (`GetInto`); devices and FIFOs are streamed to.
    pub fn regular_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            Download::Atomic(atomic) => Some(atomic.fd()),
            Download::Direct { .. } => None,
        }
    }

    /// Finishes the download: the rename for a regular file, a flush otherwise.
    pub async fn commit(self) -> io::Result<()> {
        match self {
            Download::Atomic(atomic) => atomic.commit().await,
            Download::Direct { mut file, kind } => {
                file.flush().await?;
                tracing::debug!("wrote into {kind}");
                Ok(())
            }
        }
    }
}

/// A destination file being written.
#[derive(Debug)]
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    file: File,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing `dest`. Fails if `dest` is a directory or its directory is missing.
    pub async fn create(dest: &Path) -> io::Result<AtomicFile> {
        if dest.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory; give a file path", dest.display()),
            ));
        }
        let temp = peervault_node::files::temp_beside(dest, "peervault-partial")?;
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            file,
            committed: false,
        })
    }

    /// The temporary file to write into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary file's descriptor, for a writer in another process.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }

    /// Makes the written bytes durable and moves them into place.
    pub async fn commit(mut self) -> io::Result<()> {
        self.file.sync_all().await?;
        tokio::fs::rename(&self.temp, &self.dest).await?;
        self.committed = true;
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn commit_replaces_and_drop_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        std::fs::write(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).await.unwrap();
            f.file().write_all(b"half").await.unwrap();
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&dest).await.unwrap();
        f.file().write_all(b"new").await.unwrap();
        f.commit().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(AtomicFile::create(dir.path()).await.is_err());
    }
}
