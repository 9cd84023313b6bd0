//! Chunk blobs packed into segment files.
//!
//! Layout under the data dir:
//!
//! ```text
//! segments/0000000000000001.seg   blobs, each in a slot: a 4 KiB-aligned offset,
//!                                 padded to whole 4 KiB blocks
//! quarantine/<id>.<random>        copies of blobs that failed verification
//! ```
//!
//! **Why segments.** Blobs used to be one file each. Reading a 1 GiB file back then
//! meant opening 1,024 files, and each cold open was a metadata read; worse, ext4
//! placed consecutive 1 MiB files 2 MiB apart (it rounds small allocations up) and
//! alternated them between two regions of the disk, so the read that was meant to
//! be sequential was not. Measured on the AMD EPYC guest, a cold `get` of 1 GiB
//! reached 0.6-0.7 of a plain read of the same bytes from one file. A write stream
//! now appends its blobs to one segment file, so a file's chunks lie in order,
//! contiguously, and a write costs one `fdatasync` for the whole file instead of
//! an fsync, a rename and a directory entry per chunk.
//!
//! **Where a blob is** ([`Slot`]: segment, offset, length) is recorded in the
//! metadata database, and a slot means nothing until it is recorded. A write
//! appends its blobs ([`Appender::append`]; `O_DIRECT` from an aligned copy where
//! the file system allows it), makes the segment durable ([`Appender::sync`]) and
//! only then records the slots. A crash before the record leaves unrecorded bytes
//! in a segment, which the start-up sweep returns to the file system
//! ([`Segments::sweep_segment`]). Until a slot is recorded or discarded it is
//! *pending*, and nothing that reclaims space touches a segment with pending slots
//! or one still open for appending.
//!
//! **Space.** A slot whose blob is forgotten is punched out of its segment
//! (`fallocate(PUNCH_HOLE)`), so the file system gets the blocks back at once; a
//! segment with no recorded or pending slot left, that is no longer appended to,
//! is deleted. Slots never move, so a reader that looked a slot up (and pinned its
//! chunk, so that it cannot be forgotten) can read it at leisure.
//!
//! **Reads.** A file read front to back ([`StreamReader`]) goes through the page
//! cache, following its segment in order, so that the kernel reads ahead in large
//! requests. Single blobs (for a peer, for `verify` and the GC) are read around
//! the page cache (`O_DIRECT`) where the file system allows: they are read once in
//! a long while, and a pass over every blob would otherwise push out of the cache
//! whatever the machine was using it for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustix::fs::{FallocateFlags, OFlags, SeekFrom};

use crate::buffers::{BufferPool, PooledBuf};
use crate::crypto::CHUNK_OVERHEAD;
use crate::direct::{DIRECT_ALIGN, refuses_direct};
use crate::ids::ChunkId;
use crate::manifest::MAX_CHUNK_SIZE;
use crate::vault::DEFAULT_CHUNK_SIZE;

/// Largest blob the store will read: anything bigger is damage, not data.
pub const MAX_BLOB_LEN: u64 = MAX_CHUNK_SIZE as u64 + CHUNK_OVERHEAD as u64;

/// Alignment of every slot's offset and length: the block that direct I/O and
/// hole punching work in.
pub const SLOT_ALIGN: u64 = DIRECT_ALIGN as u64;

/// A segment is closed to new slots once it reaches this size: large enough that a
/// big vault has few files, small enough that a segment emptied by deletes (and
/// then removed) is not rare.
pub const SEGMENT_TARGET_BYTES: u64 = 1 << 30;

/// Segments kept open between writes, so that the next write continues one
/// instead of starting a file of its own.
const IDLE_SEGMENTS: usize = 8;

/// Staging and read buffers kept idle for reuse: at most this many of each (a
/// local read keeps `READ_AHEAD_LOCAL` (in `vault/read.rs`) read buffers busy).
const DIRECT_BUFFERS_IDLE: usize = 8;

/// Mode of every file the store creates: the owner's only.
pub const PRIVATE_FILE: u32 = 0o600;

/// Segment files are named by their number in 16 hex digits, with this extension.
const SEGMENT_EXTENSION: &str = "seg";

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

/// Length of a staging buffer: the largest slot, plus room to align its start.
const STAGING_LEN: usize = MAX_BLOB_LEN as usize + 2 * DIRECT_ALIGN;

/// Where one blob lies: recorded in the metadata database, meaningful only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub segment: u64,
    /// Byte offset in the segment, a multiple of [`SLOT_ALIGN`].
    pub offset: u64,
    /// Bytes of the blob (the slot is this rounded up to whole blocks).
    pub len: u32,
    /// When the blob was stored, in seconds since the Unix epoch (for the GC's grace).
    pub stored_at: u64,
}

impl Slot {
    /// Bytes of a recorded slot.
    pub const ENCODED_LEN: usize = 28;

    /// Bytes the slot occupies in its segment.
    pub fn span(&self) -> u64 {
        span_of(self.len as u64)
    }

    /// The slot's byte range in its segment.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.span()
    }

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.segment.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..20].copy_from_slice(&self.len.to_le_bytes());
        out[20..].copy_from_slice(&self.stored_at.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8; Self::ENCODED_LEN]) -> Slot {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[16..20]);
        Slot {
            segment: u64_at(0),
            offset: u64_at(8),
            len: u32::from_le_bytes(len),
            stored_at: u64_at(20),
        }
    }
}

