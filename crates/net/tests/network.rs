//! In-process networks on 127.0.0.1: connection, requests, key mismatch, stalled
//! peers, late bootstrap peers and mesh formation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peervault_net::{
    Endpoint, NetConfig, NetEvent, NetHandle, NetSettings, Network, NodeIdentity, PeerSource,
};

const KEY: [u8; 32] = [7; 32];

fn config(dir: &std::path::Path, psk: [u8; 32], bootstrap: Vec<Endpoint>) -> NetConfig {
    let mut config = NetConfig::new(
        NodeIdentity::load_or_create(dir).unwrap(),
        std::sync::Arc::new(peervault_net::FixedKey(psk)),
        NetSettings::new(vec![Endpoint::parse("127.0.0.1:0").unwrap()]),
    );
    config.settings.bootstrap = bootstrap;
    config.settings.request_timeout = Duration::from_secs(10);
    config
}

async fn node(psk: [u8; 32], bootstrap: Vec<Endpoint>) -> (Network, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let network = peervault_net::start(config(dir.path(), psk, bootstrap))
        .await
        .unwrap();
    (network, dir)
}

async fn endpoint_of(handle: &NetHandle) -> Endpoint {
    let addr = handle.addresses().await.listen[0].clone();
    Endpoint::parse(&addr.to_string()).unwrap()
}

/// Answers every request with the request bytes reversed.
fn echo(mut network: Network) -> NetHandle {
    let handle = network.handle.clone();
    tokio::spawn(async move {
        while let Some(req) = network.inbound.recv().await {
            let mut bytes = req.bytes.to_vec();
            bytes.reverse();
            let _ = req.reply.send(bytes.into());
        }
    });
    tokio::spawn(async move { while network.events.recv().await.is_some() {} });
    handle
}

async fn wait_for_peers(handle: &NetHandle, n: usize, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if handle.peers().await.len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn bootstrap_connects_and_requests_are_answered() {
    let (a, _da) = node(KEY, vec![]).await;
    let a = echo(a);
    let (b, _db) = node(KEY, vec![endpoint_of(&a).await]).await;
    let b = echo(b);
    assert!(wait_for_peers(&b, 1, Duration::from_secs(10)).await);
    let peers = b.peers().await;
    assert_eq!(peers[0].peer_id, a.local_peer_id());
    assert_eq!(peers[0].source, PeerSource::Bootstrap);
    let answer = b
        .request(a.local_peer_id(), b"hello".to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&answer[..], b"olleh");
    // A 4 MiB message crosses too.
    let big = vec![1u8; 4 << 20];
    assert_eq!(
        b.request(a.local_peer_id(), big.clone(), Duration::from_secs(10))
            .await
            .unwrap()
            .len(),
        big.len()
    );
}

#[tokio::test]
async fn nodes_that_joined_through_one_peer_find_each_other() {
    let (hub, _dh) = node(KEY, vec![]).await;
    let hub = echo(hub);
    let hub_addr = endpoint_of(&hub).await;
    let (b, _db) = node(KEY, vec![hub_addr.clone()]).await;
    let b = echo(b);
    assert!(wait_for_peers(&b, 1, Duration::from_secs(10)).await);
    let (c, _dc) = node(KEY, vec![hub_addr]).await;
    let c = echo(c);
    assert!(
        wait_for_peers(&c, 2, Duration::from_secs(10)).await,
        "c should reach b through the hub"
    );
    assert!(wait_for_peers(&b, 2, Duration::from_secs(10)).await);
    let sources: Vec<_> = c.peers().await.into_iter().map(|p| p.source).collect();
    assert!(sources.contains(&PeerSource::Pex), "{sources:?}");
}

async fn wait_mismatch(events: &mut tokio::sync::mpsc::Receiver<NetEvent>) -> bool {
    loop {
        match events.recv().await {
            Some(NetEvent::KeyMismatch { .. }) => return true,
            Some(NetEvent::Connected(_)) | None => return false,
            Some(_) => {}
        }
    }
}

#[tokio::test]
async fn a_different_key_is_detected_on_both_sides_within_seconds() {
    let (mut a, _da) = node(KEY, vec![]).await;
    let a_addr = endpoint_of(&a.handle).await;
    let (mut b, _db) = node([9; 32], vec![a_addr]).await;
    let started = std::time::Instant::now();
    let (on_a, on_b) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), wait_mismatch(&mut a.events)),
        tokio::time::timeout(Duration::from_secs(5), wait_mismatch(&mut b.events)),
    );
    assert!(
        on_a.unwrap() && on_b.unwrap(),
        "both sides must report the mismatch"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(a.handle.peers().await.is_empty());
    assert!(b.handle.peers().await.is_empty());
}

