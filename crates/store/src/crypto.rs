//! Sealing and opening of chunks and records.
//!
//! Nothing leaves this module unencrypted. Two kinds of object are sealed with
//! AES-256-GCM under separate subkeys:
//!
//! * **Chunk blobs**: `MAGIC | nonce | ciphertext | tag`. The chunk id is the
//!   associated data, so a blob moved to another id fails authentication. Opening a
//!   chunk also recomputes the keyed hash of the plaintext and compares it with the
//!   id: the tag proves the bytes were sealed by a key holder, the hash proves they
//!   are the content the id names.
//! * **Records** (catalogue entries): `VERSION | nonce | ciphertext | tag`, with a
//!   caller-chosen associated data that binds the record to its place.
//!
//! **Key epochs.** Chunk ids and name ids always come from the vault key, but
//! the two encryption keys come from the current key epoch ([`EpochKey`]):
//! epoch 0 is the vault key, and each removal of a device starts a new one
//! whose key only the remaining members hold. A blob sealed in epoch 0 starts
//! with the magic `PVc1`; one sealed later starts with `PE` and the epoch key's
//! two-byte hint, so the header keeps its length (sizes everywhere assume it)
//! and opening picks the key at once. A record sealed later has version 2 and
//! the hint after it. What was sealed in an epoch opens only with that epoch's
//! key: a removed device's keys open nothing written after its removal. A blob
//! or record of an epoch this node does not hold yet is
//! [`ChunkProblem::UnknownEpoch`] / [`RecordOpenError::UnknownEpoch`], not
//! damage: its key arrives from the other members.
//!
//! Nonces are random (96 bits). Each chunk is sealed at most a few times per node,
//! far below the 2^32 messages per key at which random GCM nonces start to matter.
//!
//! The cipher is ring's AES-256-GCM: measured here at ~5.5 GB/s per core, against
//! ~2 GB/s for the pure-Rust implementation, which made it the bottleneck of reads.
//!
//! Verification comes in two strengths. [`ChunkCheck::Tag`] checks the tag only;
//! [`ChunkCheck::TagAndHash`] also recomputes the keyed hash. The tag
//! (under a key only members hold, bound to the chunk id) detects any damage on
//! disk. The hash additionally catches a member that sealed the wrong content under
//! an id, so every blob is hash-checked when it *enters* a store (written locally, or
//! received from a peer), and by `verify` and the integrity GC; ordinary reads of a
//! blob that passed that gate rely on the tag.
//!
//! Sealing works in place on a buffer that already has room for the header in front
//! ([`CHUNK_HEADER_LEN`]), so a chunk is read, hashed, encrypted and written without
//! being copied.

use std::ops::Range;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::ChunkProblem;
use crate::ids::{ChunkId, NameId};
use crate::keys::{EpochKey, StoreKeys};

const CHUNK_MAGIC: &[u8; 4] = b"PVc1";
/// The first two bytes of the header of a blob sealed in a key epoch after the
/// first; the other two are the epoch key's hint ([`EpochKey::hint`]).
const EPOCH_CHUNK_MAGIC: &[u8; 2] = b"PE";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Bytes in front of a chunk's ciphertext: magic (or epoch mark) and nonce.
pub const CHUNK_HEADER_LEN: usize = CHUNK_MAGIC.len() + NONCE_LEN;

/// Bytes a sealed chunk occupies beyond its plaintext.
pub const CHUNK_OVERHEAD: usize = CHUNK_HEADER_LEN + TAG_LEN;

/// The header of a shard of an erasure-coded chunk (see [`crate::erasure`]):
/// `"PVs1" | shard`. A shard is a piece of a sealed blob, or parity computed
/// from such pieces, so it needs no encryption of its own; its id is a keyed
/// hash of the whole shard blob ([`Crypto::shard_id`]), which every store
/// checks where it checks a chunk's tag and hash.
pub const SHARD_MAGIC: &[u8; 4] = b"PVs1";

/// BLAKE3 key-derivation context of shard ids (from the chunk-id subkey, so
/// that shard ids, like chunk ids, stay the same across key epochs).
const SHARD_ID_CONTEXT: &str = "peervault 2026-12 shard id";

