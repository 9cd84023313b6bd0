//! Keeping the data safe without being asked: the integrity GC and the repair
//! worker.
//!
//! **GC** (first run `gc_delay` after start, then every `gc_interval`, or at once
//! through [`crate::Node::collect_garbage`]): the vault checks every blob it holds and
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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use peervault_net::PeerId;
use peervault_store::{
    ChunkId, FileSummary, GcReport, Held, Manifest, NameId, ShardSet, StoreError, Version,
};

use crate::bandwidth::in_background;
use crate::context::Context;
use crate::devices::Devices;
use crate::error::{NodeError, Result};
use crate::replicate::{Holders, Replicator, placement};
use crate::settings::MaintenanceConfig;
use crate::views::{CleanReport, GcSummary, RepairRound};
use crate::workers::Worker;

/// When the repair worker first looks after start (at the latest).
const FIRST_REPAIR_ROUND: Duration = Duration::from_secs(5);

/// How often the repair worker looks: often enough to act soon after the delay,
/// never more than once a minute's worth of work in a large vault.
pub fn repair_tick(repair_delay: Duration) -> Duration {
    (repair_delay / 4).clamp(Duration::from_millis(500), Duration::from_secs(60))
}

/// What the maintenance workers remember between runs.
#[derive(Debug, Default)]
struct MaintenanceState {
    /// Peers that disconnected, and when (removed when they return).
    departed: HashMap<PeerId, Instant>,
    /// File versions first seen short of copies, and when.
    short_since: HashMap<(NameId, Version), Instant>,
    last_gc: Option<GcSummary>,
    last_repair: Option<RepairRound>,
}

/// What the repair round does about one file this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepairAction {
    /// It has the target's copies, or more and this node is among the first
    /// `target` holders in the file's order (which never drop theirs).
    Keep,
    /// More copies than the target, and this node ranks below the first
    /// `target` holders: it drops its copy.
    DropSurplus,
    /// Short of copies; a better-ranked holder makes them.
    LeaveToBetterHolder,
    /// Short of copies, and this node ranks first among the holders: it makes
    /// this many more.
    Copy(usize),
}

/// Decides what `me` does about the file `name_id`, held by `me` (an extra
/// copy if `me_extra`, see [`crate::extras`]) and `others` (the connected peers
/// that report a complete copy), with `target` copies wanted. Every holder that
/// computes this from the same holders reaches a decision that agrees with the
/// others': exactly one makes the missing copies, exactly the surplus ones drop
/// theirs.
///
/// Every copy counts towards the target, but only regular copies are ranked
/// for a surplus: an extra copy never drops (a user asked for it) and never
/// makes a regular one surplus. The first regular holder makes missing copies
/// (the first extra holder when no regular one is left).
fn repair_action(
    name_id: &NameId,
    me: PeerId,
    me_extra: bool,
    others: &Holders,
    target: usize,
) -> RepairAction {
    let copies = others.len() + 1;
    let mut regular = others.regular.clone();
    if !me_extra {
        regular.push(me);
    }
    let ranked = placement(name_id, regular);
    if copies >= target {
        if !me_extra && ranked.len() > target && !ranked[..target].contains(&me) {
            RepairAction::DropSurplus
        } else {
            RepairAction::Keep
        }
    } else {
        let maker = match ranked.first() {
            Some(first) => *first,
            None => placement(name_id, [others.extra.clone(), vec![me]].concat())[0],
        };
        if maker == me {
            RepairAction::Copy(target - copies)
        } else {
            RepairAction::LeaveToBetterHolder
        }
    }
}

/// A coded file the repair round looks at.
struct CodedFile<'a> {
    file: &'a FileSummary,
    /// The shard indexes this node holds of every chunk.
    own: ShardSet,
    total: usize,
}

