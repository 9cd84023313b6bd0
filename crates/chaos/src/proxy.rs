//! A TCP proxy in front of a node that misbehaves on command.
//!
//! Every node of a chaos cluster announces only its proxy's address
//! (`--advertise --advertise-only`), so every connection to it passes through the
//! proxy, whoever dials. The proxy knows who is dialling from the source port: a
//! libp2p node dials from its own listen port (port reuse), which the cluster
//! registers here. That is what lets it cut one pair of nodes apart.
//!
//! Faults apply to every connection through this proxy, current and new:
//! * `Delay(d)`: each piece of data waits `d` before it is passed on;
//! * `Drop`: data is read and thrown away (a black hole: writes succeed, nothing
//!   arrives, nothing comes back);
//! * `Stall`: nothing is read any more (the peers' buffers fill and their writes
//!   block);
//! * `Reset`: connections are closed with a TCP reset, new ones too.
//!
//! Partitions are separate: a cut between this node and another resets their
//! connections and refuses new ones, in both directions (the other node's proxy
//! holds the same cut).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Drop,
    Stall,
    Reset,
}

/// Which node a connection comes from, by the port it dials from.
#[derive(Debug, Default)]
struct Sources {
    by_port: HashMap<u16, usize>,
    /// Nodes this proxy's node is cut from.
    cut: HashSet<usize>,
}

/// A running proxy. Dropping it stops accepting; connections end with it.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped whenever the cut set changes, so connections re-check.
    epoch: watch::Sender<u64>,
    sources: Arc<Mutex<Sources>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BUF: usize = 64 * 1024;

