//! Real node processes on 127.0.0.1 forming one vault.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{
    TEST_KEY, TestNode, command, eventually, free_port, hash_file, stderr, stdout,
    write_random_file,
};

const MIB: u64 = 1024 * 1024;
const CONNECT: Duration = Duration::from_secs(30);

fn bootstrap_to(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("localhost:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts a node that joins the nodes listening on `ports`.
fn join(data: &std::path::Path, ports: &[u16], extra: &[&str]) -> TestNode {
    let bootstrap = bootstrap_to(ports);
    let mut args = vec!["-bootstrap", bootstrap.as_str()];
    args.extend_from_slice(extra);
    TestNode::start_with(data, TEST_KEY, &args)
}

fn lists(node: &TestNode, name: &str) -> bool {
    node.ls().iter().any(|f| f["name"] == name)
}

#[test]
fn three_nodes_serve_a_file_after_the_writer_dies_and_a_delete_reaches_an_offline_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let pa = a.port();
    let b = join(&dir.path().join("b"), &[pa], &[]);
    let pb = b.port();
    let c = join(&dir.path().join("c"), &[pa], &[]);
    for node in [&a, &b, &c] {
        node.wait_peers(2, CONNECT);
    }

    let input = dir.path().join("big.bin");
    let hash = write_random_file(&input, 100 * MIB, 1);
    let out = a.ok(&["put", input.to_str().unwrap()]);
    assert!(out.contains("3 of 3 copies durable"), "{out}");
    let listed = b.ls();
    assert_eq!(listed[0]["replicas"], 3);
    assert_eq!(listed[0]["local"], true);

    a.kill9();
    let copy = dir.path().join("copy.bin");
    c.ok(&["get", "big.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);

    // Delete on B while C is down; C must drop the file when it returns.
    let c_peer = c.peer_id();
    c.stop();
    b.ok(&["rm", "big.bin", "--yes"]);
    assert!(!lists(&b, "big.bin"));
    let c = join(&dir.path().join("c"), &[pa, pb], &[]);
    assert_eq!(c.peer_id(), c_peer, "a restart keeps the peer id");
    eventually(
        "the returning node forgets the deleted file",
        Duration::from_secs(30),
        || !lists(&c, "big.bin"),
    );
    std::thread::sleep(Duration::from_secs(3));
    for node in [&b, &c] {
        assert!(!lists(node, "big.bin"), "the file came back");
        let get = node.cli(&["get", "big.bin"]);
        assert!(!get.status.success());
        assert!(stderr(&get).contains("no file named"), "{}", stderr(&get));
    }
}

#[test]
fn five_nodes_keep_three_copies_and_all_means_all() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestNode::start(&dir.path().join("n0"));
    let port = hub.port();
    let mut nodes = vec![hub];
    for i in 1..5 {
        nodes.push(join(&dir.path().join(format!("n{i}")), &[port], &[]));
    }
    for node in &nodes {
        node.wait_peers(4, CONNECT);
    }
    let input = dir.path().join("f.bin");
    write_random_file(&input, 3 * MIB, 2);
    nodes[2].ok(&["put", input.to_str().unwrap(), "--name", "three"]);
    // The put returns once three copies are durable; the other nodes learn
    // the name by gossip a moment later.
    let local = |n: &TestNode, name: &str| {
        n.ls()
            .into_iter()
            .find(|f| f["name"] == name)
            .map(|f| f["local"] == true)
    };
    eventually("every node lists the file", CONNECT, || {
        nodes.iter().all(|n| local(n, "three").is_some())
    });
    let holders = nodes
        .iter()
        .filter(|n| local(n, "three") == Some(true))
        .count();
    assert_eq!(holders, 3);
    let everywhere = join(&dir.path().join("n5"), &[port], &["--replicas", "all"]);
    everywhere.wait_peers(5, CONNECT);
    let out = everywhere.ok(&["put", input.to_str().unwrap(), "--name", "all"]);
    assert!(out.contains("6 of 6 copies durable"), "{out}");
    nodes.push(everywhere);
    eventually("every node lists the second file", CONNECT, || {
        nodes.iter().all(|n| local(n, "all").is_some())
    });
    for node in &nodes {
        let entry = node.ls().into_iter().find(|f| f["name"] == "all").unwrap();
        assert_eq!(entry["local"], true);
        assert_eq!(entry["replicas"], 6);
    }
}

#[test]
fn a_node_with_another_key_is_refused_both_logs_say_why_and_it_learns_no_names() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let secret = dir.path().join("secret-name.txt");
    std::fs::write(&secret, b"for members only").unwrap();
    a.ok(&["put", secret.to_str().unwrap()]);
    let bootstrap = bootstrap_to(&[a.port()]);
    // Another vault's key (a passphrase would not even start: this vault's key is
    // not a passphrase's, and the node says so).
    let other_key = "0f".repeat(32);
    let intruder = TestNode::start_with(
        &dir.path().join("x"),
        &other_key,
        &["-bootstrap", &bootstrap],
    );
    let started = Instant::now();
    eventually(
        "both sides log the mismatch",
        Duration::from_secs(10),
        || {
            a.log().contains("network key mismatch")
                && intruder.log().contains("network key mismatch")
        },
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(intruder.peer_count(), 0);
    assert_eq!(a.peer_count(), 0);
    assert!(intruder.ls().is_empty());
    for path in crate::harness::files_under(&dir.path().join("x")) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"secret-name"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_bootstrap_peer_started_ten_seconds_late_is_joined_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let b = join(&dir.path().join("b"), &[port], &[]);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(b.peer_count(), 0);
    let addr = format!("127.0.0.1:{port}");
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &["--addr", &addr]);
    b.wait_peers(1, Duration::from_secs(40));
    a.wait_peers(1, Duration::from_secs(5));
    assert!(
        b.log().contains("cannot reach bootstrap peer"),
        "{}",
        b.log()
    );
}

/// A port that accepts TCP connections and never says a word (up to 64 of them,
/// held until the test process ends).
fn stalled_peer() -> u16 {
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stalled.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in stalled.incoming().take(64) {
            held.push(conn);
        }
    });
    port
}

