//! The vault: streaming, durable, encrypted file storage on one node.
//!
//! [`Vault`] ties together the segment files, the metadata database, the clock,
//! quota accounting and pins. Its operations are async and never hold a whole file
//! in memory.
//!
//! **Write** ([`Vault::write_file`]) is a three-stage pipeline joined by bounded
//! channels, so a slow disk slows the reader instead of filling memory:
//!
//! ```text
//! reader task ──plain──▶ sealer thread ──blobs──▶ writer thread
//! (fills 1 MiB buffers)  (hash, chunk id,        (appends to a segment
//!                         dedup, quota, encrypt)  of its own, O_DIRECT)
//! ```
//!
//! When the input ends, the segment is made durable (one `fdatasync`) and only then
//! is the manifest committed together with the blobs' slots, in one transaction. A
//! crash before that commit leaves unrecorded space in a segment that the start-up
//! sweep gives back; a crash after it leaves a complete file. Nobody ever sees a
//! half-written version.
//!
//! **Read** ([`Vault::read_file`]) checks each chunk's AEAD tag on blocking
//! threads, several chunks ahead, and yields only verified bytes in order.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

mod exchange;
mod gc;
mod migrate;
mod read;
mod rekey;
mod versions;
mod write;

pub use read::{FileReader, Paying};
pub use rekey::{EpochCensus, ResealBatch};
pub use write::{FinishMeta, Layout, WriteAs, WriteOutcome};

pub(crate) use gc::is_expired_tombstone;
pub use gc::{DEFAULT_TOMBSTONE_RETENTION, GcReport};

pub use exchange::{ChunkSource, FetchError, Held, RemoteEntry};

use crate::budget::{Lease, MemoryBudget};
use crate::buffers::BufferPool;
use crate::catalogue::Catalogue;
use crate::crypto::{CHUNK_OVERHEAD, ChunkCheck, Crypto};
use crate::error::{ChunkProblem, Result, StoreError};
use crate::group::GroupCommit;
use crate::ids::{ChunkId, OriginId};
use crate::index::CatalogueIndex;
use crate::keys::NetworkKey;
use crate::manifest::{CatalogueEntry, MAX_CHUNK_SIZE, Manifest, Tombstone};
use crate::segments::{Appender, Reclaimed, Segments, Slot};
use crate::space::{PinSet, Space, Usage};
use crate::version::{HybridClock, Version};

/// Receives each new sealed chunk of a write.
pub type BlobTap = mpsc::Sender<TappedBlob>;

/// A new chunk of a write, as it was appended, with the lease that pays for
/// its buffer (see [`crate::budget`]): whoever takes it on (to copy it to
/// peers) keeps the lease for as long as it keeps a copy of the bytes.
#[derive(Debug)]
pub struct TappedBlob {
    pub id: ChunkId,
    pub blob: Bytes,
    pub lease: Lease,
    /// Which shard of its chunk the blob is, in a coded write (see
    /// [`Layout::Coded`]): each goes to its own holder.
    pub shard: Option<u8>,
}

/// Default plaintext bytes per chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;

/// Chunk buffers kept for reuse when idle (about 1 MiB each).
const IDLE_BUFFERS: usize = 8;

/// How to open a vault.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub data_dir: PathBuf,
    pub key: NetworkKey,
    /// Tie-breaker for versions written here.
    pub origin: OriginId,
    /// Recorded as the author of versions written here (the node's peer id).
    pub author: String,
    pub chunk_size: u32,
    /// Cut chunks by content (FastCDC) rather than at fixed offsets, so that a
    /// new version of a file shares the chunks of what did not change.
    pub content_defined_chunks: bool,
    /// Quota in bytes.
    pub capacity_bytes: u64,
    /// How long superseded versions are kept (see [`crate::history`]).
    pub retention: crate::history::Retention,
    /// What the buffers of transfers are paid from (see [`crate::budget`]);
    /// the node shares it with everything else that moves chunks.
    pub budget: Arc<MemoryBudget>,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    pub name: String,
    /// Bytes freed on this node (blobs no other file or kept version shares).
    pub freed_bytes: u64,
    /// The deleted version is kept (see [`crate::history`]): `undelete` can
    /// bring it back.
    pub recoverable: bool,
}

