//! Real `peervault` processes on 127.0.0.1, each behind a [`FaultProxy`], with
//! the process-level faults: SIGKILL, SIGSTOP/SIGCONT, restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::client::Client;
use peervault::control::proto::{Request, Response};

use peervault_testkit::{Launch, NodeProcess, free_port};

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
    /// `K+M`: the nodes erasure-code files instead of copying them whole.
    pub redundancy: Option<String>,
    /// More flags for every node.
    pub extra: Vec<String>,
}

/// How long a node may take to answer after it starts.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// One node: its process, its proxy, its client.
#[derive(Debug)]
pub struct ChaosNode {
    pub index: usize,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub proxy: FaultProxy,
    pub client: Client,
    process: NodeProcess,
    /// Times this node was killed and started again.
    pub restarts: usize,
}

impl ChaosNode {
    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts the node again on its data dir (after [`ChaosNode::kill9`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.restarts += 1;
        self.process
            .restart(READY_WITHIN)
            .with_context(|| format!("node {} did not come back", self.index))
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self) {
        self.process.pause();
    }

    pub fn resume(&mut self) {
        self.process.resume();
    }

    /// True while the process is alive (paused counts as alive).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn log_text(&self) -> String {
        self.process.log()
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub async fn peers(&self) -> anyhow::Result<usize> {
        match self.client.call(&Request::Peers).await? {
            Response::Peers { peers } => Ok(peers.len()),
            other => bail!("unexpected reply: {other:?}"),
        }
    }
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
            let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
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
            if let Some(redundancy) = &config.redundancy {
                args.push("--redundancy".into());
                args.push(redundancy.clone());
            }
            if !others.is_empty() {
                args.push("--bootstrap".into());
                args.push(others.join(","));
            }
            args.extend(config.extra.iter().cloned());
            let launch = Launch::new(&config.bin, &data_dir).args(args);
            let process = NodeProcess::start(launch, READY_WITHIN)
                .with_context(|| format!("node {index} did not start"))?;
            nodes.push(ChaosNode {
                index,
                client: Client::new(&data_dir),
                data_dir,
                listen: *listen,
                proxy,
                process,
                restarts: 0,
            });
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
            if node.process.is_paused() {
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
