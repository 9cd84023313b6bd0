//! The vault seen from one node: every node it knows, online or when last
//! seen, with its capacity, use, files held and version, and where each file's
//! copies are (`/api/cluster`, the dashboard's vault view).
//!
//! A node's figures come from the node itself (`Request::Info`), asked of every
//! connected peer when the view is read; the last answer of each is remembered
//! (the [`Roster`]), so a node that went away is still shown with what it held
//! and when it was last seen. Nodes never met (the address book also has peers
//! that were only named) are left out; the view is of the vault's members.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peervault_net::PeerId;
use peervault_store::{FileSummary, NameId, Version};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::replicate::Replicator;
use crate::views::{DiscoveryStatus, PeerStatus};
use crate::wire::{NodeInfo, Request, Response};

/// How long one node may take to say how full it is.
const INFO_TIMEOUT: Duration = Duration::from_secs(3);

/// The vault view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterView {
    /// This node first, then the connected peers, then members seen before.
    pub nodes: Vec<ClusterNode>,
    /// The first files by name (as many as asked for), with their holders.
    pub files: Vec<ClusterFile>,
    /// Files in the vault.
    pub total_files: usize,
    /// Of the files listed, those with fewer copies than the target.
    pub short_files: usize,
    /// Copies wanted of each file, with the peers connected now.
    pub target_copies: usize,
}

/// One node of the vault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterNode {
    pub peer_id: String,
    /// The node answering this view.
    pub this_node: bool,
    pub online: bool,
    /// Seconds since it was last heard from (0 for this node).
    pub last_seen_seconds: Option<f64>,
    pub address: Option<String>,
    /// direct, relayed or hole-punched (connected peers only).
    pub path: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Its own figures; `None` if it never answered (an older version).
    pub used_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub files_held: Option<u64>,
    pub version: Option<String>,
    /// How old those figures are, in seconds.
    pub figures_age_seconds: Option<f64>,
}

impl ClusterNode {
    /// A member with nothing known yet but whether it is online and when it
    /// was last seen.
    fn member(peer_id: String, online: bool, last_seen_seconds: f64) -> ClusterNode {
        ClusterNode {
            peer_id,
            this_node: false,
            online,
            last_seen_seconds: Some(last_seen_seconds),
            address: None,
            path: None,
            rtt_ms: None,
            used_bytes: None,
            quota_bytes: None,
            files_held: None,
            version: None,
            figures_age_seconds: None,
        }
    }
}

/// One file and where its complete copies are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    pub name: String,
    pub size: u64,
    pub copies: usize,
    /// Peer ids of the nodes holding a complete copy (this one included).
    pub holders: Vec<String>,
    /// Fewer copies than the target.
    pub short: bool,
}

/// This node's own figures (what it answers to `Request::Info`).
pub(crate) async fn own_info(ctx: &Context) -> NodeInfo {
    let files = ctx.vault.summaries().await.unwrap_or_default();
    info_of(ctx, &files)
}

/// This node's figures, with `files` its summaries (read once by the caller).
fn info_of(ctx: &Context, files: &[(NameId, FileSummary)]) -> NodeInfo {
    let usage = ctx.vault.usage();
    let files_held = files.iter().filter(|(_, s)| s.held).count() as u64;
    NodeInfo {
        used_bytes: usage.used_bytes,
        quota_bytes: usage.limit_bytes,
        files_held,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The last figures each member gave.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    last: Mutex<HashMap<PeerId, (NodeInfo, Instant)>>,
}

/// Builds the vault view.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    ctx: Arc<Context>,
    replicator: Replicator,
    roster: Arc<Roster>,
}

impl Cluster {
    pub(crate) fn new(ctx: Arc<Context>, replicator: Replicator) -> Cluster {
        Cluster {
            ctx,
            replicator,
            roster: Arc::default(),
        }
    }

