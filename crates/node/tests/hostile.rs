//! A peer that holds the network key and lies: forged and corrupt chunks, records
//! that do not open or name another file, replays of old versions, bad answers to
//! reads. Each is refused, counted, and never reaches disk; repeated offences get
//! the peer banned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Cluster, WAIT, blob_bytes_on_disk, blobs, endpoint, eventually_within as eventually};
use futures::StreamExt;
use peervault_net::{NetConfig, NetHandle, NodeIdentity, PeerId};
use peervault_node::wire::{Request, Response, SealedEntry};
use peervault_node::{Node, Replicas};
use peervault_store::crypto::{CHUNK_HEADER_LEN, Crypto, catalogue_context};
use peervault_store::{CatalogueEntry, ChunkId};

/// A rogue member: the network key, its own identity, and a crypto that can seal
/// anything under any id.
struct Rogue {
    net: NetHandle,
    crypto: Crypto,
    _dir: tempfile::TempDir,
}

impl Rogue {
    /// Joins `target`; answers peers' chunk requests with `answer` (forged chunks).
    async fn join(cluster: &Cluster, target: &Node, forge_reads: bool) -> Rogue {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NetConfig::new(
            NodeIdentity::load_or_create(dir.path()).unwrap(),
            std::sync::Arc::new(peervault_net::FixedKey(cluster.key.pnet_psk())),
            peervault_net::NetSettings::new(vec![
                peervault_net::Endpoint::parse("127.0.0.1:0").unwrap(),
            ]),
        );
        config.settings.bootstrap = vec![endpoint(target).await];
        let mut network = peervault_net::start(config).await.unwrap();
        let crypto = Crypto::new(&cluster.key.store_keys());
        let forger = Crypto::new(&cluster.key.store_keys());
        tokio::spawn(async move {
            while let Some(request) = network.inbound.recv().await {
                let answer = match Request::decode(&request.bytes) {
                    Ok(Request::GetChunk { id }) if forge_reads => Response::Chunk {
                        blob: forged_blob(&forger, id, 1 << 20),
                    },
                    Ok(Request::Summary { .. }) => Response::Versions {
                        buckets: Vec::new(),
                        versions: Vec::new(),
                        member_since_ms: 0,
                        resyncing: false,
                    },
                    _ => Response::Missing,
                };
                let _ = request.reply.send(answer.encode().into());
            }
        });
        tokio::spawn(async move { while network.events.recv().await.is_some() {} });
        let rogue = Rogue {
            net: network.handle,
            crypto,
            _dir: dir,
        };
        let target_id: PeerId = target.peer_id().parse().unwrap();
        eventually("the rogue connects", WAIT, || async {
            rogue
                .net
                .peers()
                .await
                .iter()
                .any(|p| p.peer_id == target_id)
        })
        .await;
        rogue
    }

    /// Stores a sealed chunk on `target` through request-response.
    async fn store(&self, target: &Node, (id, blob): (ChunkId, Vec<u8>)) {
        let answer = self.ask(target, &Request::PutChunk { id, blob }).await;
        assert!(matches!(answer, Ok(Response::Stored)), "{answer:?}");
    }

    async fn ask(&self, target: &Node, request: &Request) -> Result<Response, String> {
        let peer: PeerId = target.peer_id().parse().unwrap();
        let bytes = self
            .net
            .request(peer, request.encode(), Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
        Response::decode(&bytes).map_err(|e| e.to_string())
    }
}

/// A blob whose tag is valid for `id` but whose content is not what `id` names:
/// what only a member can make.
fn forged_blob(crypto: &Crypto, id: ChunkId, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; CHUNK_HEADER_LEN];
    buf.extend((0..len).map(|i| (i * 7) as u8));
    crypto.seal_chunk_in_place(&id, &mut buf).unwrap();
    buf
}

/// A node holding one copy of what it is given, and a rogue connected to it (the
/// cluster keeps their directories).
async fn target_and_rogue() -> (Cluster, Node, Rogue, PeerId) {
    let cluster = Cluster::new();
    let target = cluster.start("target", &[], Replicas::Count(1)).await;
    let rogue = Rogue::join(&cluster, &target, false).await;
    let peer = target.peer_id().parse().unwrap();
    (cluster, target, rogue, peer)
}

