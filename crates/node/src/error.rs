//! Errors of the node, with a coarse kind that clients can act on.

use peervault_net::{IdentityError, NetError};
use peervault_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::keyring::KeyringError;
use crate::quota::QuotaFileError;

/// Anything a node operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    QuotaFile(#[from] QuotaFileError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("{0}")]
    Invalid(String),
}

/// What kind of failure, for scripts and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    InvalidInput,
    QuotaExceeded,
    Integrity,
    WrongKey,
    Busy,
    /// Data exists but no reachable node could supply it.
    Unavailable,
    Other,
}

impl NodeError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Store(e) => match e {
                StoreError::NotFound { .. } => ErrorKind::NotFound,
                StoreError::InvalidName(_) => ErrorKind::InvalidInput,
                StoreError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
                StoreError::Integrity { .. } => ErrorKind::Integrity,
                StoreError::WrongKey { .. } => ErrorKind::WrongKey,
                StoreError::Locked { .. } => ErrorKind::Busy,
                StoreError::Unavailable { .. } => ErrorKind::Unavailable,
                _ => ErrorKind::Other,
            },
            NodeError::Invalid(_) => ErrorKind::InvalidInput,
            NodeError::Keyring(
                KeyringError::OtherVault(_)
                | KeyringError::NotAPassphraseVault(_)
                | KeyringError::PassphraseNeeded(_),
            ) => ErrorKind::WrongKey,
            NodeError::Keyring(KeyringError::Key(_) | KeyringError::BadJoinCode(_)) => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Other,
        }
    }
}

/// Shorthand for node results.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;
