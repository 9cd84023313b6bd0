//! What front ends show: the node's answers, as plain data.
//!
//! These types are what `status`, `ls`, `peers`, `discover`, `verify` and the
//! dashboard print or serialise; their JSON shapes are part of the interface
//! (the original's where it had one). They are kept apart from [`crate::Node`]
//! so that the node's file reads as what it does, not as what it shows.

use std::path::PathBuf;

use peervault_net::{PeerId, PeerInfo};
use peervault_store::{FileMeta, FileSummary, Manifest, VerifyReport};
use serde::{Deserialize, Serialize};

use crate::error::PeerError;
use crate::quota::QuotaStatus;
use crate::workers::WorkerStatus;

/// Where the quota in force came from, so the front end can tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSource {
    /// Read from `.quota_config.json`.
    File,
    /// Given in the configuration (and now saved).
    Configured,
    /// No file and none given: the default (now saved).
    Default,
}

/// One file as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the contents, 64 hex digits (`b3sum` gives the same).
    pub hash: String,
    pub chunks: usize,
    /// Milliseconds since the Unix epoch when this version was written.
    pub modified_unix_ms: u64,
    /// Peer id of the node that wrote this version.
    pub author: String,
    /// True if this node holds every chunk of the file.
    #[serde(default)]
    pub local: bool,
    /// Nodes known to hold a complete copy (this one included), when counted.
    #[serde(default)]
    pub replicas: usize,
    /// "file", or "link" for a symbolic link stored by `put -r`.
    #[serde(rename = "type", default = "file_kind")]
    pub kind: String,
    /// What the file was on the disk it came from (mode, modification time,
    /// link target), when it was stored with `put -r`.
    #[serde(default)]
    pub meta: FileMeta,
    /// `K+M` when the file is erasure coded: its holders keep shards, any K
    /// of which rebuild it (then `replicas` counts shards, not copies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<String>,
}

fn file_kind() -> String {
    "file".into()
}

impl FileInfo {
    /// The listing of one version; `local` and `replicas` as known to the caller.
    pub fn new(m: &Manifest, local: bool, replicas: usize) -> Self {
        Self::summarised(&FileSummary::of(m, local), replicas)
    }

    /// The listing of a summarised version with `replicas` known copies.
    pub fn summarised(s: &FileSummary, replicas: usize) -> Self {
        Self {
            name: s.name.clone(),
            size: s.size,
            hash: s.hash_hex(),
            chunks: s.chunks,
            modified_unix_ms: s.version.unix_millis(),
            author: s.author.to_string(),
            local: s.held,
            replicas,
            kind: if s.meta.link_target.is_some() {
                "link"
            } else {
                "file"
            }
            .into(),
            meta: s.meta.clone(),
            redundancy: s.redundancy.map(|r| r.to_string()),
        }
    }
}

/// The vault's files as [`crate::Node::listing`] found them: a summary and a count of
/// known copies per file, each made into a [`FileInfo`] only when it is sent or
/// serialized. A `FileInfo` costs ~300 bytes; holding 100,000 of them beside
/// the manifests they came from was most of what `ls` added to a node's memory.
#[derive(Debug)]
pub struct Listing {
    /// Files in the vault (the listing may hold only the first few).
    pub total: usize,
    pub(crate) files: Vec<(FileSummary, usize)>,
}

impl Listing {
    /// The files in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = FileInfo> + '_ {
        self.files
            .iter()
            .map(|(s, copies)| FileInfo::summarised(s, *copies))
    }
}

/// A JSON array of [`FileInfo`], made one file at a time.
impl Serialize for Listing {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// What a store achieved.
#[derive(Debug, Clone)]
pub struct StoreReport {
    pub file: FileInfo,
    /// Bytes this write added to the local disk (deduplicated chunks add none).
    pub stored_bytes: u64,
    pub replaced: bool,
    pub replication: Replication,
}

/// The result of verifying one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub name: String,
    pub chunks: usize,
    /// False if this node holds none of it (only other nodes do): not checked here.
    #[serde(default = "held_by_default")]
    pub held: bool,
    /// Chunks that are missing or fail their hash or tag.
    pub damaged: Vec<DamagedChunk>,
}

/// One chunk that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    pub index: usize,
    /// The chunk id, 64 hex digits.
    pub chunk: String,
    /// What is wrong, in words.
    pub problem: String,
    /// The segment file its blob lies in, if one is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<PathBuf>,
    /// Where in the segment file the blob starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl FileCheck {
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

fn held_by_default() -> bool {
    true
}

