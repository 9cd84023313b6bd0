//! Erasure-coded files across nodes: a 4+2 file is spread one shard index per
//! node, reads back with any two nodes gone, and the repair worker rebuilds
//! lost shards on new nodes and spreads a lone writer's shards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use peervault_node::{Keeping, Node, NodeConfig, Redundancy, Replicas};

const MIB: usize = 1024 * 1024;

fn coded(config: &mut NodeConfig) {
    config.redundancy = Some(Redundancy::new(4, 2).unwrap());
    config.maintenance.repair_delay = Duration::from_secs(2);
    config.maintenance.gc_delay = Duration::from_secs(3600);
}

async fn used(nodes: &[&Node]) -> u64 {
    let mut total = 0;
    for node in nodes {
        total += node.quota().used_bytes;
    }
    total
}

/// Six nodes a to f, all joined through a, connected to each other.
async fn start_six(cluster: &Cluster) -> Vec<Node> {
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let mut nodes = vec![a];
    for name in ["b", "c", "d", "e", "f"] {
        let node = cluster.start(name, &[&nodes[0]], Replicas::Count(3)).await;
        nodes.push(node);
    }
    wait_connected(&nodes.iter().collect::<Vec<_>>()).await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_keep_a_4_plus_2_file_in_one_and_a_half_times_and_lose_any_two() {
    let cluster = Cluster::with(coded);
    let mut nodes = start_six(&cluster).await;
    let original = data(8 * MIB + 4321, 11);
    let report = nodes[0]
        .store("big.bin", &original[..], None)
        .await
        .unwrap();
    assert_eq!(report.file.redundancy.as_deref(), Some("4+2"));
    assert_eq!(
        (report.replication.copies, report.replication.target),
        (6, 6)
    );
    let all: Vec<&Node> = nodes.iter().collect();
    assert_eq!(holders(&all, "big.bin").await, 6);
    let stored = used(&all).await;
    let size = original.len() as u64;
    assert!(
        stored <= size * 16 / 10 && stored >= size * 3 / 2,
        "{stored} bytes stored for {size}"
    );
    for node in &nodes {
        assert_eq!(read(node, "big.bin").await.unwrap(), original);
    }
    // Two holders gone (neither the writer): every other node still reads it.
    let f = nodes.pop().unwrap();
    let e = nodes.pop().unwrap();
    stop(e).await;
    stop(f).await;
    for node in &nodes {
        assert_eq!(read(node, "big.bin").await.unwrap(), original);
    }
    // Two new nodes: once the repair delay has passed, the lost shards are
    // rebuilt onto them, and any two of the six may go again.
    for name in ["g", "h"] {
        let node = cluster.start(name, &[&nodes[0]], Replicas::Count(3)).await;
        nodes.push(node);
    }
    wait_connected(&nodes.iter().collect::<Vec<_>>()).await;
    eventually_within(
        "the lost shards are rebuilt",
        Duration::from_secs(60),
        || async { holders(&nodes.iter().collect::<Vec<_>>(), "big.bin").await == 6 },
    )
    .await;
    // Two indexes rebuilt at least (more moves when a round ran before the
    // new nodes were connected, or two holders saw different holdings:
    // a rebuilder then keeps a shard itself and hands it on later, or a
    // doubled one is dropped again). A new node holds its shard a moment
    // before the rebuilder hears so and counts it.
    eventually_within(
        "the repair counts two shard moves at least",
        Duration::from_secs(10),
        || async {
            let mut repaired = 0;
            for node in &nodes {
                repaired += node.metrics_snapshot().await.replication.copies_repaired;
            }
            repaired >= 2
        },
    )
    .await;
    eventually_within(
        "doubled shards are dropped",
        Duration::from_secs(60),
        || async { used(&nodes.iter().collect::<Vec<_>>()).await <= size * 16 / 10 },
    )
    .await;
    let c = nodes.remove(2);
    let a = nodes.remove(0);
    stop(c).await;
    stop(a).await;
    for node in &nodes {
        assert_eq!(read(node, "big.bin").await.unwrap(), original);
    }
    for node in nodes {
        stop(node).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_keeps_every_shard_and_hands_them_out_as_nodes_come() {
    let cluster = Cluster::with(|config| {
        config.maintenance.repair_delay = Duration::from_secs(2);
        config.maintenance.gc_delay = Duration::from_secs(3600);
    });
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let original = data(3 * MIB, 5);
    // Coded for this one file only (the node copies whole by default).
    let report = a
        .store_kept(
            "solo.bin",
            Default::default(),
            &original[..],
            None,
            None,
            Keeping::Coded(Redundancy::new(2, 1).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.replication.copies, report.replication.target),
        (3, 3)
    );
    let alone = a.quota().used_bytes;
    assert!(alone >= original.len() as u64 * 3 / 2, "{alone}");
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    wait_connected(&[&a, &b, &c]).await;
    eventually_within("the shards are spread", Duration::from_secs(60), || async {
        holders(&[&a, &b, &c], "solo.bin").await == 3 && a.quota().used_bytes < alone / 2
    })
    .await;
    // One shard index per node: any one node may go.
    stop(a).await;
    assert_eq!(read(&b, "solo.bin").await.unwrap(), original);
    assert_eq!(read(&c, "solo.bin").await.unwrap(), original);
    stop(b).await;
    stop(c).await;
}

/// The listing of `name` on `node`: its redundancy (`None`: whole copies).
async fn kept_as(node: &Node, name: &str) -> Option<String> {
    node.stat(name).await.unwrap().redundancy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_switches_from_copies_to_4_plus_2_and_back_with_every_file_readable_throughout() {
    let cluster = Cluster::with(|config| {
        config.maintenance.repair_delay = Duration::from_secs(2);
        config.maintenance.gc_delay = Duration::from_secs(3600);
        // Re-encoded versions are kept this long (the grace is 10 minutes
        // at most), for reads to fall back on while shards are placed.
        config.versions.keep_for = Duration::from_secs(1);
    });
    let nodes = start_six(&cluster).await;
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("f{i}"), data(MIB + i * 77_777, i as u64)))
        .collect();
    for (i, (name, bytes)) in files.iter().enumerate() {
        nodes[i % 6].store(name, &bytes[..], None).await.unwrap();
    }
    let all = || nodes.iter().collect::<Vec<&Node>>();
    let whole = used(&all()).await;
    let size: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(whole >= size * 3, "{whole}");
    // Reads go on while the vault switches: every one must succeed.
    let check_all = || async {
        for (i, (name, bytes)) in files.iter().enumerate() {
            let reader = &nodes[(i + 1) % 6];
            assert_eq!(&read(reader, name).await.unwrap(), bytes, "{name}");
        }
    };
    let status = nodes[2]
        .set_redundancy(Some(Redundancy::new(4, 2).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        (status.redundancy.as_str(), status.source.as_str()),
        ("4+2", "vault")
    );
    let mut rounds = 0;
    loop {
        check_all().await;
        let mut coded = 0;
        for (name, _) in &files {
            for node in &nodes {
                coded += usize::from(kept_as(node, name).await.as_deref() == Some("4+2"));
            }
        }
        if coded == files.len() * nodes.len() {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 120,
            "not every file was re-encoded: {coded} listings say 4+2"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The whole copies' space comes back once the grace is over (no
    // history kept of them).
    eventually_within(
        "the copies' space comes back",
        Duration::from_secs(60),
        || async {
            for node in &nodes {
                node.collect_garbage().await.unwrap();
            }
            used(&all()).await <= size * 16 / 10
        },
    )
    .await;
    // New files follow the vault's setting on every node; one its writer
    // asked to keep whole stays whole.
    let report = nodes[5].store("new", &files[0].1[..], None).await.unwrap();
    assert_eq!(report.file.redundancy.as_deref(), Some("4+2"));
    let whole = nodes[1]
        .store_kept(
            "whole-on-purpose",
            Default::default(),
            &files[1].1[..],
            None,
            None,
            Keeping::Copies,
        )
        .await
        .unwrap();
    assert_eq!(whole.file.redundancy, None);
    after_repair_rounds(&all(), 3).await;
    assert_eq!(kept_as(&nodes[3], "whole-on-purpose").await, None);
    // And back to whole copies.
    nodes[4].set_redundancy(None).await.unwrap();
    eventually_within(
        "every file is whole again",
        Duration::from_secs(90),
        || async {
            check_all().await;
            let mut coded = 0;
            for (name, _) in &files {
                coded += usize::from(kept_as(&nodes[0], name).await.is_some());
            }
            coded == 0 && kept_as(&nodes[0], "new").await.is_none()
        },
    )
    .await;
    eventually_within(
        "three whole copies again",
        Duration::from_secs(60),
        || async {
            let mut short = 0;
            for (name, _) in &files {
                short += usize::from(holders(&all(), name).await < 3);
            }
            short == 0
        },
    )
    .await;
    check_all().await;
    for node in nodes {
        stop(node).await;
    }
}

/// `rekey --all` on a coded vault: a shard cannot be re-sealed where it lies
/// (its id is a hash of it), so the re-encoder writes each coded file again in
/// the new epoch, and once the grace is over no shard of the old epoch is left
/// on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_all_writes_coded_files_again_in_the_new_epoch_and_no_old_shard_is_left() {
    let cluster = Cluster::with(|config| {
        config.redundancy = Some(Redundancy::new(2, 1).unwrap());
        config.maintenance.repair_delay = Duration::from_secs(2);
        config.maintenance.gc_delay = Duration::from_secs(3600);
        // The old version's grace (10 minutes at most).
        config.versions.keep_for = Duration::from_secs(1);
    });
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    let nodes = [&a, &b, &c];
    wait_connected(&nodes).await;
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), data(MIB + i * 99_991, 40 + i as u64)))
        .collect();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let report = nodes[i].store(name, &bytes[..], None).await.unwrap();
        assert_eq!(report.file.redundancy.as_deref(), Some("2+1"));
    }
    let shards = || async {
        let mut ids = std::collections::HashSet::new();
        for node in nodes {
            ids.extend(
                node.blob_locations()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(id, _)| id),
            );
        }
        ids
    };
    let old_shards = shards().await;
    assert!(old_shards.len() >= 9, "{}", old_shards.len());
    let mut old_versions = Vec::new();
    for (name, _) in &files {
        old_versions.push(current_version(&a, name).await);
    }
    b.rekey_all().await.unwrap();
    eventually_within(
        "every coded file is written again, and read back everywhere",
        Duration::from_secs(90),
        || async {
            for ((name, bytes), old) in files.iter().zip(&old_versions) {
                for node in nodes {
                    assert_eq!(&read(node, name).await.unwrap(), bytes, "{name}");
                    let kept = kept_as(node, name).await;
                    if current_version(node, name).await == *old || kept.as_deref() != Some("2+1") {
                        return false;
                    }
                }
            }
            true
        },
    )
    .await;
    eventually_within(
        "no shard of the old epoch is left once the grace is over",
        Duration::from_secs(60),
        || async {
            for node in nodes {
                node.collect_garbage().await.unwrap();
            }
            shards().await.is_disjoint(&old_shards)
        },
    )
    .await;
    for (name, bytes) in &files {
        for node in nodes {
            assert_eq!(&read(node, name).await.unwrap(), bytes, "{name}");
        }
    }
    for node in [a, b, c] {
        stop(node).await;
    }
}

/// The label of `name`'s current version on `node`.
async fn current_version(node: &Node, name: &str) -> String {
    let versions = node.versions(name).await.unwrap();
    let current = versions.into_iter().find(|v| v.current).unwrap();
    current.version
}
