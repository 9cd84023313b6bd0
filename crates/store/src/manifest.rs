//! Manifests, tombstones and their encoding.
//!
//! A [`Manifest`] describes one version of a file: its name, size, BLAKE3 hash of
//! the plaintext, the chunk size and the ids of its chunks in order. A
//! [`Tombstone`] records that a name was deleted. Either is a [`CatalogueEntry`]:
//! the catalogue keeps, per name, only the entry with the greatest [`Version`].
//!
//! Entries are encoded with postcard behind a one-byte format version, then sealed
//! (see [`crate::crypto`]). Decoding is strict: a manifest whose chunk list does not
//! match its size and chunk size is rejected rather than trusted, because the
//! reader computes every chunk's length from those two numbers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::ChunkId;
use crate::version::Version;

const ENTRY_FORMAT: u8 = 1;

/// Largest chunk size a manifest may declare (the default is 1 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// One version of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the whole plaintext (unkeyed, so `b3sum` of the file matches).
    pub hash: [u8; 32],
    pub chunk_size: u32,
    pub chunks: Vec<ChunkId>,
    pub version: Version,
    /// Peer id of the node that wrote this version.
    pub author: String,
}

/// A live file as listings show it: its manifest without the chunk list, and
/// whether this node holds every chunk. A listing of 100,000 files holds one of
/// these per file (~150 bytes) rather than the manifest and the reply built from
/// it side by side, which was ~1 KB per file of a node's peak memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub size: u64,
    pub hash: [u8; 32],
    pub chunks: usize,
    pub version: Version,
    /// Shared by every file of one writer (a vault has few).
    pub author: Arc<str>,
    pub held: bool,
}

impl FileSummary {
    /// The summary of `manifest`.
    pub fn of(manifest: &Manifest, held: bool) -> Self {
        let author = Arc::from(manifest.author.as_str());
        Self::with(manifest, manifest.name.clone(), author, held)
    }

    /// The summary of `manifest`, consumed, with `author` standing for its author.
    pub fn from_manifest(mut manifest: Manifest, author: Arc<str>, held: bool) -> Self {
        let name = std::mem::take(&mut manifest.name);
        Self::with(&manifest, name, author, held)
    }

    fn with(manifest: &Manifest, name: String, author: Arc<str>, held: bool) -> Self {
        Self {
            name,
            size: manifest.size,
            hash: manifest.hash,
            chunks: manifest.chunks.len(),
            version: manifest.version,
            author,
            held,
        }
    }

    /// The hash as hex.
    pub fn hash_hex(&self) -> String {
        hash_hex(&self.hash)
    }
}

fn hash_hex(hash: &[u8; 32]) -> String {
    // blake3's encoder, not `hex::encode`: it goes a byte, not a char, at a
    // time, which showed in profiles of `ls` on 100,000 files.
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// A deletion of a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub name: String,
    pub version: Version,
    pub author: String,
}

/// What the catalogue holds for a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogueEntry {
    File(Manifest),
    Deleted(Tombstone),
}

/// Why bytes did not decode into an entry.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown entry format {0}")]
    UnknownFormat(u8),
    #[error("empty entry")]
    Empty,
    #[error("undecodable entry: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("inconsistent manifest: {0}")]
    Inconsistent(&'static str),
}

impl Manifest {
    /// Number of chunks a file of `size` bytes has with chunks of `chunk_size`.
    pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
        size.div_ceil(u64::from(chunk_size.max(1)))
    }

    /// Plaintext length of chunk `index`.
    pub fn chunk_len(&self, index: usize) -> usize {
        let start = index as u64 * u64::from(self.chunk_size);
        (self.size.saturating_sub(start)).min(u64::from(self.chunk_size)) as usize
    }

    /// The hash as hex.
    pub fn hash_hex(&self) -> String {
        hash_hex(&self.hash)
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(DecodeError::Inconsistent("chunk size out of range"));
        }
        if Manifest::chunk_count(self.size, self.chunk_size) != self.chunks.len() as u64 {
            return Err(DecodeError::Inconsistent("chunk count does not match size"));
        }
        Ok(())
    }
}

impl CatalogueEntry {
    pub fn name(&self) -> &str {
        match self {
            CatalogueEntry::File(m) => &m.name,
            CatalogueEntry::Deleted(t) => &t.name,
        }
    }

    pub fn version(&self) -> Version {
        match self {
            CatalogueEntry::File(m) => m.version,
            CatalogueEntry::Deleted(t) => t.version,
        }
    }

    pub fn as_file(&self) -> Option<&Manifest> {
        match self {
            CatalogueEntry::File(m) => Some(m),
            CatalogueEntry::Deleted(_) => None,
        }
    }

    /// Serialises behind the format byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENTRY_FORMAT];
        // Serialising owned, well-formed data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Strict inverse of [`CatalogueEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&format, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if format != ENTRY_FORMAT {
            return Err(DecodeError::UnknownFormat(format));
        }
        let entry: CatalogueEntry = postcard::from_bytes(body)?;
        if let CatalogueEntry::File(m) = &entry {
            m.check()?;
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OriginId;
    use proptest::prelude::*;

    fn manifest(size: u64, chunk_size: u32) -> Manifest {
        let n = Manifest::chunk_count(size, chunk_size) as usize;
        Manifest {
            name: "a/b.txt".into(),
            size,
            hash: [3; 32],
            chunk_size,
            chunks: (0..n).map(|i| ChunkId([i as u8; 32])).collect(),
            version: Version {
                clock: 42,
                origin: OriginId([9; 16]),
            },
            author: "12D3KooW".into(),
        }
    }

    #[test]
    fn chunk_lengths_cover_the_file() {
        let m = manifest(2500, 1000);
        assert_eq!(m.chunks.len(), 3);
        assert_eq!(
            (m.chunk_len(0), m.chunk_len(1), m.chunk_len(2)),
            (1000, 1000, 500)
        );
        assert_eq!(manifest(0, 1000).chunks.len(), 0);
        assert_eq!(manifest(1000, 1000).chunks.len(), 1);
    }

    #[test]
    fn inconsistent_manifests_are_rejected() {
        let mut m = manifest(2500, 1000);
        m.chunks.pop();
        let bytes = CatalogueEntry::File(m).encode();
        assert!(matches!(
            CatalogueEntry::decode(&bytes),
            Err(DecodeError::Inconsistent(_))
        ));
        let mut zero = manifest(0, 1000);
        zero.chunk_size = 0;
        assert!(CatalogueEntry::decode(&CatalogueEntry::File(zero).encode()).is_err());
    }

    #[test]
    fn unknown_formats_are_rejected() {
        assert!(matches!(
            CatalogueEntry::decode(&[]),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            CatalogueEntry::decode(&[9, 0]),
            Err(DecodeError::UnknownFormat(9))
        ));
    }

    proptest! {
        #[test]
        fn entries_round_trip(size in 0u64..50_000, chunk in 1u32..4096, name in ".{0,40}", deleted: bool) {
            let mut m = manifest(size, chunk);
            m.name = name.clone();
            let entry = if deleted {
                CatalogueEntry::Deleted(Tombstone { name, version: m.version, author: m.author.clone() })
            } else {
                CatalogueEntry::File(m)
            };
            prop_assert_eq!(CatalogueEntry::decode(&entry.encode()).unwrap(), entry);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = CatalogueEntry::decode(&bytes);
        }
    }
}
