//! Integrity GC, dropping surplus copies, and collecting old tombstones.
//!
//! The original's GC removed every valid file because it compared chunk names
//! that could never match. This one works from the catalogue's reference counts,
//! which are kept in the same transactions as the records themselves, and takes
//! three precautions before it removes anything:
//!
//! * a blob is removed only if no live manifest references it (any manifest,
//!   held here or not, so a chunk a peer may still ask for is never lost);
//! * a pinned blob (one a write or an incoming copy is using) is never touched;
//! * a blob stored less than the grace period ago is left alone, so that blobs
//!   streamed ahead of their file's record (replication sends chunks before the
//!   record) survive until the record arrives; so is the unrecorded space of a
//!   segment written to within the grace period.
//!
//! Damaged blobs are not deleted: they are copied to `quarantine/` and their
//! records forgotten, so that the node stops serving and counting them, `holds`
//! reports the file incomplete, and a good copy from a peer can take their place
//! (the node layer does that right after).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::exchange::holds_all;
use super::{Inner, Vault};
use crate::crypto::ChunkCheck;
use crate::erasure::ShardSet;
use crate::error::Result;
use crate::ids::{ChunkId, NameId};
use crate::manifest::{CatalogueEntry, Manifest};
use crate::version::{Version, unix_millis_now};

/// How long a deletion is remembered: a node offline for longer must re-sync its
/// catalogue before it may hand out its records again (see `crate::vault` and the
/// node's sync).
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What one GC pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Recorded blobs read and checked (tag and hash).
    pub checked: usize,
    /// Blobs that were missing or failed their check: quarantined and forgotten.
    pub corrupted: Vec<ChunkId>,
    /// Blobs no live file references, and runs of unrecorded segment space (left
    /// by interrupted writes), found this pass.
    pub orphaned: usize,
    /// Of those, the ones old enough to be removed.
    pub removed: usize,
    pub bytes_freed: u64,
}

