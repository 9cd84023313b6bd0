//! Answering peers.
//!
//! Each request runs in its own task, at most [`CONCURRENCY`] at a time; the
//! network layer drops requests beyond its queue, so a flood from one peer costs
//! that peer failures, not this node memory. Every answer is computed from input
//! that is treated as hostile: records must open under the vault key, chunks must
//! verify, and sizes are bounded by the message limit before anything is read.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use peervault_net::{InboundRequest, PeerId};
use peervault_store::{CatalogueEntry, ChunkId, Held, NameId, ShardSet, StoreError, Vault};
use tokio::sync::{Semaphore, mpsc};

use crate::bandwidth::Class;
use crate::conduct::Offence;
use crate::context::Context;
use crate::lanes::ChunkServer;
use crate::replicate::Replicator;
use crate::sync::Syncer;
use crate::wire::{
    ChunkAnswer, ENTRIES_PER_MESSAGE, Holding, Refusal, Request, Response, SealedEntry,
};

/// Peer requests handled at the same time.
const CONCURRENCY: usize = 32;

/// Serves requests until the channel closes (the network stopped).
pub(crate) async fn serve(responder: Responder, mut inbound: mpsc::Receiver<InboundRequest>) {
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(request) = inbound.recv().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let answering = responder.clone();
        responder.ctx.spawn(async move {
            let answer = answering.answer_encoded(request.peer, request.bytes).await;
            let _ = request.reply.send(answer);
            drop(permit);
        });
    }
}

/// Answers peers' requests (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Responder {
    ctx: Arc<Context>,
    replicator: Replicator,
    syncer: Syncer,
}

impl Responder {
    pub(crate) fn new(ctx: Arc<Context>, replicator: Replicator, syncer: Syncer) -> Responder {
        Responder {
            ctx,
            replicator,
            syncer,
        }
    }

    /// The encoded answer to a request, decoded once here. Chunks, most of the
    /// bytes a node serves, are read from disk straight into their message.
    async fn answer_encoded(&self, peer: PeerId, bytes: Bytes) -> Bytes {
        match self.answer_chunk_request(peer, bytes).await {
            ChunkAnswer::Answered(answer) => answer,
            ChunkAnswer::Other(request) => self.answer(peer, request).await.encode().into(),
            ChunkAnswer::Undecodable(e) => {
                self.ctx
                    .offence(
                        peer,
                        Offence::Malformed,
                        &format!("an undecodable request ({e})"),
                    )
                    .await;
                Response::Error(format!("undecodable request: {e}"))
                    .encode()
                    .into()
            }
        }
    }

    /// The encoded answer to a chunk request: a `PutChunk`, checked and stored
    /// where it arrived, or a `GetChunk`, the blob read into its answer. Any other
    /// request comes back decoded (or as the reason it could not be).
    async fn answer_chunk_request(&self, peer: PeerId, bytes: Bytes) -> ChunkAnswer {
        if let Some((id, range)) = crate::wire::put_chunk_in_request(&bytes) {
            let blob = crate::wire::take_range(bytes, range);
            return ChunkAnswer::Answered(self.store_chunk(peer, id, blob).await.encode().into());
        }
        match Request::decode(&bytes) {
            Ok(Request::GetChunk { id }) => ChunkAnswer::Answered(self.serve_chunk(id).await),
            Ok(other) => ChunkAnswer::Other(other),
            Err(e) => ChunkAnswer::Undecodable(e),
        }
    }

    /// Checks and stores a chunk a peer sent.
    async fn store_chunk(&self, peer: PeerId, id: ChunkId, blob: BytesMut) -> Response {
        let len = blob.len() as u64;
        // Not acknowledged before the download limit allows: that holds the
        // sender's window back.
        self.ctx
            .bandwidth
            .download
            .take_as(len, Class::Foreground)
            .await;
        match self.ctx.vault.put_blob(id, blob).await {
            Ok(_) => {
                self.ctx.metrics.bytes_received.inc_by(len);
                Response::Stored
            }
            Err(StoreError::QuotaExceeded {
                needed, available, ..
            }) => Response::Refused(Refusal::Quota { needed, available }),
            Err(e @ StoreError::CorruptRecord { .. }) => {
                self.ctx
                    .offence(
                        peer,
                        Offence::BadChunk(id),
                        &format!("an invalid chunk ({e})"),
                    )
                    .await;
                Response::Refused(Refusal::Invalid(e.to_string()))
            }
            Err(e) => Response::Error(e.to_string()),
        }
    }

