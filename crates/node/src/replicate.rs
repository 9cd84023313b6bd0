//! Where copies go, how they get there, and how chunks are read back from peers.
//!
//! **Placement.** Every file lives on its writer plus `R - 1` peers chosen by
//! rendezvous hashing: each connected peer gets the score `BLAKE3(name id ‖ peer id)`
//! and the highest scores win. Any node computes the same order from the same
//! membership, so readers know where to look first. A peer that refuses (full quota,
//! a newer version) or fails is replaced by the next in the order.
//!
//! **Streaming.** While a file is being stored, each new sealed chunk is sent at
//! once to the peers that placement picks, so that the copies grow with the
//! original instead of after it. Those chunks arrive before the record that names
//! them; the offer that follows (below) asks for anything that did not make it.
//!
//! **Copying** (push, acknowledged): the writer *offers* the sealed record; the peer
//! applies it (so the chunks it is about to receive are referenced from the start)
//! and answers with the chunks it lacks, or refuses. The writer then sends those
//! chunks, a few at a time; the peer checks each in full and acknowledges only once
//! it is durable. A copy counts when every chunk is acknowledged.
//!
//! **Reading from peers**: see [`crate::remote_read`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use peervault_net::PeerId;
use peervault_store::vault::ChunkSource;
use peervault_store::{BlobTap, Lease, LeasedBytes, TappedBlob};
use peervault_store::{ChunkId, Manifest, NameId, ShardSet, StoreError, Vault, Version};
use tokio::sync::mpsc;

use crate::client::{Asked, CHUNK_TIMEOUT, CONTROL_TIMEOUT, refused};
use crate::context::Context;
use crate::error::{NodeError, PeerError, Result};
use crate::remote_read::PeerChunks;
use crate::views::{CopyProgress, Replication};
use crate::window::{PING_AGAIN, PeerPath, PeerPaths, Unsent};
use crate::wire::{Holding, Request, Response, SealedEntry};

/// Chunks in flight to one peer while copying.
const COPY_WINDOW: usize = 4;
/// Files asked about in one holdings request.
const HOLDINGS_PER_REQUEST: usize = 20_000;
/// Blobs queued per peer while a write streams to its holders.
const STREAM_QUEUE: usize = 2;
/// Pause between provider announcements at start.
const PROVIDE_PACE: Duration = Duration::from_millis(50);

/// Rendezvous score of `peer` for the file named by `name_id`.
fn score(name_id: &NameId, peer: &PeerId) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&name_id.0);
    hasher.update(&peer.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// `peers` in placement order for `name_id` (most preferred first).
pub fn placement(name_id: &NameId, mut peers: Vec<PeerId>) -> Vec<PeerId> {
    peers.sort_by_key(|p| std::cmp::Reverse(score(name_id, p)));
    peers
}

/// Where copies go and how chunks travel (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Replicator {
    ctx: Arc<Context>,
}

impl Replicator {
    pub(crate) fn new(ctx: Arc<Context>) -> Replicator {
        Replicator { ctx }
    }

