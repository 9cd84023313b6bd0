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
//! * a blob file, or a temporary file, younger than the grace period is left
//!   alone, so that blobs streamed ahead of their file's record (replication
//!   sends chunks before the record) survive until the record arrives.
//!
//! Damaged blobs are not deleted: they are moved to `quarantine/` and their
//! records forgotten, so that the node stops serving and counting them, `holds`
//! reports the file incomplete, and a good copy from a peer can take their place
//! (the node layer does that right after).

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::exchange::holds_all;
use super::{Inner, Vault};
use crate::crypto::ChunkCheck;
use crate::error::{Result, StoreError};
use crate::ids::{ChunkId, NameId};
use crate::manifest::{CatalogueEntry, Manifest};
use crate::version::unix_millis_now;

/// Temporary files younger than this are never removed, whatever the grace: a
/// write in flight renames its temporary file within moments.
const TMP_MIN_AGE: Duration = Duration::from_secs(60);

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
    /// Blobs no live file references (recorded or not), found this pass.
    pub orphaned: usize,
    /// Of those, the ones old enough to be removed.
    pub removed: usize,
    /// Temporary files of interrupted writes removed.
    pub temp_removed: usize,
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
    /// uses are kept. Returns the bytes freed.
    pub async fn release(&self, name: &str) -> Result<u64> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let manifest = inner.live_manifest(&name)?;
            let only_here = inner.catalogue.referenced_once(&manifest.chunks)?;
            let (_, freed) = inner.forget_chunks(&only_here)?;
            Ok(freed)
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

    /// Removes tombstones of deletions older than the retention period. Returns how
    /// many.
    pub async fn collect_tombstones(&self) -> Result<usize> {
        self.blocking(move |inner| {
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

    /// Forgets the record of `name_id` and the blobs only it used: for a node that
    /// learns, after a long absence, that the rest of the vault no longer has it.
    /// The blobs it alone used become orphans for the next GC run.
    pub async fn forget_entry(&self, name_id: NameId) -> Result<()> {
        self.blocking(move |inner| {
            inner.catalogue.remove_entry(&name_id)?;
            inner
                .index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name_id);
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
    pub(crate) fn tombstone_retention(&self) -> Duration {
        Duration::from_millis(self.tombstone_retention_ms.load(Ordering::Relaxed))
    }

    fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        let mut report = GcReport::default();
        self.check_blobs(&mut report)?;
        let now = SystemTime::now();
        let old_enough = |path: &std::path::Path, min: Duration| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= min)
                // A file that vanished meanwhile is nothing to keep.
                .unwrap_or(true)
        };

        // Recorded blobs that no live file references.
        let unreferenced = self.catalogue.unreferenced_chunks()?;
        report.orphaned += unreferenced.len();
        let due: Vec<ChunkId> = unreferenced
            .into_iter()
            .filter(|id| old_enough(&self.files.path_of(id), grace))
            .collect();
        let (count, bytes) = self.forget(&due)?;
        report.removed += count;
        report.bytes_freed += bytes;

        // Blob files nobody recorded (an interrupted write, or a crash before the
        // record). The pin lock is taken per file so writers are not held up.
        let on_disk = self
            .files
            .list()
            .map_err(|e| StoreError::io("listing chunk files", e))?;
        for id in on_disk {
            let pins = self.pins.lock();
            if pins.is_pinned(&id) || self.catalogue.has_chunk(&id)? {
                continue;
            }
            report.orphaned += 1;
            let path = self.files.path_of(&id);
            if !old_enough(&path, grace) {
                continue;
            }
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            self.files
                .remove(&id)
                .map_err(|e| StoreError::io("removing an unrecorded chunk", e))?;
            drop(pins);
            report.removed += 1;
            report.bytes_freed += len;
        }

        let (temp, bytes) = self
            .files
            .clear_tmp_older_than(grace.max(TMP_MIN_AGE))
            .map_err(|e| StoreError::io("removing temporary files", e))?;
        report.temp_removed = temp;
        report.bytes_freed += bytes;
        Ok(report)
    }

    /// Reads every recorded blob and checks its tag and hash; a damaged or missing
    /// one is quarantined and forgotten.
    fn check_blobs(&self, report: &mut GcReport) -> Result<()> {
        for (id, _) in self.catalogue.chunk_records()? {
            let mut blob = self.buffers.take();
            let sound = self.files.read_into(&id, &mut blob).is_ok()
                && self
                    .crypto
                    .open_chunk_in_place(&id, &mut blob, ChunkCheck::TagAndHash)
                    .is_ok();
            drop(blob);
            report.checked += 1;
            // A blob deleted since the list was taken is not damage.
            if sound || !self.catalogue.has_chunk(&id)? {
                continue;
            }
            tracing::warn!("chunk {id} is damaged or missing; moving it to quarantine");
            self.files
                .quarantine(&id)
                .map_err(|e| StoreError::io(format!("quarantining chunk {id}"), e))?;
            let freed = self.catalogue.forget_chunks(&[id])?;
            self.space.sub_used(freed);
            report.corrupted.push(id);
        }
        Ok(())
    }

    /// Forgets the given blobs unless pinned, whoever references them, and deletes
    /// their files. Returns how many went and the bytes freed.
    fn forget_chunks(&self, ids: &[ChunkId]) -> Result<(usize, u64)> {
        let pins = self.pins.lock();
        let ids: Vec<ChunkId> = ids
            .iter()
            .filter(|id| !pins.is_pinned(id))
            .copied()
            .collect();
        let freed = self.catalogue.forget_chunks(&ids)?;
        for id in &ids {
            if let Err(e) = self.files.remove(id) {
                tracing::warn!("could not remove chunk file {id}: {e}");
            }
        }
        drop(pins);
        self.space.sub_used(freed);
        Ok((ids.len(), freed))
    }
}
