//! Several nodes in one process, on 127.0.0.1: replication, reads from anywhere,
//! catalogue convergence, deletes that reach offline nodes, and key isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use peervault_node::{NetworkKey, Node, NodeConfig, Replicas};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_serve_after_the_writer_is_gone() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    wait_connected(&[&a, &b, &c]).await;

    let bytes = data(5 * 1024 * 1024 + 123, 1);
    let report = a
        .store("report.bin", &bytes[..], Some(bytes.len() as u64))
        .await
        .unwrap();
    assert_eq!(report.replication.copies, 3, "{:?}", report.replication);
    assert!(report.replication.complete());
    assert_eq!(holders(&[&a, &b, &c], "report.bin").await, 3);

    let listed = b.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].replicas, 3);
    assert!(listed[0].local);

    stop(a).await;
    assert_eq!(read(&c, "report.bin").await.unwrap(), bytes);
    assert!(same_peer_id(&c, &cluster.root.join("c")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_file_reads_it_from_the_holders() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(2)).await;
    let d = cluster.start("d", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b, &c, &d]).await;
    let bytes = data(3 * 1024 * 1024, 2);
    let report = b.store("x", &bytes[..], None).await.unwrap();
    assert_eq!(report.replication.copies, 2);
    let nodes = [&a, &b, &c, &d];
    assert_eq!(holders(&nodes, "x").await, 2);
    for node in nodes {
        eventually("the catalogue reaches every node", || async {
            node.stat("x").await.is_ok()
        })
        .await;
        assert_eq!(read(node, "x").await.unwrap(), bytes);
    }
    // Reading does not make a node a holder.
    assert_eq!(holders(&nodes, "x").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_keep_exactly_the_requested_number_of_copies() {
    let cluster = Cluster::new();
    let hub = cluster.start("n0", &[], Replicas::Count(3)).await;
    let mut nodes = vec![hub.clone()];
    for i in 1..5 {
        nodes.push(
            cluster
                .start(&format!("n{i}"), &[&hub], Replicas::Count(3))
                .await,
        );
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_connected(&refs).await;
    for i in 0..6 {
        let name = format!("file-{i}");
        let writer = &nodes[i % nodes.len()];
        let report = writer
            .store(&name, &data(200_000, i as u64)[..], None)
            .await
            .unwrap();
        assert_eq!(report.replication.copies, 3);
        assert_eq!(holders(&refs, &name).await, 3, "{name}");
    }
    // --replicas all: every node.
    let all = cluster.start("n5", &[&hub], Replicas::All).await;
    let mut with_all = refs.clone();
    with_all.push(&all);
    wait_connected(&with_all).await;
    let report = all
        .store("everywhere", &data(100_000, 99)[..], None)
        .await
        .unwrap();
    assert_eq!(report.replication.copies, 6);
    assert_eq!(holders(&with_all, "everywhere").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_name_converge_everywhere() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b, &c]).await;
    let from_a = data(1_500_000, 10);
    let from_b = data(1_700_000, 11);
    let (ra, rb) = tokio::join!(
        a.store("shared.txt", &from_a[..], None),
        b.store("shared.txt", &from_b[..], None)
    );
    ra.unwrap();
    rb.unwrap();
    let mut hashes = Vec::new();
    for node in [&a, &b, &c] {
        eventually("all nodes agree on one version", || async {
            let versions =
                futures::future::join_all([&a, &b, &c].map(|n| n.stat("shared.txt"))).await;
            versions.iter().all(|v| {
                v.as_ref().map(|f| f.hash.clone()).ok()
                    == versions[0].as_ref().map(|f| f.hash.clone()).ok()
            })
        })
        .await;
        let content = read(node, "shared.txt").await.unwrap();
        assert!(
            content == from_a || content == from_b,
            "never a mix of both"
        );
        hashes.push(blake3::hash(&content));
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_reaches_a_node_that_was_offline_and_stays_deleted() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    wait_connected(&[&a, &b, &c]).await;
    let bytes = data(2_000_000, 5);
    a.store("doomed", &bytes[..], None).await.unwrap();
    a.store("doomed-not", &b"keep me"[..], None).await.unwrap();
    assert_eq!(holders(&[&a, &b, &c], "doomed").await, 3);
    let c_peer = c.peer_id();
    stop(c).await;

    b.delete("doomed").await.unwrap();
    for node in [&a, &b] {
        eventually("the delete reaches the online nodes", || async {
            node.stat("doomed").await.is_err()
        })
        .await;
    }
    let c = restart(&cluster, "c", &[&a]).await;
    assert_eq!(c.peer_id(), c_peer, "a restart keeps the peer id");
    eventually("the returning node learns of the delete", || async {
        c.stat("doomed").await.is_err()
    })
    .await;
    // The name next to it is untouched, and nobody brings the deleted file back.
    assert_eq!(read(&c, "doomed-not").await.unwrap(), b"keep me");
    after_syncs(&[&a, &b, &c], 2).await;
    for node in [&a, &b, &c] {
        assert!(node.stat("doomed").await.is_err());
        assert!(read(node, "doomed").await.is_err());
        assert!(
            node.list()
                .await
                .unwrap()
                .iter()
                .all(|f| f.name != "doomed")
        );
    }
}

/// Only the syncs at connect run here (the periodic round is an hour away). Each
/// side pulls what it lacks and neither pushes, so the catalogues must meet through
/// the pulls alone, across several pipelined batches of records; a full round
/// afterwards finds nothing left to move in either direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_meet_learn_each_others_files_from_the_connect_syncs_alone() {
    let cluster = Cluster::with(|c| c.sync_interval = Duration::from_secs(3600));
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let b = cluster.start("b", &[], Replicas::Count(1)).await;
    // More than three messages' worth of records, so fetches overlap.
    let many = 4 * peervault_node::wire::ENTRIES_PER_MESSAGE + 7;
    futures::future::join_all((0..many).map(|i| {
        let a = &a;
        async move {
            let name = format!("a-{i:05}");
            a.store(&name, name.as_bytes(), None).await.unwrap();
        }
    }))
    .await;
    for i in 0..3 {
        b.store(&format!("b-{i}"), &b"from b"[..], None)
            .await
            .unwrap();
    }
    b.delete("b-2").await.unwrap();
    stop(b).await;
    let b = restart(&cluster, "b", &[&a]).await;
    wait_connected(&[&a, &b]).await;
    for node in [&a, &b] {
        eventually("both nodes know every file", || async {
            node.status().await.unwrap().files == many + 2
        })
        .await;
    }
    assert!(a.stat("b-2").await.is_err(), "the deletion travelled too");
    for (node, other) in [(&a, &b), (&b, &a)] {
        let peer: peervault_node::PeerId = other.peer_id().parse().unwrap();
        let stats = node.sync_with(peer).await.unwrap();
        assert_eq!(
            stats,
            peervault_node::sync::SyncStats::default(),
            "nothing was left to move"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_learns_nothing() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    a.store("secret-name.txt", &b"secret"[..], None)
        .await
        .unwrap();
    let mut config = NodeConfig::new(
        cluster.root.join("intruder"),
        NetworkKey::from_bytes([0x0b; 32], peervault_node::KeySource::Hex),
    );
    config.net.bootstrap = vec![endpoint(&a).await];
    config.sync_interval = Duration::from_secs(1);
    let intruder = Node::start(config).await.unwrap();
    // Long enough for several dials and their refusals (nothing to wait for:
    // the point is that nothing happens).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(intruder.peers().await.is_empty());
    assert!(a.peers().await.is_empty());
    assert!(intruder.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_fetch_move_copies_to_and_from_a_named_peer() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(1)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(1)).await;
    wait_connected(&[&a, &b, &c]).await;
    let bytes = data(1_200_000, 7);
    a.store("solo", &bytes[..], None).await.unwrap();
    assert_eq!(holders(&[&a, &b, &c], "solo").await, 1);

    let b_id = a.resolve_peer(&b.peer_id()).await.unwrap();
    a.send_to("solo", b_id).await.unwrap();
    assert!(b.stat("solo").await.unwrap().local);

    eventually("c learns of the file", || async {
        c.stat("solo").await.is_ok()
    })
    .await;
    let from = c.resolve_peer(&a.peer_id()).await.unwrap();
    assert_eq!(c.fetch_from("solo", from).await.unwrap(), 2);
    assert!(c.stat("solo").await.unwrap().local);
    assert_eq!(holders(&[&a, &b, &c], "solo").await, 3);
    assert!(c.resolve_peer("99").await.is_err());
    assert!(c.resolve_peer("1").await.is_ok());
}

/// A stopped node has let go of its data dir: every task it ran (requests from
/// peers, chunk lanes, a write's streaming to holders) ended with it, so the
/// same data dir opens again at once, with no retry, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_lets_go_of_its_data_dir_at_once_twenty_times() {
    let cluster = Cluster::new();
    let hub = cluster.start("hub", &[], Replicas::Count(2)).await;
    for round in 0..20u64 {
        // One copy only: the hub reads this node's file over a lane, which this
        // node serves on a task of its own that lasts as long as the lane.
        let node = cluster.start("again", &[&hub], Replicas::Count(1)).await;
        wait_connected(&[&hub, &node]).await;
        let name = format!("round-{round}");
        let bytes = data(1_500_000, round);
        node.store(&name, &bytes[..], None).await.unwrap();
        eventually("the hub lists the file", || async {
            hub.stat(&name).await.is_ok()
        })
        .await;
        assert_eq!(read(&hub, &name).await.unwrap(), bytes);
        // And this node reads the hub's file over a lane of its own.
        hub.store(&format!("hub-{round}"), &bytes[..], None)
            .await
            .unwrap();
        eventually("the hub's file is listed", || async {
            node.stat(&format!("hub-{round}")).await.is_ok()
        })
        .await;
        assert_eq!(read(&node, &format!("hub-{round}")).await.unwrap(), bytes);
        stop(node).await;
    }
    // The last round's node, restarted once more, holds every file it stored.
    let node = restart(&cluster, "again", &[&hub]).await;
    assert_eq!(read(&node, "round-19").await.unwrap(), data(1_500_000, 19));
}

/// Three nodes with the smallest transfer budget, all writing at once files
/// that each copies to another, then all reading every file at once (a third
/// of them from peers): the budgets are spent, and still no transfer fails
/// or waits forever, because what a node does for a peer never waits on its
/// own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_spent_budgets_copying_to_each_other_all_finish() {
    let cluster =
        Cluster::with(|config| config.transfer_memory = peervault_node::MIN_TRANSFER_MEMORY);
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b, &c]).await;
    let nodes = [&a, &b, &c];
    const PER_NODE: u64 = 6;
    let len = 4 * 1024 * 1024 + 77;
    let all = async {
        let writes = nodes.iter().enumerate().flat_map(|(n, node)| {
            (0..PER_NODE).map(move |i| async move {
                let seed = n as u64 * 100 + i;
                let bytes = data(len, seed);
                let report = node
                    .store(&format!("{n}/{i}"), &bytes[..], None)
                    .await
                    .unwrap();
                assert_eq!(report.replication.copies, 2, "{:?}", report.replication);
            })
        });
        futures::future::join_all(writes).await;
        let reads = nodes.iter().flat_map(|node| {
            (0..nodes.len()).flat_map(move |n| {
                (0..PER_NODE).map(move |i| async move {
                    let name = format!("{n}/{i}");
                    eventually("the catalogue reaches every node", || async {
                        node.stat(&name).await.is_ok()
                    })
                    .await;
                    let seed = n as u64 * 100 + i;
                    assert_eq!(read(node, &name).await.unwrap(), data(len, seed));
                })
            })
        });
        futures::future::join_all(reads).await;
    };
    tokio::time::timeout(Duration::from_secs(180), all)
        .await
        .expect("every transfer finishes");
    let mut waited = 0.0;
    for node in nodes {
        let text = node.metrics_text().await;
        let sample = |metric: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {metric}"))
        };
        waited += sample("peervault_transfer_memory_waits_total");
        eventually("every lease comes back", || async {
            let text = node.metrics_text().await;
            text.lines()
                .any(|l| l == "peervault_transfer_memory_bytes 0")
        })
        .await;
    }
    assert!(waited > 0.0, "the budgets were spent: transfers waited");
}

