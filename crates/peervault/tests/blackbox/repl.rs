//! The REPL driven through standard input (no terminal: plain line input).

use std::io::Write;
use std::process::Stdio;

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
        "All 2 files verified.",
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
    let mut line = vec![crate::harness::bin().to_string()];
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
    let Some(text) = run_in_pty(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--key",
            TEST_KEY,
            "--quota",
            "10MB",
            "-interactive",
        ],
        &input,
    ) else {
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