    /// The view, with the first `limit` files; `peers` and `discovery` as the
    /// node reads them now.
    pub(crate) async fn view(
        &self,
        limit: usize,
        peers: Vec<PeerStatus>,
        discovery: DiscoveryStatus,
    ) -> crate::error::Result<ClusterView> {
        let me = self.ctx.net.local_peer_id();
        // One read of the catalogue serves this node's figures and the files.
        let mut summaries: Vec<(NameId, FileSummary)> = self.ctx.vault.summaries().await?;
        let own = info_of(&self.ctx, &summaries);
        summaries.retain(|(_, s)| !crate::objects::is_reserved(&s.name));
        let ids: Vec<PeerId> = peers
            .iter()
            .filter_map(|p| p.peer_id.parse().ok())
            .collect();
        let answers = futures::future::join_all(
            ids.iter()
                .map(|peer| self.ctx.ask(*peer, &Request::Info, INFO_TIMEOUT)),
        )
        .await;
        let now = Instant::now();
        let remembered = {
            let mut last = self.roster.last.lock().unwrap_or_else(|p| p.into_inner());
            for (peer, answer) in ids.iter().zip(answers) {
                if let Ok(Response::Info(info)) = answer {
                    last.insert(*peer, (info, now));
                }
            }
            last.clone()
        };
        let figures = |peer: &str, node: &mut ClusterNode| {
            let known = peer
                .parse::<PeerId>()
                .ok()
                .and_then(|id| remembered.get(&id));
            if let Some((info, at)) = known {
                node.used_bytes = Some(info.used_bytes);
                node.quota_bytes = Some(info.quota_bytes);
                node.files_held = Some(info.files_held);
                node.version = Some(info.version.clone());
                node.figures_age_seconds = Some(now.duration_since(*at).as_secs_f64());
            }
        };
        let mut this = ClusterNode::member(me.to_string(), true, 0.0);
        this.this_node = true;
        this.used_bytes = Some(own.used_bytes);
        this.quota_bytes = Some(own.quota_bytes);
        this.files_held = Some(own.files_held);
        this.version = Some(own.version);
        this.figures_age_seconds = Some(0.0);
        let mut nodes = vec![this];
        for p in &peers {
            let mut node = ClusterNode::member(p.peer_id.clone(), true, p.last_seen_seconds);
            node.address = Some(p.address.clone());
            node.path = Some(p.path.clone());
            node.rtt_ms = p.rtt_ms;
            figures(&p.peer_id, &mut node);
            nodes.push(node);
        }
        let mut away: Vec<_> = discovery
            .known
            .iter()
            .filter(|k| k.met && !k.connected && !k.key_mismatch)
            .filter(|k| !peers.iter().any(|p| p.peer_id == k.peer_id))
            .collect();
        away.sort_by(|a, b| a.last_seen_seconds.total_cmp(&b.last_seen_seconds));
        for k in away {
            let mut node = ClusterNode::member(k.peer_id.clone(), false, k.last_seen_seconds);
            node.address = k.addresses.first().cloned();
            figures(&k.peer_id, &mut node);
            nodes.push(node);
        }

        let total_files = summaries.len();
        summaries.truncate(limit);
        let versions: Vec<(NameId, Version)> =
            summaries.iter().map(|(id, s)| (*id, s.version)).collect();
        let holders = self.replicator.remote_holders(&versions, &ids).await;
        let target = self.ctx.target_copies(ids.len());
        let files: Vec<ClusterFile> = summaries
            .iter()
            .zip(holders)
            .map(|((_, s), others)| {
                let mut holders: Vec<String> = Vec::new();
                if s.held {
                    holders.push(me.to_string());
                }
                holders.extend(
                    others
                        .regular
                        .iter()
                        .chain(&others.extra)
                        .map(|p| p.to_string()),
                );
                ClusterFile {
                    name: s.name.clone(),
                    size: s.size,
                    copies: holders.len(),
                    short: holders.len() < target,
                    holders,
                }
            })
            .collect();
        Ok(ClusterView {
            nodes,
            short_files: files.iter().filter(|f| f.short).count(),
            files,
            total_files,
            target_copies: target,
        })
    }
}
