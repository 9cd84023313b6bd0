//! Writing files, and keeping them as the vault says.
//!
//! [`Writer`] is the write path every front end's store goes through: the
//! file is written here while its new chunks (or, erasure coded, each shard)
//! stream to the holders placement picks, then copied until acknowledged and
//! announced.
//!
//! **The vault's redundancy.** How new files are kept is a vault setting: a
//! member writes it (`peervault redundancy 4+2`, or `none` for whole copies)
//! as a signed record, `.peervault/redundancy`, that reaches every node as
//! any record does; a node started with `--redundancy` uses its flag only
//! while the vault has no setting. Why a record and not the flag alone:
//! switching a vault is then one command, and every node, offline ones when
//! they return, agrees on what "kept as the vault says" means.
//!
//! **Re-encoding** ([`ReencodeWorker`]). A file kept otherwise than the vault
//! says is written again, the same bytes and metadata, by the best-ranked
//! node holding it (whole or shards), as a *re-encoding* of its version
//! (`peervault_store::WriteAs::reencodes`): the new version is one tick
//! later, commits only while the old one is still current, and the old one
//! is then dropped everywhere instead of kept as history, so the space comes
//! back at once. The old version stays readable until the new one is
//! placed, so every file is readable throughout. Nothing is remembered
//! between rounds: the catalogue says what is left, so a stop or a crash
//! loses at most the file in hand, and the next round goes on.
//!
//! Only files written before the setting are the vault's to switch: one
//! written since keeps what its writer chose (`put --redundancy`), and a
//! node's `--redundancy` alone shapes its new writes but re-encodes nothing.
//!
//! **After `rekey --all`** the same worker writes again, kept as it is, every
//! coded file sealed before the request (its re-encoding's time, if it is one,
//! counts), once this node holds the request's epoch key. Why here and not in
//! the rekey pass (`crate::rekey`), which re-seals whole chunks where they
//! lie: a shard is a piece of a sealed chunk, and its id is a hash of it, so
//! re-sealing a coded chunk makes new shards with new ids, which only a new
//! version can name. The old version's shards, sealed in the old epoch, go
//! with it after the grace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use peervault_net::PeerId;
use peervault_store::{
    FileSummary, Layout, Manifest, Redundancy, ShardSet, Version, WriteAs, WriteOutcome,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::context::Context;
use crate::devices::{Devices, Signed};
use crate::error::Result;
use crate::replicate::{Replicator, placement};
use crate::settings::Keeping;
use crate::sync::Syncer;
use crate::views::{CopyProgress, FileInfo, StoreReport};
use crate::workers::Worker;

/// The record of the vault's redundancy setting.
pub const REDUNDANCY_NAME: &str = ".peervault/redundancy";
/// How often the re-encoder looks for files kept otherwise, at most (as
/// often as the repair worker when that is sooner).
const REENCODE_EVERY: Duration = Duration::from_secs(10);
/// What one round re-encodes at most, so that other background work and
/// a stop are not held up for long.
const ROUND_BYTES: u64 = 1 << 30;
const ROUND_TIME: Duration = Duration::from_secs(120);
/// Once a pass found every file kept as the vault says, how long until the
/// next look.
const SETTLED_LOOK_EVERY: Duration = Duration::from_secs(300);

/// The vault's redundancy as a member set it (signed, like the device records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedundancySetting {
    pub by: String,
    pub at_ms: u64,
    /// `K+M`, or `none` for whole copies.
    pub redundancy: String,
    #[serde(default)]
    pub signature: String,
}

crate::devices::signed_by_field!(RedundancySetting);

impl RedundancySetting {
    /// The coding it asks for; `None` for whole copies (and for a value this
    /// node cannot read, which then keeps whole copies).
    pub fn redundancy(&self) -> Option<Redundancy> {
        Keeping::parse(&self.redundancy)
            .ok()
            .and_then(|k| k.redundancy(None))
    }
}

