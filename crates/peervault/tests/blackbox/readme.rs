//! The README's Quick Start, run as written: every command of its first shell
//! block, in order, against a fresh data dir (under a temporary XDG_DATA_HOME).
//!
//! Two substitutions keep the test hermetic: the node's `:3000` becomes a free
//! loopback port (client commands get the matching `--addr`), and `./target/release/peervault`
//! is the binary under test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{bin, eventually, free_port};

fn quick_start_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let section = readme
        .split("\n## Quick Start")
        .nth(1)
        .expect("a Quick Start section");
    let block = section
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a bash block in the Quick Start");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_quick_start_command_works_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The README listens on every interface; the test stays on loopback.
    let addr = format!("127.0.0.1:{port}");
    let run = |args: &[String]| {
        Command::new(bin())
            .args(args)
            .args(["--addr", &addr])
            .current_dir(dir.path())
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .env_remove("PEERVAULT_KEY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mut node = None;
    let mut ran = Vec::new();
    for line in quick_start_commands() {
        let words = shlex::split(&line).unwrap_or_else(|| panic!("cannot split {line:?}"));
        match words.first().map(String::as_str) {
            Some("cargo") => assert_eq!(line, "cargo build --release"),
            Some("echo") => {
                assert_eq!(line, "echo \"remember the milk\" > notes.txt");
                std::fs::write(dir.path().join("notes.txt"), "remember the milk\n").unwrap();
            }
            Some("kill") => {
                let mut child: std::process::Child = node.take().expect("a node to stop");
                // SIGTERM, as `kill %1` sends.
                let _ = Command::new("kill").arg(child.id().to_string()).status();
                let status = child.wait().unwrap();
                assert!(status.success(), "the node did not stop cleanly: {status}");
            }
            Some("./target/release/peervault") if words.last().map(String::as_str) == Some("&") => {
                let mut args: Vec<String> = words[1..words.len() - 1].to_vec();
                let at = args.iter().position(|a| a == "-addr").expect("-addr");
                assert_eq!(args[at + 1], ":3000");
                args[at + 1] = addr.clone();
                let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
                let child = Command::new(bin())
                    .args(&args)
                    .current_dir(dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("xdg"))
                    .env_remove("PEERVAULT_KEY")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                node = Some(child);
                let socket = dir
                    .path()
                    .join(format!("xdg/peervault/node_port_{port}/control.sock"));
                eventually("the node is up", Duration::from_secs(30), || {
                    socket.exists()
                });
            }
            Some("./target/release/peervault") => {
                let out = run(&words[1..]);
                assert!(
                    out.status.success(),
                    "{line} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                ran.push(words[1].clone());
            }
            _ => panic!("the test does not know how to run {line:?}; teach it"),
        }
    }
    assert_eq!(
        ran,
        ["put", "ls", "get", "verify", "status", "invite", "rm"]
    );
    // No key was given: the node made one, and says how to add nodes.
    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(log.contains("peervault invite"), "{log}");
    assert!(
        dir.path()
            .join(format!("xdg/peervault/node_port_{port}/vault.key"))
            .exists()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy.txt")).unwrap(),
        "remember the milk\n"
    );
    assert!(node.is_none(), "the Quick Start stops its node");
}
