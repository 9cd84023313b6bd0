//! A `peervault` node process under measurement.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::client::Client;
use peervault::control::proto::{Request, Response};
use peervault_testkit::{Launch, NodeProcess};

pub struct BenchNode {
    process: NodeProcess,
    pub client: Client,
}

/// The benchmark vault's key.
const BENCH_KEY: &str = "be0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0c";

/// `--log-level` for every node when `PEERVAULT_BENCH_LOG` names a filter
/// (the nodes' logs are kept with `PEERVAULT_BENCH_KEEP`): what a run did, to
/// find out why it was slow.
fn log_level() -> Vec<String> {
    match std::env::var("PEERVAULT_BENCH_LOG") {
        Ok(filter) if !filter.is_empty() => vec!["--log-level".into(), filter],
        _ => Vec::new(),
    }
}

impl BenchNode {
    pub fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, data_dir, &[])
    }

    /// Starts a node with extra flags.
    pub fn start_with(bin: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        // Loopback on a port of the system's choosing, unless told otherwise.
        let addr: &[&str] = match extra.contains(&"--addr") {
            true => &[],
            false => &["--addr", "127.0.0.1:0"],
        };
        let launch = Launch::new(bin, data_dir)
            .args(addr)
            .args([
                "--key", // 64 hex digits: every node of the run shares one vault.
                BENCH_KEY, "--quota", "1TB",
            ])
            .args(extra)
            .args(log_level());
        Ok(Self {
            process: NodeProcess::start(launch, Duration::from_secs(30))?,
            client: Client::new(data_dir),
        })
    }

    /// Starts a node inside network namespace `netns`, listening on `addr`
    /// at the default port (as a node on a machine of its own would).
    pub fn start_in_netns(
        bin: &Path,
        data_dir: &Path,
        netns: &str,
        addr: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let listen = format!("{addr}:3000");
        let launch = Launch::new(bin, data_dir)
            .args([
                "--addr",
                listen.as_str(),
                "--key",
                BENCH_KEY,
                "--quota",
                "1TB",
            ])
            .args(extra)
            .args(log_level())
            .in_netns(netns);
        Ok(Self {
            process: NodeProcess::start(launch, Duration::from_secs(30))?,
            client: Client::new(data_dir),
        })
    }

    fn status_field(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.process.pid().context("the node is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .with_context(|| format!("no {field} in /proc status"))
    }

    /// Peak resident set size since start (or since the last reset), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        self.status_field("VmHWM:")
    }

    /// Resident set size now, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        self.status_field("VmRSS:")
    }

    /// Starts a new peak-RSS measurement window.
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        let pid = self.process.pid().context("the node is not running")?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), b"5")
            .context("cannot reset the peak RSS counter")
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.process
            .stop(Duration::from_secs(30))
            .context("the node did not stop within 30 s")?;
        Ok(())
    }
}

/// Finds the `peervault` binary: given, or beside this benchmark's own executable.
pub fn find_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let beside = std::env::current_exe()?.with_file_name("peervault");
    if beside.exists() {
        return Ok(beside);
    }
    bail!(
        "no peervault binary beside {}; build it first (cargo build --release --workspace) or pass --peervault PATH",
        std::env::current_exe()?.display()
    )
}

/// The TCP port a node listens on.
pub async fn listen_port(node: &BenchNode) -> anyhow::Result<u16> {
    let Response::Status { status } = node.client.call(&Request::Status).await? else {
        bail!("unexpected status reply");
    };
    let addr = status
        .listen_addrs
        .first()
        .context("the node has no listen address")?;
    addr.rsplit('/')
        .next()
        .and_then(|p| p.parse().ok())
        .context("no port in the listen address")
}

pub async fn peers(node: &BenchNode) -> anyhow::Result<usize> {
    match node.client.call(&Request::Peers).await? {
        Response::Peers { peers } => Ok(peers.len()),
        other => bail!("unexpected peers reply: {other:?}"),
    }
}

/// Three nodes with `--replicas 3` (data dirs `a`, `b`, `c` under `dir`), connected
/// to each other.
pub async fn start_three(bin: &Path, dir: &Path) -> anyhow::Result<[BenchNode; 3]> {
    let a = BenchNode::start_with(bin, &dir.join("a"), &["--replicas", "3"])?;
    let bootstrap = format!("127.0.0.1:{}", listen_port(&a).await?);
    let join = ["--replicas", "3", "-bootstrap", bootstrap.as_str()];
    let b = BenchNode::start_with(bin, &dir.join("b"), &join)?;
    let c = BenchNode::start_with(bin, &dir.join("c"), &join)?;
    wait_connected(&[&a, &b, &c], 2, Duration::from_secs(30)).await?;
    Ok([a, b, c])
}

/// Waits until each of `nodes` has at least `each` peers, for at most `within`.
pub async fn wait_connected(
    nodes: &[&BenchNode],
    each: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    for node in nodes {
        while peers(node).await? < each {
            if Instant::now() > deadline {
                bail!("the nodes did not connect within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
