//! Trees: `put -r`, `get -r`, `ls PREFIX`, `rm -r`, with modes, times and links.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::harness::{TestNode, stderr};

/// Sets a file's modification time.
fn set_mtime(path: &Path, unix_seconds: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(unix_seconds))
        .unwrap();
}

/// What a tree is, file by file: (relative path, kind, mode, mtime, content
/// or link target).
fn describe(root: &Path) -> Vec<(String, &'static str, u32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if meta.is_dir() {
                pending.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((
                    rel,
                    "link",
                    0,
                    0,
                    target.to_str().unwrap().as_bytes().to_vec(),
                ));
            } else {
                out.push((
                    rel,
                    "file",
                    meta.mode() & 0o7777,
                    meta.mtime(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_tree_comes_back_exactly_and_a_second_put_sends_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let tree = dir.path().join("photos");
    std::fs::create_dir_all(tree.join("2019/été")).unwrap();
    std::fs::create_dir_all(tree.join("empty-folder-is-not-kept/inner")).unwrap();
    std::fs::write(tree.join("2019/été/plage ☀.txt"), "sun and sand\n").unwrap();
    std::fs::write(tree.join("2019/empty.bin"), b"").unwrap();
    std::fs::write(tree.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(tree.join("secret.txt"), "only me\n").unwrap();
    crate::harness::write_random_file(&tree.join("2019/big.bin"), 3 * 1024 * 1024 + 5, 7);
    std::os::unix::fs::symlink("2019/été/plage ☀.txt", tree.join("latest")).unwrap();
    std::fs::set_permissions(tree.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        tree.join("secret.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    set_mtime(&tree.join("2019/été/plage ☀.txt"), 1_000_000_000);
    set_mtime(&tree.join("run.sh"), 1_234_567_890);
    // A FIFO is not a file: skipped, with a note.
    let fifo = tree.join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );

    let out = node.cli(&["put", "-r", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("Stored 6 files"), "{said}");
    assert!(
        said.contains("under photos/; 0 unchanged; 1 skipped"),
        "{said}"
    );
    assert!(
        stderr(&out).contains("pipe (not a file, folder or link)"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&fifo).unwrap();

    // One level at a time, folders with their counts.
    let level: serde_json::Value =
        serde_json::from_str(&node.ok(&["ls", "photos", "--json"])).unwrap();
    let names: Vec<(&str, &str)> = level
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("photos/2019/", "folder"),
            ("photos/latest", "link"),
            ("photos/run.sh", "file"),
            ("photos/secret.txt", "file")
        ]
    );
    assert_eq!(level[0]["files"], 3);
    let all: serde_json::Value =
        serde_json::from_str(&node.ok(&["ls", "photos", "--recursive", "--json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 6);

    // Back, exactly: content, mode, mtime, links.
    let back = dir.path().join("restored");
    node.ok(&["get", "-r", "photos", "-o", back.to_str().unwrap()]);
    let mut expected = describe(&tree);
    expected.retain(|e| !e.0.starts_with("empty-folder"));
    assert_eq!(describe(&back), expected);
    // Again into the same place: refused without --force, which replaces.
    let again = node.cli(&["get", "-r", "photos", "-o", back.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("add --force"), "{}", stderr(&again));
    node.ok(&[
        "get",
        "-r",
        "photos",
        "-o",
        back.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(describe(&back), expected);

    // One change: only that file is sent again.
    std::fs::write(tree.join("secret.txt"), "only me, changed\n").unwrap();
    let second = node.ok(&["put", "-r", tree.to_str().unwrap()]);
    assert!(
        second.contains("Stored 1 file (17 B) under photos/; 5 unchanged"),
        "{second}"
    );

    // rm -r removes the tree, and nothing else.
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "stays").unwrap();
    node.ok(&["put", other.to_str().unwrap()]);
    let removed = node.ok(&["rm", "-r", "photos", "--yes"]);
    assert!(removed.contains("Deleted 6 files"), "{removed}");
    let left: serde_json::Value = serde_json::from_str(&node.ok(&["ls", "--json"])).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["name"], "other.txt");
}

#[test]
fn get_r_never_writes_outside_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let input = dir.path().join("x.txt");
    std::fs::write(&input, "hostile").unwrap();
    // Names are keys: these are valid names, and must not become paths.
    for name in ["t/../escaped.txt", "t/a/../../escaped2.txt", "t/ok.txt"] {
        node.ok(&["put", input.to_str().unwrap(), "--name", name]);
    }
    let sentinel = dir.path().join("escaped.txt");
    std::fs::write(&sentinel, "sentinel").unwrap();
    let out_dir = dir.path().join("out");
    let out = node.cli(&["get", "-r", "t", "-o", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("would lead outside"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"sentinel");
    assert!(!dir.path().join("escaped2.txt").exists());
    assert_eq!(std::fs::read(out_dir.join("ok.txt")).unwrap(), b"hostile");
}
