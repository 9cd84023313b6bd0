//! Erasure-coded files in one vault: written as shards, kept in part, read
//! back from any K of them, with shards held elsewhere fetched through a
//! [`ChunkSource`] that may lie or stall.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use futures::StreamExt;
use futures::future::BoxFuture;
use peervault_store::vault::{ChunkSource, FetchError};
use peervault_store::{
    ChunkId, FileMeta, Held, Layout, Manifest, MemoryBudget, NetworkKey, OriginId, Redundancy,
    Retention, ShardSet, StoreError, TappedBlob, Vault, VaultConfig, Version, WriteAs,
};

fn config(dir: &Path, origin: u8) -> VaultConfig {
    VaultConfig {
        data_dir: dir.to_path_buf(),
        key: NetworkKey::from_bytes([5; 32], peervault_store::KeySource::Hex),
        origin: OriginId([origin; 16]),
        author: format!("node-{origin}"),
        chunk_size: 64 * 1024,
        content_defined_chunks: true,
        capacity_bytes: 1 << 40,
        retention: Retention::NONE,
        budget: MemoryBudget::new(peervault_store::budget::DEFAULT_TRANSFER_MEMORY),
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&counter.to_le_bytes());
        out.extend_from_slice(h.finalize().as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Writes `bytes` as `name` coded 4+2, keeping `keep` here; returns every
/// shard blob the write tapped, by id.
async fn write_coded(
    vault: &Vault,
    name: &str,
    bytes: &[u8],
    keep: ShardSet,
) -> (Manifest, HashMap<ChunkId, (u8, Vec<u8>)>) {
    let (tap, mut tapped) = tokio::sync::mpsc::channel::<TappedBlob>(4);
    let collect = tokio::spawn(async move {
        let mut all = HashMap::new();
        while let Some(t) = tapped.recv().await {
            all.insert(t.id, (t.shard.unwrap(), t.blob.to_vec()));
        }
        all
    });
    let layout = Layout::Coded {
        redundancy: Redundancy::new(4, 2).unwrap(),
        keep,
    };
    let how = WriteAs {
        finish: Box::new(|| Ok(FileMeta::default())),
        layout,
        reencodes: None,
    };
    let out = vault
        .write_file_as(name, how, bytes, Some(bytes.len() as u64), Some(tap))
        .await
        .unwrap();
    (out.manifest, collect.await.unwrap())
}

async fn read_with(
    vault: &Vault,
    name: &str,
    source: Option<Arc<dyn ChunkSource>>,
) -> Result<Vec<u8>, StoreError> {
    let mut reader = vault.read_file_with(name, source).await?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

/// Shards held "elsewhere": served by id, except those it lies about (wrong
/// bytes) or stalls on (never answers).
#[derive(Default)]
struct Elsewhere {
    shards: HashMap<ChunkId, Vec<u8>>,
    lies: HashSet<usize>,
    stalls: HashSet<usize>,
    asked: Mutex<Vec<usize>>,
    rejected: Mutex<Vec<usize>>,
}

impl ChunkSource for Elsewhere {
    fn fetch(
        &self,
        _manifest: Arc<Manifest>,
        _index: usize,
    ) -> BoxFuture<'static, Result<BytesMut, FetchError>> {
        Box::pin(async { Err(FetchError("whole chunks are not served here".into())) })
    }

    fn fetch_shard(
        &self,
        manifest: Arc<Manifest>,
        index: usize,
        shard: usize,
    ) -> BoxFuture<'static, Result<BytesMut, FetchError>> {
        self.asked.lock().unwrap().push(shard);
        let id = manifest.coding.as_ref().unwrap().chunks[index].shards[shard];
        let found = self.shards.get(&id).cloned();
        let (lie, stall) = (self.lies.contains(&shard), self.stalls.contains(&shard));
        Box::pin(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            let mut blob = found.ok_or_else(|| FetchError(format!("shard {shard}: not held")))?;
            if lie {
                let last = blob.len() - 1;
                blob[last] ^= 1;
            }
            Ok(BytesMut::from(&blob[..]))
        })
    }

    fn rejected_shard(&self, _manifest: &Manifest, _index: usize, shard: usize) {
        self.rejected.lock().unwrap().push(shard);
    }
}

