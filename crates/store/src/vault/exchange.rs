//! What the vault offers other nodes: catalogue summaries and sealed records for
//! anti-entropy, and sealed blobs in and out for replication and remote reads.
//!
//! Everything that comes in is checked as if hostile: records must open under the
//! vault's key and belong to the name id they claim; blobs must carry a valid tag
//! and hash to the id they claim, before anything is written.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;

use super::{Inner, Vault};
use crate::crypto::ChunkCheck;
use crate::erasure::ShardSet;
use crate::error::{ChunkProblem, Result, StoreError};
use crate::ids::{ChunkId, NameId};
use crate::index::BucketDigest;
use crate::manifest::{CatalogueEntry, FileSummary, Manifest};
use crate::segments::{Segments, Slot};
use crate::space::{Pins, Reservation};
use crate::version::Version;

/// Where a reader gets chunks this node does not hold (the node's peers).
pub trait ChunkSource: Send + Sync {
    /// The sealed blob of chunk `index` of `manifest`, or why it cannot be had.
    fn fetch(
        &self,
        manifest: Arc<Manifest>,
        index: usize,
    ) -> BoxFuture<'static, std::result::Result<bytes::BytesMut, FetchError>>;

    /// Chunks a read should keep in flight from this source: enough to fill
    /// the paths to its holders (the reader takes at least its own default,
    /// and never more than the memory budget has free).
    fn read_ahead(&self) -> usize {
        0
    }

    /// The blob of shard `shard` of chunk `index` of coded `manifest`.
    fn fetch_shard(
        &self,
        _manifest: Arc<Manifest>,
        _index: usize,
        _shard: usize,
    ) -> BoxFuture<'static, std::result::Result<bytes::BytesMut, FetchError>> {
        Box::pin(async { Err(FetchError("no peer is asked for shards".into())) })
    }

    /// The shards of coded `manifest` worth asking for, best first (those
    /// whose holders are connected, data shards before parity ones), without
    /// those held here.
    fn shard_order(
        &self,
        manifest: Arc<Manifest>,
    ) -> BoxFuture<'static, std::result::Result<Vec<usize>, FetchError>> {
        let total = manifest.redundancy().map_or(0, |r| r.total());
        Box::pin(async move { Ok((0..total).collect()) })
    }

    /// Shard `shard` of chunk `index` that was last fetched failed its check.
    fn rejected_shard(&self, _manifest: &Manifest, _index: usize, _shard: usize) {}

    /// The blob last fetched for chunk `index` failed its check: the source
    /// should not offer it (or its supplier) again during this read.
    fn rejected(&self, _manifest: &Manifest, _index: usize, _problem: &crate::ChunkProblem) {}
}

/// Why a chunk could not be had from a [`ChunkSource`]: whom it asked and what
/// each said, in words for the user (it ends up in
/// [`StoreError::Unavailable`](crate::StoreError::Unavailable)).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// What a node holds of one file version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Nothing,
    /// Every chunk.
    Whole,
    /// Of a coded file: these shards of every chunk.
    Shards(ShardSet),
}

/// The result of offering a record from a peer.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    /// True if the record was new here and is kept (current or history).
    pub applied: bool,
    /// True if it is now the name's current entry.
    pub current: bool,
    pub entry: CatalogueEntry,
}

impl Vault {
    /// The id under which `name` is indexed.
    pub fn name_id(&self, name: &str) -> NameId {
        self.inner.crypto.name_id(name)
    }

