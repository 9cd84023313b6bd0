//! Chunk blobs as files on disk.
//!
//! Layout under the data dir:
//!
//! ```text
//! chunks/ab/ab12...ef   one sealed blob per chunk, named by its id, sharded by
//!                       the first byte so no directory grows past ~1/256 of the store
//! tmp/                  blobs being written; anything here at start-up is debris
//! quarantine/           blobs that failed verification, kept for inspection
//! ```
//!
//! A blob becomes visible only through the durable-write sequence: write to a
//! temporary file, `fsync` it, rename it into place. The directory entry is made
//! durable by [`ChunkFiles::sync_dirs`], which callers run once per batch of blobs
//! (fsyncing a shard directory after every 1 MiB blob would double the fsync count
//! for nothing). A blob on disk means nothing until the metadata database records
//! it, which happens only after `sync_dirs` returns: a crash at any point leaves
//! either a recorded, durable blob or an unrecorded file that clean-up removes.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustix::fs::OFlags;

use crate::buffers::BufferPool;
use crate::crypto::CHUNK_OVERHEAD;
use crate::direct::{DIRECT_ALIGN, refuses_direct};
use crate::ids::ChunkId;
use crate::manifest::MAX_CHUNK_SIZE;
use crate::vault::DEFAULT_CHUNK_SIZE;

/// Largest blob the store will read: anything bigger is damage, not data.
pub const MAX_BLOB_LEN: u64 = MAX_CHUNK_SIZE as u64 + CHUNK_OVERHEAD as u64;

/// Staging and message buffers kept idle for reuse: at most this many of each.
const DIRECT_BUFFERS_IDLE: usize = 4;

/// The chunk directories of one data dir.
///
/// Blobs are written with `O_DIRECT` where the file system allows it (all but the
/// last partial block, which goes through the page cache). Every blob is fsynced
/// before it counts, so the page cache buys a write nothing, and filling it was
/// the largest single cost of storing data: measured on the development VM,
/// 512 fsynced 1 MiB files took 0.18-1.3 s of CPU buffered and 0.06 s direct.
/// File systems that refuse `O_DIRECT` (tmpfs) get buffered writes.
#[derive(Debug)]
pub struct ChunkFiles {
    chunks_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    /// False once the file system refused a direct write.
    direct: AtomicBool,
    /// Staging buffers, taken at full length (refilling them with zeros at every
    /// write showed up in profiles).
    staging: Arc<BufferPool>,
    /// Buffers for blobs read into messages, taken at full length for the same
    /// reason (zeroing a fresh one was 6% of a holder's CPU in a remote get).
    messages: Arc<BufferPool>,
}

/// Length of a pooled message buffer: room for a header and the alignment before
/// a blob of the default chunk size, rounded up to whole blocks. Blobs of other
/// sizes get buffers of their own: sizing every buffer for the largest blob
/// (16 MiB) raised glibc's mmap threshold once the first was freed, and from then
/// on each new one came zeroed from the heap, resident in full (a holder's peak
/// RSS for a 64 MiB get rose from 28 to 57 MiB).
const MESSAGE_LEN: usize = MESSAGE_HEADER_MAX
    + DIRECT_ALIGN
    + (DEFAULT_CHUNK_SIZE as usize + CHUNK_OVERHEAD).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;

/// The longest message header a pooled message buffer has room for (a chunk's
/// is a few dozen bytes; a longer one gets a buffer of its own).
const MESSAGE_HEADER_MAX: usize = 256;

/// Length of a staging buffer: the largest blob, plus room to align its start.
const STAGING_LEN: usize = MAX_BLOB_LEN as usize + DIRECT_ALIGN;

/// A blob written to a temporary file but not yet durable nor in place. Dropping it
/// removes the temporary file.
#[derive(Debug)]
pub struct PendingBlob {
    id: ChunkId,
    file: Option<File>,
    tmp_path: PathBuf,
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl PendingBlob {
    /// Creates the temporary file (owner-only, with extra open `flags`); from here
    /// on dropping the guard removes it if anything fails.
    fn create(id: &ChunkId, tmp_path: &Path, flags: OFlags) -> io::Result<PendingBlob> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .custom_flags(flags.bits() as i32)
            .open(tmp_path)?;
        Ok(PendingBlob {
            id: *id,
            file: Some(file),
            tmp_path: tmp_path.to_path_buf(),
        })
    }
}

