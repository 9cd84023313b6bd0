//! Every benchmark workload on tiny sizes, so that the benchmark cannot rot. Nothing
//! about time is asserted: only that each workload completes and prints its table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// The `peervault` binary the workspace build puts beside this benchmark.
fn peervault() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_peervault-bench"));
    let bin = bench.with_file_name("peervault");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p peervault), or run the workspace tests",
        bin.display()
    );
    bin
}

/// True if python3 has boto3 (the `s3` workload's client); under CI it must.
fn have_boto3() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = "python3 with boto3 is missing (.ci/run installs it): skipping the s3 workload";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("{why}");
    }
    ok
}

#[test]
fn every_workload_runs_on_small_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let peervault = peervault();
    // Each workload with a word its table's header must contain.
    for (workload, header) in [
        (
            &[
                "local",
                "--size",
                "3MiB",
                "--rss-size",
                "0",
                "--rounds",
                "1",
            ][..],
            "ratio",
        ),
        (
            &[
                "cluster",
                "--size",
                "3MiB",
                "--rounds",
                "2",
                "--rss-size",
                "3MiB",
            ][..],
            "ratio",
        ),
        (&["small", "--files", "20"][..], "ratio"),
        (
            &["rekey", "--size", "3MiB", "--rounds", "1"][..],
            "during rekey --all",
        ),
        (&["scale", "--entries", "20,40"][..], "sync to a new node"),
        (
            &[
                "s3",
                "--size",
                "11MiB",
                "--part-mib",
                "5",
                "--rss-size",
                "0",
                "--rounds",
                "1",
            ][..],
            "GetObject",
        ),
    ] {
        if workload[0] == "s3" && !have_boto3() {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_peervault-bench"))
            .arg("--peervault")
            .arg(&peervault)
            .arg("--dir")
            .arg(dir.path())
            .arg("--keep-caches")
            .args(workload)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{workload:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(header) && text.contains('┌'),
            "{workload:?} printed no table:\n{text}"
        );
    }
}

/// True if this machine can make network namespaces (root, and `ip`); under
/// CI it must.
fn have_netns() -> bool {
    let probe = format!("pvsmoke{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    } else {
        let why = "network namespaces cannot be made here (root and iproute2 are needed): \
                   skipping the shaped coded workload";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("{why}");
    }
    ok
}

#[test]
fn the_coded_workload_runs_on_loopback_and_on_shaped_links() {
    let dir = tempfile::tempdir().unwrap();
    let peervault = peervault();
    let mut rates = vec!["0"];
    if have_netns() {
        rates.push("200");
    }
    for rate in rates {
        let out = Command::new(env!("CARGO_BIN_EXE_peervault-bench"))
            .arg("--peervault")
            .arg(&peervault)
            .arg("--dir")
            .arg(dir.path())
            .args(["coded", "--size", "3MiB", "--rate-mbit", rate])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "coded at {rate} Mbit/s failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("bytes stored in the vault") && text.contains("--redundancy 4+2"),
            "coded at {rate} Mbit/s printed no table:\n{text}"
        );
    }
}

#[test]
fn the_rtt_workload_runs_through_its_delay_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peervault-bench"))
        .arg("--peervault")
        .arg(peervault())
        .arg("--dir")
        .arg(dir.path())
        .args([
            "rtt",
            "--size",
            "3MiB",
            "--delay-ms",
            "5",
            "--rate-mbit",
            "200",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rtt failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("plain TCP") && text.contains("10 ms"),
        "{text}"
    );
}
