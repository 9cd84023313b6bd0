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

/// Nodes that hold shards (all chunks of at least one index) of `name`.
fn holders(nodes: &[&TestNode], name: &str) -> usize {
    nodes
        .iter()
        .filter(|n| {
            n.ls()
                .iter()
                .any(|f| f["name"] == name && f["local"] == true)
        })
        .count()
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
