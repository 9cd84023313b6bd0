//! Chunk lanes: one long-lived stream to each peer that chunks go to or come from.
//!
//! Why: through request-response, every 1 MiB chunk opened a yamux substream,
//! negotiated its protocol, armed timers (each wakes a timer thread) and passed
//! through the swarm's event loop on both sides. A profile of a remote get put
//! that per-request work at a sixth of the reader's CPU. A lane is opened once per
//! peer ([`peervault_net::network::CHUNK_PROTOCOL`]): `GetChunk` and `PutChunk`
//! requests go out back to back and the answers come back in the same order, the
//! peer working on up to [`LANE_READS_AHEAD`] requests ahead of the answer it sends.
//!
//! A lane that cannot be opened (a peer without them, a connection that is not
//! up) leaves the chunk to request-response, as before. Streams propose their
//! protocol with their first bytes (lazy negotiation), so a peer without lanes
//! refuses one only when its first requests are out: the small ones
//! (`GetChunk`) are kept until a lane's first answer and come back to go
//! another way, and the peer is asked through request-response for
//! [`LANE_REFUSED_FOR`]. A lane that breaks fails the requests it sent; those
//! queued behind them go through request-response, and the next request opens
//! a new lane. A lane idle for
//! [`LANE_IDLE`] closes, so that it does not keep an unused connection open; one
//! in use tells the network so every [`MARK_USED_EVERY`], since the swarm, which
//! trims connections that carry nothing, does not see the lane's traffic.
//!
//! The serving side treats the stream as hostile like any other input: a request
//! over the message limit or other than `GetChunk` and `PutChunk` closes the lane
//! and counts as an offence, at most [`LANES_PER_PEER`] lanes per peer are served,
//! the requests worked on for all lanes together are bounded by one semaphore, and
//! a lane whose peer takes no answer for [`LANE_SEND_TIMEOUT`] is closed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{AsyncReadExt, StreamExt};
use peervault_net::codec::{MAX_MESSAGE_BYTES, read_message, write_message};
use peervault_net::split_safe::SplitSafe;
use peervault_net::{NetHandle, PeerId, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::conduct::Offence;
use crate::tasks::Tasks;
use crate::wire::ChunkAnswer;
use crate::wire::WireError;

/// Blobs a holder reads ahead of the one it is sending, per lane.
pub const LANE_READS_AHEAD: usize = 4;
/// A lane with no request for this long is closed.
pub const LANE_IDLE: Duration = Duration::from_secs(30);
/// Lanes served to one peer at once.
pub const LANES_PER_PEER: usize = 4;
/// An answer a peer does not take within this long closes its lane, so that a
/// stalled reader cannot hold the work budget all lanes share.
pub const LANE_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Blobs read or stored for all lanes at once (each held until its answer is sent).
const LANE_READS: usize = 32;
/// Requests queued on one lane before askers wait.
const LANE_QUEUE: usize = 64;
/// How long a peer that refused a lane is asked through request-response
/// before a lane is tried again.
pub const LANE_REFUSED_FOR: Duration = Duration::from_secs(300);
/// Requests up to this size are kept until a new lane's first answer, so that
/// they can go another way if the peer refuses the lane: `GetChunk` (an id),
/// not `PutChunk` (a chunk, which must leave memory once written; a write's
/// offer sends again what did not arrive).
const KEPT_UNTIL_ANSWERED: usize = 1024;

type Reply = oneshot::Sender<Result<Bytes, LaneFailure>>;

/// The askers waiting for a lane's answers, in order, each with its request
/// while the lane has not answered yet (see [`KEPT_UNTIL_ANSWERED`]).
type Waiting = Mutex<VecDeque<(Reply, Option<Bytes>)>>;

/// Why a lane gave no answer to one request.
#[derive(Debug, Clone)]
enum LaneFailure {
    /// The lane closed before the request went out: ask another way (here
    /// it is back).
    NotSent(Bytes),
    /// The lane broke after the request went out.
    Broken(String),
    /// The peer refused the lane's protocol: it serves no lanes. The request
    /// comes back if it was kept (see [`KEPT_UNTIL_ANSWERED`]).
    Refused(Option<Bytes>),
}

#[derive(Debug)]
struct Ask {
    request: Bytes,
    reply: Reply,
}

/// The reading side: one lane per peer, opened on first use.
#[derive(Debug)]
pub(crate) struct Lanes {
    open: Mutex<HashMap<PeerId, Slot>>,
    /// Where a lane's tasks run (they stop with the node).
    tasks: Tasks,
}

/// The lane to one peer; locked while a lane is being opened.
type Slot = Arc<tokio::sync::Mutex<LaneSlot>>;

#[derive(Debug, Default)]
struct LaneSlot {
    /// The open lane, if any.
    sender: Option<mpsc::Sender<Ask>>,
    /// When the network was last told the connection is in use.
    marked: Option<Instant>,
    /// When the peer last refused a lane.
    refused: Option<Instant>,
}

/// Why a peer's requests go through request-response after it refused a lane.
const NO_LANES: &str = "the peer serves no chunk lanes";

/// How often a lane in use tells the network that its connection is busy (the
/// network trims connections that carried nothing for 30 s).
const MARK_USED_EVERY: Duration = Duration::from_secs(5);

/// Why a lane did not answer.
#[derive(Debug)]
pub(crate) enum LaneError {
    /// No lane could be opened, or the request did not go out: ask another
    /// way. The request comes back, so that an asker need not keep a copy of
    /// it (and its bytes) until the answer.
    Unavailable { why: String, request: Bytes },
    /// The lane took the request and then broke.
    Failed(String),
}

impl Lanes {
    pub(crate) fn new(tasks: Tasks) -> Self {
        Self {
            open: Mutex::default(),
            tasks,
        }
    }

    /// The slot of the lane to `peer`. A new one first drops the slots that
    /// no longer say anything (no lane open, no refusal remembered, nobody
    /// using them), so that the map holds the peers lanes are in use with,
    /// not every peer this node ever sent a chunk to.
    fn slot(&self, peer: PeerId) -> Slot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = open.get(&peer) {
            return slot.clone();
        }
        open.retain(|_, slot| Arc::strong_count(slot) > 1 || !slot_is_spent(slot));
        open.entry(peer).or_default().clone()
    }

    /// Sends an encoded request on the lane to `peer` (opening one if there is
    /// none) and waits for its answer.
    pub(crate) async fn ask(
        &self,
        net: &NetHandle,
        peer: PeerId,
        request: Bytes,
    ) -> Result<Bytes, LaneError> {
        let slot = self.slot(peer);
        let sender = {
            let mut lane = slot.lock().await;
            if lane
                .refused
                .is_some_and(|at| at.elapsed() < LANE_REFUSED_FOR)
            {
                let why = NO_LANES.to_string();
                return Err(LaneError::Unavailable { why, request });
            }
            let sender = match lane.sender.as_ref().filter(|sender| !sender.is_closed()) {
                Some(sender) => sender.clone(),
                None => {
                    let stream = match net.open_chunk_stream(peer).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            let why = e.to_string();
                            return Err(LaneError::Unavailable { why, request });
                        }
                    };
                    let (sender, asks) = mpsc::channel(LANE_QUEUE);
                    self.tasks.spawn(run_lane(stream, asks, self.tasks.clone()));
                    lane.sender = Some(sender.clone());
                    sender
                }
            };
            if lane.marked.is_none_or(|at| at.elapsed() >= MARK_USED_EVERY) {
                net.mark_used(peer);
                lane.marked = Some(Instant::now());
            }
            sender
        };
        let closed = |request| LaneError::Unavailable {
            why: "the lane had just closed".into(),
            request,
        };
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = sender.send(Ask { request, reply }).await {
            return Err(closed(refused.0.request));
        }
        match answer.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(LaneFailure::NotSent(request))) => Err(closed(request)),
            Ok(Err(LaneFailure::Broken(why))) => Err(LaneError::Failed(why)),
            Ok(Err(LaneFailure::Refused(kept))) => {
                slot.lock().await.refused = Some(Instant::now());
                let why = NO_LANES.to_string();
                Err(match kept {
                    Some(request) => LaneError::Unavailable { why, request },
                    None => LaneError::Failed(why),
                })
            }
            Err(_) => Err(LaneError::Failed("the lane closed".into())),
        }
    }
}