/// One file write as [`Writer::write`] takes it.
pub(crate) struct Write<'a> {
    pub(crate) name: &'a str,
    /// Whose placement the copies follow: the file's own name, or the
    /// object an S3 part becomes.
    pub(crate) placed_with: &'a str,
    /// Makes the file's metadata once every byte is read.
    pub(crate) finish: peervault_store::FinishMeta,
    pub(crate) size_hint: Option<u64>,
    pub(crate) progress: Option<&'a tokio::sync::watch::Sender<CopyProgress>>,
    pub(crate) keeping: Keeping,
    /// The current version this write keeps anew (the re-encoder's writes).
    pub(crate) reencodes: Option<Version>,
}

/// The write path (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    ctx: Arc<Context>,
    replicator: Replicator,
    syncer: Syncer,
}

impl Writer {
    pub(crate) fn new(ctx: Arc<Context>, replicator: Replicator, syncer: Syncer) -> Writer {
        Writer {
            ctx,
            replicator,
            syncer,
        }
    }

    pub(crate) async fn write<R>(
        &self,
        write: Write<'_>,
        reader: R,
    ) -> Result<(StoreReport, Manifest)>
    where
        R: AsyncRead + Unpin + Send,
    {
        let Write {
            name,
            placed_with,
            finish,
            size_hint,
            progress,
            keeping,
            reencodes,
        } = write;
        let replicator = &self.replicator;
        let redundancy = keeping.redundancy(self.ctx.redundancy());
        // Where the blobs go as they are written: whole chunks to every
        // holder, or each shard to the one peer that keeps its index.
        let (layout, targets) = match redundancy {
            None => {
                let holders = replicator.holders_for(placed_with).await;
                (
                    Layout::Whole,
                    holders.into_iter().map(|p| (p, None)).collect(),
                )
            }
            Some(redundancy) => {
                let holders = replicator.shard_holders_for(placed_with, redundancy).await;
                let plan = crate::coded::shard_plan(redundancy.total(), holders.len() + 1);
                let keep = plan[0];
                let targets: Vec<(PeerId, Option<ShardSet>)> = holders
                    .into_iter()
                    .zip(plan.into_iter().skip(1).map(Some))
                    .collect();
                (Layout::Coded { redundancy, keep }, targets)
            }
        };
        let shard_targets: Vec<(PeerId, ShardSet)> = targets
            .iter()
            .filter_map(|(p, set)| set.map(|set| (*p, set)))
            .collect();
        let (tap, streaming) = if targets.is_empty() {
            (None, None)
        } else {
            let (tap, task) = replicator.stream_routed(targets);
            (Some(tap), Some(task))
        };
        let how = WriteAs {
            finish,
            layout,
            reencodes,
        };
        let written = self
            .ctx
            .vault
            .write_file_as(name, how, reader, size_hint, tap)
            .await;
        if let Some(task) = streaming {
            let _ = task.await;
        }
        let out: WriteOutcome = written.inspect_err(|e| self.ctx.metrics.failed(e))?;
        self.ctx.metrics.files_stored.inc();
        replicator.provide(&out.manifest.name).await;
        let replication = match layout {
            Layout::Whole => {
                replicator
                    .replicate_placed(&out.manifest, placed_with, progress)
                    .await
            }
            Layout::Coded { keep, .. } => {
                replicator
                    .replicate_shards(&out.manifest, placed_with, keep, shard_targets, progress)
                    .await
            }
        };
        self.syncer.announce_version(
            &out.manifest.name,
            out.manifest.version,
            &replication.holders,
        );
        let report = StoreReport {
            file: FileInfo::new(&out.manifest, true, replication.copies),
            stored_bytes: out.stored_bytes,
            replaced: out.replaced,
            replication,
        };
        Ok((report, out.manifest))
    }
}

/// Where re-encoding stands on this node, as `redundancy` and `status` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedundancyStatus {
    /// How new files are kept: `K+M`, or `none` for whole copies.
    pub redundancy: String,
    /// Where that comes from: "vault" (a member's setting), "flag"
    /// (`--redundancy`) or "default".
    pub source: String,
    /// Live files to write again, when the re-encoder last looked: kept
    /// otherwise than the vault's setting says, or coded and sealed before
    /// the last `rekey --all`.
    pub files_kept_otherwise: u64,
    /// Files this node has re-encoded since it started, and their bytes.
    pub files_reencoded: u64,
    pub bytes_reencoded: u64,
}