/// The state of one file's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub name: String,
    pub chunks: usize,
    /// False when this node holds no chunk of the file (other nodes do): then
    /// nothing was checked and nothing counts as damaged.
    pub held: bool,
    /// Every chunk that failed.
    pub damaged: Vec<Damage>,
}

/// One chunk that failed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The chunk's position in the file.
    pub index: usize,
    pub chunk: ChunkId,
    pub problem: ChunkProblem,
    /// Where its blob lies, if one is recorded here (not for a missing chunk).
    pub location: Option<BlobLocation>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// What a clean-up pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Recorded blobs that no live file referenced.
    pub unreferenced_removed: usize,
    /// Runs of segment space holding blobs that were never recorded (left by
    /// interrupted writes); a segment file with nothing recorded counts as one.
    pub unrecorded_removed: usize,
    pub bytes_freed: u64,
}

/// An encrypted, content-addressed file store on local disk. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Vault {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    files: Segments,
    /// Appends the blobs that peers send, one at a time (see [`Inner::put_blob`]).
    blob_appender: Mutex<Appender>,
    catalogue: Catalogue,
    crypto: Arc<Crypto>,
    clock: HybridClock,
    space: Arc<Space>,
    pins: Arc<PinSet>,
    origin: OriginId,
    author: String,
    chunk_size: u32,
    content_defined_chunks: bool,
    /// Chunk buffers, reused across operations (see [`crate::buffers`]).
    buffers: Arc<BufferPool>,
    /// What transfers pay their buffers from (see [`crate::budget`]).
    budget: Arc<MemoryBudget>,
    /// Read streams that may hold a disk-reading thread at once (see
    /// [`read::DISK_READERS`]).
    disk_readers: Arc<tokio::sync::Semaphore>,
    /// Writes whose stages may hold threads at once (see [`write::WRITERS`]).
    writers: tokio::sync::Semaphore,
    /// Versions and digests of the catalogue, for sync (see [`crate::index`]).
    index: Mutex<CatalogueIndex>,
    /// Blobs from peers, made durable and recorded in batches (see [`crate::group`]).
    blob_commits: GroupCommit<(ChunkId, Slot)>,
    /// How long tombstones are kept, in ms (see [`gc`]).
    tombstone_retention_ms: std::sync::atomic::AtomicU64,
    /// How long superseded versions are kept (see [`crate::history`]).
    retention: Mutex<crate::history::Retention>,
    /// Held for the vault's lifetime: one process per data dir.
    /// The metadata database was created at this start.
    catalogue_created: bool,
    /// Damaged chunks found and what became of them (see [`DamageCounts`]).
    damage: DamageCounters,
    _lock: DataDirLock,
}

/// Damaged chunks this vault found since it opened, by any path (a read that
/// restored one from a peer, the GC, `restore_blob`), and what became of them.
/// The node's metrics are set from these, so no path can forget to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DamageCounts {
    /// Chunks found damaged or missing (each is quarantined when found).
    pub corrupted: u64,
    /// Damaged blobs copied to `quarantine/` and forgotten.
    pub quarantined: u64,
    /// Damaged chunks replaced by a good copy from a peer.
    pub restored: u64,
}

#[derive(Debug, Default)]
struct DamageCounters {
    corrupted: std::sync::atomic::AtomicU64,
    quarantined: std::sync::atomic::AtomicU64,
    restored: std::sync::atomic::AtomicU64,
}

impl DamageCounters {
    fn read(&self) -> DamageCounts {
        use std::sync::atomic::Ordering::Relaxed;
        DamageCounts {
            corrupted: self.corrupted.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            restored: self.restored.load(Relaxed),
        }
    }

