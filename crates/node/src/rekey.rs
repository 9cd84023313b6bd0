//! `rekey --all`: every member re-encrypts what it holds in the current key
//! epoch, so that the keys of earlier epochs (a removed device's) open none of
//! it.
//!
//! `peervault rekey --all` on any member starts a new epoch (as `rekey` does)
//! and writes a request record, `.peervault/rekey` (who, when, and the epoch
//! to reach, signed), which reaches every node like any record, also one that
//! was offline. Each node's `rekey` worker ([`RekeyWorker`]) sees a request it
//! has not done yet and, once it holds that epoch's key, makes a pass over
//! its chunks and then its catalogue records (`peervault_store`'s
//! `reseal_after`, `reseal_records_after`): a batch at a time, each batch
//! durable before its old blobs are freed, paced to `--rekey-rate`
//! ([`DEFAULT_REKEY_RATE`]) so that
//! the node's own reads and writes keep the disk. Where a pass stands is kept
//! in `rekey.progress` in the data dir after every batch: a node that stops
//! resumes there. A pass that ends while newer epochs began meanwhile runs
//! again, until nothing older than the current epoch is left.
//!
//! `status` shows the epoch and the pass: chunks checked and re-sealed, bytes,
//! and whether it is done.
//!
//! Shards of erasure-coded files are not re-sealed here: a shard's id is a
//! hash of it, so a coded chunk sealed again is new shards, which only a new
//! version of the file can name. The re-encoder (`crate::writes`) writes those
//! files again in the new epoch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peervault_store::ChunkId;
use peervault_store::catalogue::RecordCursor;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::devices::Signed;
use crate::error::{NodeError, Result};
use crate::workers::Worker;

/// The request record.
pub const REKEY_NAME: &str = ".peervault/rekey";
/// Bytes per second a pass re-seals at most (reading and writing each),
/// unless `--rekey-rate` says otherwise.
pub const DEFAULT_REKEY_RATE: u64 = 256 * 1024 * 1024;
/// Chunks per batch: with 1 MiB chunks, what a batch holds at once is one
/// chunk; what it writes before its sync, up to this many.
const BATCH: usize = 64;
/// Records per batch of the records' pass.
const RECORD_BATCH: usize = 1024;
const PROGRESS_FILE: &str = "rekey.progress";
/// How often the worker looks for a request.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// A request to re-encrypt everything, as every node keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRequest {
    pub by: String,
    pub at_ms: u64,
    /// The epoch every chunk is to be sealed in (or a later one): its number.
    pub epoch: u32,
    #[serde(default)]
    pub signature: String,
}

crate::devices::signed_by_field!(RekeyRequest);

/// Where this node's pass stands, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The request this pass serves (its `at_ms`), and whether it is done.
    request_at_ms: u64,
    done: bool,
    /// The last chunk id re-sealed (hex); `None` at the start.
    after: Option<String>,
    chunks_done: bool,
    checked: u64,
    resealed: u64,
    bytes: u64,
}

/// The rekey pass as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyStatus {
    /// "idle" (no request), "waiting" (for the epoch's key), "running" or "done".
    pub state: String,
    /// When the request being served was made (Unix ms; 0 = none).
    pub requested_unix_ms: u64,
    /// The epoch it asks for.
    pub epoch: u32,
    pub chunks_checked: u64,
    pub chunks_resealed: u64,
    pub bytes_resealed: u64,
    /// Chunks held here still sealed in an earlier epoch, counted when the
    /// last pass ended (0 once it is done).
    #[serde(default)]
    pub chunks_in_older_epochs: u64,
}

/// The node's rekey state (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Rekeyer {
    ctx: Arc<Context>,
    path: PathBuf,
    rate: u64,
    status: Arc<Mutex<RekeyStatus>>,
}

