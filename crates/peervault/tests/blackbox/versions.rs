//! Versions, undelete and restore across real node processes: every node keeps
//! the same history of a name, old versions read back byte for byte anywhere,
//! and versions past the retention go at GC and give their space back.

use std::path::Path;
use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, eventually, stderr};

const CONNECT: Duration = Duration::from_secs(30);
const SPREAD: Duration = Duration::from_secs(30);

fn join(data: &Path, to: &TestNode, extra: &[&str]) -> TestNode {
    let bootstrap = format!("localhost:{}", to.port());
    let mut args = vec!["-bootstrap", bootstrap.as_str()];
    args.extend_from_slice(extra);
    TestNode::start_with(data, TEST_KEY, &args)
}

fn versions(node: &TestNode, name: &str) -> Vec<serde_json::Value> {
    let out = node.cli(&["versions", name, "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Each version's (label, deleted) pair, newest first: what must agree.
fn history(node: &TestNode, name: &str) -> Vec<(String, bool)> {
    versions(node, name)
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["deleted"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Bytes this node's blobs take.
fn used(node: &TestNode) -> u64 {
    let quota: serde_json::Value = serde_json::from_str(&node.ok(&["quota", "--json"])).unwrap();
    quota["used_bytes"].as_u64().unwrap()
}

fn put_text(node: &TestNode, dir: &Path, name: &str, text: &str) {
    let path = dir.join("input");
    std::fs::write(&path, text).unwrap();
    node.ok(&["put", path.to_str().unwrap(), name]);
}

fn read(node: &TestNode, dir: &Path, args: &[&str]) -> String {
    let out = dir.join(format!("out-{}", rand_suffix()));
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    node.ok(&all);
    std::fs::read_to_string(out).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn versions_read_back_on_another_node_and_undelete_and_restore_reach_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let b = join(&dir.path().join("b"), &a, &[]);
    a.wait_peers(1, CONNECT);
    let texts = ["version one\n", "version two, longer\n", "version three\n"];
    for text in texts {
        put_text(&a, dir.path(), "doc.txt", text);
    }
    eventually("B knows the three versions", SPREAD, || {
        history(&b, "doc.txt").len() == 3
    });
    let listed = versions(&b, "doc.txt");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["size"], texts[2].len());
    assert_eq!(listed[2]["size"], texts[0].len());
    assert!(listed[0]["time"].as_str().unwrap().ends_with('Z'));
    let hash = blake3::hash(texts[1].as_bytes()).to_hex().to_string();
    assert_eq!(listed[1]["hash"], hash);
    for (entry, text) in listed.iter().zip(texts.iter().rev()) {
        let label = entry["version"].as_str().unwrap();
        let got = read(&b, dir.path(), &["get", "doc.txt", "--version", label]);
        assert_eq!(got, *text, "version {label} on B");
        // The first digits are enough.
        let got = read(
            &a,
            dir.path(),
            &["get", "doc.txt", "--version", &label[..5]],
        );
        assert_eq!(got, *text);
    }
    let text = b.ok(&["versions", "doc.txt"]);
    assert!(
        text.contains("3 versions") && text.contains("current"),
        "{text}"
    );

    // Old versions count in the quota, apart.
    let quota: serde_json::Value = serde_json::from_str(&a.ok(&["quota", "--json"])).unwrap();
    let old = texts[0].len() + texts[1].len();
    assert!(
        quota["old_versions_bytes"].as_u64().unwrap() >= old as u64,
        "{quota}"
    );
    assert!(a.ok(&["quota"]).contains("of which old versions"));

    // Delete on A, undelete on B: v3 is back on both.
    a.ok(&["rm", "doc.txt", "--yes"]);
    eventually("B sees the delete", SPREAD, || {
        history(&b, "doc.txt")
            .first()
            .is_some_and(|(_, deleted)| *deleted)
    });
    assert!(b.ls().is_empty());
    let not_deleted = a.cli(&["undelete", "nothing-here"]);
    assert!(!not_deleted.status.success());
    let said = b.ok(&["undelete", "doc.txt"]);
    assert!(said.contains("'doc.txt' is back"), "{said}");
    eventually("A has it back", SPREAD, || a.ls().len() == 1);
    assert_eq!(read(&a, dir.path(), &["get", "doc.txt"]), texts[2]);
    assert_eq!(read(&b, dir.path(), &["get", "doc.txt"]), texts[2]);
    let refused = b.cli(&["undelete", "doc.txt"]);
    assert!(
        stderr(&refused).contains("is not deleted"),
        "{}",
        stderr(&refused)
    );

    // Restore the first version on A: current everywhere, and nothing is lost.
    let first = listed[2]["version"].as_str().unwrap().to_string();
    a.ok(&["restore", "doc.txt", "--version", &first]);
    eventually("B has version one current", SPREAD, || {
        read(&b, dir.path(), &["get", "doc.txt"]) == texts[0]
    });
    eventually("both keep the same history", SPREAD, || {
        let on_a = history(&a, "doc.txt");
        on_a.len() == 6 && on_a == history(&b, "doc.txt")
    });
    let bad = a.cli(&["get", "doc.txt", "--version", "zz"]);
    assert!(stderr(&bad).contains("not a version"), "{}", stderr(&bad));
}

#[test]
fn versions_past_the_retention_go_at_gc_on_every_node_and_free_their_space() {
    let dir = tempfile::tempdir().unwrap();
    let keep = ["--keep-versions", "1", "--version-retention", "3s"];
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &keep);
    let b = join(&dir.path().join("b"), &a, &keep);
    a.wait_peers(1, CONNECT);
    let big = "x".repeat(300_000);
    put_text(&a, dir.path(), "log.txt", &format!("1{big}"));
    put_text(&a, dir.path(), "log.txt", &format!("2{big}"));
    put_text(&a, dir.path(), "log.txt", &format!("3{big}"));
    eventually("B holds the three versions", SPREAD, || {
        history(&b, "log.txt").len() == 3
    });
    eventually("B holds all three", SPREAD, || used(&b) > 900_000);
    let before = (used(&a), used(&b));
    std::thread::sleep(Duration::from_millis(3500));
    for node in [&a, &b] {
        node.ok(&["gc"]);
    }
    let (on_a, on_b) = (history(&a, "log.txt"), history(&b, "log.txt"));
    assert_eq!(
        on_a.len(),
        2,
        "the oldest went; one old version is kept by count"
    );
    assert_eq!(on_a, on_b);
    for (node, before) in [(&a, before.0), (&b, before.1)] {
        let after = used(node);
        assert!(
            after < before - 250_000,
            "space came back: {before} -> {after}"
        );
    }
    // The expired version does not come back from the other node.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(history(&a, "log.txt"), on_a);
}

/// The periodic sync that would repair what writes fail to spread, every 30 s,
/// waits longer than any test here: writes must spread by themselves.
const NO_PERIODIC_SYNC: [&str; 2] = ["--sync-interval", "1h"];

#[test]
fn concurrent_writers_and_a_node_that_missed_versions_end_with_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_with(&dir.path().join("a"), TEST_KEY, &NO_PERIODIC_SYNC);
    let b = join(&dir.path().join("b"), &a, &NO_PERIODIC_SYNC);
    a.wait_peers(1, CONNECT);
    let (a_in, b_in) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a_in, "written on a\n").unwrap();
    std::fs::write(&b_in, "written on b\n").unwrap();
    // Rounds, because a race between concurrent writes of one name shows in
    // some rounds only: a write whose version another had just superseded
    // was once neither copied ("that version is no longer kept") nor
    // announced (the announcement carried the winner), 1 round in ~30.
    for round in 0..10 {
        let name = format!("shared{round}.txt");
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| a.ok(&["put", a_in.to_str().unwrap(), &name]));
                s.spawn(|| b.ok(&["put", b_in.to_str().unwrap(), &name]));
            }
        });
        eventually("both keep all six writes, the same way", SPREAD, || {
            let on_a = history(&a, &name);
            on_a.len() == 6 && on_a == history(&b, &name)
        });
        let winner_a = read(&a, dir.path(), &["get", &name]);
        assert_eq!(winner_a, read(&b, dir.path(), &["get", &name]));
        // A delete and a write at once: whichever loses is history on both.
        std::thread::scope(|s| {
            s.spawn(|| a.ok(&["rm", &name, "--yes"]));
            s.spawn(|| b.ok(&["put", b_in.to_str().unwrap(), &name]));
        });
        eventually("both keep the delete and the write", SPREAD, || {
            let on_a = history(&a, &name);
            on_a.len() == 8 && on_a == history(&b, &name)
        });
    }

    // B is away while A writes twice: B catches up on both, not only the last.
    let b_dir = dir.path().join("b");
    b.stop();
    put_text(&a, dir.path(), "shared0.txt", "while b was away, 1\n");
    put_text(&a, dir.path(), "shared0.txt", "while b was away, 2\n");
    let b = join(&b_dir, &a, &NO_PERIODIC_SYNC);
    eventually("B catches up on the whole history", SPREAD, || {
        let on_a = history(&a, "shared0.txt");
        on_a.len() == 10 && on_a == history(&b, "shared0.txt")
    });
}

