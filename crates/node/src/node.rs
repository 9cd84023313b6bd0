//! The [`Node`]: one PeerVault participant, usable as a library.
//!
//! A node owns its data dir (the encrypted vault, the persistent identity, the
//! quota file) and its place in the network. Every front end (the REPL, the
//! control socket behind the client subcommands, the demo, programs that embed
//! PeerVault) goes through this type, so they all behave alike.
//!
//! Work it does in the background, all stopped by [`Node::shutdown`]:
//! * answering peers' requests (see [`crate::service`]);
//! * catalogue anti-entropy with each peer on connect and every sync interval
//!   (see [`crate::sync`]);
//! * the integrity GC and the repair worker (see [`crate::maintenance`]).
//!
//! Debris a crash left (blobs nobody recorded or references) is removed at start,
//! before the node serves anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peervault_net::{Endpoint, NetConfig, NetEvent, NetHandle, NodeIdentity, PeerId, PeerInfo};
use peervault_store::{
    BlobLocation, ChunkId, DEFAULT_CHUNK_SIZE, DataDirLock, DeleteOutcome, FileReader, FileSummary,
    KeySource, Manifest, NameId, NetworkKey, OriginId, SweepReport, Vault, VaultConfig,
    VerifyReport, Version, WriteOutcome,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::error::{NodeError, Result};
use crate::keyring::{KeyInput, KeyOrigin};
use crate::maintenance::{MaintenanceConfig, MaintenanceState};
use crate::metrics::Metrics;
use crate::quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};
use crate::replicate::{CopyProgress, Replicas, Replication};

/// How often each peer's catalogue is compared with ours when nothing prompts it.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Connections a node opens by itself: enough for a small vault to be one mesh,
/// few enough that a large one stays sparse (the DHT finds the rest).
pub const DEFAULT_MAX_PEERS: usize = 32;

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
    /// Frames each direction of a peer connection carries under one key before it
    /// rekeys (lowered only by tests, to see many rekeys).
    pub rekey_interval_frames: u64,
    /// Set (and persist) this quota; `None` keeps the quota file's value, or the
    /// default if there is no file yet.
    pub quota_bytes: Option<u64>,
    /// Plaintext bytes per chunk for new files.
    pub chunk_size: u32,
    /// Where to listen for peers.
    pub listen: Vec<Endpoint>,
    /// Address announced to peers besides the listen addresses.
    pub advertise: Option<Endpoint>,
    /// Announce only `advertise`, not the listen addresses.
    pub advertise_only: bool,
    /// Relay for peers behind NAT (give it on nodes that peers can reach).
    pub relay_server: bool,
    /// Peers to join at start (redialled until they answer).
    pub bootstrap: Vec<Endpoint>,
    /// Announce the address peers observe for this node.
    pub public_ip: bool,
    /// Copies of each file to keep, counting the writer.
    pub replicas: Replicas,
    /// Catalogue anti-entropy period.
    pub sync_interval: Duration,
    /// Find peers on the local link (mDNS).
    pub discover_local: bool,
    /// Exchange peer lists every `pex_interval` (they are always exchanged on connect).
    pub discover_pex: bool,
    pub pex_interval: Duration,
    /// Connections the node opens to peers it learns about (more may dial it).
    pub max_peers: usize,
    /// GC and repair timing.
    pub maintenance: MaintenanceConfig,
    /// How long deletions are remembered.
    pub tombstone_retention: Duration,
}

impl NodeConfig {
    /// Finds peers on the local network with mDNS (as `-discover-local`).
    pub fn enable_local_discovery(mut self) -> Self {
        self.discover_local = true;
        self
    }

    /// Exchanges peer lists with peers every `pex_interval` (as `-discover-pex`).
    pub fn enable_peer_exchange(mut self) -> Self {
        self.discover_pex = true;
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
            rekey_interval_frames: peervault_net::channel::DEFAULT_REKEY_INTERVAL,
            quota_bytes: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            listen: vec![Endpoint::parse("127.0.0.1:0").unwrap_or_else(|_| unreachable!())],
            advertise: None,
            advertise_only: false,
            relay_server: false,
            bootstrap: Vec::new(),
            public_ip: false,
            replicas: Replicas::default(),
            sync_interval: DEFAULT_SYNC_INTERVAL,
            discover_local: false,
            discover_pex: false,
            pex_interval: Duration::from_secs(5 * 60),
            max_peers: DEFAULT_MAX_PEERS,
            maintenance: MaintenanceConfig::default(),
            tombstone_retention: peervault_store::DEFAULT_TOMBSTONE_RETENTION,
        }
    }
}

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
        }
    }
}

