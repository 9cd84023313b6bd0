//! The peer client: how a component asks a peer something and gets its answer.
//!
//! Chunks go on the peer's chunk lane (see [`crate::lanes`]), everything else
//! through libp2p request-response. Every exchange is timed and counted in the
//! metrics here, once, and every failure comes back as a [`PeerError`] that says
//! which peer and what went wrong (a timeout, a refusal with its reason, a broken
//! connection, an answer that makes no sense), never as a string to compare.
//!
//! These are methods of the shared [`Context`]: the client needs nothing but its
//! network handle, lanes and metrics, and every component holds the context.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use peervault_net::PeerId;
use peervault_store::ChunkId;

use crate::context::Context;
use crate::error::PeerError;
use crate::wire::{Request, Response};

/// Time for one chunk to cross in either direction.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(20);
/// What a chunk asked for is expected to weigh, for the download limit (the
/// answer settles the difference).
const ESTIMATED_CHUNK_BYTES: u64 =
    peervault_store::DEFAULT_CHUNK_SIZE as u64 + peervault_store::crypto::CHUNK_OVERHEAD as u64;
/// Time for a small request (offer, holdings).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// What a request was, for counting its bytes once it succeeds (chunk reads go
/// through [`Context::ask_chunk`], which counts its own).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Asked {
    PutChunk { bytes: usize },
    Other,
}

/// The error of an exchange that did not get the answer it wanted.
pub(crate) fn refused(peer: PeerId, answer: std::result::Result<Response, PeerError>) -> PeerError {
    match answer {
        Ok(response) => PeerError::refusal(peer, response),
        Err(e) => e,
    }
}

impl Context {
    /// Sends a request and decodes the answer.
    pub(crate) async fn ask(
        &self,
        peer: PeerId,
        request: &Request,
        timeout: Duration,
    ) -> std::result::Result<Response, PeerError> {
        let kind = match request {
            Request::PutChunk { blob, .. } => Asked::PutChunk { bytes: blob.len() },
            _ => Asked::Other,
        };
        self.ask_encoded(peer, Bytes::from(request.encode()), kind, timeout)
            .await
    }

    /// [`Context::ask`] with the request already encoded (one encoding can go to
    /// several peers); `kind` says what it was, for the metrics.
    pub(crate) async fn ask_encoded(
        &self,
        peer: PeerId,
        request: Bytes,
        kind: Asked,
        timeout: Duration,
    ) -> std::result::Result<Response, PeerError> {
        self.ask_encoded_timed(peer, request, kind, timeout).await.0
    }

    /// [`Context::ask_encoded`], and how long the exchange took once the
    /// upload limit let it go: what a window is sized from (see
    /// `crate::window`). Timed with the wait for the limit, a limited node's
    /// windows grew without bound and its acknowledged bytes came in bursts
    /// over the limit.
    pub(crate) async fn ask_encoded_timed(
        &self,
        peer: PeerId,
        request: Bytes,
        kind: Asked,
        timeout: Duration,
    ) -> (std::result::Result<Response, PeerError>, Duration) {
        let m = &self.metrics;
        if let Asked::PutChunk { bytes } = kind {
            self.bandwidth.upload.take(bytes as u64).await;
            // Counted as they leave, where the upload limit lets them pass
            // (as a chunk served to a peer is): counted at the acknowledgement,
            // the figure ran ahead of the limit by what was in flight whenever
            // acknowledgements came in a bunch.
            m.bytes_sent.inc_by(bytes as u64);
        }
        let started = std::time::Instant::now();
        // Chunks go on the peer's lane, everything else through request-response.
        let answer = match kind {
            Asked::PutChunk { .. } => self.ask_on_lane(peer, request).await,
            Asked::Other => self.ask_raw(peer, request, timeout).await,
        };
        let answer = answer.and_then(|bytes| {
            Response::decode(&bytes).map_err(|e| PeerError::BadAnswer {
                peer,
                what: e.to_string(),
            })
        });
        let took = started.elapsed();
        if let (Asked::PutChunk { .. }, Ok(Response::Stored)) = (kind, &answer) {
            m.chunk_transfer_duration.observe(took.as_secs_f64());
        }
        (answer, took)
    }

