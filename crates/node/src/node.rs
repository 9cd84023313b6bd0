//! The [`Node`]: one PeerVault participant, usable as a library.
//!
//! A node owns its data dir: the encrypted vault, the persistent identity and the
//! quota file. Every front end (the REPL, the control socket behind the client
//! subcommands, the demo, programs that embed PeerVault) goes through this type,
//! so they all behave alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use peervault_net::NodeIdentity;
use peervault_store::{
    DEFAULT_CHUNK_SIZE, DataDirLock, DeleteOutcome, FileReader, KeyFingerprint, Manifest,
    NetworkKey, OriginId, SweepReport, Vault, VaultConfig, VerifyReport, WriteOutcome,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::error::{NodeError, Result};
use crate::quota::{DEFAULT_QUOTA_BYTES, QuotaConfig, QuotaStatus};

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where everything of this node lives.
    pub data_dir: PathBuf,
    /// The vault's shared secret.
    pub key: NetworkKey,
    /// Set (and persist) this quota; `None` keeps the quota file's value, or the
    /// default if there is no file yet.
    pub quota_bytes: Option<u64>,
    /// Plaintext bytes per chunk for new files.
    pub chunk_size: u32,
    /// Addresses this node was asked to listen on, as given.
    pub listen_addrs: Vec<String>,
}

impl NodeConfig {
    /// A configuration with defaults for everything but the data dir and key.
    pub fn new(data_dir: impl Into<PathBuf>, key: NetworkKey) -> Self {
        Self {
            data_dir: data_dir.into(),
            key,
            quota_bytes: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            listen_addrs: Vec::new(),
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
}

impl From<&Manifest> for FileInfo {
    fn from(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            size: m.size,
            hash: m.hash_hex(),
            chunks: m.chunks.len(),
            modified_unix_ms: m.version.unix_millis(),
            author: m.author.clone(),
        }
    }
}

/// A snapshot of the node for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub peer_id: String,
    pub data_dir: PathBuf,
    pub listen_addrs: Vec<String>,
    pub peers_connected: usize,
    pub files: usize,
    pub storage: QuotaStatus,
    pub uptime_seconds: f64,
    pub started_unix_ms: u64,
    pub key_fingerprint: String,
    pub insecure_default_key: bool,
    pub version: String,
}

/// The result of verifying one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub name: String,
    pub chunks: usize,
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
}

impl FileCheck {
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

impl From<&VerifyReport> for FileCheck {
    fn from(r: &VerifyReport) -> Self {
        Self {
            name: r.name.clone(),
            chunks: r.chunks,
            damaged: r
                .damaged
                .iter()
                .map(|(index, id, problem)| DamagedChunk {
                    index: *index,
                    chunk: id.to_hex(),
                    problem: problem.to_string(),
                })
                .collect(),
        }
    }
}

/// A running node. Cheap to clone; all clones are the same node.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vault: Vault,
    identity: NodeIdentity,
    data_dir: PathBuf,
    listen_addrs: Vec<String>,
    fingerprint: KeyFingerprint,
    insecure_key: bool,
    started: Instant,
    started_unix_ms: u64,
    quota_source: QuotaSource,
}

impl Node {
    /// Opens the data dir (creating it on first start) and starts the node.
    ///
    /// Fails with a message that says what to do if the data dir belongs to another
    /// network key, is used by another process, or its quota file is damaged.
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
        let (quota_bytes, quota_source) = resolve_quota(&data_dir, config.quota_bytes)?;
        let peer_id = identity.peer_id();
        let vault = Vault::open_locked(
            VaultConfig {
                data_dir: data_dir.clone(),
                key: config.key.clone(),
                origin: OriginId::derive(&peer_id.to_bytes()),
                author: peer_id.to_string(),
                chunk_size: config.chunk_size,
                capacity_bytes: quota_bytes,
            },
            lock,
        )
        .await?;
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let node = Node {
            inner: Arc::new(Inner {
                vault,
                identity,
                data_dir,
                listen_addrs: config.listen_addrs,
                fingerprint: config.key.fingerprint(),
                insecure_key: config.key.is_insecure_default(),
                started: Instant::now(),
                started_unix_ms,
                quota_source,
            }),
        };
        node.spawn_startup_sweep();
        Ok(node)
    }

    fn spawn_startup_sweep(&self) {
        let vault = self.inner.vault.clone();
        tokio::spawn(async move {
            match vault.sweep().await {
                Ok(report) if report != SweepReport::default() => tracing::info!(
                    "start-up clean-up removed {} unreferenced and {} unrecorded chunks ({} bytes)",
                    report.unreferenced_removed,
                    report.unrecorded_removed,
                    report.bytes_freed
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("start-up clean-up failed: {e}"),
            }
        });
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

    /// Stores everything `reader` yields under `name`. With `size_hint`, a file that
    /// cannot fit is refused before any byte is read.
    pub async fn store<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        Ok(self.inner.vault.write_file(name, reader, size_hint).await?)
    }

    /// Opens `name` for reading: a stream of verified bytes.
    pub async fn get(&self, name: &str) -> Result<FileReader> {
        Ok(self.inner.vault.read_file(name).await?)
    }

    /// Metadata of `name`.
    pub async fn stat(&self, name: &str) -> Result<FileInfo> {
        Ok(FileInfo::from(&self.inner.vault.stat(name).await?))
    }

    /// Deletes `name`.
    pub async fn delete(&self, name: &str) -> Result<DeleteOutcome> {
        Ok(self.inner.vault.delete(name).await?)
    }

    /// Every file, sorted by name.
    pub async fn list(&self) -> Result<Vec<FileInfo>> {
        Ok(self
            .inner
            .vault
            .list()
            .await?
            .iter()
            .map(FileInfo::from)
            .collect())
    }

    /// Verifies one file, or all when `name` is `None`.
    pub async fn verify(&self, name: Option<&str>) -> Result<Vec<FileCheck>> {
        let reports = match name {
            Some(name) => vec![self.inner.vault.verify_file(name).await?],
            None => self.inner.vault.verify_all().await?,
        };
        Ok(reports.iter().map(FileCheck::from).collect())
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

    /// A snapshot for `status`.
    pub async fn status(&self) -> Result<NodeStatus> {
        let files = self.inner.vault.list().await?.len();
        Ok(NodeStatus {
            peer_id: self.peer_id(),
            data_dir: self.inner.data_dir.clone(),
            listen_addrs: self.inner.listen_addrs.clone(),
            peers_connected: 0,
            files,
            storage: self.quota(),
            uptime_seconds: self.inner.started.elapsed().as_secs_f64(),
            started_unix_ms: self.inner.started_unix_ms,
            key_fingerprint: self.inner.fingerprint.to_string(),
            insecure_default_key: self.inner.insecure_key,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
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