#[tokio::test]
async fn a_coded_file_kept_whole_here_reads_back_and_costs_one_and_a_half_times() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(config(dir.path(), 1)).await.unwrap();
    let bytes = data(1_000_000, 1);
    let (manifest, tapped) = write_coded(&vault, "f", &bytes, ShardSet::all(6)).await;
    let coding = manifest.coding.as_ref().unwrap();
    assert_eq!(coding.redundancy.to_string(), "4+2");
    assert_eq!(tapped.len(), manifest.chunks.len() * 6);
    assert_eq!(read_with(&vault, "f", None).await.unwrap(), bytes);
    assert_eq!(
        vault.holding(&manifest).await.unwrap(),
        Held::Shards(ShardSet::all(6))
    );
    let used = vault.usage().used_bytes;
    // 1.5x the data, plus headers and padding to whole 2-byte symbols.
    assert!(used > 1_500_000 && used < 1_520_000, "{used}");
    let report = vault.verify_all().await.unwrap();
    assert!(report.iter().all(|r| r.damaged.is_empty() && r.held));
    // Any two shard indexes gone: still whole.
    vault
        .release_shards("f", manifest.version, ShardSet(0b000101))
        .await
        .unwrap();
    assert_eq!(
        vault.holding(&manifest).await.unwrap(),
        Held::Shards(ShardSet(0b111010))
    );
    assert_eq!(read_with(&vault, "f", None).await.unwrap(), bytes);
    // What repair sends: every shard of a chunk, rebuilt, the very ones written.
    let manifest = Arc::new(manifest);
    for index in [0, manifest.chunks.len() - 1] {
        let rebuilt = vault
            .rebuild_shards(manifest.clone(), index, None)
            .await
            .unwrap();
        let ids = &manifest.coding.as_ref().unwrap().chunks[index].shards;
        for (j, shard) in rebuilt.iter().enumerate() {
            assert_eq!(&tapped[&ids[j]].1, shard);
        }
    }
    // A third: fewer than K, an error that says so, never bytes.
    vault
        .release_shards("f", manifest.version, ShardSet(0b000010))
        .await
        .unwrap();
    let e = read_with(&vault, "f", None).await.unwrap_err().to_string();
    assert!(e.contains("3 of the 4 shards"), "{e}");
    // Deleting the file frees every shard.
    vault.delete("f", true).await.unwrap();
    assert_eq!(vault.usage().used_bytes, 0);
}

#[tokio::test]
async fn shards_held_elsewhere_are_fetched_checked_and_a_liar_or_a_staller_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(config(dir.path(), 1)).await.unwrap();
    let bytes = data(700_000, 2);
    // This node keeps shard 0; the others are elsewhere.
    let (manifest, tapped) = write_coded(&vault, "f", &bytes, ShardSet::one(0)).await;
    assert_eq!(
        vault.holding(&manifest).await.unwrap(),
        Held::Shards(ShardSet::one(0))
    );
    let elsewhere = |lies: &[usize], stalls: &[usize], without: &[usize]| Elsewhere {
        shards: tapped
            .iter()
            .filter(|(_, (j, _))| *j != 0 && !without.contains(&(*j as usize)))
            .map(|(id, (_, blob))| (*id, blob.clone()))
            .collect(),
        lies: lies.iter().copied().collect(),
        stalls: stalls.iter().copied().collect(),
        ..Elsewhere::default()
    };
    let plain = Arc::new(elsewhere(&[], &[], &[]));
    assert_eq!(
        read_with(&vault, "f", Some(plain.clone())).await.unwrap(),
        bytes
    );
    // Three shards per chunk asked for, no more: 0 is here.
    let asked = plain.asked.lock().unwrap().len();
    assert_eq!(asked, manifest.chunks.len() * 3);
    // Shard 1 lies and shard 2 never answers (a source gives up on a holder
    // after its own timeout; this one never does): 0, 3, 4 and 5 rebuild it,
    // shard 2 passed over after the hedging wait.
    let hostile = Arc::new(elsewhere(&[1], &[2], &[]));
    assert_eq!(
        read_with(&vault, "f", Some(hostile.clone())).await.unwrap(),
        bytes
    );
    assert!(hostile.rejected.lock().unwrap().iter().all(|j| *j == 1));
    assert!(!hostile.rejected.lock().unwrap().is_empty());
    // Too few left anywhere: the error names the shards and what each did.
    let short = Arc::new(elsewhere(&[1], &[], &[3, 4]));
    let e = read_with(&vault, "f", Some(short)).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{text}");
    assert!(text.contains("shards needed"), "{text}");
}