    fn restored(&self) {
        self.restored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Bytes a file of `size` will occupy once sealed.
pub fn stored_size_of(size: u64, chunk_size: u32) -> u64 {
    size + Manifest::chunk_count(size, chunk_size) * CHUNK_OVERHEAD as u64
}

/// Exclusive use of a data dir by this process, for as long as it is held.
///
/// Taken before anything in the data dir is read or written, so that two processes
/// never race on its files; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the data dir (owner-only permissions) if needed and locks it.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StoreError::io(
                format!(
                    "the data dir {} is not a directory; choose another --data-dir",
                    data_dir.display()
                ),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        crate::segments::private_dir(data_dir).map_err(|e| {
            StoreError::io(format!("creating the data dir {}", data_dir.display()), e)
        })?;
        let path = data_dir.join("LOCK");
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(crate::segments::PRIVATE_FILE)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                data_dir: data_dir.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(e)) => {
                Err(StoreError::io(format!("locking {}", path.display()), e))
            }
        }
    }
}

impl Vault {
    /// Opens (creating if needed) the vault in `config.data_dir`. Fails if another
    /// process has it open or if it was created with another network key.
    pub async fn open(config: VaultConfig) -> Result<Vault> {
        tokio::task::spawn_blocking(move || {
            let lock = DataDirLock::acquire(&config.data_dir)?;
            Self::open_blocking(config, lock)
        })
        .await
        .map_err(|e| StoreError::io("opening the vault", std::io::Error::other(e)))?
    }