/// Records sealed with the vault key (epoch 0): `1 | nonce | ciphertext | tag`.
const RECORD_VERSION: u8 = 1;
/// Records sealed in a later epoch: `2 | hint (2 bytes) | nonce | ciphertext | tag`.
const RECORD_VERSION_EPOCH: u8 = 2;

/// How thoroughly a chunk is checked when opened (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCheck {
    /// The authentication tag: enough for blobs that were hash-checked on entry.
    Tag,
    /// Tag and keyed hash: for blobs entering the store, `verify` and the GC.
    TagAndHash,
}

/// Returned when random bytes for a nonce cannot be had; the operation is aborted.
#[derive(Debug, thiserror::Error)]
#[error("the operating system could not supply random bytes: {0}")]
pub struct RandomnessError(String);

/// Why a record failed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordOpenError {
    /// Wrong key, wrong place, or damaged bytes.
    #[error("record failed authentication")]
    Failed,
    /// Sealed in a key epoch whose key this node does not hold (yet).
    #[error("record is sealed with a key epoch this node does not hold")]
    UnknownEpoch,
}

/// The ciphers of one key epoch.
struct Sealer {
    number: u32,
    /// `None` for epoch 0 (the vault key), whose blobs carry the old magic.
    hint: Option<[u8; 2]>,
    chunk: LessSafeKey,
    record: LessSafeKey,
}

/// Every epoch this node holds, and the one new data is sealed in.
struct Epochs {
    current: Arc<Sealer>,
    all: Vec<Arc<Sealer>>,
}

impl Epochs {
    fn with_hint(&self, hint: Option<[u8; 2]>) -> impl Iterator<Item = &Arc<Sealer>> {
        self.all.iter().filter(move |s| s.hint == hint)
    }
}

/// All sealing operations of one vault.
///
/// Chunk ids, name ids and the chunker's seed always come from the vault key, so
/// that a chunk has one id whatever epoch sealed it (a re-encrypted chunk keeps
/// its id, and manifests never change). Encryption keys come from the current
/// key epoch; every blob and record names the epoch it was sealed in, and opens
/// with that epoch's key.
pub struct Crypto {
    chunk_id_key: [u8; 32],
    shard_id_key: [u8; 32],
    name_id_key: [u8; 32],
    epochs: RwLock<Arc<Epochs>>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypto(..)")
    }
}

fn random_nonce() -> Result<[u8; NONCE_LEN], RandomnessError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| RandomnessError(e.to_string()))?;
    Ok(nonce)
}

fn cipher(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always valid for AES-256-GCM.
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!("32-byte AES key")),
    )
}

impl Crypto {
    /// Builds the ciphers from the store's subkeys (epoch 0 only).
    pub fn new(keys: &StoreKeys) -> Self {
        let first = Arc::new(Sealer {
            number: 0,
            hint: None,
            chunk: cipher(&keys.chunk_seal),
            record: cipher(&keys.record_seal),
        });
        Self {
            chunk_id_key: keys.chunk_id,
            shard_id_key: blake3::derive_key(SHARD_ID_CONTEXT, &keys.chunk_id),
            name_id_key: keys.name_id,
            epochs: RwLock::new(Arc::new(Epochs {
                current: first.clone(),
                all: vec![first],
            })),
        }
    }

    fn epochs(&self) -> Arc<Epochs> {
        self.epochs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes `keys` (and the vault key's epoch 0) the epochs this store opens,
    /// and the latest of them the one it seals new data in.
    pub fn set_epochs(&self, keys: &[EpochKey]) {
        let current = self.epochs();
        let first = current
            .all
            .iter()
            .find(|s| s.number == 0)
            .cloned()
            .unwrap_or_else(|| current.current.clone());
        let mut all = vec![first.clone()];
        let latest = keys.iter().max_by_key(|k| k.order());
        let mut now = first;
        for key in keys {
            let sealer = Arc::new(Sealer {
                number: key.number,
                hint: Some(key.hint()),
                chunk: cipher(&key.chunk_seal()),
                record: cipher(&key.record_seal()),
            });
            if Some(key) == latest {
                now = sealer.clone();
            }
            all.push(sealer);
        }
        *self.epochs.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Epochs { current: now, all });
    }

    /// The number of the epoch new data is sealed in.
    pub fn current_epoch(&self) -> u32 {
        self.epochs().current.number
    }

    /// The epoch a blob was sealed in, if this node holds its key (for `rekey`).
    pub fn chunk_epoch(&self, blob: &[u8]) -> Option<u32> {
        let hint = chunk_hint(blob).ok()?;
        let epochs = self.epochs();
        let number = epochs.with_hint(hint).next()?.number;
        Some(number)
    }

    /// True if `blob` was sealed in the current epoch.
    pub fn chunk_is_current(&self, blob: &[u8]) -> bool {
        chunk_hint(blob).is_ok_and(|hint| hint == self.epochs().current.hint)
    }

    /// Content address of a chunk's plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_id_key, plaintext).as_bytes())
    }

