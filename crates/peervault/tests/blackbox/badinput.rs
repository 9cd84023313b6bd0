//! Hostile and malformed input on every door of a node: the P2P port, the HTTP
//! port, the control socket and the command line. Each gets a clear refusal and
//! the node keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, http_get, run, stderr};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The node answers its client, is still running, and never panicked.
fn still_serving(node: &mut TestNode) {
    assert!(node.is_running(), "the node exited:\n{}", node.log());
    node.ok(&["status"]);
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

#[test]
fn garbage_on_the_peer_port_is_refused_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(&dir.path().join("n"));
    let addr = format!("127.0.0.1:{}", node.port());
    // A connection that never says a word, held open throughout.
    let silent = TcpStream::connect(&addr).unwrap();
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random_bytes(1 << 20, 1)),
        ("a truncated hello", random_bytes(10, 2)),
        ("a hello, then garbage frames", random_bytes(64 + 70_000, 3)),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "a TLS client hello",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00],
        ),
    ];
    for (what, bytes) in &attacks {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = conn.write_all(bytes);
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut sink = Vec::new();
        // The node closes the connection (possibly after its handshake timeout),
        // having sent no more than its own sealed handshake: random-looking bytes.
        let _ = conn.read_to_end(&mut sink);
        assert!(
            sink.len() <= 512,
            "{what}: the node answered {} bytes",
            sink.len()
        );
        assert!(
            !sink
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"peervault")),
            "{what}: something readable came back"
        );
        still_serving(&mut node);
    }
    // A real peer still joins and the vault works across it.
    let bootstrap = format!("localhost:{}", node.port());
    let peer = TestNode::start_with(&dir.path().join("p"), TEST_KEY, &["-bootstrap", &bootstrap]);
    peer.wait_peers(1, Duration::from_secs(30));
    let input = dir.path().join("f.txt");
    std::fs::write(&input, b"after the attack").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
    drop(silent);
    still_serving(&mut node);
}

/// Sends raw bytes to the HTTP port; returns what came back within a few seconds.
fn raw_http(addr: &str, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = conn.write_all(bytes);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn malformed_http_gets_an_error_and_the_dashboard_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_with(
        &dir.path().join("n"),
        TEST_KEY,
        &["-metrics", "127.0.0.1:0"],
    );
    let base = node.metrics_url();
    let addr = base.trim_start_matches("http://").to_string();
    // Over hyper's 408 KiB header buffer (a 200 KB header is within it, and was
    // answered or cut off depending on when the server saw the write side close).
    let huge_header = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1_000_000)
    );
    let half_open = TcpStream::connect(&addr).unwrap();
    (&half_open).write_all(b"GET /metri").unwrap();
    for (what, bytes) in [
        ("garbage", random_bytes(4096, 9)),
        ("a bad request line", b"NONSENSE\r\n\r\n".to_vec()),
        (
            "an unknown version",
            b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        ),
        ("a huge header", huge_header.into_bytes()),
        (
            "a path that climbs",
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ] {
        let answer = raw_http(&addr, &bytes);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{what}: {answer:.200}"
        );
        assert!(!answer.contains("root:"), "{what}");
    }
    let (code, _) = http_get(&format!("{base}/health"));
    assert_eq!(code, 200);
    drop(half_open);
    still_serving(&mut node);
}

#[test]
fn malformed_control_requests_are_errors_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = TestNode::start(&data);
    let socket = data.join("control.sock");
    let send = |bytes: &[u8]| {
        let mut conn = UnixStream::connect(&socket).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = conn.write_all(bytes);
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        out
    };
    let frame = |tag: u8, body: &[u8]| {
        let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        out.push(tag);
        out.extend_from_slice(body);
        out
    };
    for bytes in [
        random_bytes(10_000, 4),
        u32::MAX.to_be_bytes().to_vec(),
        frame(b'Q', b"unknown tag"),
        frame(b'J', b"{not json"),
        frame(b'J', br#"{"op":"no_such_request"}"#),
        // A put whose client vanishes after a few data frames.
        [
            frame(b'J', br#"{"op":"put","name":"half.bin","size":10000000}"#),
            frame(b'D', &random_bytes(100_000, 5)),
        ]
        .concat(),
    ] {
        let _ = send(&bytes);
        still_serving(&mut node);
    }
    assert!(node.ls().is_empty(), "no partial file appeared");
    // Whatever the failed upload wrote is given back (once the node has seen its
    // client go).
    crate::harness::eventually(
        "the failed upload's space is given back",
        std::time::Duration::from_secs(20),
        || crate::harness::blob_bytes_on_disk(&data) == 0,
    );
    let out = node.ok(&["gc", "--json"]);
    let gc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(gc["corrupted"], 0);
}

#[test]
fn every_option_refuses_a_bad_value_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-config.toml");
    let as_file = dir.path().join("a-file");
    std::fs::write(&as_file, b"x").unwrap();
    let cases: Vec<(Vec<String>, &str)> = [
        (vec!["--addr", "host:notaport"], "--addr"),
        (vec!["--addr", "[::1"], "--addr"),
        (
            vec!["--config", missing.to_str().unwrap()],
            "no-such-config",
        ),
        (vec!["--log-level", "debug=extreme"], "--log-level"),
        (vec!["--log-format", "xml"], "--log-format"),
        (vec!["--quota=-5GB"], "--quota"),
        (vec!["--quota", "0"], "--quota"),
        (vec!["--advertise", "nowhere"], "--advertise"),
        (vec!["--bootstrap", "a:1,,b"], "--bootstrap"),
        (vec!["--metrics", "localhost:99999"], "--metrics"),
        (vec!["--max-peers", "many"], "--max-peers"),
        (vec!["--sync-interval", "0s"], "--sync-interval"),
        (vec!["--replicas=-1"], "--replicas"),
        (vec!["--pex-interval", "often"], "--pex-interval"),
        (vec!["--gc-interval", "1x"], "--gc-interval"),
        (vec!["--gc-delay", "soon"], "--gc-delay"),
        (vec!["--gc-grace", "0s"], "--gc-grace"),
        (vec!["--repair-delay", "later"], "--repair-delay"),
        (
            vec!["--tombstone-retention", "forever"],
            "--tombstone-retention",
        ),
        (vec!["--key", ""], "--key"),
    ]
    .into_iter()
    .map(|(args, word)| (args.into_iter().map(String::from).collect(), word))
    .collect();
    for (args, word) in cases {
        let mut full: Vec<&str> = vec!["--data-dir", as_file.to_str().unwrap()];
        full.extend(args.iter().map(String::as_str));
        let out = run(&full);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(word), "{args:?} should name {word}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&as_file).unwrap(),
        b"x",
        "nothing was touched"
    );
}
