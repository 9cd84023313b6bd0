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