impl Vault {
    /// Checks every blob held here and removes orphans older than `grace` (see the
    /// module docs). Safe to run while files are being written and read.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        self.blocking(move |inner| inner.collect_garbage(grace))
            .await
    }

    /// Drops this node's copy of `name` (the record stays, so the file is still
    /// listed and readable from its other holders). Chunks another live file also
    /// uses are kept. Returns the chunks removed and the bytes freed.
    pub async fn release(&self, name: &str) -> Result<(usize, u64)> {
        let name = name.to_string();
        self.blocking(move |inner| {
            inner.live_manifest(&name)?;
            let only_here = inner
                .catalogue
                .chunks_only_of(&inner.crypto.name_id(&name))?;
            inner.forget_chunks(&only_here)
        })
        .await
    }

    /// Drops this node's copy of `version` of `name` (kept in history): the
    /// chunks no other version or file uses. Returns the chunks removed and the
    /// bytes freed.
    pub async fn release_version(&self, name: &str, version: Version) -> Result<(usize, u64)> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let manifest = inner.version_manifest(&name, version)?;
            let only_here = inner.catalogue.referenced_once(&manifest.blobs())?;
            inner.forget_chunks(&only_here)
        })
        .await
    }

    /// Drops this node's shards in `set` of `version` of coded `name` (more
    /// than the file's placement wants here), but none that another file
    /// uses. Returns the blobs removed and the bytes freed.
    pub async fn release_shards(
        &self,
        name: &str,
        version: Version,
        set: ShardSet,
    ) -> Result<(usize, u64)> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let manifest = inner.version_manifest(&name, version)?;
            let wanted: HashSet<ChunkId> = manifest.shard_blobs(set).into_iter().collect();
            let mut only_here = inner
                .catalogue
                .chunks_only_of(&inner.crypto.name_id(&name))?;
            only_here.retain(|id| wanted.contains(id));
            inner.forget_chunks(&only_here)
        })
        .await
    }

    /// Files of which this node holds some chunks but not all, and whose held
    /// chunks no file held completely here uses: what is left of a copy whose
    /// transfer broke off (a chunk refused, a peer gone mid-way). Each comes with
    /// the indices of its missing chunks. Nothing else ever fetches them (the
    /// repair worker counts complete copies only, and GC keeps chunks every live
    /// file references), so the node layer completes them.
    pub async fn partial_copies(&self) -> Result<Vec<(Manifest, Vec<usize>)>> {
        self.blocking(|inner| {
            // Streamed: a vault of 100,000 complete files has no partial copy, and
            // collecting every manifest to find none took tens of MB at each GC.
            let view = inner.catalogue.chunk_view()?;
            let mut partial = Vec::new();
            inner.catalogue.try_for_each_file(|_, manifest| {
                // A coded file's holders hold shards, never all of it: the
                // repair worker rebuilds the shards that are missing.
                if manifest.coding.is_some() {
                    return Ok(());
                }
                let mut missing = Vec::new();
                for (index, id) in manifest.chunks.iter().enumerate() {
                    if !view.has(id)? {
                        missing.push(index);
                    }
                }
                if !missing.is_empty() && missing.len() < manifest.chunks.len() {
                    partial.push((manifest, missing));
                }
                Ok(())
            })?;
            if partial.is_empty() {
                return Ok(partial);
            }
            // A file that merely shares a chunk with one held here is not a copy
            // of it: a second pass finds which of the partial files' chunks a
            // complete file uses.
            let wanted: HashSet<ChunkId> = partial
                .iter()
                .flat_map(|(m, _)| m.chunks.iter().copied())
                .collect();
            let mut shared = HashSet::new();
            inner.catalogue.try_for_each_file(|_, manifest| {
                let uses_wanted = manifest.chunks.iter().any(|id| wanted.contains(id));
                if uses_wanted && holds_all(&view, &manifest.chunks)? {
                    let chunks = manifest.chunks.iter().filter(|id| wanted.contains(*id));
                    shared.extend(chunks.copied());
                }
                Ok(())
            })?;
            partial.retain(|(manifest, _)| manifest.chunks.iter().all(|id| !shared.contains(id)));
            partial.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            Ok(partial)
        })
        .await
    }

    /// How long tombstones are kept (default [`DEFAULT_TOMBSTONE_RETENTION`]).
    pub fn set_tombstone_retention(&self, retention: Duration) {
        self.inner
            .tombstone_retention_ms
            .store(retention.as_millis() as u64, Ordering::Relaxed);
    }

    /// How long tombstones are kept.
    pub fn tombstone_retention(&self) -> Duration {
        self.inner.tombstone_retention()
    }

    /// Drops every blob held here that no write is using: this node's copies of
    /// everything (the catalogue stays). Returns the blobs removed and bytes freed.
    pub async fn drop_all_copies(&self) -> Result<(usize, u64)> {
        self.blocking(|inner| {
            let ids: Vec<ChunkId> = inner
                .catalogue
                .chunk_records()?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            inner.forget_chunks(&ids)
        })
        .await
    }

    /// Removes superseded versions past the version retention, then tombstones of
    /// deletions older than the tombstone retention whose versions are all gone.
    /// Returns how many tombstones went.
    pub async fn collect_tombstones(&self) -> Result<usize> {
        self.blocking(move |inner| {
            inner.expire_versions()?;
            let cutoff = expiry_cutoff(inner.tombstone_retention());
            let expired = inner.catalogue.remove_tombstones_before(cutoff)?;
            let mut index = inner.index.lock().unwrap_or_else(|p| p.into_inner());
            for id in &expired {
                index.remove(id);
            }
            Ok(expired.len())
        })
        .await
    }
}

impl Vault {
    /// A number the node keeps with the vault (e.g. when it last synced).
    pub async fn meta_u64(&self, key: &'static str) -> Result<Option<u64>> {
        self.blocking(move |inner| inner.catalogue.meta_u64(key))
            .await
    }

    /// Sets such a number.
    pub async fn set_meta_u64(&self, key: &'static str, value: u64) -> Result<()> {
        self.blocking(move |inner| inner.catalogue.set_meta_u64(key, value))
            .await
    }