/// Bytes a slot for a blob of `len` bytes occupies (at least one block).
fn span_of(len: u64) -> u64 {
    len.max(1).div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

/// The segment files of one data dir.
#[derive(Debug)]
pub struct Segments {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    quarantine_dir: PathBuf,
    target_bytes: u64,
    /// False once the file system refused direct I/O.
    direct: AtomicBool,
    /// False once the file system refused to punch a hole (space is then freed
    /// only when a whole segment is).
    punch: AtomicBool,
    /// Staging buffers for direct writes, taken at full length (refilling them with
    /// zeros at every write showed up in profiles).
    staging: Arc<BufferPool>,
    /// Buffers for blobs read into memory, taken at full length for the same
    /// reason (zeroing a fresh one was 6% of a holder's CPU in a remote get).
    messages: Arc<BufferPool>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Number of the next segment to create.
    next: u64,
    segments: BTreeMap<u64, SegmentInfo>,
    /// Open segments no appender is using.
    idle: Vec<OpenSegment>,
}

#[derive(Debug, Default, Clone, Copy)]
struct SegmentInfo {
    /// Recorded slots.
    live: u64,
    /// Slots written and neither recorded nor discarded yet.
    pending: u64,
    /// Still appended to (by an appender, or idle waiting for one).
    open: bool,
}

/// A segment open for appending.
#[derive(Debug)]
struct OpenSegment {
    number: u64,
    file: Arc<File>,
    /// Where the next slot goes.
    end: u64,
}

/// Unrecorded space that [`Segments::sweep_segment`] found (or gave back).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Runs of unrecorded data (a whole segment with nothing recorded is one).
    pub regions: usize,
    pub bytes: u64,
}

