//! Erasure coding as users run it: six `peervault` processes with
//! `--redundancy 4+2` keep a 48 MiB file in no more than 1.6 times its size,
//! read it back byte for byte with any two killed, and rebuild the lost
//! shards on new nodes once the repair delay has passed; `put --redundancy`
//! codes one file on a node that copies whole by default.

use std::path::Path;
use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, eventually, hash_file, write_random_file};

const CONNECT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;

fn start(dir: &Path, name: &str, bootstrap: Option<&TestNode>, extra: &[&str]) -> TestNode {
    let boot = bootstrap.map(|b| format!("127.0.0.1:{}", b.port()));
    let mut args = vec!["--repair-delay", "4s", "--sync-interval", "3s"];
    args.extend(extra);
    if let Some(boot) = &boot {
        args.extend(["-bootstrap", boot.as_str()]);
    }
    TestNode::start_with(&dir.join(name), TEST_KEY, &args)
}

fn used_bytes(node: &TestNode) -> u64 {
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    status["storage"]["used_bytes"].as_u64().unwrap()
}

/// Nodes that hold shards (all chunks of at least one index) of `name`:
/// those whose listing says `local`.
fn holders(nodes: &[&TestNode], name: &str) -> usize {
    crate::harness::holding(nodes, name)
}

fn get_hash(node: &TestNode, name: &str, dir: &Path) -> blake3::Hash {
    let out = dir.join(format!("{name}.{}", node.port()));
    node.ok(&["get", name, "-o", out.to_str().unwrap()]);
    let hash = hash_file(&out);
    std::fs::remove_file(&out).unwrap();
    hash
}

#[test]
fn six_nodes_4_plus_2_store_a_file_in_1_6x_read_it_with_any_two_killed_and_rebuild_shards() {
    let dir = tempfile::tempdir().unwrap();
    let coded = ["--redundancy", "4+2"];
    let a = start(dir.path(), "a", None, &coded);
    let mut nodes = vec![a];
    for name in ["b", "c", "d", "e", "f"] {
        let node = start(dir.path(), name, Some(&nodes[0]), &coded);
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_peers(5, CONNECT);
    }
    let source = dir.path().join("big.bin");
    let hash = write_random_file(&source, 48 * MIB, 29);
    let out = nodes[0].ok(&["put", source.to_str().unwrap(), "-q"]);
    assert!(
        out.contains("6 of 6 shards durable, erasure coded 4+2"),
        "{out}"
    );
    let listed = nodes[3].ls();
    let file = listed.iter().find(|f| f["name"] == "big.bin").unwrap();
    assert_eq!(file["redundancy"], "4+2");
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert_eq!(holders(&refs, "big.bin"), 6);
    let stored: u64 = nodes.iter().map(used_bytes).sum();
    assert!(
        stored <= 48 * MIB * 16 / 10,
        "{stored} bytes stored across the vault for 48 MiB"
    );
    // Any two killed (here two peers): every other node reads it whole.
    nodes.pop().unwrap().kill9();
    nodes.remove(1).kill9();
    for node in &nodes {
        assert_eq!(get_hash(node, "big.bin", dir.path()), hash);
    }
    // Six nodes again: the two lost shards are rebuilt on the new ones.
    for name in ["g", "h"] {
        let node = start(dir.path(), name, Some(&nodes[0]), &coded);
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_peers(5, CONNECT);
    }
    eventually("every shard is back", Duration::from_secs(90), || {
        holders(&nodes.iter().collect::<Vec<_>>(), "big.bin") == 6
    });
    let stored: u64 = nodes.iter().map(used_bytes).sum();
    assert!(stored <= 48 * MIB * 16 / 10, "{stored} bytes after repair");
    // And the rebuilt shards are good: two others killed, still whole.
    nodes.remove(0).kill9();
    nodes.remove(0).kill9();
    for node in &nodes {
        assert_eq!(get_hash(node, "big.bin", dir.path()), hash);
    }
}

