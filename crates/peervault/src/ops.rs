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
//! Storing and reading go through it too; only the way their bytes travel
//! differs behind it (frames, or a file descriptor the client passes, over the
//! socket; a reader in process).

use std::os::fd::AsFd;

use futures::StreamExt;
use peervault_node::devices::{DeviceInfo, RemovedDevice};
use peervault_node::invitations::Invitation;
use peervault_node::writes::RedundancyStatus;
use peervault_node::{
    CleanReport, CopyProgress, DeleteOutcome, DiscoveryStatus, FileCheck, FileInfo, FileMeta,
    GcSummary, Keeping, MetricsSnapshot, Node, NodeStatus, PeerStatus, QuotaStatus, RateLimits,
    VersionInfo,
};
use peervault_s3::keys::{AccessKey, KeySummary};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::atomic_file::Download;
use crate::control::client::{Client, ClientError, PutProgress};
use crate::control::proto::{Request, Response};
use crate::progress::Counted;

/// What a store did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub file: FileInfo,
    /// Durable copies, counting the node that stored it.
    pub copies: usize,
    pub target: usize,
    /// One line per peer that took no copy.
    pub failures: Vec<String>,
}

/// Hears how a read advances: bytes so far, and the file being read.
pub(crate) type ReadProgress<'a> = &'a mut (dyn FnMut(u64, &FileInfo) + Send);

/// The node operations behind the commands (see the module docs).
pub(crate) trait Operations {
    async fn status(&self) -> anyhow::Result<NodeStatus>;
    async fn metrics(&self) -> anyhow::Result<MetricsSnapshot>;
    async fn peers(&self) -> anyhow::Result<Vec<PeerStatus>>;
    async fn discovery(&self) -> anyhow::Result<DiscoveryStatus>;
    async fn quota(&self) -> anyhow::Result<QuotaStatus>;
    /// Changes the quota and saves it; the quota now in force.
    async fn set_quota(&self, bytes: u64) -> anyhow::Result<QuotaStatus>;
    async fn limits(&self) -> anyhow::Result<RateLimits>;
    /// Changes the bandwidth limits; the limits now in force.
    async fn set_limits(&self, limits: RateLimits) -> anyhow::Result<RateLimits>;
    async fn gc(&self) -> anyhow::Result<GcSummary>;
    /// Drops this node's copies of the files `names` (of every file if empty).
    async fn clean(&self, names: &[String]) -> anyhow::Result<CleanReport>;
    /// An invitation for one device, lasting `expires` (the node's default if
    /// `None`).
    async fn invite(&self, expires: Option<std::time::Duration>) -> anyhow::Result<Invitation>;
    /// Makes `peer` (a number from `peers`, a peer id or an address) hold a
    /// complete copy of `name`; the peer's id.
    async fn send(&self, name: &str, peer: &str) -> anyhow::Result<String>;
    /// Copies the chunks of `name` this node lacks from `peer` only; the peer's
    /// id and the chunks copied.
    async fn fetch(&self, name: &str, peer: &str) -> anyhow::Result<(String, usize)>;
    async fn verify(&self, name: Option<&str>) -> anyhow::Result<Vec<FileCheck>>;
    async fn list(&self) -> anyhow::Result<Vec<FileInfo>>;
    async fn stat(&self, name: &str) -> anyhow::Result<FileInfo>;
    /// Deletes `name`; with `purge`, with every old version, for good.
    async fn delete(&self, name: &str, purge: bool) -> anyhow::Result<DeleteOutcome>;
    /// Every version of `name` kept, newest first.
    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionInfo>>;
    /// `s3 keys create NAME`: a new access key for the S3 gateway.
    async fn s3_key_create(&self, name: &str) -> anyhow::Result<AccessKey>;
    /// `s3 keys ls`.
    async fn s3_keys(&self) -> anyhow::Result<Vec<KeySummary>>;
    /// `s3 keys rm ID`.
    async fn s3_key_remove(&self, id: &str) -> anyhow::Result<()>;
    /// The vault's member devices.
    async fn devices(&self) -> anyhow::Result<Vec<DeviceInfo>>;
    /// `devices rename WHO NAME`.
    async fn rename_device(&self, who: &str, name: &str) -> anyhow::Result<DeviceInfo>;
    /// `devices remove WHO`.
    async fn remove_device(&self, who: &str) -> anyhow::Result<RemovedDevice>;
    /// `rekey [--all]`: a new key epoch (and with `all`, every member
    /// re-encrypts what it holds in it); its number.
    async fn rekey(&self, all: bool) -> anyhow::Result<u32>;
    /// `redundancy [K+M|none]`: how the vault keeps files, set first if asked.
    async fn redundancy(&self, set: Option<Keeping>) -> anyhow::Result<RedundancyStatus>;
    /// Makes the newest version of a deleted name current again.
    async fn undelete(&self, name: &str) -> anyhow::Result<FileInfo>;
    /// Makes `version` (a label, or its first digits) of `name` current again.
    async fn restore(&self, name: &str, version: &str) -> anyhow::Result<FileInfo>;
    /// Fails if `size` more bytes cannot be stored here. Only a node in this
    /// process can say before a store; through the socket the store itself is
    /// refused (before any byte is sent, given the size).
    async fn check_fits(&self, size: u64) -> anyhow::Result<()>;
    /// Stores what `data` yields under `name`; `progress` hears of the bytes
    /// taken and of each copy as it becomes durable.
    async fn store<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        size: Option<u64>,
        meta: FileMeta,
        keeping: Keeping,
        data: R,
        progress: &mut (dyn FnMut(PutProgress) + Send),
    ) -> anyhow::Result<Stored>;
    /// Reads `name` into a file being downloaded (committed by the caller).
    async fn read_into(
        &self,
        name: Wanted<'_>,
        target: &mut Download,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo>;
    /// Reads `name` to `sink`.
    async fn read_to<W: AsyncWrite + Unpin + Send>(
        &self,
        name: Wanted<'_>,
        sink: &mut W,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo>;
    /// Reads `name` to standard output.
    async fn read_to_stdout(
        &self,
        name: Wanted<'_>,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo>;
}

/// Which file a read wants: a name, and one of its versions (by label, or
/// the first digits of one), or the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
}

impl<'a> Wanted<'a> {
    /// `version` of `name`, or its current version if `None`.
    pub fn version(name: &'a str, version: Option<&'a str>) -> Self {
        Self { name, version }
    }
}

impl<'a> From<&'a str> for Wanted<'a> {
    fn from(name: &'a str) -> Self {
        Self::version(name, None)
    }
}

