//! `tree`: a folder of many files, mostly small, stored with `put -r` and read
//! back with `get -r` on a three-node vault (three copies), against `cp -r` of
//! the same folder followed by `sync`; then the cost of a change: a 100-byte
//! insertion into a large file put again, as bytes sent per byte changed.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use peervault::control::proto::{Request, Response};

use crate::node::{BenchNode, start_three};
use crate::report::{Row, throughput_table};

pub struct TreeArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub files: usize,
    /// No file is larger than this.
    pub max_file_size: usize,
}

/// The size of file `i`: nine in ten small (1-16 KiB), one in eleven medium
/// (64-512 KiB), one in a hundred large (2-4 MiB).
fn size_of(i: usize) -> usize {
    let spread = (i * 7919) % 1000;
    match i % 100 {
        0 => (2 << 20) + spread * 2048,
        1..=9 => (64 << 10) + spread * 448,
        _ => 1024 + spread * 15,
    }
}

/// Writes the tree: `files` files, 100 to a folder, two levels deep.
fn make_tree(root: &Path, files: usize, max_file_size: usize) -> anyhow::Result<u64> {
    let mut total = 0;
    for i in 0..files {
        let dir = root.join(format!("d{}/e{}", i / 1000, (i / 100) % 10));
        std::fs::create_dir_all(&dir)?;
        let mut body = vec![0u8; size_of(i).min(max_file_size)];
        blake3::Hasher::new()
            .update(&(i as u64).to_le_bytes())
            .finalize_xof()
            .fill(&mut body);
        std::fs::write(dir.join(format!("f{i}.bin")), &body)?;
        total += body.len() as u64;
    }
    Ok(total)
}

/// Runs a command to success, timed.
fn timed(command: &mut Command) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = command.output().context("cannot run a command")?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed().as_secs_f64())
}

fn cli(bin: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("--data-dir").arg(data_dir);
    command
}

async fn bytes_sent(node: &BenchNode) -> anyhow::Result<u64> {
    match node.client.call(&Request::Metrics).await? {
        Response::Metrics { metrics } => Ok(metrics.network.bytes_sent),
        other => bail!("unexpected metrics reply: {other:?}"),
    }
}

pub async fn run(args: TreeArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let nodes = start_three(args.bin, work.path()).await?;
    let source = work.path().join("tree");
    let bytes = make_tree(&source, args.files, args.max_file_size)?;
    let sync = || timed(&mut Command::new("sync"));

    // Baselines: three copies with cp -r, made durable with sync.
    sync()?;
    let mut copy_seconds = 0.0;
    for n in 0..3 {
        let to = work.path().join(format!("cp{n}"));
        copy_seconds += timed(Command::new("cp").arg("-r").arg(&source).arg(&to))?;
    }
    copy_seconds += sync()?;
    let one_copy = timed(
        Command::new("cp")
            .arg("-r")
            .arg(&source)
            .arg(work.path().join("cp-read")),
    )? + sync()?;

    let data_a = work.path().join("a");
    let peaks = |nodes: &[BenchNode; 3]| -> anyhow::Result<String> {
        let mib = |n: &BenchNode| n.peak_rss().map(|b| b as f64 / (1 << 20) as f64);
        Ok(format!(
            "{:.1} / {:.1} / {:.1} MiB",
            mib(&nodes[0])?,
            mib(&nodes[1])?,
            mib(&nodes[2])?
        ))
    };
    for node in &nodes {
        node.reset_peak_rss()?;
    }
    let put = timed(
        cli(args.bin, &data_a)
            .args(["put", "-r", "--quiet"])
            .arg(&source),
    )?;
    let put_peaks = peaks(&nodes)?;
    for node in &nodes {
        node.reset_peak_rss()?;
    }
    let get = timed(
        cli(args.bin, &work.path().join("c"))
            .args(["get", "-r", "tree", "--quiet", "-o"])
            .arg(work.path().join("back")),
    )? + sync()?;
    let get_peaks = peaks(&nodes)?;
    let again = timed(
        cli(args.bin, &data_a)
            .args(["put", "-r", "--quiet"])
            .arg(&source),
    )?;
    println!(
        "{}",
        throughput_table(&[
            Row {
                workload: format!("put -r of {} files, 3 copies", args.files),
                bytes,
                seconds: put,
                baseline: "3 × cp -r + sync".into(),
                baseline_seconds: copy_seconds,
                target: None,
            },
            Row {
                workload: format!("get -r of {} files", args.files),
                bytes,
                seconds: get,
                baseline: "cp -r + sync".into(),
                baseline_seconds: one_copy,
                target: None,
            },
        ])
    );
    println!(
        "put -r again, nothing changed: {again:.2} s ({:.0} files per second checked)",
        args.files as f64 / again
    );
    println!(
        "nodes' peak RSS (writer / b / c): during put -r {put_peaks}, during get -r from c {get_peaks}"
    );

    // A change: 100 bytes inserted into the middle of a 64 MiB file.
    let big = work.path().join("big.bin");
    let mut body = vec![0u8; 64 << 20];
    blake3::Hasher::new()
        .update(b"big")
        .finalize_xof()
        .fill(&mut body);
    std::fs::write(&big, &body)?;
    timed(cli(args.bin, &data_a).args(["put", "--quiet"]).arg(&big))?;
    let before = bytes_sent(&nodes[0]).await?;
    let middle = body.len() / 2;
    body.splice(middle..middle, std::iter::repeat_n(0x5a, 100));
    std::fs::write(&big, &body)?;
    timed(cli(args.bin, &data_a).args(["put", "--quiet"]).arg(&big))?;
    let sent = bytes_sent(&nodes[0]).await? - before;
    println!(
        "a 100-byte insertion into 64 MiB, put again with 3 copies: {sent} bytes sent to peers, {:.0} per byte changed (the whole file would be {} bytes)",
        sent as f64 / 100.0,
        2 * body.len()
    );
    for node in nodes {
        node.stop()?;
    }
    Ok(())
}
