//! Behaviour of the vault through its public API: round trips, durability across
//! reopen, encryption at rest, integrity, names, keys, quota and clean-up.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use futures::StreamExt;
use peervault_store::{
    ChunkProblem, NetworkKey, OriginId, StoreError, Vault, VaultConfig, stored_size_of,
};
use proptest::prelude::*;

const SMALL_CHUNK: u32 = 4096;

fn config(dir: &Path, chunk_size: u32) -> VaultConfig {
    VaultConfig {
        data_dir: dir.to_path_buf(),
        key: NetworkKey::insecure_default(),
        origin: OriginId([7; 16]),
        author: "test-node".into(),
        chunk_size,
        capacity_bytes: 1 << 40,
    }
}

async fn open(dir: &Path, chunk_size: u32) -> Vault {
    Vault::open(config(dir, chunk_size)).await.unwrap()
}

/// Deterministic, incompressible-looking test data.
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

async fn read_all(vault: &Vault, name: &str) -> Result<Vec<u8>, StoreError> {
    let mut reader = vault.read_file(name).await?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("chunks"))
}

#[tokio::test]
async fn boundary_sizes_round_trip_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let c = SMALL_CHUNK as usize;
    for (i, size) in [0, 1, c - 1, c, c + 1, 3 * c, 5 * c + 17]
        .into_iter()
        .enumerate()
    {
        let name = format!("file-{size}");
        let bytes = data(size, i as u64);
        let out = vault
            .write_file(&name, &bytes[..], Some(size as u64))
            .await
            .unwrap();
        assert_eq!(out.manifest.size, size as u64);
        assert_eq!(out.manifest.hash, *blake3::hash(&bytes).as_bytes());
        assert_eq!(read_all(&vault, &name).await.unwrap(), bytes, "size {size}");
        assert!(vault.verify_file(&name).await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn data_survives_reopen_and_usage_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(10 * SMALL_CHUNK as usize + 5, 1);
    let used = {
        let vault = open(dir.path(), SMALL_CHUNK).await;
        vault.write_file("kept", &bytes[..], None).await.unwrap();
        let usage = vault.usage();
        assert_eq!(
            usage.used_bytes,
            stored_size_of(bytes.len() as u64, SMALL_CHUNK)
        );
        usage.used_bytes
    };
    let vault = open(dir.path(), SMALL_CHUNK).await;
    assert_eq!(vault.usage().used_bytes, used);
    let listed = vault.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "kept");
    assert_eq!(read_all(&vault, "kept").await.unwrap(), bytes);
    let on_disk: u64 = chunk_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, used);
}

