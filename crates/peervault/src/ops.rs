//! What a command asks of a node, whether the node runs in this process (the
//! prompt) or behind the control socket (the client subcommands).
//!
//! Every command is written once, in [`crate::commands`], against
//! [`Operations`]; the prompt serves it from its own [`Node`], the client
//! subcommands from a [`Client`] that carries each call over the socket, and the
//! socket's server answers with the same `Node` methods. The two front ends
//! used to implement each command separately, and their copies drifted apart
//! (`clean` asked different questions in each).
//!
//! Storing and reading a file are not here: their bytes travel differently (a
//! stream of frames or a passed file descriptor over the socket, a reader in
//! process), so each front end keeps its own transfer around one shared result
//! line (`ui::stored_line`, `ui::retrieved_line`).

use peervault_node::{
    CleanReport, DiscoveryStatus, FileCheck, FileInfo, GcSummary, MetricsSnapshot, Node,
    NodeStatus, PeerStatus, QuotaStatus,
};

use crate::control::client::{Client, ClientError};
use crate::control::proto::{Request, Response};

/// What a file deletion did.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub name: String,
    /// Bytes freed on this node.
    pub freed_bytes: u64,
}

/// The node operations behind the commands (see the module docs).
pub(crate) trait Operations {
    async fn status(&self) -> anyhow::Result<NodeStatus>;
    async fn metrics(&self) -> anyhow::Result<MetricsSnapshot>;
    async fn peers(&self) -> anyhow::Result<Vec<PeerStatus>>;
    async fn discovery(&self) -> anyhow::Result<DiscoveryStatus>;
    async fn quota(&self) -> anyhow::Result<QuotaStatus>;
    /// Changes the quota and saves it; the quota now in force.
    async fn set_quota(&self, bytes: u64) -> anyhow::Result<QuotaStatus>;
    async fn gc(&self) -> anyhow::Result<GcSummary>;
    async fn clean(&self) -> anyhow::Result<CleanReport>;
    async fn invite(&self) -> anyhow::Result<String>;
    /// Makes `peer` (a number from `peers`, a peer id or an address) hold a
    /// complete copy of `name`; the peer's id.
    async fn send(&self, name: &str, peer: &str) -> anyhow::Result<String>;
    /// Copies the chunks of `name` this node lacks from `peer` only; the peer's
    /// id and the chunks copied.
    async fn fetch(&self, name: &str, peer: &str) -> anyhow::Result<(String, usize)>;
    async fn verify(&self, name: Option<&str>) -> anyhow::Result<Vec<FileCheck>>;
    async fn list(&self) -> anyhow::Result<Vec<FileInfo>>;
    async fn stat(&self, name: &str) -> anyhow::Result<FileInfo>;
    async fn delete(&self, name: &str) -> anyhow::Result<Deleted>;
}

impl Operations for Node {
    async fn status(&self) -> anyhow::Result<NodeStatus> {
        Ok(Node::status(self).await?)
    }

    async fn metrics(&self) -> anyhow::Result<MetricsSnapshot> {
        Ok(self.metrics_snapshot().await)
    }

    async fn peers(&self) -> anyhow::Result<Vec<PeerStatus>> {
        Ok(Node::peers(self).await)
    }

    async fn discovery(&self) -> anyhow::Result<DiscoveryStatus> {
        Ok(Node::discovery(self).await)
    }

    async fn quota(&self) -> anyhow::Result<QuotaStatus> {
        Ok(Node::quota(self))
    }

    async fn set_quota(&self, bytes: u64) -> anyhow::Result<QuotaStatus> {
        Node::set_quota(self, bytes)?;
        Ok(Node::quota(self))
    }

    async fn gc(&self) -> anyhow::Result<GcSummary> {
        Ok(self.collect_garbage().await?)
    }

    async fn clean(&self) -> anyhow::Result<CleanReport> {
        Ok(Node::clean(self).await?)
    }

    async fn invite(&self) -> anyhow::Result<String> {
        Ok(Node::invite(self).await?)
    }

    async fn send(&self, name: &str, peer: &str) -> anyhow::Result<String> {
        let peer = self.resolve_peer(peer).await?;
        self.send_to(name, peer).await?;
        Ok(peer.to_string())
    }