    /// The shared handles (for the coded half of replication, `crate::coded`).
    pub(crate) fn ctx(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The sealed catalogue record of `manifest`'s version, to offer to peers
    /// (the current version of its name, or one kept in history: old versions
    /// keep their copies too).
    pub(crate) async fn sealed(&self, manifest: &Manifest) -> Result<SealedEntry> {
        let name_id = self.ctx.vault.name_id(&manifest.name);
        let found = self
            .ctx
            .vault
            .sealed_record(name_id, manifest.version)
            .await?;
        let sealed = found.ok_or_else(|| {
            NodeError::Invalid(format!(
                "that version of {:?} is no longer kept",
                manifest.name
            ))
        })?;
        Ok(SealedEntry { name_id, sealed })
    }

    /// Copies `manifest` to peers in placement order until the target is met.
    pub(crate) async fn replicate(
        &self,
        manifest: &Manifest,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    ) -> Replication {
        self.replicate_placed(manifest, &manifest.name, progress)
            .await
    }

    /// [`Replicator::replicate`] to the peers that placement picks for
    /// `placed_with` rather than for the file's own name (the parts of an S3
    /// multipart upload go where their object will).
    pub(crate) async fn replicate_placed(
        &self,
        manifest: &Manifest,
        placed_with: &str,
        progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    ) -> Replication {
        let peers = self.ctx.connected_peers().await;
        let mut report = Replication {
            target: self.ctx.target_copies(peers.len()),
            copies: 1,
            ..Replication::default()
        };
        let entry = match self.sealed(manifest).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot replicate {:?}: {e}", manifest.name);
                return report;
            }
        };
        let tell = |report: &Replication| tell_progress(progress, report);
        tell(&report);
        let wanted = report.target.saturating_sub(1);
        let candidates = placement(&self.ctx.vault.name_id(placed_with), peers);
        report.failures = self
            .copy_to_first(manifest, &entry, candidates, wanted, |peer| {
                report.copies += 1;
                report.holders.push(peer);
                tell(&report);
            })
            .await;
        if !report.complete() {
            tracing::info!(
                "{:?} has {} of {} copies: not enough peers could take it; the repair worker makes the rest when more peers are up",
                manifest.name,
                report.copies,
                report.target
            );
        }
        report
    }

    /// Copies `manifest` to the first `wanted` of `candidates` that take it, in
    /// order and at once: a peer that refuses or fails is replaced by the next.
    /// `took` hears of each copy as it becomes durable. Returns the peers that
    /// took none, and why.
    pub(crate) async fn copy_to_first(
        &self,
        manifest: &Manifest,
        entry: &SealedEntry,
        candidates: Vec<PeerId>,
        wanted: usize,
        mut took: impl FnMut(PeerId),
    ) -> Vec<(PeerId, PeerError)> {
        let copy = |peer| async move { (peer, self.copy_to(peer, manifest, entry).await) };
        let mut candidates = candidates.into_iter();
        let mut copying: FuturesUnordered<_> =
            candidates.by_ref().take(wanted).map(&copy).collect();
        let mut failures = Vec::new();
        while let Some((peer, result)) = copying.next().await {
            match result {
                Ok(()) => took(peer),
                Err(why) => {
                    tracing::info!("{peer} did not take a copy of {:?}: {why}", manifest.name);
                    failures.push((peer, why));
                    if let Some(next) = candidates.next() {
                        copying.push(copy(next));
                    }
                }
            }
        }
        failures
    }

    /// Offers `manifest` to `peer` and sends the chunks it asks for.
    pub(crate) async fn copy_to(
        &self,
        peer: PeerId,
        manifest: &Manifest,
        entry: &SealedEntry,
    ) -> std::result::Result<(), PeerError> {
        let offer = Request::Offer {
            entry: entry.clone(),
        };
        let missing = match self.ctx.ask(peer, &offer, CONTROL_TIMEOUT).await {
            Ok(Response::Want { missing }) => missing,
            other => return Err(refused(peer, other)),
        };
        let wanted: HashSet<ChunkId> = manifest.chunks.iter().copied().collect();
        if missing.iter().any(|id| !wanted.contains(id)) {
            return Err(PeerError::BadAnswer {
                peer,
                what: "it asked for chunks the file does not have".into(),
            });
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.send_windowed(peer, missing, 1, |id| self.send_chunk(peer, id))
            .await?;
        // Offer again: the peer confirms it now lacks nothing (and announces itself
        // as a holder), which is the acknowledgement that the copy is complete.
        match self.ctx.ask(peer, &offer, CONTROL_TIMEOUT).await {
            Ok(Response::Want { missing }) if missing.is_empty() => Ok(()),
            Ok(Response::Want { missing }) => Err(PeerError::BadAnswer {
                peer,
                what: format!("it still lacks {} chunks", missing.len()),
            }),
            other => Err(refused(peer, other)),
        }
    }

    /// Sends each of `ids` to `peer` with `send`, keeping the path's window of
    /// them in flight (`per_chunk` of them to a chunk: a coded file's shards
    /// are a K-th of one), grown from each exchange's time (see
    /// [`crate::window`]); the first failure ends it.
    pub(crate) async fn send_windowed<Sent>(
        &self,
        peer: PeerId,
        ids: Vec<ChunkId>,
        per_chunk: usize,
        send: impl Fn(ChunkId) -> Sent,
    ) -> std::result::Result<(), PeerError>
    where
        Sent: std::future::Future<Output = std::result::Result<Duration, PeerError>>,
    {
        let mut path = self.ctx.path_to(&peer).await;
        let mut sending = FuturesUnordered::new();
        let mut queue = ids.into_iter();
        loop {
            while sending.len() < path.chunks() * per_chunk {
                let Some(id) = queue.next() else { break };
                sending.push(send(id));
            }
            match sending.next().await {
                None => return Ok(()),
                Some(Ok(took)) => path.observe(took),
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Sends chunk `id` held here to `peer`; how long the exchange took.
    async fn send_chunk(
        &self,
        peer: PeerId,
        id: ChunkId,
    ) -> std::result::Result<Duration, PeerError> {
        // Copies and repair pay for what they hold like every other transfer.
        let lease = self.ctx.vault.lease_chunk().await;
        self.send_held_blob(peer, id, lease).await
    }

    /// Sends the blob `id` held here to `peer`, acknowledged once durable
    /// there; how long the exchange took.
    pub(crate) async fn send_held_blob(
        &self,
        peer: PeerId,
        id: ChunkId,
        lease: Lease,
    ) -> std::result::Result<Duration, PeerError> {
        let blob = match self.ctx.vault.read_blob(id).await {
            Ok(Some(blob)) => blob,
            Ok(None) => {
                return Err(PeerError::Local {
                    reason: format!("chunk {id} is not held here"),
                });
            }
            Err(e) => {
                return Err(PeerError::Local {
                    reason: e.to_string(),
                });
            }
        };
        self.send_blob(peer, id, blob, lease).await
    }

    /// Sends `blob` to `peer` to keep as `id`, acknowledged once durable there.
    /// `lease` pays for it until it is written to the peer's stream, not until
    /// the answer: a window of copies across a long round trip is mostly on
    /// the path, and would otherwise hold as much of the budget, and memory
    /// (see `crate::window`).
    pub(crate) async fn send_blob(
        &self,
        peer: PeerId,
        id: ChunkId,
        blob: Vec<u8>,
        lease: Lease,
    ) -> std::result::Result<Duration, PeerError> {
        let bytes = blob.len();
        let message = leased_put_chunk(&id, &blob, lease);
        drop(blob);
        let kind = Asked::PutChunk { bytes };
        let (answer, took) = self
            .ctx
            .ask_encoded_timed(peer, message, kind, CHUNK_TIMEOUT)
            .await;
        match answer {
            Ok(Response::Stored) => Ok(took),
            other => Err(refused(peer, other)),
        }
    }

    /// The peers a new file named `name` will be copied to, best first.
    pub(crate) async fn holders_for(&self, name: &str) -> Vec<PeerId> {
        self.best_peers(name, |connected| {
            self.ctx.target_copies(connected).saturating_sub(1)
        })
        .await
    }

    /// The first `count(connected peers)` connected peers in `name`'s
    /// placement order.
    pub(crate) async fn best_peers(
        &self,
        name: &str,
        count: impl FnOnce(usize) -> usize,
    ) -> Vec<PeerId> {
        let peers = self.ctx.connected_peers().await;
        let wanted = count(peers.len());
        let mut order = placement(&self.ctx.vault.name_id(name), peers);
        order.truncate(wanted);
        order
    }

    /// Starts streaming the blobs of a write to `peers` while it is being stored.
    /// Returns the tap to give the write, and a task that ends when every blob has
    /// been acknowledged or a peer has failed (the offer that follows the write
    /// sends whatever did not arrive).
    ///
    /// A shard of a coded write goes only to the peers whose set holds its
    /// index; a peer with `None` gets every blob.
    pub(crate) fn stream_routed(
        &self,
        peers: Vec<(PeerId, Option<ShardSet>)>,
    ) -> (BlobTap, tokio::task::JoinHandle<Option<()>>) {
        let queue_len = match peers.iter().any(|(_, set)| set.is_some()) {
            // A coded chunk is several blobs at once.
            true => STREAM_QUEUE * peers.len().max(1),
            false => STREAM_QUEUE,
        };
        let (tap, mut blobs) = mpsc::channel::<TappedBlob>(queue_len);
        let node = self.clone();
        let task = self.ctx.tasks.spawn_joinable(async move {
            let mut queues = Vec::new();
            let mut workers = Vec::new();
            for (peer, set) in peers {
                let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                queues.push((tx, set));
                workers.push(
                    node.ctx
                        .tasks
                        .spawn_joinable(node.clone().stream_worker(peer, rx)),
                );
            }
            while let Some(TappedBlob {
                id,
                blob,
                lease,
                shard,
            }) = blobs.recv().await
            {
                let wanted = |set: &Option<ShardSet>| match (set, shard) {
                    (Some(set), Some(j)) => set.contains(j as usize),
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if !queues.iter().any(|(_, set)| wanted(set)) {
                    continue;
                }
                // Encoded once for every holder; the blob's lease pays for the
                // encoded copy until the last holder has sent it.
                let message = leased_put_chunk(&id, &blob, lease);
                let bytes = blob.len();
                drop(blob);
                for (queue, set) in &queues {
                    if wanted(set) {
                        // A worker that gave up has dropped its queue: skip it.
                        let _ = queue.send((bytes, message.clone())).await;
                    }
                }
            }
            drop(queues);
            for worker in workers {
                let _ = worker.await;
            }
        });
        (tap, task)
    }

    /// Sends encoded `PutChunk` requests (with their blob sizes) to `peer`, a
    /// window of bytes in flight (sized from the path's round trip, and grown
    /// from the answers' as they come: see [`crate::window`]), until the queue
    /// ends or the peer fails one.
    async fn stream_worker(self, peer: PeerId, mut blobs: mpsc::Receiver<(usize, Bytes)>) {
        let mut path = self.ctx.path_to(&peer).await;
        let mut asked_ping = Instant::now();
        let unsent = Unsent::new();
        let mut sending = FuturesUnordered::new();
        let mut in_flight = 0u64;
        let answered = |path: &mut PeerPath, in_flight: &mut u64, (answer, bytes, took)| {
            *in_flight -= bytes;
            path.observe(took);
            match answer {
                Ok(Response::Stored) => true,
                answer => {
                    tracing::debug!("streaming to {peer} stopped: {}", refused(peer, answer));
                    false
                }
            }
        };
        loop {
            // Room for the next message first (see `Unsent`), then the message.
            let next = async {
                let room = unsent.room().await;
                blobs
                    .recv()
                    .await
                    .map(|(bytes, message)| (bytes, room.hold(message)))
            };
            tokio::select! {
                next = next, if in_flight < path.bytes() => match next {
                    Some((bytes, message)) => {
                        let node = self.clone();
                        in_flight += bytes as u64;
                        sending.push(async move {
                            let kind = Asked::PutChunk { bytes };
                            let (answer, took) =
                                node.ctx.ask_encoded_timed(peer, message, kind, CHUNK_TIMEOUT).await;
                            (answer, bytes as u64, took)
                        });
                    }
                    None => break,
                },
                Some(answer) = sending.next(), if !sending.is_empty() => {
                    if !answered(&mut path, &mut in_flight, answer) {
                        return;
                    }
                    // A stream that started before the first ping: its own
                    // answers overstate the round trip while the stream's
                    // window grows, so the ping is asked for again.
                    if !path.pinged() && asked_ping.elapsed() >= PING_AGAIN {
                        path.pinged_at(self.ctx.ping_of(&peer).await);
                        asked_ping = Instant::now();
                    }
                }
            }
        }
        while let Some(answer) = sending.next().await {
            if !answered(&mut path, &mut in_flight, answer) {
                return;
            }
        }
    }

    /// `send <file> <peer>`: makes `peer` hold a complete copy of `name`.
    pub async fn send_to(&self, name: &str, peer: PeerId) -> Result<()> {
        let manifest = self.ctx.vault.stat(name).await?;
        refuse_coded(&manifest, "sent whole to a peer")?;
        let entry = self.sealed(&manifest).await?;
        self.copy_to(peer, &manifest, &entry)
            .await
            .map_err(|why| why.during(format!("{name:?} was not copied")))
    }

    /// `fetch <file> <peer>`: copies every chunk of `name` this node lacks from
    /// `peer` only, making this node a holder. Returns the chunks fetched.
    pub async fn fetch_from(&self, name: &str, peer: PeerId) -> Result<usize> {
        let manifest = self.ctx.vault.stat(name).await?;
        refuse_coded(&manifest, "fetched whole from one peer")?;
        let missing = self.ctx.vault.missing_chunks(&manifest).await?;
        let needed = Vault::blob_bytes(&manifest, &missing);
        self.ctx.vault.check_fits_bytes(needed)?;
        let mut fetching = FuturesUnordered::new();
        let mut queue = missing.iter().copied();
        let mut fetched = 0;
        loop {
            while fetching.len() < COPY_WINDOW {
                let Some(id) = queue.next() else { break };
                fetching.push(async move {
                    match self.ctx.ask_chunk(peer, id).await {
                        Ok(Some(blob)) => self.ctx.vault.put_blob(id, blob).await.map_err(|e| {
                            match e {
                                // The blob it sent failed its check: its fault.
                                StoreError::CorruptRecord { .. } => PeerError::BadAnswer {
                                    peer,
                                    what: e.to_string(),
                                }
                                .during(format!("{name:?} was not fetched")),
                                other => NodeError::Store(other),
                            }
                        }),
                        Ok(None) => Err(PeerError::Refused {
                            peer,
                            reason: format!("it does not hold chunk {id}"),
                        }
                        .during(format!("{name:?} was not fetched"))),
                        Err(why) => Err(why.during(format!("{name:?} was not fetched"))),
                    }
                });
            }
            match fetching.next().await {
                None => {
                    if !missing.is_empty() {
                        // Asked for by a user, not by the placement (see crate::extras).
                        self.ctx.extras.insert(self.ctx.vault.name_id(name));
                    }
                    self.provide(name).await;
                    return Ok(fetched);
                }
                Some(Ok(_)) => fetched += 1,
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Announces in the DHT that this node holds `name` (so that nodes not connected
    /// to it can find it).
    pub(crate) async fn provide(&self, name: &str) {
        self.ctx
            .net
            .provide(self.ctx.vault.name_id(name).0.to_vec())
            .await;
    }

    pub(crate) async fn stop_providing(&self, name: &str) {
        self.ctx
            .net
            .stop_providing(self.ctx.vault.name_id(name).0.to_vec())
            .await;
    }

    /// At start: announce every file held here in the DHT, a few at a time (provider
    /// records live in memory and are gone after a restart).
    pub(crate) async fn provide_held_files(self) {
        let Ok(files) = self.ctx.vault.summaries().await else {
            return;
        };
        for (_, file) in files {
            if file.held {
                self.provide(&file.name).await;
                tokio::time::sleep(PROVIDE_PACE).await;
            }
        }
    }

    /// For each file version, how many connected peers hold a complete copy.
    pub(crate) async fn count_remote_copies(&self, files: &[(NameId, Version)]) -> Vec<usize> {
        let peers = self.ctx.connected_peers().await;
        self.remote_holders(files, &peers)
            .await
            .iter()
            .map(Holders::len)
            .collect()
    }

    /// For each file version (by name id), which of `peers` hold a complete copy
    /// of it. A peer that does not answer counts as holding nothing.
    pub(crate) async fn remote_holders(
        &self,
        files: &[(NameId, Version)],
        peers: &[PeerId],
    ) -> Vec<Holders> {
        let mut holders = vec![Holders::default(); files.len()];
        if files.is_empty() || peers.is_empty() {
            return holders;
        }
        let answers = futures::future::join_all(peers.iter().map(|peer| async move {
            let mut held = Vec::with_capacity(files.len());
            for batch in files.chunks(HOLDINGS_PER_REQUEST) {
                let request = Request::Holdings {
                    files: batch.to_vec(),
                };
                match self.ctx.ask(*peer, &request, CONTROL_TIMEOUT).await {
                    Ok(Response::Held { held: part }) if part.len() == batch.len() => {
                        held.extend(part)
                    }
                    _ => return None,
                }
            }
            Some((*peer, held))
        }))
        .await;
        for (peer, held) in answers.into_iter().flatten() {
            for (file, h) in holders.iter_mut().zip(held) {
                match h {
                    Holding::No => {}
                    Holding::Copy => file.regular.push(peer),
                    Holding::Extra => file.extra.push(peer),
                    Holding::Shards(set) => file.shards.push((peer, set)),
                }
            }
        }
        holders
    }

    /// Where reads of `name` get the chunks this node lacks.
    pub(crate) async fn chunk_source(&self, name: &str) -> Arc<dyn ChunkSource> {
        let name_id = self.ctx.vault.name_id(name);
        // One question to the network actor: who is connected, and each
        // one's round trip.
        let known = self.ctx.net.peers().await;
        let likely = self.ctx.target_copies(known.len()).max(1);
        let order = placement(&name_id, known.iter().map(|p| p.peer_id).collect());
        // Enough chunks ahead to fill the paths from the likely holders
        // (a coded file's come from K+M of them; any of the first few
        // stand for the rest), as far as the budget allows.
        let paths = PeerPaths::new(order.iter().take(likely.max(4)).map(|peer| {
            let ping = known
                .iter()
                .find(|p| p.peer_id == *peer)
                .and_then(|p| p.rtt);
            (*peer, self.ctx.path_for(ping))
        }));
        Arc::new(PeerChunks::new(
            self.ctx.clone(),
            name_id,
            order,
            likely,
            paths,
        ))
    }
}

/// Tells `progress`, if anyone watches, the copies (or shards) `report` has.
/// The `PutChunk` request for `blob`, whose memory `lease` pays for until
/// the request is dropped (once it is written to the peer's stream).
fn leased_put_chunk(id: &ChunkId, blob: &[u8], lease: Lease) -> Bytes {
    LeasedBytes::wrap(Bytes::from(crate::wire::encode_put_chunk(id, blob)), lease)
}

pub(crate) fn tell_progress(
    progress: Option<&tokio::sync::watch::Sender<CopyProgress>>,
    report: &Replication,
) {
    if let Some(progress) = progress {
        progress.send_replace(CopyProgress {
            copies: report.copies,
            target: report.target,
        });
    }
}

/// Refuses what only whole copies allow for a coded file (whose holders
/// keep shards), saying what to do instead.
fn refuse_coded(manifest: &Manifest, what: &str) -> Result<()> {
    match manifest.redundancy() {
        None => Ok(()),
        Some(r) => Err(NodeError::Invalid(format!(
            "{:?} is erasure coded ({r}): its holders keep shards, so it cannot be {what}; \
             `get` reads it from any {} of them, and the repair worker places shards",
            manifest.name,
            r.data()
        ))),
    }
}

/// The peers holding a complete copy of one file version: those the placement
/// put there, and those holding an extra copy a user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holders {
    pub(crate) regular: Vec<PeerId>,
    pub(crate) extra: Vec<PeerId>,
    /// Of a coded file: who holds which shards (every chunk's).
    pub(crate) shards: Vec<(PeerId, ShardSet)>,
}

impl Holders {
    /// Copies held by these peers, of both kinds (of a coded file: the
    /// peers holding shards).
    pub(crate) fn len(&self) -> usize {
        self.regular.len() + self.extra.len() + self.shards.len()
    }

    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.regular.contains(peer) || self.extra.contains(peer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Node, NodeConfig};
    use peervault_store::NetworkKey;

    /// A repair that read a file's manifest before the name was written again must
    /// offer that version's own record, never the newer one (the peer would ask
    /// for the newer version's chunks: "asked for chunks the file does not
    /// have"); and a version no longer kept is not offered at all.
    #[tokio::test]
    async fn an_entry_is_offered_only_with_the_version_it_belongs_to() {
        let dir = tempfile::tempdir().unwrap();
        let key = NetworkKey::from_bytes([3; 32], peervault_store::KeySource::Hex);
        let node = Node::start(NodeConfig::new(dir.path().join("n"), key))
            .await
            .unwrap();
        let vault = &node.inner.ctx.vault;
        node.store("a.txt", &b"one"[..], None).await.unwrap();
        let replicator = &node.inner.replicator;
        let old = vault.stat("a.txt").await.unwrap();
        node.store("a.txt", &b"two"[..], None).await.unwrap();
        let new = vault.stat("a.txt").await.unwrap();
        for manifest in [&old, &new] {
            let offered = replicator.sealed(manifest).await.unwrap();
            let opened = vault
                .apply_sealed(offered.name_id, offered.sealed)
                .await
                .unwrap();
            assert_eq!(opened.entry.version(), manifest.version);
        }
        vault.set_retention(peervault_store::Retention::NONE);
        node.store("a.txt", &b"three"[..], None).await.unwrap();
        let refused = replicator.sealed(&old).await.unwrap_err();
        assert!(refused.to_string().contains("no longer kept"), "{refused}");
        node.shutdown(Duration::from_secs(2)).await;
    }
}
