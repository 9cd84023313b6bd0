//! Helpers shared by the in-process multi-node tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use peervault_node::{ChunkId, Endpoint, NetworkKey, Node, NodeConfig, Replicas};

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
            key: NetworkKey::from_bytes([0xc1; 32], peervault_node::KeySource::Hex),
            tweak,
        }
    }

    pub async fn config(&self, name: &str, bootstrap: &[&Node], replicas: Replicas) -> NodeConfig {
        let mut config = NodeConfig::new(self.root.join(name), self.key.clone());
        for node in bootstrap {
            config.net.bootstrap.push(endpoint(node).await);
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

/// Restarts a node on the same data dir: a stopped node has let go of it (every
/// task it ran has ended), so no retry is needed.
pub async fn restart(cluster: &Cluster, name: &str, bootstrap: &[&Node]) -> Node {
    Node::start(cluster.config(name, bootstrap, Replicas::Count(3)).await)
        .await
        .unwrap_or_else(|e| panic!("restart failed: {e}"))
}

/// True if `a`'s peer id is the identity kept in `dir`'s `node.key`.
pub fn same_peer_id(a: &Node, dir: &Path) -> bool {
    assert!(
        dir.join("node.key").exists(),
        "no identity in {}",
        dir.display()
    );
    let kept = peervault_net::NodeIdentity::load_or_create(dir).unwrap();
    kept.peer_id().to_string() == a.peer_id()
}

/// A blob a node holds, as it lies in its segment file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blob {
    pub id: ChunkId,
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// Writes `bytes` over the blob where it lies (damage, for the tests that
    /// need some), durably.
    pub fn overwrite(&self, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::options()
            .write(true)
            .open(&self.path)
            .unwrap();
        file.write_all_at(bytes, self.offset).unwrap();
        file.sync_all().unwrap();
    }

    /// The blob with the byte at `at` changed by `mask`, written back.
    pub fn damage(&self, at: usize, mask: u8) {
        let mut damaged = self.bytes.clone();
        damaged[at] ^= mask;
        self.overwrite(&damaged);
    }
}

/// Every blob a node holds, with its bytes, by chunk id.
pub async fn blobs(node: &Node) -> Vec<Blob> {
    use std::os::unix::fs::FileExt;
    let mut out: Vec<Blob> = node
        .blob_locations()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, at)| {
            let mut bytes = vec![0u8; at.len as usize];
            std::fs::File::open(&at.path)
                .unwrap()
                .read_exact_at(&mut bytes, at.offset)
                .unwrap();
            Blob {
                id,
                path: at.path,
                offset: at.offset,
                bytes,
            }
        })
        .collect();
    out.sort();
    out
}

/// Bytes of blob data in a node's segment files: whole blocks, holes excluded.
pub fn blob_bytes_on_disk(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("segments"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| peervault_store::segments::data_bytes(&e.path()).ok())
        .sum()
}

/// What a node holds: each chunk id with its blob's bytes (wherever they lie).
pub async fn held_blobs(node: &Node) -> Vec<(ChunkId, Vec<u8>)> {
    blobs(node)
        .await
        .into_iter()
        .map(|b| (b.id, b.bytes))
        .collect()
}

/// Catalogue syncs `node` has completed so far.
pub async fn syncs(node: &Node) -> u64 {
    node.metrics_snapshot().await.network.catalogue_syncs
}

/// Waits until `count` of each of `nodes` has grown by `more` from now.
async fn after_more<F, Fut>(nodes: &[&Node], more: u64, what: &str, count: F)
where
    F: Fn(Node) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut from = Vec::new();
    for node in nodes {
        from.push(count((*node).clone()).await);
    }
    for (node, from) in nodes.iter().zip(from) {
        eventually(&format!("{more} more {what}"), || async {
            count((*node).clone()).await >= from + more
        })
        .await;
    }
}

/// Waits until each of `nodes` has completed `more` catalogue syncs from now:
/// the event a test means when it would otherwise sleep "for a few sync rounds".
pub async fn after_syncs(nodes: &[&Node], more: u64) {
    after_more(nodes, more, "catalogue syncs", |node| async move {
        syncs(&node).await
    })
    .await
}

/// Waits until each of `nodes` has completed `more` repair rounds from now.
pub async fn after_repair_rounds(nodes: &[&Node], more: u64) {
    after_more(nodes, more, "repair rounds", |node| async move {
        node.metrics_snapshot().await.replication.repair_rounds
    })
    .await
}