#[tokio::test]
async fn a_stalled_peer_costs_a_timeout_not_a_hang() {
    // A TCP listener that accepts and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_addr = stalled.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            held.push(socket);
        }
    });
    let (a, _da) = node(KEY, vec![]).await;
    let a = echo(a);
    let bootstrap = vec![
        Endpoint::parse(&stalled_addr.to_string()).unwrap(),
        endpoint_of(&a).await,
    ];
    let (b, _db) = node(KEY, bootstrap).await;
    let b = echo(b);
    // The good bootstrap peer is reached although the other one stalls.
    assert!(wait_for_peers(&b, 1, Duration::from_secs(10)).await);
    let started = std::time::Instant::now();
    let answer = b
        .request(a.local_peer_id(), b"x".to_vec(), Duration::from_secs(5))
        .await;
    assert!(answer.is_ok());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_bootstrap_peer_that_starts_late_is_reached_without_a_restart() {
    // Reserve a port, then free it: the bootstrap peer will start there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap();
    let (b, _db) = node(KEY, vec![endpoint.clone()]).await;
    let b = echo(b);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(b.peers().await.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), KEY, vec![]);
    cfg.settings.listen = vec![endpoint];
    let a = echo(peervault_net::start(cfg).await.unwrap());
    assert!(
        wait_for_peers(&b, 1, Duration::from_secs(40)).await,
        "no connection after the peer came up"
    );
    assert_eq!(b.peers().await[0].peer_id, a.local_peer_id());
}

#[tokio::test]
async fn requests_to_unknown_peers_fail_quickly() {
    let (a, _da) = node(KEY, vec![]).await;
    let a = echo(a);
    let stranger = peervault_net::PeerId::random();
    let started = std::time::Instant::now();
    assert!(
        a.request(stranger, b"x".to_vec(), Duration::from_secs(5))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), KEY, vec![]);
    cfg.settings.listen = vec![Endpoint::parse(&taken.local_addr().unwrap().to_string()).unwrap()];
    let err = peervault_net::start(cfg).await.err().expect("must fail");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}

async fn node_with(config: NetConfig) -> NetHandle {
    echo(peervault_net::start(config).await.unwrap())
}

#[tokio::test]
async fn the_originals_pex_chain_ends_fully_connected() {
    // bootstrap; A and B join the bootstrap; C knows only A.
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let pex = |dir: &tempfile::TempDir, bootstrap: Vec<Endpoint>| {
        let mut c = config(dir.path(), KEY, bootstrap);
        c.settings.discover_pex = true;
        c.settings.pex_interval = Duration::from_millis(500);
        c
    };
    let boot = node_with(pex(&dirs[0], vec![])).await;
    let boot_addr = endpoint_of(&boot).await;
    let a = node_with(pex(&dirs[1], vec![boot_addr.clone()])).await;
    let b = node_with(pex(&dirs[2], vec![boot_addr])).await;
    let c = node_with(pex(&dirs[3], vec![endpoint_of(&a).await])).await;
    let started = std::time::Instant::now();
    for node in [&boot, &a, &b, &c] {
        assert!(wait_for_peers(node, 3, Duration::from_secs(10)).await);
    }
    eprintln!("PEX chain fully connected after {:?}", started.elapsed());
    let ids: Vec<_> = c.peers().await.into_iter().map(|p| p.peer_id).collect();
    assert!(ids.contains(&b.local_peer_id()) && ids.contains(&boot.local_peer_id()));
    let discovery = c.discovery().await;
    assert!(discovery.pex_enabled);
    assert!(discovery.known.iter().any(|k| k.source == PeerSource::Pex));
    assert!(
        discovery
            .known
            .iter()
            .any(|k| k.source == PeerSource::Bootstrap)
    );
}

