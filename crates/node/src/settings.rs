//! How a node is set up: [`NodeConfig`] and the settings it nests, each default
//! written once.
//!
//! The front end (the binary's flags, environment and config file) fills a
//! `NodeConfig`; the node hands the network its part and each component its
//! own. A default lives here, or in the layer that owns the setting
//! (`peervault_net` for discovery and connection limits), and nowhere else: the
//! binary's help texts and config-file handling read the same constants.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use peervault_net::{DEFAULT_MAX_PEERS, DEFAULT_PEX_INTERVAL};
use peervault_net::{Endpoint, NetSettings};
use peervault_store::DEFAULT_CHUNK_SIZE;
pub use peervault_store::budget::{DEFAULT_TRANSFER_MEMORY, MIN_TRANSFER_MEMORY};

use crate::keyring::KeyInput;

/// Copies kept of each file when not configured (counting the writer).
pub const DEFAULT_REPLICAS: u32 = 3;

/// How often each peer's catalogue is compared with ours when nothing prompts it.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where everything of this node lives.
    pub data_dir: PathBuf,
    /// Where the vault's key comes from: the data dir (the default: kept there, or
    /// made on the first start), the key itself, a passphrase, or a join code.
    pub key: KeyInput,
    /// How long a new node given only a passphrase waits for a bootstrap peer to
    /// tell it the vault's key-derivation parameters.
    pub kdf_query_patience: Duration,
    /// Set (and persist) this quota; `None` keeps the quota file's value, or the
    /// default if there is no file yet.
    pub quota_bytes: Option<u64>,
    /// Plaintext bytes per chunk for new files (the most a chunk holds when
    /// chunks are cut by content).
    pub chunk_size: u32,
    /// Cut new files' chunks by content, so a new version stores and sends
    /// only what changed.
    pub content_defined_chunks: bool,
    /// Addresses, bootstrap peers, discovery, connection limits (see
    /// [`NetSettings`]; `peervault_net` owns their defaults).
    pub net: NetSettings,
    /// Copies of each file to keep, counting the writer.
    pub replicas: Replicas,
    /// Erasure-code new files written here instead (`--redundancy K+M`): each
    /// chunk in K data and M parity shards on K+M nodes (see [`crate::coded`]).
    pub redundancy: Option<peervault_store::Redundancy>,
    /// Catalogue anti-entropy period.
    pub sync_interval: Duration,
    /// GC and repair timing.
    pub maintenance: MaintenanceConfig,
    /// How long deletions are remembered.
    pub tombstone_retention: Duration,
    /// Which superseded versions of a name are kept (see
    /// `peervault_store::history`); every node of a vault should use the same.
    pub versions: peervault_store::Retention,
    /// Bandwidth limits, node-wide (see [`crate::bandwidth`]); changeable at run
    /// time with [`crate::Node::set_limits`].
    pub limits: crate::bandwidth::RateLimits,
    /// Bytes of chunk buffers all transfers together may hold (S3, CLI,
    /// copies to peers, repair; see `peervault_store::budget`). More waits.
    pub transfer_memory: u64,
    /// Bytes per second `rekey --all` re-seals at most (see [`crate::rekey`]).
    pub rekey_rate: u64,
}

impl NodeConfig {
    /// Finds peers on the local network with mDNS (as `-discover-local`).
    pub fn enable_local_discovery(mut self) -> Self {
        self.net.discover_local = true;
        self
    }

    /// Exchanges peer lists with peers every `pex_interval` (as `-discover-pex`).
    pub fn enable_peer_exchange(mut self) -> Self {
        self.net.discover_pex = true;
        self
    }

    /// A configuration with defaults for everything but the data dir and key; it
    /// listens on an OS-chosen port of 127.0.0.1. `key` is a [`NetworkKey`] or any
    /// [`KeyInput`] (`KeyInput::Stored` for the data dir's own key).
    pub fn new(data_dir: impl Into<PathBuf>, key: impl Into<KeyInput>) -> Self {
        Self {
            data_dir: data_dir.into(),
            key: key.into(),
            kdf_query_patience: crate::keyring::KDF_QUERY_PATIENCE,
            quota_bytes: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            content_defined_chunks: true,
            net: NetSettings::new(vec![
                Endpoint::parse("127.0.0.1:0").unwrap_or_else(|_| unreachable!()),
            ]),
            replicas: Replicas::default(),
            redundancy: None,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            maintenance: MaintenanceConfig::default(),
            tombstone_retention: peervault_store::DEFAULT_TOMBSTONE_RETENTION,
            versions: peervault_store::Retention::default(),
            limits: crate::bandwidth::RateLimits::default(),
            transfer_memory: DEFAULT_TRANSFER_MEMORY,
            rekey_rate: crate::rekey::DEFAULT_REKEY_RATE,
        }
    }
}

/// How one file is kept, as its writer asks (`put --redundancy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keeping {
    /// As the node is configured (`--redundancy`, else `--replicas`).
    #[default]
    Configured,
    /// Whole copies, `--replicas` of them.
    Copies,
    /// Erasure coded.
    Coded(peervault_store::Redundancy),
}

impl Keeping {
    /// The coding a write asked to keep this way uses, given the node's own
    /// setting (`None`: whole copies).
    pub fn redundancy(
        self,
        configured: Option<peervault_store::Redundancy>,
    ) -> Option<peervault_store::Redundancy> {
        match self {
            Keeping::Configured => configured,
            Keeping::Copies => None,
            Keeping::Coded(r) => Some(r),
        }
    }

    /// How a client names it (`None`: as configured; see [`Keeping::parse`]).
    pub fn label(self) -> Option<String> {
        match self {
            Keeping::Configured => None,
            Keeping::Copies => Some("none".into()),
            Keeping::Coded(r) => Some(r.to_string()),
        }
    }

    /// Reads `K+M`, or `none` for whole copies (as `put --redundancy` takes it).
    pub fn parse(text: &str) -> Result<Keeping, String> {
        match text.trim() {
            "none" | "replicas" | "copies" => Ok(Keeping::Copies),
            other => peervault_store::Redundancy::parse(other)
                .map(Keeping::Coded)
                .map_err(|e| format!("{e}, or none for whole copies")),
        }
    }
}

/// How many copies of each file to keep, counting the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    Count(u32),
    /// One on every connected peer.
    All,
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas::Count(DEFAULT_REPLICAS)
    }
}

impl Replicas {
    /// Copies of each file wanted, counting this node, when `peers` are connected.
    pub fn target(self, peers: usize) -> usize {
        match self {
            Replicas::Count(n) => n.max(1) as usize,
            Replicas::All => peers + 1,
        }
    }
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replicas::Count(n) => write!(f, "{n}"),
            Replicas::All => f.write_str("all"),
        }
    }
}

/// How long GC waits after start before its first run.
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(5 * 60);
/// How often GC runs.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);
/// How old an unreferenced blob or temporary file must be before GC removes it.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(10 * 60);
/// How long a departed holder is waited for before its files are copied elsewhere.
pub const DEFAULT_REPAIR_DELAY: Duration = Duration::from_secs(10 * 60);

/// Settings of the maintenance workers.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub gc_delay: Duration,
    pub gc_interval: Duration,
    pub gc_grace: Duration,
    pub repair_delay: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            gc_delay: DEFAULT_GC_DELAY,
            gc_interval: DEFAULT_GC_INTERVAL,
            gc_grace: DEFAULT_GC_GRACE,
            repair_delay: DEFAULT_REPAIR_DELAY,
        }
    }
}