impl From<&VerifyReport> for FileCheck {
    fn from(r: &VerifyReport) -> Self {
        Self {
            name: r.name.clone(),
            chunks: r.chunks,
            held: r.held,
            damaged: r
                .damaged
                .iter()
                .map(|d| DamagedChunk {
                    index: d.index,
                    chunk: d.chunk.to_hex(),
                    problem: d.problem.to_string(),
                    segment: d.location.as_ref().map(|at| at.path.clone()),
                    offset: d.location.as_ref().map(|at| at.offset),
                })
                .collect(),
        }
    }
}

/// A connected peer as `peers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Position in the `peers` table (1-based), usable to name the peer.
    pub number: usize,
    pub peer_id: String,
    pub address: String,
    /// How it was found: bootstrap, inbound, exchange, manual.
    pub source: String,
    pub rtt_ms: Option<f64>,
    pub last_seen_seconds: f64,
    pub connected_seconds: f64,
    pub agent: Option<String>,
    /// How the connection runs: direct, relayed or hole-punched.
    #[serde(default)]
    pub path: String,
}

/// One peer found by discovery, as `discover` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredPeer {
    pub peer_id: String,
    pub addresses: Vec<String>,
    /// bootstrap, mdns, pex, dht, inbound or manual.
    pub source: String,
    pub last_seen_seconds: f64,
    pub connected: bool,
    /// This node has been connected to it at some point.
    pub met: bool,
    /// A connection failed because it uses another network key.
    pub key_mismatch: bool,
}

/// What `discover` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryStatus {
    pub mdns_enabled: bool,
    pub pex_enabled: bool,
    /// Peers mDNS reports on the local network now.
    pub mdns: Vec<DiscoveredPeer>,
    /// Every peer in the address book, connected or not.
    pub known: Vec<DiscoveredPeer>,
    /// Peers in the DHT routing table.
    pub dht_routing_table: usize,
    /// Distinct peers discovered (the `peervault_peers_discovered` figure).
    pub peers_discovered: usize,
    /// Peer lists received since start, and peers first learnt of from them.
    #[serde(default)]
    pub pex_received: u64,
    #[serde(default)]
    pub pex_learnt: u64,
    /// Peers banned for sending invalid data, with the seconds their bans have left.
    #[serde(default)]
    pub banned: Vec<(String, u64)>,
}

impl PeerStatus {
    /// Heard from within 30 s, with a round trip under a second.
    pub fn is_healthy(&self) -> bool {
        self.last_seen_seconds <= 30.0 && self.rtt_ms.is_none_or(|rtt| rtt <= 1000.0)
    }

    /// Health in words, as the `peers` table and the dashboard show it.
    pub fn health(&self) -> &'static str {
        match (self.last_seen_seconds, self.rtt_ms) {
            (seen, _) if seen > 30.0 => "✗ Unresponsive",
            (_, Some(rtt)) if rtt > 1000.0 => "⚠ Slow",
            _ => "✓ Healthy",
        }
    }
}

fn discovered(p: &peervault_net::KnownPeer) -> DiscoveredPeer {
    DiscoveredPeer {
        peer_id: p.peer_id.to_string(),
        addresses: p.addrs.iter().map(ToString::to_string).collect(),
        source: p.source.to_string(),
        last_seen_seconds: p.last_seen.as_secs_f64(),
        connected: p.connected,
        met: p.met,
        key_mismatch: p.key_mismatch,
    }
}

impl From<peervault_net::Discovery> for DiscoveryStatus {
    fn from(d: peervault_net::Discovery) -> Self {
        Self {
            mdns_enabled: d.mdns_enabled,
            pex_enabled: d.pex_enabled,
            mdns: d.mdns.iter().map(discovered).collect(),
            peers_discovered: d.known.len(),
            known: d.known.iter().map(discovered).collect(),
            dht_routing_table: d.dht_routing_table,
            pex_received: d.pex_received,
            pex_learnt: d.pex_learnt,
            banned: d
                .banned
                .iter()
                .map(|(peer, left)| (peer.to_string(), left.as_secs()))
                .collect(),
        }
    }
}

