//! `rtt`: transfers across long round trips. Three nodes on loopback, each
//! behind a link of its own ([`crate::delay`]: a rate and a one-way delay,
//! holding no more than their product) that is the only address it
//! announces, so that every connection between them crosses one. A put with
//! `--replicas 2` (one copy over one link) and a get on a node that holds
//! none of the file (from the two holders over two links), each against one
//! plain TCP stream through the same kind of link, in the same run; and the
//! nodes' peak RSS.
//!
//! Each is measured twice: first on connections just made, whose streams'
//! flow-control windows still grow (Yamux starts each at 256 KiB; the node's
//! patched Yamux grows it to the path's round trip at its first update), then
//! again on the same connections. The baseline has no such start: its TCP
//! connections end at the proxy, on loopback, so their congestion windows
//! never see the delay.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::delay::{DelayLine, Shape, plain_tcp};
use crate::local::timed_put;
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

/// Seconds to read `name` (`size` bytes) on `node`, from its holders.
async fn timed_get(node: &BenchNode, name: &str, size: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let got = node
        .client
        .get(name, &mut tokio::io::sink(), &mut |_, _| {})
        .await
        .with_context(|| format!("the remote get of {name} failed"))?;
    if got.size != size {
        bail!("the get of {name} returned {} bytes", got.size);
    }
    Ok(start.elapsed().as_secs_f64())
}

pub async fn run(args: RttArgs<'_>) -> anyhow::Result<()> {
    let work = args
        .dir
        .join(format!("peervault-bench-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let input = work.join("input.bin");
    write_file(&input, args.size, 31)?;
    let second = work.join("second.bin");
    write_file(&second, args.size, 32)?;
    let rate = args.rate_mbit * 1_000_000 / 8;
    println!(
        "three nodes on loopback, each behind a link of {} Mbit/s each way holding at most \
         rate x delay; {} files",
        args.rate_mbit,
        crate::report::mib(args.size)
    );
    println!(
        "first: the first transfer on new connections (their stream windows still grow); \
         then: the next one on the same connections"
    );
    println!(
        "{:<8} {:>11} {:>24} {:>24} {:>11} {:>11} {:>10}",
        "RTT",
        "plain TCP",
        "put, 2 copies (first/then)",
        "remote get (first/then)",
        "put ratio",
        "get ratio",
        "peak RSS"
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
        let puts = [
            timed_put(&a.node, "first.bin", &input, 2).await?,
            timed_put(&a.node, "second.bin", &second, 2).await?,
        ];
        // A reader that joins now holds none of the files.
        let c = start_linked(args.bin, &round.join("c"), shape, Some(a.announced)).await?;
        wait_connected(&[&a.node, &b.node, &c.node], 2, CONNECT).await?;
        c.node.reset_peak_rss()?;
        // Timed from when the reader knows the files, not from when it joined.
        let listed = Instant::now();
        while c.node.client.list().await?.len() < 2 {
            if listed.elapsed() > CONNECT {
                bail!("the reader did not learn of the files within {CONNECT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gets = [
            timed_get(&c.node, "first.bin", args.size).await?,
            timed_get(&c.node, "second.bin", args.size).await?,
        ];
        let each = [&a.node, &b.node, &c.node]
            .iter()
            .map(|n| n.peak_rss())
            .collect::<anyhow::Result<Vec<u64>>>()?;
        let rss = each.iter().copied().max().unwrap_or(0);
        let mb = |s: f64| args.size as f64 / 1e6 / s.max(1e-9);
        let ratios = |t: [f64; 2]| [tcp / t[0], tcp / t[1]];
        let (put_ratio, get_ratio) = (ratios(puts), ratios(gets));
        let mut short = Vec::new();
        for (what, ratio) in [
            ("first put", put_ratio[0]),
            ("next put", put_ratio[1]),
            ("first get", get_ratio[0]),
            ("next get", get_ratio[1]),
        ] {
            if ratio < 0.8 {
                short.push(what);
            }
        }
        if rss >= 64 << 20 {
            short.push("memory");
        }
        if !short.is_empty() {
            missed += 1;
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let pair = |t: [f64; 2]| format!("{:.1} / {:.1} MB/s", mb(t[0]), mb(t[1]));
        println!(
            "{:<8} {:>6.1} MB/s {:>24} {:>24} {:>5.2}/{:<5.2} {:>5.2}/{:<5.2} {:>6.1} MiB \
             (writer {:.0}, holder {:.0}, reader {:.0}){}",
            format!("{} ms", delay * 2),
            mb(tcp),
            pair(puts),
            pair(gets),
            put_ratio[0],
            put_ratio[1],
            get_ratio[0],
            get_ratio[1],
            mib(rss),
            mib(each[0]),
            mib(each[1]),
            mib(each[2]),
            match short.is_empty() {
                true => String::new(),
                false => format!("  MISSED: {}", short.join(", ")),
            }
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