#[tokio::test]
async fn a_peer_stores_its_shards_checked_and_a_forged_shard_is_refused() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Vault::open(config(a_dir.path(), 1)).await.unwrap();
    let b = Vault::open(config(b_dir.path(), 2)).await.unwrap();
    let bytes = data(300_000, 3);
    let (manifest, tapped) = write_coded(&a, "f", &bytes, ShardSet::one(0)).await;
    let name_id = a.name_id("f");
    let sealed = a
        .sealed_record(name_id, manifest.version)
        .await
        .unwrap()
        .unwrap();
    b.apply_sealed(name_id, sealed).await.unwrap();
    let mine = ShardSet(0b0110);
    let wanted = b.missing_shards(&manifest, mine).await.unwrap();
    assert_eq!(wanted.len(), manifest.chunks.len() * 2);
    let forged = {
        let (id, (_, blob)) = tapped.iter().find(|(id, _)| wanted.contains(id)).unwrap();
        let mut blob = blob.clone();
        blob[10] ^= 0xff;
        (*id, blob)
    };
    assert!(
        b.put_blob(forged.0, BytesMut::from(&forged.1[..]))
            .await
            .is_err()
    );
    for id in &wanted {
        let blob = &tapped[id].1;
        b.put_blob(*id, BytesMut::from(&blob[..])).await.unwrap();
    }
    assert_eq!(b.holding(&manifest).await.unwrap(), Held::Shards(mine));
    assert!(b.missing_shards(&manifest, mine).await.unwrap().is_empty());
    let listed = b.summaries().await.unwrap();
    assert!(listed.iter().any(|(_, f)| f.name == "f" && f.held));
}

async fn reencode(
    vault: &Vault,
    name: &str,
    bytes: &[u8],
    old: Version,
    layout: Layout,
) -> Result<Manifest, StoreError> {
    let how = WriteAs {
        finish: Box::new(|| Ok(FileMeta::default())),
        layout,
        reencodes: Some(old),
    };
    Ok(vault
        .write_file_as(name, how, bytes, Some(bytes.len() as u64), None)
        .await?
        .manifest)
}

#[tokio::test]
async fn a_reencoding_replaces_its_version_after_a_grace_and_never_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    // Versions kept by count (ten): the re-encoded one goes all the same,
    // after the grace (here the shorter keep_for).
    cfg.retention = Retention {
        keep_versions: 10,
        keep_for: std::time::Duration::from_millis(300),
    };
    let vault = Vault::open(cfg).await.unwrap();
    let bytes = data(600_000, 4);
    let whole = vault
        .write_file("f", &bytes[..], None)
        .await
        .unwrap()
        .manifest;
    let one_copy = vault.usage().used_bytes;
    let coded = Layout::Coded {
        redundancy: Redundancy::new(2, 1).unwrap(),
        keep: ShardSet::all(3),
    };
    let m = reencode(&vault, "f", &bytes, whole.version, coded)
        .await
        .unwrap();
    assert_eq!(m.reencodes.map(|r| r.of), Some(whole.version));
    assert_eq!(
        m.version,
        Version::reencoding(whole.version, OriginId([1; 16]))
    );
    assert!(m.version > whole.version);
    // During the grace the old version is kept, and a read of the new one
    // falls back on it for chunks whose shards are not to be had (here:
    // shards 1 and 2 of every chunk gone, which 2+1 cannot spare).
    assert_eq!(vault.versions("f").await.unwrap().len(), 2);
    vault
        .release_shards("f", m.version, ShardSet(0b110))
        .await
        .unwrap();
    assert_eq!(read_with(&vault, "f", None).await.unwrap(), bytes);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    vault.collect_tombstones().await.unwrap();
    // (The old whole chunks are gone with it: the GC would otherwise find
    // them unreferenced.)
    assert_eq!(
        vault.versions("f").await.unwrap().len(),
        1,
        "no history kept past the grace"
    );
    assert!(
        read_with(&vault, "f", None).await.is_err(),
        "nothing to fall back on"
    );
    let m = reencode(&vault, "f", &bytes, m.version, coded)
        .await
        .unwrap();
    let past_the_grace = || async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        vault.collect_tombstones().await.unwrap();
    };
    past_the_grace().await;
    let used = vault.usage().used_bytes;
    assert!(
        used > one_copy * 14 / 10 && used < one_copy * 16 / 10,
        "{used} vs {one_copy}"
    );
    assert_eq!(read_with(&vault, "f", None).await.unwrap(), bytes);
    // A stale re-encoding (the name was written since) is refused, and
    // leaves nothing behind.
    let newer = vault
        .write_file("f", &bytes[..1000], None)
        .await
        .unwrap()
        .manifest;
    let e = reencode(&vault, "f", &bytes, m.version, Layout::Whole)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("written again"), "{e}");
    assert_eq!(vault.stat("f").await.unwrap().version, newer.version);
    // Back to whole copies: the coded version goes too.
    let back = reencode(&vault, "f", &bytes[..1000], newer.version, Layout::Whole)
        .await
        .unwrap();
    assert!(back.coding.is_none());
    past_the_grace().await;
    // The coded version stays history (a real write superseded it); the one
    // re-encoded again does not.
    let kept: Vec<Version> = vault
        .versions("f")
        .await
        .unwrap()
        .iter()
        .map(|e| e.version())
        .collect();
    assert!(!kept.contains(&newer.version), "{kept:?}");
    assert!(
        kept.contains(&m.version) && kept.contains(&back.version),
        "{kept:?}"
    );
}
