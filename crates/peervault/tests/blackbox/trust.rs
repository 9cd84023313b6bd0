//! Trust by default: a node started with nothing makes a key nobody can guess,
//! strangers stay out, new nodes join with a code, older data dirs keep their
//! keys, one node per port, the operator's web pages need the operator's token,
//! and a download never replaces what it was told to write into.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{
    NO_KEY, TEST_KEY, TestNode, command, eventually, free_port, http_exchange_with, stderr, stdout,
};

fn status(node: &TestNode) -> serde_json::Value {
    serde_json::from_str(&node.ok(&["status", "--json"])).unwrap()
}

fn address(node: &TestNode) -> String {
    format!("127.0.0.1:{}", node.port())
}

fn put_text(node: &TestNode, dir: &Path, name: &str, text: &str) {
    let input = dir.join(name);
    std::fs::write(&input, text).unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
}

fn get_text(node: &TestNode, dir: &Path, name: &str) -> String {
    let out = dir.join(format!("got-{name}"));
    node.ok(&["get", name, "-o", out.to_str().unwrap()]);
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn nodes_without_a_key_stay_apart_and_a_join_code_lets_one_in() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestNode::start_with(&dir.path().join("first"), NO_KEY, &[]);
    assert!(
        first.log().contains("peervault invite"),
        "a new vault says how to add nodes:\n{}",
        first.log()
    );
    let key_file = first.data_dir.join("vault.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(status(&first)["key_source"], "generated");
    put_text(&first, dir.path(), "shared.txt", "only for members");

    // A second node with no key makes a vault of its own: dialling the first
    // gets it nowhere.
    let stranger = TestNode::start_with(
        &dir.path().join("stranger"),
        NO_KEY,
        &["-bootstrap", &address(&first)],
    );
    eventually("the stranger is refused", Duration::from_secs(10), || {
        stranger.log().contains("network key mismatch")
    });
    assert_eq!(stranger.peer_count(), 0);
    assert_eq!(first.peer_count(), 0);
    assert_ne!(
        status(&stranger)["key_fingerprint"],
        status(&first)["key_fingerprint"]
    );
    assert!(stranger.ls().is_empty());

    // With the first node's code, a new node joins and reads the file.
    let code = first.ok(&["invite"]).trim().to_string();
    assert!(code.starts_with("pv2-"), "{code}");
    let json: serde_json::Value = serde_json::from_str(&first.ok(&["invite", "--json"])).unwrap();
    assert!(json["code"].as_str().unwrap().starts_with("pv2-"));
    assert!(json["expires_at"].as_str().is_some());
    let joined = TestNode::start_with(&dir.path().join("joined"), NO_KEY, &["--join", &code]);
    joined.wait_peers(1, Duration::from_secs(15));
    eventually("the catalogue arrives", Duration::from_secs(15), || {
        joined.ls().iter().any(|f| f["name"] == "shared.txt")
    });
    assert_eq!(
        get_text(&joined, dir.path(), "shared.txt"),
        "only for members"
    );
    assert_eq!(
        status(&joined)["key_fingerprint"],
        status(&first)["key_fingerprint"]
    );
    // The code is not in the log: it is a secret until used.
    assert!(!joined.log().contains(&code) && !first.log().contains(&code));

    // Restarted without the code, it keeps the vault's key.
    let data = joined.data_dir.clone();
    joined.stop();
    let again = TestNode::start_with(&data, NO_KEY, &["-bootstrap", &address(&first)]);
    assert_eq!(status(&again)["key_source"], "joined");
    again.wait_peers(1, Duration::from_secs(15));

    // PEERVAULT_JOIN works as --join does (with an invitation of its own:
    // each admits one device).
    let code = first.ok(&["invite"]).trim().to_string();
    let by_env = TestNode::start_with_env(
        &dir.path().join("env"),
        NO_KEY,
        &[],
        &[("PEERVAULT_JOIN", &code)],
    );
    by_env.wait_peers(1, Duration::from_secs(15));
}

#[test]
fn a_passphrase_node_learns_the_vaults_salt_from_its_bootstrap_peer() {
    let dir = tempfile::tempdir().unwrap();
    let words = "a passphrase shared by hand";
    let first = TestNode::start_with(&dir.path().join("first"), words, &[]);
    let salt = std::fs::read_to_string(first.data_dir.join("kdf")).unwrap();
    assert!(
        salt.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{salt}"
    );
    put_text(&first, dir.path(), "notes.txt", "by passphrase");
    let second = TestNode::start_with(
        &dir.path().join("second"),
        words,
        &["-bootstrap", &address(&first)],
    );
    second.wait_peers(1, Duration::from_secs(15));
    assert_eq!(
        std::fs::read_to_string(second.data_dir.join("kdf")).unwrap(),
        salt,
        "the same salt"
    );
    eventually("the catalogue arrives", Duration::from_secs(15), || {
        second.ls().iter().any(|f| f["name"] == "notes.txt")
    });
    assert_eq!(get_text(&second, dir.path(), "notes.txt"), "by passphrase");
    assert_eq!(status(&second)["key_source"], "passphrase");
    // The passphrase is not stored, and without it the node will not start.
    assert!(!second.data_dir.join("vault.key").exists());
    let data = second.data_dir.clone();
    second.stop();
    let mut keyless = TestNode::spawn(&data, NO_KEY, &[]);
    assert!(!keyless.wait_exit(Duration::from_secs(20)).success());
    assert!(keyless.log().contains("passphrase"), "{}", keyless.log());

    // Another passphrase with the same bootstrap peer gets the salt but not in.
    let wrong = TestNode::start_with(
        &dir.path().join("wrong"),
        "some other words",
        &["-bootstrap", &address(&first)],
    );
    eventually(
        "the wrong passphrase is refused",
        Duration::from_secs(10),
        || wrong.log().contains("network key mismatch"),
    );
    assert_eq!(wrong.peer_count(), 0);
}

/// Copies a fixture data dir (made by the code before per-vault keys) into `to`.
fn fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    for entry in crate::harness::files_under(&from) {
        let target = to.join(entry.strip_prefix(&from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::set_permissions(
            target.parent().unwrap(),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::copy(&entry, &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn data_dirs_made_before_vault_keys_open_with_their_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    // A passphrase vault: the old fixed salt gives its old key.
    let data = dir.path().join("passphrase");
    fixture("legacy-passphrase", &data);
    let node = TestNode::start_with(&data, "blackbox test passphrase", &[]);
    assert_eq!(status(&node)["key_fingerprint"], "2166b30be27be2d4");
    assert_eq!(
        get_text(&node, dir.path(), "legacy-passphrase.txt"),
        "made before per-vault keys (passphrase)\n"
    );
    // Its parameters are recorded now, so that join codes and new nodes get them.
    let kdf = std::fs::read_to_string(data.join("kdf")).unwrap();
    assert!(kdf.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{kdf}");
    node.stop();
    // A wrong passphrase is refused, and leaves the data dir as it was.
    let mut wrong = TestNode::spawn(&data, "not the passphrase", &[]);
    assert!(!wrong.wait_exit(Duration::from_secs(20)).success());
    assert!(
        wrong.log().contains("different network key"),
        "{}",
        wrong.log()
    );

    // A vault started without a key used the public default: it still opens,
    // and the node says loudly what that means.
    let data = dir.path().join("default");
    fixture("legacy-default", &data);
    let node = TestNode::start_with(&data, NO_KEY, &[]);
    let s = status(&node);
    assert_eq!(s["key_fingerprint"], "088d14a5732a9e7c");
    assert_eq!(s["insecure_default_key"], true);
    assert!(node.log().contains("public"), "{}", node.log());
    assert!(node.ok(&["status"]).contains("anyone can read this vault"));
    assert_eq!(
        get_text(&node, dir.path(), "legacy-default.txt"),
        "made before per-vault keys (default)\n"
    );
    assert!(
        !data.join("vault.key").exists(),
        "its key stays the old one"
    );
}

#[test]
fn a_key_that_looks_like_hex_but_has_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    for (how, args, env) in [
        ("--key", vec!["--key".to_string(), "a".repeat(63)], None),
        ("PEERVAULT_KEY", vec![], Some("f".repeat(65))),
        (
            "--key",
            vec!["--key".to_string(), "0123abcd".repeat(4)],
            None,
        ),
    ] {
        let mut cmd = command();
        if let Some(value) = &env {
            cmd.env("PEERVAULT_KEY", value);
        }
        let out = cmd
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{how}: {err}");
        assert!(err.contains(how), "{how}: the message names it: {err}");
        assert!(err.contains("64"), "{how}: says what a key is: {err}");
        assert!(!data.exists(), "{how}: nothing was created");
    }
    // A key and a join code together are one too many; a mangled code is
    // refused with the reason.
    for (args, reason) in [
        (
            &["--key", TEST_KEY, "--join", "pv1-whatever"][..],
            "not both",
        ),
        (&["--join", "pv1-AAAA"], "join code"),
    ] {
        let out = command()
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains(reason), "{}", stderr(&out));
    }
}

#[test]
fn a_second_node_on_a_port_in_use_exits_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let first = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &["--addr", &addr]);
    for taken in [addr.clone(), format!(":{port}")] {
        let started = Instant::now();
        let mut second = TestNode::spawn(&dir.path().join("b"), TEST_KEY, &["--addr", &taken]);
        let status = second.wait_exit(Duration::from_secs(20));
        assert!(!status.success(), "{taken}: {}", second.log());
        assert!(
            second.log().contains("address already in use"),
            "{taken}: {}",
            second.log()
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    assert_eq!(first.peer_count(), 0);
    assert!(first.ok(&["status"]).contains(&port.to_string()));
}

#[test]
fn the_operators_pages_need_the_token_and_the_servers_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("n"),
        TEST_KEY,
        &[
            "-metrics",
            "127.0.0.1:0",
            "--http-allow-host",
            "vault.example",
        ],
    );
    put_text(&node, dir.path(), "secret-plans.txt", "the plans");
    let hash = node.ls()[0]["hash"].as_str().unwrap().to_string();
    let base = node.metrics_url();
    let token = node.http_token();
    let mode = std::fs::metadata(node.data_dir.join("http_token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(node.dashboard_url().ends_with(&format!("/?token={token}")));
    let get = |path: &str, headers: &[(&str, &str)]| {
        http_exchange_with("GET", &format!("{base}{path}"), headers)
    };
    let bearer = format!("Bearer {token}");

    // The file list: not without the token, with it as a bearer.
    for path in ["/api/files", "/"] {
        let (code, head, _) = get(path, &[]);
        assert_eq!(code, 401, "{path}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        let (code, _, _) = get(path, &[("Authorization", "Bearer not-the-token")]);
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _, body) = get("/api/files", &[("Authorization", &bearer)]);
    assert_eq!(code, 200);
    assert!(body.contains("secret-plans.txt"));
    // Once in the address: a cookie, and the address loses the token.
    let (code, head, _) = get(&format!("/?token={token}"), &[]);
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains("location: /\r") || head.ends_with("location: /"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        head.contains("httponly") && head.contains("samesite=strict"),
        "{head}"
    );
    let (code, _, page) = get("/", &[("Cookie", &cookie)]);
    assert_eq!(code, 200);
    assert!(page.contains("<html"));
    let (code, _, _) = get("/api/files?limit=1", &[("Cookie", &cookie)]);
    assert_eq!(code, 200);

    // Another name in Host (DNS rebinding) is refused, token or not.
    for path in ["/metrics", "/health", "/api/files", "/"] {
        let (code, _, body) = get(
            path,
            &[("Host", "evil.example:9090"), ("Authorization", &bearer)],
        );
        assert_eq!(code, 421, "{path}: {body}");
    }
    for host in ["localhost", "vault.example:443"] {
        let (code, _, _) = get("/api/files", &[("Host", host), ("Authorization", &bearer)]);
        assert_eq!(code, 200, "{host}");
    }

    // What stays open carries no file names or hashes.
    for path in ["/metrics", "/metrics/json", "/metrics/human", "/health"] {
        let (code, _, body) = get(path, &[]);
        assert_eq!(code, 200, "{path}");
        assert!(
            !body.contains("secret-plans") && !body.contains(&hash[..16]),
            "{path} shows the file: {body}"
        );
    }
}

#[test]
fn get_into_a_device_a_fifo_or_through_a_symlink_replaces_nothing() {
    if !crate::security::root("making a character device") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("n"));
    let payload = "bytes for odd destinations\n".repeat(1000);
    put_text(&node, dir.path(), "f.txt", &payload);

    // A character device with /dev/null's numbers, made in the test's own dir.
    let device = dir.path().join("null");
    let made = std::process::Command::new("mknod")
        .args([device.to_str().unwrap(), "c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    node.ok(&["get", "f.txt", "-o", device.to_str().unwrap()]);
    let kind = std::fs::symlink_metadata(&device).unwrap().file_type();
    assert!(kind.is_char_device(), "the device is still a device");

    // A FIFO: what is read from it is the file, and it stays a FIFO.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    node.ok(&["get", "f.txt", "-o", fifo.to_str().unwrap()]);
    assert_eq!(reader.join().unwrap(), payload);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // A symlink is followed: the file it leads to gets the bytes, the link stays.
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("target.txt", &link).unwrap();
    node.ok(&["get", "f.txt", "-o", link.to_str().unwrap(), "--force"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), payload);

    // A socket is refused with the reason, and stays.
    let socket = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let out = node.cli(&["get", "f.txt", "-o", socket.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("socket"), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    // Standard output that is a device is written into, too.
    let null = std::fs::File::options().write(true).open(&device).unwrap();
    let out = node.cli_into(&["get", "f.txt"], null);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        std::fs::symlink_metadata(&device)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}