#[test]
fn put_redundancy_codes_one_file_and_a_bad_value_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a", None, &[]);
    let b = start(dir.path(), "b", Some(&a), &[]);
    let c = start(dir.path(), "c", Some(&a), &[]);
    for node in [&a, &b, &c] {
        node.wait_peers(2, CONNECT);
    }
    let source = dir.path().join("one.bin");
    let hash = write_random_file(&source, 5 * MIB, 3);
    let out = a.ok(&["put", source.to_str().unwrap(), "--redundancy", "2+1", "-q"]);
    assert!(
        out.contains("3 of 3 shards durable, erasure coded 2+1"),
        "{out}"
    );
    let stored: u64 = [&a, &b, &c].iter().map(|n| used_bytes(n)).sum();
    assert!(stored < 5 * MIB * 16 / 10, "{stored}");
    c.kill9();
    assert_eq!(get_hash(&b, "one.bin", dir.path()), hash);
    let bad = a.cli(&["put", source.to_str().unwrap(), "--redundancy", "4"]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("4+2") && said.contains("none"), "{said}");
}

fn kept_as(node: &TestNode, name: &str) -> Option<String> {
    node.ls()
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["redundancy"].as_str().map(str::to_string))
}

#[test]
fn redundancy_switches_a_running_vault_to_2_plus_1_and_back_and_every_file_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a", None, &[]);
    let b = start(dir.path(), "b", Some(&a), &[]);
    let c = start(dir.path(), "c", Some(&a), &[]);
    let d = start(dir.path(), "d", Some(&a), &[]);
    let nodes = [&a, &b, &c, &d];
    for node in nodes {
        node.wait_peers(3, CONNECT);
    }
    let mut files = Vec::new();
    for i in 0..3u64 {
        let path = dir.path().join(format!("f{i}"));
        let hash = write_random_file(&path, 2 * MIB + i * 1000, 40 + i);
        nodes[i as usize].ok(&["put", path.to_str().unwrap(), "-q"]);
        files.push((format!("f{i}"), hash));
    }
    let shown = d.ok(&["redundancy"]);
    assert!(shown.contains("whole copies"), "{shown}");
    let set = b.ok(&["redundancy", "2+1"]);
    assert!(set.contains("erasure coded 2+1"), "{set}");
    eventually("every file is re-encoded", Duration::from_secs(90), || {
        for (name, hash) in &files {
            // Readable all the while, from any node.
            assert_eq!(get_hash(&c, name, dir.path()), *hash);
        }
        files.iter().all(|(name, _)| {
            nodes
                .iter()
                .all(|n| kept_as(n, name).as_deref() == Some("2+1"))
        })
    });
    let status: serde_json::Value = serde_json::from_str(&a.ok(&["redundancy", "--json"])).unwrap();
    assert_eq!(status["redundancy"], "2+1");
    assert_eq!(status["source"], "vault");
    // A node started later follows the vault, not its own flag.
    let e = start(dir.path(), "e", Some(&a), &["--redundancy", "4+2"]);
    e.wait_peers(4, CONNECT);
    eventually(
        "the newcomer has the setting",
        Duration::from_secs(30),
        || {
            let s: serde_json::Value =
                serde_json::from_str(&e.ok(&["redundancy", "--json"])).unwrap();
            s["redundancy"] == "2+1"
        },
    );
    let bad = a.cli(&["redundancy", "3"]);
    assert!(!bad.status.success());
    d.ok(&["redundancy", "none"]);
    eventually("every file is whole again", Duration::from_secs(90), || {
        files.iter().all(|(name, _)| {
            [&a, &b, &c, &d, &e]
                .iter()
                .all(|n| kept_as(n, name).is_none())
        })
    });
    for (name, hash) in &files {
        assert_eq!(get_hash(&e, name, dir.path()), *hash);
    }
}
