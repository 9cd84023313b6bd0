//! Keeping the data safe without being asked: the integrity GC and the repair
//! worker.
//!
//! **GC** (first run `gc_delay` after start, then every `gc_interval`, or at once
//! through [`Node::collect_garbage`]): the vault checks every blob it holds and
//! removes orphans older than the grace period (see `peervault_store`'s `gc`
//! module for why that is safe); this layer then fetches a good copy of every
//! damaged chunk from peers, checks it in full and puts it back, and collects
//! tombstones older than the retention period. One run at a time.
//!
//! **Repair** (every [`repair_tick`]): for each file this node holds completely,
//! ask the connected peers which of them hold it too. If fewer than the replica
//! target do, the holder that ranks first in the file's rendezvous order among the
//! live holders copies it to the best-ranked peers that lack it, so exactly one
//! node acts for each file and any node can take over when that one goes. A
//! shortfall caused by a peer that left less than `repair_delay` ago is given
//! that long to come back (a restart should not trigger copies); a holder that is
//! connected but reports the file incomplete is replaced at once. A file with more
//! copies than the target (a holder came back after its replacement was made) is
//! dropped by the surplus holders that rank below the first `target` holders, so
//! the extra copy does not stay for ever; the first `target` holders in the order
//! never drop theirs, whatever each node's view, so copies never fall below the
//! target this way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use peervault_net::PeerId;
use peervault_store::{ChunkId, FileSummary, GcReport, Manifest, NameId, StoreError, Version};
use serde::{Deserialize, Serialize};

use crate::error::{NodeError, Result};
use crate::node::Node;
use crate::replicate::placement;

/// How long GC waits after start before its first run.
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(5 * 60);
/// How often GC runs.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);
/// How old an unreferenced blob or temporary file must be before GC removes it.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(10 * 60);
/// How long a departed holder is waited for before its files are copied elsewhere.
pub const DEFAULT_REPAIR_DELAY: Duration = Duration::from_secs(10 * 60);

/// When the repair worker first looks after start (at the latest).
const FIRST_REPAIR_ROUND: Duration = Duration::from_secs(5);

/// How often the repair worker looks: often enough to act soon after the delay,
/// never more than once a minute's worth of work in a large vault.
pub fn repair_tick(repair_delay: Duration) -> Duration {
    (repair_delay / 4).clamp(Duration::from_millis(500), Duration::from_secs(60))
}

/// The outcome of one GC run, as `gc` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcSummary {
    /// Chunks checked (hash and tag).
    pub checked: usize,
    /// Chunks found damaged or missing (quarantined).
    pub corrupted: usize,
    /// Of those, restored from a peer.
    pub repaired: usize,
    /// Chunks no live file references, and runs of space no chunk record names
    /// (left by interrupted writes).
    pub orphaned: usize,
    /// Of those, the ones removed (older than the grace period).
    pub removed: usize,
    pub bytes_freed: u64,
    /// Tombstones past the retention period, collected.
    pub tombstones_collected: usize,
    pub duration_ms: u64,
    /// When the run finished (Unix ms).
    pub finished_unix_ms: u64,
}

impl GcSummary {
    /// The log line, in the original's words plus what it did not report.
    pub fn line(&self) -> String {
        format!(
            "Garbage collection completed in {:.1}s: {} corrupted, {} orphaned, {} removed ({} repaired, {} checked, {} tombstones collected)",
            self.duration_ms as f64 / 1000.0,
            self.corrupted,
            self.orphaned,
            self.removed,
            self.repaired,
            self.checked,
            self.tombstones_collected,
        )
    }
}

/// What `clean` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Files this node held completely before.
    pub files: Vec<String>,
    /// Chunk blobs removed (also of files held only in part).
    pub chunks: usize,
    pub bytes_freed: u64,
}

/// What the repair worker did in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRound {
    /// Files this node holds and checked.
    pub checked: usize,
    /// Files with fewer live copies than the target.
    pub under_replicated: usize,
    /// Copies made this round.
    pub copies_made: usize,
    /// Surplus copies this node dropped.
    pub copies_dropped: usize,
}