    pub(super) fn with_index<T>(&self, f: impl FnOnce(&crate::index::CatalogueIndex) -> T) -> T {
        f(&self.inner.index.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Digests of the 256 catalogue buckets.
    pub fn summary(&self) -> Vec<BucketDigest> {
        self.with_index(|i| i.digests())
    }

    /// Buckets whose digests differ from a peer's summary.
    pub fn differing_buckets(&self, theirs: &[BucketDigest]) -> Vec<u8> {
        self.with_index(|i| i.differing(theirs))
    }

    /// Versions of every entry in `buckets`.
    pub fn versions_in(&self, buckets: &[u8]) -> Vec<(NameId, Version)> {
        self.with_index(|i| i.versions_in(buckets))
    }

    /// The version held for a name id.
    pub fn version_of(&self, id: &NameId) -> Option<Version> {
        self.with_index(|i| i.version(id))
    }

    /// Number of catalogue entries (live and deleted).
    pub fn catalogue_len(&self) -> usize {
        self.with_index(|i| i.len())
    }

    /// Live files in the catalogue (entries that are not tombstones), without
    /// opening a record.
    pub fn file_count(&self) -> usize {
        self.with_index(|i| i.live_files())
    }

    /// Sealed records of `ids`, as a peer may store them.
    pub async fn sealed_entries(&self, ids: Vec<NameId>) -> Result<Vec<(NameId, Vec<u8>)>> {
        self.blocking(move |inner| inner.catalogue.sealed_entries(&ids))
            .await
    }

    /// Sealed records of the given versions, current or history (see
    /// [`crate::history`]), as a peer may store them.
    pub async fn sealed_records(
        &self,
        wanted: Vec<(NameId, Version)>,
    ) -> Result<Vec<(NameId, Vec<u8>)>> {
        self.blocking(move |inner| {
            let found = inner.sealed_records_each(&wanted)?;
            Ok(wanted
                .iter()
                .zip(found)
                .filter_map(|((id, _), sealed)| Some((*id, sealed?)))
                .collect())
        })
        .await
    }

    /// The sealed record of exactly `version` of `id` (opened and checked: not a
    /// newer one written meanwhile), or `None` if it is not kept.
    pub async fn sealed_record(&self, id: NameId, version: Version) -> Result<Option<Vec<u8>>> {
        self.blocking(move |inner| Ok(inner.record(id, version)?.map(|(_, sealed)| sealed)))
            .await
    }

    /// True if this node holds `version` of `id`, current or in history.
    pub fn has_record(&self, id: &NameId, version: &Version) -> bool {
        self.with_index(|i| i.has(id, version))
    }

    /// Applies a sealed record from a peer: current if newer than what is held,
    /// history otherwise. Blobs that no kept version references any more are freed.
    pub async fn apply_sealed(&self, name_id: NameId, sealed: Vec<u8>) -> Result<RemoteEntry> {
        self.apply_sealed_many(vec![(name_id, sealed)])
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Database("a record went missing".into())))
    }

    /// Applies records from a peer in one metadata transaction (a sync brings
    /// hundreds at a time; one commit each made syncing a new node cost a
    /// millisecond per record). Each record gets its own result: one that fails to
    /// open is reported and the others still apply.
    pub async fn apply_sealed_many(
        &self,
        records: Vec<(NameId, Vec<u8>)>,
    ) -> Result<Vec<Result<RemoteEntry>>> {
        self.blocking(move |inner| {
            let opened: Vec<Result<CatalogueEntry>> = records
                .iter()
                .map(|(id, sealed)| inner.catalogue.open_sealed(id, sealed))
                .collect();
            let valid: Vec<CatalogueEntry> = opened
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect();
            for entry in &valid {
                inner.clock.observe(entry.version().clock);
            }
            let retention = inner.retention();
            let outcomes = inner
                .catalogue
                .apply_many(&valid, inner.clock.last(), &retention)?;
            let cutoff = super::gc::expiry_cutoff(inner.tombstone_retention());
            let mut unreferenced = Vec::new();
            let mut expired = Vec::new();
            {
                let mut index = inner.index.lock().unwrap_or_else(|p| p.into_inner());
                for (entry, outcome) in valid.iter().zip(&outcomes) {
                    inner.index_outcome(&mut index, entry, outcome);
                    // A deletion older than the retention period still deletes
                    // what it supersedes, but is not kept (once the versions it
                    // deleted have expired too).
                    if outcome.current && super::is_expired_tombstone(entry, cutoff) {
                        expired.push(inner.crypto.name_id(entry.name()));
                    }
                    unreferenced.extend_from_slice(&outcome.unreferenced);
                }
            }
            inner.forget(&unreferenced)?;
            if !expired.is_empty() {
                let removed = inner.catalogue.remove_expired(expired, cutoff)?;
                let mut index = inner.index.lock().unwrap_or_else(|p| p.into_inner());
                for id in &removed {
                    index.remove(id);
                }
            }
            let mut applied = outcomes.into_iter().zip(valid);
            Ok(opened
                .into_iter()
                .map(|r| {
                    r.and_then(|_| {
                        let (outcome, entry) = applied
                            .next()
                            .ok_or_else(|| StoreError::Database("a record went missing".into()))?;
                        Ok(RemoteEntry {
                            applied: outcome.applied,
                            current: outcome.current,
                            entry,
                        })
                    })
                })
                .collect())
        })
        .await
    }

    /// The live manifest of a name id, if any.
    pub async fn manifest_by_id(&self, name_id: NameId) -> Result<Option<Manifest>> {
        self.blocking(move |inner| {
            let sealed = inner.catalogue.sealed_entries(&[name_id])?;
            Ok(match sealed.first() {
                Some((id, bytes)) => inner.catalogue.open_sealed(id, bytes)?.as_file().cloned(),
                None => None,
            })
        })
        .await
    }

