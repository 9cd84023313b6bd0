//! Erasure-coded files across nodes: which node keeps which shards, how a
//! coded write's shards reach their holders, and what the repair worker does
//! about shards that are missing, doubled, or piled on one node.
//!
//! Why: three full copies cost three times the disk and send every byte
//! twice from the writer; `K+M` shards cost `(K+M)/K` and survive the loss of
//! any `M` holders (see `peervault_store::erasure`).
//!
//! **Placement.** The writer and the `K+M-1` best-ranked connected peers (the
//! rendezvous order of [`crate::replicate::placement`]) each keep one shard
//! index of every chunk; with fewer nodes up, shard `j` goes to position
//! `j mod n` ([`shard_plan`]), so every node keeps some and the file stays
//! readable with any node gone while at least `K` shards remain. Which node
//! holds which index is not written anywhere: each node answers `Holdings`
//! with the indexes it holds completely, and readers and the repair worker
//! ask.
//!
//! **Writing.** The write streams each shard only to the peer that is to
//! keep it; the offer that follows (`OfferShards`) names the indexes, the
//! peer asks for what it lacks, and its second answer acknowledges. A peer
//! that fails is replaced by the next in placement order; shards nobody took
//! are kept by the writer (rebuilt from those that did), so a put never
//! leaves fewer shards than it reports.
//!
//! **Repair** ([`shard_work`], a pure function every holder computes from the
//! same holdings): each index keeps its best-ranked holder and the others
//! drop theirs; an index nobody holds is rebuilt from any `K` by the
//! best-ranked holder and sent to the best-ranked node holding nothing of the
//! file (kept by that holder itself if there is none); a node holding several
//! indexes hands the extra ones to nodes holding none, one each, and drops
//! them once they are acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use peervault_net::PeerId;
use peervault_store::{ChunkId, Manifest, NameId, Redundancy, ShardSet};

use crate::client::{CONTROL_TIMEOUT, refused};
use crate::error::{PeerError, Result};
use crate::replicate::{Replicator, placement};
use crate::views::{CopyProgress, Replication};
use crate::wire::{Request, Response, SealedEntry};

/// The shards each of `nodes` positions keeps of a `total`-shard file:
/// position 0 is the writer, then the peers in placement order. One index
/// each when `nodes >= total`; with fewer, index `j` goes to `j mod nodes`.
pub fn shard_plan(total: usize, nodes: usize) -> Vec<ShardSet> {
    let nodes = nodes.clamp(1, total.max(1));
    let mut plan = vec![ShardSet::EMPTY; nodes];
    for j in 0..total {
        plan[j % nodes].insert(j);
    }
    plan
}

/// One shard index sent by the repair worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardMove {
    /// The holder that sends it.
    pub(crate) from: PeerId,
    pub(crate) index: usize,
    /// Where it goes (`from` itself: rebuilt and kept there).
    pub(crate) to: PeerId,
    /// Nobody holds it: rebuilt from any K shards.
    pub(crate) rebuild: bool,
    /// `from` drops its own once `to` has it (spreading a pile).
    pub(crate) release_after: bool,
}

/// What the repair worker does about one coded file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShardWork {
    pub(crate) moves: Vec<ShardMove>,
    /// Indexes a holder drops because a better-ranked holder has them too.
    pub(crate) drops: Vec<(PeerId, ShardSet)>,
    /// Indexes no holder had.
    pub(crate) missing: ShardSet,
}

impl ShardWork {
    /// The part of the work that `me` does.
    pub(crate) fn of(&self, me: &PeerId) -> (Vec<&ShardMove>, ShardSet) {
        let moves = self.moves.iter().filter(|m| m.from == *me).collect();
        let drops = self
            .drops
            .iter()
            .filter(|(p, _)| p == me)
            .fold(ShardSet::EMPTY, |all, (_, set)| all.union(*set));
        (moves, drops)
    }
}

