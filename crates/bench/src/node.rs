//! A `peervault` node process under measurement.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::client::Client;
use peervault::control::proto::{Request, Response};

pub struct NodeProcess {
    child: Child,
    pub client: Client,
}

/// The benchmark vault's key.
const BENCH_KEY: &str = "be0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0c";

impl NodeProcess {
    pub fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, data_dir, &[])
    }

    /// Starts a node with extra flags.
    pub fn start_with(bin: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let child = Command::new(bin)
            .args(["--data-dir", &data_dir.to_string_lossy()])
            .args([
                "--addr",
                "127.0.0.1:0",
                "--key",
                // 64 hex digits: every node of the run shares one vault.
                BENCH_KEY,
                "--quota",
                "1TB",
            ])
            .args(extra)
            .env_remove("PEERVAULT_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut node = Self {
            child,
            client: Client::new(data_dir),
        };
        let socket = data_dir.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = node.child.try_wait()? {
                bail!(
                    "the node exited with {status}; see {}",
                    data_dir.with_extension("log").display()
                );
            }
            if Instant::now() > deadline {
                bail!("the node did not start within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }

    fn status_field(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
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
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), b"5")
            .context("cannot reset the peak RSS counter")
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait()?;
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

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TCP port a node listens on.
pub async fn listen_port(node: &NodeProcess) -> anyhow::Result<u16> {
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

pub async fn peers(node: &NodeProcess) -> anyhow::Result<usize> {
    match node.client.call(&Request::Peers).await? {
        Response::Peers { peers } => Ok(peers.len()),
        other => bail!("unexpected peers reply: {other:?}"),
    }
}

/// Three nodes with `--replicas 3` (data dirs `a`, `b`, `c` under `dir`), connected
/// to each other.
pub async fn start_three(bin: &Path, dir: &Path) -> anyhow::Result<[NodeProcess; 3]> {
    let a = NodeProcess::start_with(bin, &dir.join("a"), &["--replicas", "3"])?;
    let bootstrap = format!("127.0.0.1:{}", listen_port(&a).await?);
    let join = ["--replicas", "3", "-bootstrap", bootstrap.as_str()];
    let b = NodeProcess::start_with(bin, &dir.join("b"), &join)?;
    let c = NodeProcess::start_with(bin, &dir.join("c"), &join)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in [&a, &b, &c] {
        while peers(node).await? < 2 {
            if Instant::now() > deadline {
                bail!("the nodes did not connect within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok([a, b, c])
}
