//! The command line itself: flags, help, errors, and a node that is not there.

use crate::harness::{TEST_KEY, TestNode, command, run, stderr, stdout};

#[test]
fn help_documents_every_flag_of_the_original_and_ours() {
    let out = run(&["-h"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for flag in [
        "--addr",
        "--advertise",
        "--bootstrap",
        "--public-ip",
        "--key",
        "--interactive",
        "--verbose",
        "--debug",
        "--metrics",
        "--discover-local",
        "--discover-pex",
        "--demo",
        "--data-dir",
        "--replicas",
        "--quota",
        "--config",
        "--gc-interval",
        "--pex-interval",
        "--log-level",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
    for command in ["put", "get", "ls", "rm", "status", "verify"] {
        assert!(help.contains(command), "help lacks {command}");
    }
}

#[test]
fn a_quota_below_what_is_stored_says_what_is_over_and_what_happens() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("n"));
    let input = dir.path().join("f.bin");
    crate::harness::write_random_file(&input, 300_000, 3);
    node.ok(&["put", input.to_str().unwrap()]);
    let out = node.cli(&["quota", "set", "1KB"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains("over the new quota of 1.00 KB"),
        "{warning}"
    );
    assert!(warning.contains("Nothing is removed"), "{warning}");
    // What it says happens: the file stays, a new one is refused with the way out.
    assert!(node.ok(&["ls"]).contains("f.bin"));
    let refused = node.cli(&["put", input.to_str().unwrap(), "--name", "g.bin"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("quota set"),
        "{}",
        stderr(&refused)
    );
    // Back above usage: no warning.
    let fine = node.cli(&["quota", "set", "1GB"]);
    assert!(!stderr(&fine).contains("warning"), "{}", stderr(&fine));
}

#[test]
fn clean_of_chosen_files_keeps_an_only_copy_and_the_vault_listing() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let input = dir.path().join("f.bin");
    crate::harness::write_random_file(&input, 300_000, 4);
    a.ok(&["put", input.to_str().unwrap()]);
    // Alone, this node holds the only copy: clean of that file refuses.
    let only = a.cli(&["clean", "f.bin", "--yes"]);
    assert!(!only.status.success());
    assert!(
        stderr(&only).contains("only copy of 'f.bin'"),
        "{}",
        stderr(&only)
    );
    let missing = a.cli(&["clean", "nothing.bin", "--yes"]);
    assert!(
        stderr(&missing).contains("no file named"),
        "{}",
        stderr(&missing)
    );
    // With a second holder, the copy here goes and the file stays in the vault.
    let bootstrap = format!("127.0.0.1:{}", a.port());
    let b = TestNode::start_with(
        &dir.path().join("b"),
        TEST_KEY,
        &["-bootstrap", bootstrap.as_str()],
    );
    b.wait_peers(1, std::time::Duration::from_secs(20));
    crate::harness::eventually("b lists f.bin", std::time::Duration::from_secs(30), || {
        b.ls().iter().any(|f| f["name"] == "f.bin")
    });
    b.ok(&["fetch", "f.bin", "1"]);
    let out = a.ok(&["clean", "f.bin", "--yes"]);
    assert!(
        out.contains("Removed this node's copies of 1 file"),
        "{out}"
    );
    let listed: serde_json::Value = serde_json::from_str(&a.ok(&["ls", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "f.bin");
    assert_eq!(listed[0]["local"], false);
    let copy = dir.path().join("copy.bin");
    a.ok(&["get", "f.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(
        crate::harness::hash_file(&copy),
        crate::harness::hash_file(&input)
    );
}

#[test]
fn a_typo_gets_a_tip_but_never_a_destructive_one() {
    let clear = run(&["clear"]);
    assert_eq!(clear.status.code(), Some(2));
    assert!(stderr(&clear).contains("unrecognized subcommand 'clear'"));
    assert!(!stderr(&clear).contains("clean"), "{}", stderr(&clear));
    let stat = run(&["stat"]);
    assert!(stderr(&stat).contains("'status'"), "{}", stderr(&stat));
}

#[test]
fn bad_values_and_unknown_flags_exit_non_zero_naming_the_problem() {
    for (args, words) in [
        (&["-addr", ":70000"][..], "--addr"),
        (&["-addr", "nonsense"][..], "port is missing"),
        (&["--quota", "12XB"][..], "--quota"),
        (&["--replicas", "none"][..], "--replicas"),
        (&["-frobnicate"][..], "frobnicate"),
        // A node setting before a client command would do nothing: refused.
        (
            &["--replicas", "1", "-interactive", "ls"][..],
            "--interactive, --replicas are a node setting",
        ),
        (&["-key", "secret", "ls"][..], "--key is a node setting"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn client_commands_without_a_node_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing-here");
    let out = run(&["--data-dir", data.to_str().unwrap(), "ls"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no PeerVault node is running") && err.contains("--data-dir"),
        "{err}"
    );
    assert!(!data.exists(), "a client must not create the data dir");
}

#[test]
fn the_default_data_dir_differs_per_port_and_is_printed() {
    let home = tempfile::tempdir().unwrap();
    let mut child = command()
        .env("XDG_DATA_HOME", home.path())
        .args(["-addr", "127.0.0.1:0", "-key", TEST_KEY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let expected = home.path().join("peervault/node_port_0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !expected.join("control.sock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "node did not start in {}",
            expected.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let out = command()
        .env("XDG_DATA_HOME", home.path())
        .args(["--addr", ":0", "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["data_dir"], expected.to_str().unwrap());
    let other = command()
        .env("XDG_DATA_HOME", home.path())
        .args(["--addr", ":4321", "status"])
        .output()
        .unwrap();
    assert_eq!(
        other.status.code(),
        Some(3),
        "port 4321 has its own data dir"
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains(expected.to_str().unwrap()),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_config_file_supplies_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let config = dir.path().join("peervault.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nquota = \"3MB\"\nkey = {TEST_KEY:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = command()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !data.join("control.sock").exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let out = run(&["--config", config.to_str().unwrap(), "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["storage"]["total_bytes"], 3 * 1024 * 1024);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let first = TestNode::start(&data);
    let mut second = TestNode::spawn(&data, TEST_KEY, &[]);
    let status = second.wait_exit(std::time::Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        second.log().contains("in use by another PeerVault process"),
        "{}",
        second.log()
    );
    first.ok(&["status"]);
}

#[test]
fn a_wrong_key_is_refused_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    let input = dir.path().join("secret.txt");
    std::fs::write(&input, b"for the right key only").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
    node.stop();
    let mut wrong = TestNode::spawn(&data, "not the same key", &[]);
    let status = wrong.wait_exit(std::time::Duration::from_secs(30));
    assert!(!status.success());
    let log = wrong.log();
    assert!(log.contains("different network key"), "{log}");
    // The data is intact for the right key.
    let node = TestNode::start(&data);
    let out = dir.path().join("back.txt");
    node.ok(&["get", "secret.txt", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out).unwrap(), b"for the right key only");
}

#[test]
fn the_control_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let socket = std::fs::metadata(node.data_dir.join("control.sock")).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    let data_dir = std::fs::metadata(&node.data_dir).unwrap();
    assert_eq!(data_dir.permissions().mode() & 0o777, 0o700);
    let log = node.stop();
    assert!(log.contains("stopped"), "{log}");
    assert!(!dir.path().join("node/control.sock").exists());
}

#[test]
fn a_long_data_dir_path_still_gets_a_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
    let node = TestNode::start(&deep);
    assert!(node.ok(&["status"]).contains("Peer ID"));
}

#[test]
fn the_demo_tells_its_story_and_exits_zero() {
    let out = crate::harness::run(&["-demo", "--replicas", "5"]);
    let text = crate::harness::stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        crate::harness::stderr(&out)
    );
    assert!(
        crate::harness::stderr(&out)
            .contains("-demo runs its own three nodes with a temporary vault; ignoring --replicas"),
        "{}",
        crate::harness::stderr(&out)
    );
    for expected in [
        "==> Starting three nodes on 127.0.0.1",
        "all three are connected to each other",
        "2 of 2 copies durable",
        "its BLAKE3 hash matches",
        "no longer lists it",
        "=== PeerVault Metrics ===",
        "  Retrieved:  1",
        "  Deleted:    1",
        "Demo complete.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The temporary vault is gone.
    let dir = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(" a vault in ").next())
        .unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = crate::harness::run(&["completions", shell]);
        assert!(out.status.success());
        let script = crate::harness::stdout(&out);
        for word in ["discover", "replicas", "gc-interval", "metrics"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = crate::harness::run(&["man"]);
    assert!(out.status.success());
    let page = crate::harness::stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH peervault 1"),
        "{page}"
    );
    assert!(
        page.contains("discover\\-local"),
        "the flags are documented"
    );
    // One page: the commands are in it, not in peervault-put(1) pages nobody has.
    assert!(!page.contains("peervault\\-put(1)"), "{page}");
    assert!(
        page.contains("\\fBpeervault get [OPTIONS] <NAME> [DEST]"),
        "{page}"
    );
    let bad = crate::harness::run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn status_shows_what_the_background_workers_do() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("n"),
        crate::harness::TEST_KEY,
        &["--repair-delay", "2s"],
    );
    let workers = || -> Vec<serde_json::Value> {
        let status: serde_json::Value =
            serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
        status["workers"].as_array().unwrap().clone()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut found = workers();
    while found[1]["rounds"].as_u64().unwrap() < 1 {
        assert!(std::time::Instant::now() < deadline, "{found:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        found = workers();
    }
    assert_eq!(found[0]["name"], "gc");
    assert_eq!(found[0]["rounds"], 0);
    // GC first runs five minutes after start.
    let gc_next = found[0]["next_round_in_seconds"].as_f64().unwrap();
    assert!(gc_next > 200.0 && gc_next <= 300.0, "{gc_next}");
    assert_eq!(found[1]["name"], "repair");
    assert_eq!(found[1]["failures"], 0);
    let text = node.ok(&["status"]);
    let gc_line = text.lines().find(|l| l.starts_with("Worker gc:"));
    assert!(
        gc_line.is_some_and(|l| l.contains("next round in") && l.ends_with("0 rounds")),
        "{text}"
    );
    assert!(text.contains("Worker repair:"), "{text}");
    assert!(
        text.contains("last: 0 files held here checked, 0 short of copies"),
        "{text}"
    );
}

#[test]
fn help_is_a_command_too() {
    let out = crate::harness::run(&["help"]);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    assert!(crate::harness::stdout(&out).contains("Usage: peervault"));
    let out = crate::harness::run(&["help", "put"]);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    assert!(
        crate::harness::stdout(&out).contains("Store a local file in the vault"),
        "{}",
        crate::harness::stdout(&out)
    );
}
