//! `rtt`: transfers across long round trips. Three nodes on loopback, each
//! behind a link of its own ([`crate::delay`]: a rate and a one-way delay,
//! holding no more than their product) that is the only address it
//! announces, so that every connection between them crosses one. A put with
//! `--replicas 2` (one copy over one link) and a get on a node that holds
//! none of the file (from the two holders over two links), each against one
//! plain TCP stream through the same kind of link, in the same run; and the
//! nodes' peak RSS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::proto::Response;

use crate::delay::{DelayLine, Shape, plain_tcp};
use crate::node::{BenchNode, wait_connected};

/// How long the nodes may take to connect.
const CONNECT: Duration = Duration::from_secs(60);
use peervault_testkit::data::write_file;

pub struct RttArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    /// One-way delays to measure, in ms (the round trip is twice).
    pub delays_ms: Vec<u64>,
    /// The links' rate each way, in Mbit/s.
    pub rate_mbit: u64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A node behind its own link.
struct LinkedNode {
    node: BenchNode,
    _line: DelayLine,
    announced: SocketAddr,
}

async fn start_linked(
    bin: &Path,
    dir: &Path,
    shape: Shape,
    bootstrap: Option<SocketAddr>,
) -> anyhow::Result<LinkedNode> {
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let line = DelayLine::start(([127, 0, 0, 1], free_port()?).into(), listen, shape).await?;
    let addr = listen.to_string();
    let advertise = line.addr.to_string();
    let mut extra = vec![
        "--addr",
        addr.as_str(),
        "--advertise",
        advertise.as_str(),
        "--advertise-only",
        "--replicas",
        "2",
    ];
    let boot = bootstrap.map(|b| b.to_string());
    if let Some(boot) = &boot {
        extra.extend(["-bootstrap", boot.as_str()]);
    }
    let node = BenchNode::start_with(bin, dir, &extra)?;
    Ok(LinkedNode {
        node,
        announced: line.addr,
        _line: line,
    })
}

pub async fn run(args: RttArgs<'_>) -> anyhow::Result<()> {
    let work = args
        .dir
        .join(format!("peervault-bench-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let input = work.join("input.bin");
    write_file(&input, args.size, 31)?;
    let rate = args.rate_mbit * 1_000_000 / 8;
    println!(
        "three nodes on loopback, each behind a link of {} Mbit/s each way holding at most \
         rate x delay; a {} file",
        args.rate_mbit,
        crate::report::mib(args.size)
    );
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>8} {:>8} {:>12}",
        "RTT", "plain TCP", "put (2 copies)", "remote get", "put", "get", "peak RSS"
    );
    let mut missed = 0;
    for delay in &args.delays_ms {
        let shape = Shape {
            rate,
            delay: Duration::from_millis(*delay),
        };
        let tcp = plain_tcp(args.size, shape).await?;
        let round = work.join(format!("d{delay}"));
        let a = start_linked(args.bin, &round.join("a"), shape, None).await?;
        let b = start_linked(args.bin, &round.join("b"), shape, Some(a.announced)).await?;
        wait_connected(&[&a.node, &b.node], 1, CONNECT).await?;
        for n in [&a.node, &b.node] {
            n.reset_peak_rss()?;
        }
        let file = tokio::fs::File::open(&input).await?;
        let start = Instant::now();
        let reply = a
            .node
            .client
            .put("rtt.bin", Some(args.size), file, &mut |_| {})
            .await?;
        let put = start.elapsed().as_secs_f64();
        let Response::Stored { copies, .. } = reply else {
            bail!("unexpected put reply: {reply:?}");
        };
        if copies < 2 {
            bail!("only {copies} copies were made");
        }
        // A reader that joins now holds none of the file.
        let c = start_linked(args.bin, &round.join("c"), shape, Some(a.announced)).await?;
        wait_connected(&[&a.node, &b.node, &c.node], 2, CONNECT).await?;
        c.node.reset_peak_rss()?;
        let start = Instant::now();
        let got = loop {
            match c
                .node
                .client
                .get("rtt.bin", &mut tokio::io::sink(), &mut |_, _| {})
                .await
            {
                Ok(info) => break info,
                Err(e) if start.elapsed().as_secs() < 30 && e.to_string().contains("no file") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context("the remote get failed"),
            }
        };
        let get = start.elapsed().as_secs_f64();
        if got.size != args.size {
            bail!("the get returned {} bytes", got.size);
        }
        let each = [&a.node, &b.node, &c.node]
            .iter()
            .map(|n| n.peak_rss())
            .collect::<anyhow::Result<Vec<u64>>>()?;
        let rss = each.iter().copied().max().unwrap_or(0);
        let mb = |s: f64| args.size as f64 / 1e6 / s.max(1e-9);
        let (put_ratio, get_ratio) = (tcp / put, tcp / get);
        let ok = put_ratio >= 0.8 && get_ratio >= 0.8 && rss < 64 << 20;
        if !ok {
            missed += 1;
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "{:<10} {:>9.1} MB/s {:>9.1} MB/s {:>9.1} MB/s {:>8.2} {:>8.2} {:>8.1} MiB \
             (writer {:.0}, holder {:.0}, reader {:.0}){}",
            format!("{} ms", delay * 2),
            mb(tcp),
            mb(put),
            mb(get),
            put_ratio,
            get_ratio,
            mib(rss),
            mib(each[0]),
            mib(each[1]),
            mib(each[2]),
            if ok { "" } else { "  MISSED" }
        );
        for node in [a.node, b.node, c.node] {
            node.stop()?;
        }
        // PEERVAULT_BENCH_KEEP keeps the nodes' data dirs and logs to look at.
        if std::env::var_os("PEERVAULT_BENCH_KEEP").is_none() {
            std::fs::remove_dir_all(&round).ok();
        }
    }
    println!("targets: put and get >= 0.8 of plain TCP, every node's peak RSS < 64 MiB");
    if missed > 0 {
        println!("{missed} round trips missed a target");
    }
    if std::env::var_os("PEERVAULT_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&work).ok();
    }
    Ok(())
}