    /// Forgets `version` of `name_id` and the blobs only it used: for a node that
    /// learns, after a long absence, that the rest of the vault no longer has it.
    /// If it is the name's current record, every version of the name goes (the
    /// name is gone from the vault; an older version must not take its place).
    /// The blobs they alone used become orphans for the next GC run.
    pub async fn forget_entry(&self, name_id: NameId, version: Version) -> Result<()> {
        self.blocking(move |inner| {
            let index = || inner.index.lock().unwrap_or_else(|p| p.into_inner());
            if index().version(&name_id) == Some(version) {
                inner.catalogue.remove_entry(&name_id)?;
                index().remove(&name_id);
            } else {
                inner.catalogue.remove_superseded(&name_id, &version)?;
                index().remove_superseded(&name_id, &version);
            }
            Ok(())
        })
        .await
    }
}

/// Wall-clock milliseconds before which a deletion has expired.
pub(crate) fn expiry_cutoff(retention: Duration) -> u64 {
    unix_millis_now().saturating_sub(retention.as_millis() as u64)
}

/// True if `entry` is a tombstone older than `cutoff`.
pub(crate) fn is_expired_tombstone(entry: &CatalogueEntry, cutoff: u64) -> bool {
    matches!(entry, CatalogueEntry::Deleted(t) if t.version.unix_millis() < cutoff)
}

impl Inner {
    /// Removes the superseded versions past the retention, and the blobs no kept
    /// version references any more.
    pub(crate) fn expire_versions(&self) -> Result<()> {
        let (expired, unreferenced) = self.catalogue.expire_history(&self.retention())?;
        {
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            for (id, versions) in &expired {
                for version in versions {
                    index.remove_superseded(id, version);
                }
            }
        }
        self.forget(&unreferenced)?;
        Ok(())
    }

    pub(crate) fn tombstone_retention(&self) -> Duration {
        Duration::from_millis(self.tombstone_retention_ms.load(Ordering::Relaxed))
    }

    fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        let mut report = GcReport::default();
        self.check_blobs(&mut report)?;

        // Recorded blobs that no live file references.
        let unreferenced = self.catalogue.unreferenced_chunks()?;
        report.orphaned += unreferenced.len();
        let now = crate::segments::unix_secs_now();
        let due: Vec<ChunkId> = unreferenced
            .into_iter()
            .filter(|(_, slot)| now.saturating_sub(slot.stored_at) >= grace.as_secs())
            .map(|(id, _)| id)
            .collect();
        let (count, bytes) = self.forget(&due)?;
        report.removed += count;
        report.bytes_freed += bytes;

        // Space nobody recorded (an interrupted write, or a crash before the record).
        let (found, reclaimed) = self.sweep_unrecorded(Some(grace))?;
        report.orphaned += found.regions;
        report.removed += reclaimed.regions;
        report.bytes_freed += reclaimed.bytes;
        Ok(report)
    }

    /// Reads every recorded blob and checks its tag and hash; a damaged or missing
    /// one is quarantined and forgotten.
    fn check_blobs(&self, report: &mut GcReport) -> Result<()> {
        let mut records = self.catalogue.chunk_records()?;
        // In the order they lie on disk, not by id: one pass through each segment.
        records.sort_unstable_by_key(|(_, slot)| (slot.segment, slot.offset));
        for (id, slot) in records {
            // Read around the page cache: a pass over every blob would otherwise
            // push out of it whatever the machine was using it for.
            let sound = self.files.read_blob(&slot).is_ok_and(|(mut buf, blob)| {
                self.crypto
                    .open_chunk_in_place(&id, &mut buf[blob], ChunkCheck::TagAndHash)
                    .is_ok()
            });
            report.checked += 1;
            // A blob forgotten (or stored again elsewhere) since the list was taken
            // is not damage.
            if sound || self.catalogue.slot(&id)? != Some(slot) {
                continue;
            }
            tracing::warn!("chunk {id} is damaged or missing; moving it to quarantine");
            self.quarantine_one(&id)?;
            report.corrupted.push(id);
        }
        Ok(())
    }

    /// Forgets the given blobs unless pinned, whoever references them, and frees
    /// their slots. Returns how many went and the bytes freed.
    fn forget_chunks(&self, ids: &[ChunkId]) -> Result<(usize, u64)> {
        let pins = self.pins.lock();
        let ids: Vec<ChunkId> = ids
            .iter()
            .filter(|id| !pins.is_pinned(id))
            .copied()
            .collect();
        let freed = self.forget_slots(&ids)?;
        drop(pins);
        Ok((ids.len(), freed))
    }
}
