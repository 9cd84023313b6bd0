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

use crate::erasure::{Redundancy, ShardSet};
use crate::ids::ChunkId;
use crate::version::Version;

/// Entries are written in this format: format 2 added [`FileMeta`], format 3
/// [`Tombstone::purge`], format 4 [`FileMeta::object`], format 5
/// [`Manifest::coding`].
const ENTRY_FORMAT: u8 = 5;
/// Entries written before [`Manifest::coding`] existed; still read.
const ENTRY_FORMAT_V4: u8 = 4;
/// Entries written before [`FileMeta::object`] existed; still read.
const ENTRY_FORMAT_V3: u8 = 3;
/// Entries written before [`Tombstone::purge`] existed; still read.
const ENTRY_FORMAT_V2: u8 = 2;
/// Entries written before [`FileMeta`] existed; still read.
const ENTRY_FORMAT_V1: u8 = 1;

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
    /// What the file was on the disk it came from (`put -r`).
    pub meta: FileMeta,
    /// Each chunk's plaintext length when chunks were cut by content (see
    /// [`crate::vault`]'s writer); empty for fixed-size chunks, whose lengths
    /// follow from `size` and `chunk_size`.
    pub lengths: Vec<u32>,
    /// How the chunks are kept when the file is erasure coded (each chunk's
    /// sealed blob cut into shards, see [`crate::erasure`]); `None` when
    /// every holder keeps whole chunks.
    pub coding: Option<Box<Coding>>,
    /// The version this one keeps anew (the same bytes and metadata, stored
    /// another way: whole copies or shards, see the node's re-encoder), and
    /// when. That version is kept as history only for a grace period (see
    /// [`crate::history`]): nothing of it is lost.
    pub reencodes: Option<Reencoding>,
}

/// What a re-encoded version keeps anew, and when it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reencoding {
    pub of: Version,
    /// Wall-clock time of the re-encoding (Unix ms): the version's own clock
    /// is one tick after `of`'s, which says nothing of when.
    pub at_ms: u64,
}

/// The shards of an erasure-coded file: per chunk, the length of its sealed
/// blob and the ids of its shards. A shard is a blob of its own (see
/// [`crate::crypto::SHARD_MAGIC`]), stored, copied, checked and collected by
/// its id as a chunk is, so that every node can tell which shards of a file
/// it holds from the ids alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    pub redundancy: Redundancy,
    pub chunks: Vec<CodedChunk>,
}

/// One chunk of a coded file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodedChunk {
    /// Bytes of the sealed blob that the shards rebuild.
    pub blob_len: u32,
    /// The shards' ids by index: the data shards, then the parity shards.
    pub shards: Vec<ChunkId>,
}

/// A manifest as format 4 wrote it (no [`Manifest::coding`]).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ManifestV4 {
    name: String,
    size: u64,
    hash: [u8; 32],
    chunk_size: u32,
    chunks: Vec<ChunkId>,
    version: Version,
    author: String,
    meta: FileMeta,
    lengths: Vec<u32>,
}

impl From<ManifestV4> for Manifest {
    fn from(m: ManifestV4) -> Self {
        Manifest {
            name: m.name,
            size: m.size,
            hash: m.hash,
            chunk_size: m.chunk_size,
            chunks: m.chunks,
            version: m.version,
            author: m.author,
            meta: m.meta,
            lengths: m.lengths,
            coding: None,
            reencodes: None,
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum EntryV4 {
    File(ManifestV4),
    Deleted(Tombstone),
}

impl From<EntryV4> for CatalogueEntry {
    fn from(old: EntryV4) -> Self {
        match old {
            EntryV4::File(m) => CatalogueEntry::File(m.into()),
            EntryV4::Deleted(t) => CatalogueEntry::Deleted(t),
        }
    }
}

/// What a file was on the disk it came from, so that `get -r` gives a tree
/// back as it was. Nothing is known of a file stored from a pipe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Unix permission bits (0o644 and the like).
    pub mode: Option<u32>,
    /// Modification time, milliseconds since the Unix epoch (negative before it).
    pub modified_unix_ms: Option<i64>,
    /// For a symbolic link: where it points (the link is stored, not followed,
    /// and the content is empty).
    pub link_target: Option<String>,
    /// What an S3 client stored with the object (ETag, content type, user
    /// metadata), when it came through the gateway.
    pub object: Option<Box<ObjectMeta>>,
}

/// What S3 keeps with an object besides its bytes. The ETag is computed as the
/// object is written (MD5 of the content for a single upload, S3's multipart
/// form for a multipart one), because clients compare it with their own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Without quotes: 32 hex digits, or `<hex>-<parts>` after a multipart upload.
    pub etag: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// `x-amz-meta-*` headers, names lower-case without the prefix, sorted.
    pub user: Vec<(String, String)>,
}

/// [`FileMeta`] as formats 2 and 3 wrote it (no [`FileMeta::object`]).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct FileMetaV3 {
    mode: Option<u32>,
    modified_unix_ms: Option<i64>,
    link_target: Option<String>,
}

