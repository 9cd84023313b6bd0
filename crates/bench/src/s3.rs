//! `s3`: one node serving S3; a 1 GiB object uploaded and downloaded through
//! the gateway by boto3's transfer manager (multipart, parts in parallel),
//! against `peervault put` / `get` of the same size on the same vault in the
//! same run; and the node's peak RSS while it serves S3.
//!
//! The client is Python's boto3, the library most scripts use, run as a
//! child process that times only the transfer (not its own start). It runs on
//! the same machine as the node and takes CPU from it; so do the native
//! path's client and its copying, less so.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use peervault::control::proto::{Request, Response};

use crate::baseline;
use crate::local::{timed_get, timed_put};
use crate::node::BenchNode;
use crate::report::{Row, median, mib, throughput_table};
use peervault_testkit::data::write_file;

/// S3 against the native path (issue: S3 gateway).
const TARGET: f64 = 0.8;
/// The node's peak RSS for a large object through the gateway.
const RSS_BUDGET_BYTES: u64 = 64 << 20;

/// The client, written into the benchmark's directory when it runs.
const CLIENT: &str = include_str!("../s3/client.py");

pub struct S3Args<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    pub rss_size: u64,
    pub rounds: usize,
    pub part_mib: u64,
    pub drop_caches: bool,
}

/// How to run the client against one node.
struct S3Client<'a> {
    script: &'a Path,
    endpoint: String,
    id: String,
    secret: String,
    part_mib: u64,
}

impl S3Client<'_> {
    /// `op` ("put" or "get") of `file` as `bucket/key`; the seconds the client timed.
    fn run(&self, op: &str, key: &str, file: &Path) -> anyhow::Result<f64> {
        let out = Command::new("python3")
            .arg(self.script)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_ACCESS_KEY_ID", &self.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("S3_ENDPOINT", &self.endpoint)
            .env("BUCKET", "bench")
            .env("KEY", key)
            .env("FILE", file)
            .env("OP", op)
            .env("PART_MIB", self.part_mib.to_string())
            .output()
            .context("cannot run python3")?;
        if !out.status.success() {
            bail!(
                "the S3 client failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix(op)?.trim().parse().ok())
            .with_context(|| format!("no time in the client's output: {text}"))
    }
}

pub async fn run(args: S3Args<'_>) -> anyhow::Result<()> {
    let have_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_boto3 {
        bail!("the s3 workload needs python3 with boto3 (pip install boto3==1.43.11)");
    }
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let script = work.path().join("client.py");
    std::fs::write(&script, CLIENT)?;
    let native_input = work.path().join("native.bin");
    let s3_input = work.path().join("s3.bin");
    let drop_caches = || args.drop_caches && baseline::drop_caches();

    let s3_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let node = BenchNode::start_with(
        args.bin,
        &work.path().join("node"),
        &["-s3", &s3_addr.to_string()],
    )?;
    let key = match node
        .client
        .call(&Request::S3KeyCreate {
            name: "bench".into(),
        })
        .await?
    {
        Response::S3Key { key } => key,
        other => bail!("unexpected reply to s3 keys create: {other:?}"),
    };
    let client = S3Client {
        script: &script,
        endpoint: format!("http://{s3_addr}"),
        id: key.access_key_id,
        secret: key.secret_access_key,
        part_mib: args.part_mib,
    };

    let (mut put, mut get) = (vec![], vec![]);
    let (mut s3_put, mut s3_get, mut s3_stream) = (vec![], vec![], vec![]);
    let mut s3_peak = 0;
    for round in 0..args.rounds {
        // New content for every transfer: a repeated one would only deduplicate.
        write_file(&native_input, args.size, 2 * round as u64 + 1)?;
        write_file(&s3_input, args.size, 2 * round as u64 + 2)?;
        let name = format!("native-{round}");
        drop_caches();
        put.push(timed_put(&node, &name, &native_input, 1).await?);
        drop_caches();
        get.push(timed_get(&node, &name).await?);

        let key = format!("s3-{round}");
        node.reset_peak_rss()?;
        drop_caches();
        s3_put.push(client.run("put", &key, &s3_input)?);
        drop_caches();
        s3_get.push(client.run("get", &key, &s3_input)?);
        drop_caches();
        s3_stream.push(client.run("stream", &key, &s3_input)?);
        s3_peak = s3_peak.max(node.peak_rss()?);
    }
    std::fs::remove_file(&native_input)?;
    let rows = [
        Row {
            workload: format!("s3 PutObject (boto3, {} MiB parts)", args.part_mib),
            bytes: args.size,
            seconds: median(&s3_put),
            baseline: "peervault put".into(),
            baseline_seconds: median(&put),
            target: Some(TARGET),
        },
        Row {
            workload: "s3 GetObject (boto3, one stream)".into(),
            bytes: args.size,
            seconds: median(&s3_stream),
            baseline: "peervault get".into(),
            baseline_seconds: median(&get),
            target: Some(TARGET),
        },
        Row {
            workload: format!("s3 GetObject (boto3, {} MiB ranges)", args.part_mib),
            bytes: args.size,
            seconds: median(&s3_get),
            baseline: "peervault get".into(),
            baseline_seconds: median(&get),
            target: Some(TARGET),
        },
    ];
    let mut rss_lines = vec![format!(
        "node peak RSS while serving S3 (1 put and 1 get of {} at a time): {}",
        mib(args.size),
        mib(s3_peak)
    )];
    if args.rss_size > 0 {
        write_file(&s3_input, args.rss_size, u64::MAX)?;
        node.reset_peak_rss()?;
        client.run("put", "rss", &s3_input)?;
        client.run("get", "rss", &s3_input)?;
        client.run("stream", "rss", &s3_input)?;
        let peak = node.peak_rss()?;
        rss_lines.push(format!(
            "node peak RSS for an S3 put and gets (ranges, one stream) of {}: {} (budget {}: {})",
            mib(args.rss_size),
            mib(peak),
            mib(RSS_BUDGET_BYTES),
            if peak < RSS_BUDGET_BYTES {
                "✓"
            } else {
                "✗"
            }
        ));
    }
    std::fs::remove_file(&s3_input)?;
    if let Response::Status { status } = node.client.call(&Request::Status).await? {
        let t = &status.transfer_memory;
        rss_lines.push(format!(
            "transfer buffers over the run: peak {} of the {} budget, {} waits for buffers",
            mib(t.peak_bytes),
            mib(t.budget_bytes),
            t.waits
        ));
    }
    node.stop()?;

    println!("{}", throughput_table(&rows));
    for line in rss_lines {
        println!("{line}");
    }
    Ok(())
}
