//! The HTTP side of a node (`-metrics`): exact counters in all three formats,
//! Prometheus' own checker, health, the contrib files, and the dashboard in a
//! real (headless) browser.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    TEST_KEY, TestNode, eventually, http_exchange_with, http_get, write_random_file,
};

const MIB: u64 = 1024 * 1024;

/// A tool the test needs: its path, or `None` after saying why it is skipped
/// (a failure under `CI=true`).
fn tool(names: &[&str], package: &str) -> Option<PathBuf> {
    for name in names {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            return Some(PathBuf::from(path));
        }
    }
    let why = format!("{} is not installed (Debian package {package})", names[0]);
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    None
}

fn start_with_metrics(dir: &Path, extra: &[&str]) -> TestNode {
    let mut args = vec!["-metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    TestNode::start_with(dir, TEST_KEY, &args)
}

fn json(url: &str) -> serde_json::Value {
    let (code, body) = http_get(url);
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of one sample line of the Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of a metric's samples over all its labels (`None` if it has none).
fn sum_of(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[test]
fn counters_are_exact_after_a_known_sequence_in_all_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with_metrics(&dir.path().join("a"), &["--replicas", "2"]);
    let bootstrap = format!("localhost:{}", a.port());
    let b = start_with_metrics(
        &dir.path().join("b"),
        &["--replicas", "2", "-bootstrap", &bootstrap],
    );
    a.wait_peers(1, Duration::from_secs(30));
    b.wait_peers(1, Duration::from_secs(30));
    let (one, two) = (dir.path().join("one.bin"), dir.path().join("two.bin"));
    write_random_file(&one, 3 * MIB + 5, 1);
    write_random_file(&two, MIB / 2, 2);
    // 2 puts on a, each copied to b.
    a.ok(&["put", one.to_str().unwrap()]);
    a.ok(&["put", two.to_str().unwrap()]);
    let quota: serde_json::Value = serde_json::from_str(&a.ok(&["quota", "--json"])).unwrap();
    let moved = quota["used_bytes"].as_u64().unwrap();
    // 1 get, 1 delete on a.
    let out = dir.path().join("back.bin");
    a.ok(&["get", "one.bin", "-o", out.to_str().unwrap()]);
    a.ok(&["rm", "two.bin", "--yes"]);
    eventually("b forgets two.bin", Duration::from_secs(30), || {
        !b.ls().iter().any(|f| f["name"] == "two.bin")
    });

    let expect = [
        // (node, stored, retrieved, deleted, sent, received)
        (&a, 2, 1, 1, moved, 0),
        (&b, 0, 0, 0, 0, moved),
    ];
    for (node, stored, retrieved, deleted, sent, received) in expect {
        let base = node.metrics_url();
        let m = json(&format!("{base}/metrics/json"));
        assert_eq!(m["files"]["stored"], stored, "{m}");
        assert_eq!(m["files"]["retrieved"], retrieved, "{m}");
        assert_eq!(m["files"]["deleted"], deleted, "{m}");
        assert_eq!(m["network"]["bytes_sent"], sent, "{m}");
        assert_eq!(m["network"]["bytes_received"], received, "{m}");
        assert_eq!(m["network"]["peers_connected"], 1, "{m}");
        assert_eq!(m["network"]["peers_discovered"], 1, "{m}");
        assert_eq!(m["errors"]["total"], 0, "{m}");
        assert!(m["storage"]["used_bytes"].as_u64().unwrap() > 3 * MIB);
        assert_eq!(m["storage"]["total_bytes"], 10u64 << 30);
        assert!(m["system"]["uptime_seconds"].as_f64().unwrap() > 0.0);
        assert!(m["system"]["start_time"].as_str().unwrap().ends_with('Z'));
        assert!(m["system"]["last_update"].as_str().unwrap().ends_with('Z'));

        let (code, text) = http_get(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        for (name, value) in [
            ("peervault_files_stored_total", stored as f64),
            ("peervault_files_retrieved_total", retrieved as f64),
            ("peervault_files_deleted_total", deleted as f64),
            ("peervault_bytes_sent_total", sent as f64),
            ("peervault_bytes_received_total", received as f64),
            ("peervault_peers_connected", 1.0),
            ("peervault_peers_discovered", 1.0),
        ] {
            assert_eq!(sample(&text, name), Some(value), "{name} in\n{text}");
        }
        assert_eq!(sum_of(&text, "peervault_errors_total"), Some(0.0), "{text}");
        for name in [
            "peervault_storage_used_bytes",
            "peervault_storage_total_bytes",
            "peervault_storage_utilization",
            "peervault_uptime_seconds",
        ] {
            assert!(sample(&text, name).is_some(), "{name} missing");
        }

        let (code, human) = http_get(&format!("{base}/metrics/human"));
        assert_eq!(code, 200);
        for line in [
            format!("  Stored:     {stored}"),
            format!("  Retrieved:  {retrieved}"),
            format!("  Deleted:    {deleted}"),
            "  Peers Connected: 1".to_string(),
            "  Errors:  0".to_string(),
            format!("  Bytes Sent:     {}", peervault_node::HumanSize(sent)),
            format!("  Bytes Received: {}", peervault_node::HumanSize(received)),
        ] {
            assert!(human.lines().any(|l| l == line), "{line:?} in\n{human}");
        }
        // The client command shows the same figures, as JSON and in the
        // original's layout.
        let cli: serde_json::Value =
            serde_json::from_str(&node.ok(&["metrics", "--json"])).unwrap();
        assert_eq!(cli["files"], m["files"]);
        assert_eq!(cli["network"]["bytes_sent"], m["network"]["bytes_sent"]);
        let text = node.ok(&["metrics"]);
        assert!(text.starts_with("=== PeerVault Metrics ==="), "{text}");
        assert!(
            text.lines().any(|l| l == format!("  Stored:     {stored}")),
            "{text}"
        );
    }
    assert_eq!(
        json(&format!("{}/metrics/json", b.metrics_url()))["replication"]["replicas_accepted"],
        2
    );
}

#[test]
fn metrics_pass_promtool_and_the_contrib_files_are_valid() {
    let Some(promtool) = tool(&["promtool"], "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_metrics(&dir.path().join("n"), &[]);
    // A peer, so that the per-peer metrics have samples too.
    let bootstrap = format!("localhost:{}", node.port());
    let _peer = TestNode::start_with(&dir.path().join("p"), TEST_KEY, &["-bootstrap", &bootstrap]);
    node.wait_peers(1, Duration::from_secs(30));
    let file = dir.path().join("f.bin");
    write_random_file(&file, MIB, 3);
    node.ok(&["put", file.to_str().unwrap()]);
    node.ok(&["gc"]);
    // Wait for a ping, so the peer's round trip is known.
    eventually("a round trip is measured", Duration::from_secs(30), || {
        http_get(&format!("{}/metrics", node.metrics_url()))
            .1
            .contains("peervault_peer_rtt_seconds{")
    });
    let (_, text) = http_get(&format!("{}/metrics", node.metrics_url()));
    let scraped = dir.path().join("scrape.txt");
    std::fs::write(&scraped, &text).unwrap();
    let check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&scraped).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/prometheus");
    for (what, file) in [("rules", "alerts.yml"), ("config", "prometheus.yml")] {
        let out = Command::new(&promtool)
            .args(["check", what])
            .arg(contrib.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check {what} {file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The Grafana dashboard only uses metrics the node exports.
    let grafana = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/grafana/peervault.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&grafana).unwrap();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            let named = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("peervault_"));
            for name in named {
                let base = name.trim_end_matches("_bucket");
                assert!(text.contains(base), "{name} (in {expr}) is not exported");
            }
        }
    }
    assert!(exprs >= 8, "the dashboard has {exprs} queries");
}

#[test]
fn damage_is_counted_on_every_path_and_typos_are_refusals_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &["--replicas", "2"]);
    let bootstrap = format!("localhost:{}", a.port());
    let b = start_with_metrics(
        &dir.path().join("b"),
        &["--replicas", "2", "-bootstrap", &bootstrap],
    );
    b.wait_peers(1, Duration::from_secs(30));
    let input = dir.path().join("doc.bin");
    let hash = write_random_file(&input, 3 * MIB, 5);
    a.ok(&["put", input.to_str().unwrap()]);
    // b's copies arrived into one segment, in three slots of equal size.
    let segments = crate::harness::segment_files(&dir.path().join("b"));
    assert_eq!(segments.len(), 1);
    let slot = std::fs::metadata(&segments[0]).unwrap().len() / 3;
    let base = b.metrics_url();
    let damage = || json(&format!("{base}/metrics/json"))["gc"].clone();

    // A read finds the third chunk damaged and restores it from a.
    crate::harness::flip_byte(&segments[0], 2 * slot + slot / 3, 1);
    let copy = dir.path().join("copy.bin");
    b.ok(&["get", "doc.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(crate::harness::hash_file(&copy), hash);
    let after_read = damage();
    assert_eq!(after_read["chunks_corrupted"], 1, "{after_read}");
    assert_eq!(after_read["chunks_quarantined"], 1, "{after_read}");
    assert_eq!(after_read["chunks_restored"], 1, "{after_read}");

    // The GC finds the first one and restores it too.
    crate::harness::flip_byte(&segments[0], slot / 3, 1);
    let out = b.ok(&["gc"]);
    assert!(out.contains("1 corrupted"), "{out}");
    let after_gc = damage();
    assert_eq!(after_gc["chunks_corrupted"], 2, "{after_gc}");
    assert_eq!(after_gc["chunks_quarantined"], 2, "{after_gc}");
    assert_eq!(after_gc["chunks_restored"], 2, "{after_gc}");
    let (_, text) = http_get(&format!("{base}/metrics"));
    for name in [
        "peervault_chunks_corrupted_total",
        "peervault_chunks_quarantined_total",
        "peervault_chunks_restored_total",
    ] {
        assert_eq!(sample(&text, name), Some(2.0), "{name} in\n{text}");
    }

    // A typo is the caller's: refused, not an error the alerts would see.
    assert!(!b.cli(&["get", "dco.bin"]).status.success());
    let m = json(&format!("{base}/metrics/json"));
    assert_eq!(m["errors"]["total"], 0, "{m}");
    assert_eq!(m["errors"]["refused"]["not_found"], 1, "{m}");
    let (_, text) = http_get(&format!("{base}/metrics"));
    assert_eq!(sum_of(&text, "peervault_errors_total"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "peervault_requests_refused_total{reason=\"not_found\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // A failure of the node is an error, by kind: a chunk damaged on the only
    // node that held it, once a is gone.
    a.stop();
    eventually("b notices a left", Duration::from_secs(30), || {
        b.peer_count() == 0
    });
    let segments = crate::harness::segment_files(&dir.path().join("b"));
    for segment in &segments {
        let len = std::fs::metadata(segment).unwrap().len();
        for at in (0..len).step_by(MIB as usize / 2) {
            crate::harness::flip_byte(segment, at + 1000, 1);
        }
    }
    assert!(
        !b.cli(&["get", "doc.bin", "-o", copy.to_str().unwrap(), "--force"])
            .status
            .success()
    );
    let m = json(&format!("{base}/metrics/json"));
    assert!(m["errors"]["total"].as_u64().unwrap() >= 1, "{m}");
    assert!(
        m["errors"]["by_kind"]["integrity"].as_u64().unwrap() >= 1,
        "{m}"
    );
}

#[test]
fn liveness_stays_200_while_health_says_degraded() {
    let dir = tempfile::tempdir().unwrap();
    // A bootstrap peer that is not there: /health says degraded.
    let nobody = format!("127.0.0.1:{}", crate::harness::free_port());
    let a = start_with_metrics(&dir.path().join("a"), &["-bootstrap", &nobody]);
    let (code, h) = health(&a);
    assert_eq!(code, 503, "{h}");
    let (code, body) = http_get(&format!("{}/health/live", a.metrics_url()));
    assert_eq!(code, 200, "{body}");
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(live["status"], "alive");
    assert!(live["uptime_seconds"].as_f64().unwrap() > 0.0);
}

fn health(node: &TestNode) -> (u16, serde_json::Value) {
    let (code, body) = http_get(&format!("{}/health", node.metrics_url()));
    (code, serde_json::from_str(&body).unwrap())
}

#[test]
fn health_is_degraded_with_reasons_when_peers_are_gone_and_files_are_short() {
    let dir = tempfile::tempdir().unwrap();
    let two = ["--replicas", "2", "--repair-delay", "1s"];
    let a = start_with_metrics(&dir.path().join("a"), &two);
    let (code, h) = health(&a);
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "healthy");
    assert!(h["uptime_seconds"].as_f64().unwrap() > 0.0);

    let bootstrap = format!("localhost:{}", a.port());
    let mut args = vec!["-bootstrap", bootstrap.as_str()];
    args.extend_from_slice(&two);
    let b = TestNode::start_with(&dir.path().join("b"), TEST_KEY, &args);
    a.wait_peers(1, Duration::from_secs(30));
    let input = dir.path().join("pair.bin");
    write_random_file(&input, MIB, 3);
    let out = a.ok(&["put", input.to_str().unwrap()]);
    assert!(out.contains("2 of 2 copies durable"), "{out}");
    assert_eq!(health(&a).0, 200);
    b.stop();
    eventually("a notices b left", Duration::from_secs(30), || {
        a.peer_count() == 0
    });
    // The repair worker finds no peer to copy to, and says the file is short.
    eventually(
        "health names both problems",
        Duration::from_secs(20),
        || {
            health(&a).1["reasons"]
                .as_array()
                .is_some_and(|r| r.len() == 2)
        },
    );
    let (code, h) = health(&a);
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["status"], "degraded");
    let reasons: Vec<&str> = h["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("no peers connected"), "{h}");
    assert!(
        reasons[1].contains("1 file held here has fewer copies than the replica target"),
        "{h}"
    );
}

/// The dashboard asks for the rows it shows only: `limit` cuts the listing (by
/// name), and the count of all files comes in a header; a bad limit is refused
/// with a reason.
#[test]
fn the_file_listing_can_be_limited_and_still_counts_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_metrics(dir.path(), &[]);
    for name in ["c.txt", "a.txt", "b.txt"] {
        let input = dir.path().join(name);
        std::fs::write(&input, name).unwrap();
        node.ok(&["put", input.to_str().unwrap()]);
    }
    let base = node.metrics_url();
    let names = |body: &str| -> Vec<String> {
        let files: serde_json::Value = serde_json::from_str(body).unwrap();
        files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    let bearer = format!("Bearer {}", node.http_token());
    let api = |path: &str| {
        http_exchange_with(
            "GET",
            &format!("{base}{path}"),
            &[("Authorization", &bearer)],
        )
    };
    let (code, head, body) = api("/api/files?limit=2");
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&body), ["a.txt", "b.txt"]);
    assert!(head.contains("x-total-count: 3"), "{head}");
    let (code, head, body) = api("/api/files");
    assert_eq!((code, names(&body).len()), (200, 3));
    assert!(head.contains("x-total-count: 3"), "{head}");
    let (code, _, body) = api("/api/files?limit=lots");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("limit"),
        "the refusal names the parameter: {body}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("a"),
        TEST_KEY,
        &["--log-format", "json", "--log-level", "info"],
    );
    let input = dir.path().join("x.txt");
    std::fs::write(&input, b"logged").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
    let log = node.stop();
    let records: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(records.len() >= 2, "{log}");
    for r in &records {
        assert!(r["timestamp"].is_string(), "{r}");
        assert!(r["level"].is_string(), "{r}");
        assert!(r["target"].is_string(), "{r}");
    }
    assert!(
        records.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"x.txt\" has 1 of 3 copies"))),
        "{log}"
    );
    // The key never appears in logs.
    assert!(!log.contains(TEST_KEY));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    let Some(analyze) = tool(&["systemd-analyze"], "systemd") else {
        return;
    };
    // `verify` wants the binary it starts to exist: point the unit at ours.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd/peervault.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/peervault"));
    assert!(unit.contains("Restart=always"));
    assert!(unit.contains("EnvironmentFile="));
    assert!(unit.contains("User=peervault"));
    let unit = unit.replace("/usr/local/bin/peervault", crate::harness::bin());
    let path = dir.path().join("peervault.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a running systemd (containers) verify cannot finish; say so.
    if text.contains("System has not been booted with systemd")
        || text.contains("Failed to connect to bus")
    {
        eprintln!("systemd-analyze cannot run here (no systemd): {text}");
        return;
    }
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("peervault.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{text}");
}