/// Whether a slot nobody holds can go: no lane open and no refusal still
/// remembered (a slot being opened is locked, so it stays).
fn slot_is_spent(slot: &Slot) -> bool {
    let Ok(lane) = slot.try_lock() else {
        return false;
    };
    let open = lane.sender.as_ref().is_some_and(|s| !s.is_closed());
    let refused = lane
        .refused
        .is_some_and(|at| at.elapsed() < LANE_REFUSED_FOR);
    !open && !refused
}

/// Writes requests as they come and reads the answers, matching them in order.
async fn run_lane(stream: SplitSafe<Stream>, mut asks: mpsc::Receiver<Ask>, tasks: Tasks) {
    let (mut reader, mut writer) = stream.split();
    let waiting: Arc<Waiting> = Arc::default();
    let answered = Arc::new(AtomicBool::new(false));
    let answers = {
        let waiting = waiting.clone();
        let answered = answered.clone();
        tasks.spawn_joinable(async move {
            let (why, refused) = loop {
                match read_message(&mut reader, MAX_MESSAGE_BYTES).await {
                    Ok(Some(answer)) => {
                        answered.store(true, Ordering::Relaxed);
                        let reply = waiting
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .pop_front();
                        match reply {
                            // An asker that gave up has dropped its receiver.
                            Some((reply, _)) => drop(reply.send(Ok(Bytes::from(answer)))),
                            None => break ("an answer nobody asked for".to_string(), false),
                        }
                    }
                    Ok(None) => break ("the peer closed the lane".to_string(), false),
                    Err(e) => {
                        let refused = !answered.load(Ordering::Relaxed)
                            && peervault_net::refused_protocol(&e);
                        break (format!("the lane broke: {e}"), refused);
                    }
                }
            };
            for (reply, kept) in waiting.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                let failure = match refused {
                    true => LaneFailure::Refused(kept),
                    false => LaneFailure::Broken(why.clone()),
                };
                let _ = reply.send(Err(failure));
            }
        })
    };
    loop {
        let ask = match tokio::time::timeout(LANE_IDLE, asks.recv()).await {
            Ok(Some(ask)) => ask,
            // Idle, or the node let go of the lane.
            Ok(None) | Err(_) => break,
        };
        if answers.is_finished() {
            let _ = ask.reply.send(Err(LaneFailure::NotSent(ask.request)));
            break;
        }
        let Ask { request, reply } = ask;
        let kept = (!answered.load(Ordering::Relaxed) && request.len() <= KEPT_UNTIL_ANSWERED)
            .then(|| request.clone());
        waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((reply, kept));
        // The request's bytes go as soon as they are written (see `Unsent`
        // in crate::window): only the answer is waited for.
        let written = write_message(&mut writer, &request).await;
        drop(request);
        if let Err(e) = written {
            tracing::debug!("a chunk lane broke while sending: {e}");
            break;
        }
    }
    asks.close();
    // Requests queued behind the end were never sent: their askers go elsewhere.
    while let Ok(ask) = asks.try_recv() {
        let _ = ask.reply.send(Err(LaneFailure::NotSent(ask.request)));
    }
    // Answers still owed arrive before the reader sees the end of the stream.
    let _ = futures::AsyncWriteExt::close(&mut writer).await;
    let _ = answers.await;
}