/// Mode of every file the store creates: the owner's only.
pub const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` (and missing parents) readable by the owner only.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    // A collision only makes `create_new` fail, which surfaces as an I/O error.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl ChunkFiles {
    /// Creates the directories if needed.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let files = Self {
            chunks_dir: data_dir.join("chunks"),
            tmp_dir: data_dir.join("tmp"),
            quarantine_dir: data_dir.join("quarantine"),
            direct: AtomicBool::new(true),
            staging: BufferPool::new(STAGING_LEN, DIRECT_BUFFERS_IDLE),
            messages: BufferPool::new(MESSAGE_LEN, DIRECT_BUFFERS_IDLE),
        };
        for dir in [&files.chunks_dir, &files.tmp_dir, &files.quarantine_dir] {
            private_dir(dir)?;
        }
        sync_dir(data_dir)?;
        Ok(files)
    }

    fn shard_dir(&self, id: &ChunkId) -> PathBuf {
        self.chunks_dir.join(hex::encode(&id.0[..1]))
    }

    /// Where the blob of `id` lives.
    pub fn path_of(&self, id: &ChunkId) -> PathBuf {
        self.shard_dir(id).join(id.to_hex())
    }

    /// Writes a blob durably under its final name, except for the directory entry:
    /// the caller must run [`ChunkFiles::sync_dirs`] on the returned shard directory
    /// before relying on it.
    pub fn write(&self, id: &ChunkId, blob: &[u8]) -> io::Result<PathBuf> {
        self.finish(self.start_write(id, blob)?)
    }

    /// First half of [`ChunkFiles::write`]: the bytes go to a temporary file, not yet
    /// synced. Splitting the halves lets one thread write while another waits for the
    /// disk to make earlier blobs durable.
    pub fn start_write(&self, id: &ChunkId, blob: &[u8]) -> io::Result<PendingBlob> {
        let tmp_path = self
            .tmp_dir
            .join(format!("{}.{}.tmp", id.to_hex(), random_suffix()));
        if self.direct.load(Ordering::Relaxed) && blob.len() >= DIRECT_ALIGN {
            match self.start_direct_write(id, blob, &tmp_path) {
                Ok(pending) => return Ok(pending),
                // The file system does not do direct I/O: never try again.
                Err(e) if refuses_direct(&e) => {
                    self.direct.store(false, Ordering::Relaxed);
                    // Some file systems refuse at open, after creating the file.
                    let _ = fs::remove_file(&tmp_path);
                }
                Err(e) => return Err(e),
            }
        }
        let mut pending = PendingBlob::create(id, &tmp_path, OFlags::empty())?;
        if let Some(file) = pending.file.as_mut() {
            file.write_all(blob)?;
        }
        Ok(pending)
    }

    /// The whole blocks of `blob` bypass the page cache (from an aligned copy); the
    /// tail goes through it. A refusal of direct I/O comes back as `EINVAL` with the
    /// temporary file removed.
    fn start_direct_write(
        &self,
        id: &ChunkId,
        blob: &[u8],
        tmp_path: &Path,
    ) -> io::Result<PendingBlob> {
        let mut pending = PendingBlob::create(id, tmp_path, OFlags::DIRECT)?;
        let whole = blob.len() / DIRECT_ALIGN * DIRECT_ALIGN;
        let mut staging = self.staging.take_filled();
        let written = (|| {
            let start = staging.as_ptr().align_offset(DIRECT_ALIGN);
            let aligned = staging
                .get_mut(start..start + whole)
                .ok_or_else(|| io::Error::other("cannot align a staging buffer"))?;
            aligned.copy_from_slice(&blob[..whole]);
            if let Some(file) = pending.file.as_mut() {
                file.write_all(aligned)?;
                rustix::fs::fcntl_setfl(&*file, OFlags::empty())?;
                file.write_all(&blob[whole..])?;
            }
            Ok::<(), io::Error>(())
        })();
        written.map(|()| pending)
    }

    /// Second half of [`ChunkFiles::write`]: fsync, then rename into place. Returns the
    /// shard directory, which still needs [`ChunkFiles::sync_dirs`].
    pub fn finish(&self, mut pending: PendingBlob) -> io::Result<PathBuf> {
        if let Some(file) = &pending.file {
            file.sync_all()?;
        }
        let id = pending.id;
        let shard = self.shard_dir(&id);
        if let Err(e) = fs::rename(&pending.tmp_path, shard.join(id.to_hex())) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
            // First blob of this shard: create it (durably) and retry.
            private_dir(&shard)?;
            sync_dir(&self.chunks_dir)?;
            fs::rename(&pending.tmp_path, shard.join(id.to_hex()))?;
        }
        // Renamed into place: nothing left for the drop guard to remove.
        pending.file = None;
        Ok(shard)
    }

    /// Makes renames into these shard directories durable.
    pub fn sync_dirs(&self, dirs: &BTreeSet<PathBuf>) -> io::Result<()> {
        for dir in dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Opens a blob file (with extra `flags`) and checks that its size is one a
    /// blob can have.
    fn open_blob(&self, id: &ChunkId, flags: OFlags) -> io::Result<(File, usize)> {
        let path = self.path_of(id);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len > MAX_BLOB_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "chunk file {} is {len} bytes, larger than any chunk",
                    path.display()
                ),
            ));
        }
        Ok((file, len as usize))
    }

    /// Reads a whole blob into `buf` (replacing its contents), refusing implausible
    /// sizes before reading.
    pub fn read_into(&self, id: &ChunkId, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        let (mut file, len) = self.open_blob(id, OFlags::empty())?;
        buf.reserve_exact(len);
        file.read_to_end(buf)?;
        Ok(())
    }

    /// Reads a whole blob for a peer, behind a prefix that `prefix` makes from the
    /// blob's length (a message header): the blob is read into its message, which
    /// is returned.
    ///
    /// Read with `O_DIRECT` where the file system allows it, as blobs are written.
    /// A blob served to a peer is read once in a long while, so the page cache
    /// keeps nothing worth keeping, and copying out of it was the largest single
    /// cost of serving: on the development VM, 0.1 s of CPU per 341 MiB a holder
    /// served, a quarter of all it spent.
    pub fn read_message(
        &self,
        id: &ChunkId,
        prefix: impl FnOnce(usize) -> Vec<u8>,
    ) -> io::Result<Bytes> {
        if self.direct.load(Ordering::Relaxed) {
            match self.open_blob(id, OFlags::DIRECT) {
                Ok((file, len)) => {
                    let header = prefix(len);
                    return match self.read_direct(&file, len, &header) {
                        // Refused after all: read it through the page cache.
                        Err(e) if refuses_direct(&e) => {
                            read_behind(self.open_blob(id, OFlags::empty())?.0, len, header)
                        }
                        read => read,
                    };
                }
                // The file system does not do direct I/O: never try again.
                Err(e) if refuses_direct(&e) => self.direct.store(false, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let (file, len) = self.open_blob(id, OFlags::empty())?;
        read_behind(file, len, prefix(len))
    }

    /// [`read_direct_into`] a message buffer from the idle list (or a new one), if
    /// the message is about the size of a default chunk's; any other gets a buffer
    /// of its own size (a small one costs little to zero, and would pin a large
    /// pooled buffer while it is sent).
    fn read_direct(&self, file: &File, len: usize, header: &[u8]) -> io::Result<Bytes> {
        let need = header.len() + DIRECT_ALIGN + len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        if header.len() > MESSAGE_HEADER_MAX || need > MESSAGE_LEN || need <= MESSAGE_LEN / 2 {
            let mut buf = vec![0u8; need];
            let message = read_direct_into(&mut buf, file, len, header)?;
            return Ok(Bytes::from(buf).slice(message));
        }
        let mut buf = self.messages.take_filled();
        let message = read_direct_into(&mut buf, file, len, header)?;
        Ok(buf.into_bytes(message))
    }

    /// Reads a whole blob.
    pub fn read(&self, id: &ChunkId) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(id, &mut buf)?;
        Ok(buf)
    }

    /// Asks the kernel to start reading a blob into the page cache in the background,
    /// so that reading many blobs in sequence keeps the disk busy. Best effort.
    pub fn prefetch(&self, id: &ChunkId) {
        if let Ok(file) = File::open(self.path_of(id)) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
        }
    }

    /// True if a blob file for `id` exists (recorded or not).
    pub fn exists(&self, id: &ChunkId) -> bool {
        self.path_of(id).exists()
    }

    /// Deletes a blob; a missing one is not an error.
    pub fn remove(&self, id: &ChunkId) -> io::Result<()> {
        match fs::remove_file(self.path_of(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a damaged blob aside so it is neither served nor counted.
    pub fn quarantine(&self, id: &ChunkId) -> io::Result<()> {
        let target = self
            .quarantine_dir
            .join(format!("{}.{}", id.to_hex(), random_suffix()));
        match fs::rename(self.path_of(id), target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every temporary file. Only safe when no write is in flight (start-up).
    pub fn clear_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes temporary files last modified at least `age` ago (debris of writes
    /// that died). Returns how many and their bytes.
    pub fn clear_tmp_older_than(&self, age: std::time::Duration) -> io::Result<(usize, u64)> {
        let now = std::time::SystemTime::now();
        let (mut removed, mut bytes) = (0, 0);
        for entry in fs::read_dir(&self.tmp_dir)? {
            let entry = entry?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .map(|t| now.duration_since(t).unwrap_or_default() >= age)
                .unwrap_or(false);
            if meta.is_file() && old {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        removed += 1;
                        bytes += meta.len();
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((removed, bytes))
    }

    /// Ids of every blob file present, whether recorded or not.
    pub fn list(&self) -> io::Result<Vec<ChunkId>> {
        let mut ids = Vec::new();
        for shard in fs::read_dir(&self.chunks_dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                if let Some(id) = entry.file_name().to_str().and_then(ChunkId::from_hex) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }
}

/// Reads the `len` bytes of `file` through the page cache into a message behind
/// `header`.
fn read_behind(mut file: File, len: usize, mut header: Vec<u8>) -> io::Result<Bytes> {
    header.reserve_exact(len);
    file.read_to_end(&mut header)?;
    Ok(Bytes::from(header))
}

/// Reads the `len` bytes of a file opened with `O_DIRECT` into `buf` behind
/// `header`: the blob's first byte lands on an aligned address, and whole aligned
/// blocks are asked for (the last read stops at the end of the file). Returns
/// where the message starts and ends in `buf`.
fn read_direct_into(
    buf: &mut [u8],
    file: &File,
    len: usize,
    header: &[u8],
) -> io::Result<std::ops::Range<usize>> {
    use std::os::unix::fs::FileExt;
    let whole = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    let blob_at = header.len() + buf[header.len()..].as_ptr().align_offset(DIRECT_ALIGN);
    let message_at = blob_at - header.len();
    let target = buf
        .get_mut(message_at..blob_at + whole)
        .ok_or_else(|| io::Error::other("a message buffer too small for its blob"))?;
    target[..header.len()].copy_from_slice(header);
    let blob = &mut target[header.len()..];
    let mut filled = 0;
    while filled < len {
        // Full reads return whole blocks until the end of the file, so every
        // offset asked for stays aligned.
        let read = file.read_at(&mut blob[filled..], filled as u64)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    if filled != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("a chunk file changed size while it was read ({len} bytes, then {filled})"),
        ));
    }
    Ok(message_at..blob_at + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        let id = ChunkId([0x5a; 32]);
        let shard = files.write(&id, b"blob").unwrap();
        files.sync_dirs(&BTreeSet::from([shard])).unwrap();
        assert_eq!(files.read(&id).unwrap(), b"blob");
        assert_eq!(files.list().unwrap(), vec![id]);
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        files.remove(&id).unwrap();
        files.remove(&id).unwrap();
        assert!(!files.exists(&id));
    }

    #[test]
    fn blobs_of_every_alignment_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        let sizes = [
            0,
            1,
            4095,
            4096,
            4097,
            8191,
            65536 + 7,
            MAX_BLOB_LEN as usize,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let blob: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            let id = ChunkId([i as u8 + 10; 32]);
            // From a deliberately misaligned slice: the staging copy aligns it.
            let mut padded = vec![0u8; size + 1];
            padded[1..].copy_from_slice(&blob);
            let shard = files.write(&id, &padded[1..]).unwrap();
            files.sync_dirs(&BTreeSet::from([shard])).unwrap();
            assert_eq!(files.read(&id).unwrap(), blob, "size {size}");
            // As a peer's message: the header, then the blob (read direct here,
            // where the file system allows it).
            let message = files
                .read_message(&id, |len| format!("{len}:").into_bytes())
                .unwrap();
            assert_eq!(message, [format!("{size}:").as_bytes(), &blob].concat());
        }
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn oversized_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        let id = ChunkId([1; 32]);
        files.write(&id, b"x").unwrap();
        let f = File::options()
            .write(true)
            .open(files.path_of(&id))
            .unwrap();
        f.set_len(MAX_BLOB_LEN + 1).unwrap();
        assert_eq!(
            files.read(&id).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let refused = files.read_message(&id, |_| Vec::new()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_direct_read_puts_the_blob_at_an_aligned_address_behind_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        let blob: Vec<u8> = (0..3 * DIRECT_ALIGN + 5).map(|b| b as u8).collect();
        let id = ChunkId([2; 32]);
        files.write(&id, &blob).unwrap();
        // 300: longer than a pooled buffer has room for, so a buffer of its own.
        for header_len in [0, 1, 3, 17, MESSAGE_HEADER_MAX, 300] {
            let message = files.read_message(&id, |_| vec![7; header_len]).unwrap();
            assert!(message[..header_len].iter().all(|b| *b == 7));
            assert_eq!(&message[header_len..], &blob[..]);
            if files.direct.load(Ordering::Relaxed) {
                let blob_at = message[header_len..].as_ptr() as usize;
                assert_eq!(blob_at % DIRECT_ALIGN, 0, "header of {header_len} bytes");
            }
        }
    }

    #[test]
    fn message_buffers_are_reused_and_never_show_what_they_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        let big: Vec<u8> = (0..DEFAULT_CHUNK_SIZE as usize + CHUNK_OVERHEAD)
            .map(|b| (b % 251) as u8)
            .collect();
        // Just over half a pooled buffer: still pooled.
        let small: Vec<u8> = (0..MESSAGE_LEN / 2).map(|b| (b % 13) as u8).collect();
        let (big_id, small_id) = (ChunkId([3; 32]), ChunkId([4; 32]));
        files.write(&big_id, &big).unwrap();
        files.write(&small_id, &small).unwrap();
        let message = files.read_message(&big_id, |_| b"B".to_vec()).unwrap();
        assert_eq!(message.len(), 1 + big.len());
        drop(message);
        let idle = |files: &ChunkFiles| files.messages.idle();
        if files.direct.load(Ordering::Relaxed) {
            assert_eq!(idle(&files), 1, "the buffer came back");
        }
        // The same buffer again, for a blob far shorter than the last.
        let message = files.read_message(&small_id, |_| b"S".to_vec()).unwrap();
        assert_eq!(message, [b"S".as_slice(), &small].concat());
        if files.direct.load(Ordering::Relaxed) {
            assert_eq!(idle(&files), 0, "it was reused");
        }
        // A clone keeps the buffer on loan until the last one goes.
        let clone = message.clone();
        drop(message);
        assert_eq!(clone, [b"S".as_slice(), &small].concat());
        drop(clone);
        // Never more idle buffers than the bound, however many were out at once.
        let many: Vec<Bytes> = (0..DIRECT_BUFFERS_IDLE + 3)
            .map(|_| files.read_message(&small_id, |_| Vec::new()).unwrap())
            .collect();
        drop(many);
        assert!(idle(&files) <= DIRECT_BUFFERS_IDLE);
        // Tiny blobs get buffers of their own.
        let before = idle(&files);
        let tiny = ChunkId([5; 32]);
        files.write(&tiny, b"tiny").unwrap();
        let message = files.read_message(&tiny, |_| b"T".to_vec()).unwrap();
        assert_eq!(message, b"Ttiny".as_slice());
        assert_eq!(idle(&files), before, "no pooled buffer taken");
        drop(message);
        assert_eq!(idle(&files), before, "none given back");
    }

    #[test]
    fn tmp_is_cleared_and_quarantine_moves_aside() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/left.tmp"), b"debris").unwrap();
        assert_eq!(files.clear_tmp().unwrap(), 1);
        let id = ChunkId([2; 32]);
        files.write(&id, b"bad").unwrap();
        files.quarantine(&id).unwrap();
        assert!(!files.exists(&id));
        assert_eq!(
            fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
            1
        );
    }
}