    /// The id of a shard blob (`SHARD_MAGIC | shard`).
    pub fn shard_id(&self, blob: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.shard_id_key, blob).as_bytes())
    }

    /// The blob of one shard: its header, then `shard`.
    pub fn shard_blob(shard: &[u8]) -> Vec<u8> {
        let mut blob = Vec::with_capacity(SHARD_MAGIC.len() + shard.len());
        blob.extend_from_slice(SHARD_MAGIC);
        blob.extend_from_slice(shard);
        blob
    }

    /// True if `blob` is a shard's (not a whole chunk's).
    pub fn is_shard(blob: &[u8]) -> bool {
        blob.starts_with(SHARD_MAGIC)
    }

    /// The seed of the content-defined chunker's gear table: keyed, so that
    /// where chunks are cut says nothing comparable across vaults.
    pub fn cdc_seed(&self) -> u64 {
        let hash = blake3::keyed_hash(&self.chunk_id_key, b"peervault cdc gear seed v1");
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(seed)
    }

    /// Database key of a file name.
    pub fn name_id(&self, name: &str) -> NameId {
        NameId(*blake3::keyed_hash(&self.name_id_key, name.as_bytes()).as_bytes())
    }

    /// Seals a chunk in place, in the current epoch. `buf` must hold
    /// [`CHUNK_HEADER_LEN`] bytes of room followed by the plaintext; afterwards
    /// it holds the complete blob.
    pub fn seal_chunk_in_place(
        &self,
        id: &ChunkId,
        buf: &mut Vec<u8>,
    ) -> Result<(), RandomnessError> {
        debug_assert!(buf.len() >= CHUNK_HEADER_LEN);
        let sealer = self.epochs().current.clone();
        let nonce = random_nonce()?;
        match sealer.hint {
            None => buf[..CHUNK_MAGIC.len()].copy_from_slice(CHUNK_MAGIC),
            Some(hint) => {
                buf[..2].copy_from_slice(EPOCH_CHUNK_MAGIC);
                buf[2..4].copy_from_slice(&hint);
            }
        }
        buf[CHUNK_MAGIC.len()..CHUNK_HEADER_LEN].copy_from_slice(&nonce);
        let tag = sealer
            .chunk
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&id.0),
                &mut buf[CHUNK_HEADER_LEN..],
            )
            .map_err(|_| RandomnessError("chunk too large for AES-GCM".into()))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Seals a plaintext chunk into a new blob (convenience for small chunks and tests).
    pub fn seal_chunk(&self, plaintext: &[u8]) -> Result<(ChunkId, Vec<u8>), RandomnessError> {
        let id = self.chunk_id(plaintext);
        let mut buf = Vec::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
        buf.resize(CHUNK_HEADER_LEN, 0);
        buf.extend_from_slice(plaintext);
        self.seal_chunk_in_place(&id, &mut buf)?;
        Ok((id, buf))
    }

    /// Opens a blob in place, checking its tag (see the module docs for when that
    /// suffices). Returns where the plaintext now lies within `blob`.
    pub fn open_chunk_in_place(
        &self,
        id: &ChunkId,
        blob: &mut [u8],
        check: ChunkCheck,
    ) -> Result<Range<usize>, ChunkProblem> {
        // A shard has no tag: its id is its check, whatever `check` asks.
        if Self::is_shard(blob) {
            return match self.shard_id(blob) == *id {
                true => Ok(SHARD_MAGIC.len()..blob.len()),
                false => Err(ChunkProblem::WrongHash),
            };
        }
        if blob.len() < CHUNK_OVERHEAD {
            return Err(ChunkProblem::Malformed);
        }
        let hint = chunk_hint(blob)?;
        let nonce = Nonce::try_assume_unique_for_key(&blob[CHUNK_MAGIC.len()..CHUNK_HEADER_LEN])
            .map_err(|_| ChunkProblem::Malformed)?;
        let epochs = self.epochs();
        let mut candidates = epochs.with_hint(hint).peekable();
        let Some(first) = candidates.next() else {
            return Err(ChunkProblem::UnknownEpoch);
        };
        // Two epoch keys share a hint once in 65,536 pairs: the second is tried
        // on a copy only then, and opening in place costs nothing otherwise.
        let mut sealer = first;
        if candidates.peek().is_some() {
            let body = blob[CHUNK_HEADER_LEN..].to_vec();
            for other in std::iter::once(first).chain(candidates) {
                let mut trial = body.clone();
                if other
                    .chunk
                    .open_in_place(
                        Nonce::try_assume_unique_for_key(
                            &blob[CHUNK_MAGIC.len()..CHUNK_HEADER_LEN],
                        )
                        .map_err(|_| ChunkProblem::Malformed)?,
                        Aad::from(&id.0),
                        &mut trial,
                    )
                    .is_ok()
                {
                    sealer = other;
                    break;
                }
            }
        }
        let plain = sealer
            .chunk
            .open_in_place(nonce, Aad::from(&id.0), &mut blob[CHUNK_HEADER_LEN..])
            .map_err(|_| ChunkProblem::BadTag)?;
        if check == ChunkCheck::TagAndHash && self.chunk_id(plain) != *id {
            return Err(ChunkProblem::WrongHash);
        }
        Ok(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + plain.len())
    }

    /// Opens a blob into its plaintext, sharing the blob's allocation.
    pub fn open_chunk(
        &self,
        id: &ChunkId,
        mut blob: Vec<u8>,
        check: ChunkCheck,
    ) -> Result<Bytes, ChunkProblem> {
        let range = self.open_chunk_in_place(id, &mut blob, check)?;
        Ok(Bytes::from(blob).slice(range))
    }

    /// Seals a record in the current epoch; `context` is authenticated but not
    /// stored.
    pub fn seal_record(
        &self,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, RandomnessError> {
        let sealer = self.epochs().current.clone();
        let nonce = random_nonce()?;
        let mut out = Vec::with_capacity(3 + NONCE_LEN + plaintext.len() + TAG_LEN);
        match sealer.hint {
            None => out.push(RECORD_VERSION),
            Some(hint) => {
                out.push(RECORD_VERSION_EPOCH);
                out.extend_from_slice(&hint);
            }
        }
        let header = out.len() + NONCE_LEN;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = sealer
            .record
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut out[header..],
            )
            .map_err(|_| RandomnessError("record too large for AES-GCM".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a record sealed with the same `context`, in whichever epoch it
    /// was sealed.
    pub fn open_record(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, RecordOpenError> {
        let (hint, rest) = match sealed.split_first() {
            Some((&RECORD_VERSION, rest)) => (None, rest),
            Some((&RECORD_VERSION_EPOCH, rest)) if rest.len() >= 2 => {
                (Some([rest[0], rest[1]]), &rest[2..])
            }
            _ => return Err(RecordOpenError::Failed),
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(RecordOpenError::Failed);
        }
        let epochs = self.epochs();
        let mut tried = false;
        for sealer in epochs.with_hint(hint) {
            tried = true;
            let nonce = Nonce::try_assume_unique_for_key(&rest[..NONCE_LEN])
                .map_err(|_| RecordOpenError::Failed)?;
            let mut plaintext = rest[NONCE_LEN..].to_vec();
            if let Ok(plain) =
                sealer
                    .record
                    .open_in_place(nonce, Aad::from(context), &mut plaintext)
            {
                let len = plain.len();
                plaintext.truncate(len);
                return Ok(plaintext);
            }
        }
        Err(if tried {
            RecordOpenError::Failed
        } else {
            RecordOpenError::UnknownEpoch
        })
    }

    /// True if `sealed` (a record) was sealed in the current epoch.
    pub fn record_is_current(&self, sealed: &[u8]) -> bool {
        let current = self.epochs().current.hint;
        match (sealed.first(), current) {
            (Some(&RECORD_VERSION), None) => true,
            (Some(&RECORD_VERSION_EPOCH), Some(hint)) => sealed.get(1..3) == Some(&hint[..]),
            _ => false,
        }
    }
}

/// The epoch hint in a blob's header (`None`: the vault key's epoch 0).
fn chunk_hint(blob: &[u8]) -> Result<Option<[u8; 2]>, ChunkProblem> {
    match blob.get(..CHUNK_MAGIC.len()) {
        Some(magic) if magic == CHUNK_MAGIC => Ok(None),
        Some(magic) if magic[..2] == EPOCH_CHUNK_MAGIC[..] => Ok(Some([magic[2], magic[3]])),
        _ => Err(ChunkProblem::Malformed),
    }
}

/// Associated data binding a catalogue record to its name id.
pub fn catalogue_context(name_id: &NameId) -> Vec<u8> {
    let mut context = b"peervault catalogue entry:".to_vec();
    context.extend_from_slice(&name_id.0);
    context
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NetworkKey;

    fn crypto() -> Crypto {
        Crypto::new(&NetworkKey::insecure_default().store_keys())
    }

    #[test]
    fn chunk_round_trip_and_layout() {
        let c = crypto();
        let (id, blob) = c.seal_chunk(b"hello chunk").unwrap();
        assert_eq!(blob.len(), 11 + CHUNK_OVERHEAD);
        assert!(!blob.windows(11).any(|w| w == b"hello chunk"));
        assert_eq!(
            &c.open_chunk(&id, blob, ChunkCheck::TagAndHash).unwrap()[..],
            b"hello chunk"
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let c = crypto();
        let (id, blob) = c.seal_chunk(&[7u8; 300]).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(
                c.open_chunk(&id, bad, ChunkCheck::Tag).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn a_member_sealing_wrong_content_under_an_id_is_caught_by_the_hash() {
        let c = crypto();
        let claimed = c.chunk_id(b"what the id promises");
        let mut buf = vec![0u8; CHUNK_HEADER_LEN];
        buf.extend_from_slice(b"something else");
        c.seal_chunk_in_place(&claimed, &mut buf).unwrap();
        assert!(
            c.open_chunk(&claimed, buf.clone(), ChunkCheck::Tag).is_ok(),
            "the tag alone cannot know"
        );
        assert_eq!(
            c.open_chunk(&claimed, buf, ChunkCheck::TagAndHash),
            Err(ChunkProblem::WrongHash)
        );
    }

    #[test]
    fn a_blob_under_another_id_fails() {
        let c = crypto();
        let (_, blob) = c.seal_chunk(b"a").unwrap();
        let other = c.chunk_id(b"b");
        assert_eq!(
            c.open_chunk(&other, blob, ChunkCheck::Tag),
            Err(ChunkProblem::BadTag)
        );
    }

    #[test]
    fn truncated_blobs_are_malformed() {
        let c = crypto();
        let (id, blob) = c.seal_chunk(b"abc").unwrap();
        for len in 0..CHUNK_OVERHEAD {
            assert_eq!(
                c.open_chunk(&id, blob[..len].to_vec(), ChunkCheck::Tag),
                Err(ChunkProblem::Malformed)
            );
        }
    }

    #[test]
    fn another_key_cannot_open() {
        let c = crypto();
        let other = Crypto::new(
            &NetworkKey::from_bytes([0x0e; 32], crate::keys::KeySource::Hex).store_keys(),
        );
        let (id, blob) = c.seal_chunk(b"secret").unwrap();
        assert!(other.open_chunk(&id, blob, ChunkCheck::Tag).is_err());
        let record = c.seal_record(b"ctx", b"record").unwrap();
        assert!(other.open_record(b"ctx", &record).is_err());
    }

    #[test]
    fn each_epoch_opens_only_what_was_sealed_in_it() {
        let c = crypto();
        let (id, old_blob) = c.seal_chunk(b"before").unwrap();
        let old_record = c.seal_record(b"ctx", b"old").unwrap();
        let one = EpochKey::generate(1).unwrap();
        c.set_epochs(std::slice::from_ref(&one));
        assert_eq!(c.current_epoch(), 1);
        let (id2, new_blob) = c.seal_chunk(b"after").unwrap();
        assert_eq!(
            new_blob.len(),
            5 + CHUNK_OVERHEAD,
            "the header keeps its length"
        );
        assert_eq!(&new_blob[..2], b"PE");
        let new_record = c.seal_record(b"ctx", b"new").unwrap();
        // This node opens both epochs.
        assert_eq!(
            &c.open_chunk(&id, old_blob.clone(), ChunkCheck::TagAndHash)
                .unwrap()[..],
            b"before"
        );
        assert_eq!(
            &c.open_chunk(&id2, new_blob.clone(), ChunkCheck::TagAndHash)
                .unwrap()[..],
            b"after"
        );
        assert_eq!(c.open_record(b"ctx", &old_record).unwrap(), b"old");
        assert_eq!(c.open_record(b"ctx", &new_record).unwrap(), b"new");
        assert_eq!(c.chunk_epoch(&old_blob), Some(0));
        assert_eq!(c.chunk_epoch(&new_blob), Some(1));
        assert!(c.record_is_current(&new_record) && !c.record_is_current(&old_record));
        // A node with only the vault key (a removed device) opens the old, not the new.
        let removed = crypto();
        assert!(removed.open_chunk(&id, old_blob, ChunkCheck::Tag).is_ok());
        assert_eq!(
            removed.open_chunk(&id2, new_blob.clone(), ChunkCheck::Tag),
            Err(ChunkProblem::UnknownEpoch)
        );
        assert_eq!(
            removed.open_record(b"ctx", &new_record),
            Err(RecordOpenError::UnknownEpoch)
        );
        // Another epoch 1 (started at once elsewhere) is another key.
        let other = crypto();
        other.set_epochs(&[EpochKey::generate(1).unwrap()]);
        assert!(
            other
                .open_chunk(&id2, new_blob.clone(), ChunkCheck::Tag)
                .is_err()
        );
        // Holding both, a node opens both and seals in the later of the two.
        let both = crypto();
        let two = EpochKey::generate(2).unwrap();
        both.set_epochs(&[two.clone(), one.clone()]);
        assert_eq!(both.current_epoch(), 2);
        assert!(both.open_chunk(&id2, new_blob, ChunkCheck::Tag).is_ok());
    }

    #[test]
    fn two_epoch_keys_with_one_hint_both_open() {
        let mut keys = Vec::new();
        let mut seen = std::collections::HashMap::new();
        // Find two keys whose hints collide (about 300 tries on average).
        for i in 0u32.. {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            let k = EpochKey { number: 1, key };
            if let Some(j) = seen.insert(k.hint(), i) {
                let mut other = [0u8; 32];
                other[..4].copy_from_slice(&u32::to_le_bytes(j));
                keys = vec![
                    EpochKey {
                        number: 1,
                        key: other,
                    },
                    k,
                ];
                break;
            }
        }
        let a = crypto();
        a.set_epochs(&keys[..1]);
        let (id, blob) = a.seal_chunk(b"first key").unwrap();
        let record = a.seal_record(b"c", b"r").unwrap();
        let both = crypto();
        both.set_epochs(&keys);
        assert_eq!(
            &both.open_chunk(&id, blob, ChunkCheck::Tag).unwrap()[..],
            b"first key"
        );
        assert_eq!(both.open_record(b"c", &record).unwrap(), b"r");
    }

    #[test]
    fn records_are_bound_to_their_context() {
        let c = crypto();
        let sealed = c.seal_record(b"place-1", b"payload").unwrap();
        assert_eq!(c.open_record(b"place-1", &sealed).unwrap(), b"payload");
        assert!(c.open_record(b"place-2", &sealed).is_err());
        assert!(c.open_record(b"place-1", &sealed[..5]).is_err());
    }
}
