//! Direct I/O: writing data to disk without passing it through the page cache.
//!
//! Why: bytes written through the page cache are first copied into pages the
//! kernel allocates for them, and on a virtual machine that hands free memory back
//! to its host (free page reporting) each of those pages can fault into the host
//! first. Measured on the development VM during 1 GiB remote gets into a file, that
//! one copy took 0.4-1.6 s of the reader's CPU, varying from run to run with what
//! the host had reclaimed, while the rest of the get took about 1 s. Written with
//! `O_DIRECT` from a reused buffer, the disk reads the bytes where they are.
//!
//! `O_DIRECT` needs the memory address, the file offset and the length of every
//! write aligned to the device's logical block ([`DIRECT_ALIGN`] covers those in
//! common use), so a [`SequentialWriter`] gathers bytes in an aligned buffer and
//! writes whole blocks directly; the last partial block goes through the page
//! cache. Anything that rules direct I/O out (a file system without it, such as
//! tmpfs; an unaligned start; a file opened for appending) leaves it writing as
//! plainly as before, so the result is the same bytes either way.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rustix::fs::OFlags;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Alignment of memory, offsets and lengths that `O_DIRECT` writes need (the
/// largest logical block size in common use).
pub const DIRECT_ALIGN: usize = 4096;

/// Whether an error is a file system's refusal of direct I/O.
pub(crate) fn refuses_direct(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// Bytes gathered before a direct write: large enough that the disk sees few
/// requests, small enough to be nothing in a node's memory budget.
const GATHER: usize = 4 << 20;

/// Writes a regular file front to back from its current offset, whole blocks
/// directly where it can (see the module's docs). The bytes go to the file's
/// offset when it was handed over, and [`SequentialWriter::finish`] leaves the
/// file's offset behind the last of them, as plain writes would have.
#[derive(Debug)]
pub struct SequentialWriter {
    file: File,
    /// A second open description of the same file, with `O_DIRECT`.
    direct: Option<File>,
    /// Where the first gathered byte goes.
    at: u64,
    /// Where the file's offset was when this writer took it over.
    began: u64,
    gathered: Vec<u8>,
    /// Where the aligned part of `gathered` starts.
    start: usize,
    filled: usize,
}

impl SequentialWriter {
    /// Takes over `file`, which must be open for writing.
    pub fn new(mut file: File) -> io::Result<Self> {
        let at = file.stream_position()?;
        let direct = open_direct(&file, at);
        let gathered = match direct {
            Some(_) => vec![0; GATHER + DIRECT_ALIGN],
            None => Vec::new(),
        };
        let start = gathered.as_ptr().align_offset(DIRECT_ALIGN);
        Ok(Self {
            file,
            direct,
            at,
            began: at,
            gathered,
            start,
            filled: 0,
        })
    }

    /// Whether whole blocks still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes written into the file so far (not those still only gathered).
    pub fn written(&self) -> u64 {
        self.at - self.began
    }

    /// Writes all of `bytes` (some perhaps only gathered until the next call).
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.direct.is_none() {
            self.file.write_all_at(bytes, self.at)?;
            self.at += bytes.len() as u64;
            return Ok(());
        }
        while !bytes.is_empty() {
            let room = GATHER - self.filled;
            let n = room.min(bytes.len());
            let into = self.start + self.filled;
            self.gathered[into..into + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == GATHER {
                self.write_gathered()?;
            }
        }
        Ok(())
    }

    /// Writes what is gathered: its whole blocks directly (or plainly once direct
    /// I/O is refused), a partial block plainly.
    fn write_gathered(&mut self) -> io::Result<()> {
        let whole = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        let blocks = &self.gathered[self.start..self.start + whole];
        if let Some(direct) = &self.direct
            && let Err(e) = direct.write_all_at(blocks, self.at)
        {
            if !refuses_direct(&e) {
                return Err(e);
            }
            // Refused (some file systems accept the open but not the write):
            // plain writes from here on, starting with these blocks.
            self.direct = None;
        }
        if self.direct.is_none() {
            self.file.write_all_at(blocks, self.at)?;
        }
        self.at += whole as u64;
        let rest = self.start + whole..self.start + self.filled;
        self.file.write_all_at(&self.gathered[rest], self.at)?;
        self.at += (self.filled - whole) as u64;
        self.filled = 0;
        Ok(())
    }

    /// Writes out what is gathered and returns the file, its offset behind the
    /// last byte written. The bytes are written, not yet durable.
    pub fn finish(mut self) -> io::Result<File> {
        if self.filled > 0 {
            self.write_gathered()?;
        }
        self.file.seek(SeekFrom::Start(self.at))?;
        Ok(self.file)
    }
}

/// Pieces queued for a [`QueuedWriter`]'s thread: enough that the disk keeps
/// writing while the bytes behind them arrive, each holding its piece's memory.
const QUEUED_PIECES: usize = 4;

/// A [`SequentialWriter`] on a blocking thread of its own, fed through a short
/// queue, for async code that produces the bytes.
///
/// Why: awaiting each write stopped the producer for as long as the disk took,
/// and a blocking task per piece cost two thread hand-overs per piece. Measured
/// on the development VM during 1 GiB remote gets into a file, while peers'
/// reads share the disk with the writes: see docs/BENCHMARKS.md.
#[derive(Debug)]
pub struct QueuedWriter {
    queue: mpsc::Sender<Bytes>,
    /// `None` once an error stopped the writing and was returned.
    thread: Option<JoinHandle<io::Result<File>>>,
    written: Arc<AtomicU64>,
}

/// What a stopped writer answers after its error was returned once.
fn stopped() -> io::Error {
    io::Error::other("the writing had already stopped at an error")
}

async fn join(thread: JoinHandle<io::Result<File>>) -> io::Result<File> {
    thread.await.unwrap_or_else(|e| Err(io::Error::other(e)))
}

impl QueuedWriter {
    /// Takes over `file` (see [`SequentialWriter::new`]); must be called within a
    /// Tokio runtime.
    pub fn start(file: File) -> io::Result<Self> {
        let mut out = SequentialWriter::new(file)?;
        let (queue, mut pieces) = mpsc::channel::<Bytes>(QUEUED_PIECES);
        let written = Arc::new(AtomicU64::new(0));
        let count = written.clone();
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(piece) = pieces.blocking_recv() {
                out.write(&piece)?;
                count.store(out.written(), Ordering::Relaxed);
            }
            out.finish()
        });
        Ok(Self {
            queue,
            thread: Some(thread),
            written,
        })
    }

    /// Queues `bytes`, waiting while the queue is full. An error is the one that
    /// stopped the writing; nothing more is written after it.
    pub async fn write(&mut self, bytes: Bytes) -> io::Result<()> {
        if self.queue.send(bytes).await.is_ok() {
            return Ok(());
        }
        // The thread dropped its end of the queue: it stopped at an error, which
        // the first caller to see this gets.
        let thread = self.thread.take().ok_or_else(stopped)?;
        join(thread).await.and(Err(stopped()))
    }

    /// Bytes written into the file so far (written, not yet durable; those still
    /// queued or gathered for the next direct write are not counted).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits for everything queued to be written and returns the file, its
    /// offset behind the last byte, as [`SequentialWriter::finish`] does.
    pub async fn finish(self) -> io::Result<File> {
        let Self { queue, thread, .. } = self;
        drop(queue);
        join(thread.ok_or_else(stopped)?).await
    }
}