impl Segments {
    /// Creates the directories if needed and finds the segments already there (all
    /// closed: new writes start new segments).
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        Self::open_with_target(data_dir, SEGMENT_TARGET_BYTES)
    }

    /// [`Segments::open`] with segments closed at `target_bytes` (tests use small ones).
    pub fn open_with_target(data_dir: &Path, target_bytes: u64) -> io::Result<Self> {
        let dir = data_dir.join("segments");
        let quarantine_dir = data_dir.join("quarantine");
        for d in [&dir, &quarantine_dir] {
            private_dir(d)?;
        }
        sync_dir(data_dir)?;
        let mut state = State::default();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if let Some(number) = segment_number(&entry.file_name()) {
                state.segments.insert(number, SegmentInfo::default());
                state.next = state.next.max(number + 1);
            }
        }
        state.next = state.next.max(1);
        Ok(Self {
            shared: Arc::new(Shared {
                dir,
                quarantine_dir,
                target_bytes: target_bytes.max(SLOT_ALIGN),
                direct: AtomicBool::new(true),
                punch: AtomicBool::new(true),
                staging: BufferPool::new(STAGING_LEN, DIRECT_BUFFERS_IDLE),
                messages: BufferPool::new(MESSAGE_LEN, DIRECT_BUFFERS_IDLE),
                state: Mutex::new(state),
            }),
        })
    }

    /// Tells the store how many recorded slots each segment holds (from the
    /// metadata database, once at open). New segments are numbered after every one
    /// recorded too, also one whose file has gone: a new file under an old number
    /// would give that number's stale records bytes to read, and slots to punch.
    pub fn set_live_counts(&self, counts: &HashMap<u64, u64>) {
        let mut state = self.shared.lock();
        for (number, live) in counts {
            state.segments.entry(*number).or_default().live = *live;
            state.next = state.next.max(number.saturating_add(1));
        }
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Where segment `number` lives.
    pub fn path_of(&self, number: u64) -> PathBuf {
        self.shared.path_of(number)
    }

    /// A new appender: its first blob goes to an idle open segment or a new one.
    pub fn appender(&self) -> Appender {
        Appender {
            shared: self.shared.clone(),
            current: None,
            unsynced: Vec::new(),
        }
    }

    /// Marks `recorded` slots as recorded and discards `unrecorded` ones (slots of
    /// chunks that another write recorded first).
    pub fn settle(&self, recorded: &[Slot], unrecorded: &[Slot]) {
        {
            let mut state = self.shared.lock();
            for slot in recorded {
                let info = state.segments.entry(slot.segment).or_default();
                info.live += 1;
                info.pending = info.pending.saturating_sub(1);
            }
        }
        self.shared.discard(unrecorded);
        // A segment closed with only settled slots may have nothing left.
        let touched: BTreeSet<u64> = recorded.iter().map(|s| s.segment).collect();
        for number in touched {
            self.shared.remove_if_dead(number);
        }
    }

    /// Gives back the space of slots that were written but will never be recorded.
    pub fn discard(&self, slots: &[Slot]) {
        self.shared.discard(slots);
    }

    /// Gives back the space of slots whose records were forgotten.
    pub fn release(&self, slots: &[Slot]) {
        for slot in slots {
            self.shared.punch(slot.segment, slot.range());
            {
                let mut state = self.shared.lock();
                let info = state.segments.entry(slot.segment).or_default();
                info.live = info.live.saturating_sub(1);
            }
            self.shared.remove_if_dead(slot.segment);
        }
    }

    /// Reads a whole blob, directly where the file system allows, into a buffer of
    /// its own (pooled for blobs of about the default chunk size), which the caller
    /// may change in place, as decryption does: `buf[range]` is the blob.
    pub fn read_blob(&self, slot: &Slot) -> io::Result<(PooledBuf, Range<usize>)> {
        self.read_behind_header(slot, |_| Vec::new())
    }

    /// Reads a whole blob for a peer, behind a prefix that `prefix` makes from the
    /// blob's length (a message header): the blob is read into its message, which
    /// is returned. Copying out of the page cache was the largest single cost of
    /// serving: on the development VM, 0.1 s of CPU per 341 MiB a holder served, a
    /// quarter of all it spent.
    pub fn read_message(
        &self,
        slot: &Slot,
        prefix: impl FnOnce(usize) -> Vec<u8>,
    ) -> io::Result<Bytes> {
        let (buf, message) = self.read_behind_header(slot, prefix)?;
        Ok(buf.into_bytes(message))
    }

    /// A reader for one stream of blobs, read in order through the page cache.
    pub fn stream_reader(&self) -> StreamReader {
        StreamReader {
            shared: self.shared.clone(),
            open: None,
        }
    }

    fn read_behind_header(
        &self,
        slot: &Slot,
        prefix: impl FnOnce(usize) -> Vec<u8>,
    ) -> io::Result<(PooledBuf, Range<usize>)> {
        let shared = &self.shared;
        let len = slot.len as usize;
        if slot.len as u64 > MAX_BLOB_LEN {
            return Err(too_large(slot));
        }
        if shared.direct.load(Ordering::Relaxed) {
            match shared.open_segment(slot.segment, OFlags::DIRECT) {
                Ok(file) => {
                    let header = prefix(len);
                    return match shared.read_direct(&file, slot, &header) {
                        // Refused after all: read it through the page cache.
                        Err(e) if refuses_direct(&e) => read_buffered(
                            &shared.open_segment(slot.segment, OFlags::empty())?,
                            slot,
                            header,
                        ),
                        read => read,
                    };
                }
                // The file system does not do direct I/O: never try again.
                Err(e) if refuses_direct(&e) => shared.direct.store(false, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let file = shared.open_segment(slot.segment, OFlags::empty())?;
        read_buffered(&file, slot, prefix(len))
    }

    /// Copies a damaged blob to the quarantine directory for inspection (best
    /// effort: a blob that cannot be read is not copied). The caller forgets its
    /// record and then [`Segments::release`]s the slot.
    pub fn quarantine(&self, id: &ChunkId, slot: &Slot) -> io::Result<()> {
        let mut bytes = vec![0u8; (slot.len as u64).min(MAX_BLOB_LEN) as usize];
        let read = self
            .shared
            .open_segment(slot.segment, OFlags::empty())
            .and_then(|file| file.read_at(&mut bytes, slot.offset));
        let Ok(read) = read else {
            return Ok(());
        };
        bytes.truncate(read);
        let target = self.shared.quarantine_dir.join(format!(
            "{}.{}",
            id.to_hex(),
            crate::files::random_suffix()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(target)?;
        io::Write::write_all(&mut file, &bytes)
    }

    /// Closed segments with no pending slot: those whose unrecorded space
    /// [`Segments::sweep_segment`] may reclaim, each with whether it was last
    /// written at least `min_age` ago (always, without one). Segment files that
    /// appeared on disk since the last look (none should) count as closed and empty.
    /// The caller must read the recorded slots *after* this returns, so that every
    /// slot settled before it is among them.
    pub fn sweepable(&self, min_age: Option<Duration>) -> io::Result<Vec<(u64, bool)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.shared.dir)? {
            if let Some(number) = segment_number(&entry?.file_name()) {
                found.push(number);
            }
        }
        let closed: Vec<u64> = {
            let mut state = self.shared.lock();
            for number in found {
                // A segment being created is in the books before its file exists.
                state.segments.entry(number).or_default();
                state.next = state.next.max(number + 1);
            }
            state
                .segments
                .iter()
                .filter(|(_, info)| !info.open && info.pending == 0)
                .map(|(number, _)| *number)
                .collect()
        };
        let now = SystemTime::now();
        Ok(closed
            .into_iter()
            .map(|number| {
                let old = min_age.is_none_or(|age| {
                    fs::metadata(self.path_of(number))
                        .and_then(|m| m.modified())
                        .map(|t| now.duration_since(t).unwrap_or_default() >= age)
                        .unwrap_or(true)
                });
                (number, old)
            })
            .collect())
    }

    /// Measures, and with `reclaim` returns to the file system, every byte of
    /// segment `number` that lies outside `recorded` (its recorded slots, read after
    /// [`Segments::sweepable`] named it); with `reclaim`, a segment with nothing
    /// recorded is deleted.
    pub fn sweep_segment(
        &self,
        number: u64,
        recorded: &[Slot],
        reclaim: bool,
    ) -> io::Result<Reclaimed> {
        let path = self.path_of(number);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.shared.forget_if_dead(number);
                return Ok(Reclaimed::default());
            }
            Err(e) => return Err(e),
        };
        let data = data_extents(&file)?;
        if recorded.is_empty() {
            let bytes = data.iter().map(|r| r.end - r.start).sum();
            drop(file);
            if reclaim && self.shared.forget_if_dead(number) {
                remove_file_if_present(&path)?;
            }
            return Ok(Reclaimed { regions: 1, bytes });
        }
        let mut slots: Vec<Range<u64>> = recorded.iter().map(Slot::range).collect();
        slots.sort_by_key(|r| r.start);
        let mut found = Reclaimed::default();
        for extent in data {
            for gap in uncovered(extent, &slots) {
                if reclaim {
                    punch_hole(&file, &gap)?;
                }
                found.regions += 1;
                found.bytes += gap.end - gap.start;
            }
        }
        Ok(found)
    }

    /// Whether some segment file exists.
    pub fn any(&self) -> bool {
        !self.shared.lock().segments.is_empty()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:016x}.{SEGMENT_EXTENSION}"))
    }

    fn open_segment(&self, number: u64, flags: OFlags) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(self.path_of(number))
    }

    /// Creates a new segment, durable as a directory entry before any slot in it
    /// can be recorded.
    fn create(&self) -> io::Result<OpenSegment> {
        let number = {
            let mut state = self.lock();
            let number = state.next;
            state.next += 1;
            state.segments.insert(
                number,
                SegmentInfo {
                    open: true,
                    ..SegmentInfo::default()
                },
            );
            number
        };
        let created = self.create_file(number);
        if created.is_err() {
            self.lock().segments.remove(&number);
        }
        Ok(OpenSegment {
            number,
            file: Arc::new(created?),
            end: 0,
        })
    }

    fn create_file(&self, number: u64) -> io::Result<File> {
        let path = self.path_of(number);
        let create = |flags: OFlags| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(PRIVATE_FILE)
                .custom_flags(flags.bits() as i32)
                .open(&path)
        };
        let file = if self.direct.load(Ordering::Relaxed) {
            match create(OFlags::DIRECT) {
                Err(e) if refuses_direct(&e) => {
                    self.direct.store(false, Ordering::Relaxed);
                    // Some file systems refuse at open, after creating the file.
                    remove_file_if_present(&path)?;
                    create(OFlags::empty())?
                }
                opened => opened?,
            }
        } else {
            create(OFlags::empty())?
        };
        sync_dir(&self.dir)?;
        Ok(file)
    }

    /// Writes `blob` into the slot at `offset` of `segment`, padded with zeros to
    /// whole blocks.
    fn write_slot(&self, segment: &mut OpenSegment, offset: u64, blob: &[u8]) -> io::Result<()> {
        if self.direct.load(Ordering::Relaxed) {
            match self.write_direct(&segment.file, offset, blob) {
                Err(e) if refuses_direct(&e) => {
                    self.direct.store(false, Ordering::Relaxed);
                    let plain = OpenOptions::new()
                        .write(true)
                        .open(self.path_of(segment.number))?;
                    segment.file = Arc::new(plain);
                }
                written => return written,
            }
        }
        let span = span_of(blob.len() as u64) as usize;
        let file = &segment.file;
        file.write_all_at(blob, offset)?;
        let zeros = [0u8; DIRECT_ALIGN];
        file.write_all_at(&zeros[..span - blob.len()], offset + blob.len() as u64)
    }

    /// Writes the slot from an aligned staging copy, bypassing the page cache (the
    /// file was opened with `O_DIRECT`).
    fn write_direct(&self, file: &File, offset: u64, blob: &[u8]) -> io::Result<()> {
        let span = span_of(blob.len() as u64) as usize;
        let mut staging = self.staging.take_filled();
        let start = staging.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = staging
            .get_mut(start..start + span)
            .ok_or_else(|| io::Error::other("cannot align a staging buffer"))?;
        aligned[..blob.len()].copy_from_slice(blob);
        aligned[blob.len()..].fill(0);
        file.write_all_at(aligned, offset)
    }

    /// [`read_direct_into`] a buffer from [`Shared::blob_buffer`].
    fn read_direct(
        &self,
        file: &File,
        slot: &Slot,
        header: &[u8],
    ) -> io::Result<(PooledBuf, Range<usize>)> {
        let mut buf = self.blob_buffer(header.len(), slot);
        let message = read_direct_into(&mut buf, file, slot, header)?;
        Ok((buf, message))
    }

    /// See [`Segments::discard`].
    fn discard(&self, slots: &[Slot]) {
        for slot in slots {
            self.punch(slot.segment, slot.range());
            {
                let mut state = self.lock();
                let info = state.segments.entry(slot.segment).or_default();
                info.pending = info.pending.saturating_sub(1);
            }
            self.remove_if_dead(slot.segment);
        }
    }

    /// A buffer with room for `header` bytes, then a slot's blob at an aligned
    /// address: from the idle list (or a new one) if about the size of a default
    /// chunk's; any other gets a buffer of its own size (a small one costs little
    /// to zero, and would pin a large pooled buffer while it is in use).
    fn blob_buffer(&self, header: usize, slot: &Slot) -> PooledBuf {
        let need = header + DIRECT_ALIGN + slot.span() as usize;
        if header > MESSAGE_HEADER_MAX || need > MESSAGE_LEN || need <= MESSAGE_LEN / 2 {
            PooledBuf::unpooled(vec![0u8; need])
        } else {
            self.messages.take_filled()
        }
    }

    /// Punches a slot out of its segment (best effort: the record is what counts).
    fn punch(&self, number: u64, range: Range<u64>) {
        if !self.punch.load(Ordering::Relaxed) {
            return;
        }
        let punched = OpenOptions::new()
            .write(true)
            .open(self.path_of(number))
            .and_then(|file| punch_hole(&file, &range));
        match punched {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                self.punch.store(false, Ordering::Relaxed);
                tracing::warn!(
                    "this file system cannot punch holes: the space of deleted chunks is \
                     freed only when every chunk of their segment file is deleted"
                );
            }
            Err(e) => {
                tracing::warn!("could not free the space of a chunk in segment {number}: {e}")
            }
        }
    }

    /// Deletes segment `number` if nothing in it is recorded, pending or appended to.
    fn remove_if_dead(&self, number: u64) {
        if self.forget_if_dead(number)
            && let Err(e) = remove_file_if_present(&self.path_of(number))
        {
            tracing::warn!("could not remove an empty segment file: {e}");
        }
    }

    /// Drops segment `number` from the books if nothing in it is recorded, pending
    /// or appended to; true if it was dropped (its file is then the caller's to remove).
    fn forget_if_dead(&self, number: u64) -> bool {
        let mut state = self.lock();
        match state.segments.get(&number) {
            Some(info) if info.live == 0 && info.pending == 0 && !info.open => {
                state.segments.remove(&number);
                true
            }
            _ => false,
        }
    }

    /// Takes `segment` out of use for appending.
    fn close(&self, segment: OpenSegment) {
        if let Some(info) = self.lock().segments.get_mut(&segment.number) {
            info.open = false;
        }
        self.remove_if_dead(segment.number);
    }
}

