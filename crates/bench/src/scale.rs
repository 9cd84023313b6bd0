//! `scale`: how the catalogue's costs grow with its size. For each size, one node
//! (`--replicas 1`) is filled with that many tiny files; then the benchmark times
//! `ls`, a restart of the node, and a new node's catalogue sync until it lists
//! every entry, and prints the cost per entry so that growth is visible (flat per
//! entry means linear growth). It also shows what the restarted node keeps
//! resident once its first repair round and a GC pass over every entry are
//! done (what an idle node costs at that size), with the peak along the way.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL;
use futures::StreamExt;
use peervault::control::proto::{Request, Response};

use crate::node::{BenchNode, listen_port};
use crate::report::mib;

pub struct ScaleArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub entries: Vec<usize>,
}

struct Measured {
    entries: usize,
    fill: f64,
    ls: f64,
    restart: f64,
    sync: f64,
    idle_rss: u64,
    peak_rss: u64,
}

async fn files_listed(node: &BenchNode) -> anyhow::Result<usize> {
    match node.client.call(&Request::Status).await? {
        Response::Status { status } => Ok(status.files),
        other => bail!("unexpected status reply: {other:?}"),
    }
}

/// Waits for the node's first repair round to have looked at all `entries`
/// files it holds.
async fn first_repair_round(node: &BenchNode, entries: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match node.client.call(&Request::Metrics).await? {
            Response::Metrics { metrics } if metrics.replication.files_held >= entries => {
                return Ok(());
            }
            Response::Metrics { .. } => {}
            other => bail!("unexpected metrics reply: {other:?}"),
        }
        if Instant::now() > deadline {
            bail!("the node's first repair round did not cover {entries} files within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(node: &BenchNode, entries: usize) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..entries)
        .map(|i| async move {
            let body = format!("entry {i}\n");
            node.client
                .put(
                    &format!("entry-{i:07}"),
                    Some(body.len() as u64),
                    body.as_bytes(),
                    &mut |_| {},
                )
                .await?;
            Ok(())
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

async fn measure(bin: &Path, dir: &Path, entries: usize) -> anyhow::Result<Measured> {
    let one = ["--replicas", "1"];
    let a_dir = dir.join(format!("a-{entries}"));
    let a = BenchNode::start_with(bin, &a_dir, &one)?;
    let start = Instant::now();
    fill(&a, entries).await?;
    let fill_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let listed = a.client.list().await.map_err(|e| {
        let log = std::fs::read_to_string(a_dir.with_extension("log")).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(3000)..];
        anyhow::anyhow!("{e}; the node's log ends:\n{tail}")
    })?;
    if listed.len() != entries {
        bail!("ls listed {} files, not {entries}", listed.len());
    }
    let ls = start.elapsed().as_secs_f64();

    a.stop()?;
    let start = Instant::now();
    let a = BenchNode::start_with(bin, &a_dir, &one)?;
    let restart = start.elapsed().as_secs_f64();
    first_repair_round(&a, entries).await?;
    match a.client.call(&Request::Gc).await? {
        Response::Gc { .. } => {}
        other => bail!("unexpected gc reply: {other:?}"),
    }
    let (idle_rss, peak_rss) = (a.rss()?, a.peak_rss()?);

    let bootstrap = format!("127.0.0.1:{}", listen_port(&a).await?);
    let start = Instant::now();
    let b = BenchNode::start_with(
        bin,
        &dir.join(format!("b-{entries}")),
        &["--replicas", "1", "-bootstrap", bootstrap.as_str()],
    )?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while files_listed(&b).await? < entries {
        if Instant::now() > deadline {
            bail!("the new node did not learn {entries} entries within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync = start.elapsed().as_secs_f64();
    a.stop()?;
    b.stop()?;
    Ok(Measured {
        entries,
        fill: fill_s,
        ls,
        restart,
        sync,
        idle_rss,
        peak_rss,
    })
}

pub async fn run(args: ScaleArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let mut rows = Vec::new();
    for &entries in &args.entries {
        rows.push(measure(args.bin, work.path(), entries.max(1)).await?);
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL).set_header(vec![
        "entries",
        "fill (puts/s)",
        "ls",
        "µs per entry",
        "restart",
        "sync to a new node",
        "µs per entry",
        "idle RSS (peak)",
    ]);
    for m in &rows {
        let per = |s: f64| format!("{:.1}", s * 1e6 / m.entries as f64);
        table.add_row(vec![
            m.entries.to_string(),
            format!("{:.0}", m.entries as f64 / m.fill),
            format!("{:.3} s", m.ls),
            per(m.ls),
            format!("{:.3} s", m.restart),
            format!("{:.3} s", m.sync),
            per(m.sync),
            format!("{} ({})", mib(m.idle_rss), mib(m.peak_rss)),
        ]);
    }
    println!("{table}");
    if let [first, .., last] = rows.as_slice() {
        let growth = |a: f64, b: f64| b / a.max(1e-9);
        println!(
            "from {} to {} entries ({:.0}x): ls {:.1}x, restart {:.1}x, sync {:.1}x, idle RSS {:.1}x (linear would be {:.0}x)",
            first.entries,
            last.entries,
            last.entries as f64 / first.entries as f64,
            growth(first.ls, last.ls),
            growth(first.restart, last.restart),
            growth(first.sync, last.sync),
            growth(first.idle_rss as f64, last.idle_rss as f64),
            last.entries as f64 / first.entries as f64,
        );
    }
    Ok(())
}
