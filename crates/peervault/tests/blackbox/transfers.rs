//! Moving copies between named peers, and reads spread over several holders.

use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, eventually, hash_file, stderr, write_random_file};

const MIB: u64 = 1024 * 1024;
const CONNECT: Duration = Duration::from_secs(30);

fn join(data: &std::path::Path, port: u16, extra: &[&str]) -> TestNode {
    let bootstrap = format!("localhost:{port}");
    let mut args = vec!["-bootstrap", bootstrap.as_str()];
    args.extend_from_slice(extra);
    TestNode::start_with(data, TEST_KEY, &args)
}

fn peers_json(node: &TestNode) -> Vec<serde_json::Value> {
    serde_json::from_str(&node.ok(&["peers", "--json"])).unwrap()
}

fn chunk_bytes_sent(node: &TestNode) -> u64 {
    let m: serde_json::Value = serde_json::from_str(&node.ok(&["metrics", "--json"])).unwrap();
    m["network"]["bytes_sent"].as_u64().unwrap()
}

fn holds(node: &TestNode, name: &str) -> bool {
    node.ls()
        .iter()
        .any(|f| f["name"] == name && f["local"] == true)
}

#[test]
fn peers_show_health_and_a_peer_can_be_named_by_number_id_or_address() {
    let dir = tempfile::tempdir().unwrap();
    let one = ["--replicas", "1"];
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &one);
    let b = join(&dir.path().join("b"), a.port(), &one);
    let c = join(&dir.path().join("c"), a.port(), &one);
    for node in [&a, &b, &c] {
        node.wait_peers(2, CONNECT);
    }
    // Pings every 5 s give each peer a round-trip time.
    eventually("every peer has a round-trip time", CONNECT, || {
        peers_json(&a).iter().all(|p| p["rtt_ms"].is_number())
    });
    let peers = peers_json(&a);
    assert_eq!(peers.len(), 2);
    for (i, peer) in peers.iter().enumerate() {
        assert_eq!(peer["number"], i + 1);
        assert!(peer["rtt_ms"].as_f64().unwrap() < 1000.0, "{peer}");
        assert!(peer["last_seen_seconds"].as_f64().unwrap() < 30.0, "{peer}");
        assert_eq!(peer["source"], "inbound", "{peer}");
        assert!(
            peer["address"]
                .as_str()
                .unwrap()
                .starts_with("/ip4/127.0.0.1/tcp/"),
            "{peer}"
        );
    }
    let table = a.ok(&["peers"]);
    assert!(table.contains("Connected Peers (2):"), "{table}");
    assert!(table.contains(&b.peer_id()) && table.contains(&c.peer_id()));

    let input = dir.path().join("single.bin");
    let hash = write_random_file(&input, 3 * MIB, 21);
    let out = a.ok(&["put", input.to_str().unwrap()]);
    assert!(out.contains("1 of 1 copies durable"), "{out}");

    // By peer id.
    let to_b = a.ok(&["send", "single.bin", &b.peer_id()]);
    assert!(to_b.contains("sent to"), "{to_b}");
    assert!(holds(&b, "single.bin"));
    // By address, as `peers` shows it.
    let c_addr = peers_json(&a)
        .into_iter()
        .find(|p| p["peer_id"] == c.peer_id())
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let to_c = a.ok(&["send", "single.bin", &c_addr]);
    assert!(to_c.contains("sent to"), "{to_c}");
    assert!(holds(&c, "single.bin"));

    // A name that matches no peer is a clear error.
    let wrong = a.cli(&["send", "single.bin", "12D3KooWNotAPeer"]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("no connected peer matches"),
        "{}",
        stderr(&wrong)
    );

    // `fetch` pulls from that one peer and makes this node a holder.
    let input2 = dir.path().join("pulled.bin");
    let hash2 = write_random_file(&input2, 2 * MIB + 17, 22);
    b.ok(&["put", input2.to_str().unwrap()]);
    eventually("a learns of pulled.bin", CONNECT, || {
        a.ls().iter().any(|f| f["name"] == "pulled.bin")
    });
    assert!(!holds(&a, "pulled.bin"));
    let fetched = a.ok(&["fetch", "pulled.bin", &b.peer_id()]);
    assert!(
        fetched.contains("fetched from") && fetched.contains("3 chunks copied"),
        "{fetched}"
    );
    assert!(holds(&a, "pulled.bin"));
    // It is a real local copy: readable with its holder gone.
    drop(b);
    let copy = dir.path().join("copy.bin");
    a.ok(&["get", "pulled.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash2);
    let copy = dir.path().join("copy-single.bin");
    c.ok(&["get", "single.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);
}

#[test]
fn a_node_holding_nothing_reads_chunks_from_several_holders_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let b = join(&dir.path().join("b"), a.port(), &[]);
    let c = join(&dir.path().join("c"), a.port(), &[]);
    for node in [&a, &b, &c] {
        node.wait_peers(2, CONNECT);
    }
    let input = dir.path().join("spread.bin");
    let hash = write_random_file(&input, 24 * MIB, 23);
    a.ok(&["put", input.to_str().unwrap()]);
    let reader = join(&dir.path().join("d"), a.port(), &["--replicas", "3"]);
    reader.wait_peers(3, CONNECT);
    eventually("the reader lists the file", CONNECT, || {
        !reader.ls().is_empty()
    });
    assert!(!holds(&reader, "spread.bin"));
    let before: Vec<u64> = [&a, &b, &c].iter().map(|n| chunk_bytes_sent(n)).collect();
    let copy = dir.path().join("copy.bin");
    reader.ok(&["get", "spread.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);
    let served: Vec<u64> = [&a, &b, &c]
        .iter()
        .zip(&before)
        .map(|(n, b)| chunk_bytes_sent(n) - b)
        .collect();
    let total: u64 = served.iter().sum();
    assert!(total >= 24 * MIB, "{served:?}");
    // Every holder served a share: the read was spread, not one peer after another.
    for (i, bytes) in served.iter().enumerate() {
        assert!(
            *bytes >= 2 * MIB,
            "holder {i} served only {bytes} bytes of {total}: {served:?}"
        );
    }
    assert!(!holds(&reader, "spread.bin"), "reading makes no copy");
}

/// One reading of a counter: the node read `value` at some moment between
/// `asked` and `answered` (on a loaded machine an answer can take 100 ms).
struct Sample {
    asked: std::time::Instant,
    answered: std::time::Instant,
    value: u64,
}

/// Samples a counter of `node`'s `/metrics/json` every 100 ms until `stop`.
fn sample_counter(
    url: String,
    section: &'static str,
    key: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        // Bounded: at most 10 minutes of samples.
        for _ in 0..6000 {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let asked = std::time::Instant::now();
            let (code, body) = crate::harness::http_get(&format!("{url}/metrics/json"));
            if code == 200 {
                let m: serde_json::Value = serde_json::from_str(&body).unwrap();
                samples.push(Sample {
                    asked,
                    answered: std::time::Instant::now(),
                    value: m[section][key].as_u64().unwrap(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        samples
    })
}

/// Checks that between any two samples at least a second apart the counter
/// rose by no more than `rate` allows (with the bucket's burst and one chunk).
/// The span is the longest the two readings can have been apart (from the
/// first's question to the second's answer), so that a slow answer to the
/// sampler is not taken for a burst of the node's.
fn assert_within_rate(samples: &[Sample], rate: u64, what: &str) {
    assert!(samples.len() > 10, "too few samples of {what}");
    let slack = (rate / 10 + 2 * MIB) as f64;
    let mut worst: f64 = 0.0;
    for (i, first) in samples.iter().enumerate() {
        for second in &samples[i + 1..] {
            let span = second.answered.duration_since(first.asked).as_secs_f64();
            if span < 1.0 {
                continue;
            }
            let rose = (second.value - first.value) as f64;
            worst = worst.max(rose / span);
            assert!(
                rose <= rate as f64 * span + slack,
                "{what} rose {rose} bytes in {span:.2} s, over {rate} bytes/s"
            );
        }
    }
    eprintln!(
        "{what}: fastest rise over >= 1 s was {:.1} MB/s (limit {:.1} MB/s)",
        worst / MIB as f64,
        rate as f64 / MIB as f64
    );
}

#[test]
fn bandwidth_limits_hold_over_every_window_and_change_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(
        &dir.path().join("a"),
        TEST_KEY,
        &[
            "--replicas",
            "2",
            "--max-upload-rate",
            "20MB",
            "-metrics",
            "127.0.0.1:0",
        ],
    );
    let b = join(
        &dir.path().join("b"),
        a.port(),
        &["--replicas", "2", "-metrics", "127.0.0.1:0"],
    );
    a.wait_peers(1, CONNECT);
    b.wait_peers(1, CONNECT);
    assert!(
        a.ok(&["status"])
            .contains("Bandwidth:       upload 20.00 MB/s, download unlimited")
    );
    let input = dir.path().join("big.bin");
    let hash = write_random_file(&input, 60 * MIB, 8);

    // A put of 60 MB copied to b at most at 20 MB/s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_counter(a.metrics_url(), "network", "bytes_sent", stop.clone());
    let started = std::time::Instant::now();
    let out = a.ok(&["put", input.to_str().unwrap()]);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(out.contains("2 of 2 copies durable"), "{out}");
    eprintln!("put of 60 MB at --max-upload-rate 20MB took {took:?}");
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert_within_rate(&sampler.join().unwrap(), 20 * MIB, "a's bytes sent");

    // At run time: no upload limit on a, a download limit on b, which reads
    // the file from a after dropping its own copy.
    let shown = a.ok(&["limits", "set", "--upload", "off"]);
    assert!(shown.contains("upload unlimited"), "{shown}");
    let shown = b.ok(&["limits", "set", "--download", "20MB"]);
    assert!(shown.contains("download 20.00 MB/s"), "{shown}");
    let limits: serde_json::Value = serde_json::from_str(&b.ok(&["limits", "--json"])).unwrap();
    assert_eq!(limits["download_bytes_per_second"], 20 * MIB);
    b.ok(&["clean", "big.bin", "--yes"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_counter(b.metrics_url(), "network", "bytes_received", stop.clone());
    let copy = dir.path().join("copy.bin");
    let started = std::time::Instant::now();
    b.ok(&["get", "big.bin", "-o", copy.to_str().unwrap()]);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("get of 60 MB at a download limit of 20MB took {took:?}");
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert_eq!(hash_file(&copy), hash);
    assert_within_rate(&sampler.join().unwrap(), 20 * MIB, "b's bytes received");
    // A bad rate is refused with the way to write it.
    let bad = b.cli(&["limits", "set", "--upload", "fast"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("write bytes per second as 20MB"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_new_version_sends_and_stores_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(
        &dir.path().join("a"),
        TEST_KEY,
        &["--replicas", "2", "-metrics", "127.0.0.1:0"],
    );
    let b = join(&dir.path().join("b"), a.port(), &["--replicas", "2"]);
    a.wait_peers(1, CONNECT);
    b.wait_peers(1, CONNECT);
    let input = dir.path().join("disk.img");
    write_random_file(&input, 256 * MIB, 26);
    a.ok(&["put", input.to_str().unwrap()]);
    let used = |n: &TestNode| -> u64 {
        let q: serde_json::Value = serde_json::from_str(&n.ok(&["quota", "--json"])).unwrap();
        q["used_bytes"].as_u64().unwrap()
    };
    let (sent_before, a_before, b_before) = (chunk_bytes_sent(&a), used(&a), used(&b));

    // 100 bytes inserted in the middle: every byte after them moves.
    let mut bytes = std::fs::read(&input).unwrap();
    let middle = bytes.len() / 2;
    bytes.splice(middle..middle, std::iter::repeat_n(0xAB, 100));
    std::fs::write(&input, &bytes).unwrap();
    let out = a.ok(&["put", input.to_str().unwrap()]);
    assert!(out.contains("2 of 2 copies durable"), "{out}");

    let sent = chunk_bytes_sent(&a) - sent_before;
    let (a_grew, b_grew) = (used(&a) - a_before, used(&b) - b_before);
    eprintln!(
        "a new version with 100 bytes inserted: {sent} bytes sent, {a_grew} and {b_grew} bytes more stored"
    );
    for (what, bytes) in [
        ("sent", sent),
        ("stored on a", a_grew),
        ("stored on b", b_grew),
    ] {
        assert!(
            bytes < 8 * MIB,
            "{what}: {bytes} bytes for a 100-byte change"
        );
    }
    // And the new version reads back on the peer, byte for byte.
    let copy = dir.path().join("copy.img");
    b.ok(&["get", "disk.img", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), blake3::hash(&bytes));
}
