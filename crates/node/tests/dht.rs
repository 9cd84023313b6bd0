//! A sparse network of forty nodes: a file is read on a node that was never
//! connected to any of its holders, which find each other through the DHT.
//!
//! Kademlia's own lookups connect a newcomer to up to about twenty nodes (at most
//! 19 of 39 in a dozen runs; 22 of 29 with thirty nodes), so half of the nodes
//! write a file: to fail, the reader would have to meet all twenty writers (with
//! eight writers of twenty-nine, CI once found the reader had met all of them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{endpoint, eventually_within as eventually};
use futures::StreamExt;
use peervault_node::{NetworkKey, Node, NodeConfig, Replicas};

const NODES: usize = 40;
/// Nodes that each store a file before the reader joins: more than the reader can
/// meet through Kademlia's lookups, so one of them is a stranger to it.
const WRITERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_finds_holders_it_was_never_connected_to_through_the_dht() {
    // The DHT lookup's figures (requests, time) are logged; show them with the
    // test's output (`--nocapture`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("peervault_net::event_loop=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let key = NetworkKey::from_bytes([0xd4; 32], peervault_node::KeySource::Hex);
    let config = |i: usize, max_peers: usize| {
        let mut config = NodeConfig::new(dir.path().join(format!("n{i}")), key.clone());
        // One copy: the only holder is the writer.
        config.replicas = Replicas::Count(1);
        config.net.max_peers = max_peers;
        config.sync_interval = Duration::from_secs(2);
        config
    };
    // A fixed pseudo-random choice of "one earlier node" for each bootstrap.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES - 1 {
        let mut c = config(i, 2);
        if i > 0 {
            c.net.bootstrap = vec![endpoint(&nodes[next(i)]).await];
        }
        nodes.push(Node::start(c).await.unwrap());
    }
    for node in &nodes {
        eventually("every node has a peer", Duration::from_secs(30), || async {
            !node.peers().await.is_empty()
        })
        .await;
    }

    // Several nodes store one file each (one copy: the writer is the only holder),
    // the least connected ones first.
    let degrees: Vec<usize> = futures::future::join_all(nodes.iter().map(|n| n.peers()))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    let mut writers: Vec<usize> = (0..nodes.len()).collect();
    writers.sort_by_key(|i| degrees[*i]);
    writers.truncate(WRITERS);
    let mut xof = blake3::Hasher::new().update(b"dht").finalize_xof();
    let mut bytes = vec![0u8; 2 * 1024 * 1024 + 17];
    xof.fill(&mut bytes);
    for (i, w) in writers.iter().enumerate() {
        let report = nodes[*w]
            .store(&format!("far-{i}.bin"), &bytes[..], None)
            .await
            .unwrap();
        assert_eq!(
            report.replication.copies, 1,
            "the writer is the only holder"
        );
    }

    // The reader joins last, through one earlier node, opening one connection itself.
    let mut c = config(NODES - 1, 1);
    c.net.bootstrap = vec![endpoint(&nodes[next(nodes.len())]).await];
    let reader = Node::start(c).await.unwrap();
    for i in 0..WRITERS {
        let name = format!("far-{i}.bin");
        eventually(
            "the reader learns of every file",
            Duration::from_secs(90),
            || async { reader.stat(&name).await.is_ok() },
        )
        .await;
    }
    // Kademlia's own lookups connect a newcomer to many nodes in a network this small;
    // pick a writer it has never been connected to.
    let met: Vec<String> = reader
        .discovery()
        .await
        .known
        .into_iter()
        .filter(|k| k.met || k.connected)
        .map(|k| k.peer_id)
        .collect();
    let (i, _) = writers
        .iter()
        .enumerate()
        .find(|(_, w)| !met.contains(&nodes[**w].peer_id()))
        .expect("some writer was never connected to the reader");
    eprintln!(
        "the reader has met {} of {} nodes; reading file {i}",
        met.len(),
        NODES - 1
    );
    let name = format!("far-{i}.bin");
    assert!(!reader.stat(&name).await.unwrap().local);
    let started = Instant::now();
    let mut stream = reader.get(&name).await.unwrap();
    let mut read = Vec::new();
    while let Some(piece) = stream.next().await {
        read.extend_from_slice(&piece.unwrap());
    }
    eprintln!(
        "{NODES} nodes: the reader found a holder it had never met through the DHT and read the file in {:?}",
        started.elapsed()
    );
    assert_eq!(blake3::hash(&read), blake3::hash(&bytes));

    assert!(reader.discovery().await.dht_routing_table >= 1);
    reader.shutdown(Duration::from_secs(2)).await;
    for node in nodes {
        node.shutdown(Duration::from_secs(2)).await;
    }
}
