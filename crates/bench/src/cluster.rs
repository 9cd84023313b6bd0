//! `cluster`: four nodes on loopback. A replicated put (`--replicas 3`) through
//! node A, and a get on node D, which holds none of the file, against plain
//! loopback TCP carrying the same bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use peervault::control::proto::Response;

use crate::data::write_file;
use crate::node::{NodeProcess, listen_port, peers, start_three};
use crate::report::{Row, mib, throughput_table};

const TARGET: f64 = 0.6;
const BUF: usize = 1 << 20;

pub struct ClusterArgs<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub size: u64,
}

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

/// Reads `input` from `senders` senders in parallel (each sends its share) and writes
/// it to one file: the raw cost of a get from several holders.
fn tcp_fan_in(input: &Path, out: &Path, senders: usize) -> anyhow::Result<f64> {
    let len = std::fs::metadata(input)?.len();
    let share = len.div_ceil(senders as u64);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|i| {
            let input = input.to_path_buf();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut socket = TcpStream::connect(("127.0.0.1", port))?;
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
    let mut out_file = std::fs::File::create(out)?;
    let mut buf = vec![0u8; BUF];
    for _ in 0..senders {
        let (mut socket, _) = listener.accept()?;
        loop {
            let n = socket.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out_file.write_all(&buf[..n])?;
        }
    }
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    out_file.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_file(out)?;
    Ok(seconds)
}

pub async fn run(args: ClusterArgs<'_>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("peervault-bench-")
        .tempdir_in(args.dir)
        .context("cannot create the benchmark directory")?;
    let dir = |name: &str| -> PathBuf { work.path().join(name) };
    let input = dir("input.bin");
    write_file(&input, 7, args.size)?;

    let [a, b, c] = start_three(args.bin, work.path()).await?;
    let bootstrap = format!("127.0.0.1:{}", listen_port(&a).await?);
    let join = ["--replicas", "3", "-bootstrap", bootstrap.as_str()];

    let raw_put = tcp_fan_out(&input, work.path(), 2)?;
    let file = tokio::fs::File::open(&input).await?;
    let start = Instant::now();
    let reply = a
        .client
        .put("bench", Some(args.size), file, &mut |_| {})
        .await?;
    let put = start.elapsed().as_secs_f64();
    let Response::Stored { copies, .. } = reply else {
        bail!("unexpected put reply: {reply:?}");
    };
    if copies < 3 {
        bail!("only {copies} copies were made");
    }

    // D joins after the put, so it holds none of the file.
    let d = NodeProcess::start_with(args.bin, &dir("d"), &join)?;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while peers(&d).await? < 3 {
        if Instant::now() > deadline {
            bail!("node D did not connect within 30 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let raw_get = tcp_fan_in(&input, &dir("fanin.bin"), 2)?;
    let start = Instant::now();
    let got = loop {
        match d
            .client
            .get("bench", &mut tokio::io::sink(), &mut |_, _| {})
            .await
        {
            Ok(info) => break info,
            // D may not have the catalogue entry yet.
            Err(e) if start.elapsed().as_secs() < 30 && e.to_string().contains("no file named") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let get = start.elapsed().as_secs_f64();
    if got.size != args.size {
        bail!("the get returned {} bytes", got.size);
    }

    let rows = [
        Row {
            workload: "replicated put (3 copies, until all durable)".into(),
            bytes: args.size,
            seconds: put,
            baseline: "TCP to 2 receivers + fsync".into(),
            baseline_seconds: raw_put,
            target: TARGET,
        },
        Row {
            workload: "remote get (node holding nothing)".into(),
            bytes: args.size,
            seconds: get,
            baseline: "TCP from 2 senders to a file".into(),
            baseline_seconds: raw_get,
            target: TARGET,
        },
    ];
    println!("{}", throughput_table(&rows));
    for (name, node) in [("A (writer)", &a), ("B", &b), ("C", &c), ("D (reader)", &d)] {
        println!("node {name} peak RSS: {}", mib(node.peak_rss()?));
    }
    for node in [a, b, c, d] {
        node.stop()?;
    }
    Ok(())
}
