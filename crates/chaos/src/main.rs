//! `peervault-chaos`: the randomised workload checker from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peervault_chaos::checker::{self, FaultKind, Report, RunConfig};
use peervault_chaos::cluster::ClusterConfig;

#[derive(Parser)]
#[command(
    name = "peervault-chaos",
    about = "Fault injection and a workload checker for PeerVault"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a seeded workload while injecting faults, then checks the vault.
    Run {
        /// The seed (printed; give it again to replay the same operations and faults).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Operations in all (puts, overwrites, reads, deletes).
        #[arg(long, default_value_t = 200)]
        ops: usize,
        /// Seconds the workload should take (clients pause between operations).
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Clients issuing operations at once.
        #[arg(long, default_value_t = 3)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Erasure-code files as K data and M parity shards (e.g. 2+1)
        /// instead of keeping --replicas whole copies.
        #[arg(long, value_name = "K+M")]
        redundancy: Option<String>,
        /// Distinct names written.
        #[arg(long, default_value_t = 12)]
        names: usize,
        /// Faults to inject, comma-separated: kill, pause, delay, drop, stall,
        /// reset, partition, corrupt, all or none.
        #[arg(long, value_delimiter = ',', default_value = "all")]
        faults: Vec<String>,
        /// Where the nodes live [default: a temporary dir, removed unless the run fails].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The peervault binary [default: beside this program].
        #[arg(long)]
        peervault: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_faults(words: &[String]) -> anyhow::Result<Vec<FaultKind>> {
    let mut out = Vec::new();
    for word in words {
        match word.as_str() {
            "all" => out.extend(FaultKind::ALL),
            "none" => {}
            w => out.push(FaultKind::parse(w).ok_or_else(|| {
                anyhow::anyhow!("unknown fault {w:?}: use kill, pause, delay, drop, stall, reset, partition, corrupt, all or none")
            })?),
        }
    }
    Ok(out)
}

fn binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let me = std::env::current_exe()?;
    let beside = me.with_file_name("peervault");
    if beside.exists() {
        Ok(beside)
    } else {
        anyhow::bail!(
            "no peervault binary beside {}: build it or give --peervault",
            me.display()
        )
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let faults: Vec<String> = report
        .faults
        .iter()
        .map(|(k, n)| format!("{k:?} {n}").to_lowercase())
        .collect();
    println!(
        "seed {} | {} nodes | {} ops ({} writes and {} deletes acknowledged, {} reads, {} refused or failed) | faults: {} | {:.0} s",
        report.seed,
        report.nodes,
        report.ops,
        report.acked_writes,
        report.acked_deletes,
        report.reads,
        report.failed_ops,
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        },
        report.seconds
    );
    println!(
        "lost writes {} | resurrected {} | garbage reads {} | unreadable {} | divergent nodes {} | under-replicated {} | orphans after GC {} | verify failures {} | crashes {} | bans {}",
        report.lost_writes,
        report.resurrected,
        report.garbage_reads,
        report.unreadable,
        report.divergent_nodes,
        report.under_replicated,
        report.orphans_after_gc,
        report.verify_failures,
        report.crashes,
        report.bans
    );
    for problem in &report.problems {
        println!("  problem: {problem}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let Cmd::Run {
        seed,
        nodes,
        ops,
        duration,
        clients,
        replicas,
        redundancy,
        names,
        faults,
        dir,
        peervault,
        json,
    } = Args::parse().command;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    if nodes < 2 || clients == 0 {
        anyhow::bail!("a run needs at least 2 nodes and 1 client");
    }
    let temp = tempfile_dir(dir)?;
    let config = RunConfig {
        cluster: ClusterConfig {
            bin: binary(peervault)?,
            dir: temp.path.clone(),
            nodes,
            replicas,
            redundancy,
            extra: checker::NODE_FLAGS.iter().map(|s| s.to_string()).collect(),
        },
        seed,
        ops,
        clients,
        names: names.max(1),
        max_size: 3 * 1024 * 1024,
        faults: parse_faults(&faults)?,
        duration: std::time::Duration::from_secs(duration),
    };
    eprintln!(
        "peervault-chaos: seed {seed} (replay with --seed {seed}); nodes in {}",
        temp.path.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(checker::run(config))?;
    print(&report, json)?;
    if report.violations() > 0 {
        temp.keep();
        eprintln!(
            "{} violations; the nodes' data dirs and logs are kept in {}; replay: peervault-chaos run --seed {seed} --nodes {nodes} --ops {ops} --duration {duration} --clients {clients}",
            report.violations(),
            temp.path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A run directory: removed afterwards unless kept.
struct RunDir {
    path: PathBuf,
    remove: std::cell::Cell<bool>,
}

impl RunDir {
    fn keep(&self) {
        self.remove.set(false);
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.remove.get() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn tempfile_dir(given: Option<PathBuf>) -> anyhow::Result<RunDir> {
    match given {
        Some(path) => {
            std::fs::create_dir_all(&path)?;
            Ok(RunDir {
                path,
                remove: std::cell::Cell::new(false),
            })
        }
        None => {
            let path = std::env::temp_dir().join(format!(
                "peervault-chaos-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&path)?;
            Ok(RunDir {
                path,
                remove: std::cell::Cell::new(true),
            })
        }
    }
}
