//! Reading chunks from peers. A node that lacks a chunk asks peers in placement order,
//! starting each chunk at a different likely holder so that a file streams from
//! several holders in parallel. A peer that fails or times out is moved to the back
//! for the rest of the read: a stalled holder costs one timeout, not one per chunk.
//!
//! Connected peers are asked first; when none of them has a chunk, the DHT is
//! asked once per read who provides the file. A peer that supplied a chunk that
//! failed its check is never asked again during the read, and counts an offence.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use peervault_net::PeerId;
use peervault_store::vault::{ChunkSource, FetchError};
use peervault_store::{ChunkProblem, Manifest, NameId, Version};

use crate::context::Context;
use crate::window::PeerPaths;

/// Tries per DHT provider before a read gives up on it.
const DHT_ATTEMPTS: usize = 3;
/// Pause between those tries.
const DHT_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Chunks from peers, for one read. A clone shares the read's state (for
/// futures that outlive `&self`).
#[derive(Clone)]
pub(crate) struct PeerChunks {
    ctx: Arc<Context>,
    /// Connected peers in placement order.
    order: Vec<PeerId>,
    /// How many of the first peers probably hold the file (to spread reads over).
    likely: usize,
    /// Peers that failed during this read: asked last from now on.
    failed: Arc<Mutex<HashSet<PeerId>>>,
    name_id: NameId,
    /// Holders found through the DHT, looked up once per read when connected peers
    /// cannot supply a chunk.
    providers: Arc<tokio::sync::OnceCell<Vec<PeerId>>>,
    /// Who supplied each chunk, until the store has checked it.
    served: Arc<Mutex<HashMap<usize, PeerId>>>,
    /// Peers that supplied a chunk that failed its check: never asked again
    /// during this read.
    liars: Arc<Mutex<HashSet<PeerId>>>,
    /// Of a coded file's versions: who holds each shard index, asked once
    /// per read (a read of a re-encoded version may fall back on another).
    shard_holders: Arc<tokio::sync::Mutex<HashMap<Version, Vec<Vec<PeerId>>>>>,
    /// Who supplied each shard (chunk, index), until the store has checked it.
    served_shards: Arc<Mutex<HashMap<(usize, usize), PeerId>>>,
    /// The paths to the likely holders: their windows together are the
    /// chunks worth reading ahead.
    paths: PeerPaths,
}

impl PeerChunks {
    /// A source for one read of the file `name_id`, asking `order` (connected
    /// peers in placement order), spread over the first `likely`.
    pub(crate) fn new(
        ctx: Arc<Context>,
        name_id: NameId,
        order: Vec<PeerId>,
        likely: usize,
        paths: PeerPaths,
    ) -> PeerChunks {
        PeerChunks {
            ctx,
            name_id,
            order,
            likely,
            failed: Arc::new(Mutex::new(HashSet::new())),
            providers: Arc::new(tokio::sync::OnceCell::new()),
            served: Arc::new(Mutex::new(HashMap::new())),
            liars: Arc::new(Mutex::new(HashSet::new())),
            shard_holders: Arc::default(),
            served_shards: Arc::new(Mutex::new(HashMap::new())),
            paths,
        }
    }

    /// Who holds each shard index of coded `manifest`, asked of every
    /// connected peer once per read (the `Holdings` request the repair
    /// worker uses).
    async fn shard_holders(&self, manifest: &Manifest) -> Vec<Vec<PeerId>> {
        let total = manifest.redundancy().map_or(0, |r| r.total());
        let (ctx, order, name_id, version) = (
            self.ctx.clone(),
            self.order.clone(),
            self.name_id,
            manifest.version,
        );
        let mut known = self.shard_holders.lock().await;
        if let Some(holders) = known.get(&version) {
            return holders.clone();
        }
        let replicator = crate::replicate::Replicator::new(ctx);
        let holders = replicator
            .remote_holders(&[(name_id, version)], &order)
            .await;
        let mut by_index = vec![Vec::new(); total];
        for (peer, set) in holders.into_iter().flat_map(|h| h.shards) {
            for j in set.iter().filter(|j| *j < total) {
                by_index[j].push(peer);
            }
        }
        known.insert(version, by_index.clone());
        by_index
    }

    /// The holders of shard `index` worth asking, best first.
    fn shard_candidates(&self, holders: &[PeerId]) -> Vec<PeerId> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let liars = self.liars.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out: Vec<PeerId> = holders
            .iter()
            .filter(|p| !liars.contains(p))
            .copied()
            .collect();
        out.sort_by_key(|p| failed.contains(p));
        out
    }

    /// The peers to ask for chunk `index`, best first.
    fn candidates(&self, index: usize) -> Vec<PeerId> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let spread = self.likely.min(self.order.len()).max(1);
        let mut order: Vec<PeerId> = self.order.clone();
        if !order.is_empty() {
            order[..spread].rotate_left(index % spread);
        }
        order.sort_by_key(|p| failed.contains(p));
        let liars = self.liars.lock().unwrap_or_else(|p| p.into_inner());
        order.retain(|p| !liars.contains(p));
        order
    }
}

impl PeerChunks {
    /// `peer` supplied blob `id` (`what`), which failed its check: it is
    /// not asked again during this read, and is charged an offence.
    fn charge(&self, peer: PeerId, id: Option<peervault_store::ChunkId>, what: String) {
        self.liars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer);
        let Some(id) = id else {
            return;
        };
        let ctx = self.ctx.clone();
        self.ctx.spawn(async move {
            ctx.offence(peer, crate::conduct::Offence::BadChunk(id), &what)
                .await
        });
    }
}