/// A manifest as formats 2 and 3 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ManifestV3 {
    name: String,
    size: u64,
    hash: [u8; 32],
    chunk_size: u32,
    chunks: Vec<ChunkId>,
    version: Version,
    author: String,
    meta: FileMetaV3,
    lengths: Vec<u32>,
}

impl From<ManifestV3> for Manifest {
    fn from(m: ManifestV3) -> Self {
        Manifest {
            name: m.name,
            size: m.size,
            hash: m.hash,
            chunk_size: m.chunk_size,
            chunks: m.chunks,
            version: m.version,
            author: m.author,
            meta: FileMeta {
                mode: m.meta.mode,
                modified_unix_ms: m.meta.modified_unix_ms,
                link_target: m.meta.link_target,
                object: None,
            },
            lengths: m.lengths,
            coding: None,
            reencodes: None,
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum EntryV3 {
    File(ManifestV3),
    Deleted(Tombstone),
}

impl From<EntryV3> for CatalogueEntry {
    fn from(old: EntryV3) -> Self {
        match old {
            EntryV3::File(m) => CatalogueEntry::File(m.into()),
            EntryV3::Deleted(t) => CatalogueEntry::Deleted(t),
        }
    }
}

/// A manifest as format 1 wrote it (no [`FileMeta`]).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ManifestV1 {
    name: String,
    size: u64,
    hash: [u8; 32],
    chunk_size: u32,
    chunks: Vec<ChunkId>,
    version: Version,
    author: String,
}

/// A tombstone as formats 1 and 2 wrote it (no purge).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct TombstoneV2 {
    name: String,
    version: Version,
    author: String,
}

impl From<TombstoneV2> for Tombstone {
    fn from(t: TombstoneV2) -> Self {
        Tombstone {
            name: t.name,
            version: t.version,
            author: t.author,
            purge: false,
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum EntryV2 {
    File(ManifestV3),
    Deleted(TombstoneV2),
}

impl From<EntryV2> for CatalogueEntry {
    fn from(old: EntryV2) -> Self {
        match old {
            EntryV2::File(m) => CatalogueEntry::File(m.into()),
            EntryV2::Deleted(t) => CatalogueEntry::Deleted(t.into()),
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum EntryV1 {
    File(ManifestV1),
    Deleted(TombstoneV2),
}

impl From<EntryV1> for CatalogueEntry {
    fn from(old: EntryV1) -> Self {
        match old {
            EntryV1::File(m) => CatalogueEntry::File(Manifest {
                name: m.name,
                size: m.size,
                hash: m.hash,
                chunk_size: m.chunk_size,
                chunks: m.chunks,
                version: m.version,
                author: m.author,
                meta: FileMeta::default(),
                lengths: Vec::new(),
                coding: None,
                reencodes: None,
            }),
            EntryV1::Deleted(t) => CatalogueEntry::Deleted(t.into()),
        }
    }
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
    pub meta: FileMeta,
    /// How the file is coded, if it is (its holders hold shards).
    pub redundancy: Option<Redundancy>,
    /// When this version's bytes were sealed (Unix ms): its re-encoding's
    /// time if it is one (see [`Reencoding`]), else its own.
    pub sealed_ms: u64,
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
            meta: manifest.meta.clone(),
            redundancy: manifest.redundancy(),
            sealed_ms: manifest
                .reencodes
                .as_ref()
                .map_or(manifest.version.unix_millis(), |r| r.at_ms),
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
    /// Deleted for good (`rm --purge`): every older version of the name goes
    /// too, on every node, and cannot be brought back (see [`crate::history`]).
    pub purge: bool,
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
        if !self.lengths.is_empty() {
            return self.lengths.get(index).map_or(0, |l| *l as usize);
        }
        let start = index as u64 * u64::from(self.chunk_size);
        (self.size.saturating_sub(start)).min(u64::from(self.chunk_size)) as usize
    }

    /// The hash as hex.
    pub fn hash_hex(&self) -> String {
        hash_hex(&self.hash)
    }

    /// How the file is coded, if it is.
    pub fn redundancy(&self) -> Option<Redundancy> {
        self.coding.as_ref().map(|c| c.redundancy)
    }

    /// The ids of every blob this version is kept in: its chunks, or every
    /// shard of a coded file (what reference counts and the GC go by).
    pub fn blobs(&self) -> std::borrow::Cow<'_, [ChunkId]> {
        match &self.coding {
            None => std::borrow::Cow::Borrowed(&self.chunks),
            Some(coding) => std::borrow::Cow::Owned(
                coding
                    .chunks
                    .iter()
                    .flat_map(|c| c.shards.iter().copied())
                    .collect(),
            ),
        }
    }

    /// The id of shard `shard` of chunk `index` of a coded file.
    pub fn shard_id(&self, index: usize, shard: usize) -> Option<ChunkId> {
        self.coding
            .as_ref()?
            .chunks
            .get(index)?
            .shards
            .get(shard)
            .copied()
    }

    /// The ids of the shards in `set` of every chunk (nothing for a file
    /// that is not coded).
    pub fn shard_blobs(&self, set: ShardSet) -> Vec<ChunkId> {
        let Some(coding) = &self.coding else {
            return Vec::new();
        };
        coding
            .chunks
            .iter()
            .flat_map(|c| {
                c.shards
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| set.contains(*i))
                    .map(|(_, id)| *id)
            })
            .collect()
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(DecodeError::Inconsistent("chunk size out of range"));
        }
        if let Some(coding) = &self.coding {
            let redundancy = coding
                .redundancy
                .checked()
                .map_err(|_| DecodeError::Inconsistent("redundancy out of range"))?;
            if coding.chunks.len() != self.chunks.len() {
                return Err(DecodeError::Inconsistent("one coded entry per chunk"));
            }
            let max_blob = u64::from(self.chunk_size) + crate::crypto::CHUNK_OVERHEAD as u64;
            if coding
                .chunks
                .iter()
                .any(|c| c.shards.len() != redundancy.total() || u64::from(c.blob_len) > max_blob)
            {
                return Err(DecodeError::Inconsistent(
                    "a coded chunk with the wrong number of shards or too long a blob",
                ));
            }
        }
        if !self.lengths.is_empty() {
            if self.lengths.len() != self.chunks.len() {
                return Err(DecodeError::Inconsistent("one length per chunk"));
            }
            if self.lengths.iter().any(|l| *l == 0 || *l > self.chunk_size) {
                return Err(DecodeError::Inconsistent("chunk length out of range"));
            }
            let total: u64 = self.lengths.iter().map(|l| u64::from(*l)).sum();
            if total != self.size {
                return Err(DecodeError::Inconsistent(
                    "chunk lengths do not add up to size",
                ));
            }
            return Ok(());
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
        let entry: CatalogueEntry = match format {
            ENTRY_FORMAT => postcard::from_bytes(body)?,
            ENTRY_FORMAT_V4 => postcard::from_bytes::<EntryV4>(body)?.into(),
            ENTRY_FORMAT_V3 => postcard::from_bytes::<EntryV3>(body)?.into(),
            ENTRY_FORMAT_V2 => postcard::from_bytes::<EntryV2>(body)?.into(),
            ENTRY_FORMAT_V1 => postcard::from_bytes::<EntryV1>(body)?.into(),
            other => return Err(DecodeError::UnknownFormat(other)),
        };
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
            meta: FileMeta::default(),
            lengths: Vec::new(),
            coding: None,
            reencodes: None,
        }
    }

    #[test]
    fn coded_manifests_round_trip_and_inconsistent_coding_is_rejected() {
        let mut m = manifest(2500, 1000);
        let r = Redundancy::new(2, 1).unwrap();
        let coded = |i: u8| CodedChunk {
            blob_len: 1032,
            shards: (0..3).map(|j| ChunkId([i * 3 + j; 32])).collect(),
        };
        m.coding = Some(Box::new(Coding {
            redundancy: r,
            chunks: (0..3).map(coded).collect(),
        }));
        let entry = CatalogueEntry::File(m.clone());
        assert_eq!(CatalogueEntry::decode(&entry.encode()).unwrap(), entry);
        assert_eq!(m.blobs().len(), 9);
        assert_eq!(
            m.shard_blobs(ShardSet::one(1)),
            [ChunkId([1; 32]), ChunkId([4; 32]), ChunkId([7; 32])]
        );
        let mut short = m.clone();
        short.coding.as_mut().unwrap().chunks.pop();
        let mut wrong = m.clone();
        wrong.coding.as_mut().unwrap().chunks[1].shards.pop();
        let mut long = m;
        long.coding.as_mut().unwrap().chunks[0].blob_len = 5000;
        for bad in [short, wrong, long] {
            assert!(CatalogueEntry::decode(&CatalogueEntry::File(bad).encode()).is_err());
        }
    }

    #[test]
    fn content_defined_lengths_must_add_up() {
        let mut m = manifest(10, 8);
        m.chunks = vec![ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32])];
        m.lengths = vec![3, 3, 4];
        let entry = CatalogueEntry::File(m.clone());
        let back = CatalogueEntry::decode(&entry.encode()).unwrap();
        assert_eq!(back, entry);
        assert_eq!(m.chunk_len(2), 4);
        for bad in [vec![3, 3], vec![3, 3, 5], vec![0, 6, 4], vec![1, 9, 0]] {
            let mut m = m.clone();
            m.lengths = bad.clone();
            let encoded = CatalogueEntry::File(m).encode();
            assert!(CatalogueEntry::decode(&encoded).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entries_of_formats_1_and_2_still_read_and_new_ones_keep_their_meta() {
        let m = manifest(10, 4);
        let old = EntryV1::File(ManifestV1 {
            name: m.name.clone(),
            size: m.size,
            hash: m.hash,
            chunk_size: m.chunk_size,
            chunks: m.chunks.clone(),
            version: m.version,
            author: m.author.clone(),
        });
        let mut bytes = vec![ENTRY_FORMAT_V1];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        assert_eq!(
            CatalogueEntry::decode(&bytes).unwrap(),
            CatalogueEntry::File(m.clone())
        );
        let mut with_meta = m;
        with_meta.meta = FileMeta {
            mode: Some(0o755),
            modified_unix_ms: Some(-1000),
            link_target: Some("../x".into()),
            object: None,
        };
        let entry = CatalogueEntry::File(with_meta.clone());
        assert_eq!(CatalogueEntry::decode(&entry.encode()).unwrap(), entry);
        // Formats 2 and 3: the same manifest without object metadata, and (2)
        // tombstones without `purge`.
        let v3 = || ManifestV3 {
            name: with_meta.name.clone(),
            size: with_meta.size,
            hash: with_meta.hash,
            chunk_size: with_meta.chunk_size,
            chunks: with_meta.chunks.clone(),
            version: with_meta.version,
            author: with_meta.author.clone(),
            meta: FileMetaV3 {
                mode: Some(0o755),
                modified_unix_ms: Some(-1000),
                link_target: Some("../x".into()),
            },
            lengths: Vec::new(),
        };
        let mut bytes = vec![ENTRY_FORMAT_V2];
        bytes.extend(postcard::to_stdvec(&EntryV2::File(v3())).unwrap());
        assert_eq!(CatalogueEntry::decode(&bytes).unwrap(), entry);
        let mut bytes = vec![ENTRY_FORMAT_V3];
        bytes.extend(postcard::to_stdvec(&EntryV3::File(v3())).unwrap());
        assert_eq!(CatalogueEntry::decode(&bytes).unwrap(), entry);
        // Format 4: no coding.
        let v4 = ManifestV4 {
            name: with_meta.name.clone(),
            size: with_meta.size,
            hash: with_meta.hash,
            chunk_size: with_meta.chunk_size,
            chunks: with_meta.chunks.clone(),
            version: with_meta.version,
            author: with_meta.author.clone(),
            meta: with_meta.meta.clone(),
            lengths: Vec::new(),
        };
        let mut bytes = vec![ENTRY_FORMAT_V4];
        bytes.extend(postcard::to_stdvec(&EntryV4::File(v4)).unwrap());
        assert_eq!(CatalogueEntry::decode(&bytes).unwrap(), entry);
        // Format 4 keeps what an S3 client stored.
        let mut object = with_meta.clone();
        object.meta.object = Some(Box::new(ObjectMeta {
            etag: "0123456789abcdef0123456789abcdef-3".into(),
            content_type: Some("text/plain".into()),
            user: vec![("mtime".into(), "1700000000".into())],
            ..ObjectMeta::default()
        }));
        let object = CatalogueEntry::File(object);
        assert_eq!(CatalogueEntry::decode(&object.encode()).unwrap(), object);
        let old = EntryV2::Deleted(TombstoneV2 {
            name: "x".into(),
            version: with_meta.version,
            author: "a".into(),
        });
        let mut bytes = vec![ENTRY_FORMAT_V2];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        assert!(matches!(
            CatalogueEntry::decode(&bytes).unwrap(),
            CatalogueEntry::Deleted(Tombstone { purge: false, .. })
        ));
        assert!(matches!(
            CatalogueEntry::decode(&[9, 0]),
            Err(DecodeError::UnknownFormat(9))
        ));
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
                CatalogueEntry::Deleted(Tombstone { name, version: m.version, author: m.author.clone(), purge: size % 2 == 0 })
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