    /// Sends an encoded request; the answer's bytes, undecoded.
    async fn ask_raw(
        &self,
        peer: PeerId,
        request: Bytes,
        timeout: Duration,
    ) -> std::result::Result<Bytes, PeerError> {
        let started = std::time::Instant::now();
        let answer = self.net.request(peer, request, timeout).await;
        let m = &self.metrics;
        m.request_duration.observe(started.elapsed().as_secs_f64());
        answer.map_err(|e| {
            m.peer_request_failures.inc();
            PeerError::from_net(peer, e, timeout)
        })
    }

    /// Sends a chunk request on the lane to `peer` (see [`crate::lanes`]), or
    /// through request-response when no lane can be opened.
    async fn ask_on_lane(
        &self,
        peer: PeerId,
        request: Bytes,
    ) -> std::result::Result<Bytes, PeerError> {
        let started = std::time::Instant::now();
        let net = &self.net;
        let asked = self.lanes.ask(net, peer, request);
        let m = &self.metrics;
        let failed = |why: PeerError| {
            m.peer_request_failures.inc();
            why
        };
        match tokio::time::timeout(CHUNK_TIMEOUT, asked).await {
            Ok(Ok(answer)) => {
                m.request_duration.observe(started.elapsed().as_secs_f64());
                Ok(answer)
            }
            Ok(Err(crate::lanes::LaneError::Unavailable { why, request })) => {
                tracing::debug!("no chunk lane to {peer} ({why}): asking the usual way");
                self.ask_raw(peer, request, CHUNK_TIMEOUT).await
            }
            Ok(Err(crate::lanes::LaneError::Failed(why))) => Err(failed(PeerError::Unreachable {
                peer,
                reason: why.to_string(),
            })),
            Err(_) => Err(failed(PeerError::Timeout {
                peer,
                within: CHUNK_TIMEOUT,
            })),
        }
    }

    /// Asks `peer` for a sealed chunk: `None` if it does not hold it. The blob is
    /// taken out of the answer without copying (reads move most bytes this way).
    pub(crate) async fn ask_chunk(
        &self,
        peer: PeerId,
        id: ChunkId,
    ) -> std::result::Result<Option<BytesMut>, PeerError> {
        self.ask_chunk_timed(peer, id).await.0
    }

    /// [`Context::ask_chunk`], and how long the exchange took once the
    /// download limit let it go (see [`Context::ask_encoded_timed`]).
    pub(crate) async fn ask_chunk_timed(
        &self,
        peer: PeerId,
        id: ChunkId,
    ) -> (std::result::Result<Option<BytesMut>, PeerError>, Duration) {
        // A chunk's worth before asking, settled with the real size after.
        let expected = ESTIMATED_CHUNK_BYTES;
        self.bandwidth.download.take(expected).await;
        let started = std::time::Instant::now();
        let answer = self.chunk_exchange(peer, id, expected, started).await;
        (answer, started.elapsed())
    }

    async fn chunk_exchange(
        &self,
        peer: PeerId,
        id: ChunkId,
        expected: u64,
        started: std::time::Instant,
    ) -> std::result::Result<Option<BytesMut>, PeerError> {
        let request = Bytes::from(Request::GetChunk { id }.encode());
        let answer = self.ask_on_lane(peer, request).await;
        let blob = answer
            .as_ref()
            .ok()
            .and_then(|a| crate::wire::chunk_in_response(a));
        let received = blob.as_ref().map_or(0, |b| b.len() as u64);
        self.bandwidth
            .download
            .settle(received as i64 - expected as i64);
        let answer = answer?;
        if let Some(blob) = blob {
            let m = &self.metrics;
            m.bytes_received.inc_by(blob.len() as u64);
            m.chunk_transfer_duration
                .observe(started.elapsed().as_secs_f64());
            return Ok(Some(crate::wire::take_range(answer, blob)));
        }
        match Response::decode(&answer) {
            Ok(Response::Missing) => Ok(None),
            Ok(other) => Err(PeerError::refusal(peer, other)),
            Err(e) => Err(PeerError::BadAnswer {
                peer,
                what: e.to_string(),
            }),
        }
    }
}