#[test]
fn a_purge_removes_every_version_on_every_node_even_one_that_was_away() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start(&dir.path().join("a"));
    let b_dir = dir.path().join("b");
    let b = join(&b_dir, &a, &[]);
    a.wait_peers(1, CONNECT);
    let big = "s".repeat(200_000);
    put_text(&a, dir.path(), "secret.txt", &format!("1{big}"));
    put_text(&a, dir.path(), "secret.txt", &format!("2{big}"));
    eventually("B keeps both versions", SPREAD, || {
        history(&b, "secret.txt").len() == 2
    });
    eventually("B holds both", SPREAD, || used(&b) > 400_000);

    // A plain delete keeps the versions; a purge does not. B is away for it.
    let said = a.ok(&["rm", "secret.txt", "--yes"]);
    assert!(
        said.contains("undelete secret.txt brings it back"),
        "{said}"
    );
    assert!(
        used(&a) > 400_000,
        "a plain delete frees nothing while versions are kept"
    );
    a.ok(&["undelete", "secret.txt"]);
    eventually("B has it back", SPREAD, || b.ls().len() == 1);
    b.stop();
    let said = a.ok(&["rm", "secret.txt", "--purge", "--yes"]);
    assert!(said.contains("freed on this node"), "{said}");
    let on_a = history(&a, "secret.txt");
    assert_eq!(on_a.len(), 1, "only the purge is left: {on_a:?}");
    assert_eq!(versions(&a, "secret.txt")[0]["purged"], true);
    assert!(
        a.ok(&["versions", "secret.txt"])
            .contains("deleted for good")
    );
    assert!(on_a[0].1);
    assert!(used(&a) < 10_000, "the space came back at once");
    let refused = a.cli(&["undelete", "secret.txt"]);
    assert!(
        stderr(&refused).contains("no version"),
        "{}",
        stderr(&refused)
    );

    let b = join(&b_dir, &a, &[]);
    eventually("B drops every version too", SPREAD, || {
        history(&b, "secret.txt") == on_a
    });
    assert!(used(&b) < 10_000);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(history(&a, "secret.txt"), on_a, "nothing came back from B");
}
