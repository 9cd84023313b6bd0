//! The REPL driven through standard input (no terminal: plain line input).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{TEST_KEY, command, stdout};

#[test]
fn the_repl_stores_lists_reads_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let input = dir.path().join("notes.txt");
    std::fs::write(&input, "remember the milk\n").unwrap();
    let dest = dir.path().join("copy.txt");
    let script = format!(
        "help\nstore {input}\nstore {input} \"with space.txt\"\nlist\nget notes.txt\n\
         get notes.txt {dest}\nquota\nquota set 2GB\nstatus\nverify\nlsit\n\
         delete notes.txt\ny\nlist\nstore /nonexistent/file\nquit\n",
        input = input.display(),
        dest = dest.display()
    );
    let mut child = command()
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--key",
            TEST_KEY,
        ])
        .args(["-interactive", "--quota", "1GB"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{errors}");
    for expected in [
        "store <path> [name]",
        "File 'notes.txt' stored successfully",
        "File 'with space.txt' stored successfully",
        "Files in the vault (2 files):",
        "remember the milk",
        "retrieved successfully to",
        "=== Storage Quota ===",
        "Total:     1.00 GB",
        "Quota set to 2.00 GB",
        "=== Node Status ===",
        "All 2 files held here verified.",
        "File 'notes.txt' deleted successfully",
        "Files in the vault (1 file):",
        "PeerVault node stopped.",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in:\n{text}\n{errors}"
        );
    }
    assert!(errors.contains("Did you mean 'list'?"), "{errors}");
    assert!(errors.contains("cannot open /nonexistent/file"), "{errors}");
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "remember the milk\n"
    );
    let quota: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join(".quota_config.json")).unwrap())
            .unwrap();
    assert_eq!(quota["max_storage_bytes"], 2u64 << 30);
}

#[test]
fn end_of_input_leaves_the_repl_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let out = command()
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--key",
            TEST_KEY,
        ])
        .arg("-interactive")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("PeerVault node stopped."));
}

/// Runs `peervault` under a pseudo-terminal (util-linux `script`), feeding `input`.
fn run_in_pty(args: &[&str], input: &str) -> Option<String> {
    run_in_pty_with(&[], args, input)
}