/// What answers the requests that arrive on lanes: the node's responder (see
/// `crate::service`). A trait, so that lanes need not know the node's
/// components, which hold the lanes.
pub(crate) trait ChunkServer: Clone + Send + Sync + 'static {
    /// Answers a chunk request, or says what else it was.
    fn answer_chunk_request(
        &self,
        peer: PeerId,
        request: Bytes,
    ) -> impl std::future::Future<Output = ChunkAnswer> + Send;
    /// Counts an offence of `peer` (see [`crate::conduct`]).
    fn offence(
        &self,
        peer: PeerId,
        offence: Offence,
        what: &str,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Runs `work` until it ends or the node stops.
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static);
}

/// The holder's side: serves the lanes peers open to this node.
pub(crate) async fn serve(node: impl ChunkServer, mut incoming: peervault_net::IncomingStreams) {
    let reads = Arc::new(Semaphore::new(LANE_READS));
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    while let Some((peer, stream)) = incoming.next().await {
        {
            let mut counts = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(peer).or_default();
            if *count >= LANES_PER_PEER {
                tracing::debug!("refused a chunk lane from {peer}: {LANES_PER_PEER} are open");
                continue;
            }
            *count += 1;
        }
        let (lane_node, reads, per_peer) = (node.clone(), reads.clone(), per_peer.clone());
        node.spawn(async move {
            serve_lane(&lane_node, peer, stream, reads).await;
            let mut counts = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = counts.get_mut(&peer) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&peer);
                }
            }
        });
    }
}

