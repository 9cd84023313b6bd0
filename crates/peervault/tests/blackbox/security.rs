//! Local security: who can reach a node, what its files allow, and what never
//! appears in its output.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, bin, http_get, http_request, stderr, stdout};

/// True when running as root, the only way to test another user here. Under
/// `CI=true` (which runs as root) not being root is a failure.
pub(crate) fn root(what: &str) -> bool {
    let is_root = rustix::process::geteuid().is_root();
    if !is_root {
        let msg = format!("not root: cannot test {what} as another user");
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipping: {msg}");
    }
    is_root
}

/// `peervault args...` as the unprivileged user `nobody`.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            bin(),
        ])
        .args(args)
        .env_remove("PEERVAULT_KEY")
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn every_file_and_directory_in_the_data_dir_is_the_owners_only() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    // A REPL session leaves a history too.
    let mut repl = crate::harness::command()
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--key", TEST_KEY, "--quota", "1GB", "-interactive"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let input = dir.path().join("in.bin");
    crate::harness::write_random_file(&input, 3 << 20, 1);
    let mut stdin = repl.stdin.take().unwrap();
    writeln!(stdin, "store {}\nlist\nquit", input.display()).unwrap();
    drop(stdin);
    assert!(repl.wait().unwrap().success());
    let node = TestNode::start(&data);
    node.ok(&["put", input.to_str().unwrap(), "--name", "second"]);
    let (mut checked, mut segments) = (0, 0);
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{}", entry.path().display());
                stack.push(entry.path());
            } else {
                assert_eq!(mode, 0o600, "{}", entry.path().display());
                segments += entry.path().extension().is_some_and(|e| e == "seg") as usize;
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} entries");
    assert!(segments >= 1, "no segment file among them");
    let top = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(top, 0o700);
}

#[test]
fn no_key_or_passphrase_appears_in_logs_metrics_status_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let passphrase = "correct horse battery staple 1729";
    let hex_key = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    for (tag, key) in [("pass", passphrase), ("hex", hex_key)] {
        let data = dir.path().join(tag);
        let node = TestNode::start_with(
            &data,
            key,
            &["--log-level", "trace", "-metrics", "127.0.0.1:0"],
        );
        let input = dir.path().join("f.txt");
        std::fs::write(&input, b"a little file").unwrap();
        node.ok(&["put", input.to_str().unwrap()]);
        let base = node.metrics_url();
        let mut seen = String::new();
        for path in [
            "/metrics",
            "/metrics/json",
            "/metrics/human",
            "/health",
            "/api/files",
            "/",
        ] {
            seen.push_str(&http_get(&format!("{base}{path}")).1);
        }
        for args in [
            &["status", "--json"][..],
            &["discover", "--json"],
            &["peers", "--json"],
            &["metrics"],
            &["quota", "--json"],
        ] {
            seen.push_str(&node.ok(args));
        }
        // A wrong key on this data dir: the error names the problem, not the keys.
        let wrong = crate::harness::command()
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .args(["--key", "some other key"])
            .output()
            .unwrap();
        seen.push_str(&stderr(&wrong));
        seen.push_str(&stdout(&wrong));
        seen.push_str(&node.stop());
        let lower = seen.to_lowercase();
        for secret in [key, "some other key"] {
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "{tag}: {secret:?} appeared in output"
            );
        }
        assert!(
            seen.contains("TRACE") || seen.contains("DEBUG"),
            "logs were captured"
        );
    }
}

#[test]
fn the_metrics_listener_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("n"),
        TEST_KEY,
        &["-metrics", "127.0.0.1:0"],
    );
    let input = dir.path().join("kept.txt");
    std::fs::write(&input, b"still here").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
    let base = node.metrics_url();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in [
            "/",
            "/metrics",
            "/metrics/json",
            "/metrics/human",
            "/health",
            "/api/files",
        ] {
            let (code, body) = http_request(method, &format!("{base}{path}"));
            assert_eq!(code, 405, "{method} {path}: {body}");
        }
    }
    assert_eq!(node.ls().len(), 1, "nothing changed");
    assert_eq!(http_get(&format!("{base}/health")).0, 200);
}

#[test]
fn another_local_user_cannot_reach_the_control_socket() {
    if !root("the control socket's permissions") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The test's temp dir must be traversable for nobody to even try.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("n");
    let node = TestNode::start(&data);
    let out = as_nobody(&["--data-dir", data.to_str().unwrap(), "ls"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The owner still can.
    assert!(node.ls().is_empty());
}

#[test]
fn a_data_dir_owned_by_someone_else_is_refused_with_a_clear_message() {
    if !root("a data dir owned by another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("theirs");
    let owner = TestNode::start(&data);
    owner.stop();
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), 0);
    let out = as_nobody(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--key",
        TEST_KEY,
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(data.to_str().unwrap()) && err.to_lowercase().contains("permission denied"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The owner's data is untouched and usable.
    let again = TestNode::start(&data);
    assert!(again.ls().is_empty());
}

#[test]
fn a_data_dir_that_is_a_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"precious").unwrap();
    let mut node = TestNode::spawn(&file, TEST_KEY, &[]);
    assert!(!node.wait_exit(Duration::from_secs(20)).success());
    assert!(
        node.log().contains(file.to_str().unwrap()),
        "{}",
        node.log()
    );
    assert!(!node.log().contains("panicked"), "{}", node.log());
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}
