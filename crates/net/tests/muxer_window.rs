//! The multiplexer's stream windows across a long round trip.
//!
//! Why: Yamux starts every stream's receive window at 256 KiB and doubles it
//! once a round trip, so the first transfer on a new connection across 100 ms
//! spends about six round trips below a 1 Gbit/s path. PeerVault's Yamux
//! (`vendor/yamux/PATCHED.md`) grows a window at once to the round trip at
//! `PATH_RATE`. These tests carry one stream across a link that delays each
//! direction by 50 ms, read the receiver's window updates off the link, and
//! count how much data had arrived when the credit it had granted first covered
//! the round trip. They count bytes, not time, so a slow machine does not fail
//! them; a control run with Yamux's own growth shows that they can fail.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use peervault_net::muxer::{self, PATH_RATE};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Each direction's delay: a 100 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(50);

/// What the stream carries.
const SENT: usize = 16 << 20;

/// Yamux's initial stream window, which the sender may use before any update.
const INITIAL_WINDOW: u64 = yamux::DEFAULT_CREDIT as u64;

/// Yamux's frame header: version, type, flags, stream id, length.
const HEADER: usize = 12;
const TYPE_DATA: u8 = 0;
const TYPE_WINDOW_UPDATE: u8 = 1;

/// What the link saw, shared by its two directions.
#[derive(Debug, Default)]
struct Seen {
    /// Bytes delivered towards the receiver (frames and headers).
    delivered: u64,
    /// Credit the receiver has granted on its stream, the initial window included.
    granted: u64,
    /// `delivered` when `granted` first reached the goal.
    delivered_at_goal: Option<u64>,
    /// Bytes from the receiver not yet parsed into frames.
    partial: Vec<u8>,
}

impl Seen {
    /// Parses the receiver's frames, adding up the credit of its window updates.
    fn parse_updates(&mut self, bytes: &[u8], goal: u64) {
        self.partial.extend_from_slice(bytes);
        let mut at = 0;
        while self.partial.len() - at >= HEADER {
            let header = &self.partial[at..at + HEADER];
            let kind = header[1];
            let stream = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let length = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
            let payload = if kind == TYPE_DATA {
                length as usize
            } else {
                0
            };
            if self.partial.len() - at < HEADER + payload {
                break;
            }
            if kind == TYPE_WINDOW_UPDATE && stream != 0 {
                if self.granted == 0 {
                    self.granted = INITIAL_WINDOW;
                }
                self.granted += u64::from(length);
                if self.granted >= goal && self.delivered_at_goal.is_none() {
                    self.delivered_at_goal = Some(self.delivered);
                }
            }
            at += HEADER + payload;
        }
        self.partial.drain(..at);
    }
}

/// Carries bytes from `from` to `to` [`ONE_WAY`] later, telling `seen` of them.
async fn delay<R, W>(
    mut from: R,
    mut to: W,
    seen: Arc<Mutex<Seen>>,
    towards_sender: bool,
    goal: u64,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if queue
                        .send((Instant::now() + ONE_WAY, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    while let Some((at, bytes)) = due.recv().await {
        tokio::time::sleep_until(at).await;
        {
            let mut seen = seen.lock().expect("link state");
            if towards_sender {
                seen.parse_updates(&bytes, goal);
            } else {
                seen.delivered += bytes.len() as u64;
            }
        }
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

/// Sends [`SENT`] bytes on one stream across the delaying link with `config`
/// on both ends, and returns the bytes delivered by the time the receiver's
/// credit first covered `goal` bytes (`None` if it never did).
async fn delivered_before_credit_covers(config: yamux::Config, goal: u64) -> Option<u64> {
    let (sender_io, sender_link) = tokio::io::duplex(1 << 20);
    let (receiver_link, receiver_io) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (sender_link_read, sender_link_write) = tokio::io::split(sender_link);
    let (receiver_link_read, receiver_link_write) = tokio::io::split(receiver_link);
    let forward = tokio::spawn(delay(
        sender_link_read,
        receiver_link_write,
        seen.clone(),
        false,
        goal,
    ));
    let back = tokio::spawn(delay(
        receiver_link_read,
        sender_link_write,
        seen.clone(),
        true,
        goal,
    ));

    let receiver = tokio::spawn({
        let config = config.clone();
        async move {
            let mut connection =
                yamux::Connection::new(receiver_io.compat(), config, yamux::Mode::Server);
            let mut stream = poll_fn(|cx| connection.poll_next_inbound(cx))
                .await
                .expect("an inbound stream")
                .expect("a stream, not an error");
            let driver = tokio::spawn(async move {
                while let Some(Ok(_)) = poll_fn(|cx| connection.poll_next_inbound(cx)).await {}
            });
            let mut received = 0usize;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match stream.read(&mut buf).await.expect("the stream reads") {
                    0 => break,
                    n => received += n,
                }
            }
            driver.abort();
            received
        }
    });

    let mut connection = yamux::Connection::new(sender_io.compat(), config, yamux::Mode::Client);
    let mut stream = poll_fn(|cx| connection.poll_new_outbound(cx))
        .await
        .expect("an outbound stream");
    let driver = tokio::spawn(async move {
        while let Some(Ok(_)) = poll_fn(|cx| connection.poll_next_inbound(cx)).await {}
    });
    let data = vec![7u8; SENT];
    stream.write_all(&data).await.expect("the stream writes");
    stream.close().await.expect("the stream closes");

    let received = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .expect("16 MiB cross the link within a minute")
        .expect("the receiver does not panic");
    assert_eq!(received, SENT, "the receiver got every byte");
    driver.abort();
    forward.abort();
    back.abort();
    seen.lock().expect("link state").delivered_at_goal
}

/// The credit that covers most of the round trip at the path rate.
fn goal() -> u64 {
    let round_trip = 2 * ONE_WAY;
    (round_trip.as_secs_f64() * PATH_RATE as f64 * 0.8) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_streams_window_covers_the_round_trip_after_its_first_growth() {
    let delivered = delivered_before_credit_covers(muxer::config(None), goal()).await;
    let delivered = delivered.expect("the receiver's credit covers the round trip");
    // The first update may go before the connection's round trip is measured
    // (it grants 256 KiB more, without growth); the next one grows.
    assert!(
        delivered <= 2 << 20,
        "the window covered {} bytes only after {delivered} bytes had arrived",
        goal()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_handshakes_round_trip_the_very_first_update_grows_the_window() {
    // The connection's handshake measured the round trip, so the receiver
    // need not wait for Yamux's own ping: its first update (once half the
    // initial window is read) already covers the round trip.
    let config = muxer::config(Some(2 * ONE_WAY));
    let delivered = delivered_before_credit_covers(config, goal()).await;
    let delivered = delivered.expect("the receiver's credit covers the round trip");
    assert!(
        delivered <= INITIAL_WINDOW + 4096,
        "the window covered {} bytes only after {delivered} bytes had arrived",
        goal()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_rate_the_window_only_doubles_a_round_trip() {
    // The control: Yamux's own growth needs several round trips, so the test
    // above would fail without the patch.
    let mut config = yamux::Config::default();
    config.set_split_send_size(muxer::FRAME_BYTES);
    let delivered = delivered_before_credit_covers(config, goal()).await;
    assert!(
        delivered.is_none_or(|delivered| delivered > 2 << 20),
        "doubling alone covered the round trip after {delivered:?} bytes"
    );
}