/// A snapshot of the node for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub peer_id: String,
    pub data_dir: PathBuf,
    pub listen_addrs: Vec<String>,
    pub advertised_addrs: Vec<String>,
    pub peers_connected: usize,
    pub files: usize,
    pub storage: QuotaStatus,
    pub replicas: String,
    pub uptime_seconds: f64,
    pub started_unix_ms: u64,
    pub key_fingerprint: String,
    pub insecure_default_key: bool,
    /// Where the key came from: generated, joined, passphrase, hex key, or the
    /// public default of an older data dir.
    #[serde(default)]
    pub key_source: String,
    pub version: String,
    /// Whether peers can dial this node: public, private (behind NAT) or unknown.
    #[serde(default)]
    pub reachability: String,
    /// Addresses through relays, held while behind NAT.
    #[serde(default)]
    pub relayed_addrs: Vec<String>,
    /// This node relays for peers behind NAT (`--relay`).
    #[serde(default)]
    pub relay_service: bool,
    /// Connected peers by how their connection runs: direct, relayed, hole-punched.
    #[serde(default)]
    pub paths: std::collections::BTreeMap<String, usize>,
    /// What the background workers (GC, repair) are doing.
    #[serde(default)]
    pub workers: Vec<WorkerStatus>,
    /// Bandwidth limits in force.
    #[serde(default)]
    pub limits: crate::bandwidth::RateLimits,
    /// The memory of transfers (see `peervault_store::budget`).
    #[serde(default)]
    pub transfer_memory: TransferMemory,
    /// The key epoch new data is sealed in (0: the vault key; see
    /// `crate::devices`).
    #[serde(default)]
    pub key_epoch: u32,
    /// Member devices this node knows of.
    #[serde(default)]
    pub members: usize,
    /// Where re-encryption after `rekey --all` stands (see `crate::rekey`).
    #[serde(default)]
    pub rekey: crate::rekey::RekeyStatus,
}

/// How much of the transfer budget is in use, and has been.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferMemory {
    pub budget_bytes: u64,
    pub in_use_bytes: u64,
    /// The most in use at once since the node started.
    pub peak_bytes: u64,
    /// Times a transfer waited for buffers.
    pub waits: u64,
}

impl TransferMemory {
    pub(crate) fn of(budget: &peervault_store::MemoryBudget) -> Self {
        TransferMemory {
            budget_bytes: budget.total(),
            in_use_bytes: budget.in_use(),
            peak_bytes: budget.peak(),
            waits: budget.waits(),
        }
    }
}

pub(crate) fn peer_status(number: usize, p: PeerInfo) -> PeerStatus {
    PeerStatus {
        number,
        peer_id: p.peer_id.to_string(),
        address: p.address.to_string(),
        source: p.source.to_string(),
        rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
        last_seen_seconds: p.last_seen.as_secs_f64(),
        connected_seconds: p.connected_for.as_secs_f64(),
        agent: p.agent,
        path: p.path.to_string(),
    }
}

/// What a replication achieved.
#[derive(Debug, Clone, Default)]
pub struct Replication {
    /// Copies wanted, counting this node.
    pub target: usize,
    /// Durable copies reached, counting this node.
    pub copies: usize,
    /// Peers that now hold a copy.
    pub holders: Vec<PeerId>,
    /// Peers that could not take a copy, and why.
    pub failures: Vec<(PeerId, PeerError)>,
}

impl Replication {
    pub fn complete(&self) -> bool {
        self.copies >= self.target
    }

    /// One line per peer that took no copy, saying which and why.
    pub fn failure_lines(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|(peer, why)| match why {
                PeerError::Local { .. } => format!("{peer}: {why}"),
                _ => why.to_string(),
            })
            .collect()
    }
}

/// Copies of a file being stored, as they become durable (for progress displays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyProgress {
    /// Durable copies so far, counting this node.
    pub copies: usize,
    /// Copies wanted, counting this node.
    pub target: usize,
}

/// The outcome of one GC run, as `gc` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcSummary {
    /// Chunks checked (hash and tag).
    pub checked: usize,
    /// Chunks found damaged or missing (quarantined).
    pub corrupted: usize,
    /// Of those, restored from a peer.
    pub repaired: usize,
    /// Chunks no live file references, and runs of space no chunk record names
    /// (left by interrupted writes).
    pub orphaned: usize,
    /// Of those, the ones removed (older than the grace period).
    pub removed: usize,
    pub bytes_freed: u64,
    /// Tombstones past the retention period, collected.
    pub tombstones_collected: usize,
    pub duration_ms: u64,
    /// When the run finished (Unix ms).
    pub finished_unix_ms: u64,
}

impl GcSummary {
    /// The log line, in the original's words plus what it did not report.
    pub fn line(&self) -> String {
        format!(
            "Garbage collection completed in {:.1}s: {} corrupted, {} orphaned, {} removed ({} repaired, {} checked, {} tombstones collected)",
            self.duration_ms as f64 / 1000.0,
            self.corrupted,
            self.orphaned,
            self.removed,
            self.repaired,
            self.checked,
            self.tombstones_collected,
        )
    }
}

/// What `clean` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Files this node held completely before.
    pub files: Vec<String>,
    /// Chunk blobs removed (also of files held only in part).
    pub chunks: usize,
    pub bytes_freed: u64,
}

/// What the repair worker did in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRound {
    /// Files this node holds and checked.
    pub checked: usize,
    /// Files with fewer live copies than the target.
    pub under_replicated: usize,
    /// Copies made this round.
    pub copies_made: usize,
    /// Surplus copies this node dropped.
    pub copies_dropped: usize,
}
