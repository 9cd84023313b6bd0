//! Helpers shared by the in-process multi-node tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use peervault_node::{Endpoint, NetworkKey, Node, NodeConfig, Replicas, StoreError};

pub const WAIT: Duration = Duration::from_secs(30);

/// Nodes sharing one key, each with a data dir under one temp dir.
pub struct Cluster {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub key: NetworkKey,
    /// Applied to every configuration this cluster makes.
    pub tweak: fn(&mut NodeConfig),
}

impl Cluster {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A cluster whose nodes get `tweak` applied to their configuration.
    pub fn with(tweak: fn(&mut NodeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Self {
            _dir: dir,
            root,
            key: NetworkKey::from_user_input("cluster test key").unwrap(),
            tweak,
        }
    }

    pub async fn config(&self, name: &str, bootstrap: &[&Node], replicas: Replicas) -> NodeConfig {
        let mut config = NodeConfig::new(self.root.join(name), self.key.clone());
        for node in bootstrap {
            config.bootstrap.push(endpoint(node).await);
        }
        config.replicas = replicas;
        config.sync_interval = Duration::from_secs(2);
        (self.tweak)(&mut config);
        config
    }

    pub async fn start(&self, name: &str, bootstrap: &[&Node], replicas: Replicas) -> Node {
        Node::start(self.config(name, bootstrap, replicas).await)
            .await
            .unwrap()
    }
}

pub async fn endpoint(node: &Node) -> Endpoint {
    let addr = node.status().await.unwrap().listen_addrs[0].clone();
    Endpoint::parse(&addr).unwrap()
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut xof = blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof();
    let mut out = vec![0u8; len];
    xof.fill(&mut out);
    out
}

pub async fn read(node: &Node, name: &str) -> Result<Vec<u8>, String> {
    let mut reader = node.get(name).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Polls `check` until it holds, failing after `within`.
pub async fn eventually_within<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, WAIT, check).await
}

pub async fn wait_connected(nodes: &[&Node]) {
    let n = nodes.len() - 1;
    for node in nodes {
        eventually("every node sees every other", || async {
            node.peers().await.len() >= n
        })
        .await;
    }
}

/// How many of `nodes` hold a complete copy of `name`.
pub async fn holders(nodes: &[&Node], name: &str) -> usize {
    let mut count = 0;
    for node in nodes {
        if node.stat(name).await.map(|f| f.local).unwrap_or(false) {
            count += 1;
        }
    }
    count
}

pub async fn stop(node: Node) {
    node.shutdown(Duration::from_secs(5)).await;
    drop(node);
}

/// Restarts a node on the same data dir (waiting for the old one to let go of it).
pub async fn restart(cluster: &Cluster, name: &str, bootstrap: &[&Node]) -> Node {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Node::start(cluster.config(name, bootstrap, Replicas::Count(3)).await).await {
            Ok(node) => return node,
            Err(peervault_node::NodeError::Store(StoreError::Locked { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    }
}

pub fn same_peer_id(a: &Node, dir: &Path) -> bool {
    let key = std::fs::read(dir.join("node.key")).unwrap();
    !key.is_empty() && !a.peer_id().is_empty()
}

/// Every blob file under a node's data dir, with its bytes.
pub fn chunk_files(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(data_dir.join("chunks")) else {
        return out;
    };
    for shard in shards.flatten() {
        for file in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push((file.path(), std::fs::read(file.path()).unwrap()));
        }
    }
    out.sort();
    out
}