    /// Like [`Vault::open`], for a caller that already holds the data dir's lock.
    pub async fn open_locked(config: VaultConfig, lock: DataDirLock) -> Result<Vault> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config, lock))
            .await
            .map_err(|e| StoreError::io("opening the vault", std::io::Error::other(e)))?
    }

    fn open_blocking(config: VaultConfig, lock: DataDirLock) -> Result<Vault> {
        let data_dir = config.data_dir;
        let chunk_size = config.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        let files = Segments::open(&data_dir)
            .map_err(|e| StoreError::io(format!("preparing {}", data_dir.display()), e))?;
        let crypto = Arc::new(Crypto::new(&config.key.store_keys()));
        let meta = data_dir.join("meta.redb");
        // A damaged database is not something to guess around: say what to do.
        let damaged = |e: StoreError| match e {
            StoreError::Database(why) => StoreError::Database(format!(
                "{} cannot be read ({why}). If the file is damaged, move it aside \
                 (mv {} {}.damaged) and start again: the node then re-syncs the catalogue \
                 from its peers, and the repair worker restores the copies it held",
                meta.display(),
                meta.display(),
                meta.display()
            )),
            other => other,
        };
        let (catalogue, mut state) =
            Catalogue::open(&meta, crypto.clone(), config.key.fingerprint(), &data_dir)
                .map_err(damaged)?;
        files.set_live_counts(&catalogue.live_counts().map_err(damaged)?);
        if migrate::blob_files_into_segments(&data_dir, &catalogue, &files, state.created)? {
            state.used_bytes = catalogue.used_bytes()?;
        }
        let mut index = CatalogueIndex::default();
        catalogue
            .for_each_entry(|id, entry| index.set_entry(id, &entry))
            .map_err(damaged)?;
        catalogue
            .try_for_each_superseded(|id, entry| {
                index.add_superseded(id, entry.version());
                Ok(())
            })
            .map_err(damaged)?;
        Ok(Vault {
            inner: Arc::new(Inner {
                data_dir,
                blob_appender: Mutex::new(files.appender()),
                files,
                catalogue,
                crypto,
                clock: HybridClock::new(state.clock),
                space: Arc::new(Space::new(config.capacity_bytes, state.used_bytes)),
                pins: Arc::new(PinSet::default()),
                origin: config.origin,
                author: config.author,
                chunk_size,
                content_defined_chunks: config.content_defined_chunks,
                buffers: BufferPool::new(CHUNK_OVERHEAD + chunk_size as usize, IDLE_BUFFERS),
                budget: config.budget,
                disk_readers: Arc::new(tokio::sync::Semaphore::new(read::DISK_READERS)),
                writers: tokio::sync::Semaphore::new(write::WRITERS),
                index: Mutex::new(index),
                blob_commits: GroupCommit::default(),
                tombstone_retention_ms: std::sync::atomic::AtomicU64::new(
                    gc::DEFAULT_TOMBSTONE_RETENTION.as_millis() as u64,
                ),
                retention: Mutex::new(config.retention),
                catalogue_created: state.created,
                damage: DamageCounters::default(),
                _lock: lock,
            }),
        })
    }

    /// Waits, at most `within`, until nothing but this handle uses the vault: no
    /// other clone, no storage work on a blocking thread, no read pipeline. True
    /// if that happened. Once every handle is then dropped, the data dir is free.
    ///
    /// A node calls this when it stops: work cancelled mid-way (a read whose
    /// consumer went, a chunk a peer was sent) finishes its last blocking step on
    /// its own, holding the vault, and a node restarted at once on the same data
    /// dir found it still locked.
    pub async fn wait_released(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while Arc::strong_count(&self.inner) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }

    /// Runs `f` on a blocking thread with access to the vault's internals.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::io("a storage task failed", std::io::Error::other(e)))?
    }

    /// The data dir this vault lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Plaintext bytes per chunk for new writes.
    pub fn chunk_size(&self) -> u32 {
        self.inner.chunk_size
    }

    /// Makes `keys` the key epochs this vault opens, the latest of them the one
    /// it seals new chunks and records in (see [`crate::crypto::Crypto`]).
    pub fn set_epochs(&self, keys: &[crate::keys::EpochKey]) {
        self.inner.crypto.set_epochs(keys);
    }

    /// The number of the key epoch new data is sealed in.
    pub fn current_epoch(&self) -> u32 {
        self.inner.crypto.current_epoch()
    }

    /// The budget this vault's transfers pay their buffers from.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.inner.budget
    }

    /// Pays for one sealed chunk of this vault from its budget (waiting while
    /// the budget is spent): for a transfer that is about to hold one.
    pub async fn lease_chunk(&self) -> Lease {
        self.inner.budget.lease(self.inner.blob_buffer_len()).await
    }

    /// Current quota accounting.
    pub fn usage(&self) -> Usage {
        self.inner.space.usage()
    }

    /// Changes the quota (takes effect for the next reservation).
    pub fn set_capacity(&self, bytes: u64) {
        self.inner.space.set_limit(bytes);
    }

    /// Fails early if a file of `size` plaintext bytes cannot fit.
    pub fn check_fits(&self, size: u64) -> Result<()> {
        self.inner
            .space
            .check_fits(stored_size_of(size, self.inner.chunk_size))
    }

    /// The live manifest of `name`.
    pub async fn stat(&self, name: &str) -> Result<Manifest> {
        let name = name.to_string();
        self.blocking(move |inner| inner.live_manifest(&name)).await
    }

    /// Live files, sorted by name.
    pub async fn list(&self) -> Result<Vec<Manifest>> {
        self.blocking(|inner| inner.catalogue.files()).await
    }

    /// Checks every chunk of `name`.
    pub async fn verify_file(&self, name: &str) -> Result<VerifyReport> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let manifest = inner.live_manifest(&name)?;
            Ok(inner.verify_manifest(&manifest))
        })
        .await
    }

    /// Checks every chunk of every live file.
    pub async fn verify_all(&self) -> Result<Vec<VerifyReport>> {
        self.blocking(|inner| {
            Ok(inner
                .catalogue
                .files()?
                .iter()
                .map(|m| inner.verify_manifest(m))
                .collect())
        })
        .await
    }

    /// Deletes `name`: records a tombstone and frees blobs no other file or
    /// kept version uses. With `purge`, every version of the name goes too, here
    /// and on every node the tombstone reaches (see [`crate::history`]).
    pub async fn delete(&self, name: &str, purge: bool) -> Result<DeleteOutcome> {
        Ok(self.delete_versioned(name, purge).await?.0)
    }

    /// [`Vault::delete`], with the tombstone's version (which a concurrent
    /// write of the name may already have superseded).
    pub async fn delete_versioned(
        &self,
        name: &str,
        purge: bool,
    ) -> Result<(DeleteOutcome, Version)> {
        let name = name.to_string();
        self.blocking(move |inner| {
            // A deleted name may still be purged, while versions of it are kept.
            let purgeable = purge
                && inner
                    .catalogue
                    .versions(&name)?
                    .iter()
                    .any(|e| !matches!(e, CatalogueEntry::Deleted(t) if t.purge));
            if !purgeable {
                inner.live_manifest(&name)?;
            }
            let version = Version {
                clock: inner.clock.tick(),
                origin: inner.origin,
            };
            let tombstone = CatalogueEntry::Deleted(Tombstone {
                name: name.clone(),
                version,
                author: inner.author.clone(),
                purge,
            });
            let outcome = inner.apply_entry(&tombstone, &[])?;
            let recoverable = outcome
                .previous
                .as_ref()
                .is_some_and(|p| !outcome.expired.contains(&p.version()));
            let (_, freed_bytes) = inner.forget(&outcome.unreferenced)?;
            let outcome = DeleteOutcome {
                name,
                freed_bytes,
                recoverable,
            };
            Ok((outcome, version))
        })
        .await
    }

    /// Removes blobs no live file references and blob files that were never recorded.
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.blocking(|inner| inner.sweep()).await
    }

    /// True if the metadata database was created at this start (a new vault, or
    /// one whose database was moved aside to be rebuilt from peers).
    pub fn catalogue_created(&self) -> bool {
        self.inner.catalogue_created
    }

    /// True if segment files exist that may hold blobs (for a new catalogue, blobs
    /// of files it has yet to learn of).
    pub fn has_segments(&self) -> bool {
        self.inner.files.any()
    }

    /// Where the sealed blob of chunk `id` lies on this node's disk, if it is held
    /// here: for inspection, and for tests that damage it on purpose.
    pub async fn blob_location(&self, id: ChunkId) -> Result<Option<BlobLocation>> {
        self.blocking(move |inner| {
            Ok(inner
                .catalogue
                .slot(&id)?
                .map(|slot| inner.location_of(&slot)))
        })
        .await
    }

    /// Where every blob held here lies, by chunk id.
    pub async fn blob_locations(&self) -> Result<Vec<(ChunkId, BlobLocation)>> {
        self.blocking(|inner| {
            Ok(inner
                .catalogue
                .chunk_records()?
                .iter()
                .map(|(id, slot)| (*id, inner.location_of(slot)))
                .collect())
        })
        .await
    }
}

