//! A link with a rate and a delay, as a TCP proxy: what long round trips do
//! to a transfer, on a kernel without `netem`.
//!
//! Each direction of each connection is its own link: a piece read from one
//! side leaves when the link is free (so at most `rate` bytes a second go
//! out) and arrives `delay` later. The link holds at most `rate × delay`
//! bytes (at least 64 KiB), as a real path does: beyond that the proxy
//! stops reading, and TCP's flow control pushes back on the sender. The
//! baseline and the nodes go through the same kind of link, so their ratio
//! says how well a transfer fills the path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

const PIECE: usize = 64 * 1024;

/// A running link in front of `upstream`. Dropping it stops accepting.
pub struct DelayLine {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A link's shape: bytes per second each way, and the one-way delay.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub rate: u64,
    pub delay: Duration,
}

impl Shape {
    /// Bytes the link holds in flight: its bandwidth-delay product.
    fn capacity(&self) -> usize {
        ((self.rate as f64 * self.delay.as_secs_f64()) as usize).max(PIECE)
    }
}

impl DelayLine {
    /// Listens on `listen` and carries connections to `upstream` over a link
    /// of `shape`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        shape: Shape,
    ) -> std::io::Result<DelayLine> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        carry(inbound, outbound, shape).await;
                    }
                });
            }
        });
        Ok(DelayLine { addr, task })
    }
}

async fn carry(inbound: TcpStream, outbound: TcpStream, shape: Shape) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    futures::future::join(
        link(in_read, out_write, shape),
        link(out_read, in_write, shape),
    )
    .await;
}

/// One direction: pieces leave at `rate` and arrive `delay` later.
async fn link(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shape: Shape,
) {
    let room = Arc::new(Semaphore::new(shape.capacity()));
    let (tx, mut rx) =
        mpsc::unbounded_channel::<(Instant, Vec<u8>, tokio::sync::OwnedSemaphorePermit)>();
    let reader = async move {
        let mut free_at = Instant::now();
        loop {
            let Ok(permit) = room.clone().acquire_many_owned(PIECE as u32).await else {
                return;
            };
            let mut piece = vec![0u8; PIECE];
            let n = match from.read(&mut piece).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            piece.truncate(n);
            // Give back the room this piece does not use.
            let mut permit = permit;
            if let Some(spare) = permit.split(PIECE - n) {
                drop(spare);
            }
            let now = Instant::now();
            let leaves = free_at.max(now);
            free_at = leaves + Duration::from_secs_f64(n as f64 / shape.rate as f64);
            if tx.send((free_at + shape.delay, piece, permit)).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, piece, permit)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&piece).await.is_err() {
                return;
            }
            drop(permit);
        }
        let _ = to.shutdown().await;
    };
    futures::future::join(reader, writer).await;
}

/// Seconds to send `bytes` over one plain TCP connection through a link of
/// `shape`, until the receiver has read them all: the baseline.
pub async fn plain_tcp(bytes: u64, shape: Shape) -> std::io::Result<f64> {
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let line = DelayLine::start(SocketAddr::from(([127, 0, 0, 1], 0)), sink_addr, shape).await?;
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = sink.accept().await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                return Ok::<u64, std::io::Error>(got);
            }
            got += n as u64;
        }
    });
    let start = Instant::now();
    let mut socket = TcpStream::connect(line.addr).await?;
    let chunk = vec![7u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        socket.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    socket.shutdown().await?;
    let got = receiver.await.map_err(std::io::Error::other)??;
    if got != bytes {
        return Err(std::io::Error::other(format!(
            "{got} of {bytes} bytes arrived"
        )));
    }
    Ok(start.elapsed().as_secs_f64())
}
