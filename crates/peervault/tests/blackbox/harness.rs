//! Starting and driving real `peervault` processes.
//!
//! Every node lives in its own temporary directory, listens only on 127.0.0.1,
//! and is killed when its handle drops, so a failing test leaves no process behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use peervault_testkit::{Launch, NodeProcess};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_peervault")
}

/// The key tests use unless they test keys: 64 hex digits, so that nodes started
/// apart share a vault without a bootstrap peer to learn a passphrase's salt from.
pub const TEST_KEY: &str = "b1ac6b0cb1ac6b0cb1ac6b0cb1ac6b0cb1ac6b0cb1ac6b0cb1ac6b0cb1ac6b0c";

/// Give as the key to start a node with no `--key` at all (the default: the data
/// dir's own key, made on the first start).
pub const NO_KEY: &str = "";

/// A `peervault` command with a clean environment.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_remove("PEERVAULT_KEY")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `peervault` with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run peervault")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A node process, with the client commands tests run against it.
pub struct TestNode {
    pub data_dir: PathBuf,
    process: NodeProcess,
}

/// How long a node may take to answer after it starts.
const READY_WITHIN: Duration = Duration::from_secs(30);

impl TestNode {
    /// Starts a node on `data_dir` with the test key and waits until it answers.
    pub fn start(data_dir: &Path) -> TestNode {
        Self::start_with(data_dir, TEST_KEY, &[])
    }

    /// Starts a node with a given key and extra flags.
    pub fn start_with(data_dir: &Path, key: &str, extra: &[&str]) -> TestNode {
        Self::started(launch(data_dir, key, extra))
    }

    /// Starts a node with extra environment variables (`PEERVAULT_JOIN`, ...).
    pub fn start_with_env(
        data_dir: &Path,
        key: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> TestNode {
        let launch = env
            .iter()
            .fold(launch(data_dir, key, extra), |l, (k, v)| l.env(k, v));
        Self::started(launch)
    }

    /// Spawns without waiting (for tests of start-up failures).
    pub fn spawn(data_dir: &Path, key: &str, extra: &[&str]) -> TestNode {
        TestNode {
            data_dir: data_dir.to_path_buf(),
            process: NodeProcess::spawn(launch(data_dir, key, extra))
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Starts a node inside a network namespace and waits until it answers.
    pub fn start_in_netns(netns: &str, data_dir: &Path, key: &str, extra: &[&str]) -> TestNode {
        Self::started(launch(data_dir, key, extra).in_netns(netns))
    }

    fn started(launch: Launch) -> TestNode {
        TestNode {
            data_dir: launch.data_dir.clone(),
            process: NodeProcess::start(launch, READY_WITHIN).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// What the node printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits for the process to exit by itself (for start-up failures).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        match self.process.wait_exit(timeout) {
            Some(status) => status,
            None => panic!("node did not exit:\n{}", self.log()),
        }
    }

    /// A client command against this node, not yet run.
    fn client(&self, args: &[&str]) -> Command {
        let mut cmd = command();
        cmd.args(["--data-dir", self.data_dir.to_str().expect("utf-8 path")])
            .args(args);
        cmd
    }

    /// Runs a client command against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.client(args)
            .stdin(Stdio::null())
            .output()
            .expect("run client")
    }

    /// Runs a client command with its standard output redirected to `file`.
    pub fn cli_into(&self, args: &[&str], file: std::fs::File) -> Output {
        self.client(args)
            .stdin(Stdio::null())
            .stdout(file)
            .output()
            .expect("run client")
    }

    /// Runs a client command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "peervault {args:?} failed: {}\n{}",
            stderr(&out),
            self.log()
        );
        stdout(&out)
    }

    /// The TCP port the node listens on (from `status --json`).
    pub fn port(&self) -> u16 {
        let status: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json");
        let addr = status["listen_addrs"][0]
            .as_str()
            .expect("a listen address")
            .to_string();
        addr.rsplit('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a tcp port")
    }

    /// The node process's peak resident set size so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        let pid = self.process.pid().expect("the node is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line");
        kib * 1024
    }

    /// The base URL of the node's HTTP server (`-metrics`), from its start-up lines
    /// (the dashboard's address, less its token).
    pub fn metrics_url(&self) -> String {
        let url = self.dashboard_url();
        url.split("/?").next().unwrap_or(&url).to_string()
    }

    /// The dashboard's address with its token, as the node prints it at start.
    pub fn dashboard_url(&self) -> String {
        let log = self.log();
        let line = log
            .lines()
            .find_map(|l| l.trim().strip_prefix("Dashboard:"))
            .expect("the node prints its dashboard address");
        line.split_whitespace().next().expect("a URL").to_string()
    }