/// The integrity GC and the repair worker, with what they remember between runs
/// (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Maintenance {
    ctx: Arc<Context>,
    replicator: Replicator,
    config: MaintenanceConfig,
    state: Arc<Mutex<MaintenanceState>>,
    /// One GC run at a time.
    gc_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Maintenance {
    pub(crate) fn new(
        ctx: Arc<Context>,
        replicator: Replicator,
        config: MaintenanceConfig,
    ) -> Maintenance {
        Maintenance {
            ctx,
            replicator,
            config,
            state: Arc::default(),
            gc_lock: Arc::default(),
        }
    }

    /// A peer connected: it is no longer waited for.
    pub(crate) fn peer_connected(&self, peer: &PeerId) {
        self.state().departed.remove(peer);
    }

    /// A peer left: its files get [`MaintenanceConfig::repair_delay`] before
    /// they are copied elsewhere.
    pub(crate) fn peer_departed(&self, peer: PeerId) {
        self.state().departed.insert(peer, Instant::now());
    }

    /// A peer was removed from the vault: it is not waited for, its files are
    /// copied elsewhere at the next round.
    pub(crate) fn peer_removed(&self, peer: &PeerId) {
        self.state().departed.remove(peer);
    }

    /// The last GC run and repair round, if any ran yet.
    pub(crate) fn last_runs(&self) -> (Option<GcSummary>, Option<RepairRound>) {
        let state = self.state();
        (state.last_gc.clone(), state.last_repair.clone())
    }

    /// Runs the integrity GC now (waiting for a run in progress to end first).
    /// Its transfers (restoring chunks) yield to users' (see [`crate::bandwidth`]).
    pub async fn collect_garbage(&self) -> Result<GcSummary> {
        in_background(self.run_gc()).await
    }

    async fn run_gc(&self) -> Result<GcSummary> {
        let _one_at_a_time = self.gc_lock.lock().await;
        tracing::info!("Running garbage collection...");
        let started = Instant::now();
        let report = self.ctx.vault.collect_garbage(self.config.gc_grace).await?;
        let repaired = self.restore_chunks(&report).await;
        self.complete_partial_copies().await;
        let tombstones_collected = match self.ctx.vault.collect_tombstones().await {
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
        self.ctx.metrics.gc_finished(&summary);
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
        let files = match self.ctx.vault.list().await {
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
            let source = self.replicator.chunk_source(&manifest.name).await;
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
            match self.ctx.vault.restore_blob(id, blob).await {
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
        let partial = match self.ctx.vault.partial_copies().await {
            Ok(partial) => partial,
            Err(e) => {
                tracing::warn!("cannot look for partial copies: {e}");
                return;
            }
        };
        'files: for (manifest, missing) in partial {
            let manifest = Arc::new(manifest);
            let source = self.replicator.chunk_source(&manifest.name).await;
            for &index in &missing {
                let id = manifest.chunks[index];
                let stored = match source.fetch(manifest.clone(), index).await {
                    Ok(blob) => self
                        .ctx
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
            self.replicator.provide(&manifest.name).await;
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
        // Membership records have no chunks to drop.
        let names: Vec<String> = (self.ctx.vault.summaries().await?)
            .into_iter()
            .filter_map(|(_, s)| (s.held && !Devices::touches(&s.name)).then_some(s.name))
            .collect();
        let (chunks, bytes_freed) = self.ctx.vault.drop_all_copies().await?;
        for name in &names {
            self.replicator.stop_providing(name).await;
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

    /// `clean NAME...`: drops this node's copies of the files named, as
    /// [`Maintenance::clean`] does for every file. Nothing is dropped if a name
    /// is not in the vault, or if this node holds the only copy of a file that
    /// a connected peer could be asked about (dropping it would lose the file).
    pub async fn clean_files(&self, names: &[String]) -> Result<CleanReport> {
        for name in names {
            self.ctx.vault.stat(name).await?;
        }
        let held: Vec<(NameId, FileSummary)> = (self.ctx.vault.summaries().await?)
            .into_iter()
            .filter(|(_, s)| s.held && names.contains(&s.name))
            .collect();
        let versions: Vec<(NameId, Version)> =
            held.iter().map(|(id, s)| (*id, s.version)).collect();
        let elsewhere = self.replicator.count_remote_copies(&versions).await;
        let only_here: Vec<&str> = held
            .iter()
            .zip(elsewhere)
            .filter(|(_, others)| *others == 0)
            .map(|((_, s), _)| s.name.as_str())
            .collect();
        if !only_here.is_empty() {
            return Err(NodeError::Invalid(format!(
                "this node holds the only copy of {}: dropping it would lose the file; \
                 wait until a peer holds a copy (ls shows the copies), or delete it with rm",
                only_here
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut report = CleanReport::default();
        for name in names {
            let (chunks, freed) = self.ctx.vault.release(name).await?;
            self.replicator.stop_providing(name).await;
            report.files.push(name.clone());
            report.chunks += chunks;
            report.bytes_freed += freed;
        }
        tracing::info!(
            "clean: dropped this node's copies of {:?} ({} chunks, {} bytes)",
            report.files,
            report.chunks,
            report.bytes_freed
        );
        Ok(report)
    }

    /// One look at every file held here; copies or drops as needed.
    /// Its copies yield to users' transfers (see [`crate::bandwidth`]).
    pub async fn repair_round(&self) -> Result<RepairRound> {
        in_background(self.run_repair_round()).await
    }

    async fn run_repair_round(&self) -> Result<RepairRound> {
        let mut round = RepairRound::default();
        // Summaries, not manifests: a round over 100,000 held files kept every
        // chunk list in memory at once. The manifest is read only for a file
        // that needs a copy made.
        // Versions kept in history keep their copies like current ones.
        // Membership records have no chunks: the sync takes them to every
        // node, and there is no copy to make.
        let held = |file: &FileSummary| file.held && !Devices::touches(&file.name);
        let mut mine: Vec<(NameId, FileSummary)> = (self.ctx.vault.summaries().await?)
            .into_iter()
            .filter(|(_, file)| held(file))
            .collect();
        let current = mine.len();
        mine.extend(
            (self.ctx.vault.superseded_summaries().await?)
                .into_iter()
                .filter(|(_, file)| held(file)),
        );
        round.checked = current;
        if mine.is_empty() {
            self.ctx.metrics.repair_round_done(0);
            return Ok(round);
        }
        let peers = self.ctx.connected_peers().await;
        let target = self.ctx.target_copies(peers.len());
        let versions: Vec<(NameId, Version)> =
            mine.iter().map(|(id, file)| (*id, file.version)).collect();
        let holders = self.replicator.remote_holders(&versions, &peers).await;
        // What this node holds of each coded file: which shard indexes.
        let own_shards: HashMap<(NameId, Version), ShardSet> = {
            let coded: Vec<(NameId, Version)> = mine
                .iter()
                .filter(|(_, f)| f.redundancy.is_some())
                .map(|(id, f)| (*id, f.version))
                .collect();
            let held = self.ctx.vault.holds_versions(coded.clone()).await?;
            coded
                .into_iter()
                .zip(held)
                .filter_map(|(unit, held)| match held {
                    Held::Shards(set) => Some((unit, set)),
                    _ => None,
                })
                .collect()
        };
        drop(versions);
        let me = self.ctx.net.local_peer_id();
        let delay = self.config.repair_delay;
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
        for (i, ((name_id, file), others)) in mine.iter().zip(holders).enumerate() {
            let name_id = *name_id;
            let superseded = i >= current;
            let unit = (name_id, file.version);
            live_ids.insert(unit);
            if let Some(redundancy) = file.redundancy {
                let own = own_shards.get(&unit).copied().unwrap_or_default();
                let coded = CodedFile {
                    file,
                    own,
                    total: redundancy.total(),
                };
                let wait = |missing: bool| {
                    let mut state = self.state();
                    if !missing {
                        state.short_since.remove(&unit);
                        return false;
                    }
                    let since = *state.short_since.entry(unit).or_insert(now);
                    // The holder that left may come back.
                    recent_departure && now.duration_since(since) < delay
                };
                self.repair_coded(coded, &others, &peers, wait, &mut round)
                    .await;
                continue;
            }
            let me_extra = self.ctx.extras.contains(&name_id);
            let wanted = match repair_action(&name_id, me, me_extra, &others, target) {
                RepairAction::Keep => {
                    self.state().short_since.remove(&unit);
                    continue;
                }
                RepairAction::DropSurplus => {
                    self.state().short_since.remove(&unit);
                    match self.drop_surplus_copy(file, superseded).await {
                        Ok(()) => round.copies_dropped += 1,
                        Err(e) => tracing::warn!("could not drop a surplus copy: {e}"),
                    }
                    continue;
                }
                RepairAction::LeaveToBetterHolder => {
                    round.under_replicated += 1;
                    continue;
                }
                RepairAction::Copy(wanted) => {
                    round.under_replicated += 1;
                    wanted
                }
            };
            let since = *self.state().short_since.entry(unit).or_insert(now);
            if recent_departure && now.duration_since(since) < delay {
                continue; // the holder that left may come back
            }
            let lacking: Vec<PeerId> = placement(&name_id, peers.clone())
                .into_iter()
                .filter(|p| !others.contains(p))
                .collect();
            let manifest = match self
                .ctx
                .vault
                .manifest_version(&file.name, file.version)
                .await
            {
                // Expired since the summaries were read: nothing to copy.
                Ok(manifest) => manifest,
                Err(e) => {
                    tracing::debug!("repair: {:?} changed under the round: {e}", file.name);
                    continue;
                }
            };
            let made = self.copy_to_first(&manifest, lacking, wanted).await;
            round.copies_made += made;
            // Counted as they are made, not when the round ends: a round can
            // run for minutes, and whoever watches sees a copy once it exists.
            self.ctx.metrics.copies_repaired(made);
        }
        self.state()
            .short_since
            .retain(|id, _| live_ids.contains(id));
        self.ctx
            .metrics
            .repair_round_done(round.under_replicated.saturating_sub(round.copies_made));
        Ok(round)
    }

    /// The repair of one coded file this node holds shards of (see
    /// [`crate::coded::shard_work`]): its part of the work, from what every
    /// connected peer holds. `wait(missing)` says whether to leave missing
    /// shards for now (a holder left only just).
    async fn repair_coded(
        &self,
        coded: CodedFile<'_>,
        others: &Holders,
        peers: &[PeerId],
        wait: impl FnOnce(bool) -> bool,
        round: &mut RepairRound,
    ) {
        let CodedFile { file, own, total } = coded;
        let me = self.ctx.net.local_peer_id();
        let name_id = self.ctx.vault.name_id(&file.name);
        let mut holders = others.shards.clone();
        holders.push((me, own));
        let free: Vec<PeerId> = placement(&name_id, peers.to_vec())
            .into_iter()
            .filter(|p| !holders.iter().any(|(q, set)| q == p && !set.is_empty()))
            .collect();
        let work = crate::coded::shard_work(&name_id, &holders, &free, total);
        let missing = !work.missing.is_empty();
        if missing {
            round.under_replicated += 1;
        }
        let (moves, drops) = work.of(&me);
        let later = wait(missing);
        if moves.is_empty() && drops.is_empty() {
            return;
        }
        let manifest = match self
            .ctx
            .vault
            .manifest_version(&file.name, file.version)
            .await
        {
            Ok(manifest) => Arc::new(manifest),
            Err(e) => {
                tracing::debug!("repair: {:?} changed under the round: {e}", file.name);
                return;
            }
        };
        let vault = &self.ctx.vault;
        if !drops.is_empty() {
            match vault.release_shards(&file.name, file.version, drops).await {
                Ok((_, freed)) => {
                    round.copies_dropped += 1;
                    tracing::info!(
                        "dropped shards {drops} of {:?} ({freed} bytes): better-placed nodes hold them",
                        file.name
                    );
                }
                Err(e) => tracing::warn!("could not drop surplus shards: {e}"),
            }
        }
        let entry = match self.replicator.sealed(&manifest).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot repair {:?}: {e}", file.name);
                return;
            }
        };
        for m in moves {
            if m.rebuild && later {
                continue;
            }
            let set = ShardSet::one(m.index);
            let done = if m.to == me {
                self.replicator
                    .keep_shards(&manifest, set)
                    .await
                    .map_err(|e| e.to_string())
            } else {
                self.replicator
                    .copy_shards_to(m.to, &manifest, &entry, set)
                    .await
                    .map_err(|e| e.to_string())
            };
            match done {
                Ok(()) => {
                    round.copies_made += 1;
                    self.ctx.metrics.copies_repaired(1);
                    tracing::info!(
                        "repair: {} shard {} of {:?} on {}",
                        if m.rebuild { "rebuilt" } else { "moved" },
                        m.index,
                        file.name,
                        m.to
                    );
                    if m.release_after
                        && let Err(e) = vault.release_shards(&file.name, file.version, set).await
                    {
                        tracing::warn!("could not drop a moved shard: {e}");
                    }
                }
                Err(e) => tracing::warn!(
                    "repair: shard {} of {:?} could not go to {}: {e}",
                    m.index,
                    file.name,
                    m.to
                ),
            }
        }
    }

    /// Copies `manifest` to peers from `candidates`, in order, until `wanted` took
    /// it. Returns how many did.
    async fn copy_to_first(
        &self,
        manifest: &Manifest,
        candidates: Vec<PeerId>,
        wanted: usize,
    ) -> usize {
        let entry = match self.replicator.sealed(manifest).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot repair {:?}: {e}", manifest.name);
                return 0;
            }
        };
        let mut made = 0;
        self.replicator
            .copy_to_first(manifest, &entry, candidates, wanted, |peer| {
                tracing::info!("repair: copied {:?} to {peer}", manifest.name);
                made += 1;
            })
            .await;
        made
    }

    /// Drops this node's copy of `file`: of the name if it is the current
    /// version, of that version's own chunks only if it is `superseded` (what
    /// it shares with the name's other versions stays for them).
    async fn drop_surplus_copy(&self, file: &FileSummary, superseded: bool) -> Result<()> {
        let name = &file.name;
        let freed = if superseded {
            (self.ctx.vault.release_version(name, file.version).await?).1
        } else {
            let (_, freed) = self.ctx.vault.release(name).await?;
            self.replicator.stop_providing(name).await;
            freed
        };
        tracing::info!(
            "dropped a surplus copy of {name:?} (version {}, {freed} bytes): enough better-placed nodes hold it",
            file.version.label()
        );
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, MaintenanceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The integrity GC as a background [`Worker`]: after `gc_delay`, then every
/// `gc_interval`.
#[derive(Debug)]
pub(crate) struct GcWorker(pub(crate) Maintenance);

impl Worker for GcWorker {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn first_round(&self) -> Duration {
        self.0.config.gc_delay
    }

    fn interval(&self) -> Duration {
        self.0.config.gc_interval
    }

    async fn round(&self) -> Result<String> {
        Ok(self.0.collect_garbage().await?.line())
    }
}

/// The repair worker (see the module docs): its first look comes soon, so that
/// the figures are known early, then every [`repair_tick`].
#[derive(Debug)]
pub(crate) struct RepairWorker(pub(crate) Maintenance);

impl Worker for RepairWorker {
    fn name(&self) -> &'static str {
        "repair"
    }

    fn first_round(&self) -> Duration {
        self.interval().min(FIRST_REPAIR_ROUND)
    }

    fn interval(&self) -> Duration {
        repair_tick(self.0.config.repair_delay)
    }

    async fn round(&self) -> Result<String> {
        let round = self.0.repair_round().await;
        // A round over a large vault has just freed what it allocated.
        crate::memory::release_free_memory();
        let round = round?;
        let line = format!(
            "{} files held here checked, {} short of copies, {} copies made, {} surplus copies dropped",
            round.checked, round.under_replicated, round.copies_made, round.copies_dropped
        );
        if round.copies_made > 0 || round.copies_dropped > 0 {
            tracing::info!("repair: {line}");
        }
        self.0.state().last_repair = Some(round);
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    /// What every holder of the file decides, each from the same holders.
    fn decisions(name_id: &NameId, holders: &[PeerId], target: usize) -> Vec<RepairAction> {
        decisions_with_extras(name_id, holders, &[], target)
    }

    /// The same, with some holders holding extra copies.
    fn decisions_with_extras(
        name_id: &NameId,
        holders: &[PeerId],
        extras: &[PeerId],
        target: usize,
    ) -> Vec<RepairAction> {
        holders
            .iter()
            .map(|me| {
                let others = Holders {
                    regular: holders
                        .iter()
                        .filter(|p| *p != me && !extras.contains(p))
                        .copied()
                        .collect(),
                    extra: extras.iter().filter(|p| *p != me).copied().collect(),
                    shards: Vec::new(),
                };
                repair_action(name_id, *me, extras.contains(me), &others, target)
            })
            .collect()
    }

    #[test]
    fn a_fetched_extra_copy_never_makes_a_placement_holder_drop() {
        for round in 0..200u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let target = 1 + round as usize % 4;
            let regular = peers(target);
            let extras = peers(1 + round as usize % 2);
            let holders = [regular.clone(), extras.clone()].concat();
            let actions = decisions_with_extras(&name_id, &holders, &extras, target);
            assert!(
                actions.iter().all(|a| *a == RepairAction::Keep),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn with_extras_exactly_the_surplus_regular_copies_drop_or_one_holder_copies() {
        for round in 0..200u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let target = 2 + round as usize % 3;
            let regular = peers(round as usize % (target + 3));
            let extras = peers(1);
            let holders = [regular.clone(), extras.clone()].concat();
            let actions = decisions_with_extras(&name_id, &holders, &extras, target);
            let extra_at = holders.len() - 1;
            assert!(!matches!(actions[extra_at], RepairAction::DropSurplus));
            let dropping = actions
                .iter()
                .filter(|a| **a == RepairAction::DropSurplus)
                .count();
            assert_eq!(dropping, regular.len().saturating_sub(target));
            let copying: Vec<_> = actions
                .iter()
                .filter(|a| matches!(a, RepairAction::Copy(_)))
                .collect();
            if holders.len() < target {
                assert_eq!(copying, [&RepairAction::Copy(target - holders.len())]);
                // The extra holder copies only when it is alone.
                assert_eq!(
                    matches!(actions[extra_at], RepairAction::Copy(_)),
                    regular.is_empty()
                );
            } else {
                assert!(copying.is_empty());
            }
        }
    }

    #[test]
    fn exactly_one_holder_makes_the_missing_copies() {
        for round in 0..200u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let target = 2 + (round as usize % 4);
            let holders = peers(1 + round as usize % (target - 1));
            let made: Vec<RepairAction> = decisions(&name_id, &holders, target)
                .into_iter()
                .filter(|a| *a != RepairAction::LeaveToBetterHolder)
                .collect();
            assert_eq!(made, vec![RepairAction::Copy(target - holders.len())]);
            // And it is the holder that ranks first.
            let first = placement(&name_id, holders.clone())[0];
            let i = holders.iter().position(|p| *p == first).unwrap();
            assert!(matches!(
                decisions(&name_id, &holders, target)[i],
                RepairAction::Copy(_)
            ));
        }
    }

    #[test]
    fn exactly_the_surplus_holders_drop_and_the_first_target_never_do() {
        for round in 0..200u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let target = 1 + round as usize % 4;
            let holders = peers(target + 1 + round as usize % 3);
            let actions = decisions(&name_id, &holders, target);
            let dropping = actions
                .iter()
                .filter(|a| **a == RepairAction::DropSurplus)
                .count();
            assert_eq!(dropping, holders.len() - target);
            for kept in &placement(&name_id, holders.clone())[..target] {
                let i = holders.iter().position(|p| p == kept).unwrap();
                assert_eq!(actions[i], RepairAction::Keep);
            }
        }
    }

    #[test]
    fn a_file_with_exactly_the_target_is_left_alone() {
        let name_id = NameId([7; 32]);
        let holders = peers(3);
        assert!(
            decisions(&name_id, &holders, 3)
                .iter()
                .all(|a| *a == RepairAction::Keep)
        );
    }
}