/// The vault's files as [`Node::listing`] found them: a summary and a count of
/// known copies per file, each made into a [`FileInfo`] only when it is sent or
/// serialized. A `FileInfo` costs ~300 bytes; holding 100,000 of them beside
/// the manifests they came from was most of what `ls` added to a node's memory.
#[derive(Debug)]
pub struct Listing {
    /// Files in the vault (the listing may hold only the first few).
    pub total: usize,
    files: Vec<(FileSummary, usize)>,
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
}

/// A running node. Cheap to clone; all clones are the same node.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) vault: Vault,
    pub(crate) net: NetHandle,
    identity: NodeIdentity,
    data_dir: PathBuf,
    /// The vault's key (for invitations and its fingerprint) and how it was found.
    key: NetworkKey,
    key_origin: KeyOrigin,
    pub(crate) started: Instant,
    pub(crate) started_unix_ms: u64,
    quota_source: QuotaSource,
    pub(crate) replicas: Replicas,
    /// Every task this node runs (see [`crate::tasks`]).
    pub(crate) tasks: crate::tasks::Tasks,
    pub(crate) metrics: Metrics,
    pub(crate) maintenance_config: MaintenanceConfig,
    pub(crate) maintenance: std::sync::Mutex<MaintenanceState>,
    /// One GC run at a time.
    pub(crate) gc_lock: tokio::sync::Mutex<()>,
    /// Standing in the vault, for the tombstone rule (see [`crate::sync`]).
    pub(crate) membership: std::sync::Mutex<crate::sync::Membership>,
    /// Bootstrap peers were given.
    has_bootstrap: bool,
    /// Recent offences of peers (see [`crate::conduct`]).
    pub(crate) conduct: std::sync::Mutex<crate::conduct::Conduct>,
    /// An address was given with `-advertise` (reachability is then not checked).
    advertised: bool,
    /// Only the advertised address is announced (`--advertise-only`): the listen
    /// addresses are not reachable from peers, so invitations leave them out.
    advertise_only: bool,
    /// Long-lived streams that chunks travel on (see [`crate::lanes`]).
    pub(crate) lanes: crate::lanes::Lanes,
}

impl Inner {
    /// True if having no peers is a problem: bootstrap peers were given, or this
    /// node has been part of a vault.
    pub(crate) fn expects_peers(&self) -> bool {
        self.has_bootstrap
            || self
                .membership
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .member_since_ms
                != 0
    }
}