    /// The distinct chunks of `manifest` this node does not hold.
    pub async fn missing_chunks(&self, manifest: &Manifest) -> Result<Vec<ChunkId>> {
        let chunks = manifest.chunks.clone();
        self.blocking(move |inner| inner.missing(&chunks)).await
    }

    /// The shards in `set` of every chunk of coded `manifest` that this node
    /// does not hold.
    pub async fn missing_shards(&self, manifest: &Manifest, set: ShardSet) -> Result<Vec<ChunkId>> {
        let shards = manifest.shard_blobs(set);
        self.blocking(move |inner| inner.missing(&shards)).await
    }

    /// What this node holds of `manifest`.
    pub async fn holding(&self, manifest: &Manifest) -> Result<Held> {
        let manifest = manifest.clone();
        self.blocking(move |inner| holding_of(&inner.catalogue.chunk_view()?, &manifest))
            .await
    }

    /// True if this node holds a copy of `manifest`: every chunk, or every
    /// chunk's shards of some index of a coded file.
    pub async fn holds(&self, manifest: &Manifest) -> Result<bool> {
        Ok(self.holding(manifest).await? != Held::Nothing)
    }

    /// What a listing shows of every live file, sorted by name, with its name id
    /// and whether this node holds all its chunks: no chunk list and no manifest
    /// kept past its summary (one pass over the records).
    pub async fn summaries(&self) -> Result<Vec<(NameId, FileSummary)>> {
        self.summaries_under("").await
    }

    /// [`Vault::summaries`] of the files whose names start with `prefix`.
    pub async fn summaries_under(&self, prefix: &str) -> Result<Vec<(NameId, FileSummary)>> {
        let count = if prefix.is_empty() {
            self.file_count()
        } else {
            0
        };
        let prefix = prefix.to_string();
        self.blocking(move |inner| {
            let view = inner.catalogue.chunk_view()?;
            let mut authors: HashMap<String, Arc<str>> = HashMap::new();
            let mut files = Vec::with_capacity(count);
            inner.catalogue.try_for_each_file(|id, mut m| {
                if !m.name.starts_with(&prefix) {
                    return Ok(());
                }
                let held = holds_file(&view, &m)?;
                let author = match authors.get(&m.author) {
                    Some(author) => author.clone(),
                    None => {
                        let author: Arc<str> = Arc::from(m.author.as_str());
                        authors.insert(std::mem::take(&mut m.author), author.clone());
                        author
                    }
                };
                files.push((id, FileSummary::from_manifest(m, author, held)));
                Ok(())
            })?;
            // Names are unique in the catalogue, so an unstable sort loses nothing.
            files.sort_unstable_by(|(_, a), (_, b)| a.name.cmp(&b.name));
            Ok(files)
        })
        .await
    }

    /// For each `(name id, version)`: what this node holds of that version of
    /// the name (current or in history), if it keeps the version and it is a file.
    pub async fn holds_versions(&self, files: Vec<(NameId, Version)>) -> Result<Vec<Held>> {
        self.blocking(move |inner| {
            // One read transaction for the records, one for the chunks.
            let sealed = inner.sealed_records_each(&files)?;
            let view = inner.catalogue.chunk_view()?;
            let mut held = Vec::with_capacity(files.len());
            for ((id, version), sealed) in files.iter().zip(sealed) {
                let complete = match sealed {
                    Some(bytes) => match inner.catalogue.open_sealed(id, &bytes)? {
                        // The name may have been written again since the
                        // index was read: only the version asked about counts.
                        CatalogueEntry::File(m) if m.version == *version => holding_of(&view, &m)?,
                        _ => Held::Nothing,
                    },
                    None => Held::Nothing,
                };
                held.push(complete);
            }
            Ok(held)
        })
        .await
    }

    /// The sealed blob of a chunk held here (to copy to a peer), or `None`.
    pub async fn read_blob(&self, id: ChunkId) -> Result<Option<Vec<u8>>> {
        self.blocking(move |inner| {
            held(inner, &id, |files, slot| {
                let (buf, blob) = files.read_blob(slot)?;
                Ok(buf[blob].to_vec())
            })
        })
        .await
    }