/// [`run_in_pty`] with a command prefix (`env NO_COLOR=1`, `timeout 2`).
fn run_in_pty_with(prefix: &[&str], args: &[&str], input: &str) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        let msg = "`script` (util-linux) is not installed: cannot test terminal behaviour";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipping: {msg}");
        return None;
    }
    let mut line: Vec<String> = prefix.iter().map(|p| p.to_string()).collect();
    line.push(crate::harness::bin().to_string());
    line.extend(args.iter().map(|a| format!("'{a}'")));
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_remove("PEERVAULT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Answer one prompt at a time: a terminal discards type-ahead when it switches modes.
    for answer in input.lines() {
        std::thread::sleep(std::time::Duration::from_millis(700));
        stdin.write_all(format!("{answer}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn get_on_a_terminal_shows_short_text_and_refuses_binary_unless_asked() {
    use crate::harness::TestNode;
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("n"));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "remember the milk\n").unwrap();
    let binary = dir.path().join("blob.bin");
    std::fs::write(&binary, [0u8, 0xff, 0x1b, 0x5b, 0x32, 0x4a, 7, 0]).unwrap();
    node.ok(&["put", text.to_str().unwrap()]);
    node.ok(&["put", binary.to_str().unwrap()]);
    let data_dir = node.data_dir.to_str().unwrap().to_string();
    let Some(shown) = run_in_pty(&["--data-dir", &data_dir, "get", "notes.txt"], "") else {
        return;
    };
    assert!(shown.contains("remember the milk"), "{shown}");
    let refused = run_in_pty(&["--data-dir", &data_dir, "get", "blob.bin"], "").unwrap();
    assert!(
        refused.contains("of binary data; give a destination"),
        "{refused}"
    );
    assert!(
        !refused.contains('\u{1b}'),
        "the escape bytes reached the terminal"
    );
    // Asked for explicitly, the bytes come.
    let forced = run_in_pty(&["--data-dir", &data_dir, "get", "blob.bin", "-o", "-"], "").unwrap();
    assert!(forced.as_bytes().contains(&0x1b), "{forced:?}");
}

#[test]
fn get_on_a_terminal_asks_before_replacing_a_file() {
    use crate::harness::TestNode;
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("n"));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "from the vault\n").unwrap();
    node.ok(&["put", text.to_str().unwrap()]);
    let data_dir = node.data_dir.to_str().unwrap().to_string();
    let dest = dir.path().join("dest.txt");
    std::fs::write(&dest, "local edits").unwrap();
    let dest_arg = dest.to_str().unwrap();
    let args = ["--data-dir", &data_dir, "get", "notes.txt", "-o", dest_arg];
    let Some(kept) = run_in_pty(&args, "n") else {
        return;
    };
    assert!(kept.contains("exists (11 B). Replace it?"), "{kept}");
    assert!(kept.contains("Kept"), "{kept}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"local edits");
    let replaced = run_in_pty(&args, "y").unwrap();
    assert!(replaced.contains("retrieved successfully"), "{replaced}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"from the vault\n");
}

#[test]
fn first_interactive_start_on_a_terminal_asks_for_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let Some(text) = run_in_pty(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--key",
            TEST_KEY,
            "-interactive",
        ],
        "lots\n5GB\nquota\nquit\n",
    ) else {
        return;
    };
    assert!(
        text.contains("Enter maximum storage size (e.g., 1GB, 500MB, 10GB):"),
        "{text}"
    );
    assert!(text.contains("invalid size \"lots\""), "{text}");
    assert!(
        text.contains("Storage quota set to: 5.00 GB (5368709120 bytes)"),
        "{text}"
    );
    assert!(text.contains("Total:     5.00 GB"), "{text}");
    let quota: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join(".quota_config.json")).unwrap())
            .unwrap();
    assert_eq!(quota["max_storage_bytes"], 5_368_709_120u64);
    assert_eq!(quota["storage_root"], data.to_str().unwrap());
}

#[test]
fn a_store_over_quota_offers_files_to_delete_by_number_or_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mib = 1024 * 1024;
    let mut paths = Vec::new();
    for (name, size) in [
        ("a.bin", 3 * mib),
        ("b.bin", 4 * mib),
        ("c.bin", 5 * mib),
        ("d.bin", 6 * mib),
    ] {
        let path = dir.path().join(name);
        crate::harness::write_random_file(&path, size, size);
        paths.push(path.to_str().unwrap().to_string());
    }
    let input = format!(
        "store {a}\nstore {b}\nstore {c}\n7\n2\nstore {d}\ncancel\nlist\nquit\n",
        a = paths[0],
        b = paths[1],
        c = paths[2],
        d = paths[3]
    );
    let args = prompt_args(&data, "10MB", &[]);
    let Some(text) = run_in_pty(&args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
    else {
        return;
    };
    assert!(text.contains("Insufficient storage space!"), "{text}");
    assert!(text.contains("Need to free:"), "{text}");
    assert!(
        text.contains("Enter file numbers to delete (comma-separated, e.g., 1,3,5) or 'cancel':"),
        "{text}"
    );
    assert!(
        text.contains("\"7\" is not a number from the list (1-2)"),
        "{text}"
    );
    assert!(text.contains("File 'b.bin' deleted successfully"), "{text}");
    assert!(text.contains("File 'c.bin' stored successfully"), "{text}");
    assert!(
        text.contains("Store cancelled; nothing was deleted."),
        "{text}"
    );
    // a and c remain; d was not stored and nothing else went.
    let list = text.rsplit("Files in the vault").next().unwrap();
    assert!(list.contains("a.bin") && list.contains("c.bin"), "{list}");
    assert!(!list.contains("b.bin") && !list.contains("d.bin"), "{list}");
}

