//! Real `peervault` processes on 127.0.0.1, each behind a [`FaultProxy`], with
//! the process-level faults: SIGKILL, SIGSTOP/SIGCONT, restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::client::Client;
use peervault::control::proto::{Request, Response};

use crate::proxy::{Fault, FaultProxy};

/// The network key of every chaos cluster.
/// 64 hex digits: nodes started apart share the vault without learning a salt.
pub const KEY: &str = "c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a0";

/// How a cluster's nodes are started.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub nodes: usize,
    pub replicas: usize,
    /// More flags for every node.
    pub extra: Vec<String>,
}

/// One node: its process, its proxy, its client.
#[derive(Debug)]
pub struct ChaosNode {
    pub index: usize,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub proxy: FaultProxy,
    pub client: Client,
    child: Option<Child>,
    args: Vec<String>,
    bin: PathBuf,
    log: PathBuf,
    /// Times this node was killed and started again.
    pub restarts: usize,
    paused: bool,
}

impl ChaosNode {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env_remove("PEERVAULT_KEY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let socket = self.data_dir.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "node {} exited with {status}: {}",
                    self.index,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!("node {} did not start within 30 s", self.index);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(child) = &self.child
            && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on its data dir (after [`ChaosNode::kill9`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.restarts += 1;
        self.spawn()
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self) {
        self.signal(rustix::process::Signal::STOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal(rustix::process::Signal::CONT);
        self.paused = false;
    }

    /// True while the process is alive (paused counts as alive).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let start = text.len().saturating_sub(6000);
        text.get(start..).unwrap_or_default().to_string()
    }

    pub async fn peers(&self) -> anyhow::Result<usize> {
        match self.client.call(&Request::Peers).await? {
            Response::Peers { peers } => Ok(peers.len()),
            other => bail!("unexpected reply: {other:?}"),
        }
    }
}

impl Drop for ChaosNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free TCP port on 127.0.0.1 (free a moment ago).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<ChaosNode>,
}

impl Cluster {
    pub async fn start(config: &ClusterConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let mut listens = Vec::new();
        let mut proxies = Vec::new();
        for _ in 0..config.nodes {
            let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            proxies.push(FaultProxy::start("127.0.0.1:0".parse()?, listen).await?);
            listens.push(listen);
        }
        for proxy in &proxies {
            for (j, listen) in listens.iter().enumerate() {
                proxy.register(listen.port(), j);
            }
        }
        let proxy_addrs: Vec<String> = proxies.iter().map(|p| p.addr.to_string()).collect();
        let mut nodes = Vec::new();
        for (index, (proxy, listen)) in proxies.into_iter().zip(&listens).enumerate() {
            let data_dir = config.dir.join(format!("node{index}"));
            let others: Vec<&str> = proxy_addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != index)
                .map(|(_, a)| a.as_str())
                .collect();
            let mut args: Vec<String> = vec![
                "--data-dir".into(),
                data_dir.to_string_lossy().into_owned(),
                "--addr".into(),
                listen.to_string(),
                "--advertise".into(),
                proxy.addr.to_string(),
                "--advertise-only".into(),
                "--key".into(),
                KEY.into(),
                "--quota".into(),
                "20GB".into(),
                "--replicas".into(),
                config.replicas.to_string(),
                "--log-level".into(),
                "info".into(),
            ];
            if !others.is_empty() {
                args.push("--bootstrap".into());
                args.push(others.join(","));
            }
            args.extend(config.extra.iter().cloned());
            let mut node = ChaosNode {
                index,
                client: Client::new(&data_dir),
                log: config.dir.join(format!("node{index}.log")),
                data_dir,
                listen: *listen,
                proxy,
                child: None,
                args,
                bin: config.bin.clone(),
                restarts: 0,
                paused: false,
            };
            node.spawn()?;
            nodes.push(node);
        }
        let cluster = Self { nodes };
        cluster.wait_connected(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Waits until every node is connected to every other.
    pub async fn wait_connected(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let want = self.nodes.len() - 1;
        for node in &self.nodes {
            while node.peers().await.unwrap_or(0) < want {
                if Instant::now() > deadline {
                    bail!(
                        "node {} did not reach {want} peers within {within:?}; the end of its log:\n{}\n\
                         offences and bans seen by every node:\n{}",
                        node.index,
                        node.log_tail(),
                        self.conduct_lines()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The log lines of every node about peers' offences and bans (what would
    /// keep two nodes apart), for a failure message.
    fn conduct_lines(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            for line in node.log_text().lines() {
                if line.contains("offence") || line.contains("banned") {
                    out.push_str(&format!("node {}: {line}\n", node.index));
                }
            }
        }
        out
    }

    /// Cuts node `i` from every other node (both directions).
    pub fn isolate(&self, i: usize) {
        let others: Vec<usize> = (0..self.nodes.len()).filter(|j| *j != i).collect();
        self.nodes[i].proxy.cut(&others);
        for j in &others {
            self.nodes[*j].proxy.cut(&[i]);
        }
    }

    /// Ends every fault: proxies pass, paused nodes resume, dead ones restart.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.proxy.heal();
            if node.paused {
                node.resume();
            }
            if !node.is_running() {
                node.restart()?;
            }
        }
        Ok(())
    }

    pub fn set_fault(&self, i: usize, fault: Fault) {
        self.nodes[i].proxy.set(fault);
    }
}

/// Every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