/// Why a served lane ends early: what the peer sent that no honest node sends
/// (each is an offence), or the node stopping.
#[derive(Debug, thiserror::Error)]
enum LaneOffence {
    #[error("an oversized request ({0})")]
    Oversized(String),
    #[error("a request other than GetChunk or PutChunk")]
    NotAChunkRequest,
    #[error("an undecodable request ({0})")]
    Undecodable(WireError),
    #[error("the node is stopping")]
    ShuttingDown,
}

/// Answers the requests of one lane in order, reading ahead.
async fn serve_lane(node: &impl ChunkServer, peer: PeerId, stream: Stream, reads: Arc<Semaphore>) {
    let (reader, mut writer) = stream.split();
    // Ends at the end of the stream or at its first error; an oversized request
    // is an offence, a broken connection is not.
    let requests = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match read_message(&mut reader, MAX_MESSAGE_BYTES).await {
            Ok(Some(request)) => Some((Ok(request), Some(reader))),
            Ok(None) => None,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Some((Err(LaneOffence::Oversized(e.to_string())), None))
            }
            Err(e) => {
                tracing::debug!("a chunk lane from {peer} broke: {e}");
                None
            }
        }
    });
    let answers = requests
        .map(|request| {
            let reads = reads.clone();
            async move {
                let request = Bytes::from(request?);
                // The semaphore is never closed; were it, the lane would end.
                let permit: OwnedSemaphorePermit = reads
                    .acquire_owned()
                    .await
                    .map_err(|_| LaneOffence::ShuttingDown)?;
                match node.answer_chunk_request(peer, request).await {
                    ChunkAnswer::Answered(answer) => Ok((answer, permit)),
                    ChunkAnswer::Other(_) => Err(LaneOffence::NotAChunkRequest),
                    ChunkAnswer::Undecodable(e) => Err(LaneOffence::Undecodable(e)),
                }
            }
        })
        .buffered(LANE_READS_AHEAD);
    let mut answers = std::pin::pin!(answers);
    while let Some(answer) = answers.next().await {
        match answer {
            Ok((answer, _permit)) => {
                let sending = write_message(&mut writer, &answer);
                match tokio::time::timeout(LANE_SEND_TIMEOUT, sending).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!("a chunk lane to {peer} broke while sending: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(
                            "closed a chunk lane to {peer}: it took no answer for {} s",
                            LANE_SEND_TIMEOUT.as_secs()
                        );
                        return;
                    }
                }
            }
            Err(LaneOffence::ShuttingDown) => return,
            Err(why) => {
                node.offence(peer, Offence::Malformed, &format!("{why} on a chunk lane"))
                    .await;
                return;
            }
        }
    }
    // The peer closed its side and every answer went out: close ours.
    let _ = tokio::time::timeout(
        LANE_SEND_TIMEOUT,
        futures::AsyncWriteExt::close(&mut writer),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_of_peers_without_a_lane_are_dropped() {
        let lanes = Lanes::new(Tasks::default());
        let refusing = PeerId::random();
        lanes.slot(refusing).lock().await.refused = Some(Instant::now());
        let (sender, _asks) = mpsc::channel(1);
        let with_lane = PeerId::random();
        lanes.slot(with_lane).lock().await.sender = Some(sender);
        let held = lanes.slot(PeerId::random());
        for _ in 0..100 {
            lanes.slot(PeerId::random());
        }
        let open = lanes.open.lock().unwrap();
        // The refusal, the open lane, the slot still held, and the last one.
        assert_eq!(open.len(), 4, "{:?}", open.keys().collect::<Vec<_>>());
        assert!(open.contains_key(&refusing) && open.contains_key(&with_lane));
        drop(held);
    }
}