/// Reads the blobs of one stream (a file, front to back) through the page cache,
/// keeping the segment last read open, so that the kernel's read-ahead follows the
/// stream: it reads ahead in large requests (3 MiB on average on the AMD EPYC
/// guest), in order, while the blobs already read are checked. Direct reads go in
/// requests of at most 1 MiB (a 1 MiB blob in 4 KiB pages is more pieces than the
/// virtual disk takes in one request), and even in runs of four blobs per call
/// reached only 0.8-0.9 GB/s where read-ahead reached 1.0-1.4.
#[derive(Debug)]
pub struct StreamReader {
    shared: Arc<Shared>,
    open: Option<(u64, File)>,
}

impl StreamReader {
    /// Reads the blob in `slot` into a buffer of its own (see [`Segments::read_blob`]).
    pub fn read(&mut self, slot: &Slot) -> io::Result<(PooledBuf, Range<usize>)> {
        if slot.len as u64 > MAX_BLOB_LEN {
            return Err(too_large(slot));
        }
        let file = match &self.open {
            Some((number, file)) if *number == slot.segment => file,
            _ => {
                let file = self.shared.open_segment(slot.segment, OFlags::empty())?;
                // A larger read-ahead window: the stream reads the file in order.
                let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
                &self.open.insert((slot.segment, file)).1
            }
        };
        let mut buf = self.shared.blob_buffer(0, slot);
        let blob = 0..slot.len as usize;
        let target = buf
            .get_mut(blob.clone())
            .ok_or_else(|| io::Error::other("a read buffer too small for its blob"))?;
        read_fully_at(file, target, slot)?;
        Ok((buf, blob))
    }
}