/// Re-encodes files kept otherwise than the vault says (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Reencoder {
    ctx: Arc<Context>,
    replicator: Replicator,
    writer: Writer,
    status: Arc<Mutex<RedundancyStatus>>,
    every: Duration,
    /// The setting's and the rekey request's times for which a pass last
    /// found nothing left, and when.
    settled: Arc<Mutex<Option<(Asked, Instant)>>>,
}

impl Reencoder {
    pub(crate) fn new(
        ctx: Arc<Context>,
        replicator: Replicator,
        writer: Writer,
        repair_delay: Duration,
    ) -> Reencoder {
        Reencoder {
            ctx,
            replicator,
            writer,
            status: Arc::default(),
            every: crate::maintenance::repair_tick(repair_delay).min(REENCODE_EVERY),
            settled: Arc::default(),
        }
    }

    /// Where things stand.
    pub(crate) fn status(&self) -> RedundancyStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        status.redundancy = label(self.ctx.redundancy());
        status.source = match (self.ctx.devices.redundancy_setting(), self.ctx.redundancy) {
            (Some(_), _) => "vault",
            (None, Some(_)) => "flag",
            (None, None) => "default",
        }
        .into();
        status
    }

    async fn round(&self) -> Result<String> {
        crate::bandwidth::in_background(self.run()).await
    }

    async fn run(&self) -> Result<String> {
        // A node's own --redundancy only shapes its new writes: only a
        // setting of the vault's re-encodes what is stored.
        let setting = self.ctx.devices.redundancy_setting();
        // A `rekey --all` this node can serve (it holds the epoch's key):
        // a coded file's shards cannot be re-sealed where they lie (new
        // shards have new ids), so a coded file sealed before the request is
        // written again, as it is kept, in the current epoch.
        let vault = &self.ctx.vault;
        let resealing = (self.ctx.devices.registry().rekey)
            .filter(|r| vault.current_epoch() >= r.epoch)
            .map(|r| r.at_ms);
        if setting.is_none() && resealing.is_none() {
            return Ok(
                "the vault has no redundancy setting and no rekey --all: nothing to re-encode"
                    .into(),
            );
        }
        let key = (
            setting.as_ref().map_or(0, |s| s.at_ms),
            resealing.unwrap_or(0),
        );
        let settled = || match &setting {
            Some(s) => format!(
                "every file is kept as the vault says ({})",
                label(s.redundancy())
            ),
            None => "every coded file is sealed in the current epoch".into(),
        };
        // A pass over the catalogue found nothing left a short while ago:
        // look again only now and then (records of old files may still
        // arrive from nodes that were away), not every round.
        if let Some((at, when)) = *self.settled.lock().unwrap_or_else(|p| p.into_inner())
            && at == key
            && when.elapsed() < SETTLED_LOOK_EVERY
        {
            return Ok(settled());
        }
        // What each file is to become, if it is to be written again. Files
        // written after the setting keep what their writer chose (`put
        // --redundancy`); those before it are the vault's to switch.
        let target = |f: &FileSummary| -> Option<Option<Redundancy>> {
            if let Some(s) = &setting
                && f.redundancy != s.redundancy()
                && f.version.unix_millis() < s.at_ms
            {
                return Some(s.redundancy());
            }
            resealing
                .filter(|at| f.redundancy.is_some() && f.sealed_ms < *at)
                .map(|_| f.redundancy)
        };
        let otherwise: Vec<ToWrite> = vault
            .summaries()
            .await?
            .into_iter()
            .filter(|(_, f)| !Devices::touches(&f.name) && !crate::objects::is_reserved(&f.name))
            .filter_map(|(id, f)| target(&f).map(|wanted| (id, f, wanted)))
            .collect();
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .files_kept_otherwise = otherwise.len() as u64;
        if otherwise.is_empty() {
            *self.settled.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, Instant::now()));
            return Ok(settled());
        }
        // The best-ranked node holding a file (whole or shards) re-encodes it.
        let mine: Vec<ToWrite> = otherwise
            .iter()
            .filter(|(_, f, _)| f.held)
            .cloned()
            .collect();
        let peers = self.ctx.connected_peers().await;
        let versions: Vec<_> = mine.iter().map(|(id, f, _)| (*id, f.version)).collect();
        let holders = self.replicator.remote_holders(&versions, &peers).await;
        let me = self.ctx.net.local_peer_id();
        let started = Instant::now();
        let (mut files, mut bytes) = (0u64, 0u64);
        for ((name_id, file, wanted), others) in mine.iter().zip(holders) {
            if started.elapsed() > ROUND_TIME || bytes > ROUND_BYTES {
                break;
            }
            let mut candidates: Vec<PeerId> = others.regular.clone();
            candidates.extend(&others.extra);
            candidates.extend(others.shards.iter().map(|(p, _)| *p));
            candidates.push(me);
            if placement(name_id, candidates).first() != Some(&me) {
                continue;
            }
            let wanted = *wanted;
            match self.reencode(file, wanted).await {
                Ok(()) => {
                    files += 1;
                    bytes += file.size;
                    tracing::info!(
                        "re-encoded {:?} ({} bytes) as {}",
                        file.name,
                        file.size,
                        label(wanted)
                    );
                }
                // Written again meanwhile, or a holder gone: the next round.
                Err(e) => tracing::info!("{:?} was not re-encoded this round: {e}", file.name),
            }
        }
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.files_reencoded += files;
            status.bytes_reencoded += bytes;
        }
        Ok(format!(
            "{files} files re-encoded ({bytes} bytes); {} were to be",
            otherwise.len()
        ))
    }

    /// Writes `file` again as `wanted` says, as a re-encoding of its version.
    async fn reencode(&self, file: &FileSummary, wanted: Option<Redundancy>) -> Result<()> {
        let source = self.replicator.chunk_source(&file.name).await;
        let reader = self
            .ctx
            .vault
            .read_version_with(&file.name, Some(file.version), Some(source))
            .await?;
        let bytes = tokio_util::io::StreamReader::new(
            reader.map(|piece| piece.map_err(std::io::Error::other)),
        );
        let meta = file.meta.clone();
        let write = Write {
            name: &file.name,
            placed_with: &file.name,
            finish: Box::new(move || Ok(meta)),
            size_hint: Some(file.size),
            progress: None,
            keeping: match wanted {
                None => Keeping::Copies,
                Some(r) => Keeping::Coded(r),
            },
            reencodes: Some(file.version),
        };
        self.writer.write(write, bytes).await.map(|_| ())
    }
}