#[tokio::test]
async fn nothing_under_the_data_dir_holds_plaintext_or_names() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = b"PEERVAULT-PLAINTEXT-MARKER-0123456789";
    let mut bytes = Vec::new();
    while bytes.len() < 3 * SMALL_CHUNK as usize {
        bytes.extend_from_slice(pattern);
    }
    let name = "SECRET-NAME-MARKER.txt";
    {
        let vault = open(dir.path(), SMALL_CHUNK).await;
        vault.write_file(name, &bytes[..], None).await.unwrap();
        vault
            .write_file("second", &pattern[..], None)
            .await
            .unwrap();
    }
    for path in files_under(dir.path()) {
        let contents = std::fs::read(&path).unwrap();
        for needle in [&pattern[..16], name.as_bytes()] {
            assert!(
                !contents.windows(needle.len()).any(|w| w == needle),
                "{} contains plaintext",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn equal_chunks_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let block = data(SMALL_CHUNK as usize, 3);
    let repeated: Vec<u8> = block
        .iter()
        .copied()
        .cycle()
        .take(4 * block.len())
        .collect();
    let first = vault.write_file("a", &repeated[..], None).await.unwrap();
    assert_eq!(
        first.stored_bytes,
        stored_size_of(block.len() as u64, SMALL_CHUNK)
    );
    let second = vault.write_file("b", &block[..], None).await.unwrap();
    assert_eq!(second.stored_bytes, 0);
    assert_eq!(second.reused_chunks, 1);
    assert_eq!(chunk_files(dir.path()).len(), 1);
    // Deleting one user of the chunk keeps it for the other.
    vault.delete("a").await.unwrap();
    assert_eq!(read_all(&vault, "b").await.unwrap(), block);
    let freed = vault.delete("b").await.unwrap().freed_bytes;
    assert_eq!(freed, first.stored_bytes);
    assert_eq!(vault.usage().used_bytes, 0);
    assert!(chunk_files(dir.path()).is_empty());
}

#[tokio::test]
async fn overwrite_replaces_and_frees_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let old = data(3 * SMALL_CHUNK as usize, 4);
    let new = data(SMALL_CHUNK as usize, 5);
    vault.write_file("doc", &old[..], None).await.unwrap();
    let out = vault.write_file("doc", &new[..], None).await.unwrap();
    assert!(out.replaced);
    assert_eq!(read_all(&vault, "doc").await.unwrap(), new);
    assert_eq!(
        vault.usage().used_bytes,
        stored_size_of(new.len() as u64, SMALL_CHUNK)
    );
    assert_eq!(chunk_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn deleted_files_are_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let vault = open(dir.path(), SMALL_CHUNK).await;
        vault.write_file("x", &b"hello"[..], None).await.unwrap();
        vault.write_file("kept", &b"kept"[..], None).await.unwrap();
        vault.write_file("kept", &b"again"[..], None).await.unwrap();
        assert_eq!(vault.file_count(), 2, "a rewrite is still one file");
        vault.delete("x").await.unwrap();
        assert_eq!(vault.file_count(), 1, "a tombstone is not a file");
        assert!(matches!(
            vault.delete("x").await,
            Err(StoreError::NotFound { .. })
        ));
    }
    let vault = open(dir.path(), SMALL_CHUNK).await;
    assert_eq!(vault.list().await.unwrap().len(), 1);
    assert_eq!((vault.file_count(), vault.catalogue_len()), (1, 2));
    assert!(matches!(
        read_all(&vault, "x").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_corrupted_chunk_fails_reads_and_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let bytes = data(4 * SMALL_CHUNK as usize, 6);
    let out = vault
        .write_file("precious", &bytes[..], None)
        .await
        .unwrap();
    let victim = dir
        .path()
        .join("chunks")
        .join(&out.manifest.chunks[2].to_hex()[..2])
        .join(out.manifest.chunks[2].to_hex());
    let mut blob = std::fs::read(&victim).unwrap();
    blob[100] ^= 0xff;
    std::fs::write(&victim, blob).unwrap();

    let mut reader = vault.read_file("precious").await.unwrap();
    let mut good = Vec::new();
    let err = loop {
        match reader.next().await.expect("stream ends with the error") {
            Ok(piece) => good.extend_from_slice(&piece),
            Err(e) => break e,
        }
    };
    // Only the verified prefix was delivered, and it is correct.
    assert_eq!(good, bytes[..2 * SMALL_CHUNK as usize]);
    assert!(
        matches!(
            err,
            StoreError::Integrity {
                index: 2,
                problem: ChunkProblem::BadTag,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("integrity check failed"));

    let report = vault.verify_file("precious").await.unwrap();
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].0, 2);
    std::fs::remove_file(&victim).unwrap();
    let all = vault.verify_all().await.unwrap();
    assert_eq!(all[0].damaged[0].2, ChunkProblem::Missing);
}

#[tokio::test]
async fn hostile_names_are_opaque_keys_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let sentinel = dir.path().join("sentinel");
    std::fs::write(&sentinel, b"untouched").unwrap();
    let vault = open(&data_dir, SMALL_CHUNK).await;
    let absolute = sentinel.to_str().unwrap().to_string();
    let traversal = format!("../{}", "sentinel");
    let deep = "a/../../sentinel".to_string();
    let unicode = "données/ファイル ✓".to_string();
    let long_ok = "n".repeat(4096);
    for name in [&absolute, &traversal, &deep, &unicode, &long_ok] {
        vault
            .write_file(name, &b"overwritten?"[..], None)
            .await
            .unwrap();
        assert_eq!(read_all(&vault, name).await.unwrap(), b"overwritten?");
    }
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"untouched");
    for name in ["", "nul\0byte", &"x".repeat(10_000)] {
        let err = vault.write_file(name, &b"x"[..], None).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidName(_)), "{name:?}: {err}");
    }
    for name in [&absolute, &traversal, &deep, &unicode, &long_ok] {
        vault.delete(name).await.unwrap();
    }
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"untouched");
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside.len(), 2, "only data/ and sentinel: {outside:?}");
}

#[tokio::test]
async fn another_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), SMALL_CHUNK).await);
    let mut cfg = config(dir.path(), SMALL_CHUNK);
    cfg.key = NetworkKey::from_user_input("a different passphrase").unwrap();
    let err = Vault::open(cfg).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }));
    assert!(err.to_string().contains("different network key"), "{err}");
}