#[test]
fn a_store_over_quota_offers_to_drop_copies_other_nodes_hold_before_deleting() {
    use crate::harness::TestNode;
    let dir = tempfile::tempdir().unwrap();
    let peer = TestNode::start(&dir.path().join("peer"));
    let bootstrap = format!("127.0.0.1:{}", peer.port());
    let mib = 1024 * 1024;
    let shared = dir.path().join("shared.bin");
    let big = dir.path().join("big.bin");
    crate::harness::write_random_file(&shared, 4 * mib, 1);
    crate::harness::write_random_file(&big, 8 * mib, 2);
    // Status lines give the prompt time to meet its peer.
    let input = format!(
        "status\nstatus\nstatus\nstatus\nstore {shared}\nstore {big}\n9\n1\nlist\nquit\n",
        shared = shared.display(),
        big = big.display()
    );
    let data = dir.path().join("node");
    let args = prompt_args(&data, "10MB", &["-bootstrap", &bootstrap]);
    let Some(text) = run_in_pty(&args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
    else {
        return;
    };
    assert!(
        text.contains("File 'shared.bin' stored successfully"),
        "{text}"
    );
    assert!(text.contains("Insufficient storage space!"), "{text}");
    assert!(
        text.contains(
            "Files other nodes also hold: dropping this node's copy frees the space here"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"9\" is not a number from the list (1-1)"),
        "{text}"
    );
    assert!(
        text.contains("Dropped this node's copies of 'shared.bin'"),
        "{text}"
    );
    assert!(
        text.contains("File 'big.bin' stored successfully"),
        "{text}"
    );
    assert!(!text.contains("deleted successfully"), "{text}");
    // Both files are in the vault; the peer still holds the dropped one.
    let list = text.rsplit("Files in the vault").next().unwrap();
    assert!(
        list.contains("shared.bin") && list.contains("big.bin"),
        "{list}"
    );
    let copy = dir.path().join("copy.bin");
    peer.ok(&["get", "shared.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(
        crate::harness::hash_file(&copy),
        crate::harness::hash_file(&shared)
    );
}

/// A REPL running in a tmux pane, with everything the pane ever showed logged.
struct Tmux {
    session: String,
    log: std::path::PathBuf,
}

impl Tmux {
    /// Starts `peervault` in a detached 160x50 tmux session, or explains why not.
    fn start(tag: &str, dir: &std::path::Path, args: &[&str]) -> Option<Tmux> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            let msg = "tmux is not installed: cannot drive the REPL like a user";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
        let session = format!("pv{tag}{}", std::process::id());
        let log = dir.join(format!("{tag}.pane.log"));
        let mut line = format!("NO_COLOR=1 {}", crate::harness::bin());
        for a in args {
            line.push_str(&format!(" '{a}'"));
        }
        let ok = std::process::Command::new("tmux")
            .args(["new-session", "-d", "-x", "160", "-y", "50", "-s", &session])
            .arg(format!("{line}; sleep 30"))
            .env_remove("PEERVAULT_KEY")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        let t = Tmux { session, log };
        t.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            &t.session,
            &format!("cat >> '{}'", t.log.display()),
        ]);
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Everything written to the pane so far (bars included, escapes and all).
    fn history(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Types `keys` (tmux key names, e.g. "Tab", "Enter", "C-c", or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.session, "-l", text]);
    }

    fn wait_for(&self, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.screen().contains(what) {
            assert!(
                std::time::Instant::now() < deadline,
                "the pane never showed {what:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-session", "-t", &self.session]);
    }
}

fn repl_args(data: &std::path::Path) -> Vec<String> {
    prompt_args(data, "1GB", &[])
}

/// A node with the prompt on `data`, on a port of its own, with `quota` and
/// `extra` flags.
fn prompt_args(data: &std::path::Path, quota: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--data-dir",
        data.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--key",
        TEST_KEY,
        "--quota",
        quota,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("-interactive".into());
    args
}