/// What a pass of the re-encoder served: the times of the vault's
/// redundancy setting and of the last `rekey --all` (0: none).
type Asked = (u64, u64);

/// A file the re-encoder is to write again, and how it is to be kept.
type ToWrite = (peervault_store::NameId, FileSummary, Option<Redundancy>);

fn label(redundancy: Option<Redundancy>) -> String {
    redundancy.map_or_else(|| "none".into(), |r| r.to_string())
}

/// The re-encoder as a background [`Worker`].
#[derive(Debug)]
pub(crate) struct ReencodeWorker(pub(crate) Reencoder);

impl Worker for ReencodeWorker {
    fn name(&self) -> &'static str {
        "reencode"
    }

    fn first_round(&self) -> Duration {
        self.0.every
    }

    fn interval(&self) -> Duration {
        self.0.every
    }

    async fn round(&self) -> Result<String> {
        self.0.round().await
    }
}

impl crate::Node {
    /// Sets how the vault keeps files (`None`: whole copies, `--replicas` of
    /// them): new files are written so, and every node re-encodes the files
    /// it is the first holder of (see the module docs).
    pub async fn set_redundancy(&self, redundancy: Option<Redundancy>) -> Result<RedundancyStatus> {
        let setting = RedundancySetting {
            by: self.peer_id(),
            at_ms: peervault_store::version::unix_millis_now(),
            redundancy: label(redundancy),
            signature: String::new(),
        }
        .sign(self.inner.ctx.devices.identity())?;
        self.write_device_record(REDUNDANCY_NAME, crate::devices::record_meta(&setting)?)
            .await?;
        Ok(self.redundancy_status())
    }

    /// How new files are kept and where re-encoding stands here.
    pub fn redundancy_status(&self) -> RedundancyStatus {
        self.inner.reencoder.status()
    }
}