/// Opens `file` again with `O_DIRECT` (a description of its own, so the caller's
/// stays as it was), if direct writes from offset `at` can work at all. A file
/// not open for writing is never opened again for it: the new description would
/// grant what the one handed over did not, and the plain writes fail as they should.
fn open_direct(file: &File, at: u64) -> Option<File> {
    let flags = rustix::fs::fcntl_getfl(file).ok()?;
    let writable = matches!(flags & OFlags::RWMODE, OFlags::WRONLY | OFlags::RDWR);
    if !writable || flags.contains(OFlags::APPEND) || !at.is_multiple_of(DIRECT_ALIGN as u64) {
        return None;
    }
    OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn data(len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        blake3::Hasher::new()
            .update(&(len as u64).to_le_bytes())
            .finalize_xof()
            .fill(&mut bytes);
        bytes
    }

    /// Writes `bytes` in pieces of `piece` bytes into `file`; returns the file's
    /// offset afterwards and whether direct I/O was used to the end. Checks on the
    /// way that `written` counts what reached the file: everything when writes are
    /// plain, whole gathers when they are direct.
    fn write_in_pieces(file: File, bytes: &[u8], piece: usize) -> (u64, bool) {
        let mut writer = SequentialWriter::new(file).unwrap();
        let mut sent = 0;
        for part in bytes.chunks(piece) {
            writer.write(part).unwrap();
            sent += part.len() as u64;
            let expected = if writer.is_direct() {
                sent / GATHER as u64 * GATHER as u64
            } else {
                sent
            };
            assert_eq!(writer.written(), expected, "after {sent} bytes");
        }
        let direct = writer.is_direct();
        let mut file = writer.finish().unwrap();
        (file.stream_position().unwrap(), direct)
    }

    fn create(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn bytes_of_every_length_and_piece_size_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        for (len, piece) in [
            (0, 1),
            (5, 1),
            (DIRECT_ALIGN, DIRECT_ALIGN),
            (3 * GATHER + 17, 1_000_003),
            (GATHER, 65_536),
            (2 * GATHER - 1, GATHER + 1),
            (100_000, 7),
        ] {
            let bytes = data(len);
            let (offset, _) = write_in_pieces(create(&path), &bytes, piece);
            assert_eq!(offset, len as u64);
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} in {piece}s");
        }
    }

    #[test]
    fn whole_blocks_go_direct_on_a_disk_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let (_, direct) = write_in_pieces(create(&path), &data(2 * GATHER + 3), 4096);
        if !direct {
            eprintln!(
                "skipped: the file system of {} has no O_DIRECT",
                dir.path().display()
            );
        }
        assert_eq!(std::fs::read(&path).unwrap(), data(2 * GATHER + 3));
    }

    #[test]
    fn the_bytes_follow_what_the_file_already_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let bytes = data(GATHER + 999);
        // An unaligned start (plain writes), an aligned one (direct), and a file
        // opened for appending (plain).
        for before in [100usize, 8192] {
            let mut file = create(&path);
            file.write_all(&data(before)).unwrap();
            let (offset, direct) = write_in_pieces(file, &bytes, 333_333);
            assert_eq!(offset, (before + bytes.len()) as u64);
            assert!(before == 8192 || !direct, "an unaligned start went direct");
            let mut expected = data(before);
            expected.extend_from_slice(&bytes);
            assert_eq!(std::fs::read(&path).unwrap(), expected);
        }
        std::fs::write(&path, b"head").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let (_, direct) = write_in_pieces(file, &bytes, 65_536);
        assert!(!direct, "an appending file went direct");
        let mut read = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut read).unwrap();
        assert_eq!(&read[..4], b"head");
        assert_eq!(&read[4..], &bytes[..]);
    }

    #[test]
    fn a_file_system_without_direct_io_gets_plain_writes() {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            eprintln!("skipped: no /dev/shm (tmpfs) here");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let path = dir.path().join("out");
        let bytes = data(2 * GATHER + 4097);
        let (offset, _) = write_in_pieces(create(&path), &bytes, 100_000);
        assert_eq!(offset, bytes.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_queued_writer_writes_every_piece_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let bytes = data(3 * GATHER + 12_345);
        let mut writer = QueuedWriter::start(create(&path)).unwrap();
        for part in bytes.chunks(1_000_003) {
            writer.write(Bytes::copy_from_slice(part)).await.unwrap();
        }
        let mut file = writer.finish().await.unwrap();
        assert_eq!(file.stream_position().unwrap(), bytes.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_queued_writer_reports_the_error_that_stopped_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"").unwrap();
        // Open for reading only: every write fails.
        let mut writer = QueuedWriter::start(File::open(&path).unwrap()).unwrap();
        let mut failed = None;
        for _ in 0..2 * QUEUED_PIECES + 2 {
            if let Err(e) = writer.write(Bytes::from(data(GATHER))).await {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.expect("writes into a read-only file were all taken");
        assert_eq!(
            failed.raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error())
        );
        let again = writer.write(Bytes::from_static(b"x")).await.unwrap_err();
        assert!(again.to_string().contains("already stopped"), "{again}");
        assert!(writer.finish().await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