#[test]
fn a_user_at_the_prompt_completes_recalls_watches_progress_and_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("notes-for-monday.txt"), "remember the milk\n").unwrap();
    crate::harness::write_random_file(&files.join("big.bin"), 50 * 1024 * 1024, 5);
    let args = repl_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(t) = Tmux::start("a", dir.path(), &args) else {
        return;
    };
    t.wait_for("PeerVault>");

    // Command and path completion.
    t.text("sto");
    t.keys(&["Tab"]);
    t.wait_for("PeerVault> store");
    t.text(&format!("{}/notes-fo", files.display()));
    t.keys(&["Tab"]);
    t.wait_for("notes-for-monday.txt");
    t.keys(&["Enter"]);
    t.wait_for("File 'notes-for-monday.txt' stored successfully");

    // Vault name completion, then history.
    t.text("get notes-f");
    t.keys(&["Tab"]);
    t.wait_for("PeerVault> get notes-for-monday.txt");
    t.keys(&["Enter"]);
    t.wait_for("remember the milk");
    t.keys(&["C-l"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.screen().contains("remember the milk") {
        assert!(
            std::time::Instant::now() < deadline,
            "C-l did not clear the screen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    t.keys(&["Up"]);
    t.wait_for("PeerVault> get notes-for-monday.txt");
    t.keys(&["C-u"]);

    // A 50 MiB store shows a progress bar while it runs.
    t.text(&format!("store {}/big.bin", files.display()));
    t.keys(&["Enter"]);
    t.wait_for("File 'big.bin' stored successfully");
    let seen = t.history();
    assert!(
        // In MB, as every other figure (it said MiB).
        seen.contains("storing big.bin") && seen.contains("/50.00 MB") && !seen.contains("MiB"),
        "no progress bar was drawn:\n{seen}"
    );

    // Delete asks first; "n" keeps the file, "y" deletes it.
    t.text("delete big.bin");
    t.keys(&["Enter"]);
    t.wait_for("(y/N)");
    t.text("n");
    t.keys(&["Enter"]);
    t.wait_for("Kept 'big.bin'.");
    t.text("delete big.bin");
    t.keys(&["Enter"]);
    t.wait_for("Every node will drop its copy. (y/N)");
    t.text("y");
    t.keys(&["Enter"]);
    t.wait_for("File 'big.bin' deleted successfully");

    // quit leaves cleanly and the history is kept in the data dir.
    t.text("quit");
    t.keys(&["Enter"]);
    t.wait_for("PeerVault node stopped.");
    let history = std::fs::read_to_string(data.join("repl_history")).unwrap();
    assert!(history.contains("get notes-for-monday.txt"), "{history}");
}

#[test]
fn ctrl_c_cancels_a_half_typed_line_and_ctrl_d_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let args = repl_args(&dir.path().join("node"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(t) = Tmux::start("c", dir.path(), &args) else {
        return;
    };
    t.wait_for("'quit' or Ctrl-D to leave");
    t.wait_for("PeerVault>");
    // As in a shell: the line goes, the node stays.
    t.text("delete every");
    t.keys(&["C-c"]);
    t.wait_for("line cancelled");
    t.text("status");
    t.keys(&["Enter"]);
    t.wait_for("=== Node Status ===");
    assert!(
        !t.screen().contains("PeerVault node stopped."),
        "{}",
        t.screen()
    );
    t.keys(&["C-d"]);
    t.wait_for("PeerVault node stopped.");
}

#[test]
fn log_lines_appear_above_the_prompt_and_keep_the_half_typed_line() {
    use crate::harness::{TestNode, free_port};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut args = repl_args(&dir.path().join("node"));
    let at = args.iter().position(|a| a == "127.0.0.1:0").unwrap();
    args[at] = format!("127.0.0.1:{port}");
    args.extend(["--log-level".to_string(), "info".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(t) = Tmux::start("l", dir.path(), &args) else {
        return;
    };
    t.wait_for("PeerVault>");
    t.text("stat");
    // A peer arrives while the user types: the node logs it.
    let bootstrap = format!("127.0.0.1:{port}");
    let _peer = TestNode::start_with(
        &dir.path().join("peer"),
        TEST_KEY,
        &["-bootstrap", bootstrap.as_str()],
    );
    t.wait_for("connected to peer");
    let screen = t.screen();
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let logged = lines
        .iter()
        .find(|l| l.contains("connected to peer"))
        .unwrap();
    assert!(
        !logged.contains("PeerVault>"),
        "the log line took the prompt's line:\n{screen}"
    );
    assert_eq!(
        lines.last().map(|l| l.trim_end()),
        Some("PeerVault> stat"),
        "the prompt and the typed text are drawn again below the log:\n{screen}"
    );
    t.text("us");
    t.keys(&["Enter"]);
    t.wait_for("=== Node Status ===");
    t.keys(&["C-d"]);
    t.wait_for("PeerVault node stopped.");
}

#[test]
fn a_user_with_peers_completes_peer_ids_asks_for_help_and_cleans_up() {
    use crate::harness::{TestNode, eventually};
    let dir = tempfile::tempdir().unwrap();
    let b = TestNode::start(&dir.path().join("b"));
    let bootstrap = format!("localhost:{}", b.port());
    let c = TestNode::start_with(
        &dir.path().join("c"),
        TEST_KEY,
        &["-bootstrap", bootstrap.as_str()],
    );
    let data = dir.path().join("node");
    let mut args = repl_args(&data);
    args.extend(["-bootstrap".to_string(), bootstrap.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(t) = Tmux::start("p", dir.path(), &args) else {
        return;
    };
    t.wait_for("PeerVault>");
    let peer_b = b.peer_id();
    eventually(
        "the prompt's node meets both peers",
        Duration::from_secs(30),
        || b.peer_count() == 2 && c.peer_count() == 2,
    );

    // `help <command>` explains one command.
    t.text("help fetch");
    t.keys(&["Enter"]);
    t.wait_for("Copy a file from that peer only");

    // A 3 MiB file: the bar ends with the copies made, then the result line.
    let input = dir.path().join("shared.bin");
    crate::harness::write_random_file(&input, 3 * 1024 * 1024, 8);
    t.text(&format!("store {}", input.display()));
    t.keys(&["Enter"]);
    t.wait_for("File 'shared.bin' stored successfully");
    assert!(
        t.screen().contains("3 of 3 copies durable"),
        "{}",
        t.screen()
    );
    assert!(
        t.history().contains("copies durable"),
        "the bar showed no copy count:\n{}",
        t.history()
    );

    // Peer ids complete from the connected peers.
    let written = c.ls();
    assert_eq!(written.len(), 1);
    t.keys(&["C-l"]);
    t.text(&format!("send shared.bin {}", &peer_b[..peer_b.len() - 6]));
    t.keys(&["Tab"]);
    t.wait_for(&format!("send shared.bin {peer_b}"));
    t.keys(&["C-u"]);

    // metrics, discover and gc in the original's layout.
    t.keys(&["C-l"]);
    t.text("metrics");
    t.keys(&["Enter"]);
    t.wait_for("=== PeerVault Metrics ===");
    t.wait_for("Stored:     1");
    t.keys(&["C-l"]);
    t.text("discover");
    t.keys(&["Enter"]);
    t.wait_for("=== Peer Discovery Status ===");
    t.wait_for("DHT:");
    t.keys(&["C-l"]);
    t.text("gc");
    t.keys(&["Enter"]);
    t.wait_for("0 corrupted, 0 orphaned, 0 removed");

    // clean asks, says what it removed, and leaves the vault's listing alone.
    t.keys(&["C-l"]);
    t.text("clean");
    t.keys(&["Enter"]);
    t.wait_for("Remove this node's copies of 1 file");
    t.text("y");
    t.keys(&["Enter"]);
    t.wait_for("Removed this node's copies of 1 file (");
    t.keys(&["C-l"]);
    t.text("list");
    t.keys(&["Enter"]);
    t.wait_for("shared.bin");
    t.wait_for(" no ");

    // fetch brings this node's copy back from one peer.
    t.keys(&["C-l"]);
    t.text("fetch shared.bin 1");
    t.keys(&["Enter"]);
    t.wait_for("fetched from");
    t.text("quit");
    t.keys(&["Enter"]);
    t.wait_for("PeerVault node stopped.");
}

#[test]
fn progress_bars_and_colours_appear_only_on_a_terminal() {
    use crate::harness::{TestNode, stderr};
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("n"));
    let data = node.data_dir.to_str().unwrap().to_string();
    let big = dir.path().join("big.bin");
    crate::harness::write_random_file(&big, 5 * 1024 * 1024, 9);
    let big = big.to_str().unwrap();

    let Some(shown) = run_in_pty(&["--data-dir", &data, "put", big], "") else {
        return;
    };
    assert!(shown.contains("storing big.bin"), "{shown}");
    assert!(shown.contains("stored successfully"), "{shown}");
    let quiet = run_in_pty(&["--data-dir", &data, "put", big, "--quiet"], "").unwrap();
    assert!(!quiet.contains("storing big.bin"), "{quiet}");
    assert!(quiet.contains("stored successfully"), "{quiet}");
    let piped = node.cli(&["put", big]);
    assert!(piped.status.success());
    assert!(!stderr(&piped).contains("storing"), "{}", stderr(&piped));

    // Log lines are coloured on a terminal, unless NO_COLOR is set.
    let lone = |tag: &str| {
        let data = dir.path().join(tag);
        vec![
            "--data-dir".to_string(),
            data.to_str().unwrap().to_string(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--key".into(),
            TEST_KEY.into(),
            "--log-level".into(),
            "debug".into(),
        ]
    };
    let args = lone("colour");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coloured = run_in_pty_with(
        &["env", "-u", "NO_COLOR", "timeout", "-s", "INT", "2"],
        &args,
        "",
    )
    .unwrap();
    assert!(coloured.contains("DEBUG"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal:\n{coloured}"
    );
    let args = lone("plain");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = run_in_pty_with(
        &["env", "NO_COLOR=1", "timeout", "-s", "INT", "2"],
        &args,
        "",
    )
    .unwrap();
    assert!(plain.contains("DEBUG"), "{plain}");
    assert!(!plain.contains('\x1b'), "colour despite NO_COLOR:\n{plain}");
}

#[test]
fn a_tree_stored_over_quota_at_the_prompt_gets_the_offer_to_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mib = 1024 * 1024;
    let old = dir.path().join("old.bin");
    crate::harness::write_random_file(&old, 6 * mib, 1);
    let tree = dir.path().join("photos");
    std::fs::create_dir_all(tree.join("2024")).unwrap();
    crate::harness::write_random_file(&tree.join("2024/a.bin"), 3 * mib, 2);
    crate::harness::write_random_file(&tree.join("b.bin"), 3 * mib, 3);
    let input = format!(
        "store {old}\nstore -r {tree}\n1\nlist photos\nquit\n",
        old = old.display(),
        tree = tree.display()
    );
    let args = prompt_args(&data, "10MB", &[]);
    let Some(text) = run_in_pty(&args.iter().map(String::as_str).collect::<Vec<_>>(), &input)
    else {
        return;
    };
    assert!(text.contains("Insufficient storage space!"), "{text}");
    assert!(
        text.contains("File 'old.bin' deleted successfully"),
        "{text}"
    );
    assert!(text.contains("Stored 2 files"), "{text}");
    assert!(text.contains("photos/2024/"), "{text}");
}
