//! How much a transfer keeps in flight to (or from) one peer.
//!
//! Why: a transfer that waits for answers moves at most its window per round
//! trip. A fixed window of three chunks capped a put across 100 ms at ~15 MB/s
//! and one across 200 ms at half that, on a path that carries 110 MB/s
//! (`peervault-bench rtt`). So a window covers the path's round trip at
//! [`PATH_RATE`], plus [`MIN_WINDOW`] chunks for the paths whose round trip is
//! negligible (loopback, a LAN), as far as the node's memory budget allows.
//!
//! **Which round trip.** The network's ping measures each peer's every few
//! seconds, but a transfer that starts as a connection is made (a node that has
//! just joined, a reader that dialled a holder) has none yet. So every
//! transfer also times its own exchanges, request to answer, and uses the
//! shortest it has seen while the ping has none: it includes the time to carry
//! one chunk, so it overstates the round trip on slow links, where a larger
//! window costs only queueing in socket buffers, never bytes of the budget
//! beyond the cap. A window therefore grows during a transfer, from its first
//! answer on, instead of being fixed at its start.
//!
//! **In flight is not in memory.** A window counts what is unanswered, most
//! of which is on the path (in socket buffers, on the wire). What waits to
//! be written, because the multiplexer's flow-control window is still
//! growing at the start of a stream, is in this node's memory: [`Unsent`]
//! bounds that, separately from the window.
//!
//! **Why a fixed path rate.** The window is sized for 1 Gbit/s, the fastest
//! link nodes commonly share; on a slower path the surplus waits in the
//! sender's socket buffer, which the kernel bounds. Measuring each peer's rate
//! would shrink that surplus, not speed anything up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peervault_net::PeerId;
use peervault_store::DEFAULT_CHUNK_SIZE;

/// The path rate a window is sized for, in bytes a second (1 Gbit/s): the
/// multiplexer's, so that a stream's flow-control window grows to what the
/// transfer keeps in flight.
pub(crate) const PATH_RATE: f64 = peervault_net::muxer::PATH_RATE as f64;

/// Fewest chunks in flight to one peer: what loopback and LAN paths need
/// (measured there before windows were sized: 3 per peer for streaming).
pub(crate) const MIN_WINDOW: usize = 3;

/// The average length of a chunk: content-defined chunks are half the chunk
/// size on average (see the store's `Chunker`).
const AVERAGE_CHUNK: u64 = DEFAULT_CHUNK_SIZE as u64 / 2;

/// Bytes to keep in flight across a path whose round trip is `rtt`, under a
/// transfer memory budget of `budget` bytes: the round trip's worth at
/// [`PATH_RATE`] and [`MIN_WINDOW`] full chunks, at most half the budget.
pub(crate) fn window_bytes(rtt: Option<Duration>, budget: u64) -> u64 {
    let least = MIN_WINDOW as u64 * u64::from(DEFAULT_CHUNK_SIZE);
    let path = rtt.map_or(0, |rtt| (rtt.as_secs_f64() * PATH_RATE) as u64);
    (least + path).min((budget / 2).max(least))
}

/// The same window in chunks of the average length (at least [`MIN_WINDOW`]).
pub(crate) fn chunk_window(rtt: Option<Duration>, budget: u64) -> usize {
    ((window_bytes(rtt, budget) / AVERAGE_CHUNK) as usize).max(MIN_WINDOW)
}

/// How often a transfer whose path has no ping yet asks the network again.
pub(crate) const PING_AGAIN: Duration = Duration::from_millis(250);

/// Bytes of a transfer to one peer that may wait in this node's memory to be
/// written to its stream. Measured without it: while a stream's window was
/// still growing, a put across 100 ms held a whole window of chunks (up to
/// half the budget) in the writer, which peaked at 70 MiB.
pub(crate) const UNSENT_BYTES: usize = 4 << 20;

