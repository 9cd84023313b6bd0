//! Reading a file: verified bytes in order, chunks held here read through one
//! stream reader ahead of the consumer, chunks held elsewhere fetched from a
//! [`ChunkSource`] and checked in full, damaged blobs here repaired from peers
//! as they are met.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{ChunkSource, DEFAULT_CHUNK_SIZE, Inner, Vault};
use crate::budget::{Lease, LeasedBytes};
use crate::buffers::PooledBuf;
use crate::crypto::{CHUNK_OVERHEAD, ChunkCheck, SHARD_MAGIC};
use crate::error::{ChunkProblem, Result, StoreError};
use crate::manifest::Manifest;
use crate::segments::Slot;
use crate::space::Pins;
use crate::version::Version;

/// Chunks verified ahead of the consumer on reads (memory: one buffer each).
const READ_AHEAD: usize = 2;

/// Chunks asked of the disk reader ahead of the consumer when all are held here
/// (memory: one buffer each). Measured with the `local` benchmark on the AMD EPYC
/// guest, 2, 4 and 8 gave cold reads at 0.76-1.08, 0.77-0.78 and 0.84-0.88 of a
/// plain read of one file.
pub(crate) const READ_AHEAD_LOCAL: usize = 8;

/// Fetches of one chunk from peers before a read gives up on blobs that fail
/// their check.
const REMOTE_ATTEMPTS: usize = 3;

/// Chunks in flight when some come from peers (network latency needs more
/// depth), at least; the source says how many fill its paths
/// ([`ChunkSource::read_ahead`]), up to [`READ_AHEAD_MAX`].
const READ_AHEAD_REMOTE: usize = 8;
/// Most chunks one read keeps in flight (each beyond the first only while
/// the memory budget has it free): 64 chunks of the average half a chunk
/// size cover 200 ms at 1 Gbit/s with the default budget.
const READ_AHEAD_MAX: usize = 64;

/// Largest chunk from a peer that is checked (AES-GCM and BLAKE3, ~0.3 ms for
/// 1 MiB) on the task that received it; larger ones go to a blocking thread.
/// Handing a default-size chunk to a blocking thread and back cost more than the
/// check: measured on the development VM, the CPU of a 1 GiB remote get across all
/// four nodes fell from 2.42 to 2.32 s and its time from 1.38 to 1.34 s inline.
const INLINE_CHECK_MAX: usize = DEFAULT_CHUNK_SIZE as usize + CHUNK_OVERHEAD;

/// Read streams that hold a thread of tokio's blocking pool (512 threads) for
/// their [`DiskReader`] at once; more wait for one to end. A stream holds its
/// thread while it waits for the memory budget, and the budget comes back only
/// from streams that read: were the pool full of streams waiting for the
/// budget, the streams holding it could never get a thread. A quarter of the
/// pool, as many as writes take (`write::WRITERS`), leaves half of it to
/// short tasks.
pub(crate) const DISK_READERS: usize = 128;

/// Who pays for the chunks a read holds (see [`crate::budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paying {
    /// The read does, from the vault's budget, waiting when it is spent.
    Budget,
    /// The write that the read feeds (a copy: S3's UploadPartCopy). Such a
    /// read waits for nothing and keeps only a few chunks ahead: were it to
    /// wait for the budget too, copies could each hold chunks of their source
    /// that their own writes wait for buffers to take, and the budget, spent
    /// on those chunks, would never come back.
    TheWriteItFeeds,
}

/// A blob read from disk: its buffer and where in it the blob lies.
type BlobRead = std::io::Result<(PooledBuf, std::ops::Range<usize>)>;

