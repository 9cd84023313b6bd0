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