    /// An encoded `Chunk` (or `Missing`) answer, the blob read into the message.
    async fn serve_chunk(&self, id: ChunkId) -> Bytes {
        let read = self
            .ctx
            .vault
            .read_blob_after(id, crate::wire::chunk_response_prefix)
            .await;
        match read {
            Ok(Some(message)) => {
                let blob = crate::wire::chunk_in_response(&message).map_or(0, |r| r.len());
                self.ctx
                    .bandwidth
                    .upload
                    .take_as(blob as u64, Class::Foreground)
                    .await;
                self.ctx.metrics.bytes_sent.inc_by(blob as u64);
                message
            }
            Ok(None) => Response::Missing.encode().into(),
            Err(e) => Response::Error(e.to_string()).encode().into(),
        }
    }

    /// The answer to every request but `GetChunk` (see [`Responder::serve_chunk`]).
    async fn answer(&self, peer: PeerId, request: Request) -> Response {
        let vault = &self.ctx.vault;
        match request {
            Request::Summary { digests } => {
                let membership = self.syncer.membership();
                if membership.resyncing {
                    // Our records may include files deleted while we were away;
                    // offer none until our own sync has re-checked them.
                    Response::Versions {
                        buckets: Vec::new(),
                        versions: Vec::new(),
                        member_since_ms: membership.member_since_ms,
                        resyncing: true,
                    }
                } else {
                    let buckets = vault.differing_buckets(&digests);
                    Response::Versions {
                        versions: vault.versions_in(&buckets),
                        buckets,
                        member_since_ms: membership.member_since_ms,
                        resyncing: false,
                    }
                }
            }
            Request::FetchEntries { mut ids } => {
                ids.truncate(ENTRIES_PER_MESSAGE);
                entries_answer(vault.sealed_entries(ids).await)
            }
            Request::FetchRecords { mut records } => {
                records.truncate(ENTRIES_PER_MESSAGE);
                entries_answer(vault.sealed_records(records).await)
            }
            Request::Announce { mut entries } => {
                entries.truncate(ENTRIES_PER_MESSAGE);
                self.syncer.apply_from(peer, entries).await;
                Response::Ack
            }
            Request::Offer { entry } => self.answer_offer(peer, vault, entry, None).await,
            Request::OfferShards { entry, shards } => {
                self.answer_offer(peer, vault, entry, Some(shards)).await
            }
            Request::Grant { sealed } => match self.ctx.devices.accept_grant(vault, &peer, &sealed)
            {
                Ok(true) => {
                    // Records of the new epoch this node could not open until now.
                    let syncer = self.syncer.clone();
                    self.ctx.spawn(async move {
                        if let Err(e) = syncer.sync(peer, crate::sync::SyncKind::Periodic).await {
                            tracing::debug!("catalogue sync with {peer} after its grant: {e}");
                        }
                    });
                    Response::Ack
                }
                Ok(false) => Response::Ack,
                Err(e) => Response::Refused(Refusal::Invalid(e.to_string())),
            },
            // `answer_chunk_request` normally stores a chunk straight from its message.
            Request::PutChunk { id, blob } => {
                self.store_chunk(peer, id, Bytes::from(blob).into()).await
            }
            // Served before this match, by `answer_chunk_request`.
            Request::GetChunk { id } => {
                Response::Error(format!("chunk {id} was asked for by the wrong path"))
            }
            Request::Info => Response::Info(crate::cluster::own_info(&self.ctx).await),
            Request::Holdings { files } => {
                let ids: Vec<NameId> = files.iter().map(|(id, _)| *id).collect();
                match vault.holds_versions(files).await {
                    Ok(held) => Response::Held {
                        held: held
                            .into_iter()
                            .zip(ids)
                            .map(|(held, id)| match held {
                                Held::Nothing => Holding::No,
                                Held::Whole if self.ctx.extras.contains(&id) => Holding::Extra,
                                Held::Whole => Holding::Copy,
                                Held::Shards(set) => Holding::Shards(set),
                            })
                            .collect(),
                    },
                    Err(e) => Response::Error(e.to_string()),
                }
            }
        }
    }

