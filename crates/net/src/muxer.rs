//! Yamux as the swarm's stream multiplexer, configured for chunk traffic.
//!
//! Why not `libp2p::yamux`: it offers no way to set Yamux's split-send size, the
//! largest data frame a stream write becomes, and its default (16 KiB) turns each
//! 1 MiB chunk into 64 frames, each a fresh allocation and copy of its bytes, a
//! message to the connection task and a frame header on both sides. Frames of
//! [`FRAME_BYTES`] cut that sixteenfold: measured on the development VM, the CPU
//! of a 1 GiB remote get across all four nodes fell by 15% (250 to 212 jiffies,
//! eight alternating runs, every one lower) and its time by 5%.
//!
//! The price is head-of-line blocking: a small message on another stream may wait
//! behind one frame. 256 KiB is 0.2 ms at loopback speeds and ~20 ms on a 100 Mbit/s
//! link, below the request timeouts by orders of magnitude. The wire format is
//! Yamux's own, so peers with other frame sizes interoperate.
//!
//! The rest mirrors what `libp2p::yamux` does for the swarm: inbound streams that
//! arrive while the swarm polls the connection are buffered (up to
//! [`MAX_BUFFERED_INBOUND`], the backlog at which well-behaved peers stop opening
//! more) until it asks for them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::Endpoint;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// Largest data frame one stream write becomes.
pub const FRAME_BYTES: usize = 256 * 1024;

/// The path rate, in bytes a second (1 Gbit/s), that stream windows are sized
/// for: the fastest link nodes commonly share. A stream's receive window, once
/// its reader keeps up, covers a round trip at this rate (the node's transfer
/// windows are sized alike). On a slower path the surplus window is credit the
/// sender cannot use, never memory.
pub const PATH_RATE: u64 = 125_000_000;

/// Inbound streams held for the swarm before new ones are refused.
const MAX_BUFFERED_INBOUND: usize = 256;

/// Streams open at once on one connection (Yamux's default is 512). A node
/// uses a few dozen: four chunk lanes each way, up to 64 requests at once
/// (request-response's limit, set in `network`), and the swarm's own protocols.
pub const MAX_STREAMS: usize = 256;

/// What a peer may make one connection buffer, across all its streams
/// (Yamux's default is 1 GiB). Each stream is always allowed Yamux's first
/// window (256 KiB, 64 MiB for [`MAX_STREAMS`]); the rest is what windows
/// grown for fast readers share: two lanes at 200 ms and [`PATH_RATE`] take
/// 100 MB of it. A peer that fills windows faster than the node stores makes
/// it hold at most this much (see SECURITY.md).
pub const MAX_CONNECTION_BUFFER: usize = 256 * 1024 * 1024;

/// The multiplexer's configuration: Yamux's defaults but for the frame size,
/// the limits on streams and on what they buffer, the stream window rate,
/// and the round trip `initial_rtt` that the connection's handshake measured
/// (Yamux's own ping answers a round trip later; until then no window could
/// grow).
///
/// Why the rate: Yamux doubles a stream's window from 256 KiB once a round
/// trip, so the first transfer on a new connection across 200 ms spent seven
/// round trips below the path's rate (the first put ran at 0.52 of plain TCP
/// through the same path, 0.81 once windows had grown; `peervault-bench rtt`).
/// The workspace's patched Yamux (`vendor/yamux/PATCHED.md`) grows a window at
/// once to the round trip at [`PATH_RATE`] instead, under the same condition
/// (the reader keeps up) and the same connection limit.
pub fn config(initial_rtt: Option<Duration>) -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_split_send_size(FRAME_BYTES);
    config.set_max_connection_receive_window(Some(MAX_CONNECTION_BUFFER));
    config.set_max_num_streams(MAX_STREAMS);
    config.set_stream_window_rate(Some(PATH_RATE));
    config.set_initial_rtt(initial_rtt);
    config
}

/// One multiplexed connection.
#[derive(Debug)]
pub struct Muxer<C> {
    connection: yamux::Connection<C>,
    inbound: VecDeque<yamux::Stream>,
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Multiplexes `io`; `role` says which side proposed Yamux (the dialer);
    /// `rtt` is the round trip the connection's handshake measured.
    pub fn new(io: C, role: Endpoint, rtt: Option<Duration>) -> Self {
        let mode = match role {
            Endpoint::Dialer => yamux::Mode::Client,
            Endpoint::Listener => yamux::Mode::Server,
        };
        Self {
            connection: yamux::Connection::new(io, config(rtt), mode),
            inbound: VecDeque::new(),
            inbound_waker: None,
        }
    }

    fn poll_next_inbound(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<yamux::Stream, yamux::ConnectionError>> {
        match ready!(self.connection.poll_next_inbound(cx)) {
            Some(stream) => Poll::Ready(stream),
            None => Poll::Ready(Err(yamux::ConnectionError::Closed)),
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        if let Some(stream) = self.inbound.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        if let Poll::Ready(next) = self.poll_next_inbound(cx) {
            return Poll::Ready(next);
        }
        self.inbound_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.connection.poll_new_outbound(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = ready!(this.poll_next_inbound(cx))?;
        if this.inbound.len() >= MAX_BUFFERED_INBOUND {
            tracing::debug!("refused an inbound stream: {MAX_BUFFERED_INBOUND} are waiting");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(waker) = this.inbound_waker.take() {
                waker.wake();
            }
        }
        // Polling the connection again at once lets it make further progress.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt, future::poll_fn};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    #[tokio::test]
    async fn streams_carry_large_writes_both_ways_intact() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut dialer = Muxer::new(a.compat(), Endpoint::Dialer, None);
        let mut listener = Muxer::new(b.compat(), Endpoint::Listener, None);
        let big: Vec<u8> = (0..3 * FRAME_BYTES + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let (expected, len) = (big.clone(), big.len());
        let listening = tokio::spawn(async move {
            let mut stream = poll_fn(|cx| Pin::new(&mut listener).poll_inbound(cx))
                .await
                .unwrap();
            let reading = async {
                let mut got = vec![0; len];
                stream.read_exact(&mut got).await.unwrap();
                stream.write_all(b"thanks").await.unwrap();
                stream.close().await.unwrap();
                got
            };
            let mut reading = std::pin::pin!(reading);
            let mut got = None;
            // The connection makes progress only while polled, until the dialer
            // goes away.
            loop {
                tokio::select! {
                    bytes = &mut reading, if got.is_none() => got = Some(bytes),
                    _ = poll_fn(|cx| Pin::new(&mut listener).poll(cx)) => break,
                }
            }
            assert!(got == Some(expected), "the bytes changed on the way");
        });
        let mut stream = poll_fn(|cx| Pin::new(&mut dialer).poll_outbound(cx))
            .await
            .unwrap();
        let talking = async {
            stream.write_all(&big).await.unwrap();
            stream.flush().await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            answer
        };
        let driving = poll_fn(|cx| Pin::new(&mut dialer).poll(cx));
        let answer = tokio::select! {
            answer = talking => answer,
            _ = driving => panic!("the dialer's connection ended"),
        };
        assert_eq!(answer, b"thanks");
        drop((stream, dialer));
        listening.await.unwrap();
    }
}