impl Node {
    /// Opens the data dir (creating it on first start), joins the network and starts
    /// the background work.
    ///
    /// Fails with a message that says what to do if the data dir belongs to another
    /// network key, is used by another process, its quota file is damaged, or the
    /// listen address cannot be bound.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        let data_dir = config.data_dir.clone();
        // Lock first: the identity and quota files are only touched by the lock holder.
        let lock = {
            let data_dir = data_dir.clone();
            tokio::task::spawn_blocking(move || DataDirLock::acquire(&data_dir))
                .await
                .map_err(|e| NodeError::Invalid(format!("start-up task failed: {e}")))??
        };
        let resolved = crate::keyring::resolve(
            &data_dir,
            config.key.clone(),
            &config.bootstrap,
            config.kdf_query_patience,
        )
        .await?;
        let key = resolved.key.clone();
        let identity = NodeIdentity::load_or_create(&data_dir)?;
        let (quota_bytes, quota_source) = resolve_quota(&data_dir, config.quota_bytes)?;
        let peer_id = identity.peer_id();
        let vault = Vault::open_locked(
            VaultConfig {
                data_dir: data_dir.clone(),
                key: key.clone(),
                origin: OriginId::derive(&peer_id.to_bytes()),
                author: peer_id.to_string(),
                chunk_size: config.chunk_size,
                capacity_bytes: quota_bytes,
            },
            lock,
        )
        .await?;
        // The vault opened with this key (its fingerprint matched, or it is new):
        // now the key files may be written.
        resolved.persist(&data_dir)?;
        let mut bootstrap = config.bootstrap.clone();
        for addr in &resolved.join_addrs {
            // Circuit addresses in a code are not dialled as bootstrap peers.
            if let Ok(endpoint) = Endpoint::parse(&addr.to_string())
                && !bootstrap.contains(&endpoint)
            {
                bootstrap.push(endpoint);
            }
        }
        let mut net_config =
            NetConfig::new(identity.clone(), key.pnet_psk(), config.listen.clone());
        net_config.advertise = config.advertise.clone();
        net_config.advertise_only = config.advertise_only;
        net_config.relay_server = config.relay_server;
        net_config.rekey_interval = config.rekey_interval_frames;
        net_config.kdf_parameters = key.kdf_params().map(|p| p.to_text().into_bytes());
        let has_bootstrap = !bootstrap.is_empty();
        net_config.bootstrap = bootstrap;
        net_config.public_ip = config.public_ip;
        net_config.max_peers = config.max_peers;
        net_config.discover_local = config.discover_local;
        net_config.discover_pex = config.discover_pex;
        net_config.pex_interval = config.pex_interval;
        vault.set_tombstone_retention(config.tombstone_retention);
        // Debris of the previous run goes before anything can use it: no write is
        // in flight yet, so no grace period is needed. Not so under a new catalogue
        // (its database was moved aside to be rebuilt from peers): the blobs on
        // disk belong to files it will learn of, so only the GC's grace decides.
        let rebuilding = vault.catalogue_created() && vault.has_segments();
        if rebuilding {
            tracing::warn!(
                "new metadata database beside existing segment files: the catalogue is rebuilt \
                 from peers, and the space of chunks no file uses is reclaimed by the GC after \
                 its grace"
            );
        }
        match if rebuilding {
            Ok(SweepReport::default())
        } else {
            vault.sweep().await
        } {
            Ok(report) if report != SweepReport::default() => tracing::info!(
                "start-up clean-up removed {} unreferenced and {} unrecorded chunks ({} bytes)",
                report.unreferenced_removed,
                report.unrecorded_removed,
                report.bytes_freed
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("start-up clean-up failed: {e}"),
        }
        let membership = crate::sync::Membership::load(&vault).await;
        let network = peervault_net::start(net_config).await?;
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let tasks = crate::tasks::Tasks::default();
        let node = Node {
            inner: Arc::new(Inner {
                vault,
                net: network.handle,
                identity,
                data_dir,
                key,
                key_origin: resolved.origin,
                started: Instant::now(),
                started_unix_ms,
                quota_source,
                replicas: config.replicas,
                tasks: tasks.clone(),
                metrics: Metrics::new(),
                maintenance_config: config.maintenance.clone(),
                maintenance: std::sync::Mutex::new(MaintenanceState::default()),
                gc_lock: tokio::sync::Mutex::new(()),
                membership: std::sync::Mutex::new(membership),
                has_bootstrap,
                conduct: std::sync::Mutex::new(crate::conduct::Conduct::default()),
                advertised: config.advertise.is_some(),
                advertise_only: config.advertise_only,
                lanes: crate::lanes::Lanes::new(tasks),
            }),
        };
        node.spawn(crate::service::serve(node.clone(), network.inbound));
        node.spawn(crate::lanes::serve(node.clone(), network.chunk_streams));
        node.spawn(node.clone().watch_network(network.events));
        node.spawn(crate::sync::periodic(node.clone(), config.sync_interval));

        node.spawn(node.clone().provide_held_files());
        node.spawn(node.clone().gc_worker());
        node.spawn(node.clone().repair_worker());
        Ok(node)
    }