/// The repair of a coded file of `total` shards (see the module docs), from
/// who holds which indexes and the connected nodes holding none of it
/// (`free`, best-ranked first). Every holder computes the same work from
/// the same facts and does its own part of it.
pub(crate) fn shard_work(
    name_id: &NameId,
    holders: &[(PeerId, ShardSet)],
    free: &[PeerId],
    total: usize,
) -> ShardWork {
    let ranked = placement(
        name_id,
        holders
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(p, _)| *p)
            .collect(),
    );
    let set_of = |peer: &PeerId| {
        holders
            .iter()
            .filter(|(p, _)| p == peer)
            .fold(ShardSet::EMPTY, |all, (_, set)| all.union(*set))
    };
    let mut work = ShardWork::default();
    // Each index stays with its best-ranked holder.
    let mut kept: Vec<(PeerId, ShardSet)> = Vec::new();
    let mut covered = ShardSet::EMPTY;
    for peer in &ranked {
        let set = set_of(peer);
        let own = ShardSet(set.0 & !covered.0);
        let doubled = ShardSet(set.0 & covered.0);
        if !doubled.is_empty() {
            work.drops.push((*peer, doubled));
        }
        covered = covered.union(own);
        kept.push((*peer, own));
    }
    let mut free: VecDeque<PeerId> = free
        .iter()
        .filter(|p| !ranked.contains(p))
        .copied()
        .collect();
    work.missing = ShardSet(ShardSet::all(total).0 & !covered.0);
    if let Some(first) = ranked.first() {
        for index in work.missing.iter() {
            work.moves.push(ShardMove {
                from: *first,
                index,
                to: free.pop_front().unwrap_or(*first),
                rebuild: true,
                release_after: false,
            });
        }
    }
    // Piles are spread over the nodes still free, the highest index first.
    for (peer, own) in &mut kept {
        while own.len() > 1 {
            let Some(to) = free.pop_front() else { break };
            let index = own.iter().last().unwrap_or_default();
            own.remove(index);
            work.moves.push(ShardMove {
                from: *peer,
                index,
                to,
                rebuild: false,
                release_after: true,
            });
        }
    }
    work
}

impl Replicator {
    /// The peers that keep shards of a new file coded with `redundancy`,
    /// placed by `placed_with`'s name, best first.
    pub(crate) async fn shard_holders_for(
        &self,
        placed_with: &str,
        redundancy: Redundancy,
    ) -> Vec<PeerId> {
        self.best_peers(placed_with, |_| redundancy.total().saturating_sub(1))
            .await
    }

