//! kill -9 in the middle of a large put: after a restart the file is either absent
//! or complete and correct, and no debris survives the start-up clean-up.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{TestNode, blob_bytes_on_disk, command, hash_file, write_random_file};

const MIB: u64 = 1024 * 1024;

fn kill_during_put(kill_after_chunks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    node.ok(&["put", "-", "--name", "unrelated"]);
    let input = dir.path().join("big.bin");
    let hash = write_random_file(&input, 256 * MIB, 5);
    let mut put = command()
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "put",
            input.to_str().unwrap(),
            "--name",
            "big",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the put is visibly under way, then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(60);
    while blob_bytes_on_disk(&data) < kill_after_chunks as u64 * MIB {
        assert!(
            Instant::now() < deadline,
            "the put never started writing chunks"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    let _ = put.wait();

    let node = TestNode::start(&data);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&node.ok(&["ls", "--json"])).unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"unrelated".to_string()));
    if names.contains(&"big".to_string()) {
        let out = dir.path().join("big.out");
        node.ok(&["get", "big", "-o", out.to_str().unwrap()]);
        assert_eq!(
            hash_file(&out),
            hash,
            "a listed file must be complete and correct"
        );
    }
    // The start-up clean-up runs in the background; give it a moment, then no
    // space may be taken that no live file needs: each blob takes its bytes
    // rounded up to whole 4 KiB blocks, and nothing else.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
        let used = status["storage"]["used_bytes"].as_u64().unwrap();
        let on_disk = blob_bytes_on_disk(&data);
        let padding = (used / MIB + 2) * 4096;
        if on_disk >= used && on_disk - used <= padding {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "debris remains: {on_disk} bytes on disk, {used} accounted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(node.ok(&["verify"]).contains("verified"));
}

#[test]
fn kill_9_early_in_a_large_put_leaves_no_half_file() {
    kill_during_put(3);
}

#[test]
fn kill_9_late_in_a_large_put_leaves_no_half_file() {
    kill_during_put(200);
}
