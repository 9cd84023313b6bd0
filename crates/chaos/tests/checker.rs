//! The randomised workload checker in its short, seeded form: real processes on
//! 127.0.0.1, every kind of fault, and every invariant checked. The long form is
//! `peervault-chaos run` (see RELIABILITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use peervault_chaos::checker::{self, FaultKind, RunConfig};
use peervault_chaos::cluster::ClusterConfig;

fn peervault() -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_peervault-chaos"));
    let bin = me.with_file_name("peervault");
    assert!(
        bin.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace)",
        bin.display()
    );
    bin
}

async fn run(seed: u64, nodes: usize, ops: usize, seconds: u64, faults: Vec<FaultKind>) {
    run_kept(seed, nodes, ops, seconds, faults, None).await
}

async fn run_kept(
    seed: u64,
    nodes: usize,
    ops: usize,
    seconds: u64,
    faults: Vec<FaultKind>,
    redundancy: Option<&str>,
) {
    let dir = tempfile::tempdir().unwrap();
    let report = checker::run(RunConfig {
        cluster: ClusterConfig {
            bin: peervault(),
            dir: dir.path().to_path_buf(),
            nodes,
            replicas: 3,
            redundancy: redundancy.map(str::to_string),
            extra: checker::NODE_FLAGS.iter().map(|s| s.to_string()).collect(),
        },
        seed,
        ops,
        clients: 3,
        names: 8,
        max_size: 2 * 1024 * 1024 + 17,
        faults,
        duration: Duration::from_secs(seconds),
    })
    .await
    .unwrap();
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    assert!(
        report.acked_writes > ops / 5,
        "the workload did work: {report:?}"
    );
    assert!(
        report.faults.values().sum::<usize>() >= seconds as usize / 4,
        "faults were injected: {report:?}"
    );
    assert_eq!(
        report.violations(),
        0,
        "seed {seed}: {:#?}",
        report.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_seeded_run_with_every_fault_loses_nothing() {
    run(20261201, 4, 120, 25, FaultKind::ALL.to_vec()).await;
}

/// The same with erasure-coded files (2+1 on four nodes: every file on
/// three of them, one shard index each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_seeded_coded_run_with_every_fault_loses_nothing() {
    run_kept(20261207, 4, 120, 25, FaultKind::ALL.to_vec(), Some("2+1")).await;
}