fn load(path: &Path) -> Progress {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save(path: &Path, progress: &Progress) -> Result<()> {
    let bytes = serde_json::to_vec(progress).unwrap_or_default();
    peervault_store::files::write_atomically(path, &bytes, 0o600)
        .map_err(|e| NodeError::Invalid(format!("cannot write {}: {e}", path.display())))
}

impl Rekeyer {
    pub(crate) fn new(ctx: Arc<Context>, data_dir: &Path, rate: u64) -> Rekeyer {
        let path = data_dir.join(PROGRESS_FILE);
        let progress = load(&path);
        let status = RekeyStatus {
            state: match (progress.request_at_ms, progress.done) {
                (0, _) => "idle",
                (_, true) => "done",
                _ => "running",
            }
            .into(),
            requested_unix_ms: progress.request_at_ms,
            epoch: 0,
            chunks_checked: progress.checked,
            chunks_resealed: progress.resealed,
            bytes_resealed: progress.bytes,
            chunks_in_older_epochs: 0,
        };
        Rekeyer {
            ctx,
            path,
            rate: rate.max(1),
            status: Arc::new(Mutex::new(status)),
        }
    }

    pub(crate) fn status(&self) -> RekeyStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut RekeyStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// One look: serves the newest request if it is not done yet.
    async fn round(&self) -> Result<String> {
        let Some(request) = self.ctx.devices.registry().rekey else {
            return Ok("no request".into());
        };
        let mut progress = load(&self.path);
        if progress.request_at_ms == request.at_ms && progress.done {
            return Ok("done".into());
        }
        if progress.request_at_ms != request.at_ms {
            progress = Progress {
                request_at_ms: request.at_ms,
                ..Progress::default()
            };
        }
        let vault = &self.ctx.vault;
        self.set_status(|s| {
            s.requested_unix_ms = request.at_ms;
            s.epoch = request.epoch;
        });
        if vault.current_epoch() < request.epoch {
            self.set_status(|s| s.state = "waiting".into());
            return Ok(format!(
                "waiting for epoch {}'s key (this node is at {})",
                request.epoch,
                vault.current_epoch()
            ));
        }
        self.set_status(|s| s.state = "running".into());
        let started = Instant::now();
        let mut bytes_this_round = 0u64;
        // A pass that ends while a newer epoch began runs again (at most a few
        // times a round; the next round goes on).
        for _ in 0..3 {
            let epoch_at_start = vault.current_epoch();
            // About a second's worth per batch at the pace, so that the pace
            // holds and a stop loses little.
            let per_batch = ((self.rate >> 20) as usize).clamp(1, BATCH);
            while !progress.chunks_done {
                let after = progress.after.as_deref().and_then(parse_id);
                let batch = vault.reseal_after(after, per_batch).await?;
                progress.checked += batch.checked as u64;
                progress.resealed += batch.resealed as u64;
                progress.bytes += batch.bytes;
                bytes_this_round += batch.bytes;
                match batch.next {
                    Some(next) => progress.after = Some(hex::encode(next.0)),
                    None => progress.chunks_done = true,
                }
                save(&self.path, &progress)?;
                self.set_status(|s| {
                    s.chunks_checked = progress.checked;
                    s.chunks_resealed = progress.resealed;
                    s.bytes_resealed = progress.bytes;
                });
                pace(bytes_this_round, started, self.rate).await;
            }
            let mut cursor: Option<RecordCursor> = None;
            loop {
                let (_, next) = vault.reseal_records_after(cursor, RECORD_BATCH).await?;
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let older = vault.epoch_census().await?.older;
            self.set_status(|s| s.chunks_in_older_epochs = older);
            if vault.current_epoch() == epoch_at_start && older == 0 {
                progress.done = true;
                save(&self.path, &progress)?;
                self.set_status(|s| s.state = "done".into());
                return Ok(format!(
                    "re-sealed {} of {} chunks ({} bytes) in epoch {}",
                    progress.resealed, progress.checked, progress.bytes, epoch_at_start
                ));
            }
            // Chunks written or received meanwhile in an older epoch, or a
            // newer epoch: another pass.
            progress.after = None;
            progress.chunks_done = false;
            save(&self.path, &progress)?;
        }
        Ok(format!(
            "re-sealed {} chunks so far; more remain",
            progress.resealed
        ))
    }
}

/// Sleeps as long as keeps `bytes` since `started` under `rate` per second.
async fn pace(bytes: u64, started: Instant, rate: u64) {
    let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

fn parse_id(hex_id: &str) -> Option<ChunkId> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(ChunkId(id))
}

/// The background worker that serves rekey requests.
#[derive(Debug)]
pub(crate) struct RekeyWorker(pub(crate) Rekeyer);

impl Worker for RekeyWorker {
    fn name(&self) -> &'static str {
        "rekey"
    }

    fn first_round(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn interval(&self) -> Duration {
        LOOK_EVERY
    }

    async fn round(&self) -> Result<String> {
        self.0.round().await
    }
}

impl crate::Node {
    /// Starts a new key epoch and asks every member to re-encrypt what it
    /// holds in it (see the module docs). The epoch's number.
    pub async fn rekey_all(&self) -> Result<u32> {
        let epoch = self.rekey().await?;
        let request = RekeyRequest {
            by: self.peer_id(),
            at_ms: peervault_store::version::unix_millis_now(),
            epoch,
            signature: String::new(),
        }
        .sign(self.inner.ctx.devices.identity())?;
        self.write_device_record(REKEY_NAME, crate::devices::record_meta(&request)?)
            .await?;
        Ok(epoch)
    }

    /// Where this node's re-encryption stands.
    pub fn rekey_status(&self) -> RekeyStatus {
        self.inner.rekeyer.status()
    }
}