    /// Runs `work` until it ends or the node shuts down.
    pub(crate) fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(work);
    }

    async fn watch_network(self, mut events: mpsc::Receiver<NetEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                NetEvent::Connected(peer) => {
                    self.state().peer_connected(&peer);
                    let node = self.clone();
                    self.spawn(async move {
                        if let Err(e) = node.sync(peer, crate::sync::SyncKind::Connect).await {
                            tracing::debug!("catalogue sync with {peer} failed: {e}");
                        }
                    });
                }
                NetEvent::Disconnected(peer) => self.state().peer_departed(peer),
                NetEvent::KeyMismatch { .. } => {}
                NetEvent::Misbehaved { peer, what } => {
                    self.offence(peer, crate::conduct::Offence::Malformed, &what)
                        .await;
                }
            }
        }
    }

    /// Stops the background work and leaves the network. Requests still running get
    /// up to `grace` to finish.
    pub async fn shutdown(&self, grace: Duration) {
        let started = tokio::time::Instant::now();
        self.inner.net.shutdown();
        if !self.inner.tasks.stop(grace).await {
            tracing::warn!(
                "{} tasks still running after {grace:?}; abandoning them",
                self.inner.tasks.running()
            );
        }
        // Storage work a cancelled task left on a blocking thread ends by itself.
        let left = grace.saturating_sub(started.elapsed());
        if !self.inner.vault.wait_released(left).await {
            tracing::warn!(
                "the vault is still in use after {grace:?} (a reader not dropped?); the data \
                 dir stays locked until it is"
            );
        }
    }

    /// Stops the node, giving running requests a few seconds to finish.
    pub async fn stop(&self) {
        self.shutdown(Duration::from_secs(5)).await;
    }

    /// How the vault's key was found at start (made now, kept, given, joined).
    pub fn key_origin(&self) -> KeyOrigin {
        self.inner.key_origin
    }

    /// Where the vault's key came from.
    pub fn key_source(&self) -> KeySource {
        self.inner.key.source()
    }

    /// A join code for a new node (`peervault -join CODE`): the vault's key, this
    /// node's addresses (those peers on other hosts can dial first), and a
    /// passphrase vault's key-derivation parameters. Whoever holds it can join the
    /// vault and read everything in it.
    pub async fn invite(&self) -> Result<String> {
        let addresses = self.inner.net.addresses().await;
        let peer = self.inner.identity.peer_id();
        let listen: &[peervault_net::Multiaddr] = if self.inner.advertise_only {
            &[]
        } else {
            &addresses.listen
        };
        let mut addrs: Vec<peervault_net::Multiaddr> = addresses
            .external
            .iter()
            .chain(listen)
            .chain(&addresses.relayed)
            .cloned()
            .collect();
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|a| seen.insert(a.clone()));
        // Loopback last: useful only to a node on this machine.
        addrs.sort_by_key(|a| std::cmp::Reverse(peervault_net::address_scope(a)));
        let addrs = addrs
            .into_iter()
            .map(|a| a.clone().with_p2p(peer).unwrap_or(a))
            .collect();
        Ok(crate::keyring::JoinCode::new(&self.inner.key, addrs).to_text())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> String {
        self.inner.identity.peer_id().to_string()
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Where the quota in force came from.
    pub fn quota_source(&self) -> QuotaSource {
        self.inner.quota_source
    }

    /// The replication setting.
    pub fn replicas(&self) -> Replicas {
        self.inner.replicas
    }

    /// Stores everything `reader` yields under `name`, then copies it to peers until
    /// the replication target is met (or no more peers can take it). With
    /// `size_hint`, a file that cannot fit is refused before any byte is read.
    pub async fn store<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
    ) -> Result<StoreReport>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.store_watched(name, reader, size_hint, None).await
    }

    /// [`Node::store`], telling `progress` each time another copy is durable
    /// (after the local write: first 1 of the target, then one per holder).
    pub async fn store_watched<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    ) -> Result<StoreReport>
    where
        R: AsyncRead + Unpin + Send,
    {
        let holders = self.holders_for(name).await;
        let (tap, streaming) = if holders.is_empty() {
            (None, None)
        } else {
            let (tap, task) = self.stream_to(holders);
            (Some(tap), Some(task))
        };
        let written = self
            .inner
            .vault
            .write_file_tapped(name, reader, size_hint, tap)
            .await;
        if let Some(task) = streaming {
            let _ = task.await;
        }
        let out: WriteOutcome = written.inspect_err(|e| self.inner.metrics.failed(e))?;
        self.inner.metrics.files_stored.inc();
        self.provide(&out.manifest.name).await;
        let replication = self.replicate(&out.manifest, progress).await;
        self.announce(&out.manifest.name, &replication.holders);
        Ok(StoreReport {
            file: FileInfo::new(&out.manifest, true, replication.copies),
            stored_bytes: out.stored_bytes,
            replaced: out.replaced,
            replication,
        })
    }

    /// Opens `name` for reading: a stream of verified bytes. Chunks this node does
    /// not hold come from peers, several at a time.
    pub async fn get(&self, name: &str) -> Result<FileReader> {
        let source = self.chunk_source(name).await;
        let reader = self
            .inner
            .vault
            .read_file_with(name, Some(source))
            .await
            .inspect_err(|e| self.inner.metrics.failed(e))?;
        self.inner.metrics.files_retrieved.inc();
        Ok(reader)
    }

    /// The names of every file in the vault, sorted, from the local catalogue
    /// (no network round trip).
    pub async fn names(&self) -> Result<Vec<String>> {
        let files = self.inner.vault.list().await?;
        Ok(files.into_iter().map(|m| m.name).collect())
    }

    /// Opens `name` for reading as an [`AsyncRead`]: verified bytes, fetched from
    /// peers where this node lacks them. A failure midway is an I/O error.
    pub async fn get_reader(&self, name: &str) -> Result<impl AsyncRead + Send + Unpin + use<>> {
        let reader = self.get(name).await?;
        Ok(tokio_util::io::StreamReader::new(futures::StreamExt::map(
            reader,
            |piece| piece.map_err(std::io::Error::other),
        )))
    }

    /// Metadata of `name`.
    pub async fn stat(&self, name: &str) -> Result<FileInfo> {
        let manifest = self.inner.vault.stat(name).await?;
        let local = self.inner.vault.holds(&manifest).await?;
        Ok(FileInfo::new(&manifest, local, usize::from(local)))
    }

    /// Deletes `name` everywhere: a tombstone here, announced to every peer, and
    /// carried by catalogue sync to nodes that are offline now.
    pub async fn delete(&self, name: &str) -> Result<DeleteOutcome> {
        let out = self
            .inner
            .vault
            .delete(name)
            .await
            .inspect_err(|e| self.inner.metrics.failed(e))?;
        self.inner.metrics.files_deleted.inc();
        self.stop_providing(name).await;
        self.announce(name, &[]);
        Ok(out)
    }

    /// Every file, sorted by name, marking what this node holds and how many
    /// complete copies the connected peers report.
    pub async fn list(&self) -> Result<Vec<FileInfo>> {
        Ok(self.listing(usize::MAX).await?.iter().collect())
    }

    /// How many files the vault has, and the first `limit` of them by name as
    /// [`Node::list`] gives them, in a form that makes each [`FileInfo`] only as
    /// it is sent. Only those are asked about on the peers, so a dashboard
    /// showing the first few of 100,000 files does not make every peer check
    /// all of them.
    pub async fn listing(&self, limit: usize) -> Result<Listing> {
        let mut summaries = self.inner.vault.summaries().await?;
        let total = summaries.len();
        summaries.truncate(limit);
        let versions: Vec<(NameId, Version)> =
            summaries.iter().map(|(id, s)| (*id, s.version)).collect();
        let elsewhere = self.count_remote_copies(&versions).await;
        drop(versions);
        let files = summaries
            .into_iter()
            .zip(elsewhere)
            .map(|((_, s), elsewhere)| {
                let copies = usize::from(s.held) + elsewhere;
                (s, copies)
            })
            .collect();
        Ok(Listing { total, files })
    }

    /// Verifies one file, or all when `name` is `None` (chunks held here only).
    pub async fn verify(&self, name: Option<&str>) -> Result<Vec<FileCheck>> {
        let reports = match name {
            Some(name) => vec![self.inner.vault.verify_file(name).await?],
            None => self.inner.vault.verify_all().await?,
        };
        Ok(reports.iter().map(FileCheck::from).collect())
    }

    /// Where every chunk blob held here lies on disk (for inspection, and for
    /// tests that damage one on purpose).
    pub async fn blob_locations(&self) -> Result<Vec<(ChunkId, BlobLocation)>> {
        Ok(self.inner.vault.blob_locations().await?)
    }

    /// Removes unreferenced and unrecorded chunks now.
    pub async fn sweep(&self) -> Result<SweepReport> {
        Ok(self.inner.vault.sweep().await?)
    }

    /// Quota figures.
    pub fn quota(&self) -> QuotaStatus {
        let usage = self.inner.vault.usage();
        QuotaStatus::new(usage.used_bytes, usage.limit_bytes)
    }

    /// Fails early if `size` more bytes cannot be stored.
    pub fn check_fits(&self, size: u64) -> Result<()> {
        Ok(self.inner.vault.check_fits(size)?)
    }

    /// Changes the quota now and saves it to `.quota_config.json`.
    pub fn set_quota(&self, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Err(NodeError::Invalid(
                "a quota of 0 bytes would refuse every file; give a size such as 5GB".into(),
            ));
        }
        quota_file(&self.inner.data_dir, bytes).save(&self.inner.data_dir)?;
        self.inner.vault.set_capacity(bytes);
        Ok(())
    }

    /// Connected peers, numbered as `peers` shows them.
    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.inner
            .net
            .peers()
            .await
            .into_iter()
            .enumerate()
            .map(|(i, p)| peer_status(i + 1, p))
            .collect()
    }

    /// Finds a connected peer by number (as in `peers`), peer id, or address.
    pub async fn resolve_peer(&self, name: &str) -> Result<PeerId> {
        let peers = self.inner.net.peers().await;
        let name = name.trim();
        let found = if let Ok(number) = name.parse::<usize>() {
            number.checked_sub(1).and_then(|i| peers.get(i))
        } else {
            peers.iter().find(|p| {
                p.peer_id.to_string() == name
                    || p.address.to_string() == name
                    || p.listen_addrs.iter().any(|a| a.to_string() == name)
                    || Endpoint::parse(name)
                        .map(|e| {
                            e.to_multiaddr() == p.address
                                || p.listen_addrs.contains(&e.to_multiaddr())
                        })
                        .unwrap_or(false)
            })
        };
        found.map(|p| p.peer_id).ok_or_else(|| {
            NodeError::Invalid(format!(
                "no connected peer matches {name:?}; give a number from `peers` (1-{}), a peer id or an address",
                peers.len()
            ))
        })
    }

    /// What discovery knows (for `discover`).
    pub async fn discovery(&self) -> DiscoveryStatus {
        DiscoveryStatus::from(self.inner.net.discovery().await)
    }

    /// A snapshot for `status`.
    pub async fn status(&self) -> Result<NodeStatus> {
        let files = self.inner.vault.file_count();
        let addresses = self.inner.net.addresses().await;
        let connected = self.inner.net.peers().await;
        let peers = connected.len();
        let mut paths = std::collections::BTreeMap::new();
        for peer in &connected {
            *paths.entry(peer.path.to_string()).or_insert(0) += 1;
        }
        Ok(NodeStatus {
            peer_id: self.peer_id(),
            data_dir: self.inner.data_dir.clone(),
            listen_addrs: addresses.listen.iter().map(ToString::to_string).collect(),
            advertised_addrs: addresses.external.iter().map(ToString::to_string).collect(),
            peers_connected: peers,
            files,
            storage: self.quota(),
            replicas: self.inner.replicas.to_string(),
            uptime_seconds: self.inner.started.elapsed().as_secs_f64(),
            started_unix_ms: self.inner.started_unix_ms,
            key_fingerprint: self.inner.key.fingerprint().to_string(),
            insecure_default_key: self.inner.key.is_insecure_default(),
            key_source: self.inner.key.source().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            reachability: if self.inner.advertised {
                "as advertised (-advertise: not checked)".to_string()
            } else {
                addresses.reachability.clone()
            },
            relayed_addrs: addresses.relayed.iter().map(ToString::to_string).collect(),
            relay_service: addresses.relay_service,
            paths,
        })
    }
}

fn peer_status(number: usize, p: PeerInfo) -> PeerStatus {
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

fn quota_file(data_dir: &Path, bytes: u64) -> QuotaConfig {
    QuotaConfig {
        max_storage_bytes: bytes,
        storage_root: data_dir.display().to_string(),
    }
}

/// Decides the quota in force and makes sure the quota file says so.
fn resolve_quota(data_dir: &Path, configured: Option<u64>) -> Result<(u64, QuotaSource)> {
    if configured == Some(0) {
        return Err(NodeError::Invalid(
            "a quota of 0 bytes would refuse every file; give a size such as 5GB".into(),
        ));
    }
    let existing = QuotaConfig::load(data_dir)?;
    let (bytes, source) = match (configured, existing) {
        (Some(bytes), _) => (bytes, QuotaSource::Configured),
        (None, Some(file)) => return Ok((file.max_storage_bytes, QuotaSource::File)),
        (None, None) => (DEFAULT_QUOTA_BYTES, QuotaSource::Default),
    };
    quota_file(data_dir, bytes).save(data_dir)?;
    Ok((bytes, source))
}