impl<'a> From<&'a String> for Wanted<'a> {
    fn from(name: &'a String) -> Self {
        Self::version(name, None)
    }
}

/// Opens `wanted` on `node` for reading.
pub async fn open_wanted(
    node: &Node,
    wanted: Wanted<'_>,
) -> Result<peervault_node::FileReader, peervault_node::NodeError> {
    match wanted.version {
        None => node.get(wanted.name).await,
        Some(label) => {
            let version = node.find_version(wanted.name, label).await?;
            node.get_version(wanted.name, version).await
        }
    }
}

/// Streams the verified bytes of `name` from `node` into `sink`.
async fn copy_out<W: AsyncWrite + Unpin>(
    node: &Node,
    name: Wanted<'_>,
    sink: &mut W,
    progress: ReadProgress<'_>,
) -> anyhow::Result<FileInfo> {
    let mut reader = open_wanted(node, name).await?;
    let info = FileInfo::new(reader.manifest(), true, 1);
    let mut done = 0u64;
    while let Some(piece) = reader.next().await {
        let piece = piece?;
        sink.write_all(&piece).await?;
        done += piece.len() as u64;
        progress(done, &info);
    }
    sink.flush().await?;
    Ok(info)
}

impl Operations for Node {
    async fn check_fits(&self, size: u64) -> anyhow::Result<()> {
        Ok(Node::check_fits(self, size)?)
    }

