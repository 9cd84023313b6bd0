//! `cluster`: four nodes on loopback. A replicated put (`--replicas 3`) through
//! node A, and a get on node D, which holds none of the file, against plain
//! loopback TCP carrying the same bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::baseline;
use crate::local::timed_put;
use crate::node::{BenchNode, listen_port, peers, start_three};
use crate::report::{Row, median, mib, throughput_table};
use peervault_testkit::data::write_file;

const TARGET: f64 = 0.6;
const BUF: usize = 1 << 20;

/// Sends `input` over loopback TCP to `receivers` receivers that each write it to a
/// file and fsync it: the raw cost of what a replicated put must do.
fn tcp_fan_out(input: &Path, out_dir: &Path, receivers: usize) -> anyhow::Result<f64> {
    let listeners: Vec<TcpListener> = (0..receivers)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let sinks: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let path = out_dir.join(format!("fanout-{i}.bin"));
            std::thread::spawn(move || -> std::io::Result<()> {
                let (mut socket, _) = listener.accept()?;
                let mut file = std::fs::File::create(&path)?;
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = socket.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n])?;
                }
                file.sync_all()?;
                std::fs::remove_file(&path)
            })
        })
        .collect();
    let mut sockets: Vec<TcpStream> = ports
        .iter()
        .map(|p| TcpStream::connect(("127.0.0.1", *p)))
        .collect::<Result<_, _>>()?;
    let mut file = std::fs::File::open(input)?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for socket in &mut sockets {
            socket.write_all(&buf[..n])?;
        }
    }
    drop(sockets);
    for sink in sinks {
        sink.join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Reads `input` from `senders` senders in parallel (each sends its share over its
/// own connection) into one file, each share written at its offset by its own
/// receiving thread: the raw cost of a get from several holders.
fn tcp_fan_in(input: &Path, out: &Path, senders: usize, sync: bool) -> anyhow::Result<f64> {
    use std::os::unix::fs::FileExt;
    let len = std::fs::metadata(input)?.len();
    let share = len.div_ceil(senders as u64);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let out_file = std::sync::Arc::new(std::fs::File::create(out)?);
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|i| {
            let input = input.to_path_buf();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut socket = TcpStream::connect(("127.0.0.1", port))?;
                socket.write_all(&(i as u64).to_be_bytes())?;
                let mut file = std::fs::File::open(input)?;
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(i as u64 * share))?;
                let mut left = share.min(len.saturating_sub(i as u64 * share));
                let mut buf = vec![0u8; BUF];
                while left > 0 {
                    let n = file.read(&mut buf[..(left.min(BUF as u64)) as usize])?;
                    if n == 0 {
                        break;
                    }
                    socket.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                Ok(())
            })
        })
        .collect();
    let mut receivers = Vec::new();
    for _ in 0..senders {
        let (mut socket, _) = listener.accept()?;
        let out_file = out_file.clone();
        receivers.push(std::thread::spawn(move || -> std::io::Result<()> {
            let mut index = [0u8; 8];
            socket.read_exact(&mut index)?;
            let mut offset = u64::from_be_bytes(index) * share;
            let mut buf = vec![0u8; BUF];
            loop {
                let n = socket.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                out_file.write_all_at(&buf[..n], offset)?;
                offset += n as u64;
            }
        }));
    }
    for t in threads.into_iter().chain(receivers) {
        t.join()
            .map_err(|_| anyhow::anyhow!("a baseline thread panicked"))??;
    }
    if sync {
        out_file.sync_all()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_file(out)?;
    Ok(seconds)
}

pub struct ClusterArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
    /// Repetitions; medians are reported.
    pub rounds: usize,
    /// Also measure every node's peak RSS for a 64 MiB file and one this large (0 skips).
    pub rss_size: u64,
    /// Whether the page cache may be dropped before each get (needs root), so that
    /// holders and baseline senders both read from disk.
    pub drop_caches: bool,
}