async fn offences(node: &Node) -> (u64, u64) {
    let m = node.metrics_snapshot().await;
    (m.network.offences, m.network.bans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_corrupt_chunks_are_refused_counted_and_never_stored() {
    let cluster = Cluster::new();
    let target = cluster.start("target", &[], Replicas::Count(1)).await;
    let rogue = Rogue::join(&cluster, &target, false).await;
    let honest = rogue.crypto.chunk_id(b"what the id really names");

    // A valid tag under the id, for other content: only the hash check catches it.
    let forged = forged_blob(&rogue.crypto, honest, 4096);
    let answer = rogue
        .ask(
            &target,
            &Request::PutChunk {
                id: honest,
                blob: forged,
            },
        )
        .await
        .unwrap();
    assert!(matches!(answer, Response::Refused(_)), "{answer:?}");
    // Random bytes.
    let answer = rogue
        .ask(
            &target,
            &Request::PutChunk {
                id: honest,
                blob: vec![0x5a; 5000],
            },
        )
        .await
        .unwrap();
    assert!(matches!(answer, Response::Refused(_)), "{answer:?}");
    // Undecodable bytes.
    let peer: PeerId = target.peer_id().parse().unwrap();
    let raw = rogue
        .net
        .request(peer, vec![1u8, 0xff, 0xff, 0xff], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(matches!(Response::decode(&raw), Ok(Response::Error(_))));

    assert_eq!(offences(&target).await, (3, 0));
    assert!(blobs(&target).await.is_empty(), "no blob recorded");
    assert_eq!(
        blob_bytes_on_disk(target.data_dir()),
        0,
        "the slots the refused blobs were checked in are punched out"
    );
    assert_eq!(target.quota().used_bytes, 0, "nothing was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_offending_is_disconnected_and_banned() {
    let cluster = Cluster::new();
    let target = cluster.start("target", &[], Replicas::Count(1)).await;
    let rogue = Rogue::join(&cluster, &target, false).await;
    let rogue_id = rogue.net.local_peer_id();
    for i in 0..peervault_node::conduct::BAN_AFTER {
        let id = rogue.crypto.chunk_id(format!("chunk {i}").as_bytes());
        let _ = rogue
            .ask(
                &target,
                &Request::PutChunk {
                    id,
                    blob: forged_blob(&rogue.crypto, id, 100),
                },
            )
            .await;
    }
    eventually("the target drops the rogue", WAIT, || async {
        target
            .peers()
            .await
            .iter()
            .all(|p| p.peer_id != rogue_id.to_string())
    })
    .await;
    let (offences, bans) = offences(&target).await;
    assert_eq!((offences, bans), (5, 1));
    let discovery = target.discovery().await;
    assert_eq!(discovery.banned.len(), 1);
    assert_eq!(discovery.banned[0].0, rogue_id.to_string());
    // It cannot come back: every new connection is refused while the ban lasts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retry = rogue
        .ask(
            &target,
            &Request::Summary {
                digests: Vec::new(),
            },
        )
        .await;
    assert!(retry.is_err(), "{retry:?}");
    assert!(
        target
            .peers()
            .await
            .iter()
            .all(|p| p.peer_id != rogue_id.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_open_or_name_another_file_are_refused_and_replays_change_nothing() {
    let cluster = Cluster::new();
    let target = cluster.start("target", &[], Replicas::Count(1)).await;
    let rogue = Rogue::join(&cluster, &target, false).await;
    let name_id = |name: &str| rogue.crypto.name_id(name);

    // A record sealed for one name, offered as another's.
    target
        .store("real.txt", &b"the real thing"[..], None)
        .await
        .unwrap();
    let Response::Entries { entries } = rogue
        .ask(
            &target,
            &Request::FetchEntries {
                ids: vec![name_id("real.txt")],
            },
        )
        .await
        .unwrap()
    else {
        panic!("no entries");
    };
    let original = entries[0].clone();
    let moved = SealedEntry {
        name_id: name_id("other.txt"),
        sealed: original.sealed.clone(),
    };
    let garbage = SealedEntry {
        name_id: name_id("junk.txt"),
        sealed: vec![7; 120],
    };
    for entry in [moved.clone(), garbage.clone()] {
        let answer = rogue.ask(&target, &Request::Offer { entry }).await.unwrap();
        assert!(matches!(answer, Response::Refused(_)), "{answer:?}");
    }
    rogue
        .ask(
            &target,
            &Request::Announce {
                entries: vec![moved, garbage],
            },
        )
        .await
        .unwrap();
    assert_eq!(offences(&target).await.0, 4);
    let names: Vec<String> = target.names().await.unwrap();
    assert_eq!(names, vec!["real.txt".to_string()]);

    // A properly sealed record with a manifest that lies about its size.
    let ctx = catalogue_context(&name_id("real.txt"));
    let plain = rogue.crypto.open_record(&ctx, &original.sealed).unwrap();
    let CatalogueEntry::File(mut manifest) = CatalogueEntry::decode(&plain).unwrap() else {
        panic!("real.txt is a file");
    };
    manifest.name = "liar.txt".into();
    manifest.size += 10 << 20;
    manifest.version.clock += 1;
    let lie = CatalogueEntry::File(manifest).encode();
    let sealed = rogue
        .crypto
        .seal_record(&catalogue_context(&name_id("liar.txt")), &lie)
        .unwrap();
    // The fifth offence: the ban may close the connection before the refusal
    // arrives.
    let answer = rogue
        .ask(
            &target,
            &Request::Offer {
                entry: SealedEntry {
                    name_id: name_id("liar.txt"),
                    sealed,
                },
            },
        )
        .await;
    assert!(
        matches!(answer, Ok(Response::Refused(_)) | Err(_)),
        "{answer:?}"
    );
    assert!(target.stat("liar.txt").await.is_err());
    assert_eq!(offences(&target).await, (5, 1));

    // That was the fifth offence: this rogue is banned now. A replay of the old
    // version after a delete, from a member in good standing: the version is
    // kept as history already, so nothing changes, and the delete stands.
    let replayer = Rogue::join(&cluster, &target, false).await;
    target.delete("real.txt").await.unwrap();
    let history = target.versions("real.txt").await.unwrap();
    replayer
        .ask(
            &target,
            &Request::Announce {
                entries: vec![original.clone()],
            },
        )
        .await
        .unwrap();
    assert!(target.stat("real.txt").await.is_err(), "the delete stands");
    assert_eq!(target.versions("real.txt").await.unwrap(), history);
    assert_eq!(target.metrics_snapshot().await.network.offences, 5);
    // A version past the retention, replayed, is not kept: counted as stale.
    target.purge("real.txt").await.unwrap();
    replayer
        .ask(
            &target,
            &Request::Announce {
                entries: vec![original],
            },
        )
        .await
        .unwrap();
    assert_eq!(target.versions("real.txt").await.unwrap().len(), 1);
    let text = target.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("peervault_stale_records_total 1")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_skips_a_peer_that_serves_forged_chunks_and_returns_the_real_bytes() {
    let cluster = Cluster::new();
    let holder = cluster.start("holder", &[], Replicas::Count(1)).await;
    let mut bytes = vec![0u8; 6 << 20];
    blake3::Hasher::new()
        .update(b"real")
        .finalize_xof()
        .fill(&mut bytes);
    holder.store("real.bin", &bytes[..], None).await.unwrap();
    let reader = cluster
        .start("reader", &[&holder], Replicas::Count(3))
        .await;
    let _rogue = Rogue::join(&cluster, &reader, true).await;
    eventually("the reader knows the file and both peers", WAIT, || async {
        reader.stat("real.bin").await.is_ok() && reader.peers().await.len() == 2
    })
    .await;
    let mut stream = reader.get("real.bin").await.unwrap();
    let mut read = Vec::new();
    while let Some(piece) = stream.next().await {
        read.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(blake3::hash(&read), blake3::hash(&bytes));
    let (offences, _) = offences(&reader).await;
    assert!(offences >= 1, "the forgeries were noticed");
    assert_eq!(reader.quota().used_bytes, 0, "reading keeps nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_lane_answers_in_order_and_a_hostile_one_is_closed_and_counted() {
    use peervault_net::codec::{read_message, write_message};
    let (_cluster, target, rogue, peer) = target_and_rogue().await;
    // Three real chunks on the target: one stored through request-response, two
    // on a lane, back to back.
    let stored: Vec<(ChunkId, Vec<u8>)> = (0..3u8)
        .map(|i| rogue.crypto.seal_chunk(&vec![i; 70_000]).unwrap())
        .collect();
    rogue.store(&target, stored[0].clone()).await;
    let mut lane = rogue.net.open_chunk_stream(peer).await.unwrap();
    for (id, blob) in &stored[1..] {
        let put = peervault_node::wire::encode_put_chunk(id, blob);
        write_message(&mut lane, &put).await.unwrap();
    }
    for _ in &stored[1..] {
        let answer = read_message(&mut lane, 1 << 10).await.unwrap().unwrap();
        assert_eq!(Response::decode(&answer).unwrap(), Response::Stored);
    }
    let missing = rogue.crypto.chunk_id(b"never stored");

    // Requests sent back to back come back in order, the held and the missing.
    let asked: Vec<ChunkId> = [stored[2].0, missing, stored[0].0, stored[1].0].into();
    for id in &asked {
        write_message(&mut lane, &Request::GetChunk { id: *id }.encode())
            .await
            .unwrap();
    }
    for id in &asked {
        let answer = read_message(&mut lane, 2 << 20).await.unwrap().unwrap();
        match stored.iter().find(|(held, _)| held == id) {
            Some((_, blob)) => {
                assert_eq!(
                    Response::decode(&answer).unwrap(),
                    Response::Chunk { blob: blob.clone() }
                )
            }
            None => assert_eq!(Response::decode(&answer).unwrap(), Response::Missing),
        }
    }
    assert_eq!(offences(&target).await, (0, 0));

    // Any other request closes the lane and counts; so does one over the limit.
    let summary = Request::Summary {
        digests: Vec::new(),
    }
    .encode();
    write_message(&mut lane, &summary).await.unwrap();
    assert!(matches!(
        read_message(&mut lane, 2 << 20).await,
        Ok(None) | Err(_)
    ));
    let mut lane = rogue.net.open_chunk_stream(peer).await.unwrap();
    // The length alone is refused: 20 MiB is over the message limit.
    use futures::AsyncWriteExt;
    lane.write_all(&(20u32 << 20).to_be_bytes()).await.unwrap();
    lane.flush().await.unwrap();
    assert!(matches!(
        read_message(&mut lane, 2 << 20).await,
        Ok(None) | Err(_)
    ));
    eventually("both offences are counted", WAIT, || async {
        offences(&target).await == (2, 0)
    })
    .await;
    // Only the three real chunks were kept.
    assert_eq!(
        target.quota().used_bytes,
        stored.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_peer_takes_no_answers_is_closed() {
    use peervault_net::codec::{read_message, write_message};
    let (_cluster, target, rogue, peer) = target_and_rogue().await;
    let (id, blob) = rogue.crypto.seal_chunk(&vec![7; 1 << 20]).unwrap();
    rogue.store(&target, (id, blob)).await;
    // Ask for 12 MiB and read none of it: the target's sends stall.
    let mut lane = rogue.net.open_chunk_stream(peer).await.unwrap();
    for _ in 0..12 {
        write_message(&mut lane, &Request::GetChunk { id }.encode())
            .await
            .unwrap();
    }
    tokio::time::sleep(peervault_node::lanes::LANE_SEND_TIMEOUT + Duration::from_secs(2)).await;
    // The target gave up on the lane: what it had sent, then the end.
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        let mut answers = 0;
        while let Ok(Some(_)) = read_message(&mut lane, 2 << 20).await {
            answers += 1;
        }
        answers
    });
    let answers = drained.await.expect("the target never closed the lane");
    assert!(
        answers < 12,
        "the lane was served to the end ({answers} answers)"
    );
}
