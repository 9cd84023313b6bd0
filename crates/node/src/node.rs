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

use peervault_net::{Endpoint, NetConfig, NetEvent, NodeIdentity, PeerId};
use peervault_store::{
    BlobLocation, ChunkId, DataDirLock, DeleteOutcome, FileMeta, FileReader, KeySource, Manifest,
    NameId, NetworkKey, OriginId, Paying, SweepReport, Vault, VaultConfig, Version,
};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::bandwidth::RateLimits;
use crate::cluster::{Cluster, ClusterView};
use crate::context::Context;
use crate::error::{NodeError, Result};
use crate::keyring::KeyOrigin;
use crate::maintenance::{GcWorker, Maintenance, RepairWorker};
use crate::metrics::{Health, MetricsSnapshot, NodeFacts, PeerLabel};
use crate::quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};
use crate::replicate::Replicator;
use crate::service::Responder;
use crate::settings::{Keeping, NodeConfig, Replicas};
use crate::sync::{SyncStats, Syncer};
use crate::throughput::Throughput;
use crate::views::{
    CleanReport, CopyProgress, DiscoveryStatus, FileCheck, FileInfo, GcSummary, Listing,
    NodeStatus, PeerStatus, QuotaSource, RepairRound, StoreReport, peer_status,
};
use crate::workers::{WorkerStatus, Workers};
use crate::writes::Write;

/// A running node. Cheap to clone; all clones are the same node.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The handles every component shares (see [`crate::context`]).
    pub(crate) ctx: Arc<Context>,
    pub(crate) replicator: Replicator,
    pub(crate) syncer: Syncer,
    cluster: Cluster,
    /// The last hour of traffic (see [`crate::throughput`]).
    throughput: Throughput,
    pub(crate) maintenance: Maintenance,
    pub(crate) rekeyer: crate::rekey::Rekeyer,
    pub(crate) writer: crate::writes::Writer,
    pub(crate) reencoder: crate::writes::Reencoder,
    /// The background workers' statuses (see [`crate::workers`]).
    workers: Workers,
    pub(crate) identity: NodeIdentity,
    data_dir: PathBuf,
    /// The vault's key (for invitations and its fingerprint) and how it was found.
    key: NetworkKey,
    key_origin: KeyOrigin,
    started: Instant,
    pub(crate) started_unix_ms: u64,
    quota_source: QuotaSource,
    /// Bootstrap peers were given.
    has_bootstrap: bool,
    /// An address was given with `-advertise` (reachability is then not checked).
    advertised: bool,
    /// Only the advertised address is announced (`--advertise-only`): the listen
    /// addresses are not reachable from peers, so invitations leave them out.
    advertise_only: bool,
}