    /// [`Vault::read_blob`] for a peer that asked, behind a prefix made from the
    /// blob's length (a message header): the blob is read straight into the
    /// message that carries it (see [`crate::segments::Segments::read_message`]).
    pub async fn read_blob_after(
        &self,
        id: ChunkId,
        prefix: impl FnOnce(usize) -> Vec<u8> + Send + 'static,
    ) -> Result<Option<Bytes>> {
        self.blocking(move |inner| held(inner, &id, |files, slot| files.read_message(slot, prefix)))
            .await
    }

    /// Stores a blob received from a peer: checked in full, counted against the
    /// quota, durable before this returns. Returns false if it was already held.
    pub async fn put_blob(&self, id: ChunkId, blob: BytesMut) -> Result<bool> {
        self.blocking(move |inner| inner.put_blob(id, blob)).await
    }

    /// [`Vault::put_blob`] of a good copy of a chunk found damaged here (and
    /// quarantined): counted as restored (see [`crate::DamageCounts`]).
    pub async fn restore_blob(&self, id: ChunkId, blob: BytesMut) -> Result<bool> {
        self.blocking(move |inner| inner.restore_blob(id, blob))
            .await
    }

    /// Damaged chunks found since the vault opened, and what became of them.
    pub fn damage(&self) -> crate::DamageCounts {
        self.inner.damage.read()
    }

    /// Bytes the given missing chunks (or shards) of `manifest` would occupy here.
    pub fn blob_bytes(manifest: &Manifest, missing: &[ChunkId]) -> u64 {
        if let Some(coding) = &manifest.coding {
            let missing: std::collections::HashSet<&ChunkId> = missing.iter().collect();
            return coding
                .chunks
                .iter()
                .map(|c| {
                    let len = crate::erasure::shard_len(coding.redundancy, c.blob_len as usize)
                        + crate::crypto::SHARD_MAGIC.len();
                    c.shards.iter().filter(|id| missing.contains(id)).count() as u64 * len as u64
                })
                .sum();
        }
        manifest
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, id)| missing.contains(id))
            .map(|(i, _)| manifest.chunk_len(i) as u64 + crate::crypto::CHUNK_OVERHEAD as u64)
            .sum()
    }

    /// Fails if `bytes` more would not fit the quota now.
    pub fn check_fits_bytes(&self, bytes: u64) -> Result<()> {
        self.inner.space.check_fits(bytes)
    }
}

impl Inner {
    /// The sealed record of each of `records`, current or history, in order
    /// (`None` if not kept). The index says which are current, so those are
    /// read without being opened (see [`Catalogue::sealed_records_each`]).
    ///
    /// [`Catalogue::sealed_records_each`]: crate::catalogue::Catalogue::sealed_records_each
    pub(super) fn sealed_records_each(
        &self,
        records: &[(NameId, Version)],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let current: std::collections::HashSet<(NameId, Version)> = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            records
                .iter()
                .filter(|(id, v)| index.version(id) == Some(*v))
                .copied()
                .collect()
        };
        self.catalogue
            .sealed_records_each(records, |id, v| current.contains(&(*id, *v)))
    }

    /// Exactly `version` of `id`, opened and checked (not a newer record
    /// written meanwhile), with its sealed bytes; `None` if it is not kept.
    pub(super) fn record(
        &self,
        id: NameId,
        version: Version,
    ) -> Result<Option<(CatalogueEntry, Vec<u8>)>> {
        let Some(Some(sealed)) = self.sealed_records_each(&[(id, version)])?.pop() else {
            return Ok(None);
        };
        let entry = self.catalogue.open_sealed(&id, &sealed)?;
        Ok((entry.version() == version).then_some((entry, sealed)))
    }

    fn missing(&self, chunks: &[ChunkId]) -> Result<Vec<ChunkId>> {
        missing_in(&self.catalogue.chunk_view()?, chunks)
    }

    /// [`Inner::put_blob`] of a chunk that replaces a damaged one, counted.
    pub(crate) fn restore_blob(&self, id: ChunkId, blob: BytesMut) -> Result<bool> {
        let put = self.put_blob(id, blob)?;
        self.damage.restored();
        Ok(put)
    }

    /// The blob is written into a slot first, and is then checked where it lies
    /// in memory: opening decrypts in place, and the sealed bytes, the ones kept,
    /// are by then on disk (a check of a copy cost a copy of every blob, 0.08 s of
    /// a holder's CPU per GiB). A blob that fails its check is never recorded, and
    /// its slot is given back.
    ///
    /// Blobs from concurrent requests share one appender, so that the chunks of a
    /// file copied here lie together as they arrive; each is durable and recorded
    /// (with those that arrived meanwhile: one `fdatasync` and one transaction for a
    /// batch) before this returns.
    pub(crate) fn put_blob(&self, id: ChunkId, mut blob: BytesMut) -> Result<bool> {
        let mut pins = Pins::new(self.pins.clone());
        pins.pin(id);
        if self.catalogue.has_chunk(&id)? {
            return Ok(false);
        }
        let mut reservation = Reservation::new(self.space.clone());
        reservation.grow(blob.len() as u64)?;
        let slot = self
            .blob_appender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&blob)
            .map_err(|e| StoreError::io(format!("writing chunk {id}"), e))?;
        let checked = self
            .crypto
            .open_chunk_in_place(&id, &mut blob, ChunkCheck::TagAndHash);
        drop(blob);
        if let Err(problem) = checked {
            self.files.discard(&[slot]);
            if problem == ChunkProblem::UnknownEpoch {
                return Err(StoreError::UnknownEpoch {
                    what: format!("chunk {id} from a peer"),
                });
            }
            return Err(StoreError::CorruptRecord {
                what: format!("chunk {id} from a peer {problem}"),
            });
        }
        let committed = self.blob_commits.commit((id, slot), |batch| {
            let unsynced = self
                .blob_appender
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take_unsynced();
            crate::segments::sync_files(unsynced)
                .map_err(|e| format!("making chunks durable: {e}"))?;
            let (recorded, slots) = self
                .catalogue
                .record_chunks(batch.as_slice())
                .map_err(|e| e.to_string())?;
            self.space.add_used(recorded);
            self.files.settle(&slots.recorded, &slots.unrecorded);
            Ok(())
        });
        if let Err(e) = committed {
            // Not recorded: this blob's space is ours to give back.
            self.files.discard(&[slot]);
            return Err(StoreError::io("storing a chunk", std::io::Error::other(e)));
        }
        Ok(true)
    }
}

