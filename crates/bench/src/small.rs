//! `small`: many 4 KiB files with three copies each, through the client API, against
//! creating, writing and fsyncing three times as many files directly: the cost of
//! per-file durability and replication when there is little data to amortise it.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use peervault::control::proto::Response;

use crate::node::start_three;
use crate::report::{Row, throughput_table};

const TARGET: f64 = 0.3;
const FILE_BYTES: usize = 4096;

pub struct SmallArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub files: usize,
    pub concurrency: usize,
}

/// Creates, writes and fsyncs `count` files of `FILE_BYTES`, one after another.
fn raw_files(dir: &Path, count: usize) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let body = vec![0x5au8; FILE_BYTES];
    let start = Instant::now();
    for i in 0..count {
        let mut file = std::fs::File::create(dir.join(format!("{i}.bin")))?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(dir)?;
    Ok(seconds)
}

/// Distinct contents per file, so nothing is deduplicated.
fn contents(i: usize) -> Vec<u8> {
    let mut out = vec![0u8; FILE_BYTES];
    blake3::Hasher::new()
        .update(&(i as u64).to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

pub async fn run(args: SmallArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let nodes = start_three(args.bin, work.path()).await?;
    let raw = raw_files(&work.path().join("raw"), 3 * args.files)?;

    // Up to `concurrency` puts in flight, each on its own control connection, as a
    // backup script storing a directory would do.
    let client = &nodes[0].client;
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.files)
        .map(|i| async move {
            let body = contents(i);
            let reply = client
                .put(
                    &format!("small-{i}"),
                    Some(FILE_BYTES as u64),
                    &body[..],
                    &mut |_| {},
                )
                .await?;
            match reply {
                Response::Stored { copies, .. } if copies >= 3 => Ok(()),
                other => bail!("file {i} was not stored with 3 copies: {other:?}"),
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let put = start.elapsed().as_secs_f64();
    let bytes = (args.files * FILE_BYTES) as u64;
    println!(
        "{}",
        throughput_table(&[Row {
            workload: format!(
                "small files ({} × 4 KiB, 3 copies, {} at a time)",
                args.files, args.concurrency
            ),
            bytes,
            seconds: put,
            baseline: format!("{} × create+write+fsync", 3 * args.files),
            baseline_seconds: raw,
            target: Some(TARGET),
        }])
    );
    println!(
        "files per second: {:.0} (baseline: {:.0} files, i.e. {:.0} per 3 copies)",
        args.files as f64 / put,
        3.0 * args.files as f64 / raw,
        args.files as f64 / raw
    );
    for node in nodes {
        node.stop()?;
    }
    Ok(())
}
