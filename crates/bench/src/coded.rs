//! `coded`: erasure coding against whole copies, on six nodes, in the same
//! run: `--replicas 3` and `--redundancy 4+2` store and read the same file,
//! and the table gives put and get time, the bytes the writer sent and the
//! bytes stored across the vault, each coded figure over the replicated one.
//!
//! **The network.** With `--rate-mbit N` (100 by default) every node runs in
//! a network namespace of its own, on the default port, behind a veth pair
//! joined by a bridge in another namespace, and `tc tbf` holds each side of
//! each pair to N Mbit/s: what a node sends and what it receives are each
//! limited, as on a home or office link. `--rate-mbit 0` runs the nodes on
//! loopback unshaped (the 1 GiB loopback comparison of issue 29). Network
//! namespaces need root; the namespaces are removed when the run ends.
//!
//! The get is made on a node that holds none of a replicated file (three of
//! the six do not), and on a node other than the writer for the coded one
//! (every node holds one shard: it fetches three).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::proto::{Request, Response};

use crate::node::{BenchNode, wait_connected};
use peervault_testkit::data::write_file;

pub struct CodedArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    /// Per-node link rate in Mbit/s; 0 for loopback.
    pub rate_mbit: u64,
}

const NODES: usize = 6;

/// Network namespaces joined by a bridge, each link shaped with `tc tbf`.
struct Lab {
    switch: String,
    nodes: Vec<String>,
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lab {
    fn new(nodes: usize, rate_mbit: u64) -> anyhow::Result<Lab> {
        let tag = std::process::id() % 100_000;
        let mut lab = Lab {
            switch: format!("pvb{tag}s"),
            nodes: Vec::new(),
        };
        let sw = lab.switch.clone();
        sh("ip", &["netns", "add", &sw]).context(
            "network namespaces need root (run as root, or use --rate-mbit 0 for loopback)",
        )?;
        sh("ip", &["-n", &sw, "link", "set", "lo", "up"])?;
        sh("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", &sw, "link", "set", "br0", "up"])?;
        let rate = format!("{rate_mbit}mbit");
        // A queue of about 20 ms at the rate, as a modem's would hold.
        let shape = |ns: &str, dev: &str| {
            sh(
                "ip",
                &[
                    "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                    &rate, "burst", "64kb", "latency", "20ms",
                ],
            )
        };
        for i in 0..nodes {
            let ns = format!("pvb{tag}n{i}");
            sh("ip", &["netns", "add", &ns])?;
            lab.nodes.push(ns.clone());
            let port = format!("v{i}");
            sh(
                "ip",
                &[
                    "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            sh("ip", &["-n", &sw, "link", "set", &port, "master", "br0"])?;
            sh("ip", &["-n", &sw, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", lab.addr(i));
            sh("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            // What the node sends, and what it receives.
            shape(&ns, "eth0")?;
            shape(&sw, &port)?;
        }
        Ok(lab)
    }

    fn addr(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.switch)) {
            let _ = sh("ip", &["netns", "del", ns]);
        }
    }
}

/// What one way of keeping files measured.
struct Measured {
    put: f64,
    get: f64,
    writer_sent: u64,
    stored: u64,
}

async fn metrics(node: &BenchNode) -> anyhow::Result<peervault_node::MetricsSnapshot> {
    match node.client.call(&Request::Metrics).await? {
        Response::Metrics { metrics } => Ok(*metrics),
        other => bail!("unexpected metrics reply: {other:?}"),
    }
}

async fn start_nodes(
    args: &CodedArgs<'_>,
    lab: Option<&Lab>,
    work: &Path,
    keeping: &[&str],
) -> anyhow::Result<Vec<BenchNode>> {
    let mut nodes: Vec<BenchNode> = Vec::new();
    let mut first_port = 0;
    for i in 0..NODES {
        let data = work.join(format!("n{i}"));
        let mut extra: Vec<String> = keeping.iter().map(|s| s.to_string()).collect();
        let node = match lab {
            Some(lab) => {
                if i > 0 {
                    // Every node on the default port, each on its own host.
                    extra.extend(["-bootstrap".into(), format!("{}:3000", lab.addr(0))]);
                }
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                BenchNode::start_in_netns(args.bin, &data, &lab.nodes[i], &lab.addr(i), &extra)?
            }
            None => {
                if i > 0 {
                    extra.extend(["-bootstrap".into(), format!("127.0.0.1:{first_port}")]);
                }
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let node = BenchNode::start_with(args.bin, &data, &extra)?;
                if i == 0 {
                    first_port = crate::node::listen_port(&node).await?;
                }
                node
            }
        };
        nodes.push(node);
    }
    let refs: Vec<&BenchNode> = nodes.iter().collect();
    wait_connected(&refs, NODES - 1, Duration::from_secs(60)).await?;
    Ok(nodes)
}

async fn measure(
    args: &CodedArgs<'_>,
    input: &Path,
    work: &Path,
    keeping: &[&str],
) -> anyhow::Result<Measured> {
    let lab = match args.rate_mbit {
        0 => None,
        rate => Some(Lab::new(NODES, rate)?),
    };
    let nodes = start_nodes(args, lab.as_ref(), work, keeping).await?;
    let writer = &nodes[0];
    let sent_before = metrics(writer).await?.network.bytes_sent;
    let file = tokio::fs::File::open(input).await?;
    let start = Instant::now();
    let reply = writer
        .client
        .put("bench.bin", Some(args.size), file, &mut |_| {})
        .await?;
    let put = start.elapsed().as_secs_f64();
    let Response::Stored { copies, target, .. } = reply else {
        bail!("unexpected put reply: {reply:?}");
    };
    if copies < target {
        bail!("only {copies} of {target} copies (or shards) were made");
    }
    let writer_sent = metrics(writer).await?.network.bytes_sent - sent_before;
    let mut stored = 0;
    for node in &nodes {
        stored += metrics(node).await?.storage.used_bytes;
    }
    // A reader that holds none of a replicated file; any but the writer
    // for a coded one (all hold a shard).
    let mut reader = &nodes[1];
    for node in &nodes[1..] {
        let listed = listing(node, "bench.bin").await?;
        if !listed.local || listed.redundancy.is_some() {
            reader = node;
            break;
        }
    }
    let start = Instant::now();
    let mut sink = tokio::io::sink();
    reader
        .client
        .get("bench.bin", &mut sink, &mut |_, _| {})
        .await?;
    let get = start.elapsed().as_secs_f64();
    for node in nodes {
        node.stop()?;
    }
    drop(lab);
    std::fs::remove_dir_all(work).ok();
    Ok(Measured {
        put,
        get,
        writer_sent,
        stored,
    })
}

/// `name` as `node` lists it, once it knows of it: a node that holds none of
/// a file learns of it when the catalogue reaches it, which may be after the
/// put has returned.
async fn listing(node: &BenchNode, name: &str) -> anyhow::Result<peervault_node::FileInfo> {
    let asked = Instant::now();
    loop {
        let request = Request::Stat { name: name.into() };
        match node.client.call(&request).await {
            Ok(Response::File { file }) => return Ok(file),
            Ok(other) => bail!("unexpected stat reply: {other:?}"),
            Err(e)
                if asked.elapsed() < Duration::from_secs(30)
                    && e.to_string().contains("no file") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn run(args: CodedArgs<'_>) -> anyhow::Result<()> {
    let work = args
        .dir
        .join(format!("peervault-bench-coded-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let input = work.join("input.bin");
    write_file(&input, args.size, 29)?;
    let network = match args.rate_mbit {
        0 => "loopback, unshaped".to_string(),
        rate => format!("{rate} Mbit/s each way per node (tc tbf, network namespaces)"),
    };
    println!(
        "six nodes, {network}; a {} file, put on one node and read on another",
        crate::report::mib(args.size)
    );
    let copies = measure(&args, &input, &work.join("copies"), &["--replicas", "3"]).await?;
    let coded = measure(&args, &input, &work.join("coded"), &["--redundancy", "4+2"]).await?;
    std::fs::remove_dir_all(&work).ok();
    let rows = [
        (
            "put time",
            copies.put,
            coded.put,
            "s",
            if args.rate_mbit == 0 { None } else { Some(0.7) },
        ),
        (
            "get time",
            copies.get,
            coded.get,
            "s",
            (args.rate_mbit > 0).then_some(1.1),
        ),
        (
            "bytes sent by the writer",
            copies.writer_sent as f64,
            coded.writer_sent as f64,
            "B",
            Some(0.65),
        ),
        (
            "bytes stored in the vault",
            copies.stored as f64,
            coded.stored as f64,
            "B",
            Some(0.55),
        ),
    ];
    println!(
        "{:<28} {:>16} {:>16} {:>8} {:>8}",
        "", "--replicas 3", "--redundancy 4+2", "ratio", "target"
    );
    let mut missed = 0;
    for (what, whole, shards, unit, target) in rows {
        let ratio = shards / whole.max(1e-9);
        let show = |v: f64| match unit {
            "s" => format!("{v:.2} s"),
            _ => crate::report::mib(v as u64),
        };
        let target_text = target.map_or("-".to_string(), |t| format!("<= {t}"));
        let ok = target.is_none_or(|t| ratio <= t);
        if !ok {
            missed += 1;
        }
        println!(
            "{what:<28} {:>16} {:>16} {:>8.2} {:>8}{}",
            show(whole),
            show(shards),
            ratio,
            target_text,
            if ok { "" } else { "  MISSED" }
        );
    }
    if args.rate_mbit == 0 {
        let ratio = copies.put / coded.put.max(1e-9);
        println!(
            "loopback put throughput, 4+2 over 3 copies: {ratio:.2} (target >= 0.8){}",
            if ratio >= 0.8 { "" } else { "  MISSED" }
        );
    }
    if missed > 0 {
        println!("{missed} targets missed");
    }
    Ok(())
}