/// Where a blob lies: `len` bytes at `offset` in the segment file at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u32,
}

impl Inner {
    /// The bytes one chunk buffer of this vault holds: what a transfer pays
    /// for each chunk it keeps in memory.
    fn blob_buffer_len(&self) -> usize {
        self.chunk_size as usize + CHUNK_OVERHEAD
    }

    fn location_of(&self, slot: &Slot) -> BlobLocation {
        BlobLocation {
            path: self.files.path_of(slot.segment),
            offset: slot.offset,
            len: slot.len,
        }
    }

    /// Commits `entry` (current if newer than what is held, else history) with
    /// newly durable blobs, and keeps the usage count and the sync index in step.
    /// Every local catalogue change goes here.
    fn apply_entry(
        &self,
        entry: &CatalogueEntry,
        new_chunks: &[(ChunkId, Slot)],
    ) -> Result<crate::catalogue::ApplyOutcome> {
        self.clock.observe(entry.version().clock);
        let retention = self.retention();
        let outcome = self
            .catalogue
            .apply(entry, new_chunks, self.clock.last(), &retention)?;
        self.space.add_used(outcome.recorded_bytes);
        self.index_outcome(
            &mut self.index.lock().unwrap_or_else(|p| p.into_inner()),
            entry,
            &outcome,
        );
        Ok(outcome)
    }

