//! The data looks after itself: the integrity GC finds and repairs damage and
//! removes only what nothing uses; the repair worker restores the replica count
//! when a holder goes, and drops the surplus when it returns; deletions outlive a
//! node that was away longer than they are remembered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use peervault_node::{Node, NodeConfig, Replicas};

const MIB: usize = 1024 * 1024;

fn no_grace(config: &mut NodeConfig) {
    config.maintenance.gc_grace = Duration::ZERO;
    // Only the explicit runs below.
    config.maintenance.gc_delay = Duration::from_secs(3600);
}

fn quick_repair(config: &mut NodeConfig) {
    config.maintenance.repair_delay = Duration::from_secs(2);
    config.maintenance.gc_delay = Duration::from_secs(3600);
}

fn short_memory(config: &mut NodeConfig) {
    config.tombstone_retention = Duration::from_secs(3);
    // A deleted file's versions go first; its tombstone only after them.
    config.versions.keep_for = Duration::from_secs(3);
    config.maintenance.gc_delay = Duration::from_secs(3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_restores_a_damaged_chunk_from_a_peer_and_leaves_peers_alone() {
    let cluster = Cluster::with(no_grace);
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    wait_connected(&[&a, &b, &c]).await;
    let original = data(3 * MIB + 123, 7);
    let report = a.store("photo.raw", &original[..], None).await.unwrap();
    assert_eq!(report.replication.copies, 3);

    // Flip bytes in the middle of one blob on b.
    let before = blobs(&b).await;
    assert_eq!(before.len(), report.file.chunks);
    let victim = &before[1];
    let mut damaged = victim.bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    damaged[middle + 1] ^= 0x5a;
    victim.overwrite(&damaged);
    let peers_before = (blobs(&a).await, blobs(&c).await);

    let summary = b.collect_garbage().await.unwrap();
    assert_eq!(summary.checked, before.len(), "{summary:?}");
    assert_eq!(summary.corrupted, 1, "{summary:?}");
    assert_eq!(summary.repaired, 1, "{summary:?}");
    assert_eq!(summary.removed, 0, "{summary:?}");
    assert!(
        summary
            .line()
            .starts_with("Garbage collection completed in ")
    );
    assert!(
        summary
            .line()
            .contains(": 1 corrupted, 0 orphaned, 0 removed")
    );

    // The damaged blob went to quarantine; the good one is back (in a new slot).
    let held: Vec<_> = before.iter().map(|b| (b.id, b.bytes.clone())).collect();
    assert_eq!(held_blobs(&b).await, held);
    let quarantined = std::fs::read_dir(b.data_dir().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 1);
    assert_eq!(read(&b, "photo.raw").await.unwrap(), original);
    assert!(b.verify(None).await.unwrap().iter().all(|f| f.is_ok()));
    assert_eq!(
        (blobs(&a).await, blobs(&c).await),
        peers_before,
        "no peer's copy was touched"
    );
    // A second run finds nothing wrong.
    let again = b.collect_garbage().await.unwrap();
    assert_eq!((again.corrupted, again.removed), (0, 0), "{again:?}");
    // The metrics say what happened.
    let text = b.metrics_text().await;
    let checked = format!("peervault_chunks_checked_total {}", 2 * before.len());
    for line in [
        "peervault_gc_runs_total 2",
        checked.as_str(),
        "peervault_chunks_corrupted_total 1",
        "peervault_chunks_quarantined_total 1",
        "peervault_chunks_restored_total 1",
        "peervault_chunks_removed_total 0",
        "peervault_peers_connected 2",
        "peervault_peers_discovered 2",
        "peervault_gc_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_no_peer_has_is_quarantined_and_reported() {
    let cluster = Cluster::with(no_grace);
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let original = data(2 * MIB, 3);
    a.store("only-here", &original[..], None).await.unwrap();
    let held = blobs(&a).await;
    held[0].overwrite(b"not a blob at all");
    let summary = a.collect_garbage().await.unwrap();
    assert_eq!((summary.corrupted, summary.repaired), (1, 0), "{summary:?}");
    // The file is listed but no longer complete here; reading says why.
    let info = a.stat("only-here").await.unwrap();
    assert!(!info.local);
    let err = read(&a, "only-here").await.unwrap_err();
    assert!(err.contains("not held") || err.contains("no peer"), "{err}");
    // Usage no longer counts the quarantined blob.
    let usage = a.quota().used_bytes;
    let rest: u64 = held[1..].iter().map(|b| b.bytes.len() as u64).sum();
    assert_eq!(usage, rest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_orphans_and_unrecorded_space_and_nothing_a_file_uses() {
    let cluster = Cluster::with(no_grace);
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let mut files = Vec::new();
    for i in 0..5u64 {
        let bytes = data(300_000 + i as usize * 100_000, i);
        a.store(&format!("f{i}"), &bytes[..], None).await.unwrap();
        files.push(bytes);
    }
    // Two files sharing content: one chunk, two references.
    a.store("copy-of-f0", &files[0][..], None).await.unwrap();
    a.delete("f1").await.unwrap();
    let used_before = a.quota().used_bytes;
    let blobs_before = blobs(&a).await;

    // Space no record names, as a crash between a write and its record leaves: a
    // segment file of its own, as the write after a restart would have started.
    let orphan = a.data_dir().join("segments/00000000000000ab.seg");
    std::fs::write(&orphan, vec![0x5a; 3 * 4096]).unwrap();

    let summary = a.collect_garbage().await.unwrap();
    assert_eq!(summary.corrupted, 0, "{summary:?}");
    assert_eq!(summary.orphaned, 1, "{summary:?}");
    assert_eq!(summary.removed, 1, "{summary:?}");
    assert!(!orphan.exists());
    assert_eq!(blobs(&a).await, blobs_before, "no live blob removed");
    assert_eq!(a.quota().used_bytes, used_before);
    for (i, bytes) in files.iter().enumerate() {
        if i != 1 {
            assert_eq!(read(&a, &format!("f{i}")).await.unwrap(), *bytes);
        }
    }
    assert_eq!(read(&a, "copy-of-f0").await.unwrap(), files[0]);
    assert!(a.verify(None).await.unwrap().iter().all(|f| f.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn young_orphans_wait_for_the_grace_period() {
    let cluster = Cluster::new(); // default grace: 10 minutes
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let orphan = a.data_dir().join("segments/00000000000000cd.seg");
    std::fs::write(&orphan, b"written just now, recorded by nothing").unwrap();
    let summary = a.collect_garbage().await.unwrap();
    assert_eq!((summary.orphaned, summary.removed), (1, 0), "{summary:?}");
    assert!(orphan.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_racing_gc_runs_lose_nothing() {
    let cluster = Cluster::with(no_grace);
    let a = cluster.start("a", &[], Replicas::Count(1)).await;
    let gc = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut runs = 0;
            // Bounded: stops by itself even if the writer fails.
            for _ in 0..200 {
                a.collect_garbage().await.unwrap();
                runs += 1;
                if a.stat("race-27").await.is_ok() {
                    break;
                }
            }
            runs
        })
    };
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..28u64 {
        // Every third file repeats an earlier one, so writes reuse chunks that a
        // GC run may be looking at; every fourth step deletes an earlier file, so
        // chunks become orphans while other writes use them.
        let bytes = if i % 3 == 2 {
            data(700_000, i - 1)
        } else {
            data(700_000, i)
        };
        let name = format!("race-{i}");
        a.store(&name, &bytes[..], None).await.unwrap();
        expected.insert(name, bytes);
        if i % 4 == 3 {
            let old = format!("race-{}", i - 3);
            a.delete(&old).await.unwrap();
            expected.remove(&old);
        }
    }
    let runs = gc.await.unwrap();
    assert!(runs >= 1);
    let last = a.collect_garbage().await.unwrap();
    assert_eq!(last.corrupted, 0, "{last:?}");
    assert_eq!(a.list().await.unwrap().len(), expected.len());
    for (name, bytes) in &expected {
        assert_eq!(read(&a, name).await.unwrap(), *bytes, "{name}");
    }
    assert!(a.verify(None).await.unwrap().iter().all(|f| f.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_holder_is_replaced_and_its_surplus_copy_dropped_when_it_returns() {
    let cluster = Cluster::with(quick_repair);
    let hub = cluster.start("n0", &[], Replicas::Count(3)).await;
    let mut nodes = vec![hub.clone()];
    for i in 1..5 {
        nodes.push(
            cluster
                .start(&format!("n{i}"), &[&hub], Replicas::Count(3))
                .await,
        );
    }
    wait_connected(&nodes.iter().collect::<Vec<_>>()).await;
    let original = data(2 * MIB, 11);
    nodes[1]
        .store("keep-me", &original[..], None)
        .await
        .unwrap();
    let refs: Vec<&Node> = nodes.iter().collect();
    assert_eq!(holders(&refs, "keep-me").await, 3);

    // Stop a holder that is not the writer (and not the hub everyone joined).
    let mut victim = None;
    for (i, node) in nodes.iter().enumerate().skip(2) {
        if node.stat("keep-me").await.is_ok_and(|f| f.local) {
            victim = Some(i);
            break;
        }
    }
    let victim = victim.expect("a holder besides the writer");
    let victim_name = format!("n{victim}");
    let gone = nodes.remove(victim);
    stop(gone).await;
    let started = std::time::Instant::now();
    let refs: Vec<&Node> = nodes.iter().collect();
    eventually("three live copies again", || async {
        holders(&refs, "keep-me").await == 3
    })
    .await;
    eprintln!(
        "repair: 3 live copies again {:?} after a holder stopped (repair delay 2 s)",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the delay"
    );
    for node in &nodes {
        assert_eq!(read(node, "keep-me").await.unwrap(), original);
    }

    // The old holder returns: four copies, until the surplus one is dropped.
    let back = restart(&cluster, &victim_name, &[&hub]).await;
    nodes.push(back);
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_connected(&refs).await;
    eventually("exactly three copies again", || async {
        holders(&refs, "keep-me").await == 3
    })
    .await;
    // Two more rounds everywhere, each of which could have dropped a copy.
    after_repair_rounds(&refs, 2).await;
    assert_eq!(holders(&refs, "keep-me").await, 3, "stable at three");
    for node in &nodes {
        assert_eq!(read(node, "keep-me").await.unwrap(), original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_extra_copy_never_makes_a_placement_holder_drop_its_copy() {
    let cluster = Cluster::with(quick_repair);
    // No other handle on the first node: it may be the one that leaves.
    let mut nodes = vec![cluster.start("n0", &[], Replicas::Count(3)).await];
    for i in 1..4 {
        let node = cluster
            .start(&format!("n{i}"), &[&nodes[0]], Replicas::Count(3))
            .await;
        nodes.push(node);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_connected(&refs).await;
    let original = data(MIB, 21);
    nodes[1].store("extra", &original[..], None).await.unwrap();
    assert_eq!(holders(&refs, "extra").await, 3);
    eventually("every node lists it", || async {
        for node in &refs {
            if node.stat("extra").await.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    // The one node outside the placement fetches a copy from a holder.
    let mut outside = None;
    let mut holder = None;
    for (i, node) in nodes.iter().enumerate() {
        match node.stat("extra").await.unwrap().local {
            false => outside = Some(i),
            true => holder = Some(node.peer_id().parse().unwrap()),
        }
    }
    let outside = outside.unwrap();
    nodes[outside]
        .fetch_from("extra", holder.unwrap())
        .await
        .unwrap();
    assert_eq!(holders(&refs, "extra").await, 4);
    // Rounds everywhere, each of which could have dropped a copy: none does.
    after_repair_rounds(&refs, 2).await;
    assert_eq!(
        holders(&refs, "extra").await,
        4,
        "no placement holder dropped"
    );
    // The fetching node leaves: the file still has its three copies.
    let gone = nodes.remove(outside);
    stop(gone).await;
    let refs: Vec<&Node> = nodes.iter().collect();
    after_repair_rounds(&refs, 1).await;
    assert_eq!(holders(&refs, "extra").await, 3);
    // Back, it still knows its copy is an extra one.
    // (The hub itself may be the node that left: any live node will do.)
    let back = restart(&cluster, &format!("n{outside}"), &[&nodes[0]]).await;
    nodes.push(back);
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_connected(&refs).await;
    after_repair_rounds(&refs, 2).await;
    assert_eq!(holders(&refs, "extra").await, 4);
    for node in &nodes {
        assert_eq!(read(node, "extra").await.unwrap(), original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_longer_than_deletions_are_remembered_does_not_bring_them_back() {
    let cluster = Cluster::with(short_memory);
    let a = cluster.start("a", &[], Replicas::Count(3)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(3)).await;
    let c = cluster.start("c", &[&a], Replicas::Count(3)).await;
    wait_connected(&[&a, &b, &c]).await;
    a.store("secret-plan", &data(10_000, 1)[..], None)
        .await
        .unwrap();
    a.store("keeper", &data(10_000, 2)[..], None).await.unwrap();
    eventually("c has both files", || async {
        c.stat("secret-plan").await.is_ok() && c.stat("keeper").await.is_ok()
    })
    .await;
    // Let c sync again after both files exist (a sync under way when they were
    // stored may predate them), then take it away.
    after_syncs(&[&c], 2).await;
    stop(c).await;
    a.delete("secret-plan").await.unwrap();
    eventually("b saw the delete", || async {
        b.stat("secret-plan").await.is_err()
    })
    .await;
    // Past the retention: the tombstones are collected everywhere.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for node in [&a, &b] {
        let summary = node.collect_garbage().await.unwrap();
        assert_eq!(summary.tombstones_collected, 1, "{summary:?}");
    }
    // c comes back with its old catalogue, still naming the deleted file.
    let c = restart(&cluster, "c", &[&a]).await;
    wait_connected(&[&a, &b, &c]).await;
    eventually("c forgets the deleted file", || async {
        c.stat("secret-plan").await.is_err()
    })
    .await;
    after_syncs(&[&a, &b, &c], 2).await;
    for node in [&a, &b, &c] {
        assert!(
            node.stat("secret-plan").await.is_err(),
            "the file came back"
        );
        assert!(node.stat("keeper").await.is_ok(), "a live file was lost");
    }
    // A file written after c left is still offered normally.
    a.store("new-after", &data(5_000, 3)[..], None)
        .await
        .unwrap();
    eventually("c learns new files", || async {
        c.stat("new-after").await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_a_replica_and_the_next_node_takes_it() {
    let cluster = Cluster::new();
    let hub = cluster.start("n0", &[], Replicas::Count(3)).await;
    let mut small = cluster.config("small", &[&hub], Replicas::Count(3)).await;
    small.quota_bytes = Some(MIB as u64);
    let small = Node::start(small).await.unwrap();
    let n2 = cluster.start("n2", &[&hub], Replicas::Count(3)).await;
    let n3 = cluster.start("n3", &[&hub], Replicas::Count(3)).await;
    let all = [&hub, &small, &n2, &n3];
    wait_connected(&all).await;
    let original = data(3 * MIB, 21);
    // Write from each node in turn until the full node was one of the chosen
    // (placement is random per name: it is chosen with probability 2/3 each time).
    let mut refused = false;
    let writers = [&hub, &n2, &n3];
    for i in 0..12 {
        if refused {
            break;
        }
        let writer = writers[i % writers.len()];
        let name = format!("big-{i}");
        let report = writer.store(&name, &original[..], None).await.unwrap();
        assert_eq!(report.replication.copies, 3, "{:?}", report.replication);
        let small_id = small.peer_id();
        refused |=
            report.replication.failures.iter().any(|(peer, why)| {
                peer.to_string() == small_id && why.to_string().contains("quota")
            });
        assert!(!small.stat(&name).await.is_ok_and(|f| f.local));
        assert_eq!(holders(&all, &name).await, 3);
    }
    assert!(
        refused,
        "the full node was never asked; the test proves nothing"
    );
    assert!(small.quota().used_bytes <= MIB as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_drops_only_this_nodes_copies_and_repair_brings_them_back() {
    let cluster = Cluster::with(quick_repair);
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b]).await;
    let one = data(2 * MIB, 31);
    let two = data(300_000, 32);
    a.store("one", &one[..], None).await.unwrap();
    a.store("two", &two[..], None).await.unwrap();
    let b_blobs = blobs(&b).await;
    let a_blobs = blobs(&a).await.len();

    let report = a.clean(&[]).await.unwrap();
    assert_eq!(report.files, vec!["one".to_string(), "two".to_string()]);
    assert_eq!(report.chunks, a_blobs);
    assert!(report.bytes_freed > 2 * MIB as u64);
    assert_eq!(a.quota().used_bytes, 0);
    assert!(blobs(&a).await.is_empty());
    // The catalogue stays, b keeps its copies, and reads on a come from b.
    assert_eq!(a.names().await.unwrap(), vec!["one", "two"]);
    assert_eq!(blobs(&b).await, b_blobs);
    assert_eq!(read(&a, "one").await.unwrap(), one);
    // With two copies wanted and two nodes, the repair worker copies them back.
    eventually("a holds both files again", || async {
        holders(&[&a], "one").await == 1 && holders(&[&a], "two").await == 1
    })
    .await;
}

/// Regression (found by the workload checker, seed 1201): a node whose own copy
/// of a chunk was damaged failed every read of that file until the next GC, while
/// its peers held good copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_a_locally_damaged_chunk_is_served_by_a_peer_and_repairs_the_copy() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b]).await;
    let original = data(2 * MIB + 5, 11);
    let report = a.store("doc.bin", &original[..], None).await.unwrap();
    assert_eq!(report.replication.copies, 2);
    let held = blobs(&a).await;
    held[0].damage(100, 0x01);

    assert_eq!(read(&a, "doc.bin").await.unwrap(), original);
    // The good copy replaced the damaged one at once, without a GC run.
    let checks = a.verify(Some("doc.bin")).await.unwrap();
    assert!(checks[0].is_ok(), "{checks:?}");
    let restored: Vec<_> = held.iter().map(|b| (b.id, b.bytes.clone())).collect();
    assert_eq!(held_blobs(&a).await, restored);
    // Alone, the same damage is an integrity error (and no wrong byte is returned).
    stop(b).await;
    blobs(&a).await[1].damage(7, 0x80);
    eventually("a notices b is gone", || async {
        a.peers().await.is_empty()
    })
    .await;
    let err = read(&a, "doc.bin").await.unwrap_err();
    assert!(err.contains("integrity"), "{err}");
}

/// Regression (the workload checker under CI): a holder whose disk damaged one
/// chunk serves that same bad copy to every reader until its GC runs, and each
/// refused read counted as an offence, so the fifth read of one file banned an
/// honest node from the vault for ten minutes. The same bad chunk now counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_serves_one_damaged_chunk_again_and_again_is_not_banned() {
    let cluster = Cluster::new();
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b]).await;
    let original = data(2 * MIB + 9, 21);
    let report = a.store("shared.bin", &original[..], None).await.unwrap();
    assert_eq!(report.replication.copies, 2);
    let c = cluster.start("c", &[&b], Replicas::Count(2)).await;
    wait_connected(&[&b, &c]).await;
    eventually("c learns of the file", || async {
        c.list()
            .await
            .unwrap()
            .iter()
            .any(|f| f.name == "shared.bin")
    })
    .await;
    stop(a).await;
    eventually("b and c notice a is gone", || async {
        b.peers().await.len() == 1 && c.peers().await.len() == 1
    })
    .await;
    // Only b's copy is left, and one of its chunks is damaged.
    let held = blobs(&b).await;
    let victim = held.iter().max_by_key(|b| b.bytes.len()).unwrap();
    victim.damage(4096, 0x10);

    let reads = peervault_node::conduct::BAN_AFTER + 3;
    for _ in 0..reads {
        // b's copy is refused; a, the only other holder, is gone.
        let err = read(&c, "shared.bin").await.unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
    }
    let m = c.metrics_snapshot().await;
    assert_eq!(m.network.bans, 0, "b was banned for one damaged chunk");
    assert!(
        m.network.offences >= 1,
        "the bad chunk was refused and counted"
    );
    assert_eq!(c.peers().await.len(), 1, "c still talks to b");
    assert!(c.discovery().await.banned.is_empty());
}

/// Regression (the workload checker, a random seed): a repair that broke off
/// half-way (the sender's copy of one chunk was damaged, so the receiver refused
/// it) left the receiver with some of the file's chunks for good: nothing fetched
/// the rest, GC kept them (a live file uses them) and `verify` called the file
/// damaged on a node that did not even hold it. GC now completes such a copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_completes_a_copy_whose_transfer_broke_off() {
    let cluster = Cluster::with(quick_repair);
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let original = data(3 * MIB + 77, 31);
    let report = a.store("half.bin", &original[..], None).await.unwrap();
    assert_eq!(report.replication.copies, 1, "alone, a holds the only copy");
    // The last chunk of a's copy is damaged on disk, unknown to a.
    let held = blobs(&a).await;
    let victim = held.iter().min_by_key(|b| b.bytes.len()).unwrap().clone();
    victim.damage(40, 0x04);

    // c joins; a's repair worker copies the file to it, and c refuses the bad chunk.
    let c = cluster.start("c", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &c]).await;
    eventually("c refuses the damaged chunk", || async {
        c.metrics_snapshot().await.network.offences >= 1
    })
    .await;
    eventually("c holds part of the file", || async {
        let checks = c.verify(Some("half.bin")).await.unwrap();
        !blobs(&c).await.is_empty() && !checks[0].is_ok()
    })
    .await;
    assert_eq!(holders(&[&a, &c], "half.bin").await, 1);

    // a's disk is mended (as a's own GC would do from another holder), and c's
    // GC completes its copy from a.
    victim.overwrite(&victim.bytes);
    c.collect_garbage().await.unwrap();
    let checks = c.verify(Some("half.bin")).await.unwrap();
    assert!(checks[0].is_ok(), "{checks:?}");
    assert_eq!(holders(&[&a, &c], "half.bin").await, 2);
    stop(a).await;
    assert_eq!(read(&c, "half.bin").await.unwrap(), original);
}

/// Old versions keep their copies like current ones: a node that lost its
/// copies gets the old version back from the repair worker too, and can read
/// it with nobody else up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_are_repaired_like_current_ones() {
    let cluster = Cluster::with(quick_repair);
    let a = cluster.start("a", &[], Replicas::Count(2)).await;
    let b = cluster.start("b", &[&a], Replicas::Count(2)).await;
    wait_connected(&[&a, &b]).await;
    let old = data(2 * MIB, 41);
    let new = data(2 * MIB, 42);
    a.store("doc", &old[..], None).await.unwrap();
    a.store("doc", &new[..], None).await.unwrap();
    let versions = a.versions("doc").await.unwrap();
    assert_eq!(versions.len(), 2);
    let first = a.find_version("doc", &versions[1].version).await.unwrap();
    eventually("b holds both versions", || async {
        blobs(&b).await.len() == blobs(&a).await.len()
    })
    .await;
    a.clean(&[]).await.unwrap();
    assert!(blobs(&a).await.is_empty());
    eventually("a holds both versions again", || async {
        blobs(&a).await.len() == blobs(&b).await.len()
    })
    .await;
    stop(b).await;
    let mut reader = a.get_version("doc", first).await.unwrap();
    let mut back = Vec::new();
    while let Some(piece) = futures::StreamExt::next(&mut reader).await {
        back.extend_from_slice(&piece.unwrap());
    }
    assert!(back == old, "the old version reads back from a alone");
}
