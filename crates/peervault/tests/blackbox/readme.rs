//! The README's Quick Start, run as written: every command of its first shell
//! block, in order, against a fresh data dir (under a temporary XDG_DATA_HOME),
//! with what they print compared to the transcript the README shows; and its
//! Install lines, run in an empty home directory.
//!
//! Two substitutions keep the test hermetic: the node's `:3000` becomes a free
//! loopback port (client commands get the matching `--addr`), and `./target/release/peervault`
//! is the binary under test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{bin, eventually, free_port};

/// The `n`th (from 0) block of kind `lang` in the README's section `heading`.
fn readme_block(heading: &str, lang: &str, n: usize) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_else(|| panic!("a {heading} section"));
    section
        .split(&format!("```{lang}\n"))
        .nth(n + 1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("block {n} of {lang} in {heading}"))
        .to_string()
}

/// A shell block's commands, without comments.
fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn quick_start_commands() -> Vec<String> {
    commands(&readme_block("Quick Start", "bash", 0))
}

/// The Quick Start's transcript: each `$ command` with the lines it prints.
fn quick_start_transcript() -> Vec<(String, String)> {
    let block = readme_block("Quick Start", "text", 0);
    let mut shown: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => shown.push((command.to_string(), String::new())),
            None => {
                let (_, out) = shown.last_mut().expect("output before any command");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    shown
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
    let mut printed = Vec::new();
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
                // `... > node.log 2>&1 &`: the log goes to a file, not the terminal.
                let redirect = [">", "node.log", "2>&1", "&"];
                assert!(words.ends_with(&redirect.map(String::from)), "{line}");
                let mut args: Vec<String> = words[1..words.len() - redirect.len()].to_vec();
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
                printed.push((line.clone(), String::from_utf8(out.stdout).unwrap()));
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
    // What the README says they print is what they printed.
    let transcript = quick_start_transcript();
    assert!(transcript.len() >= 4, "{transcript:?}");
    for (command, shown) in transcript {
        let (_, real) = printed
            .iter()
            .find(|(line, _)| *line == command)
            .unwrap_or_else(|| panic!("{command:?} is not in the Quick Start"));
        assert_eq!(real, &shown, "what {command:?} prints");
    }
}

#[test]
fn the_install_lines_work_in_an_empty_home() {
    let home = tempfile::tempdir().unwrap();
    // `cargo install` put the binary in ~/.cargo/bin; here, the one under test.
    let cargo_bin = home.path().join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).unwrap();
    std::os::unix::fs::symlink(bin(), cargo_bin.join("peervault")).unwrap();
    let lines: Vec<String> = commands(&readme_block("Install", "bash", 0))
        .into_iter()
        .filter(|l| !l.starts_with("cargo install") && !l.ends_with("-demo"))
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    let path = format!("{}:/usr/bin:/bin", cargo_bin.display());
    let shell = |script: &str| {
        Command::new("bash")
            .args(["--noprofile", "--norc", "-e", "-c", script])
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", &path)
            .current_dir(home.path())
            .output()
            .unwrap()
    };
    let out = shell(&lines.join("\n"));
    assert!(
        out.status.success(),
        "{lines:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `man` finds the page.
    if Command::new("man").arg("--version").output().is_ok() {
        let found = shell("man -w peervault");
        assert!(
            found.status.success(),
            "man does not find the page: {}",
            String::from_utf8_lossy(&found.stderr)
        );
    } else {
        assert!(std::env::var_os("CI").is_none(), "man is not installed");
        eprintln!("skipping the man lookup: man is not installed");
    }
    // bash completes flags as the README spells them, and their values.
    let complete = |words: &str| {
        let out = shell(&format!(
            "source ~/.local/share/bash-completion/completions/peervault
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
             _peervault peervault \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let flags = complete("peervault -data-d");
    assert_eq!(flags.trim(), "-data-dir", "{flags}");
    let both = complete("peervault -inter");
    assert_eq!(both.trim(), "-interactive");
    let long = complete("peervault --inter");
    assert_eq!(long.trim(), "--interactive");
    let values = complete("peervault -log-format ''");
    assert_eq!(
        values.split_whitespace().collect::<Vec<_>>(),
        ["text", "json"]
    );
    let sub = complete("peervault -addr :4000 get -fo");
    assert_eq!(sub.trim(), "-force", "{sub}");
}

/// The binary `cargo install` puts on users' disks carries no debug info (with
/// line tables it was 117 MB; without, about 24); profiling has its own profile.
#[test]
fn installed_binaries_carry_no_debug_info_and_profiling_has_a_profile() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
            .unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    let profiles = manifest["profile"].as_table().unwrap();
    let release = profiles["release"].as_table().unwrap();
    let no_debug = |v: &toml::Value| {
        matches!(v, toml::Value::Boolean(false) | toml::Value::Integer(0))
            || v.as_str() == Some("none")
    };
    assert!(release.get("debug").is_some_and(no_debug), "{release:?}");
    assert!(
        matches!(
            release.get("strip").and_then(|s| s.as_str()),
            Some("debuginfo" | "symbols")
        ),
        "{release:?}"
    );
    let profiling = profiles["profiling"].as_table().unwrap();
    assert_eq!(profiling["inherits"].as_str(), Some("release"));
    assert!(
        !profiling.get("debug").is_some_and(no_debug),
        "{profiling:?}"
    );
}