    async fn store<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        size: Option<u64>,
        meta: FileMeta,
        keeping: Keeping,
        data: R,
        progress: &mut (dyn FnMut(PutProgress) + Send),
    ) -> anyhow::Result<Stored> {
        // Bytes are counted as the store reads them, copies as they become
        // durable; both report through the one `progress`.
        let progress = std::sync::Mutex::new(progress);
        let tell = |p: PutProgress| (progress.lock().unwrap_or_else(|e| e.into_inner()))(p);
        let data = Counted::new(data, |done| tell(PutProgress::Sent(done)));
        let (copies_tx, mut copies) = tokio::sync::watch::channel(CopyProgress::default());
        let store = self.store_kept(name, meta, data, size, Some(&copies_tx), keeping);
        tokio::pin!(store);
        let out = loop {
            tokio::select! {
                stored = &mut store => break stored?,
                Ok(()) = copies.changed() => {
                    let now = *copies.borrow_and_update();
                    tell(PutProgress::Copies { copies: now.copies, target: now.target });
                }
            }
        };
        Ok(Stored {
            file: out.file,
            copies: out.replication.copies,
            target: out.replication.target,
            failures: out.replication.failure_lines(),
        })
    }

    async fn read_into(
        &self,
        name: Wanted<'_>,
        target: &mut Download,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        copy_out(self, name, target.file(), progress).await
    }

    async fn read_to<W: AsyncWrite + Unpin + Send>(
        &self,
        name: Wanted<'_>,
        sink: &mut W,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        copy_out(self, name, sink, progress).await
    }

    async fn read_to_stdout(
        &self,
        name: Wanted<'_>,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        copy_out(self, name, &mut tokio::io::stdout(), progress).await
    }

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
        Ok(Node::quota_in_detail(self).await?)
    }

    async fn set_quota(&self, bytes: u64) -> anyhow::Result<QuotaStatus> {
        Node::set_quota(self, bytes)?;
        Ok(Node::quota(self))
    }

    async fn limits(&self) -> anyhow::Result<RateLimits> {
        Ok(Node::limits(self))
    }

    async fn set_limits(&self, limits: RateLimits) -> anyhow::Result<RateLimits> {
        Node::set_limits(self, limits);
        Ok(Node::limits(self))
    }

    async fn gc(&self) -> anyhow::Result<GcSummary> {
        Ok(self.collect_garbage().await?)
    }

    async fn clean(&self, names: &[String]) -> anyhow::Result<CleanReport> {
        Ok(Node::clean(self, names).await?)
    }

    async fn invite(&self, expires: Option<std::time::Duration>) -> anyhow::Result<Invitation> {
        Ok(Node::invite(self, expires).await?)
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

    async fn delete(&self, name: &str, purge: bool) -> anyhow::Result<DeleteOutcome> {
        Ok(match purge {
            true => Node::purge(self, name).await?,
            false => Node::delete(self, name).await?,
        })
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionInfo>> {
        Ok(Node::versions(self, name).await?)
    }

    async fn undelete(&self, name: &str) -> anyhow::Result<FileInfo> {
        Ok(Node::undelete(self, name).await?)
    }

    async fn s3_key_create(&self, name: &str) -> anyhow::Result<AccessKey> {
        Ok(peervault_s3::keys::create(self, name).await?)
    }

    async fn s3_keys(&self) -> anyhow::Result<Vec<KeySummary>> {
        Ok(peervault_s3::keys::list(self).await?)
    }

    async fn s3_key_remove(&self, id: &str) -> anyhow::Result<()> {
        Ok(peervault_s3::keys::remove(self, id).await?)
    }

    async fn devices(&self) -> anyhow::Result<Vec<DeviceInfo>> {
        Ok(Node::devices(self).await?)
    }

    async fn rename_device(&self, who: &str, name: &str) -> anyhow::Result<DeviceInfo> {
        Ok(Node::rename_device(self, who, name).await?)
    }

    async fn remove_device(&self, who: &str) -> anyhow::Result<RemovedDevice> {
        Ok(Node::remove_device(self, who).await?)
    }

    async fn rekey(&self, all: bool) -> anyhow::Result<u32> {
        Ok(match all {
            true => Node::rekey_all(self).await?,
            false => Node::rekey(self).await?,
        })
    }

    async fn redundancy(&self, set: Option<Keeping>) -> anyhow::Result<RedundancyStatus> {
        Ok(match set {
            None => Node::redundancy_status(self),
            Some(keeping) => Node::set_redundancy(self, keeping.redundancy(None)).await?,
        })
    }

    async fn restore(&self, name: &str, version: &str) -> anyhow::Result<FileInfo> {
        let version = self.find_version(name, version).await?;
        Ok(Node::restore(self, name, version).await?)
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
    async fn check_fits(&self, _size: u64) -> anyhow::Result<()> {
        Ok(())
    }

    async fn store<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        size: Option<u64>,
        meta: FileMeta,
        keeping: Keeping,
        data: R,
        progress: &mut (dyn FnMut(PutProgress) + Send),
    ) -> anyhow::Result<Stored> {
        let what = crate::control::client::PutWhat { meta, keeping };
        match self.put_with(name, size, what, data, progress).await? {
            Response::Stored {
                file,
                copies,
                target,
                failures,
                ..
            } => Ok(Stored {
                file,
                copies,
                target,
                failures,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn read_into(
        &self,
        name: Wanted<'_>,
        target: &mut Download,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        Ok(match target.regular_fd() {
            // The node writes into the file itself.
            Some(fd) => self.get_into(name, fd, progress).await?,
            // A device or FIFO: streamed into, never replaced.
            None => self.get(name, target.file(), progress).await?,
        })
    }

    async fn read_to<W: AsyncWrite + Unpin + Send>(
        &self,
        name: Wanted<'_>,
        sink: &mut W,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        Ok(self.get(name, sink, progress).await?)
    }

    async fn read_to_stdout(
        &self,
        name: Wanted<'_>,
        progress: ReadProgress<'_>,
    ) -> anyhow::Result<FileInfo> {
        Ok(if stdout_is_a_file() {
            // Standard output redirected to a file: the node writes into it.
            self.get_into(name, std::io::stdout().as_fd(), progress)
                .await?
        } else {
            self.get(name, &mut tokio::io::stdout(), progress).await?
        })
    }

    async fn status(&self) -> anyhow::Result<NodeStatus> {
        ask!(self, Request::Status, Response::Status { status } => *status)
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

    async fn limits(&self) -> anyhow::Result<RateLimits> {
        ask!(self, Request::Limits, Response::Limits { limits } => limits)
    }

    async fn set_limits(&self, limits: RateLimits) -> anyhow::Result<RateLimits> {
        ask!(self, Request::SetLimits { limits }, Response::Limits { limits } => limits)
    }

    async fn gc(&self) -> anyhow::Result<GcSummary> {
        ask!(self, Request::Gc, Response::Gc { summary } => summary)
    }

    async fn clean(&self, names: &[String]) -> anyhow::Result<CleanReport> {
        let names = names.to_vec();
        ask!(self, Request::Clean { names }, Response::Cleaned { report } => report)
    }

    async fn invite(&self, expires: Option<std::time::Duration>) -> anyhow::Result<Invitation> {
        let request = Request::Invite {
            expires_seconds: expires.map(|d| d.as_secs().max(1)),
        };
        ask!(self, request, Response::Invite { invitation } => invitation)
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

    async fn delete(&self, name: &str, purge: bool) -> anyhow::Result<DeleteOutcome> {
        let request = Request::Delete {
            name: name.to_string(),
            purge,
        };
        ask!(self, request, Response::Deleted { name, freed_bytes, recoverable } => DeleteOutcome { name, freed_bytes, recoverable })
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionInfo>> {
        let request = Request::Versions {
            name: name.to_string(),
        };
        ask!(self, request, Response::Versions { versions } => versions)
    }

    async fn s3_key_create(&self, name: &str) -> anyhow::Result<AccessKey> {
        let request = Request::S3KeyCreate {
            name: name.to_string(),
        };
        ask!(self, request, Response::S3Key { key } => key)
    }

    async fn s3_keys(&self) -> anyhow::Result<Vec<KeySummary>> {
        ask!(self, Request::S3KeyList, Response::S3Keys { keys } => keys)
    }

    async fn s3_key_remove(&self, id: &str) -> anyhow::Result<()> {
        let request = Request::S3KeyRemove { id: id.to_string() };
        ask!(self, request, Response::S3KeyRemoved { .. } => ())
    }

    async fn devices(&self) -> anyhow::Result<Vec<DeviceInfo>> {
        ask!(self, Request::Devices, Response::Devices { devices } => devices)
    }

    async fn rename_device(&self, who: &str, name: &str) -> anyhow::Result<DeviceInfo> {
        let request = Request::RenameDevice {
            who: who.to_string(),
            name: name.to_string(),
        };
        ask!(self, request, Response::Device { device } => device)
    }

    async fn remove_device(&self, who: &str) -> anyhow::Result<RemovedDevice> {
        let request = Request::RemoveDevice {
            who: who.to_string(),
        };
        ask!(self, request, Response::DeviceRemoved { removed } => removed)
    }

    async fn rekey(&self, all: bool) -> anyhow::Result<u32> {
        ask!(self, Request::Rekey { all }, Response::Rekeyed { epoch } => epoch)
    }

    async fn redundancy(&self, set: Option<Keeping>) -> anyhow::Result<RedundancyStatus> {
        let request = Request::Redundancy {
            set: set.and_then(Keeping::label),
        };
        ask!(self, request, Response::Redundancy { status } => status)
    }

    async fn undelete(&self, name: &str) -> anyhow::Result<FileInfo> {
        let request = Request::Undelete {
            name: name.to_string(),
        };
        ask!(self, request, Response::File { file } => file)
    }

    async fn restore(&self, name: &str, version: &str) -> anyhow::Result<FileInfo> {
        let request = Request::Restore {
            name: name.to_string(),
            version: version.to_string(),
        };
        ask!(self, request, Response::File { file } => file)
    }
}

/// Whether standard output is a regular file (`get name > file`), which the node
/// can be given to write into; pipes and terminals are streamed to.
fn stdout_is_a_file() -> bool {
    rustix::fs::fstat(std::io::stdout())
        .map(|stat| {
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
}