/// What of a transfer waits to be written (see [`UNSENT_BYTES`]).
#[derive(Debug, Clone)]
pub(crate) struct Unsent(Arc<tokio::sync::Semaphore>);

impl Unsent {
    pub(crate) fn new() -> Unsent {
        Unsent(Arc::new(tokio::sync::Semaphore::new(UNSENT_BYTES)))
    }

    /// Waits for room for one more message (of at most a chunk's size), to
    /// be taken before the message is: cancelling the wait loses nothing.
    pub(crate) async fn room(&self) -> Room {
        let most = (DEFAULT_CHUNK_SIZE as usize + CHUNK_MESSAGE_OVERHEAD).min(UNSENT_BYTES);
        // Never closed; were it, nothing would be bounded, nothing lost.
        Room(self.0.clone().acquire_many_owned(most as u32).await.ok())
    }
}

/// Room for one message not yet written (see [`Unsent::room`]).
#[derive(Debug)]
pub(crate) struct Room(Option<tokio::sync::OwnedSemaphorePermit>);

impl Room {
    /// Ties the room `message` takes to it (the rest is given back at once):
    /// the room is given back when the last clone of the result is dropped,
    /// which the chunk lane does once it has written the message.
    pub(crate) fn hold(self, message: Bytes) -> Bytes {
        let Some(mut room) = self.0 else {
            return message;
        };
        let share = message.len().clamp(1, room.num_permits());
        let Some(taken) = room.split(share) else {
            return message;
        };
        drop(room);
        Bytes::from_owner(Held {
            message,
            _room: taken,
        })
    }
}

/// What a chunk's message carries besides the blob: its request header.
const CHUNK_MESSAGE_OVERHEAD: usize = 4096;

/// A message and the room it takes (see [`Unsent::hold`]).
struct Held {
    message: Bytes,
    _room: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.message
    }
}

/// One peer's path as a transfer sees it: the ping's round trip, if the
/// network has one, and the shortest exchange the transfer has timed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerPath {
    ping: Option<Duration>,
    seen: Option<Duration>,
    budget: u64,
}

impl PeerPath {
    /// A path whose last ping took `ping`, for a node whose transfer memory
    /// budget is `budget` bytes.
    pub(crate) fn new(ping: Option<Duration>, budget: u64) -> PeerPath {
        PeerPath {
            ping,
            seen: None,
            budget,
        }
    }

    /// Whether the network's ping has measured the path.
    pub(crate) fn pinged(&self) -> bool {
        self.ping.is_some()
    }

    /// The network's ping measured `ping` (see [`crate::context::Context::ping_of`]).
    pub(crate) fn pinged_at(&mut self, ping: Option<Duration>) {
        self.ping = ping.or(self.ping);
    }

    /// One exchange with the peer, request to answer, took `took`.
    pub(crate) fn observe(&mut self, took: Duration) {
        self.seen = Some(self.seen.map_or(took, |seen| seen.min(took)));
    }

    /// The round trip windows are sized from: the ping's, else the shortest
    /// exchange timed.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.ping.or(self.seen)
    }

    /// Bytes to keep in flight (see [`window_bytes`]).
    pub(crate) fn bytes(&self) -> u64 {
        window_bytes(self.rtt(), self.budget)
    }

    /// Chunks to keep in flight (see [`chunk_window`]).
    pub(crate) fn chunks(&self) -> usize {
        chunk_window(self.rtt(), self.budget)
    }
}

/// The paths to the peers a read spreads over, shared by its fetches: the
/// read keeps all their windows' chunks in flight.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerPaths(Arc<Mutex<HashMap<PeerId, PeerPath>>>);

impl PeerPaths {
    pub(crate) fn new(paths: impl IntoIterator<Item = (PeerId, PeerPath)>) -> PeerPaths {
        PeerPaths(Arc::new(Mutex::new(paths.into_iter().collect())))
    }

