//! A PeerVault node as a library.
//!
//! [`Node`] is the one type front ends use: the binary's REPL and control socket,
//! the demo, and programs that embed PeerVault. It owns a data dir (the encrypted
//! vault of [`peervault_store`], the node's identity, the quota file) and its place
//! in the network ([`peervault_net`]): it replicates what it stores, reads what it
//! lacks from peers, and keeps its catalogue in step with theirs.

pub mod error;
pub mod maintenance;
pub mod metrics;
pub mod node;
pub mod quota;
pub mod replicate;
mod service;
pub mod size;
pub mod sync;
pub mod wire;

pub use error::{ErrorKind, NodeError};
pub use maintenance::{GcSummary, MaintenanceConfig, RepairRound};
pub use metrics::{Health, Metrics, MetricsSnapshot};
pub use node::{
    DEFAULT_MAX_PEERS, DEFAULT_SYNC_INTERVAL, DamagedChunk, DiscoveredPeer, DiscoveryStatus,
    FileCheck, FileInfo, Node, NodeConfig, NodeStatus, PeerStatus, QuotaSource, StoreReport,
};
pub use peervault_net::{Endpoint, PeerId};
pub use peervault_store::{
    ChunkProblem, DEFAULT_TOMBSTONE_RETENTION, DeleteOutcome, FileReader, KeySource, NetworkKey,
    StoreError, SweepReport, VerifyReport,
};
pub use quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};
pub use replicate::{Replicas, Replication};
pub use size::{HumanSize, parse_size};