    /// After a coded write: makes each of `targets` hold its shards (a
    /// failed one replaced by the next peer in placement order), and keeps
    /// here whatever no peer took. `keep` is what the write kept here.
    pub(crate) async fn replicate_shards(
        &self,
        manifest: &Manifest,
        placed_with: &str,
        keep: ShardSet,
        targets: Vec<(PeerId, ShardSet)>,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    ) -> Replication {
        let total = manifest.redundancy().map_or(1, |r| r.total());
        let mut report = Replication {
            target: total,
            copies: keep.len(),
            ..Replication::default()
        };
        let tell = |report: &Replication| crate::replicate::tell_progress(progress, report);
        tell(&report);
        let entry = match self.sealed(manifest).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot place the shards of {:?}: {e}", manifest.name);
                return report;
            }
        };
        let manifest = Arc::new(manifest.clone());
        let peers = self.ctx().connected_peers().await;
        let mut spare: VecDeque<PeerId> = placement(&self.ctx().vault.name_id(placed_with), peers)
            .into_iter()
            .filter(|p| !targets.iter().any(|(t, _)| t == p))
            .collect();
        let copy = |peer: PeerId, set: ShardSet| {
            let (manifest, entry) = (manifest.clone(), entry.clone());
            async move {
                let result = self.copy_shards_to(peer, &manifest, &entry, set).await;
                (peer, set, result)
            }
        };
        let mut copying: FuturesUnordered<_> =
            targets.into_iter().map(|(p, set)| copy(p, set)).collect();
        let mut orphans = ShardSet::EMPTY;
        while let Some((peer, set, result)) = copying.next().await {
            match result {
                Ok(()) => {
                    report.copies += set.len();
                    report.holders.push(peer);
                    tell(&report);
                }
                Err(why) => {
                    tracing::info!(
                        "{peer} did not take shards {set} of {:?}: {why}",
                        manifest.name
                    );
                    report.failures.push((peer, why));
                    match spare.pop_front() {
                        Some(next) => copying.push(copy(next, set)),
                        None => orphans = orphans.union(set),
                    }
                }
            }
        }
        if !orphans.is_empty() {
            match self.keep_shards(&manifest, orphans).await {
                Ok(()) => {
                    report.copies += orphans.len();
                    tell(&report);
                }
                Err(e) => tracing::warn!(
                    "shards {orphans} of {:?} are on no node: {e}; the repair worker rebuilds them",
                    manifest.name
                ),
            }
        }
        report
    }

    /// Offers shards `set` of coded `manifest` to `peer` and sends those it
    /// lacks (rebuilding any not held here); the peer's second answer, that
    /// it lacks nothing, is the acknowledgement.
    pub(crate) async fn copy_shards_to(
        &self,
        peer: PeerId,
        manifest: &Arc<Manifest>,
        entry: &SealedEntry,
        set: ShardSet,
    ) -> std::result::Result<(), PeerError> {
        let offer = Request::OfferShards {
            entry: entry.clone(),
            shards: set,
        };
        let missing = match self.ctx().ask(peer, &offer, CONTROL_TIMEOUT).await {
            Ok(Response::Want { missing }) => missing,
            other => return Err(refused(peer, other)),
        };
        let wanted: std::collections::HashSet<ChunkId> =
            manifest.shard_blobs(set).into_iter().collect();
        if missing.iter().any(|id| !wanted.contains(id)) {
            return Err(PeerError::BadAnswer {
                peer,
                what: "it asked for shards the file does not have".into(),
            });
        }
        // Shards are a K-th of a chunk: a chunk window's worth of bytes.
        let per_chunk = manifest.redundancy().map_or(1, |r| r.data());
        self.send_windowed(peer, missing, per_chunk, |id| {
            self.send_shard(peer, manifest, id)
        })
        .await?;
        match self.ctx().ask(peer, &offer, CONTROL_TIMEOUT).await {
            Ok(Response::Want { missing }) if missing.is_empty() => Ok(()),
            Ok(Response::Want { missing }) => Err(PeerError::BadAnswer {
                peer,
                what: format!("it still lacks {} shards", missing.len()),
            }),
            other => Err(refused(peer, other)),
        }
    }

    /// Sends shard `id` of `manifest` to `peer`: the blob held here, or
    /// rebuilt from any K shards when this node does not hold it.
    async fn send_shard(
        &self,
        peer: PeerId,
        manifest: &Arc<Manifest>,
        id: ChunkId,
    ) -> std::result::Result<std::time::Duration, PeerError> {
        let lease = self.ctx().vault.lease_chunk().await;
        let local = |e: peervault_store::StoreError| PeerError::Local {
            reason: e.to_string(),
        };
        if let Some(blob) = self.ctx().vault.read_blob(id).await.map_err(local)? {
            return self.send_blob(peer, id, blob, lease).await;
        }
        let (index, shard) = locate(manifest, &id).ok_or_else(|| PeerError::Local {
            reason: format!("shard {id} is not one of {:?}'s", manifest.name),
        })?;
        let source = self.chunk_source(&manifest.name).await;
        let mut shards = self
            .ctx()
            .vault
            .rebuild_shards(manifest.clone(), index, Some(source))
            .await
            .map_err(local)?;
        let blob = std::mem::take(&mut shards[shard]);
        // The chunk's other shards are not kept while this one travels.
        drop(shards);
        self.send_blob(peer, id, blob, lease).await
    }

    /// Makes this node hold shards `set` of every chunk of `manifest`,
    /// rebuilding each chunk's from any K shards held here or by peers.
    pub(crate) async fn keep_shards(&self, manifest: &Arc<Manifest>, set: ShardSet) -> Result<()> {
        let vault = &self.ctx().vault;
        let missing: std::collections::HashSet<ChunkId> = vault
            .missing_shards(manifest, set)
            .await?
            .into_iter()
            .collect();
        let Some(coding) = &manifest.coding else {
            return Ok(());
        };
        let source = self.chunk_source(&manifest.name).await;
        for (index, chunk) in coding.chunks.iter().enumerate() {
            let wanted: Vec<usize> = set
                .iter()
                .filter(|j| chunk.shards.get(*j).is_some_and(|id| missing.contains(id)))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let _lease = vault.lease_chunk().await;
            let mut shards = vault
                .rebuild_shards(manifest.clone(), index, Some(source.clone()))
                .await?;
            for j in wanted {
                let blob = std::mem::take(&mut shards[j]);
                vault
                    .put_blob(chunk.shards[j], bytes::BytesMut::from(&blob[..]))
                    .await?;
            }
        }
        Ok(())
    }
}

