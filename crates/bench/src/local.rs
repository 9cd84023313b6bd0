//! `local`: one node, put and get through the control socket, against raw disk I/O.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use peervault::control::proto::Response;

use crate::baseline;
use crate::node::BenchNode;
use crate::report::{Row, median, mib, throughput_table};
use peervault_testkit::data::{RandomReader, write_file};

/// Put and get target ratios (issue: foundation).
const TARGET_PUT: f64 = 0.7;
const TARGET_GET: f64 = 0.7;
/// The peak-RSS budget for a large file.
const RSS_BUDGET_BYTES: u64 = 64 << 20;

/// Seconds per round of each measurement.
#[derive(Default)]
struct Measurements {
    raw_write: Vec<f64>,
    put: Vec<f64>,
    raw_read_cold: Vec<f64>,
    get_cold: Vec<f64>,
    raw_read_warm: Vec<f64>,
    get_warm: Vec<f64>,
}

pub struct LocalArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    pub rss_size: u64,
    /// Repetitions; medians are reported.
    pub rounds: usize,
    /// Whether reads may be measured cold (drops the page cache; needs root).
    pub drop_caches: bool,
}

/// Seconds to put the file at `path` as `name` on `node`, which must make at
/// least `copies` copies of it (its own counted).
pub(crate) async fn timed_put(
    node: &BenchNode,
    name: &str,
    path: &Path,
    copies: usize,
) -> anyhow::Result<f64> {
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let start = Instant::now();
    let reply = node.client.put(name, Some(len), file, &mut |_| {}).await?;
    let seconds = start.elapsed().as_secs_f64();
    let Response::Stored { copies: made, .. } = reply else {
        bail!("unexpected reply to put: {reply:?}");
    };
    if made < copies {
        bail!("only {made} copies of {name} were made, not {copies}");
    }
    Ok(seconds)
}

pub(crate) async fn timed_get(node: &BenchNode, name: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    node.client
        .get(name, &mut tokio::io::sink(), &mut |_, _| {})
        .await?;
    Ok(start.elapsed().as_secs_f64())
}

pub async fn run(args: LocalArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let input = work.path().join("input.bin");
    let raw = work.path().join("raw.bin");
    let drop_caches = || args.drop_caches && baseline::drop_caches();

    let node = BenchNode::start(args.bin, &work.path().join("node"))?;
    // Baselines and PeerVault alternate, round after round, so that drifts of a shared
    // disk hit both alike; the medians are reported.
    let mut m = Measurements::default();
    let mut cold = false;
    for round in 0..args.rounds {
        let name = format!("bench-{round}");
        // New content every round: a repeated put would only deduplicate.
        write_file(&input, args.size, round as u64 + 1)?;
        drop_caches();
        m.raw_write
            .push(baseline::write_fsync(&input, &raw)?.as_secs_f64());
        m.put.push(timed_put(&node, &name, &input, 1).await?);
        // Each warm read follows its own cold one, so that it finds everything in
        // the page cache: it measures the CPU cost alone.
        cold = drop_caches();
        m.raw_read_cold.push(baseline::read(&raw)?.as_secs_f64());
        m.raw_read_warm.push(baseline::read(&raw)?.as_secs_f64());
        drop_caches();
        m.get_cold.push(timed_get(&node, &name).await?);
        m.get_warm.push(timed_get(&node, &name).await?);
        std::fs::remove_file(&raw)?;
    }
    let peak_main = node.peak_rss()?;

    let mut rows = vec![Row {
        workload: "local put (until durable)".into(),
        bytes: args.size,
        seconds: median(&m.put),
        baseline: "write + fsync".into(),
        baseline_seconds: median(&m.raw_write),
        target: Some(TARGET_PUT),
    }];
    let read_label = if cold { "cold" } else { "page cache" };
    rows.push(Row {
        workload: format!("local get ({read_label})"),
        bytes: args.size,
        seconds: median(&m.get_cold),
        baseline: "read".into(),
        baseline_seconds: median(&m.raw_read_cold),
        // Without a drop of the page cache (not root) both read memory, and the
        // row is only information, like the page-cache row below.
        target: cold.then_some(TARGET_GET),
    });
    if cold {
        // For information: from the page cache the baseline only copies, while
        // every byte PeerVault returns is decrypted and authenticated (AES-GCM alone
        // runs at a fraction of memcpy's speed), so this row shows the CPU cost of
        // a read and has no target; the target is about reading from the disk.
        rows.push(Row {
            workload: "local get (page cache)".into(),
            bytes: args.size,
            seconds: median(&m.get_warm),
            baseline: "read (page cache)".into(),
            baseline_seconds: median(&m.raw_read_warm),
            target: None,
        });
    }
    std::fs::remove_file(&input)?;

    let mut rss_lines = vec![format!(
        "node peak RSS over the {} rounds of {} above: {}",
        args.rounds,
        mib(args.size),
        mib(peak_main)
    )];
    if args.rss_size > 0 {
        for size in [64 << 20, args.rss_size] {
            node.reset_peak_rss()?;
            let name = format!("rss-{size}");
            node.client
                .put(&name, Some(size), RandomReader::new(2, size), &mut |_| {})
                .await?;
            node.client
                .get(&name, &mut tokio::io::sink(), &mut |_, _| {})
                .await?;
            let peak = node.peak_rss()?;
            rss_lines.push(format!(
                "node peak RSS for a put and get of {}: {} (budget {}: {})",
                mib(size),
                mib(peak),
                mib(RSS_BUDGET_BYTES),
                if peak < RSS_BUDGET_BYTES {
                    "✓"
                } else {
                    "✗"
                }
            ));
        }
    }
    node.stop()?;

    println!("{}", throughput_table(&rows));
    for line in rss_lines {
        println!("{line}");
    }
    Ok(())
}