/// Reads `name` on `d` into a file and makes it durable, as `peervault get -o`
/// does (the node writes into the file, the client fsyncs it) and as the baseline
/// does, retrying while `d` may not have the catalogue entry yet.
async fn timed_get(d: &BenchNode, name: &str, out: &Path, size: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let got = loop {
        let file = std::fs::File::create(out)?;
        match d.client.get_into(name, file.as_fd(), &mut |_, _| {}).await {
            Ok(info) => break info,
            Err(e) if start.elapsed().as_secs() < 30 && e.to_string().contains("no file named") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    std::fs::File::open(out)?.sync_all()?;
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_file(out)?;
    if got.size != size {
        bail!("the get returned {} bytes", got.size);
    }
    Ok(seconds)
}

/// D joins after the puts, so it holds none of the files.
async fn join_reader(bin: &Path, work: &Path, a: &BenchNode) -> anyhow::Result<BenchNode> {
    let bootstrap = format!("127.0.0.1:{}", listen_port(a).await?);
    let join = ["--replicas", "3", "-bootstrap", bootstrap.as_str()];
    let d = BenchNode::start_with(bin, &work.join("d"), &join)?;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while peers(&d).await? < 3 {
        if Instant::now() > deadline {
            bail!("node D did not connect within 30 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(d)
}

pub async fn run(args: ClusterArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let dir = |name: &str| -> PathBuf { work.path().join(name) };
    let input = dir("input.bin");
    let drop_caches = || args.drop_caches && baseline::drop_caches();

    let [a, b, c] = start_three(args.bin, work.path()).await?;
    // Baselines and PeerVault alternate round after round, so that drifts of the
    // shared disk and cores hit both alike; medians are reported.
    let (mut raw_put, mut put) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // New content every round: a repeated put would only deduplicate.
        write_file(&input, args.size, 7 + round as u64)?;
        raw_put.push(tcp_fan_out(&input, work.path(), 2)?);
        put.push(timed_put(&a, &format!("bench-{round}"), &input, 3).await?);
    }
    let d = join_reader(args.bin, work.path(), &a).await?;
    let (mut raw_get, mut unsynced_get, mut get) = (Vec::new(), Vec::new(), Vec::new());
    let mut cold = false;
    for round in 0..args.rounds {
        cold = drop_caches();
        raw_get.push(tcp_fan_in(&input, &dir("fanin.bin"), 2, true)?);
        drop_caches();
        unsynced_get.push(tcp_fan_in(&input, &dir("fanin.bin"), 2, false)?);
        drop_caches();
        get.push(timed_get(&d, &format!("bench-{round}"), &dir("got.bin"), args.size).await?);
    }
    let reads = if cold { "cold" } else { "page cache" };
    let rows = [
        Row {
            workload: "replicated put (3 copies, until all durable)".into(),
            bytes: args.size,
            seconds: median(&put),
            baseline: "TCP to 2 receivers + fsync".into(),
            baseline_seconds: median(&raw_put),
            target: Some(TARGET),
        },
        Row {
            workload: format!("remote get (node holding nothing, {reads})"),
            bytes: args.size,
            seconds: median(&get),
            baseline: "TCP from 2 senders to a file + fsync".into(),
            baseline_seconds: median(&raw_get),
            target: Some(TARGET),
        },
    ];
    println!("{}", throughput_table(&rows));
    println!(
        "medians of {} rounds; the put baseline writes 2 copies, PeerVault 3",
        args.rounds
    );
    // Both sides of the get row end with the file durable, as `get -o` leaves it;
    // the same baseline without its fsync is shown for comparison.
    println!(
        "the get baseline without its fsync: {:.0} MB/s",
        args.size as f64 / 1e6 / median(&unsynced_get)
    );
    for (name, node) in [("A (writer)", &a), ("B", &b), ("C", &c), ("D (reader)", &d)] {
        println!("node {name} peak RSS: {}", mib(node.peak_rss()?));
    }
    for node in [a, b, c, d] {
        node.stop()?;
    }
    std::fs::remove_file(&input)?;
    if args.rss_size > 0 {
        for size in [64 << 20, args.rss_size] {
            rss_run(&args, size).await?;
        }
    }
    Ok(())
}

/// Fresh nodes, one replicated put and one remote get of `size` bytes: every
/// node's peak RSS, the figure the memory budget is about.
async fn rss_run(args: &ClusterArgs<'_>, size: u64) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-rss-")
        .tempdir_in(args.dir)?;
    let input = work.path().join("input.bin");
    write_file(&input, size, 99)?;
    let [a, b, c] = start_three(args.bin, work.path()).await?;
    timed_put(&a, "rss", &input, 3).await?;
    std::fs::remove_file(&input)?;
    let d = join_reader(args.bin, work.path(), &a).await?;
    timed_get(&d, "rss", &work.path().join("got.bin"), size).await?;
    let peaks: Vec<String> = [("A", &a), ("B", &b), ("C", &c), ("D", &d)]
        .iter()
        .map(|(name, node)| Ok(format!("{name} {}", mib(node.peak_rss()?))))
        .collect::<anyhow::Result<_>>()?;
    println!(
        "peak RSS for a {} put and get: {} (budget 64 MiB)",
        mib(size),
        peaks.join(", ")
    );
    for node in [a, b, c, d] {
        node.stop()?;
    }
    Ok(())
}
