//! Errors of the node, with a coarse kind that clients can act on.

use std::time::Duration;

use peervault_net::{IdentityError, NetError, PeerId};
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
    /// An exchange with a peer failed; `context` says what was being done.
    #[error("{context}: {source}")]
    Peer {
        context: String,
        #[source]
        source: Box<PeerError>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Why an exchange with one peer failed. Peers fail as a matter of course in a
/// network; these are never the user's mistake, and reach clients as
/// [`ErrorKind::Unavailable`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("peer {peer} did not answer within {} s", .within.as_secs())]
    Timeout { peer: PeerId, within: Duration },
    #[error("peer {peer} is not reachable: {reason}")]
    Unreachable { peer: PeerId, reason: String },
    /// It answered with a refusal (a full quota, a newer version) or an error.
    #[error("peer {peer} refused: {reason}")]
    Refused { peer: PeerId, reason: String },
    /// Its answer does not fit the question.
    #[error("peer {peer} answered what was not asked: {what}")]
    BadAnswer { peer: PeerId, what: String },
    /// This node could not do its part (a chunk to send is missing or unreadable).
    #[error("{reason}")]
    Local { reason: String },
}

impl PeerError {
    /// A failure of the network layer in an exchange with `peer` that had
    /// `within` to finish.
    pub(crate) fn from_net(peer: PeerId, error: NetError, within: Duration) -> Self {
        match error {
            NetError::Timeout { .. } => PeerError::Timeout { peer, within },
            other => PeerError::Unreachable {
                peer,
                reason: other.to_string(),
            },
        }
    }

    /// The peer's own words for why it would not (an answer that refuses).
    pub(crate) fn refusal(peer: PeerId, response: crate::wire::Response) -> Self {
        use crate::wire::Response;
        match response {
            Response::Refused(r) => PeerError::Refused {
                peer,
                reason: r.to_string(),
            },
            Response::Error(e) => PeerError::Refused { peer, reason: e },
            other => PeerError::BadAnswer {
                peer,
                what: format!("{other:?}"),
            },
        }
    }

    /// In `context`, for a client.
    pub(crate) fn during(self, context: impl Into<String>) -> NodeError {
        NodeError::Peer {
            context: context.into(),
            source: Box::new(self),
        }
    }
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
            NodeError::Peer { .. } => ErrorKind::Unavailable,
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