impl FaultProxy {
    /// Listens on `listen` and forwards to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::Pass);
        let (epoch, _) = watch::channel(0u64);
        let sources = Arc::new(Mutex::new(Sources::default()));
        let (fault_rx, epoch_rx, shared) = (fault.subscribe(), epoch.subscribe(), sources.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, from)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let source = shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .by_port
                    .get(&from.port())
                    .copied();
                tokio::spawn(carry(
                    inbound,
                    upstream,
                    source,
                    fault_rx.clone(),
                    epoch_rx.clone(),
                    shared.clone(),
                ));
            }
        });
        Ok(Self {
            addr,
            fault,
            epoch,
            sources,
            task,
        })
    }

    /// Node `node` dials from `port`.
    pub fn register(&self, port: u16, node: usize) {
        self.lock().by_port.insert(port, node);
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Cuts this proxy's node from `nodes` (replacing any earlier cut).
    pub fn cut(&self, nodes: &[usize]) {
        self.lock().cut = nodes.iter().copied().collect();
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Heals every fault and cut.
    pub fn heal(&self) {
        self.set(Fault::Pass);
        self.cut(&[]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a connection from `source` may pass: a known source must not be cut;
/// an unknown one (a dial that could not reuse its port) passes only while this
/// node is cut from nobody.
fn allowed(sources: &Mutex<Sources>, source: Option<usize>) -> bool {
    let s = sources.lock().unwrap_or_else(|p| p.into_inner());
    match source {
        Some(node) => !s.cut.contains(&node),
        None => s.cut.is_empty(),
    }
}

/// Closes `socket` with a reset rather than an orderly close.
// A zero linger (unlike a positive one, which tokio deprecates) never blocks: the
// drop sends the reset at once.
#[allow(deprecated)]
fn reset(socket: TcpStream) {
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

async fn carry(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    source: Option<usize>,
    fault: watch::Receiver<Fault>,
    mut epoch: watch::Receiver<u64>,
    sources: Arc<Mutex<Sources>>,
) {
    if *fault.borrow() == Fault::Reset || !allowed(&sources, source) {
        return reset(inbound);
    }
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return reset(inbound);
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let cut_off = {
        let (mut in_read, mut in_write) = inbound.split();
        let (mut out_read, mut out_write) = outbound.split();
        let up = pump(&mut in_read, &mut out_write, fault.clone());
        let down = pump(&mut out_read, &mut in_write, fault.clone());
        let mut fault_changes = fault.clone();
        let watchdog = async {
            loop {
                tokio::select! {
                    changed = fault_changes.changed() => {
                        if changed.is_err() || *fault_changes.borrow() == Fault::Reset {
                            return;
                        }
                    }
                    changed = epoch.changed() => {
                        if changed.is_err() || !allowed(&sources, source) {
                            return;
                        }
                    }
                }
            }
        };
        tokio::select! {
            (a, b) = futures::future::join(up, down) => !(a && b),
            () = watchdog => true,
        }
    };
    if cut_off {
        // A reset, a cut or an error: both peers see the connection torn down.
        reset(inbound);
        reset(outbound);
    }
}

/// Copies one direction, applying the current fault to each piece. True if the
/// reader ended normally (the end is passed on), false on an error or a reset.
async fn pump<R, W>(from: &mut R, to: &mut W, mut fault: watch::Receiver<Fault>) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        // While stalled, read nothing: wait for the fault to change.
        while *fault.borrow() == Fault::Stall {
            if fault.changed().await.is_err() {
                return false;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return true;
            }
            Ok(n) => n,
            Err(_) => return false,
        };
        let current = *fault.borrow();
        match current {
            Fault::Pass | Fault::Stall => {}
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Drop => continue,
            Fault::Reset => return false,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes, behind a proxy.
    async fn echo_behind_proxy() -> FaultProxy {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
            .await
            .unwrap()
    }

    async fn round_trip(proxy: &FaultProxy, within: Duration) -> std::io::Result<bool> {
        let mut s = TcpStream::connect(proxy.addr).await?;
        s.write_all(b"ping").await?;
        let mut back = [0u8; 4];
        match tokio::time::timeout(within, s.read_exact(&mut back)).await {
            Ok(Ok(_)) => Ok(&back == b"ping"),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says_and_healing_restores_traffic() {
        let proxy = echo_behind_proxy().await;
        let quick = Duration::from_millis(500);
        assert!(round_trip(&proxy, quick).await.unwrap());

        proxy.set(Fault::Delay(Duration::from_millis(300)));
        let started = std::time::Instant::now();
        assert!(round_trip(&proxy, Duration::from_secs(5)).await.unwrap());
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "both ways delayed"
        );

        proxy.set(Fault::Drop);
        assert!(!round_trip(&proxy, quick).await.unwrap(), "a black hole");
        proxy.set(Fault::Stall);
        assert!(!round_trip(&proxy, quick).await.unwrap(), "nothing moves");
        proxy.set(Fault::Reset);
        assert!(
            !round_trip(&proxy, quick).await.unwrap_or(false),
            "connections are refused"
        );
        proxy.heal();
        assert!(round_trip(&proxy, quick).await.unwrap());
    }

    #[tokio::test]
    async fn a_cut_refuses_only_the_node_it_names() {
        let proxy = echo_behind_proxy().await;
        let quick = Duration::from_millis(500);
        // Two "nodes" that dial from fixed ports.
        let dial_from = |port: u16| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket
                .bind(format!("127.0.0.1:{port}").parse().unwrap())
                .unwrap();
            socket.connect(proxy.addr).await
        };
        let ports = [free_port(), free_port()];
        proxy.register(ports[0], 0);
        proxy.register(ports[1], 1);
        proxy.cut(&[0]);
        for (node, port) in ports.iter().enumerate() {
            let mut s = dial_from(*port).await.unwrap();
            let _ = s.write_all(b"ping").await;
            let mut back = [0u8; 4];
            let got = tokio::time::timeout(quick, s.read_exact(&mut back)).await;
            let passed = matches!(got, Ok(Ok(_)));
            assert_eq!(passed, node == 1, "node {node}");
        }
        proxy.heal();
        let mut s = dial_from(ports[0]).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).await.unwrap();
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
