//! A PeerVault node as a library.
//!
//! [`Node`] is the one type front ends use: the binary's REPL and control socket,
//! the demo, and programs that embed PeerVault. It owns a data dir (the encrypted
//! vault of [`peervault_store`], the node's identity, the quota file) and its place
//! in the network ([`peervault_net`]): it replicates what it stores, reads what it
//! lacks from peers, and keeps its catalogue in step with theirs.
//!
//! ```
//! use peervault_node::{KeyInput, Node, NodeConfig};
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let data_dir = dir.path().join("vault");
//! // Every node of one vault shares its key. The first node makes one at random and
//! // keeps it in its data dir; `node.invite()` gives the code other nodes join with
//! // (`KeyInput::Join`). A `NetworkKey` or a passphrase can be given instead.
//! let config = NodeConfig::new(&data_dir, KeyInput::Stored)
//!     .enable_local_discovery() // find nodes on the LAN with mDNS
//!     .enable_peer_exchange(); // learn nodes from nodes
//! let node = Node::start(config).await?;
//!
//! // Store from any AsyncRead; read back as an AsyncRead.
//! node.store("greeting.txt", &b"Hello, PeerVault!"[..], None).await?;
//! let mut text = String::new();
//! node.get_reader("greeting.txt").await?.read_to_string(&mut text).await?;
//! assert_eq!(text, "Hello, PeerVault!");
//!
//! let quota = node.quota();
//! println!("{} files, {} of {} bytes used", node.list().await?.len(), quota.used_bytes, quota.total_bytes);
//! println!("files stored: {}", node.metrics_snapshot().await.files.stored);
//!
//! node.delete("greeting.txt").await?;
//! node.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod bandwidth;
pub mod client;
pub mod cluster;
pub mod coded;
pub mod conduct;
mod context;
pub mod devices;
mod epochs;
mod error;
mod extras;
pub mod invitations;
pub mod keyring;
pub mod lanes;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod quota;
pub mod rekey;
mod remote_read;
pub mod replicate;
mod service;
pub mod settings;
pub mod size;
pub mod sync;
pub mod tasks;
pub mod throughput;
pub mod versions;
mod views;
mod window;
pub mod wire;
mod workers;
pub mod writes;

pub use bandwidth::RateLimits;
pub use cluster::{ClusterFile, ClusterNode, ClusterView};
pub use error::{ErrorKind, NodeError, PeerError};
pub use keyring::{JoinCode, KeyInput, KeyOrigin, KeyringError};
pub use metrics::{Health, Metrics, MetricsSnapshot};
pub use node::Node;
pub use peervault_net::{Endpoint, PeerId};
pub use peervault_store::files;
pub use peervault_store::tree_hash;
pub use peervault_store::{
    BlobLocation, ChunkId, ChunkProblem, DEFAULT_TOMBSTONE_RETENTION, DeleteOutcome, FileMeta,
    FileReader, FinishMeta, KdfParams, KeySource, NetworkKey, ObjectMeta, Redundancy, Retention,
    ShardSet, StoreError, SweepReport, VerifyReport, direct::QueuedWriter,
};
pub use quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};
pub use settings::{
    DEFAULT_GC_DELAY, DEFAULT_GC_GRACE, DEFAULT_GC_INTERVAL, DEFAULT_MAX_PEERS,
    DEFAULT_PEX_INTERVAL, DEFAULT_REPAIR_DELAY, DEFAULT_REPLICAS, DEFAULT_SYNC_INTERVAL,
    DEFAULT_TRANSFER_MEMORY, Keeping, MIN_TRANSFER_MEMORY, MaintenanceConfig, NodeConfig, Replicas,
};
pub use size::{HumanSize, parse_size};
pub use throughput::ThroughputPoint;
pub use versions::VersionInfo;
pub use views::{
    CleanReport, CopyProgress, DamagedChunk, DiscoveredPeer, DiscoveryStatus, FileCheck, FileInfo,
    GcSummary, Listing, NodeStatus, PeerStatus, QuotaSource, RepairRound, Replication, StoreReport,
    TransferMemory,
};
pub use workers::WorkerStatus;