    /// An exchange with `peer` took `took` (peers the read does not spread
    /// over are not counted).
    pub(crate) fn observe(&self, peer: PeerId, took: Duration) {
        let mut paths = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = paths.get_mut(&peer) {
            path.observe(took);
        }
    }

    /// Chunks to keep in flight: every path's window together.
    pub(crate) fn chunks(&self) -> usize {
        let paths = self.0.lock().unwrap_or_else(|p| p.into_inner());
        paths.values().map(PeerPath::chunks).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const BUDGET: u64 = 64 * MIB;

    #[test]
    fn a_negligible_round_trip_keeps_the_minimum() {
        assert_eq!(window_bytes(None, BUDGET), 3 * MIB);
        assert_eq!(
            window_bytes(Some(Duration::from_micros(200)), BUDGET),
            3 * MIB + 25_000
        );
        assert_eq!(chunk_window(None, BUDGET), 6);
    }

    #[test]
    fn a_long_round_trip_covers_the_path_up_to_half_the_budget() {
        let at_100ms = window_bytes(Some(Duration::from_millis(100)), BUDGET);
        assert_eq!(at_100ms, 3 * MIB + 12_500_000);
        assert_eq!(
            window_bytes(Some(Duration::from_millis(200)), BUDGET),
            3 * MIB + 25_000_000
        );
        assert_eq!(window_bytes(Some(Duration::from_secs(2)), BUDGET), 32 * MIB);
        // A tiny budget still leaves the minimum.
        assert_eq!(window_bytes(Some(Duration::from_secs(2)), 2 * MIB), 3 * MIB);
    }

    #[test]
    fn a_transfer_without_a_ping_learns_from_its_own_exchanges() {
        let mut path = PeerPath::new(None, BUDGET);
        assert_eq!(path.rtt(), None);
        path.observe(Duration::from_millis(180));
        path.observe(Duration::from_millis(110));
        path.observe(Duration::from_millis(300));
        assert_eq!(path.rtt(), Some(Duration::from_millis(110)));
        assert!(path.bytes() > window_bytes(None, BUDGET));
        // A ping, once there is one, is the better measure.
        let mut pinged = PeerPath::new(Some(Duration::from_millis(100)), BUDGET);
        pinged.observe(Duration::from_millis(110));
        assert_eq!(pinged.rtt(), Some(Duration::from_millis(100)));
    }

    #[tokio::test]
    async fn unsent_bytes_wait_until_the_held_ones_are_written() {
        let unsent = Unsent::new();
        let chunk = DEFAULT_CHUNK_SIZE as usize;
        let mut held = Vec::new();
        for _ in 0..UNSENT_BYTES / (chunk + CHUNK_MESSAGE_OVERHEAD) {
            let message = Bytes::from(vec![7u8; chunk]);
            held.push(unsent.room().await.hold(message));
        }
        let first = held.pop().expect("room for one");
        let small = Bytes::from_static(b"0123456789abcdef");
        let waiting = tokio::spawn({
            let unsent = unsent.clone();
            async move { unsent.room().await.hold(small) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "no room while the first is held");
        let clone = first.clone();
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a clone still holds the room");
        drop(clone);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("room once written")
            .expect("no panic");
        assert_eq!(&second[..], b"0123456789abcdef");
    }

    #[test]
    fn a_read_keeps_every_path_full() {
        let (near, far, other) = (PeerId::random(), PeerId::random(), PeerId::random());
        let paths = PeerPaths::new([
            (near, PeerPath::new(None, BUDGET)),
            (far, PeerPath::new(None, BUDGET)),
        ]);
        assert_eq!(paths.chunks(), 12);
        paths.observe(far, Duration::from_millis(100));
        paths.observe(other, Duration::from_secs(1));
        let far_window = chunk_window(Some(Duration::from_millis(100)), BUDGET);
        assert_eq!(paths.chunks(), 6 + far_window);
    }
}
