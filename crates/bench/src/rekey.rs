//! `rekey`: how fast `rekey --all` re-encrypts what a node holds, against the
//! node's own `get` of the same bytes; and what a re-encryption in progress
//! costs a replicated put on the same nodes.
//!
//! Re-encryption reads, opens, seals and writes every chunk, then makes the
//! batch durable: it can go no faster than a read plus a durable write, and
//! is paced to `--rekey-rate` (256 MB/s by default) so that the node's own
//! traffic keeps the disk. The first row runs at the default pace and the
//! second unpaced, to show which bounds it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peervault::control::proto::{Request, Response};

use crate::local::{timed_get, timed_put};
use crate::node::{BenchNode, listen_port, wait_connected};

/// How long the nodes may take to connect.
const CONNECT: Duration = Duration::from_secs(30);
use crate::report::{Row, median, mib, throughput_table};
use peervault_testkit::data::write_file;

pub struct RekeyArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    pub rounds: usize,
}

/// Asks `node` to start a new epoch and re-encrypt everything; waits until
/// its own pass is done and returns the seconds from its start (when the
/// status first says running) to its end, and the bytes it re-sealed.
async fn timed_rekey_all(node: &BenchNode) -> anyhow::Result<(f64, u64)> {
    match node.client.call(&Request::Rekey { all: true }).await? {
        Response::Rekeyed { .. } => {}
        other => bail!("unexpected reply to rekey: {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut started: Option<Instant> = None;
    loop {
        let Response::Status { status } = node.client.call(&Request::Status).await? else {
            bail!("unexpected status reply");
        };
        match status.rekey.state.as_str() {
            "running" if started.is_none() => started = Some(Instant::now()),
            "done" if status.rekey.requested_unix_ms > 0 => {
                let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                return Ok((seconds, status.rekey.bytes_resealed));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("the re-encryption did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: RekeyArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-rekey-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let input = work.path().join("input.bin");
    write_file(&input, args.size, 28)?;

    // One node: re-encryption at the default pace and unpaced, against get.
    let mut get = Vec::new();
    let mut paced = Vec::new();
    let mut unpaced = Vec::new();
    for round in 0..args.rounds {
        for (rate, into) in [(None, &mut paced), (Some("100GB"), &mut unpaced)] {
            let data = work.path().join(format!("one-{round}-{}", rate.is_some()));
            let extra: Vec<&str> = rate.map(|r| vec!["--rekey-rate", r]).unwrap_or_default();
            let node = BenchNode::start_with(args.bin, &data, &extra)?;
            timed_put(&node, "big", &input, 1).await?;
            get.push(timed_get(&node, "big").await?);
            let (seconds, bytes) = timed_rekey_all(&node).await?;
            if bytes < args.size {
                bail!("re-sealed {bytes} bytes of {}", args.size);
            }
            into.push(seconds);
            node.stop()?;
            std::fs::remove_dir_all(&data)?;
        }
    }

    // Three nodes with three copies: a replicated put alone, then while every
    // node re-encrypts a vault of the same size.
    let mut put_alone = Vec::new();
    let mut put_during = Vec::new();
    for round in 0..args.rounds {
        let base = work.path().join(format!("three-{round}"));
        let a = BenchNode::start_with(args.bin, &base.join("a"), &["--replicas", "3"])?;
        let bootstrap = format!("127.0.0.1:{}", listen_port(&a).await?);
        let join = ["--replicas", "3", "-bootstrap", bootstrap.as_str()];
        let b = BenchNode::start_with(args.bin, &base.join("b"), &join)?;
        let c = BenchNode::start_with(args.bin, &base.join("c"), &join)?;
        wait_connected(&[&a, &b, &c], 2, CONNECT).await?;
        timed_put(&a, "held", &input, 1).await?;
        put_alone.push(timed_put(&a, "alone", &input, 1).await?);
        let epoch = match a.client.call(&Request::Rekey { all: true }).await? {
            Response::Rekeyed { epoch } => epoch,
            other => bail!("unexpected reply to rekey: {other:?}"),
        };
        // Until the worker takes the request (it looks every few seconds); a
        // small vault may be done before a look sees it running.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let Response::Status { status } = a.client.call(&Request::Status).await? else {
                bail!("unexpected status reply");
            };
            let this_request = status.rekey.epoch == epoch;
            if this_request && matches!(status.rekey.state.as_str(), "running" | "done") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the re-encryption did not start within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        put_during.push(timed_put(&a, "during", &input, 1).await?);
        for node in [a, b, c] {
            node.stop()?;
        }
        std::fs::remove_dir_all(&base)?;
    }

    let rows = vec![
        Row {
            workload: "rekey --all, one node (default pace)".into(),
            bytes: args.size,
            seconds: median(&paced),
            baseline: "local get".into(),
            baseline_seconds: median(&get),
            target: None,
        },
        Row {
            workload: "rekey --all, one node (unpaced)".into(),
            bytes: args.size,
            seconds: median(&unpaced),
            baseline: "local get".into(),
            baseline_seconds: median(&get),
            target: None,
        },
        Row {
            workload: "replicated put during rekey --all".into(),
            bytes: args.size,
            seconds: median(&put_during),
            baseline: "replicated put alone".into(),
            baseline_seconds: median(&put_alone),
            target: None,
        },
    ];
    println!("{}", throughput_table(&rows));
    println!(
        "{} per node re-sealed in each rekey; medians of {} rounds",
        mib(args.size),
        args.rounds
    );
    Ok(())
}