/// A multipart object's hash is merged from its parts' BLAKE3 leaves where
/// they were hashed at the right offset, and read back where not: the leaves
/// are used (wrong ones would give a wrong hash), a part whose leaves are
/// for another offset is read, and either way the hash is BLAKE3 of the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_hashes_come_from_part_leaves_where_they_fit() {
    use peervault_node::objects::{ComposedPart, PartLeaves};
    use peervault_node::tree_hash::LeafHasher;
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let mib = 1 << 20;
    let sizes = [3 * mib, 3 * mib, mib + 17];
    let datas: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| data(n, 40 + i as u64))
        .collect();
    let whole: Vec<u8> = datas.concat();
    let mut parts = Vec::new();
    let mut offset = 0u64;
    for (i, bytes) in datas.iter().enumerate() {
        let name = format!(".peervault/test/part{i}");
        a.put_object(&name, &bytes[..], None, Box::new(|| Ok(Default::default())))
            .await
            .unwrap();
        let mut hasher = LeafHasher::new(offset).unwrap();
        hasher.update(bytes);
        parts.push(ComposedPart {
            name,
            leaves: Some(PartLeaves {
                offset,
                leaves: hasher.finish(),
            }),
        });
        offset += bytes.len() as u64;
    }
    let expected = blake3::hash(&whole).to_hex().to_string();
    let hash_of = |info: peervault_node::objects::ObjectInfo| hex::encode(info.hash);

    let right = a
        .compose("right", &parts, Default::default())
        .await
        .unwrap();
    assert_eq!(hash_of(right), expected);

    // The last part's leaves recorded for another offset: it is read instead.
    let mut misplaced = parts.clone();
    misplaced[2].leaves.as_mut().unwrap().offset = 0;
    let reread = a
        .compose("read", &misplaced, Default::default())
        .await
        .unwrap();
    assert_eq!(hash_of(reread), expected);

    // Leaves that lie are believed: the proof that they are used at all.
    let mut lying = parts.clone();
    lying[0].leaves.as_mut().unwrap().leaves[0] = [9; 32];
    let lied = a.compose("lied", &lying, Default::default()).await.unwrap();
    assert_ne!(hash_of(lied), expected);
    assert_eq!(read(&a, "right").await.unwrap(), whole);
}