/// Reads the local blobs of one read stream on a thread of its own, in the order
/// they are asked for, through one [`crate::segments::StreamReader`], so that the
/// kernel's read-ahead follows the stream while the blobs already read are checked
/// and sent. Measured with the `local` benchmark on the AMD EPYC guest (cold get
/// of 1 GiB against a plain read of one file): blob files read by two threads
/// with `posix_fadvise` 32 ahead, 0.53-0.55; segments read direct by six threads
/// at once, each a little ahead of or behind the others, 0.42-0.55; segments read
/// in order through read-ahead, 0.76-1.08.
struct DiskReader {
    requests: std::sync::mpsc::Sender<(Slot, oneshot::Sender<BlobRead>)>,
}

impl DiskReader {
    fn start(inner: Arc<Inner>) -> Self {
        let (requests, queue) = std::sync::mpsc::channel::<(Slot, oneshot::Sender<BlobRead>)>();
        // Ends when the stream drops its reader (the sender).
        tokio::task::spawn_blocking(move || {
            let mut reader = inner.files.stream_reader();
            while let Ok((slot, reply)) = queue.recv() {
                // A reply nobody waits for any more is dropped.
                let _ = reply.send(reader.read(&slot));
            }
        });
        Self { requests }
    }

    /// Asks for the blob in `slot`, after every blob asked for before.
    fn read(&self, slot: Slot) -> oneshot::Receiver<BlobRead> {
        let (reply, blob) = oneshot::channel();
        // A reader thread that is gone drops the reply, which the receiver reports.
        let _ = self.requests.send((slot, reply));
        blob
    }
}

/// Verified plaintext of one file, chunk by chunk, in order.
pub struct FileReader {
    manifest: Manifest,
    rx: mpsc::Receiver<Result<Bytes>>,
    /// Told of the error that ends a read (for the node's metrics).
    on_error: Option<ErrorHook>,
}

/// What [`FileReader::on_error`] calls.
type ErrorHook = Box<dyn Fn(&StoreError) + Send + Sync>;

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("name", &self.manifest.name)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// The version being read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Calls `f` with the error that ends the read, if one does.
    pub fn on_error(mut self, f: impl Fn(&StoreError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }
}

impl futures::Stream for FileReader {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let (Poll::Ready(Some(Err(e))), Some(tell)) = (&polled, &self.on_error) {
            tell(e);
        }
        polled
    }
}

impl Vault {
    /// Opens `name` for reading; the returned stream yields verified bytes only.
    pub async fn read_file(&self, name: &str) -> Result<FileReader> {
        self.read_file_with(name, None).await
    }

    /// Like [`Vault::read_file`], taking chunks this node does not hold from `source`.
    /// Those are checked in full (tag and hash) before a byte of them is returned.
    pub async fn read_file_with(
        &self,
        name: &str,
        source: Option<Arc<dyn ChunkSource>>,
    ) -> Result<FileReader> {
        self.read_version_with(name, None, source).await
    }

    /// [`Vault::read_file_with`] of `version` of `name` (current or superseded;
    /// the current one if `None`).
    pub async fn read_version_with(
        &self,
        name: &str,
        version: Option<Version>,
        source: Option<Arc<dyn ChunkSource>>,
    ) -> Result<FileReader> {
        self.read_range_with(name, version, None, source).await
    }

    /// [`Vault::read_version_with`] of the bytes in `range` only (an HTTP
    /// range): only the chunks that hold them are read. A range past the end
    /// is cut at the end.
    pub async fn read_range_with(
        &self,
        name: &str,
        version: Option<Version>,
        range: Option<std::ops::Range<u64>>,
        source: Option<Arc<dyn ChunkSource>>,
    ) -> Result<FileReader> {
        self.read_range_paying(name, version, range, source, Paying::Budget)
            .await
    }