/// A headless Chromium driven over the DevTools protocol.
struct Browser {
    child: std::process::Child,
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromium");
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|p| p.parse::<u16>().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (_, list) = http_get(&format!("http://127.0.0.1:{port}/json/list"));
        let targets: serde_json::Value = serde_json::from_str(&list).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap().to_string();
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("DevTools socket");
        Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let reply = self.ws.read().expect("DevTools reply");
            let Ok(text) = reply.to_text() else { continue };
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// The value a promise-returning expression resolves to.
    fn eval_async(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression, "returnByValue": true, "awaitPromise": true
            }),
        );
        result["result"]["value"].clone()
    }

    fn screenshot(&mut self, width: u32, path: &Path) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600
            }),
        );
        std::thread::sleep(Duration::from_millis(1500)); // a poll and a redraw
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png", "captureBeyondViewport": true}),
        );
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_updates_live_in_a_browser() {
    let Some(chromium) = tool(
        &["chromium", "chromium-browser", "google-chrome"],
        "chromium",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Three copies wanted of each file, two nodes: files are short of copies,
    // and the page must say so and why.
    let node = start_with_metrics(&dir.path().join("n"), &["--repair-delay", "1s"]);
    let bootstrap = format!("localhost:{}", node.port());
    let peer = TestNode::start_with(
        &dir.path().join("peer"),
        TEST_KEY,
        &["-bootstrap", &bootstrap, "--repair-delay", "1s"],
    );
    node.wait_peers(1, Duration::from_secs(30));
    let mut browser = Browser::launch(&chromium);
    browser.call("Page.enable", serde_json::json!({}));
    browser.call(
        "Page.navigate",
        // The address the node printed, token and all: the page sets its cookie.
        serde_json::json!({"url": node.dashboard_url()}),
    );
    let read = |b: &mut Browser, id: &str| -> String {
        b.eval(&format!(
            "(document.getElementById('{id}') || {{}}).textContent || ''"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    };
    let wait = |b: &mut Browser, what: &str, check: &dyn Fn(&mut Browser) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(b) {
            assert!(
                Instant::now() < deadline,
                "the dashboard never showed {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait(&mut browser, "the counters", &|b| {
        read(b, "files-stored") == "0"
    });
    assert_eq!(read(&mut browser, "node-id"), node.peer_id());
    // Mark this page: a reload would lose the mark.
    browser.eval("window.__same_page = 42");

    let file = dir.path().join("report.pdf");
    write_random_file(&file, 2 * MIB, 4);
    node.ok(&["put", file.to_str().unwrap()]);
    wait(&mut browser, "the new file", &|b| {
        read(b, "files-stored") == "1" && read(b, "file-count") == "1"
    });
    assert_eq!(
        browser.eval("window.__same_page"),
        42,
        "the page was reloaded"
    );
    assert!(read(&mut browser, "storage-used").contains("MB"));
    assert!(read(&mut browser, "files").contains("report.pdf"));

    // The vault view: both nodes with their figures, and where the copies are.
    let peer_id = peer.peer_id();
    wait(&mut browser, "both nodes and the file's holders", &|b| {
        let nodes = read(b, "cluster-nodes");
        let files = read(b, "files");
        read(b, "vault-nodes") == "2 nodes"
            && nodes.contains("(this node)")
            && nodes.contains("online")
            && nodes.contains("MB")
            && files.contains(&node.peer_id()[node.peer_id().len() - 8..])
            && files.contains(&peer_id[peer_id.len() - 8..])
    });
    let view = json_with_token(&node, "/api/cluster");
    assert_eq!(view["nodes"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(view["nodes"][1]["peer_id"], peer_id.as_str());
    assert!(
        view["nodes"][1]["used_bytes"].as_u64().unwrap() > 2 * MIB,
        "{view}"
    );
    assert_eq!(view["files"][0]["copies"], 2, "{view}");
    assert_eq!(view["files"][0]["short"], true, "{view}");
    // Degraded, and why, on the page and not only in a tooltip.
    wait(&mut browser, "why the node is degraded", &|b| {
        read(b, "health") == "degraded"
            && read(b, "reasons").contains("fewer copies than the replica target")
    });
    assert!(read(&mut browser, "short-files").contains("report.pdf"));

    // Download from the page, with the page's own cookie.
    let got = browser.eval_async(
        "(async () => { const a = document.querySelector('a.download'); \
           const r = await fetch(a.href); const b = new Uint8Array(await r.arrayBuffer()); \
           return [r.status, b.length, Array.from(b.slice(0, 16)), \
                   r.headers.get('content-disposition')]; })()",
    );
    let original = std::fs::read(&file).unwrap();
    assert_eq!(got[0], 200, "{got}");
    assert_eq!(got[1], original.len(), "{got}");
    assert_eq!(got[2], serde_json::json!(original[..16].to_vec()), "{got}");
    assert!(
        got[3].as_str().unwrap().contains("filename=\"report.pdf\""),
        "{got}"
    );
    // Not without the token.
    let (code, _) = http_get(&format!(
        "{}/api/download?name=report.pdf",
        node.metrics_url()
    ));
    assert_eq!(code, 401);

    // The chart survives a reload: the node kept the last hour.
    eventually(
        "a throughput point with traffic",
        Duration::from_secs(20),
        || {
            let (_, body) = http_get(&format!("{}/api/throughput", node.metrics_url()));
            let points: serde_json::Value = serde_json::from_str(&body).unwrap();
            points
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["sent_per_second"].as_f64().unwrap() > 0.0)
        },
    );
    browser.call("Page.reload", serde_json::json!({}));
    wait(&mut browser, "the history after a reload", &|b| {
        b.eval("typeof history !== 'undefined' && Array.isArray(history) && history.some((p) => p.sent > 0)")
            == serde_json::json!(true)
    });
    assert!(browser.eval("window.__same_page").is_null(), "reloaded");

    // Screenshots at laptop and phone widths, kept with the test (and copied to
    // PEERVAULT_SCREENSHOTS if set, to look at).
    for width in [1280, 390] {
        let path = dir.path().join(format!("dashboard-{width}.png"));
        browser.screenshot(width, &path);
        let scroll_width = browser.eval("document.documentElement.scrollWidth");
        assert!(
            scroll_width.as_u64().unwrap() <= u64::from(width),
            "the page is wider ({scroll_width}) than the {width} px window"
        );
        if width == 1280 {
            // Every column of the peers and vault tables in view, no scrollbar.
            let overflow = browser.eval(
                "Array.from(document.querySelectorAll('.scroll')).map((s) => s.scrollWidth - s.clientWidth)",
            );
            assert!(
                overflow
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|o| o.as_i64().unwrap() <= 0),
                "a table scrolls sideways at 1280 px: {overflow}"
            );
        }
        if let Some(keep) = std::env::var_os("PEERVAULT_SCREENSHOTS") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// An operator's JSON endpoint, with the node's token.
fn json_with_token(node: &TestNode, path: &str) -> serde_json::Value {
    let token = std::fs::read_to_string(node.data_dir.join("http_token")).unwrap();
    let (code, _, body) = http_exchange_with(
        "GET",
        &format!("{}{path}", node.metrics_url()),
        &[("Authorization", &format!("Bearer {}", token.trim()))],
    );
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}
