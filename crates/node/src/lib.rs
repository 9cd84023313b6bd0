//! A PeerVault node as a library.
//!
//! [`Node`] is the one type front ends use: the binary's REPL and control socket,
//! the demo, and programs that embed PeerVault. It owns a data dir: the encrypted
//! vault ([`peervault_store`]), the node's identity ([`peervault_net`]) and the
//! quota file.

pub mod error;
pub mod node;
pub mod quota;
pub mod size;

pub use error::{ErrorKind, NodeError};
pub use node::{DamagedChunk, FileCheck, FileInfo, Node, NodeConfig, NodeStatus, QuotaSource};
pub use peervault_store::{
    ChunkProblem, DeleteOutcome, FileReader, KeySource, NetworkKey, StoreError, SweepReport,
    VerifyReport, WriteOutcome,
};
pub use quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};
pub use size::{HumanSize, parse_size};