#[test]
fn a_stalled_peer_does_not_stall_puts_or_gets() {
    let stalled_port = stalled_peer();
    let dir = tempfile::tempdir().unwrap();
    let b = TestNode::start(&dir.path().join("b"));
    let a = join(&dir.path().join("a"), &[stalled_port, b.port()], &[]);
    a.wait_peers(1, CONNECT);
    let input = dir.path().join("f.bin");
    let hash = write_random_file(&input, 8 * MIB, 3);
    let started = Instant::now();
    let out = a.ok(&["put", input.to_str().unwrap()]);
    assert!(out.contains("2 of 3 copies"), "{out}");
    let copy = dir.path().join("copy.bin");
    b.ok(&["get", "f.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);
    assert!(a.ok(&["status"]).contains("Connected peers: 1"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_holder_vanishing_mid_transfer_does_not_stall_puts_or_gets() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &["--replicas", "2"]);
    let pa = a.port();
    let b = join(&dir.path().join("b"), &[pa], &["--replicas", "2"]);
    let c = join(&dir.path().join("c"), &[pa], &["--replicas", "2"]);
    let d = join(&dir.path().join("d"), &[pa], &["--replicas", "2"]);
    for node in [&a, &b, &c, &d] {
        node.wait_peers(3, CONNECT);
    }
    let input = dir.path().join("f.bin");
    let hash = write_random_file(&input, 150 * MIB, 4);
    a.ok(&["put", input.to_str().unwrap()]);
    let others = [b, c, d];
    eventually("every node lists the file", CONNECT, || {
        others.iter().all(|n| !n.ls().is_empty())
    });
    let holder = others
        .iter()
        .position(|n| n.ls()[0]["local"] == true)
        .expect("a second holder");
    let reader = others
        .iter()
        .position(|n| n.ls()[0]["local"] == false)
        .expect("a non-holder");

    // A get on a node holding nothing, while the writer (one of two holders) dies.
    let copy = dir.path().join("copy.bin");
    let started = Instant::now();
    let get = command()
        .args(["--data-dir", others[reader].data_dir.to_str().unwrap()])
        .args(["get", "f.bin", "-o", copy.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    let out = get.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hash_file(&copy), hash);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "get took {:?}",
        started.elapsed()
    );

    // A put whose target peer may die in the middle still finishes, on the others.
    let mut others: Vec<TestNode> = others.into_iter().collect();
    let writer = others.remove(holder);
    let input2 = dir.path().join("g.bin");
    write_random_file(&input2, 150 * MIB, 5);
    let put = command()
        .args(["--data-dir", writer.data_dir.to_str().unwrap()])
        .args(["put", input2.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    others.remove(0).kill9();
    let out = put.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("copies durable"), "{}", stdout(&out));
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "put took {:?}",
        started.elapsed()
    );
}

#[test]
fn advertise_and_public_ip_set_the_addresses_given_to_peers() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(
        &dir.path().join("a"),
        TEST_KEY,
        &["-advertise", "203.0.113.5:3000", "-public-ip"],
    );
    let status: serde_json::Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    let advertised: Vec<String> =
        serde_json::from_value(status["advertised_addrs"].clone()).unwrap();
    assert!(
        advertised.contains(&"/ip4/203.0.113.5/tcp/3000".to_string()),
        "{advertised:?}"
    );
    assert!(
        a.ok(&["status"])
            .contains("Advertised:      /ip4/203.0.113.5/tcp/3000")
    );
    let b = join(&dir.path().join("b"), &[a.port()], &[]);
    b.wait_peers(1, CONNECT);
    eventually(
        "the observed address is detected and printed",
        Duration::from_secs(15),
        || {
            a.log()
                .contains("public address detected: /ip4/127.0.0.1/tcp/")
        },
    );
    let status: serde_json::Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["advertised_addrs"].as_array().unwrap().len(),
        2,
        "{status}"
    );
    // The peer sees the advertised address among A's addresses.
    let peers: Vec<serde_json::Value> = serde_json::from_str(&b.ok(&["peers", "--json"])).unwrap();
    assert_eq!(peers[0]["peer_id"], a.peer_id());
}

#[test]
fn the_repl_lists_peers_and_sends_and_fetches_copies() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let b = TestNode::start_with(&dir.path().join("b"), TEST_KEY, &["--replicas", "1"]);
    let input = dir.path().join("solo.txt");
    std::fs::write(&input, b"one copy only").unwrap();
    let bootstrap = bootstrap_to(&[b.port()]);
    let script = format!(
        "peers\nstore {input}\nlist\nsend solo.txt 1\nstatus\nquit\n",
        input = input.display()
    );
    let mut child = command()
        .args([
            "--data-dir",
            dir.path().join("a").to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args([
            "--key",
            TEST_KEY,
            "--replicas",
            "1",
            "-bootstrap",
            &bootstrap,
            "-interactive",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The first command needs the connection: wait until the peer sees it.
    b.wait_peers(1, CONNECT);
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Connected Peers (1):",
        "✓ Healthy",
        "1 of 1 copies durable",
        "sent to",
        "Connected peers: 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
    assert_eq!(b.ls()[0]["local"], true, "b received the copy");
    let fetched = b.cli(&["fetch", "solo.txt", "1"]);
    // The REPL node has stopped, so b cannot fetch from it: a clear error, not a hang.
    assert!(!fetched.status.success());
    assert!(
        stderr(&fetched).contains("no connected peer matches"),
        "{}",
        stderr(&fetched)
    );
}

#[test]
fn the_originals_pex_chain_connects_c_to_everyone_and_discover_says_how() {
    // Bootstrap; A and B join it; C knows only A.
    let dir = tempfile::tempdir().unwrap();
    let pex = ["-discover-pex", "--pex-interval", "1s"];
    let boot = TestNode::start_with(&dir.path().join("boot"), TEST_KEY, &pex);
    let a = join(&dir.path().join("a"), &[boot.port()], &pex);
    let b = join(&dir.path().join("b"), &[boot.port()], &pex);
    a.wait_peers(1, CONNECT);
    b.wait_peers(1, CONNECT);
    let c = join(&dir.path().join("c"), &[a.port()], &pex);
    for node in [&boot, &a, &b, &c] {
        node.wait_peers(3, CONNECT);
    }
    let d: serde_json::Value = serde_json::from_str(&c.ok(&["discover", "--json"])).unwrap();
    assert_eq!(d["pex_enabled"], true);
    let source_of = |peer: &str| {
        d["known"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["peer_id"] == peer)
            .map(|k| k["source"].as_str().unwrap().to_string())
    };
    assert_eq!(source_of(&a.peer_id()).as_deref(), Some("bootstrap"), "{d}");
    assert_eq!(source_of(&b.peer_id()).as_deref(), Some("pex"), "{d}");
    assert_eq!(source_of(&boot.peer_id()).as_deref(), Some("pex"), "{d}");
    let text = c.ok(&["discover"]);
    assert!(
        text.contains("Peer Exchange (PEX): 3 known peers"),
        "{text}"
    );
    assert!(text.contains("  bootstrap: 1 peer\n"), "{text}");
    assert!(text.contains("  pex: 2 peers\n"), "{text}");
    assert!(text.contains("mDNS: off"), "{text}");
}

#[test]
fn gc_restores_a_damaged_chunk_from_a_peer_and_get_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let b = join(&dir.path().join("b"), &[a.port()], &[]);
    let c = join(&dir.path().join("c"), &[a.port()], &[]);
    for node in [&a, &b, &c] {
        node.wait_peers(2, CONNECT);
    }
    let input = dir.path().join("doc.bin");
    let hash = write_random_file(&input, 3 * MIB, 9);
    a.ok(&["put", input.to_str().unwrap()]);
    // b's copies arrived one by one into one segment file, in slots of equal size
    // (the chunks are): damage the middle of the third.
    let segments = crate::harness::segment_files(&dir.path().join("b"));
    assert_eq!(segments.len(), 1);
    let slot = std::fs::metadata(&segments[0]).unwrap().len() / 3;
    crate::harness::flip_byte(&segments[0], 2 * slot + slot / 3, 1);
    let peer_segments = || -> Vec<Vec<u8>> {
        ["a", "c"]
            .iter()
            .flat_map(|n| crate::harness::segment_files(&dir.path().join(n)))
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let peers_before = peer_segments();

    let out = b.ok(&["gc"]);
    assert!(
        out.contains(": 1 corrupted, 0 orphaned, 0 removed (1 repaired"),
        "{out}"
    );
    let copy = dir.path().join("copy.bin");
    b.ok(&["get", "doc.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);
    b.ok(&["verify"]);
    assert_eq!(peers_before, peer_segments(), "no peer's copy was touched");
}

#[test]
fn a_killed_holder_is_replaced_after_the_repair_delay() {
    let dir = tempfile::tempdir().unwrap();
    let quick = ["--repair-delay", "3s"];
    let hub = TestNode::start_with(&dir.path().join("n0"), TEST_KEY, &quick);
    let port = hub.port();
    let mut nodes = vec![hub];
    for i in 1..5 {
        nodes.push(join(&dir.path().join(format!("n{i}")), &[port], &quick));
    }
    for node in &nodes {
        node.wait_peers(4, CONNECT);
    }
    let input = dir.path().join("precious.bin");
    let hash = write_random_file(&input, 2 * MIB, 77);
    nodes[1].ok(&["put", input.to_str().unwrap()]);
    let local = |n: &TestNode| {
        n.ls()
            .iter()
            .any(|f| f["name"] == "precious.bin" && f["local"] == true)
    };
    let victim = (2..5)
        .find(|&i| local(&nodes[i]))
        .expect("a holder besides the writer");
    nodes.remove(victim).kill9();
    let killed = Instant::now();
    let replication = |n: &TestNode| {
        let m: serde_json::Value = serde_json::from_str(&n.ok(&["metrics", "--json"])).unwrap();
        m["replication"].clone()
    };
    // While the repair delay runs, the remaining holders count the file short.
    eventually(
        "a holder reports the file under-replicated",
        Duration::from_secs(3),
        || {
            nodes
                .iter()
                .any(|n| replication(n)["under_replicated"] == 1)
        },
    );
    eventually("three live copies again", Duration::from_secs(60), || {
        nodes.iter().filter(|n| local(n)).count() == 3
    });
    // The new holder has its copy a moment before the repairing node hears so
    // and counts it.
    let repaired = || -> u64 {
        nodes
            .iter()
            .map(|n| replication(n)["copies_repaired"].as_u64().unwrap())
            .sum()
    };
    eventually(
        "the repair counts its copy",
        Duration::from_secs(10),
        || repaired() >= 1,
    );
    assert_eq!(repaired(), 1, "one new copy was made");
    eventually(
        "no node counts the file short any more",
        Duration::from_secs(10),
        || {
            nodes
                .iter()
                .all(|n| replication(n)["under_replicated"] == 0)
        },
    );
    eprintln!(
        "kill -9 of a holder: 3 live copies again after {:?} (repair delay 3 s)",
        killed.elapsed()
    );
    assert!(
        nodes
            .iter()
            .any(|n| n.log().contains("repair: copied \"precious.bin\""))
    );
    for node in &nodes {
        let copy = dir.path().join("copy.bin");
        node.ok(&[
            "get",
            "precious.bin",
            "-o",
            copy.to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(hash_file(&copy), hash);
    }
}

#[test]
fn a_stalled_bootstrap_peer_does_not_stall_the_prompt() {
    use std::io::Write;
    let stalled_port = stalled_peer();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("note.txt");
    std::fs::write(&input, b"written while a peer stalls").unwrap();
    let bootstrap = bootstrap_to(&[stalled_port]);
    let mut child = command()
        .args(["--data-dir", dir.path().join("a").to_str().unwrap()])
        .args(["--addr", "127.0.0.1:0", "--key", TEST_KEY])
        .args(["-bootstrap", &bootstrap, "-interactive", "--quota", "1GB"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    let script = format!(
        "status\npeers\nstore {}\nlist\nget note.txt\nquit\n",
        input.display()
    );
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the prompt took {:?}",
        started.elapsed()
    );
    for expected in [
        "Connected peers: 0",
        "No connected peers",
        "stored successfully",
        "written while a peer stalls",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
}

#[test]
fn a_peer_that_does_not_answer_a_send_is_unavailable_not_a_users_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &["--replicas", "1"]);
    let mut b = join(&dir.path().join("b"), &[a.port()], &["--replicas", "1"]);
    a.wait_peers(1, Duration::from_secs(15));
    let input = dir.path().join("f.txt");
    std::fs::write(&input, b"for b").unwrap();
    a.ok(&["put", input.to_str().unwrap()]);
    let b_id = b.peer_id();
    b.pause();
    let started = Instant::now();
    let out = a.cli(&["send", "f.txt", &b_id]);
    b.resume();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the unavailable exit code: {err}"
    );
    assert!(err.contains("did not answer"), "{err}");
    assert!(err.contains(&b_id), "names the peer: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // Once it answers again, the same send works.
    let out = a.ok(&["send", "f.txt", &b_id]);
    assert!(out.contains("sent to"), "{out}");
}

#[test]
fn a_node_stopped_with_sigterm_starts_again_at_once_twenty_times() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestNode::start_with(&dir.path().join("hub"), TEST_KEY, &["--replicas", "1"]);
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("again");
    let input = dir.path().join("f.bin");
    for round in 0..20u64 {
        // Same data dir, same port, no pause and no retry.
        let node = join(&data, &[hub.port()], &["--addr", &addr, "--replicas", "1"]);
        node.wait_peers(1, CONNECT);
        write_random_file(&input, 300_000, round);
        let name = format!("round-{round}");
        node.ok(&["put", input.to_str().unwrap(), "--name", &name]);
        // The hub reads it from this node, over a lane this node serves.
        eventually("the hub lists it", CONNECT, || lists(&hub, &name));
        let copy = dir.path().join("copy.bin");
        hub.ok(&["get", &name, "-o", copy.to_str().unwrap(), "--force"]);
        assert_eq!(hash_file(&copy), hash_file(&input), "round {round}");
        node.stop();
    }
}