    /// A copy offered: of the whole file, or (`shards`) of some shards of a
    /// coded one. Answered with what this node lacks of it.
    async fn answer_offer(
        &self,
        peer: PeerId,
        vault: &Vault,
        entry: SealedEntry,
        shards: Option<ShardSet>,
    ) -> Response {
        let offered = match vault.apply_sealed(entry.name_id, entry.sealed).await {
            Ok(applied) => applied,
            Err(e @ StoreError::UnknownEpoch { .. }) => {
                return Response::Refused(Refusal::Other(e.to_string()));
            }
            Err(e) => {
                self.ctx
                    .offence(
                        peer,
                        Offence::BadRecord,
                        &format!("an invalid record ({e})"),
                    )
                    .await;
                return Response::Refused(Refusal::Invalid(e.to_string()));
            }
        };
        if crate::devices::Devices::touches(offered.entry.name()) {
            self.ctx.devices.changed.notify_one();
        }
        let CatalogueEntry::File(manifest) = offered.entry else {
            return Response::Refused(Refusal::Other(
                "the record is a deletion, not a file".into(),
            ));
        };
        // The placement wants a copy here: an extra one becomes a regular one.
        self.ctx.extras.remove(&entry.name_id);
        // An older version is kept as history and copied like the current one,
        // unless it is past the retention (then it was not kept).
        if !vault.has_record(&entry.name_id, &manifest.version) {
            return Response::Refused(Refusal::Superseded);
        }
        let missing = match (shards, manifest.redundancy()) {
            (None, None) => vault.missing_chunks(&manifest).await,
            (Some(set), Some(redundancy)) if set.iter().all(|j| j < redundancy.total()) => {
                vault.missing_shards(&manifest, set).await
            }
            (None, Some(_)) => {
                return Response::Refused(Refusal::Other(
                    "the file is erasure coded: offer it by shard".into(),
                ));
            }
            (Some(set), _) => {
                return Response::Refused(Refusal::Invalid(format!(
                    "shards {set} of a file that is not coded so"
                )));
            }
        };
        let missing = match missing {
            Ok(missing) => missing,
            Err(e) => return Response::Error(e.to_string()),
        };
        if missing.is_empty() {
            // The writer's closing offer: this node now holds a complete copy.
            self.ctx.metrics.replicas_accepted.inc();
            self.replicator.provide(&manifest.name).await;
        }
        let needed = Vault::blob_bytes(&manifest, &missing);
        if let Err(StoreError::QuotaExceeded { available, .. }) = vault.check_fits_bytes(needed) {
            return Response::Refused(Refusal::Quota { needed, available });
        }
        Response::Want { missing }
    }
}

/// The answer to a fetch of sealed records.
fn entries_answer(found: Result<Vec<(NameId, Vec<u8>)>, StoreError>) -> Response {
    match found {
        Ok(found) => Response::Entries {
            entries: found
                .into_iter()
                .map(|(name_id, sealed)| SealedEntry { name_id, sealed })
                .collect(),
        },
        Err(e) => Response::Error(e.to_string()),
    }
}

impl ChunkServer for Responder {
    async fn answer_chunk_request(&self, peer: PeerId, request: Bytes) -> ChunkAnswer {
        Responder::answer_chunk_request(self, peer, request).await
    }

    async fn offence(&self, peer: PeerId, offence: Offence, what: &str) {
        self.ctx.offence(peer, offence, what).await;
    }

    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.ctx.spawn(work);
    }
}