/// What the maintenance workers remember between runs.
#[derive(Debug, Default)]
pub(crate) struct MaintenanceState {
    /// Peers that disconnected, and when (removed when they return).
    departed: HashMap<PeerId, Instant>,
    /// Files first seen short of copies, and when.
    short_since: HashMap<NameId, Instant>,
    pub(crate) last_gc: Option<GcSummary>,
    pub(crate) last_repair: Option<RepairRound>,
}

impl MaintenanceState {
    pub(crate) fn peer_connected(&mut self, peer: &PeerId) {
        self.departed.remove(peer);
    }

    pub(crate) fn peer_departed(&mut self, peer: PeerId) {
        self.departed.insert(peer, Instant::now());
    }
}

impl Node {
    /// Runs the integrity GC now (waiting for a run in progress to end first).
    pub async fn collect_garbage(&self) -> Result<GcSummary> {
        let _one_at_a_time = self.inner.gc_lock.lock().await;
        tracing::info!("Running garbage collection...");
        let started = Instant::now();
        let report = self
            .inner
            .vault
            .collect_garbage(self.inner.maintenance_config.gc_grace)
            .await?;
        let repaired = self.restore_chunks(&report).await;
        self.complete_partial_copies().await;
        let tombstones_collected = match self.inner.vault.collect_tombstones().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("collecting old tombstones failed: {e}");
                0
            }
        };
        let summary = GcSummary {
            checked: report.checked,
            corrupted: report.corrupted.len(),
            repaired,
            orphaned: report.orphaned,
            removed: report.removed,
            bytes_freed: report.bytes_freed,
            tombstones_collected,
            duration_ms: started.elapsed().as_millis() as u64,
            finished_unix_ms: peervault_store::version::unix_millis_now(),
        };
        if summary.corrupted > summary.repaired {
            tracing::warn!(
                "{} damaged chunks could not be restored from any peer; the repair worker copies the affected files again where copies remain",
                summary.corrupted - summary.repaired
            );
        }
        tracing::info!("{}", summary.line());
        self.inner.metrics.gc_finished(&summary);
        self.state().last_gc = Some(summary.clone());
        // A run over a large catalogue has just freed what it allocated; give
        // it back whether the run was scheduled or asked for.
        crate::memory::release_free_memory();
        Ok(summary)
    }

    /// Puts back a good copy, from peers, of each damaged chunk a live file uses.
    async fn restore_chunks(&self, report: &GcReport) -> usize {
        if report.corrupted.is_empty() {
            return 0;
        }
        let damaged: HashSet<ChunkId> = report.corrupted.iter().copied().collect();
        let files = match self.inner.vault.list().await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("cannot list files to restore damaged chunks: {e}");
                return 0;
            }
        };
        // Where each damaged chunk is used (first use is enough to fetch it).
        let mut uses: HashMap<ChunkId, (Arc<Manifest>, usize)> = HashMap::new();
        for file in files {
            let file = Arc::new(file);
            for (index, id) in file.chunks.iter().enumerate() {
                if damaged.contains(id) {
                    uses.entry(*id).or_insert_with(|| (file.clone(), index));
                }
            }
        }
        let mut restored = 0;
        for (id, (manifest, index)) in uses {
            let source = self.chunk_source(&manifest.name).await;
            let blob = match source.fetch(manifest.clone(), index).await {
                Ok(blob) => blob,
                Err(why) => {
                    tracing::warn!(
                        "chunk {id} of {:?} could not be restored: {why}",
                        manifest.name
                    );
                    continue;
                }
            };
            // put_blob checks tag and hash before a byte is kept.
            match self.inner.vault.put_blob(id, blob).await {
                Ok(_) => {
                    tracing::info!("restored chunk {id} of {:?} from a peer", manifest.name);
                    restored += 1;
                }
                Err(e) => tracing::warn!("chunk {id} from a peer was refused: {e}"),
            }
        }
        restored
    }

    /// Fetches the missing chunks of every partial copy held here (see
    /// [`peervault_store::Vault::partial_copies`]), so that a broken transfer
    /// leaves a complete copy rather than chunks nothing uses and a file `verify`
    /// calls damaged. A copy this makes beyond the target is dropped by the repair
    /// worker like any surplus.
    async fn complete_partial_copies(&self) {
        let partial = match self.inner.vault.partial_copies().await {
            Ok(partial) => partial,
            Err(e) => {
                tracing::warn!("cannot look for partial copies: {e}");
                return;
            }
        };
        'files: for (manifest, missing) in partial {
            let manifest = Arc::new(manifest);
            let source = self.chunk_source(&manifest.name).await;
            for &index in &missing {
                let id = manifest.chunks[index];
                let stored = match source.fetch(manifest.clone(), index).await {
                    Ok(blob) => self
                        .inner
                        .vault
                        .put_blob(id, blob)
                        .await
                        .map(|_| ())
                        .map_err(NodeError::Store),
                    Err(why) => Err(NodeError::Store(StoreError::Unavailable {
                        name: manifest.name.clone(),
                        index,
                        count: manifest.chunks.len(),
                        reason: why.0,
                    })),
                };
                if let Err(why) = stored {
                    tracing::info!(
                        "the partial copy of {:?} here stays partial: chunk {index}: {why}",
                        manifest.name
                    );
                    continue 'files;
                }
            }
            self.provide(&manifest.name).await;
            tracing::info!(
                "completed the partial copy of {:?} a broken transfer left here ({} chunks fetched)",
                manifest.name,
                missing.len()
            );
        }
    }

    /// `clean`: drops this node's copies of every file (the catalogue and other
    /// nodes' copies stay; the repair worker makes new copies where the vault
    /// needs them). Returns what was removed.
    pub async fn clean(&self) -> Result<CleanReport> {
        let names: Vec<String> = (self.inner.vault.summaries().await?)
            .into_iter()
            .filter_map(|(_, s)| s.held.then_some(s.name))
            .collect();
        let (chunks, bytes_freed) = self.inner.vault.drop_all_copies().await?;
        for name in &names {
            self.stop_providing(name).await;
        }
        tracing::info!(
            "clean: dropped this node's copies of {} files ({chunks} chunks, {bytes_freed} bytes)",
            names.len()
        );
        Ok(CleanReport {
            files: names,
            chunks,
            bytes_freed,
        })
    }

    /// GC in the background: after `gc_delay`, then every `gc_interval`.
    pub(crate) async fn gc_worker(self) {
        let config = self.inner.maintenance_config.clone();
        tokio::time::sleep(config.gc_delay).await;
        loop {
            if let Err(e) = self.collect_garbage().await {
                tracing::warn!("garbage collection failed: {e}");
            }
            tokio::time::sleep(config.gc_interval).await;
        }
    }

    /// The repair worker (see the module docs).
    pub(crate) async fn repair_worker(self) {
        let tick = repair_tick(self.inner.maintenance_config.repair_delay);
        // The first look comes soon, so that the figures are known early.
        let mut wait = tick.min(FIRST_REPAIR_ROUND);
        loop {
            tokio::time::sleep(wait).await;
            wait = tick;
            match self.repair_round().await {
                Ok(round) => {
                    if round.copies_made > 0 || round.copies_dropped > 0 {
                        tracing::info!(
                            "repair: {} copies made, {} surplus copies dropped, {} of {} files held here short of copies",
                            round.copies_made,
                            round.copies_dropped,
                            round.under_replicated,
                            round.checked
                        );
                    }
                    self.state().last_repair = Some(round);
                }
                Err(e) => tracing::warn!("repair round failed: {e}"),
            }
            crate::memory::release_free_memory();
        }
    }

    /// One look at every file held here; copies or drops as needed.
    pub async fn repair_round(&self) -> Result<RepairRound> {
        let mut round = RepairRound::default();
        // Summaries, not manifests: a round over 100,000 held files kept every
        // chunk list in memory at once. The manifest is read only for a file
        // that needs a copy made.
        let mine: Vec<(NameId, FileSummary)> = (self.inner.vault.summaries().await?)
            .into_iter()
            .filter(|(_, file)| file.held)
            .collect();
        round.checked = mine.len();
        if mine.is_empty() {
            self.inner.metrics.set_under_replicated(0);
            return Ok(round);
        }
        let peers: Vec<PeerId> = self
            .inner
            .net
            .peers()
            .await
            .into_iter()
            .map(|p| p.peer_id)
            .collect();
        let target = self.target_copies(peers.len());
        let versions: Vec<(NameId, Version)> =
            mine.iter().map(|(id, file)| (*id, file.version)).collect();
        let holders = self.remote_holders(&versions, &peers).await;
        drop(versions);
        let me = self.inner.net.local_peer_id();
        let delay = self.inner.maintenance_config.repair_delay;
        let now = Instant::now();
        let recent_departure = {
            let mut state = self.state();
            state
                .departed
                .retain(|_, at| now.duration_since(*at) < delay * 4);
            state
                .departed
                .values()
                .any(|at| now.duration_since(*at) < delay)
        };
        let mut live_ids = HashSet::new();
        for ((name_id, file), others) in mine.iter().zip(holders) {
            let name_id = *name_id;
            live_ids.insert(name_id);
            let mut holding = others.clone();
            holding.push(me);
            let ranked = placement(&name_id, holding);
            let copies = ranked.len();
            if copies >= target {
                self.state().short_since.remove(&name_id);
                if copies > target && !ranked[..target].contains(&me) {
                    match self.drop_surplus_copy(&file.name).await {
                        Ok(()) => round.copies_dropped += 1,
                        Err(e) => tracing::warn!("could not drop a surplus copy: {e}"),
                    }
                }
                continue;
            }
            round.under_replicated += 1;
            if ranked[0] != me {
                continue; // a better-ranked holder acts for this file
            }
            let since = *self.state().short_since.entry(name_id).or_insert(now);
            if recent_departure && now.duration_since(since) < delay {
                continue; // the holder that left may come back
            }
            let lacking: Vec<PeerId> = placement(&name_id, peers.clone())
                .into_iter()
                .filter(|p| !others.contains(p))
                .collect();
            let manifest = match self.inner.vault.stat(&file.name).await {
                // Rewritten or deleted since the summaries were read: the next
                // round looks at the new version.
                Ok(manifest) if manifest.version == file.version => manifest,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!("repair: {:?} changed under the round: {e}", file.name);
                    continue;
                }
            };
            round.copies_made += self
                .copy_to_first(&manifest, lacking, target - copies)
                .await;
        }
        self.state()
            .short_since
            .retain(|id, _| live_ids.contains(id));
        self.inner
            .metrics
            .set_under_replicated(round.under_replicated.saturating_sub(round.copies_made));
        self.inner.metrics.copies_repaired(round.copies_made);
        Ok(round)
    }

    /// Copies `manifest` to peers from `candidates`, in order, until `wanted` took
    /// it. Returns how many did.
    async fn copy_to_first(
        &self,
        manifest: &Manifest,
        candidates: Vec<PeerId>,
        wanted: usize,
    ) -> usize {
        let entry = match self.sealed(manifest).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot repair {:?}: {e}", manifest.name);
                return 0;
            }
        };
        let mut candidates = candidates.into_iter();
        let mut copying = FuturesUnordered::new();
        for peer in candidates.by_ref().take(wanted) {
            copying.push(self.copy_and_tell(peer, manifest, &entry));
        }
        let mut made = 0;
        while let Some((peer, result)) = copying.next().await {
            match result {
                Ok(()) => {
                    tracing::info!("repair: copied {:?} to {peer}", manifest.name);
                    made += 1;
                }
                Err(why) => {
                    tracing::info!("repair: {peer} did not take {:?}: {why}", manifest.name);
                    if let Some(next) = candidates.next() {
                        copying.push(self.copy_and_tell(next, manifest, &entry));
                    }
                }
            }
        }
        made
    }

    async fn drop_surplus_copy(&self, name: &str) -> Result<()> {
        let freed = self.inner.vault.release(name).await?;
        self.stop_providing(name).await;
        tracing::info!(
            "dropped a surplus copy of {name:?} ({freed} bytes): enough better-placed nodes hold it"
        );
        Ok(())
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, MaintenanceState> {
        self.inner
            .maintenance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Settings of the maintenance workers.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub gc_delay: Duration,
    pub gc_interval: Duration,
    pub gc_grace: Duration,
    pub repair_delay: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            gc_delay: DEFAULT_GC_DELAY,
            gc_interval: DEFAULT_GC_INTERVAL,
            gc_grace: DEFAULT_GC_GRACE,
            repair_delay: DEFAULT_REPAIR_DELAY,
        }
    }
}
