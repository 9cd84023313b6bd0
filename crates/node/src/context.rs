//! What the node's components share.
//!
//! The node is a few components (see DESIGN.md, "The node crate"), each holding
//! the state it alone changes: the [`Replicator`](crate::replicate::Replicator)
//! (where copies go and how chunks travel), the [`Syncer`](crate::sync::Syncer)
//! (catalogue anti-entropy and the node's membership), the
//! [`Maintenance`](crate::maintenance::Maintenance) workers (GC and repair, with
//! what they remember between runs) and the [`Responder`](crate::service::Responder)
//! (peers' requests). What they all need is here, once: the vault and network
//! handles, the metrics, the chunk lanes, the task tracker, the replica target,
//! and peers' conduct, which any of them may have to report. The peer client
//! ([`crate::client`]) is a set of methods on this context.
//!
//! Nothing here is a decision: a component that needs another one's judgement
//! holds that component, so who may touch what is written in the struct fields.

use std::path::Path;
use std::sync::Mutex;

use peervault_net::{NetHandle, PeerId};
use peervault_store::Vault;

use crate::bandwidth::{Bandwidth, RateLimits};
use crate::conduct::{BAN_AFTER, BAN_FOR, Conduct, Offence, Verdict};
use crate::devices::Devices;
use crate::extras::Extras;
use crate::lanes::Lanes;
use crate::metrics::{Metrics, OffenceLabel};
use crate::settings::Replicas;
use crate::tasks::Tasks;
use crate::window::PeerPath;

/// The handles every component uses (see the module docs).
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) vault: Vault,
    pub(crate) net: NetHandle,
    pub(crate) metrics: Metrics,
    /// Every task the node runs (see [`crate::tasks`]).
    pub(crate) tasks: Tasks,
    /// Long-lived streams that chunks travel on (see [`crate::lanes`]).
    pub(crate) lanes: Lanes,
    /// How many copies of each file to keep.
    pub(crate) replicas: Replicas,
    /// How new files are erasure coded, if they are (`--redundancy`).
    pub(crate) redundancy: Option<peervault_store::Redundancy>,
    /// Recent offences of peers (see [`crate::conduct`]).
    conduct: Mutex<Conduct>,
    /// Copies held because a user asked (see [`crate::extras`]).
    pub(crate) extras: Extras,
    /// The upload and download limits (see [`crate::bandwidth`]).
    pub(crate) bandwidth: Bandwidth,
    /// Members, removed devices, key epochs (see [`crate::devices`]).
    pub(crate) devices: std::sync::Arc<Devices>,
}

impl Context {
    pub(crate) fn new(
        vault: Vault,
        net: NetHandle,
        replicas: Replicas,
        redundancy: Option<peervault_store::Redundancy>,
        data_dir: &Path,
        limits: RateLimits,
        devices: std::sync::Arc<Devices>,
    ) -> Context {
        let tasks = Tasks::default();
        Context {
            vault,
            net,
            metrics: Metrics::new(),
            lanes: Lanes::new(tasks.clone()),
            tasks,
            replicas,
            redundancy,
            conduct: Mutex::new(Conduct::default()),
            extras: Extras::load(data_dir),
            bandwidth: Bandwidth::new(limits),
            devices,
        }
    }

    /// Runs `work` until it ends or the node shuts down.
    pub(crate) fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work);
    }

    /// The peers connected now.
    pub(crate) async fn connected_peers(&self) -> Vec<PeerId> {
        self.net
            .peers()
            .await
            .into_iter()
            .map(|p| p.peer_id)
            .collect()
    }

    /// How new files are kept: the vault's setting if a member made one
    /// (`redundancy K+M|none`), else this node's `--redundancy`; `None` for
    /// whole copies.
    pub(crate) fn redundancy(&self) -> Option<peervault_store::Redundancy> {
        match self.devices.redundancy_setting() {
            Some(setting) => setting.redundancy(),
            None => self.redundancy,
        }
    }

    /// The path to `peer` as a transfer starts (see [`crate::window`]): its
    /// last ping, under this node's memory budget.
    pub(crate) async fn path_to(&self, peer: &PeerId) -> PeerPath {
        self.path_for(self.ping_of(peer).await)
    }

    /// `peer`'s last ping, if the network has measured one.
    pub(crate) async fn ping_of(&self, peer: &PeerId) -> Option<std::time::Duration> {
        self.net
            .peers()
            .await
            .into_iter()
            .find(|p| p.peer_id == *peer)
            .and_then(|p| p.rtt)
    }

    /// The path to a peer whose last ping took `ping` (`None`: not yet measured).
    pub(crate) fn path_for(&self, ping: Option<std::time::Duration>) -> PeerPath {
        PeerPath::new(ping, self.vault.budget().total())
    }

    /// Copies of each file wanted, counting this node, when `peers` are connected.
    pub(crate) fn target_copies(&self, peers: usize) -> usize {
        self.replicas.target(peers)
    }

    /// Counts an offence of `peer` (invalid data, refused), and bans it when
    /// offences repeat (see [`crate::conduct`]).
    pub(crate) async fn offence(&self, peer: PeerId, offence: Offence, what: &str) {
        let m = &self.metrics;
        m.peer_offences
            .get_or_create(&OffenceLabel {
                kind: offence.label().to_string(),
            })
            .inc();
        let now = std::time::Instant::now();
        let verdict = self
            .conduct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .offend(peer, offence, now);
        match verdict {
            Verdict::Ban => {
                m.peer_bans.inc();
                tracing::warn!(
                    "peer {peer} sent {what}; {BAN_AFTER} offences: banned for {} min",
                    BAN_FOR.as_secs() / 60
                );
                self.net.ban(peer, BAN_FOR).await;
            }
            Verdict::Counted(count) => tracing::warn!(
                "peer {peer} sent {what}, refused (offence {count} of {BAN_AFTER} before a ban)"
            ),
            Verdict::Repeated => tracing::info!(
                "peer {peer} sent {what} again, refused (the same damaged copy counts once)"
            ),
        }
    }
}