/// Appends blobs to segments for one writer: an exclusive segment at a time, so
/// that a stream's blobs lie together on disk.
#[derive(Debug)]
pub struct Appender {
    shared: Arc<Shared>,
    current: Option<OpenSegment>,
    /// Segments written since the last [`Appender::sync`].
    unsynced: Vec<(u64, Arc<File>)>,
}

impl Appender {
    /// Writes `blob` into a new slot. The slot is pending until it is settled or
    /// discarded through [`Segments`]; it is durable after [`Appender::sync`].
    pub fn append(&mut self, blob: &[u8]) -> io::Result<Slot> {
        if blob.len() as u64 > MAX_BLOB_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a blob of {} bytes, larger than any chunk", blob.len()),
            ));
        }
        let span = span_of(blob.len() as u64);
        let mut segment = self.segment_for(span)?;
        let offset = segment.end;
        segment.end += span;
        self.shared
            .lock()
            .segments
            .entry(segment.number)
            .or_default()
            .pending += 1;
        let slot = Slot {
            segment: segment.number,
            offset,
            len: blob.len() as u32,
            stored_at: unix_secs_now(),
        };
        let written = self.shared.write_slot(&mut segment, offset, blob);
        if !self.unsynced.iter().any(|(n, _)| *n == segment.number) {
            self.unsynced.push((segment.number, segment.file.clone()));
        }
        self.current = Some(segment);
        match written {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.shared.discard(&[slot]);
                Err(e)
            }
        }
    }

    /// The segment the next slot goes to: the current one while it has room, else
    /// an idle one, else a new one.
    fn segment_for(&mut self, span: u64) -> io::Result<OpenSegment> {
        if let Some(current) = self.current.take() {
            if current.end == 0 || current.end + span <= self.shared.target_bytes {
                return Ok(current);
            }
            self.shared.close(current);
        }
        let idle = self.shared.lock().idle.pop();
        match idle {
            Some(segment) => Ok(segment),
            None => self.shared.create(),
        }
    }

    /// Makes every slot appended so far durable (`fdatasync` of each segment written).
    pub fn sync(&mut self) -> io::Result<()> {
        sync_files(std::mem::take(&mut self.unsynced))
    }

    /// The segments written since the last sync, for a caller that syncs them
    /// itself (a group commit, without holding the appender meanwhile).
    pub fn take_unsynced(&mut self) -> Vec<(u64, Arc<File>)> {
        std::mem::take(&mut self.unsynced)
    }
}

/// `fdatasync`s each of `files` once.
pub fn sync_files(mut files: Vec<(u64, Arc<File>)>) -> io::Result<()> {
    files.sort_by_key(|(n, _)| *n);
    files.dedup_by_key(|(n, _)| *n);
    for (_, file) in files {
        rustix::fs::fdatasync(&*file)?;
    }
    Ok(())
}

impl Drop for Appender {
    fn drop(&mut self) {
        let Some(segment) = self.current.take() else {
            return;
        };
        let mut state = self.shared.lock();
        if segment.end < self.shared.target_bytes && state.idle.len() < IDLE_SEGMENTS {
            state.idle.push(segment);
        } else {
            drop(state);
            self.shared.close(segment);
        }
    }
}

/// The number of a segment file named `name`, if it is one.
fn segment_number(name: &std::ffi::OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let hex = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn punch_hole(file: &File, range: &Range<u64>) -> io::Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    rustix::fs::fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        range.start,
        range.end - range.start,
    )?;
    Ok(())
}

/// The byte ranges of `file` that hold data (not holes).
fn data_extents(file: &File) -> io::Result<Vec<Range<u64>>> {
    let len = file.metadata()?.len();
    let mut extents = Vec::new();
    let mut at = 0;
    while at < len {
        let start = match rustix::fs::seek(file, SeekFrom::Data(at)) {
            Ok(start) => start,
            // No data past `at`.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(end) => end,
            Err(rustix::io::Errno::NXIO) => len,
            Err(e) => return Err(e.into()),
        };
        if end <= start {
            break;
        }
        extents.push(start..end);
        at = end;
    }
    Ok(extents)
}

/// Bytes of data (not holes) in the file at `path`: what its blobs and any
/// unrecorded space take, without the file system's own blocks (an extent tree
/// grown by punched holes takes a block of its own, which `st_blocks` counts).
pub fn data_bytes(path: &Path) -> io::Result<u64> {
    Ok(data_extents(&File::open(path)?)?
        .iter()
        .map(|r| r.end - r.start)
        .sum())
}

