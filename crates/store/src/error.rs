//! Errors of the store, worded for the person who will read them.
//!
//! Every variant says what happened and, where there is something to do, what to do
//! next: these messages reach users unchanged through the CLI and the REPL.

use std::io;
use std::path::PathBuf;

use crate::ids::ChunkId;
use crate::keys::KeyFingerprint;
use crate::names::NameError;

/// A network key could not be read or stretched.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the network key is empty: give 64 hex digits or a passphrase with --key or PEERVAULT_KEY"
    )]
    Empty,
    #[error("could not stretch the passphrase into a key: {0}")]
    Stretch(String),
    #[error(
        "the key looks like hex but has {0} hex digits; a raw key has exactly 64 \
         (e.g. from `openssl rand -hex 32`). Check that it was copied whole; a passphrase \
         must contain a character other than 0-9 and a-f"
    )]
    HexLength(usize),
    #[error("the key is not 64 hex digits")]
    NotHex,
    #[error("invalid key-derivation parameters: {0}")]
    Parameters(String),
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("metadata database error: {0}")]
    Database(String),

    #[error("no file named {name:?} in the vault (run `ls` to see what is stored)")]
    NotFound { name: String },

    #[error("invalid file name: {0}")]
    InvalidName(#[from] NameError),

    #[error(
        "integrity check failed for {name:?}: chunk {index} of {count} ({chunk}) {problem}; \
         no unverified bytes were returned. Run `verify` to see every damaged chunk"
    )]
    Integrity {
        name: String,
        index: usize,
        count: usize,
        chunk: ChunkId,
        problem: ChunkProblem,
    },

    #[error(
        "chunk {index} of {count} of {name:?} cannot be read: {reason}. Check that the \
         nodes holding it are running and connected (`peers`)"
    )]
    Unavailable {
        name: String,
        index: usize,
        count: usize,
        reason: String,
    },

    #[error(
        "not enough storage quota: this needs {needed} more bytes but only {available} of the \
         {limit}-byte quota are free. Delete files, or raise the quota while the node runs: \
         `peervault quota set SIZE` (`quota set SIZE` at the prompt)"
    )]
    QuotaExceeded {
        needed: u64,
        available: u64,
        limit: u64,
    },

    #[error(
        "the data dir {data_dir} was created with a different network key (its key fingerprint \
         is {stored}, the key given now has {given}). Start with the key this vault was created \
         with, or choose another --data-dir for a new vault"
    )]
    WrongKey {
        data_dir: PathBuf,
        stored: KeyFingerprint,
        given: KeyFingerprint,
    },

    #[error(
        "the data dir {data_dir} is in use by another PeerVault process; stop that node first \
         or choose another --data-dir"
    )]
    Locked { data_dir: PathBuf },

    #[error("stored metadata is damaged ({what}); the record cannot be decoded with this key")]
    CorruptRecord { what: String },

    #[error(
        "{what} is sealed with a key epoch this node does not hold yet; the other members hand \
         its key over when they connect"
    )]
    UnknownEpoch { what: String },

    #[error("the store is shutting down")]
    ShuttingDown,

    /// A request that cannot be done as asked, in words that say what to do.
    #[error("{0}")]
    Invalid(String),
}

/// Why a chunk failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkProblem {
    #[error("is missing from disk")]
    Missing,
    #[error("failed authentication (the encrypted bytes were altered)")]
    BadTag,
    #[error("does not hash to its id")]
    WrongHash,
    #[error("has an invalid size or header")]
    Malformed,
    #[error(
        "is sealed with a key epoch this node does not hold yet (the other members hand it \
         over when they connect)"
    )]
    UnknownEpoch,
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        let mut context = context.into();
        // The two disk conditions an operator can fix get words that say how.
        match source.raw_os_error() {
            Some(28) => context.push_str(
                " (the disk holding the data dir is full: free space on it, or lower --quota \
                 below what the disk can hold)",
            ),
            Some(30) => context.push_str(
                " (the data dir is on a read-only file system: remount it read-write, or \
                 choose another --data-dir)",
            ),
            _ => {}
        }
        StoreError::Io { context, source }
    }

    /// True for failures of the disk or the database (not of the caller's input):
    /// what `/health` reports as disk errors.
    pub fn is_disk_error(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Database(_))
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Shorthand used throughout the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