impl Inner {
    /// True if having no peers is a problem: bootstrap peers were given, or this
    /// node has been part of a vault.
    fn expects_peers(&self) -> bool {
        self.has_bootstrap || self.syncer.membership().member_since_ms != 0
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
        let identity = NodeIdentity::load_or_create(&data_dir)?;
        let resolved = crate::keyring::resolve(
            &data_dir,
            config.key.clone(),
            &config.net.bootstrap,
            config.kdf_query_patience,
            &identity,
        )
        .await?;
        let key = resolved.key.clone();
        let (quota_bytes, quota_source) = resolve_quota(&data_dir, config.quota_bytes)?;
        let peer_id = identity.peer_id();
        let vault = Vault::open_locked(
            VaultConfig {
                data_dir: data_dir.clone(),
                key: key.clone(),
                origin: OriginId::derive(&peer_id.to_bytes()),
                author: peer_id.to_string(),
                chunk_size: config.chunk_size,
                content_defined_chunks: config.content_defined_chunks,
                capacity_bytes: quota_bytes,
                retention: config.versions,
                budget: peervault_store::MemoryBudget::new(config.transfer_memory),
            },
            lock,
        )
        .await?;
        // The vault opened with this key (its fingerprint matched, or it is new):
        // now the key files may be written.
        resolved.persist(&data_dir)?;
        // The network gets the operator's settings as they are, plus the
        // addresses of a join code as bootstrap peers (circuit addresses in a
        // code are not dialled as such).
        let mut settings = config.net.clone();
        for addr in &resolved.join_addrs {
            if let Ok(endpoint) = Endpoint::parse(&addr.to_string())
                && !settings.bootstrap.contains(&endpoint)
            {
                settings.bootstrap.push(endpoint);
            }
        }
        let has_bootstrap = !settings.bootstrap.is_empty();
        // Key epochs after the vault key's (see `devices`, `epochs`), with
        // those an invitation's welcome brought.
        let mut epochs = crate::epochs::load(&data_dir)?;
        if crate::epochs::merge(&mut epochs, resolved.epochs.clone()) {
            crate::epochs::save(&data_dir, &epochs)?;
        }
        vault.set_epochs(&epochs);
        let (used_tx, used_rx) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(crate::devices::VaultGate::new(
            key.pnet_psk(),
            crate::devices::VaultSecrets {
                root: zeroize::Zeroizing::new(*key.root()),
                kdf: key.kdf_params().map(|p| p.to_text()),
                identity: identity.keypair().clone(),
            },
            epochs.clone(),
            used_tx,
        ));
        let devices = Arc::new(crate::devices::Devices::new(
            gate.clone(),
            identity.keypair().clone(),
            data_dir.clone(),
            epochs,
        ));
        devices.set_registry(crate::devices::Registry::load(&vault).await?);
        // Removals a welcome brought are known before any connection.
        devices.take_removals(&resolved.removals);
        let mut net_config = NetConfig::new(identity.clone(), gate, settings);
        net_config.kdf_parameters = key.kdf_params().map(|p| p.to_text().into_bytes());
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
        let ctx = Arc::new(Context::new(
            vault,
            network.handle,
            config.replicas,
            config.redundancy,
            &data_dir,
            config.limits,
            devices,
        ));
        let replicator = Replicator::new(ctx.clone());
        let syncer = Syncer::new(ctx.clone(), replicator.clone(), membership);
        let maintenance =
            Maintenance::new(ctx.clone(), replicator.clone(), config.maintenance.clone());
        let responder = Responder::new(ctx.clone(), replicator.clone(), syncer.clone());
        ctx.spawn(crate::service::serve(responder.clone(), network.inbound));
        ctx.spawn(crate::lanes::serve(responder, network.chunk_streams));
        ctx.spawn(crate::sync::periodic(syncer.clone(), config.sync_interval));
        ctx.spawn(replicator.clone().provide_held_files());
        let throughput = Throughput::default();
        ctx.spawn(throughput.clone().sample(ctx.clone()));
        let workers = Workers::default();
        workers.start(&ctx.tasks, GcWorker(maintenance.clone()));
        workers.start(&ctx.tasks, RepairWorker(maintenance.clone()));
        let rekeyer = crate::rekey::Rekeyer::new(ctx.clone(), &data_dir, config.rekey_rate);
        workers.start(&ctx.tasks, crate::rekey::RekeyWorker(rekeyer.clone()));
        let writer = crate::writes::Writer::new(ctx.clone(), replicator.clone(), syncer.clone());
        let reencoder = crate::writes::Reencoder::new(
            ctx.clone(),
            replicator.clone(),
            writer.clone(),
            config.maintenance.repair_delay,
        );
        workers.start(&ctx.tasks, crate::writes::ReencodeWorker(reencoder.clone()));
        let node = Node {
            inner: Arc::new(Inner {
                ctx: ctx.clone(),
                cluster: Cluster::new(ctx.clone(), replicator.clone()),
                throughput: throughput.clone(),
                replicator,
                syncer,
                maintenance,
                rekeyer,
                writer,
                reencoder,
                workers,
                identity,
                data_dir,
                key,
                key_origin: resolved.origin,
                started: Instant::now(),
                started_unix_ms,
                quota_source,
                has_bootstrap,
                advertised: config.net.advertise.is_some(),
                advertise_only: config.net.advertise_only,
            }),
        };
        ctx.spawn(node.clone().watch_network(network.events));
        ctx.spawn(node.clone().watch_devices());
        ctx.spawn(node.clone().watch_invitations(used_rx));
        Ok(node)
    }