    /// [`Vault::read_range_with`] whose chunks are paid for as `paying` says.
    pub async fn read_range_paying(
        &self,
        name: &str,
        version: Option<Version>,
        range: Option<std::ops::Range<u64>>,
        source: Option<Arc<dyn ChunkSource>>,
        paying: Paying,
    ) -> Result<FileReader> {
        let name_owned = name.to_string();
        let (manifest, local, shards_here, pins, fallback) = self
            .blocking(move |inner| {
                let manifest = match version {
                    None => inner.live_manifest(&name_owned)?,
                    Some(version) => inner.version_manifest(&name_owned, version)?,
                };
                let mut pins = Pins::new(inner.pins.clone());
                for id in manifest.blobs().iter().collect::<HashSet<_>>() {
                    pins.pin(*id);
                }
                let view = inner.catalogue.chunk_view()?;
                // A coded file's chunks are rebuilt from shards (`read_coded`).
                let (local, shards_here) = blob_slots(&view, &manifest)?;
                // A re-encoding's predecessor, while it is kept: the same
                // chunks, kept the other way, that a read falls back on
                // while the new version's copies or shards are placed.
                let fallback = match manifest.reencodes {
                    Some(r) => inner
                        .version_manifest(&manifest.name, r.of)
                        .ok()
                        .filter(|old| old.chunks == manifest.chunks)
                        .map(|old| Fallback::of(old, &view))
                        .transpose()?,
                    None => None,
                };
                for id in fallback.iter().flat_map(|f| f.manifest.blobs().to_vec()) {
                    pins.pin(id);
                }
                Ok((manifest, local, shards_here, pins, fallback.map(Arc::new)))
            })
            .await?;
        let shards_here = Arc::new(shards_here);
        let hedge = Arc::new(Hedge::default());
        let all_local = local.iter().all(Option::is_some);
        // Asked again at every chunk: a source's windows grow as it times
        // its peers' answers.
        let read_ahead = move |source: &Option<Arc<dyn ChunkSource>>| match (paying, all_local) {
            (Paying::TheWriteItFeeds, _) => READ_AHEAD,
            (Paying::Budget, true) => READ_AHEAD_LOCAL,
            (Paying::Budget, false) => source
                .as_ref()
                .map_or(0, |s| s.read_ahead())
                .clamp(READ_AHEAD_REMOTE, READ_AHEAD_MAX),
        };
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let inner = self.inner.clone();
        let task_manifest = Arc::new(manifest.clone());
        let span = ChunkSpan::of(&manifest, range);
        tokio::spawn(async move {
            let _pins = pins;
            let m = task_manifest;
            let needs_disk = local[span.chunks.clone()].iter().any(Option::is_some);
            // Taken before any lease of the budget, so that every stream that
            // holds part of the budget has its thread (see `DISK_READERS`).
            let _slot = match needs_disk {
                true => inner.disk_readers.clone().acquire_owned().await.ok(),
                false => None,
            };
            let disk = needs_disk.then(|| DiskReader::start(inner.clone()));
            let mut in_flight = FuturesOrdered::new();
            let mut next = span.chunks.start;
            let mut offset = span.first_offset;
            let mut index = span.chunks.start;
            loop {
                while in_flight.len() < read_ahead(&source) && next < span.chunks.end {
                    // The chunk needed next is waited for; read-ahead is taken
                    // only while the budget has it free (see `crate::budget`).
                    let need = m.chunk_len(next) + CHUNK_OVERHEAD;
                    let lease = match (paying, in_flight.is_empty()) {
                        (Paying::TheWriteItFeeds, _) => Lease::none(),
                        (Paying::Budget, true) => inner.budget.lease(need).await,
                        (Paying::Budget, false) => match inner.budget.try_lease(need) {
                            Some(lease) => lease,
                            None => break,
                        },
                    };
                    let (inner, m, index) = (inner.clone(), m.clone(), next);
                    let source = source.clone();
                    let local = match (local[index], &disk) {
                        (Some(slot), Some(disk)) => Some((slot, disk.read(slot))),
                        _ => None,
                    };
                    let (shards_here, hedge) = (shards_here.clone(), hedge.clone());
                    let fallback = fallback.clone();
                    in_flight.push_back(async move {
                        let read = match local {
                            Some((slot, blob)) => {
                                inner
                                    .clone()
                                    .read_local_or_repair(source.clone(), m, index, slot, blob)
                                    .await
                            }
                            None if m.coding.is_some() => {
                                let here = shards_here.get(index).cloned().unwrap_or_default();
                                inner
                                    .clone()
                                    .read_coded(source.clone(), m, index, here, &hedge)
                                    .await
                            }
                            None => inner.clone().read_remote(source.clone(), m, index).await,
                        };
                        let read = match (read, fallback) {
                            (Err(e), Some(old)) => inner
                                .read_fallback(source, &old, index, &hedge)
                                .await
                                .map_err(|_| e),
                            (read, _) => read,
                        };
                        (read, lease)
                    });
                    next += 1;
                }
                let Some((item, lease)) = in_flight.next().await else {
                    break;
                };
                let len = m.chunk_len(index) as u64;
                let item = item.map(|bytes| LeasedBytes::wrap(span.trim(bytes, offset), lease));
                offset += len;
                index += 1;
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(FileReader {
            manifest,
            rx,
            on_error: None,
        })
    }
}

/// When a read of shards asks for one more beside those still coming: after
/// four times the usual wait for a shard in this read (a moving average),
/// and never sooner than [`Hedge::FLOOR`]. A holder that stalls then costs
/// a read about that long per chunk it is asked for, instead of the chunk
/// timeout; a busy link, whose shards all come slowly, raises the average
/// and so does not set off extra requests.
#[derive(Debug, Default)]
pub(crate) struct Hedge {
    /// Microseconds; 0 until a shard has come.
    average_us: std::sync::atomic::AtomicU64,
}

impl Hedge {
    const FLOOR: std::time::Duration = std::time::Duration::from_millis(300);
    /// Before any shard came: long enough for a shard over a slow link.
    const FIRST: std::time::Duration = std::time::Duration::from_secs(2);

    fn after(&self) -> std::time::Duration {
        match self.average_us.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Self::FIRST,
            us => (std::time::Duration::from_micros(us) * 4).max(Self::FLOOR),
        }
    }

    fn observe(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let took = took.as_micros().max(1) as u64;
        let old = self.average_us.load(Relaxed);
        let new = if old == 0 { took } else { (old * 7 + took) / 8 };
        self.average_us.store(new, Relaxed);
    }
}

/// Where `manifest`'s blobs lie here, if they do: each whole chunk's (none
/// for a coded file), and each shard of each chunk's (none for a whole one).
type BlobSlots = (Vec<Option<Slot>>, Vec<Vec<Option<Slot>>>);

fn blob_slots(view: &crate::catalogue::ChunkView, manifest: &Manifest) -> Result<BlobSlots> {
    Ok(match &manifest.coding {
        None => (
            manifest
                .chunks
                .iter()
                .map(|id| view.slot(id))
                .collect::<Result<_>>()?,
            Vec::new(),
        ),
        Some(coding) => (
            vec![None; manifest.chunks.len()],
            coding
                .chunks
                .iter()
                .map(|c| c.shards.iter().map(|id| view.slot(id)).collect())
                .collect::<Result<_>>()?,
        ),
    })
}

/// The version a re-encoding keeps anew, with where its blobs lie here.
struct Fallback {
    manifest: Arc<Manifest>,
    /// Its chunks' slots (a whole version) or its shards' (a coded one).
    whole: Vec<Option<Slot>>,
    shards: Vec<Vec<Option<Slot>>>,
}

impl Fallback {
    fn of(manifest: Manifest, view: &crate::catalogue::ChunkView) -> Result<Fallback> {
        let (whole, shards) = blob_slots(view, &manifest)?;
        Ok(Fallback {
            manifest: Arc::new(manifest),
            whole,
            shards,
        })
    }
}

impl Inner {
    /// Chunk `index` as the version a re-encoding keeps anew has it (the
    /// same chunk: equal ids), held here or fetched: what a read of a
    /// re-encoded version uses while its own copies or shards are placed.
    async fn read_fallback(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        old: &Fallback,
        index: usize,
        hedge: &Hedge,
    ) -> Result<Bytes> {
        let m = old.manifest.clone();
        if m.coding.is_some() {
            let here = old.shards.get(index).cloned().unwrap_or_default();
            return self.read_coded(source, m, index, here, hedge).await;
        }
        if let Some(slot) = old.whole.get(index).copied().flatten() {
            let inner = self.clone();
            let local = tokio::task::spawn_blocking(move || {
                inner.load_chunk(&m, index, &slot, ChunkCheck::Tag)
            })
            .await
            .map_err(|e| StoreError::io("reading a chunk", std::io::Error::other(e)))?;
            if let Ok(plain) = local {
                return Ok(plain);
            }
        }
        self.read_remote(source, old.manifest.clone(), index).await
    }
}

impl Vault {
    /// Every shard blob of chunk `index` of coded `manifest`, rebuilt from any
    /// K of them (held here, or fetched from `source`): what the repair
    /// worker sends to a node that is to hold a shard nobody holds. Coding
    /// is deterministic, so the rebuilt shards are the very ones the manifest
    /// names; each is checked against its id all the same.
    pub async fn rebuild_shards(
        &self,
        manifest: Arc<Manifest>,
        index: usize,
        source: Option<Arc<dyn ChunkSource>>,
    ) -> Result<Vec<Vec<u8>>> {
        let Some(coding) = manifest.coding.clone() else {
            return Err(StoreError::Invalid(format!(
                "{:?} is not erasure coded",
                manifest.name
            )));
        };
        let Some(chunk) = coding.chunks.get(index).cloned() else {
            return Err(StoreError::Invalid(format!(
                "{:?} has no chunk {index}",
                manifest.name
            )));
        };
        let ids = chunk.shards.clone();
        let here = self
            .blocking(move |inner| {
                let view = inner.catalogue.chunk_view()?;
                ids.iter()
                    .map(|id| view.slot(id))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        let blob = self
            .inner
            .clone()
            .coded_blob(source, manifest.clone(), index, here, &Hedge::default())
            .await?;
        let shards = crate::erasure::split_framed(coding.redundancy, &blob, SHARD_MAGIC)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        for (j, shard) in shards.iter().enumerate() {
            if self.inner.crypto.shard_id(shard) != chunk.shards[j] {
                return Err(StoreError::Integrity {
                    name: manifest.name.clone(),
                    index,
                    count: manifest.chunks.len(),
                    chunk: chunk.shards[j],
                    problem: ChunkProblem::WrongHash,
                });
            }
        }
        Ok(shards)
    }
}

/// The chunks of a file that hold a byte range, and where the first starts.
struct ChunkSpan {
    chunks: std::ops::Range<usize>,
    first_offset: u64,
    bytes: std::ops::Range<u64>,
}

impl ChunkSpan {
    fn of(manifest: &Manifest, range: Option<std::ops::Range<u64>>) -> Self {
        let n = manifest.chunks.len();
        let Some(range) = range else {
            return Self {
                chunks: 0..n,
                first_offset: 0,
                bytes: 0..manifest.size,
            };
        };
        let end = range.end.min(manifest.size);
        let start = range.start.min(end);
        let (mut first, mut first_offset, mut last) = (n, 0, n);
        let mut offset = 0u64;
        for index in 0..n {
            let chunk_end = offset + manifest.chunk_len(index) as u64;
            if first == n && chunk_end > start {
                (first, first_offset) = (index, offset);
            }
            if chunk_end >= end {
                last = index + 1;
                break;
            }
            offset = chunk_end;
        }
        if start == end {
            (first, last) = (n, n);
        }
        Self {
            chunks: first..last.max(first),
            first_offset,
            bytes: start..end,
        }
    }

    /// The part of the chunk that starts at `offset` inside the range.
    fn trim(&self, chunk: Bytes, offset: u64) -> Bytes {
        let from = self.bytes.start.saturating_sub(offset) as usize;
        let to = (self.bytes.end - offset).min(chunk.len() as u64) as usize;
        chunk.slice(from.min(to)..to)
    }
}

impl Inner {
    pub(super) fn load_chunk(
        &self,
        manifest: &Manifest,
        index: usize,
        slot: &Slot,
        check: ChunkCheck,
    ) -> std::result::Result<Bytes, ChunkProblem> {
        self.open_blob(manifest, index, slot, self.files.read_blob(slot), check)
    }

    /// Opens chunk `index` of `manifest` from its blob as read from `slot`.
    fn open_blob(
        &self,
        manifest: &Manifest,
        index: usize,
        slot: &Slot,
        read: BlobRead,
        check: ChunkCheck,
    ) -> std::result::Result<Bytes, ChunkProblem> {
        let id = &manifest.chunks[index];
        let (mut buf, blob) = read.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ChunkProblem::Missing,
            _ => ChunkProblem::Malformed,
        })?;
        debug_assert_eq!(blob.len(), slot.len as usize);
        let plain = self
            .crypto
            .open_chunk_in_place(id, &mut buf[blob.clone()], check)?;
        if plain.len() != manifest.chunk_len(index) {
            return Err(ChunkProblem::Malformed);
        }
        Ok(buf.into_bytes(blob.start + plain.start..blob.start + plain.end))
    }

    /// Reads a chunk held here. If the local copy turns out damaged and peers can
    /// be asked, the chunk comes from a peer instead (checked in full), the
    /// damaged blob goes to quarantine and the good one takes its place: a bit
    /// flipped on this disk costs a read nothing, and does not wait for the GC.
    async fn read_local_or_repair(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        manifest: Arc<Manifest>,
        index: usize,
        slot: Slot,
        blob: oneshot::Receiver<BlobRead>,
    ) -> Result<Bytes> {
        let blob = blob
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the disk reader stopped")));
        // Checked where it is awaited: the tag check of a default-size chunk costs
        // less than handing it to another thread and back (see INLINE_CHECK_MAX).
        let local = self
            .open_blob(&manifest, index, &slot, blob, ChunkCheck::Tag)
            .map_err(|problem| self.integrity(&manifest, index, problem));
        let problem = match (&local, &source) {
            (Err(StoreError::Integrity { problem, .. }), Some(_)) => *problem,
            _ => return local,
        };
        let id = manifest.chunks[index];
        tracing::warn!(
            "chunk {index} of {:?} is damaged here ({problem}); reading it from a peer and restoring it",
            manifest.name
        );
        // No peer with a good copy: the damage is the answer (and the GC's to handle).
        let Ok((plain, sealed)) = self
            .clone()
            .fetch_checked(source, manifest.clone(), index, true)
            .await
        else {
            return local;
        };
        let inner = self.clone();
        let restored = tokio::task::spawn_blocking(move || {
            inner.quarantine_one(&id)?;
            match sealed {
                Some(sealed) => inner.restore_blob(id, sealed).map(|_| ()),
                None => Ok(()),
            }
        })
        .await;
        if !matches!(restored, Ok(Ok(()))) {
            tracing::warn!("could not restore chunk {id} here; the next GC will");
        }
        Ok(plain)
    }

    /// Rebuilds chunk `index` of coded `manifest` from any K of its shards:
    /// those held here (`here`, by shard index) first, the rest asked of
    /// `source` in its order, K at once. A shard that fails its check (or a
    /// holder that fails) makes the read ask for the next one; a shard that
    /// is slow to come (see [`Hedge`]) has one more asked for beside it, so
    /// a stalled holder costs a short wait, not a timeout.
    async fn read_coded(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        manifest: Arc<Manifest>,
        index: usize,
        here: Vec<Option<Slot>>,
        hedge: &Hedge,
    ) -> Result<Bytes> {
        let mut blob = self
            .clone()
            .coded_blob(source, manifest.clone(), index, here, hedge)
            .await?;
        let id = manifest.chunks[index];
        let plain = self
            .crypto
            .open_chunk_in_place(&id, &mut blob, ChunkCheck::Tag)
            .map_err(|problem| self.integrity(&manifest, index, problem))?;
        if plain.len() != manifest.chunk_len(index) {
            return Err(self.integrity(&manifest, index, ChunkProblem::Malformed));
        }
        Ok(Bytes::from(blob).slice(plain))
    }

    /// The sealed blob of chunk `index` of coded `manifest`, rebuilt from
    /// any K of its shards (see [`Inner::read_coded`]).
    pub(super) async fn coded_blob(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        manifest: Arc<Manifest>,
        index: usize,
        here: Vec<Option<Slot>>,
        hedge: &Hedge,
    ) -> Result<Vec<u8>> {
        let Some(coding) = manifest.coding.as_ref() else {
            return Err(StoreError::Invalid("the file is not erasure coded".into()));
        };
        let redundancy = coding.redundancy;
        let chunk = &coding.chunks[index];
        let need = redundancy.data();
        let shard_blob_len =
            crate::erasure::shard_len(redundancy, chunk.blob_len as usize) + SHARD_MAGIC.len();
        let unavailable = |reason: String| StoreError::Unavailable {
            name: manifest.name.clone(),
            index,
            count: manifest.chunks.len(),
            reason,
        };
        let mut have: Vec<Option<Bytes>> = vec![None; redundancy.total()];
        // Shards held here, read and checked on a blocking thread; a damaged
        // one goes to quarantine (the repair worker makes it again).
        let local: Vec<(usize, Slot)> = here
            .iter()
            .enumerate()
            .filter_map(|(j, slot)| slot.map(|slot| (j, slot)))
            .take(need)
            .collect();
        if !local.is_empty() {
            let (inner, ids) = (self.clone(), chunk.shards.clone());
            let read = tokio::task::spawn_blocking(move || {
                local
                    .into_iter()
                    .filter_map(|(j, slot)| {
                        let id = ids[j];
                        let good = inner.files.read_blob(&slot).ok().and_then(|(buf, range)| {
                            let blob = &buf[range.clone()];
                            (blob.len() == shard_blob_len && inner.crypto.shard_id(blob) == id)
                                .then(|| buf.into_bytes(range))
                        });
                        if good.is_none() {
                            tracing::warn!(
                                "shard {j} of chunk {index} is damaged here; reading another"
                            );
                            let _ = inner.quarantine_one(&id);
                        }
                        good.map(|blob| (j, blob))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| StoreError::io("reading shards", std::io::Error::other(e)))?;
            for (j, blob) in read {
                have[j] = Some(blob);
            }
        }
        let mut got = have.iter().filter(|s| s.is_some()).count();
        if got < need {
            let Some(source) = source else {
                return Err(unavailable(format!(
                    "{got} of the {need} shards needed are held on this node and no peer can be                      asked"
                )));
            };
            let order = source
                .shard_order(manifest.clone())
                .await
                .map_err(|e| unavailable(e.0))?;
            let mut candidates = order
                .into_iter()
                .filter(|j| *j < have.len() && have[*j].is_none())
                .collect::<std::collections::VecDeque<usize>>();
            let mut asking = FuturesUnordered::new();
            let ask = |j: usize| {
                let (source, m) = (source.clone(), manifest.clone());
                async move {
                    let started = std::time::Instant::now();
                    (j, source.fetch_shard(m, index, j).await, started.elapsed())
                }
            };
            let mut reasons = Vec::new();
            while asking.len() < need - got {
                let Some(j) = candidates.pop_front() else {
                    break;
                };
                asking.push(ask(j));
            }
            while got < need {
                if asking.is_empty() {
                    let mut reason = format!(
                        "only {got} of the {need} shards needed to rebuild it could be had"
                    );
                    if !reasons.is_empty() {
                        reason.push_str(&format!(" ({})", reasons.join("; ")));
                    }
                    return Err(unavailable(reason));
                }
                let next = tokio::select! {
                    done = asking.next() => done,
                    _ = tokio::time::sleep(hedge.after()), if !candidates.is_empty() => None,
                };
                let Some((j, fetched, took)) = next else {
                    // Slow: one more shard beside those still coming.
                    if let Some(j) = candidates.pop_front() {
                        asking.push(ask(j));
                    }
                    continue;
                };
                // A shard that came but fails its check is its sender's fault.
                let bad = |what: &str| {
                    source.rejected_shard(&manifest, index, j);
                    Some(what.to_string())
                };
                let problem = match fetched {
                    Ok(blob) if blob.len() != shard_blob_len => bad("had the wrong length"),
                    Ok(blob) if self.crypto.shard_id(&blob) != chunk.shards[j] => {
                        bad("did not hash to its id")
                    }
                    Ok(blob) => {
                        hedge.observe(took);
                        have[j] = Some(blob.freeze());
                        got += 1;
                        None
                    }
                    Err(e) => Some(e.0),
                };
                if let Some(problem) = problem {
                    reasons.push(format!("shard {j}: {problem}"));
                    while asking.len() < need - got {
                        let Some(j) = candidates.pop_front() else {
                            break;
                        };
                        asking.push(ask(j));
                    }
                }
            }
        }
        let shards: Vec<Option<&[u8]>> = have
            .iter()
            .map(|s| s.as_ref().map(|b| &b[SHARD_MAGIC.len()..]))
            .collect();
        crate::erasure::join(redundancy, chunk.blob_len as usize, &shards)
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Fetches a chunk this node does not hold and checks it in full. A blob that
    /// fails its check is refused and fetched again (from another peer) a few times,
    /// so one bad peer cannot fail a read that others can serve.
    async fn read_remote(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        manifest: Arc<Manifest>,
        index: usize,
    ) -> Result<Bytes> {
        Ok(self.fetch_checked(source, manifest, index, false).await?.0)
    }

    /// [`Inner::read_remote`], also returning the sealed blob when `keep_sealed`
    /// (to put it back on disk).
    async fn fetch_checked(
        self: Arc<Self>,
        source: Option<Arc<dyn ChunkSource>>,
        manifest: Arc<Manifest>,
        index: usize,
        keep_sealed: bool,
    ) -> Result<(Bytes, Option<BytesMut>)> {
        let unavailable = |reason: String| StoreError::Unavailable {
            name: manifest.name.clone(),
            index,
            count: manifest.chunks.len(),
            reason,
        };
        let Some(source) = source else {
            return Err(unavailable("it is not held on this node".into()));
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut blob = source
                .fetch(manifest.clone(), index)
                .await
                .map_err(|e| unavailable(e.0))?;
            let blob_len = blob.len();
            let sealed = keep_sealed.then(|| BytesMut::from(&blob[..]));
            let (inner, m) = (self.clone(), manifest.clone());
            // Opened where it arrived: the plaintext shares the message's memory.
            let check = move || {
                inner
                    .crypto
                    .open_chunk_in_place(&m.chunks[index], &mut blob, ChunkCheck::TagAndHash)
                    .and_then(|range| {
                        if range.len() == m.chunk_len(index) {
                            Ok(blob.freeze().slice(range))
                        } else {
                            Err(ChunkProblem::Malformed)
                        }
                    })
            };
            let checked = if blob_len <= INLINE_CHECK_MAX {
                check()
            } else {
                tokio::task::spawn_blocking(check)
                    .await
                    .map_err(|e| StoreError::io("checking a chunk", std::io::Error::other(e)))?
            };
            match checked {
                Ok(plain) => return Ok((plain, sealed)),
                Err(problem) => {
                    source.rejected(&manifest, index, &problem);
                    if attempts >= REMOTE_ATTEMPTS {
                        return Err(StoreError::Integrity {
                            name: manifest.name.clone(),
                            index,
                            count: manifest.chunks.len(),
                            chunk: manifest.chunks[index],
                            problem,
                        });
                    }
                }
            }
        }
    }
}