/// Peer lists `a` received in three seconds of being connected to a hub.
async fn peer_lists_received(pex_rounds: bool) -> u64 {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let pex = |dir: &tempfile::TempDir, bootstrap: Vec<Endpoint>| {
        let mut c = config(dir.path(), KEY, bootstrap);
        c.settings.discover_pex = pex_rounds;
        c.settings.pex_interval = Duration::from_millis(500);
        c
    };
    let hub = node_with(pex(&dirs[0], vec![])).await;
    let a = node_with(pex(&dirs[1], vec![endpoint_of(&hub).await])).await;
    assert!(wait_for_peers(&a, 1, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.discovery().await.pex_received
}

#[tokio::test]
async fn with_discover_pex_peer_lists_are_exchanged_every_interval() {
    // Kademlia's own lookups also introduce peers in a network this small, so
    // convergence alone cannot show that the rounds work; count them instead.
    let (with_rounds, on_connect_only) =
        tokio::join!(peer_lists_received(true), peer_lists_received(false));
    eprintln!(
        "peer lists received in 3 s: {with_rounds} with rounds every 0.5 s, {on_connect_only} without"
    );
    // Both sides send on connect, and each round is one request and its answer.
    assert!(with_rounds >= 6, "{with_rounds}");
    assert!(on_connect_only <= 2, "{on_connect_only}");
}

#[tokio::test]
async fn a_node_dials_no_more_learnt_peers_than_its_target() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = node_with(config(hub_dir.path(), KEY, vec![])).await;
    let hub_addr = endpoint_of(&hub).await;
    let mut others = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        others.push(node_with(config(dir.path(), KEY, vec![hub_addr.clone()])).await);
        dirs.push(dir);
    }
    assert!(wait_for_peers(&hub, 5, Duration::from_secs(10)).await);
    let dir = tempfile::tempdir().unwrap();
    let mut limited = config(dir.path(), KEY, vec![hub_addr]);
    limited.settings.max_peers = 3;
    let limited = node_with(limited).await;
    assert!(wait_for_peers(&limited, 3, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // It learnt of six peers but dialled only up to its target; the rest may dial it.
    let dialled = limited
        .peers()
        .await
        .into_iter()
        .filter(|p| p.source != PeerSource::Inbound)
        .count();
    assert!(dialled <= 3, "dialled {dialled} peers");
    assert!(limited.discovery().await.known.len() >= 6);
}

#[tokio::test]
async fn the_dht_finds_a_provider_the_asker_was_never_connected_to() {
    // A line: p - x - q. q asks for what p provides; p and q were never connected.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let line = |dir: &tempfile::TempDir, bootstrap: Vec<Endpoint>| {
        let mut c = config(dir.path(), KEY, bootstrap);
        c.settings.max_peers = 1;
        c
    };
    let x = node_with(line(&dirs[0], vec![])).await;
    let x_addr = endpoint_of(&x).await;
    let p = node_with(line(&dirs[1], vec![x_addr.clone()])).await;
    assert!(wait_for_peers(&p, 1, Duration::from_secs(10)).await);
    let q = node_with(line(&dirs[2], vec![x_addr])).await;
    assert!(wait_for_peers(&q, 1, Duration::from_secs(10)).await);
    assert!(
        q.peers()
            .await
            .iter()
            .all(|peer| peer.peer_id != p.local_peer_id())
    );
    p.provide(b"some-file".to_vec()).await;
    let started = std::time::Instant::now();
    let mut found = Vec::new();
    while found.is_empty() && started.elapsed() < Duration::from_secs(15) {
        found = q.find_providers(b"some-file".to_vec()).await;
    }
    eprintln!("DHT lookup found {found:?} after {:?}", started.elapsed());
    assert_eq!(found, vec![p.local_peer_id()]);
    // And the provider can be asked directly now.
    let answer = q
        .request(p.local_peer_id(), b"ping".to_vec(), Duration::from_secs(5))
        .await;
    assert_eq!(&answer.unwrap()[..], b"gnip");
}

#[tokio::test]
async fn a_port_another_node_listens_on_is_refused_not_shared() {
    // Both would bind with SO_REUSEPORT; the second must not start.
    let (a, _da) = node(KEY, vec![]).await;
    let taken = endpoint_of(&a.handle).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), KEY, vec![]);
    cfg.settings.listen = vec![taken.clone()];
    let err = peervault_net::start(cfg).await.err().expect("must fail");
    assert!(err.to_string().contains("address already in use"), "{err}");
    // Also on every interface at that port.
    let mut cfg = config(dir.path(), KEY, vec![]);
    cfg.settings.listen = vec![Endpoint::parse(&format!(":{}", taken.port)).unwrap()];
    let err = peervault_net::start(cfg).await.err().expect("must fail");
    assert!(err.to_string().contains("address already in use"), "{err}");
}

