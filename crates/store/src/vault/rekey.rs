//! Re-encrypting the chunks a node holds in the current key epoch (`rekey
//! --all`), so that keys of earlier epochs (a removed device's) open none of
//! them.
//!
//! A pass walks the `blobs` table in id order, a batch at a time
//! ([`Vault::reseal_after`]): each blob of an earlier epoch is read, opened
//! (tag and hash checked), sealed again in the current epoch and appended to a
//! segment like any new blob; the batch is made durable, then each chunk's
//! record moves to its new slot and the old slot is punched out, in one
//! transaction, under the pin lock. A chunk that a read or a write has pinned
//! meanwhile keeps its old slot (a reader may have looked it up) and is done
//! by the next pass; so is one whose record changed. The chunk id, and so
//! every manifest, stays as it was.
//!
//! Memory is one batch of blobs; the caller paces batches (the node's rekey
//! worker rate-limits them) and keeps the id it reached, so a pass resumes
//! after a restart.

use super::{Inner, Vault};
use crate::catalogue::RecordCursor;
use crate::crypto::{CHUNK_HEADER_LEN, ChunkCheck};
use crate::error::{ChunkProblem, Result, StoreError};
use crate::ids::ChunkId;
use crate::segments::Slot;

/// What one batch of a re-encryption pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealBatch {
    /// Chunks looked at.
    pub checked: usize,
    /// Chunks sealed again in the current epoch.
    pub resealed: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Chunks left for a later pass: pinned by a read or write, or sealed in
    /// an epoch this node does not hold yet.
    pub deferred: usize,
    /// Chunks that failed their check (left to the GC, which quarantines them).
    pub damaged: usize,
    /// The last chunk id looked at: the next batch starts after it. `None`
    /// when the pass has reached the end.
    pub next: Option<ChunkId>,
}

/// Chunks held here, by whether they are sealed in the current epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpochCensus {
    pub current: u64,
    pub older: u64,
}

impl Vault {
    /// Re-seals in the current epoch the chunks of earlier epochs among the
    /// `limit` recorded chunks after `after` (see the module docs).
    pub async fn reseal_after(&self, after: Option<ChunkId>, limit: usize) -> Result<ResealBatch> {
        self.blocking(move |inner| inner.reseal_after(after, limit))
            .await
    }

    /// Re-seals in the current epoch up to `limit` catalogue records (current
    /// and kept versions) of earlier epochs after `after`; how many, and
    /// where to go on (`None`: done).
    pub async fn reseal_records_after(
        &self,
        after: Option<RecordCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RecordCursor>)> {
        self.blocking(move |inner| inner.catalogue.reseal_records(after, limit))
            .await
    }

    /// Counts the chunks held here by epoch (reads the first bytes of each).
    pub async fn epoch_census(&self) -> Result<EpochCensus> {
        self.blocking(|inner| {
            let mut census = EpochCensus::default();
            let mut after = None;
            loop {
                let batch = inner.catalogue.chunks_after(after, 4096)?;
                let Some(last) = batch.last() else {
                    return Ok(census);
                };
                after = Some(last.0);
                for (id, slot) in &batch {
                    let (buf, range) = match inner.files.read_blob(slot) {
                        Ok(read) => read,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io(format!("reading chunk {id}"), e)),
                    };
                    // Shards are pieces of blobs: not re-sealed here (see `reseal_after`).
                    if crate::crypto::Crypto::is_shard(&buf[range.clone()]) {
                        continue;
                    }
                    match inner.crypto.chunk_is_current(&buf[range]) {
                        true => census.current += 1,
                        false => census.older += 1,
                    }
                }
            }
        })
        .await
    }
}

impl Inner {
    fn reseal_after(&self, after: Option<ChunkId>, limit: usize) -> Result<ResealBatch> {
        let chunks = self.catalogue.chunks_after(after, limit)?;
        let mut batch = ResealBatch {
            next: chunks.last().map(|(id, _)| *id),
            ..ResealBatch::default()
        };
        let mut moves: Vec<(ChunkId, Slot, Slot)> = Vec::new();
        for (id, old) in chunks {
            batch.checked += 1;
            let (buf, range) = match self.files.read_blob(&old) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(format!("reading chunk {id}"), e)),
            };
            // A shard is a piece of a sealed blob (or parity of such pieces):
            // re-sealing one means rebuilding its chunk and coding it again,
            // which makes new shard ids and so a new version of the file.
            // Coded files keep the epoch they were written in until then.
            if self.crypto.chunk_is_current(&buf[range.clone()])
                || crate::crypto::Crypto::is_shard(&buf[range.clone()])
            {
                continue;
            }
            let mut blob = buf[range].to_vec();
            drop(buf);
            let plain =
                match self
                    .crypto
                    .open_chunk_in_place(&id, &mut blob, ChunkCheck::TagAndHash)
                {
                    Ok(plain) => plain,
                    Err(ChunkProblem::UnknownEpoch) => {
                        batch.deferred += 1;
                        continue;
                    }
                    Err(_) => {
                        batch.damaged += 1;
                        continue;
                    }
                };
            // The plaintext moves to just behind the header's room, in place.
            blob.copy_within(plain.clone(), CHUNK_HEADER_LEN);
            blob.truncate(CHUNK_HEADER_LEN + plain.len());
            self.crypto
                .seal_chunk_in_place(&id, &mut blob)
                .map_err(|e| StoreError::io("sealing a chunk", std::io::Error::other(e)))?;
            let new = self
                .blob_appender
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&blob)
                .map_err(|e| StoreError::io(format!("writing chunk {id}"), e))?;
            moves.push((id, old, new));
        }
        if moves.is_empty() {
            return Ok(batch);
        }
        let unsynced = self
            .blob_appender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_unsynced();
        let new_slots: Vec<Slot> = moves.iter().map(|(_, _, new)| *new).collect();
        if let Err(e) = crate::segments::sync_files(unsynced) {
            self.files.discard(&new_slots);
            return Err(StoreError::io("making re-sealed chunks durable", e));
        }
        // Under the pin lock: a chunk that a read or a write holds keeps its
        // slot; the others move, and their old slots are given back.
        let pins = self.pins.lock();
        let free: Vec<(ChunkId, Slot, Slot)> = moves
            .iter()
            .filter(|(id, _, _)| !pins.is_pinned(id))
            .copied()
            .collect();
        let moved = match self.catalogue.move_chunks(&free) {
            Ok(moved) => moved,
            Err(e) => {
                drop(pins);
                self.files.discard(&new_slots);
                return Err(e);
            }
        };
        let kept: Vec<Slot> = moved.iter().map(|(_, _, new)| *new).collect();
        let released: Vec<Slot> = moved.iter().map(|(_, old, _)| *old).collect();
        let unused: Vec<Slot> = new_slots
            .iter()
            .filter(|s| !kept.contains(s))
            .copied()
            .collect();
        self.files.settle(&kept, &[]);
        self.files.release(&released);
        drop(pins);
        self.files.discard(&unused);
        // The same plaintext under the same header: each blob keeps its length,
        // so usage is unchanged.
        batch.resealed = moved.len();
        batch.bytes = moved.iter().map(|(_, _, new)| new.len as u64).sum();
        batch.deferred += moves.len() - moved.len();
        Ok(batch)
    }
}