/// Asks `peer` for blob `id`, and gives `paths` the exchange's time if it
/// answered (a read's windows grow from it: see `crate::window`).
async fn ask_observed(
    ctx: &Context,
    paths: &PeerPaths,
    peer: PeerId,
    id: peervault_store::ChunkId,
) -> Result<Option<BytesMut>, crate::error::PeerError> {
    let (answer, took) = ctx.ask_chunk_timed(peer, id).await;
    if answer.is_ok() {
        paths.observe(peer, took);
    }
    answer
}

impl ChunkSource for PeerChunks {
    fn fetch(
        &self,
        manifest: Arc<Manifest>,
        index: usize,
    ) -> BoxFuture<'static, std::result::Result<BytesMut, FetchError>> {
        let id = manifest.chunks[index];
        let candidates = self.candidates(index);
        let ctx = self.ctx.clone();
        let failed = self.failed.clone();
        let providers = self.providers.clone();
        let key = self.name_id.0.to_vec();
        let (served, liars) = (self.served.clone(), self.liars.clone());
        let paths = self.paths.clone();
        let supplied = move |peer: PeerId, blob: BytesMut| {
            served
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(index, peer);
            Ok(blob)
        };
        Box::pin(async move {
            let mut reasons = Vec::new();
            let mut asked = HashSet::new();
            for peer in candidates {
                asked.insert(peer);
                match ask_observed(&ctx, &paths, peer, id).await {
                    Ok(Some(blob)) => return supplied(peer, blob),
                    Ok(None) => reasons.push(format!("{peer}: not held")),
                    Err(why) => {
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(peer);
                        reasons.push(why.to_string());
                    }
                }
            }
            // None of the connected peers has it: ask the DHT who holds the file.
            let found = providers
                .get_or_init(|| async { ctx.net.find_providers(key).await })
                .await;
            let liars = liars.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for peer in found
                .iter()
                .filter(|p| !asked.contains(p) && !liars.contains(p))
            {
                // A provider is a fresh connection, often dialled just now; one that
                // breaks while it settles gets a second chance.
                for attempt in 1..=DHT_ATTEMPTS {
                    match ctx.ask_chunk(*peer, id).await {
                        Ok(Some(blob)) => return supplied(*peer, blob),
                        Ok(None) => {
                            reasons.push(format!("{peer} (via the DHT): not held"));
                            break;
                        }
                        Err(why) if attempt == DHT_ATTEMPTS => {
                            reasons.push(format!("{why} (found through the DHT)"))
                        }
                        Err(_) => tokio::time::sleep(DHT_RETRY_PAUSE).await,
                    }
                }
            }
            if reasons.is_empty() {
                return Err(FetchError(
                    "no peer is connected and the DHT knows no holder".into(),
                ));
            }
            Err(FetchError(format!(
                "no peer could supply it ({})",
                reasons.join("; ")
            )))
        })
    }

    fn read_ahead(&self) -> usize {
        self.paths.chunks()
    }

    fn shard_order(
        &self,
        manifest: Arc<Manifest>,
    ) -> BoxFuture<'static, std::result::Result<Vec<usize>, FetchError>> {
        let this = self.clone();
        Box::pin(async move {
            let holders = this.shard_holders(&manifest).await;
            let failed = this
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            // Shards with a holder that has not failed first, data shards
            // before parity (no decoding when all K data shards come).
            let mut order: Vec<usize> = (0..holders.len())
                .filter(|j| !this.shard_candidates(&holders[*j]).is_empty())
                .collect();
            order.sort_by_key(|j| holders[*j].iter().all(|p| failed.contains(p)));
            Ok(order)
        })
    }

    fn fetch_shard(
        &self,
        manifest: Arc<Manifest>,
        index: usize,
        shard: usize,
    ) -> BoxFuture<'static, std::result::Result<BytesMut, FetchError>> {
        let this = self.clone();
        Box::pin(async move {
            let Some(id) = manifest.shard_id(index, shard) else {
                return Err(FetchError(format!(
                    "the file has no shard {shard} of chunk {index}"
                )));
            };
            let holders = this.shard_holders(&manifest).await;
            let candidates = this.shard_candidates(holders.get(shard).map_or(&[][..], |h| h));
            let mut reasons = Vec::new();
            for peer in candidates {
                match ask_observed(&this.ctx, &this.paths, peer, id).await {
                    Ok(Some(blob)) => {
                        this.served_shards
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert((index, shard), peer);
                        return Ok(blob);
                    }
                    Ok(None) => reasons.push(format!("{peer}: not held")),
                    Err(why) => {
                        this.failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(peer);
                        reasons.push(why.to_string());
                    }
                }
            }
            Err(FetchError(match reasons.is_empty() {
                true => "no connected peer holds it".into(),
                false => reasons.join("; "),
            }))
        })
    }

    fn rejected_shard(&self, manifest: &Manifest, index: usize, shard: usize) {
        let supplier = self
            .served_shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(index, shard));
        if let Some(peer) = supplier {
            let what = format!("shard {shard} of chunk {index} of {:?}", manifest.name);
            self.charge(peer, manifest.shard_id(index, shard), what);
        }
    }

    fn rejected(&self, manifest: &Manifest, index: usize, problem: &ChunkProblem) {
        let supplier = self
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&index);
        if let Some(peer) = supplier {
            let what = format!("chunk {index} of {:?}, which {problem}", manifest.name);
            self.charge(peer, manifest.chunks.get(index).copied(), what);
        }
    }
}
