//! PeerVault's storage layer: an encrypted, content-addressed, crash-safe file store.
//!
//! This crate knows files, chunks, keys and disks, and nothing of the network. The
//! node crate drives it; the wire layer moves the sealed blobs and records it
//! produces without ever seeing plaintext.
//!
//! * [`keys`]: the network key and its subkeys.
//! * [`crypto`]: sealing of chunks and records (AES-256-GCM, keyed BLAKE3 ids).
//! * [`budget`]: the memory budget every transfer's buffers are paid from.
//! * [`segments`]: blobs packed into segment files, with durable writes.
//! * [`catalogue`]: the redb metadata database.
//! * [`vault`]: the streaming façade used by the node.

pub mod budget;
pub mod buffers;
pub mod catalogue;
pub mod crypto;
pub mod direct;
pub mod erasure;
pub mod error;
pub mod files;
pub mod group;
pub mod history;
pub mod ids;
pub mod index;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod segments;
pub mod space;
pub mod tree_hash;
pub mod vault;
pub mod version;

pub use budget::{Lease, LeasedBytes, MemoryBudget};
pub use erasure::{Redundancy, ShardSet};
pub use error::{ChunkProblem, KeyError, StoreError};
pub use history::Retention;
pub use ids::{ChunkId, NameId, OriginId};
pub use keys::{EpochKey, KdfParams, KeyFingerprint, KeySource, NetworkKey, UserKey};
pub use manifest::{
    CatalogueEntry, CodedChunk, Coding, FileMeta, FileSummary, Manifest, ObjectMeta, Reencoding,
    Tombstone,
};
pub use names::{MAX_NAME_BYTES, NameError, validate_name};
pub use space::Usage;
pub use vault::{
    BlobLocation, BlobTap, DEFAULT_CHUNK_SIZE, DEFAULT_TOMBSTONE_RETENTION, Damage, DamageCounts,
    DataDirLock, DeleteOutcome, EpochCensus, FileReader, FinishMeta, GcReport, Held, Layout,
    Paying, ResealBatch, SweepReport, TappedBlob, Vault, VaultConfig, VerifyReport, WriteAs,
    WriteOutcome, stored_size_of,
};
pub use version::Version;