#[tokio::test]
async fn a_data_dir_is_used_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), SMALL_CHUNK).await;
    let err = Vault::open(config(dir.path(), SMALL_CHUNK))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[tokio::test]
async fn quota_refuses_early_and_midway_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), SMALL_CHUNK);
    cfg.capacity_bytes = 10 * SMALL_CHUNK as u64;
    let vault = Vault::open(cfg).await.unwrap();
    let keep = data(2 * SMALL_CHUNK as usize, 8);
    vault.write_file("keep", &keep[..], None).await.unwrap();
    let big = data(20 * SMALL_CHUNK as usize, 9);
    // Refused from the size hint, before reading anything.
    let err = vault
        .write_file("big", &big[..], Some(big.len() as u64))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
    // Refused midway without a hint; the partial blobs are removed.
    let err = vault.write_file("big", &big[..], None).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
    assert!(err.to_string().contains("raise the quota"));
    assert_eq!(vault.usage().reserved_bytes, 0);
    assert_eq!(chunk_files(dir.path()).len(), 2);
    assert_eq!(read_all(&vault, "keep").await.unwrap(), keep);
    assert_eq!(vault.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_reader_leaves_no_trace() {
    struct Failing(usize);
    impl tokio::io::AsyncRead for Failing {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(Err(std::io::Error::other("connection lost")));
            }
            let n = self.0.min(buf.remaining()).min(1000);
            buf.put_slice(&vec![0xAB; n]);
            self.0 -= n;
            std::task::Poll::Ready(Ok(()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let err = vault
        .write_file("partial", Failing(5 * SMALL_CHUNK as usize), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection lost"), "{err}");
    assert!(vault.list().await.unwrap().is_empty());
    assert!(chunk_files(dir.path()).is_empty());
    assert_eq!(vault.usage().used_bytes, 0);
}

#[tokio::test]
async fn sweep_removes_unrecorded_files_but_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let bytes = data(3 * SMALL_CHUNK as usize, 10);
    vault.write_file("live", &bytes[..], None).await.unwrap();
    // Debris of an interrupted write: a blob file with no record.
    let stray = dir.path().join("chunks/ff");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("ff".repeat(32)), b"debris").unwrap();
    let report = vault.sweep().await.unwrap();
    assert_eq!(report.unrecorded_removed, 1);
    assert_eq!(report.unreferenced_removed, 0);
    assert_eq!(read_all(&vault, "live").await.unwrap(), bytes);
    assert!(vault.verify_file("live").await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_shared_chunks_and_deletes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let shared = data(4 * SMALL_CHUNK as usize, 11);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let vault = vault.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                let name = format!("f{i}");
                vault.write_file(&name, &shared[..], None).await.unwrap();
                if round % 2 == 1 {
                    vault.delete(&name).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..8 {
        assert_eq!(read_all(&vault, &format!("f{i}")).await.unwrap(), shared);
    }
    assert_eq!(
        vault.usage().used_bytes,
        stored_size_of(shared.len() as u64, SMALL_CHUNK)
    );
    assert_eq!(vault.sweep().await.unwrap(), Default::default());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn any_size_and_name_round_trips(size in 0usize..(6 * 512 + 3), name in "\\PC{1,40}", seed: u64) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let vault = open(dir.path(), 512).await;
            let bytes = data(size, seed);
            let out = vault.write_file(&name, &bytes[..], Some(size as u64)).await.unwrap();
            prop_assert_eq!(out.manifest.chunks.len(), size.div_ceil(512));
            prop_assert_eq!(read_all(&vault, &name).await.unwrap(), bytes);
            let listed = vault.list().await.unwrap();
            prop_assert_eq!(&listed[0].name, &name);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn gc_keeps_a_young_streamed_blob_and_removes_it_once_old() {
    // A blob that arrives ahead of its file's record (replication streams chunks
    // first) is recorded but unreferenced: GC must wait for the grace period.
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = open(src_dir.path(), SMALL_CHUNK).await;
    src.write_file("f", &data(3000, 1)[..], None).await.unwrap();
    let manifest = src.stat("f").await.unwrap();
    let blob = src.read_blob(manifest.chunks[0]).await.unwrap().unwrap();
    let dst = open(dst_dir.path(), SMALL_CHUNK).await;
    let blob = bytes::BytesMut::from(&blob[..]);
    assert!(dst.put_blob(manifest.chunks[0], blob).await.unwrap());
    let used = dst.usage().used_bytes;
    assert!(used > 0);

    let young = dst
        .collect_garbage(std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!((young.checked, young.orphaned, young.removed), (1, 1, 0));
    assert_eq!(dst.usage().used_bytes, used);

    let old = dst
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((old.orphaned, old.removed), (1, 1));
    assert_eq!(old.bytes_freed, used);
    assert_eq!(dst.usage().used_bytes, 0);
    assert!(chunk_files(dst_dir.path()).is_empty());
}

#[tokio::test]
async fn release_drops_a_copy_but_keeps_the_record_and_shared_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let shared = data(SMALL_CHUNK as usize, 9);
    let mut a = shared.clone();
    a.extend_from_slice(&data(5000, 10));
    vault.write_file("a", &a[..], None).await.unwrap();
    vault.write_file("b", &shared[..], None).await.unwrap();
    let freed = vault.release("a").await.unwrap();
    assert!(freed > 0);
    let a_manifest = vault.stat("a").await.unwrap();
    assert!(
        !vault.holds(&a_manifest).await.unwrap(),
        "a is no longer held"
    );
    assert_eq!(
        read_all(&vault, "b").await.unwrap(),
        shared,
        "b keeps its chunk"
    );
    assert_eq!(
        vault.list().await.unwrap().len(),
        2,
        "both are still listed"
    );
}

#[tokio::test]
async fn tombstones_are_collected_after_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    vault.write_file("gone", &b"x"[..], None).await.unwrap();
    vault.delete("gone").await.unwrap();
    let before = vault.catalogue_len();
    assert_eq!(
        vault.collect_tombstones().await.unwrap(),
        0,
        "default: 30 days"
    );
    vault.set_tombstone_retention(std::time::Duration::ZERO);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(vault.collect_tombstones().await.unwrap(), 1);
    assert_eq!(vault.catalogue_len(), before - 1);
    assert!(vault.stat("gone").await.is_err());
}

#[tokio::test]
async fn a_batch_of_peer_records_applies_in_one_go_and_a_bad_one_spoils_nothing() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(a_dir.path(), SMALL_CHUNK).await;
    for name in ["x", "y", "z"] {
        a.write_file(name, name.as_bytes(), None).await.unwrap();
    }
    let ids: Vec<_> = ["x", "y", "z"].iter().map(|n| a.name_id(n)).collect();
    let mut records = a.sealed_entries(ids.clone()).await.unwrap();
    records.insert(1, (ids[1], b"not a sealed record".to_vec()));
    let b = open(b_dir.path(), SMALL_CHUNK).await;
    let results = b.apply_sealed_many(records).await.unwrap();
    let ok: Vec<bool> = results
        .iter()
        .map(|r| r.as_ref().is_ok_and(|e| e.applied))
        .collect();
    assert_eq!(ok, [true, false, true, true]);
    let names: Vec<String> = b
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["x", "y", "z"]);
    assert_eq!(b.file_count(), 3);
    assert_eq!(b.summary(), a.summary(), "the sync index agrees");
}

#[tokio::test]
async fn partial_copies_are_files_held_in_part_whose_chunks_no_complete_file_uses() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let c = data(3 * SMALL_CHUNK as usize, 20);
    vault.write_file("c", &c[..], None).await.unwrap();
    // "d" is exactly c's first chunk.
    let d = &c[..SMALL_CHUNK as usize];
    vault.write_file("d", d, None).await.unwrap();
    let shared = data(SMALL_CHUNK as usize, 21);
    let mut a = shared.clone();
    a.extend_from_slice(&data(100, 22));
    vault.write_file("a", &a[..], None).await.unwrap();
    vault.write_file("b", &shared[..], None).await.unwrap();
    vault
        .write_file("e", &data(5000, 23)[..], None)
        .await
        .unwrap();
    for name in ["a", "c", "e"] {
        vault.release(name).await.unwrap();
    }
    // a keeps b's chunk and c keeps d's: sharing a chunk with a file held here
    // does not make either a copy; e holds nothing at all.
    assert!(vault.partial_copies().await.unwrap().is_empty());

    vault.delete("d").await.unwrap();
    let partial: Vec<(String, Vec<usize>)> = (vault.partial_copies().await.unwrap())
        .into_iter()
        .map(|(m, missing)| (m.name, missing))
        .collect();
    assert_eq!(partial, [("c".to_string(), vec![1, 2])]);
}