    async fn fetch(&self, name: &str, peer: &str) -> anyhow::Result<(String, usize)> {
        let peer = self.resolve_peer(peer).await?;
        let chunks = self.fetch_from(name, peer).await?;
        Ok((peer.to_string(), chunks))
    }

    async fn verify(&self, name: Option<&str>) -> anyhow::Result<Vec<FileCheck>> {
        Ok(Node::verify(self, name).await?)
    }

    async fn list(&self) -> anyhow::Result<Vec<FileInfo>> {
        Ok(Node::list(self).await?)
    }

    async fn stat(&self, name: &str) -> anyhow::Result<FileInfo> {
        Ok(Node::stat(self, name).await?)
    }

    async fn delete(&self, name: &str) -> anyhow::Result<Deleted> {
        let out = Node::delete(self, name).await?;
        Ok(Deleted {
            name: out.name,
            freed_bytes: out.freed_bytes,
        })
    }
}

/// The error for a reply of the wrong kind.
fn unexpected(reply: Response) -> anyhow::Error {
    ClientError::Unexpected(format!("{reply:?}")).into()
}

/// Asks the node `request`; the reply must match `$pattern`, which yields `$out`.
macro_rules! ask {
    ($client:expr, $request:expr, $pattern:pat => $out:expr) => {
        match $client.call(&$request).await? {
            $pattern => Ok($out),
            other => Err(unexpected(other)),
        }
    };
}

impl Operations for Client {
    async fn status(&self) -> anyhow::Result<NodeStatus> {
        ask!(self, Request::Status, Response::Status { status } => status)
    }

    async fn metrics(&self) -> anyhow::Result<MetricsSnapshot> {
        ask!(self, Request::Metrics, Response::Metrics { metrics } => *metrics)
    }

    async fn peers(&self) -> anyhow::Result<Vec<PeerStatus>> {
        ask!(self, Request::Peers, Response::Peers { peers } => peers)
    }

    async fn discovery(&self) -> anyhow::Result<DiscoveryStatus> {
        ask!(self, Request::Discover, Response::Discovery { discovery } => discovery)
    }

    async fn quota(&self) -> anyhow::Result<QuotaStatus> {
        ask!(self, Request::Quota, Response::Quota { quota } => quota)
    }

    async fn set_quota(&self, bytes: u64) -> anyhow::Result<QuotaStatus> {
        ask!(self, Request::SetQuota { bytes }, Response::Quota { quota } => quota)
    }

    async fn gc(&self) -> anyhow::Result<GcSummary> {
        ask!(self, Request::Gc, Response::Gc { summary } => summary)
    }

    async fn clean(&self) -> anyhow::Result<CleanReport> {
        ask!(self, Request::Clean, Response::Cleaned { report } => report)
    }

    async fn invite(&self) -> anyhow::Result<String> {
        ask!(self, Request::Invite, Response::Invite { code } => code)
    }

    async fn send(&self, name: &str, peer: &str) -> anyhow::Result<String> {
        let request = Request::Send {
            name: name.to_string(),
            peer: peer.to_string(),
        };
        ask!(self, request, Response::Sent { peer, .. } => peer)
    }

    async fn fetch(&self, name: &str, peer: &str) -> anyhow::Result<(String, usize)> {
        let request = Request::Fetch {
            name: name.to_string(),
            peer: peer.to_string(),
        };
        ask!(self, request, Response::Fetched { peer, chunks, .. } => (peer, chunks))
    }

    async fn verify(&self, name: Option<&str>) -> anyhow::Result<Vec<FileCheck>> {
        let request = Request::Verify {
            name: name.map(str::to_string),
        };
        ask!(self, request, Response::Verified { files } => files)
    }

    async fn list(&self) -> anyhow::Result<Vec<FileInfo>> {
        Ok(Client::list(self).await?)
    }

    async fn stat(&self, name: &str) -> anyhow::Result<FileInfo> {
        let request = Request::Stat {
            name: name.to_string(),
        };
        ask!(self, request, Response::File { file } => file)
    }

    async fn delete(&self, name: &str) -> anyhow::Result<Deleted> {
        let request = Request::Delete {
            name: name.to_string(),
        };
        ask!(self, request, Response::Deleted { name, freed_bytes } => Deleted { name, freed_bytes })
    }
}