    async fn watch_network(self, mut events: mpsc::Receiver<NetEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                NetEvent::Connected(peer) => {
                    if !self.device_connected(peer).await {
                        continue;
                    }
                    self.inner.maintenance.peer_connected(&peer);
                    let syncer = self.inner.syncer.clone();
                    let node = self.clone();
                    self.inner.ctx.spawn(async move {
                        match syncer.sync(peer, crate::sync::SyncKind::Connect).await {
                            Ok(_) => node.record_self().await,
                            Err(e) => tracing::debug!("catalogue sync with {peer} failed: {e}"),
                        }
                    });
                }
                NetEvent::Disconnected(peer) => {
                    self.inner
                        .ctx
                        .devices
                        .seen(peer, peervault_store::version::unix_millis_now());
                    self.inner.maintenance.peer_departed(peer)
                }
                NetEvent::KeyMismatch { .. } => {}
                NetEvent::Misbehaved { peer, what } => {
                    let offence = crate::conduct::Offence::Malformed;
                    self.inner.ctx.offence(peer, offence, &what).await;
                }
            }
        }
    }

    /// Stops the background work and leaves the network. Requests still running get
    /// up to `grace` to finish.
    pub async fn shutdown(&self, grace: Duration) {
        let started = tokio::time::Instant::now();
        self.inner.ctx.net.shutdown();
        if !self.inner.ctx.tasks.stop(grace).await {
            tracing::warn!(
                "{} tasks still running after {grace:?}; abandoning them",
                self.inner.ctx.tasks.running()
            );
        }
        // Storage work a cancelled task left on a blocking thread ends by itself.
        let left = grace.saturating_sub(started.elapsed());
        if !self.inner.ctx.vault.wait_released(left).await {
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

    /// The addresses an invitation carries: those peers on other hosts can
    /// dial first, loopback last, each with this node's peer id.
    pub(crate) async fn invite_addresses(&self) -> Vec<peervault_net::Multiaddr> {
        let addresses = self.inner.ctx.net.addresses().await;
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
        addrs.truncate(8);
        addrs
            .into_iter()
            .map(|a| a.clone().with_p2p(peer).unwrap_or(a))
            .collect()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> String {
        self.inner.identity.peer_id().to_string()
    }

    /// The bandwidth limits in force.
    pub fn limits(&self) -> RateLimits {
        self.inner.ctx.bandwidth.limits()
    }

    /// Changes the bandwidth limits now (transfers waiting see the change at
    /// once); they last until the node stops.
    pub fn set_limits(&self, limits: RateLimits) {
        self.inner.ctx.bandwidth.set(limits);
        tracing::info!(
            "bandwidth limits: upload {}, download {}",
            crate::bandwidth::describe(limits.upload_bytes_per_second),
            crate::bandwidth::describe(limits.download_bytes_per_second)
        );
    }

    /// How long the node has run.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
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
        self.inner.ctx.replicas
    }

    /// How new files are erasure coded, if they are: the vault's setting,
    /// else `--redundancy` (see [`crate::writes`]).
    pub fn redundancy(&self) -> Option<peervault_store::Redundancy> {
        self.inner.ctx.redundancy()
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
        self.store_watched(name, FileMeta::default(), reader, size_hint, None)
            .await
    }

    /// [`Node::store`], telling `progress` each time another copy is durable
    /// (after the local write: first 1 of the target, then one per holder).
    pub async fn store_watched<R>(
        &self,
        name: &str,
        meta: FileMeta,
        reader: R,
        size_hint: Option<u64>,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    ) -> Result<StoreReport>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.store_kept(name, meta, reader, size_hint, progress, Keeping::Configured)
            .await
    }

    /// [`Node::store_watched`], the file kept as `keeping` says (whole
    /// copies, or erasure coded) rather than as the node is configured.
    pub async fn store_kept<R>(
        &self,
        name: &str,
        meta: FileMeta,
        reader: R,
        size_hint: Option<u64>,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
        keeping: Keeping,
    ) -> Result<StoreReport>
    where
        R: AsyncRead + Unpin + Send,
    {
        crate::objects::refuse_reserved(name)?;
        let write = Write {
            name,
            placed_with: name,
            finish: Box::new(move || Ok(meta)),
            size_hint,
            progress,
            keeping,
            reencodes: None,
        };
        let (report, _) = self.write_replicated(write, reader).await?;
        Ok(report)
    }

    /// Writes `name` here while streaming its new chunks (or shards) to the
    /// holders that placement picks, then replicates and announces it (see
    /// [`crate::writes::Writer`]). Returns the manifest written too.
    pub(crate) async fn write_replicated<R>(
        &self,
        write: Write<'_>,
        reader: R,
    ) -> Result<(StoreReport, Manifest)>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.inner.writer.write(write, reader).await
    }

    /// Spreads a version written here from chunks already stored (a revived
    /// version, a composed object): replicated like a write if this node holds
    /// all of it, else only announced, since the nodes that hold its chunks
    /// hold it completely as soon as the record reaches them (their repair
    /// rounds keep its copies). Returns whether this node holds it and the
    /// copies made.
    pub(crate) async fn spread(&self, manifest: &Manifest) -> Result<(bool, usize)> {
        let name = &manifest.name;
        // A coded version made of shards already placed is held, shard by
        // shard, by the nodes that hold them.
        let syncer = &self.inner.syncer;
        if manifest.coding.is_some() {
            syncer.announce_version(name, manifest.version, &[]);
            return Ok((self.inner.ctx.vault.holds(manifest).await?, 0));
        }
        if !self.inner.ctx.vault.holds(manifest).await? {
            syncer.announce_version(name, manifest.version, &[]);
            return Ok((false, 0));
        }
        self.inner.replicator.provide(name).await;
        let replication = self.inner.replicator.replicate(manifest, None).await;
        syncer.announce_version(name, manifest.version, &replication.holders);
        Ok((true, replication.copies))
    }

    /// Opens `name` for reading: a stream of verified bytes. Chunks this node does
    /// not hold come from peers, several at a time.
    pub async fn get(&self, name: &str) -> Result<FileReader> {
        self.open(name, None, None).await
    }

    /// Opens the bytes in `range` (all if `None`) of `version` (the current one
    /// if `None`) of `name`, chunks this node lacks fetched from peers.
    pub(crate) async fn open(
        &self,
        name: &str,
        version: Option<Version>,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<FileReader> {
        self.open_paying(name, version, range, Paying::Budget).await
    }

    /// [`Node::open`], its chunks paid for as `paying` says.
    pub(crate) async fn open_paying(
        &self,
        name: &str,
        version: Option<Version>,
        range: Option<std::ops::Range<u64>>,
        paying: Paying,
    ) -> Result<FileReader> {
        let source = self.inner.replicator.chunk_source(name).await;
        let reader = self
            .inner
            .ctx
            .vault
            .read_range_paying(name, version, range, Some(source), paying)
            .await
            .inspect_err(|e| self.inner.ctx.metrics.failed(e))?;
        self.inner.ctx.metrics.files_retrieved.inc();
        // A read that fails midway (damage no peer could mend, peers gone) is
        // a failure of the node too.
        let ctx = self.inner.ctx.clone();
        Ok(reader.on_error(move |e| ctx.metrics.failed(e)))
    }

    /// The names of every file in the vault, sorted, from the local catalogue
    /// (no network round trip).
    pub async fn names(&self) -> Result<Vec<String>> {
        let files = self.inner.ctx.vault.list().await?;
        Ok(files
            .into_iter()
            .map(|m| m.name)
            .filter(|name| !crate::objects::is_reserved(name))
            .collect())
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
        let manifest = self.inner.ctx.vault.stat(name).await?;
        let local = self.inner.ctx.vault.holds(&manifest).await?;
        Ok(FileInfo::new(&manifest, local, usize::from(local)))
    }

    /// Deletes `name` everywhere: a tombstone here, announced to every peer, and
    /// carried by catalogue sync to nodes that are offline now.
    pub async fn delete(&self, name: &str) -> Result<DeleteOutcome> {
        self.remove(name, false).await
    }

    /// Deletes `name` for good (`rm --purge`): with every version the vault
    /// keeps of it, here and on every node, at once; nothing can bring it back.
    /// For a file stored by mistake (a secret), or space needed now.
    pub async fn purge(&self, name: &str) -> Result<DeleteOutcome> {
        self.remove(name, true).await
    }

    async fn remove(&self, name: &str, purge: bool) -> Result<DeleteOutcome> {
        crate::objects::refuse_reserved(name)?;
        self.remove_any(name, purge).await
    }

    /// [`Node::delete`] or [`Node::purge`] of any name, PeerVault's own included.
    pub(crate) async fn remove_any(&self, name: &str, purge: bool) -> Result<DeleteOutcome> {
        let (out, version) = self
            .inner
            .ctx
            .vault
            .delete_versioned(name, purge)
            .await
            .inspect_err(|e| self.inner.ctx.metrics.failed(e))?;
        self.inner.ctx.metrics.files_deleted.inc();
        self.inner.replicator.stop_providing(name).await;
        self.inner.syncer.announce_version(name, version, &[]);
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
        let mut summaries = self.inner.ctx.vault.summaries().await?;
        summaries.retain(|(_, s)| !crate::objects::is_reserved(&s.name));
        let total = summaries.len();
        summaries.truncate(limit);
        let versions: Vec<(NameId, Version)> =
            summaries.iter().map(|(id, s)| (*id, s.version)).collect();
        let elsewhere = self.inner.replicator.count_remote_copies(&versions).await;
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
            Some(name) => vec![self.inner.ctx.vault.verify_file(name).await?],
            None => self.inner.ctx.vault.verify_all().await?,
        };
        Ok(reports.iter().map(FileCheck::from).collect())
    }

    /// Where every chunk blob held here lies on disk (for inspection, and for
    /// tests that damage one on purpose).
    pub async fn blob_locations(&self) -> Result<Vec<(ChunkId, BlobLocation)>> {
        Ok(self.inner.ctx.vault.blob_locations().await?)
    }

    /// Removes unreferenced and unrecorded chunks now.
    pub async fn sweep(&self) -> Result<SweepReport> {
        Ok(self.inner.ctx.vault.sweep().await?)
    }

    /// Quota figures.
    pub fn quota(&self) -> QuotaStatus {
        let usage = self.inner.ctx.vault.usage();
        QuotaStatus::new(usage.used_bytes, usage.limit_bytes)
    }

    /// [`Node::quota`] with the bytes only old versions use counted apart
    /// (a pass over the history: for the `quota` command, not for polling).
    pub async fn quota_in_detail(&self) -> Result<QuotaStatus> {
        let mut quota = self.quota();
        quota.old_versions_bytes = Some(self.inner.ctx.vault.history_bytes().await?);
        Ok(quota)
    }

    /// Fails early if `size` more bytes cannot be stored.
    pub fn check_fits(&self, size: u64) -> Result<()> {
        Ok(self.inner.ctx.vault.check_fits(size)?)
    }

    /// Changes the quota now and saves it to `.quota_config.json`.
    pub fn set_quota(&self, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Err(NodeError::Invalid(
                "a quota of 0 bytes would refuse every file; give a size such as 5GB".into(),
            ));
        }
        quota_file(&self.inner.data_dir, bytes).save(&self.inner.data_dir)?;
        self.inner.ctx.vault.set_capacity(bytes);
        Ok(())
    }

    /// What each background worker (GC, repair) is doing.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.inner.workers.statuses()
    }

    /// Connected peers, numbered as `peers` shows them.
    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.inner
            .ctx
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
        let peers = self.inner.ctx.net.peers().await;
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
        DiscoveryStatus::from(self.inner.ctx.net.discovery().await)
    }

    /// The vault view: every node this one knows (online or when last seen,
    /// with its figures) and where the first `limit` files' copies are.
    pub async fn cluster(&self, limit: usize) -> Result<ClusterView> {
        let peers = self.peers().await;
        let discovery = self.discovery().await;
        self.inner.cluster.view(limit, peers, discovery).await
    }

    /// A snapshot for `status`.
    pub async fn status(&self) -> Result<NodeStatus> {
        // The vault's own membership records are not files of the user's.
        let files = (self.inner.ctx.vault.file_count())
            .saturating_sub(self.inner.ctx.devices.registry().files);
        let addresses = self.inner.ctx.net.addresses().await;
        let connected = self.inner.ctx.net.peers().await;
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
            replicas: self.inner.ctx.replicas.to_string(),
            uptime_seconds: self.uptime().as_secs_f64(),
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
            workers: self.workers(),
            limits: self.limits(),
            transfer_memory: crate::views::TransferMemory::of(self.inner.ctx.vault.budget()),
            key_epoch: self.inner.ctx.vault.current_epoch(),
            rekey: self.inner.rekeyer.status(),
            members: self.inner.ctx.devices.registry().members.len(),
        })
    }

    /// Reconciles this node's catalogue with `peer`'s, in both directions.
    pub async fn sync_with(&self, peer: PeerId) -> Result<SyncStats> {
        self.inner.syncer.sync_with(peer).await
    }

    /// `send <file> <peer>`: makes `peer` hold a complete copy of `name`.
    pub async fn send_to(&self, name: &str, peer: PeerId) -> Result<()> {
        self.inner.replicator.send_to(name, peer).await
    }

    /// `fetch <file> <peer>`: copies every chunk of `name` this node lacks from
    /// `peer` only, making this node a holder. Returns the chunks fetched.
    pub async fn fetch_from(&self, name: &str, peer: PeerId) -> Result<usize> {
        self.inner.replicator.fetch_from(name, peer).await
    }

    /// Runs the integrity GC now (waiting for a run in progress to end first).
    pub async fn collect_garbage(&self) -> Result<GcSummary> {
        self.inner.maintenance.collect_garbage().await
    }

    /// One look of the repair worker at every file held here; copies or drops
    /// as needed.
    pub async fn repair_round(&self) -> Result<RepairRound> {
        self.inner.maintenance.repair_round().await
    }

    /// `clean [NAME...]`: drops this node's copies of the files named, or of
    /// every file if none is (the catalogue and other nodes' copies stay; the
    /// repair worker makes new copies where the vault needs them). Returns what
    /// was removed.
    pub async fn clean(&self, names: &[String]) -> Result<CleanReport> {
        if names.is_empty() {
            self.inner.maintenance.clean().await
        } else {
            self.inner.maintenance.clean_files(names).await
        }
    }

    /// Sets the state figures (peers, storage, uptime) from their sources.
    async fn refresh_metrics(&self) -> (Vec<PeerStatus>, usize) {
        let m = &self.inner.ctx.metrics;
        let peers = self.peers().await;
        let discovery = self.inner.ctx.net.discovery().await;
        m.peers_connected.set(peers.len() as i64);
        m.peers_discovered.set(discovery.known.len() as i64);
        m.peer_rtt.clear();
        m.peer_healthy.clear();
        for p in &peers {
            let label = PeerLabel {
                peer: p.peer_id.clone(),
            };
            if let Some(rtt) = p.rtt_ms {
                m.peer_rtt.get_or_create(&label).set(rtt / 1000.0);
            }
            m.peer_healthy
                .get_or_create(&label)
                .set(i64::from(p.is_healthy()));
        }
        let quota = self.quota();
        m.storage_used_bytes.set(quota.used_bytes as i64);
        m.storage_total_bytes.set(quota.total_bytes as i64);
        m.storage_utilization.set(quota.utilization_percent);
        let budget = self.inner.ctx.vault.budget();
        m.transfer_memory_bytes.set(budget.in_use() as i64);
        m.transfer_memory_budget_bytes.set(budget.total() as i64);
        let waits = budget.waits();
        m.transfer_memory_waits
            .inc_by(waits.saturating_sub(m.transfer_memory_waits.get()));
        m.uptime_seconds.set(self.uptime().as_secs_f64());
        m.set_damage(self.inner.ctx.vault.damage());
        (peers, discovery.known.len())
    }

    /// Every metric in the Prometheus text format, with the state figures read
    /// just now.
    pub async fn metrics_text(&self) -> String {
        self.refresh_metrics().await;
        self.inner.ctx.metrics.encode()
    }

    /// The last hour of traffic, a point every few seconds, oldest first.
    pub fn throughput(&self) -> Vec<crate::throughput::ThroughputPoint> {
        self.inner.throughput.points()
    }

    /// The metrics as `/metrics/json` and `metrics --json` show them.
    pub async fn metrics_snapshot(&self) -> MetricsSnapshot {
        let (peers, discovered) = self.refresh_metrics().await;
        let (last_gc, last_repair) = self.inner.maintenance.last_runs();
        let addresses = self.inner.ctx.net.addresses().await;
        self.inner.ctx.metrics.snapshot(NodeFacts {
            peers,
            discovered,
            quota: self.quota(),
            uptime_seconds: self.uptime().as_secs_f64(),
            started_unix_ms: self.inner.started_unix_ms,
            peer_id: self.peer_id(),
            listen_addrs: addresses.listen.iter().map(ToString::to_string).collect(),
            replicas: self.replicas().to_string(),
            last_gc,
            last_repair,
        })
    }

    /// `/health`: degraded, with reasons, when the node lacks the peers it
    /// expects, holds files short of copies, or has damage it could not repair.
    pub async fn health(&self) -> Health {
        let peers = self.inner.ctx.net.peers().await.len();
        let lacks_peers = peers == 0 && self.inner.expects_peers();
        let last_gc = self.inner.maintenance.last_runs().0;
        let uptime = self.uptime().as_secs_f64();
        (self.inner.ctx.metrics).health(lacks_peers, last_gc.as_ref(), uptime)
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