/// Runs `read` on the blob of `id` if the catalogue records it: `None` if this
/// node does not hold it (or its segment has gone, which the GC will notice).
fn held<T>(
    inner: &Inner,
    id: &ChunkId,
    read: impl FnOnce(&Segments, &Slot) -> std::io::Result<T>,
) -> Result<Option<T>> {
    let Some(slot) = inner.catalogue.slot(id)? else {
        return Ok(None);
    };
    match read(&inner.files, &slot) {
        Ok(read) => Ok(Some(read)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(format!("reading chunk {id}"), e)),
    }
}

/// The shards of coded file `manifest` of which this node holds every
/// chunk's (nothing for a file that is not coded).
pub(super) fn held_shards(
    view: &crate::catalogue::ChunkView,
    manifest: &Manifest,
) -> Result<ShardSet> {
    let Some(coding) = &manifest.coding else {
        return Ok(ShardSet::EMPTY);
    };
    let mut set = ShardSet::all(coding.redundancy.total());
    for chunk in &coding.chunks {
        for index in set.iter() {
            if !view.has(&chunk.shards[index])? {
                set.remove(index);
            }
        }
        if set.is_empty() {
            break;
        }
    }
    Ok(set)
}

/// What this node holds of `manifest`: every chunk, or (a coded file) every
/// chunk's shards of at least one index.
pub(super) fn holding_of(view: &crate::catalogue::ChunkView, manifest: &Manifest) -> Result<Held> {
    Ok(match &manifest.coding {
        None if holds_all(view, &manifest.chunks)? => Held::Whole,
        None => Held::Nothing,
        Some(_) => match held_shards(view, manifest)? {
            set if set.is_empty() => Held::Nothing,
            set => Held::Shards(set),
        },
    })
}

/// True if this node holds a copy of `manifest`: all of it, or all of some
/// shards of a coded file (what listings call held, and what the repair
/// worker looks after).
pub(super) fn holds_file(view: &crate::catalogue::ChunkView, manifest: &Manifest) -> Result<bool> {
    Ok(holding_of(view, manifest)? != Held::Nothing)
}

/// True if every one of `chunks` is recorded here.
pub(super) fn holds_all(view: &crate::catalogue::ChunkView, chunks: &[ChunkId]) -> Result<bool> {
    for id in chunks {
        if !view.has(id)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The distinct chunks of `chunks` that `view` has no record of, in order of first
/// appearance.
fn missing_in(view: &crate::catalogue::ChunkView, chunks: &[ChunkId]) -> Result<Vec<ChunkId>> {
    // The set allocates on its first insert: nothing for a file held here.
    let mut seen = std::collections::HashSet::new();
    let mut missing = Vec::new();
    for id in chunks {
        if !view.has(id)? && seen.insert(*id) {
            missing.push(*id);
        }
    }
    Ok(missing)
}