/// The parts of `extent` that none of `slots` (sorted by start) covers.
fn uncovered(extent: Range<u64>, slots: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut gaps = Vec::new();
    let mut at = extent.start;
    let first = slots.partition_point(|s| s.end <= extent.start);
    for slot in &slots[first..] {
        if slot.start >= extent.end {
            break;
        }
        if slot.start > at {
            gaps.push(at..slot.start);
        }
        at = at.max(slot.end);
    }
    if at < extent.end {
        gaps.push(at..extent.end);
    }
    gaps
}

/// Reads a slot's blob through the page cache into a buffer of its own behind
/// `header`.
fn read_buffered(
    file: &File,
    slot: &Slot,
    mut header: Vec<u8>,
) -> io::Result<(PooledBuf, Range<usize>)> {
    let at = header.len();
    header.resize(at + slot.len as usize, 0);
    read_fully_at(file, &mut header[at..], slot)?;
    let message = 0..header.len();
    Ok((PooledBuf::unpooled(header), message))
}

/// Reads the `len` bytes of a slot from a file opened with `O_DIRECT` into `buf`
/// behind `header`: the blob's first byte lands on an aligned address, and the
/// whole slot is asked for. Returns where the message starts and ends in `buf`.
fn read_direct_into(
    buf: &mut [u8],
    file: &File,
    slot: &Slot,
    header: &[u8],
) -> io::Result<Range<usize>> {
    let span = slot.span() as usize;
    let len = slot.len as usize;
    let blob_at = header.len() + buf[header.len()..].as_ptr().align_offset(DIRECT_ALIGN);
    let message_at = blob_at - header.len();
    let target = buf
        .get_mut(message_at..blob_at + span)
        .ok_or_else(|| io::Error::other("a message buffer too small for its blob"))?;
    target[..header.len()].copy_from_slice(header);
    let filled = read_at_least(file, &mut target[header.len()..], slot.offset, len)?;
    if filled < len {
        return Err(ended_inside(slot, filled));
    }
    Ok(message_at..blob_at + len)
}

/// Reads into `buf` from `offset` until at least `want` bytes or the end of the
/// file. Full reads return whole blocks until the end of the file, so every
/// offset asked for stays aligned for direct I/O.
fn read_at_least(file: &File, buf: &mut [u8], offset: u64, want: usize) -> io::Result<usize> {
    let mut filled = 0;
    while filled < want {
        let read = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

fn read_fully_at(file: &File, buf: &mut [u8], slot: &Slot) -> io::Result<()> {
    let filled = read_at_least(file, buf, slot.offset, buf.len())?;
    if filled < buf.len() {
        return Err(ended_inside(slot, filled));
    }
    Ok(())
}

fn too_large(slot: &Slot) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "a blob recorded as {} bytes, larger than any chunk",
            slot.len
        ),
    )
}