/// Which chunk of `manifest`, and which shard of it, blob `id` is.
fn locate(manifest: &Manifest, id: &ChunkId) -> Option<(usize, usize)> {
    let coding = manifest.coding.as_ref()?;
    coding
        .chunks
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.shards.iter().position(|s| s == id).map(|j| (i, j)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn the_plan_gives_every_index_to_exactly_one_position() {
        for total in 2..12 {
            for nodes in 1..15 {
                let plan = shard_plan(total, nodes);
                assert_eq!(plan.len(), nodes.min(total));
                let all = plan.iter().fold(ShardSet::EMPTY, |a, s| a.union(*s));
                assert_eq!(all, ShardSet::all(total));
                assert_eq!(plan.iter().map(ShardSet::len).sum::<usize>(), total);
                // Piled evenly: no position more than one above another.
                let (min, max) = (
                    plan.iter().map(ShardSet::len).min().unwrap(),
                    plan.iter().map(ShardSet::len).max().unwrap(),
                );
                assert!(max - min <= 1, "{total} on {nodes}: {plan:?}");
            }
        }
    }

    #[test]
    fn missing_indexes_are_rebuilt_once_by_the_first_holder_onto_free_nodes() {
        for round in 0..100u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let holders = peers(4);
            let held: Vec<(PeerId, ShardSet)> = holders
                .iter()
                .enumerate()
                .map(|(i, p)| (*p, ShardSet::one(i)))
                .collect();
            let free = peers(round as usize % 3);
            let work = shard_work(&name_id, &held, &free, 6);
            assert_eq!(work.missing, ShardSet(0b110000));
            assert!(work.drops.is_empty());
            let first = placement(&name_id, holders.clone())[0];
            assert_eq!(work.moves.len(), 2);
            for (m, to) in work.moves.iter().zip([4, 5]) {
                assert!(m.rebuild && !m.release_after);
                assert_eq!(m.from, first);
                assert_eq!(m.index, to);
            }
            // Free nodes first, then the rebuilder keeps the rest itself.
            let targets: Vec<PeerId> = work.moves.iter().map(|m| m.to).collect();
            let mut expected: Vec<PeerId> = free.iter().take(2).copied().collect();
            expected.resize(2, first);
            assert_eq!(targets, expected);
            // Each holder does only its own part.
            for p in &holders {
                let (mine, _) = work.of(p);
                assert_eq!(mine.len(), if *p == first { 2 } else { 0 });
            }
        }
    }

    #[test]
    fn a_doubled_index_stays_with_its_best_holder_and_piles_spread() {
        for round in 0..100u32 {
            let name_id = NameId(*blake3::hash(&round.to_le_bytes()).as_bytes());
            let (a, b) = (PeerId::random(), PeerId::random());
            // a holds everything (a lone writer's file), b holds index 2 too.
            let held = [(a, ShardSet::all(6)), (b, ShardSet::one(2))];
            let free = peers(4);
            let work = shard_work(&name_id, &held, &free, 6);
            assert!(work.missing.is_empty());
            let ranked = placement(&name_id, vec![a, b]);
            let dropper = ranked[1];
            assert_eq!(work.drops, [(dropper, ShardSet::one(2))]);
            // Every free node gets one index from a pile, none twice.
            let mut sent: Vec<PeerId> = work.moves.iter().map(|m| m.to).collect();
            sent.sort();
            sent.dedup();
            assert_eq!(sent.len(), work.moves.len());
            assert!(work.moves.iter().all(|m| m.release_after && !m.rebuild));
            assert_eq!(work.moves.len(), 4);
            // After the moves and drops every node holds one index, and no
            // index is lost.
            let mut after: Vec<(PeerId, ShardSet)> = held.to_vec();
            for (p, set) in &work.drops {
                for h in after.iter_mut().filter(|(q, _)| q == p) {
                    h.1 = ShardSet(h.1.0 & !set.0);
                }
            }
            for m in &work.moves {
                for h in after.iter_mut().filter(|(q, _)| *q == m.from) {
                    h.1.remove(m.index);
                }
                after.push((m.to, ShardSet::one(m.index)));
            }
            let all = after.iter().fold(ShardSet::EMPTY, |x, (_, s)| x.union(*s));
            assert_eq!(all, ShardSet::all(6));
            assert!(after.iter().all(|(_, s)| s.len() <= 2));
        }
    }

    #[test]
    fn a_file_held_one_index_per_node_is_left_alone() {
        let name_id = NameId([9; 32]);
        let held: Vec<(PeerId, ShardSet)> = peers(6)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, ShardSet::one(i)))
            .collect();
        assert_eq!(
            shard_work(&name_id, &held, &peers(3), 6),
            ShardWork::default()
        );
    }
}