    /// The HTTP token the dashboard and `/api` need (from the data dir).
    pub fn http_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("http_token"))
            .expect("the node keeps an HTTP token")
            .trim()
            .to_string()
    }

    /// Peer id from `status --json`.
    pub fn peer_id(&self) -> String {
        let status: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json");
        status["peer_id"].as_str().expect("peer id").to_string()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        let peers: Vec<serde_json::Value> =
            serde_json::from_str(&self.ok(&["peers", "--json"])).expect("peers json");
        peers.len()
    }

    /// Waits until the node has at least `n` peers.
    pub fn wait_peers(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.peer_count() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} peers after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `ls --json` entries.
    pub fn ls(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["ls", "--json"])).expect("ls json")
    }

    /// Runs a client command with bytes on its stdin.
    pub fn cli_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .client(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        // A client that refuses its arguments exits without reading its input.
        match child.stdin.take().expect("stdin").write_all(input) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("write stdin"),
        }
        child.wait_with_output().expect("client output")
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> String {
        if self.process.pid().is_some() {
            let status = self.process.stop(Duration::from_secs(30));
            assert!(
                status.is_some_and(|s| s.success()),
                "node exited with {status:?}:\n{}",
                self.log()
            );
        }
        self.log()
    }

    /// SIGSTOP: the process keeps its sockets open and answers nothing.
    pub fn pause(&mut self) {
        self.process.pause();
    }

    /// SIGCONT after [`TestNode::pause`].
    pub fn resume(&mut self) {
        self.process.resume();
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.process.kill9();
    }
}

/// The launch of a test node: `--addr 127.0.0.1:0` unless the test gives an
/// address, the key unless it is [`NO_KEY`].
fn launch(data_dir: &Path, key: &str, extra: &[&str]) -> Launch {
    let addr: &[&str] = if extra.contains(&"--addr") {
        &[]
    } else {
        &["--addr", "127.0.0.1:0"]
    };
    let key: &[&str] = if key.is_empty() { &[] } else { &["--key", key] };
    Launch::new(bin(), data_dir)
        .args(addr)
        .args(key)
        .args(extra)
}

pub use peervault_testkit::data::files_under;
pub use peervault_testkit::disk::{blob_bytes_on_disk, segment_files};
pub use peervault_testkit::{eventually, free_port};

/// Writes `len` bytes of incompressible, reproducible data to `path`; returns
/// their hash.
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> blake3::Hash {
    peervault_testkit::data::write_file(path, len, seed).expect("write test data")
}

/// BLAKE3 of a file, streaming.
pub fn hash_file(path: &Path) -> blake3::Hash {
    peervault_testkit::data::hash_file(path).expect("hash a file")
}

/// Flips the bits of `mask` in the byte at `at` of `path`, durably.
pub fn flip_byte(path: &Path, at: u64, mask: u8) {
    peervault_testkit::disk::flip_byte(path, at, mask).expect("damage a byte")
}

/// A plain HTTP/1.1 GET: status code and body.
pub fn http_get(url: &str) -> (u16, String) {
    http_request("GET", url)
}

/// A plain HTTP/1.1 request without a body: status code and body.
pub fn http_request(method: &str, url: &str) -> (u16, String) {
    let (code, _, body) = http_exchange(method, url);
    (code, body)
}

/// [`http_request`], also returning the response's head (status line and
/// headers, lower-cased).
pub fn http_exchange(method: &str, url: &str) -> (u16, String, String) {
    http_exchange_with(method, url, &[])
}

/// [`http_exchange`] with extra request headers (a `Host` among them replaces
/// the URL's).
pub fn http_exchange_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the HTTP server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let host_header = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or(host, |(_, value)| *value);
    let mut extra = String::new();
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
    {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    // Read until the response is complete: some servers keep the connection open.
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let (split, head) = loop {
        let n = stream.read(&mut buf).expect("read response");
        assert!(n > 0, "the connection closed before the headers");
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                split,
                String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
            );
        }
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[split + 4..];
        let done = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).expect("read response");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = &raw[split + 4..];
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (code, head, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]).trim().to_string();
        let Ok(n) = usize::from_str_radix(&size, 16) else {
            break;
        };
        let rest = &body[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// How many of `nodes` list `name` as held here (`local` in `ls --json`).
pub fn holding(nodes: &[&TestNode], name: &str) -> usize {
    nodes
        .iter()
        .filter(|n| {
            n.ls()
                .iter()
                .any(|f| f["name"] == name && f["local"] == true)
        })
        .count()
}