fn ended_inside(slot: &Slot, filled: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "segment {} ends inside a blob ({} bytes at offset {}, {filled} there)",
            slot.segment, slot.len, slot.offset
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|b| (b * 31 + seed) as u8).collect()
    }

    /// Bytes of data a file holds (holes excluded).
    fn allocated(path: &Path) -> u64 {
        data_bytes(path).unwrap_or(0)
    }

    #[test]
    fn slots_encode_and_decode() {
        let slot = Slot {
            segment: 7,
            offset: 3 * SLOT_ALIGN,
            len: 1 << 20,
            stored_at: 1_700_000_000,
        };
        assert_eq!(Slot::decode(&slot.encode()), slot);
        assert_eq!(slot.span(), (1 << 20));
        assert_eq!(Slot { len: 1, ..slot }.span(), SLOT_ALIGN);
        assert_eq!(Slot { len: 0, ..slot }.span(), SLOT_ALIGN);
        assert_eq!(Slot { len: 4097, ..slot }.span(), 2 * SLOT_ALIGN);
    }

    #[test]
    fn blobs_of_every_alignment_round_trip_in_one_segment() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
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
        let mut appender = segments.appender();
        let mut slots = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            // From a deliberately misaligned slice: the staging copy aligns it.
            let mut padded = vec![0u8; size + 1];
            padded[1..].copy_from_slice(&blob(size, i));
            slots.push(appender.append(&padded[1..]).unwrap());
        }
        appender.sync().unwrap();
        segments.settle(&slots, &[]);
        assert!(slots.iter().all(|s| s.segment == slots[0].segment));
        for (i, (size, slot)) in sizes.into_iter().zip(&slots).enumerate() {
            assert_eq!(slot.offset % SLOT_ALIGN, 0);
            let (buf, range) = segments.read_blob(slot).unwrap();
            assert_eq!(&buf[range], &blob(size, i)[..], "size {size}");
            // As a peer's message: the header, then the blob.
            let message = segments
                .read_message(slot, |len| format!("{len}:").into_bytes())
                .unwrap();
            assert_eq!(
                message,
                [format!("{size}:").as_bytes(), &blob(size, i)].concat()
            );
        }
        // Slots follow one another.
        for pair in slots.windows(2) {
            assert_eq!(pair[0].offset + pair[0].span(), pair[1].offset);
        }
    }

    #[test]
    fn oversized_blobs_are_neither_written_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let mut appender = segments.appender();
        let refused = appender
            .append(&vec![0u8; MAX_BLOB_LEN as usize + 1])
            .unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
        let slot = appender.append(b"x").unwrap();
        let lying = Slot {
            len: MAX_BLOB_LEN as u32 + 1,
            ..slot
        };
        assert_eq!(
            segments.read_blob(&lying).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A slot running past the end of its segment is damage, not a short blob.
        let past = Slot {
            len: 3 * SLOT_ALIGN as u32,
            ..slot
        };
        assert_eq!(
            segments.read_blob(&past).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let missing = Slot {
            segment: 999,
            ..slot
        };
        assert_eq!(
            segments.read_blob(&missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_direct_read_puts_the_blob_at_an_aligned_address_behind_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let data = blob(3 * DIRECT_ALIGN + 5, 0);
        let mut appender = segments.appender();
        appender.append(b"something before").unwrap();
        let slot = appender.append(&data).unwrap();
        // 300: longer than a pooled buffer has room for, so a buffer of its own.
        for header_len in [0, 1, 3, 17, MESSAGE_HEADER_MAX, 300] {
            let message = segments
                .read_message(&slot, |_| vec![7; header_len])
                .unwrap();
            assert!(message[..header_len].iter().all(|b| *b == 7));
            assert_eq!(&message[header_len..], &data[..]);
            if segments.shared.direct.load(Ordering::Relaxed) {
                let blob_at = message[header_len..].as_ptr() as usize;
                assert_eq!(blob_at % DIRECT_ALIGN, 0, "header of {header_len} bytes");
            }
        }
    }

    #[test]
    fn message_buffers_are_reused_and_never_show_what_they_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let big = blob(DEFAULT_CHUNK_SIZE as usize + CHUNK_OVERHEAD, 1);
        // Just over half a pooled buffer: still pooled.
        let small = blob(MESSAGE_LEN / 2, 2);
        let mut appender = segments.appender();
        let big_slot = appender.append(&big).unwrap();
        let small_slot = appender.append(&small).unwrap();
        let direct = segments.shared.direct.load(Ordering::Relaxed);
        let idle = || segments.shared.messages.idle();
        let message = segments.read_message(&big_slot, |_| b"B".to_vec()).unwrap();
        assert_eq!(message.len(), 1 + big.len());
        drop(message);
        if direct {
            assert_eq!(idle(), 1, "the buffer came back");
        }
        // The same buffer again, for a blob far shorter than the last.
        let message = segments
            .read_message(&small_slot, |_| b"S".to_vec())
            .unwrap();
        assert_eq!(message, [b"S".as_slice(), &small].concat());
        if direct {
            assert_eq!(idle(), 0, "it was reused");
        }
        // A clone keeps the buffer on loan until the last one goes.
        let clone = message.clone();
        drop(message);
        assert_eq!(clone, [b"S".as_slice(), &small].concat());
        drop(clone);
        // Never more idle buffers than the bound, however many were out at once.
        let many: Vec<Bytes> = (0..DIRECT_BUFFERS_IDLE + 3)
            .map(|_| segments.read_message(&small_slot, |_| Vec::new()).unwrap())
            .collect();
        drop(many);
        assert!(idle() <= DIRECT_BUFFERS_IDLE);
        // Tiny blobs get buffers of their own.
        let before = idle();
        let tiny = appender.append(b"tiny").unwrap();
        let message = segments.read_message(&tiny, |_| b"T".to_vec()).unwrap();
        assert_eq!(message, b"Ttiny".as_slice());
        assert_eq!(idle(), before, "no pooled buffer taken");
        drop(message);
        assert_eq!(idle(), before, "none given back");
    }

    #[test]
    fn a_full_segment_is_closed_and_the_next_slot_starts_another() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open_with_target(dir.path(), 3 * SLOT_ALIGN).unwrap();
        let mut appender = segments.appender();
        let slots: Vec<Slot> = (0..5)
            .map(|i| appender.append(&blob(100, i)).unwrap())
            .collect();
        appender.sync().unwrap();
        let numbers: Vec<u64> = slots.iter().map(|s| s.segment).collect();
        assert_eq!(numbers, [1, 1, 1, 2, 2]);
        segments.settle(&slots, &[]);
        for (i, slot) in slots.iter().enumerate() {
            let (buf, range) = segments.read_blob(slot).unwrap();
            assert_eq!(&buf[range], &blob(100, i)[..]);
        }
        // A blob larger than the target still gets a segment (of its own).
        let big = appender.append(&blob(5 * SLOT_ALIGN as usize, 9)).unwrap();
        assert_eq!((big.segment, big.offset), (3, 0));
    }

    #[test]
    fn released_slots_free_their_blocks_and_an_empty_closed_segment_goes() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open_with_target(dir.path(), 4 * SLOT_ALIGN).unwrap();
        let mut appender = segments.appender();
        let slots: Vec<Slot> = (0..4)
            .map(|i| appender.append(&blob(SLOT_ALIGN as usize, i)).unwrap())
            .collect();
        appender.sync().unwrap();
        segments.settle(&slots, &[]);
        let path = segments.path_of(1);
        assert_eq!(allocated(&path), 4 * SLOT_ALIGN);
        segments.release(&slots[1..2]);
        assert_eq!(allocated(&path), 3 * SLOT_ALIGN, "the hole is punched");
        let (buf, range) = segments.read_blob(&slots[2]).unwrap();
        assert_eq!(
            &buf[range],
            &blob(SLOT_ALIGN as usize, 2)[..],
            "neighbours intact"
        );
        // Still open (the appender has it): not removed even when empty.
        segments.release(&[slots[0], slots[2], slots[3]]);
        assert!(path.exists());
        // The segment is full, so the next append closes it, and it goes.
        let next = appender.append(b"next").unwrap();
        assert_eq!(next.segment, 2);
        assert!(!path.exists());
    }

    #[test]
    fn discarded_and_duplicate_slots_are_punched_and_idle_segments_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let mut first = segments.appender();
        let kept = first.append(&blob(SLOT_ALIGN as usize, 1)).unwrap();
        let dropped = first.append(&blob(SLOT_ALIGN as usize, 2)).unwrap();
        let duplicate = first.append(&blob(SLOT_ALIGN as usize, 3)).unwrap();
        first.sync().unwrap();
        segments.discard(&[dropped]);
        segments.settle(&[kept], &[duplicate]);
        assert_eq!(allocated(&segments.path_of(1)), SLOT_ALIGN);
        drop(first);
        // The next appender continues the idle segment after its last slot.
        let mut second = segments.appender();
        let next = second.append(b"more").unwrap();
        assert_eq!((next.segment, next.offset), (1, 3 * SLOT_ALIGN));
        // Two appenders at once use two segments.
        let mut third = segments.appender();
        assert_eq!(third.append(b"other").unwrap().segment, 2);
    }

    #[test]
    fn unrecorded_space_is_reclaimed_only_in_closed_segments_without_pending_slots() {
        let dir = tempfile::tempdir().unwrap();
        let slots: Vec<Slot> = {
            let segments = Segments::open(dir.path()).unwrap();
            let mut appender = segments.appender();
            let slots: Vec<Slot> = (0..3)
                .map(|i| appender.append(&blob(SLOT_ALIGN as usize, i)).unwrap())
                .collect();
            appender.sync().unwrap();
            // Open and pending: nothing to sweep.
            assert!(segments.sweepable(None).unwrap().is_empty());
            segments.settle(&[slots[0], slots[2]], &[]);
            assert!(segments.sweepable(None).unwrap().is_empty(), "still open");
            // The middle one is never recorded: the process dies here.
            slots
        };
        let segments = Segments::open(dir.path()).unwrap();
        segments.set_live_counts(&HashMap::from([(1, 2)]));
        assert_eq!(segments.sweepable(None).unwrap(), vec![(1, true)]);
        assert_eq!(
            segments.sweepable(Some(Duration::from_secs(3600))).unwrap(),
            vec![(1, false)],
            "written too recently for a grace of an hour"
        );
        let recorded = [slots[0], slots[2]];
        let gap = Reclaimed {
            regions: 1,
            bytes: SLOT_ALIGN,
        };
        // Measured only: nothing changes.
        assert_eq!(segments.sweep_segment(1, &recorded, false).unwrap(), gap);
        assert_eq!(allocated(&segments.path_of(1)), 3 * SLOT_ALIGN);
        assert_eq!(segments.sweep_segment(1, &recorded, true).unwrap(), gap);
        assert_eq!(allocated(&segments.path_of(1)), 2 * SLOT_ALIGN);
        for i in [0, 2] {
            let (buf, range) = segments.read_blob(&slots[i]).unwrap();
            assert_eq!(&buf[range], &blob(SLOT_ALIGN as usize, i)[..]);
        }
        // Again: nothing left to reclaim.
        assert_eq!(
            segments.sweep_segment(1, &recorded, true).unwrap(),
            Reclaimed::default()
        );
        // Once its last recorded slot goes, the closed segment goes.
        segments.release(&recorded);
        assert!(!segments.path_of(1).exists());
    }

    #[test]
    fn a_segment_with_nothing_recorded_is_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let debris = {
            let segments = Segments::open(dir.path()).unwrap();
            let mut appender = segments.appender();
            appender.append(&blob(10_000, 1)).unwrap();
            appender.sync().unwrap();
            segments.path_of(1)
            // Dropped without a record: what a crash leaves.
        };
        let segments = Segments::open(dir.path()).unwrap();
        assert!(segments.any());
        assert_eq!(segments.sweepable(None).unwrap(), vec![(1, true)]);
        let reclaimed = segments.sweep_segment(1, &[], true).unwrap();
        assert_eq!(reclaimed.regions, 1);
        assert!(reclaimed.bytes >= 10_000);
        assert!(!debris.exists());
        assert!(!segments.any());
        // New segments are numbered after every one found at open.
        let mut first = segments.appender();
        assert_eq!(first.append(b"x").unwrap().segment, 2);
        // A segment file that appears later is found by the next sweep, and
        // numbers go on after it.
        fs::write(segments.path_of(9), b"stray").unwrap();
        let swept = segments.sweepable(None).unwrap();
        assert_eq!(swept, vec![(9, true)], "segment 2 is open");
        assert_eq!(segments.appender().append(b"y").unwrap().segment, 10);
    }

    #[test]
    fn new_segments_never_take_the_number_of_a_recorded_one_whose_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        segments.set_live_counts(&HashMap::from([(41, 3)]));
        assert_eq!(segments.appender().append(b"x").unwrap().segment, 42);
    }

    #[test]
    fn quarantine_keeps_a_copy_of_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::open(dir.path()).unwrap();
        let mut appender = segments.appender();
        let slot = appender.append(b"bad blob").unwrap();
        let id = ChunkId([2; 32]);
        segments.quarantine(&id, &slot).unwrap();
        let copies: Vec<_> = fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(fs::read(&copies[0]).unwrap(), b"bad blob");
        // A slot that cannot be read is not copied, and that is no error.
        let gone = Slot {
            segment: 77,
            ..slot
        };
        segments.quarantine(&id, &gone).unwrap();
    }

    #[test]
    fn gaps_are_what_no_slot_covers() {
        let slots = [4..8, 12..16, 16..20];
        assert_eq!(uncovered(0..24, &slots), vec![0..4, 8..12, 20..24]);
        assert_eq!(uncovered(4..8, &slots), Vec::<Range<u64>>::new());
        assert_eq!(uncovered(6..14, &slots), vec![8..12]);
        assert_eq!(uncovered(0..4, &[]), vec![0..4]);
    }

    #[test]
    fn only_segment_files_are_counted() {
        assert_eq!(segment_number("000000000000000a.seg".as_ref()), Some(10));
        assert_eq!(segment_number("a.seg".as_ref()), None);
        assert_eq!(segment_number("000000000000000a.tmp".as_ref()), None);
        assert_eq!(segment_number("00000000000000zz.seg".as_ref()), None);
    }
}