#[tokio::test]
async fn silent_connections_from_one_address_do_not_lock_members_out() {
    let (a, _da) = node(KEY, vec![]).await;
    let a = echo(a);
    let target = endpoint_of(&a).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], target.port));
    // 200 connections from 127.0.0.66 that never say a word, held open.
    let mut silent = Vec::new();
    for _ in 0..200 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.66:0".parse().unwrap()).unwrap();
        if let Ok(stream) = socket.connect(addr).await {
            silent.push(stream);
        }
    }
    assert!(
        silent.len() >= 100,
        "only {} connections opened",
        silent.len()
    );
    let started = std::time::Instant::now();
    let (b, _db) = node(KEY, vec![target]).await;
    let b = echo(b);
    let connected = wait_for_peers(&b, 1, Duration::from_secs(5)).await;
    let discovery = b.discovery().await;
    assert!(
        connected,
        "a member could not connect beside 200 silent connections within 5 s \
         (after {:?}; the member knows {:?}; the target has {} peers)",
        started.elapsed(),
        discovery.known,
        a.peers().await.len()
    );
    eprintln!(
        "a member connected {:?} after starting, beside {} silent connections",
        started.elapsed(),
        silent.len()
    );
    drop(silent);
}

#[tokio::test]
async fn a_bootstrap_address_that_is_this_node_is_no_key_mismatch() {
    // A node given its own address (as a shared config on every host would): it
    // reaches itself, says so, and never calls it another key.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let own = Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), KEY, vec![own.clone()]);
    cfg.settings.listen = vec![own];
    let mut a = peervault_net::start(cfg).await.unwrap();
    let mismatch = tokio::time::timeout(Duration::from_secs(4), wait_mismatch(&mut a.events)).await;
    assert!(
        !matches!(mismatch, Ok(true)),
        "reaching itself was reported as a key mismatch"
    );
    let discovery = a.handle.discovery().await;
    assert!(discovery.known.iter().all(|k| !k.key_mismatch));
    assert!(a.handle.peers().await.is_empty());
}

#[tokio::test]
async fn requests_and_chunk_streams_across_many_rekeys_are_byte_identical() {
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    let frames_per_key = 2;
    let dir_a = tempfile::tempdir().unwrap();
    let mut cfg = config(dir_a.path(), KEY, vec![]);
    cfg.settings.rekey_interval = frames_per_key;
    let Network {
        handle: a,
        mut inbound,
        mut events,
        chunk_streams: mut streams,
    } = peervault_net::start(cfg).await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = inbound.recv().await {
            let mut bytes = req.bytes.to_vec();
            bytes.reverse();
            let _ = req.reply.send(bytes.into());
        }
    });
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    // Chunk streams: read 4 MiB, answer them reversed.
    tokio::spawn(async move {
        while let Some((_, mut stream)) = streams.next().await {
            tokio::spawn(async move {
                let mut data = vec![0u8; 4 << 20];
                if stream.read_exact(&mut data).await.is_ok() {
                    data.reverse();
                    let _ = stream.write_all(&data).await;
                    let _ = stream.close().await;
                }
            });
        }
    });
    let dir_b = tempfile::tempdir().unwrap();
    let mut cfg = config(dir_b.path(), KEY, vec![endpoint_of(&a).await]);
    cfg.settings.rekey_interval = frames_per_key;
    let b = echo(peervault_net::start(cfg).await.unwrap());
    assert!(wait_for_peers(&b, 1, Duration::from_secs(10)).await);
    // Requests of 3 MiB: ~48 frames each way, ~24 rekeys per direction.
    let request: Vec<u8> = (0..3u32 << 20).map(|i| (i * 31 % 253) as u8).collect();
    for _ in 0..3 {
        let answer = b
            .request(a.local_peer_id(), request.clone(), Duration::from_secs(20))
            .await
            .unwrap();
        let mut expected = request.clone();
        expected.reverse();
        assert!(answer.as_ref() == expected.as_slice(), "the answer differs");
    }
    // And a chunk stream of 4 MiB.
    let mut stream = b.open_chunk_stream(a.local_peer_id()).await.unwrap();
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 17 % 251) as u8).collect();
    stream.write_all(&data).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    let mut expected = data;
    expected.reverse();
    assert!(back == expected, "the stream's bytes differ");
}