    /// Brings the sync index in step with what applying `entry` did.
    fn index_outcome(
        &self,
        index: &mut CatalogueIndex,
        entry: &CatalogueEntry,
        outcome: &crate::catalogue::ApplyOutcome,
    ) {
        let id = self.crypto.name_id(entry.name());
        if outcome.current {
            if let Some(previous) = &outcome.previous {
                index.add_superseded(id, previous.version());
            }
            index.set_entry(id, entry);
        } else if outcome.applied {
            index.add_superseded(id, entry.version());
        }
        for version in &outcome.expired {
            index.remove_superseded(&id, version);
        }
    }

    /// How long superseded versions are kept now.
    fn retention(&self) -> crate::history::Retention {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_manifest(&self, name: &str) -> Result<Manifest> {
        match self.catalogue.entry(name)? {
            Some(CatalogueEntry::File(m)) => Ok(m),
            _ => Err(StoreError::NotFound {
                name: name.to_string(),
            }),
        }
    }

    /// Copies one damaged blob to quarantine, forgets its record and frees its
    /// slot; counted as found damaged and quarantined.
    fn quarantine_one(&self, id: &ChunkId) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        self.damage.corrupted.fetch_add(1, Relaxed);
        if let Some(slot) = self.catalogue.slot(id)? {
            self.files
                .quarantine(id, &slot)
                .map_err(|e| StoreError::io(format!("quarantining chunk {id}"), e))?;
        }
        self.forget_slots(&[*id])?;
        self.damage.quarantined.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Forgets the records of `ids` (whoever references them) and frees their
    /// slots. Returns the bytes freed.
    fn forget_slots(&self, ids: &[ChunkId]) -> Result<u64> {
        let slots = self.catalogue.forget_chunks(ids)?;
        self.files.release(&slots);
        let freed = slots.iter().map(|s| s.len as u64).sum();
        self.space.sub_used(freed);
        Ok(freed)
    }

    fn integrity(&self, manifest: &Manifest, index: usize, problem: ChunkProblem) -> StoreError {
        StoreError::Integrity {
            name: manifest.name.clone(),
            index,
            count: manifest.chunks.len(),
            chunk: manifest.chunks[index],
            problem,
        }
    }

    /// [`Inner::verify_manifest`] of a coded file: every shard held here is
    /// checked, and a shard index held for some chunks but not others is
    /// reported missing where it lacks (a copy that broke off).
    fn verify_coded(&self, manifest: &Manifest, coding: &crate::Coding) -> VerifyReport {
        let view = self.catalogue.chunk_view().ok();
        let slots: Vec<Vec<Option<Slot>>> = coding
            .chunks
            .iter()
            .map(|c| {
                c.shards
                    .iter()
                    .map(|id| view.as_ref().and_then(|v| v.slot(id).ok().flatten()))
                    .collect()
            })
            .collect();
        let mut present = crate::ShardSet::EMPTY;
        for chunk in &slots {
            for (j, slot) in chunk.iter().enumerate() {
                if slot.is_some() {
                    present.insert(j);
                }
            }
        }
        let held = coding.chunks.is_empty() || !present.is_empty();
        let mut damaged = Vec::new();
        for (index, chunk) in slots.iter().enumerate() {
            for j in present.iter() {
                let id = coding.chunks[index].shards[j];
                let problem = match &chunk[j] {
                    None => Some(ChunkProblem::Missing),
                    Some(slot) => match self.files.read_blob(slot) {
                        Ok((mut buf, blob)) => self
                            .crypto
                            .open_chunk_in_place(&id, &mut buf[blob], ChunkCheck::TagAndHash)
                            .err(),
                        Err(_) => Some(ChunkProblem::Missing),
                    },
                };
                if let Some(problem) = problem {
                    damaged.push(Damage {
                        index,
                        chunk: id,
                        problem,
                        location: chunk[j].map(|slot| self.location_of(&slot)),
                    });
                }
            }
        }
        VerifyReport {
            name: manifest.name.clone(),
            chunks: manifest.chunks.len(),
            held,
            damaged,
        }
    }

    fn verify_manifest(&self, manifest: &Manifest) -> VerifyReport {
        if let Some(coding) = &manifest.coding {
            return self.verify_coded(manifest, coding);
        }
        // In a vault of several nodes most files live elsewhere: a file with no
        // chunk recorded here is not held here, which is not damage. (A file whose
        // every chunk was quarantined is reported by the GC and by `/health`.)
        let slots: Vec<Option<Slot>> = match self.catalogue.chunk_view() {
            Ok(view) => manifest
                .chunks
                .iter()
                .map(|id| view.slot(id).ok().flatten())
                .collect(),
            Err(_) => vec![None; manifest.chunks.len()],
        };
        let held = manifest.chunks.is_empty() || slots.iter().any(Option::is_some);
        if !held {
            return VerifyReport {
                name: manifest.name.clone(),
                chunks: manifest.chunks.len(),
                held,
                damaged: Vec::new(),
            };
        }
        let damaged = slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let checked = match slot {
                    Some(slot) => self.load_chunk(manifest, index, slot, ChunkCheck::TagAndHash),
                    None => Err(ChunkProblem::Missing),
                };
                checked.err().map(|problem| Damage {
                    index,
                    chunk: manifest.chunks[index],
                    problem,
                    location: slot.map(|slot| self.location_of(&slot)),
                })
            })
            .collect();
        VerifyReport {
            name: manifest.name.clone(),
            chunks: manifest.chunks.len(),
            held,
            damaged,
        }
    }

    /// Forgets unreferenced, unpinned blobs among `candidates` and frees their
    /// slots. Returns how many blobs went and the bytes freed.
    fn forget(&self, candidates: &[ChunkId]) -> Result<(usize, u64)> {
        if candidates.is_empty() {
            return Ok((0, 0));
        }
        let pins = self.pins.lock();
        let forgotten = self
            .catalogue
            .forget_unreferenced(candidates, |id| pins.is_pinned(id))?;
        let slots: Vec<Slot> = forgotten.iter().map(|(_, slot)| *slot).collect();
        self.files.release(&slots);
        drop(pins);
        let freed = slots.iter().map(|s| s.len as u64).sum();
        self.space.sub_used(freed);
        Ok((forgotten.len(), freed))
    }

    fn sweep(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let unreferenced: Vec<ChunkId> = self
            .catalogue
            .unreferenced_chunks()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let (count, bytes) = self.forget(&unreferenced)?;
        report.unreferenced_removed = count;
        report.bytes_freed = bytes;
        let (_, reclaimed) = self.sweep_unrecorded(None)?;
        report.unrecorded_removed = reclaimed.regions;
        report.bytes_freed += reclaimed.bytes;
        Ok(report)
    }

    /// Finds the unrecorded space of every segment that can have none in use (see
    /// [`Segments::sweepable`]), and gives back that of the segments not written
    /// for `min_age` (all, without one). Returns what was found and what was given
    /// back.
    fn sweep_unrecorded(
        &self,
        min_age: Option<std::time::Duration>,
    ) -> Result<(Reclaimed, Reclaimed)> {
        let (mut found, mut reclaimed) = (Reclaimed::default(), Reclaimed::default());
        let sweepable = self
            .files
            .sweepable(min_age)
            .map_err(|e| StoreError::io("listing segment files", e))?;
        if sweepable.is_empty() {
            return Ok((found, reclaimed));
        }
        // Read after `sweepable`: every slot settled before it is here.
        let numbers: BTreeSet<u64> = sweepable.iter().map(|(n, _)| *n).collect();
        let mut recorded = self.catalogue.slots_in(&numbers)?;
        for (number, old) in sweepable {
            let slots = recorded.remove(&number).unwrap_or_default();
            let unrecorded = self
                .files
                .sweep_segment(number, &slots, old)
                .map_err(|e| StoreError::io(format!("sweeping segment {number}"), e))?;
            found.regions += unrecorded.regions;
            found.bytes += unrecorded.bytes;
            if old {
                reclaimed.regions += unrecorded.regions;
                reclaimed.bytes += unrecorded.bytes;
            }
        }
        Ok((found, reclaimed))
    }
}
