//! Behaviour of the vault through its public API: round trips, durability across
//! reopen, encryption at rest, integrity, names, keys, quota and clean-up.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use futures::StreamExt;
use peervault_store::crypto::CHUNK_OVERHEAD;
use peervault_store::segments::SLOT_ALIGN;
use peervault_store::{
    CatalogueEntry, ChunkProblem, FileReader, MemoryBudget, NetworkKey, OriginId, Retention,
    StoreError, Vault, VaultConfig, Version, stored_size_of,
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
        // Fixed offsets: these tests place and damage chunks by offset. The
        // content-defined chunker has its own tests below.
        content_defined_chunks: false,
        capacity_bytes: 1 << 40,
        // Most of these tests watch space come back at once; the versions kept
        // by default have tests of their own below.
        retention: Retention::NONE,
        budget: MemoryBudget::new(peervault_store::budget::DEFAULT_TRANSFER_MEMORY),
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
    drain(vault.read_file(name).await?).await
}

/// Every byte a read yields, or its first error.
async fn drain(mut reader: FileReader) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], at).unwrap();
    file.sync_all().unwrap();
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

/// Bytes of blob data in the segment files: whole blocks, punched holes excluded.
fn blob_bytes_on_disk(dir: &Path) -> u64 {
    files_under(&dir.join("segments"))
        .iter()
        .map(|p| peervault_store::segments::data_bytes(p).unwrap())
        .sum()
}

/// Bytes a slot for a chunk of `plain` bytes occupies in its segment.
fn slot_bytes(plain: u64) -> u64 {
    let blob = plain + CHUNK_OVERHEAD as u64;
    blob.div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// Bytes the slots of a file of `size` bytes occupy.
fn slots_of_file(size: u64, chunk: u32) -> u64 {
    let chunk = chunk as u64;
    let full = size / chunk;
    let tail = match size % chunk {
        0 => 0,
        rest => slot_bytes(rest),
    };
    full * slot_bytes(chunk) + tail
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
    assert_eq!(
        blob_bytes_on_disk(dir.path()),
        slots_of_file(bytes.len() as u64, SMALL_CHUNK)
    );
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
    assert_eq!(
        blob_bytes_on_disk(dir.path()),
        slot_bytes(SMALL_CHUNK as u64)
    );
    // Deleting one user of the chunk keeps it for the other.
    vault.delete("a", false).await.unwrap();
    assert_eq!(read_all(&vault, "b").await.unwrap(), block);
    let freed = vault.delete("b", false).await.unwrap().freed_bytes;
    assert_eq!(freed, first.stored_bytes);
    assert_eq!(vault.usage().used_bytes, 0);
    assert_eq!(blob_bytes_on_disk(dir.path()), 0);
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
    assert_eq!(
        blob_bytes_on_disk(dir.path()),
        slot_bytes(SMALL_CHUNK as u64)
    );
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
        vault.delete("x", false).await.unwrap();
        assert_eq!(vault.file_count(), 1, "a tombstone is not a file");
        assert!(matches!(
            vault.delete("x", false).await,
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
    let victim = vault
        .blob_location(out.manifest.chunks[2])
        .await
        .unwrap()
        .unwrap();
    flip_byte(&victim.path, victim.offset + 100);

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
    assert_eq!(report.damaged[0].index, 2);
    assert_eq!(report.damaged[0].location, Some(victim.clone()));
    // The segment gone altogether: every chunk is missing.
    std::fs::remove_file(&victim.path).unwrap();
    let all = vault.verify_all().await.unwrap();
    assert_eq!(all[0].damaged.len(), 4);
    assert!(
        all[0]
            .damaged
            .iter()
            .all(|d| d.problem == ChunkProblem::Missing)
    );
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
        vault.delete(name, false).await.unwrap();
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
    cfg.key = NetworkKey::generate().unwrap();
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
    // The way that needs no restart.
    assert!(err.to_string().contains("quota set SIZE"), "{err}");
    assert_eq!(vault.usage().reserved_bytes, 0);
    assert_eq!(
        blob_bytes_on_disk(dir.path()),
        2 * slot_bytes(SMALL_CHUNK as u64)
    );
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
    assert_eq!(blob_bytes_on_disk(dir.path()), 0);
    assert_eq!(vault.usage().used_bytes, 0);
}

#[tokio::test]
async fn sweep_removes_unrecorded_files_but_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let bytes = data(3 * SMALL_CHUNK as usize, 10);
    vault.write_file("live", &bytes[..], None).await.unwrap();
    // Debris of an interrupted write: a segment file with nothing recorded.
    let stray = dir.path().join("segments/00000000000000ff.seg");
    std::fs::write(&stray, data(3 * SLOT_ALIGN as usize, 11)).unwrap();
    let report = vault.sweep().await.unwrap();
    assert_eq!(report.unrecorded_removed, 1);
    assert_eq!(report.unreferenced_removed, 0);
    assert_eq!(report.bytes_freed, 3 * SLOT_ALIGN);
    assert!(!stray.exists());
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
                    vault.delete(&name, false).await.unwrap();
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
    assert_eq!(blob_bytes_on_disk(dst_dir.path()), 0);
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
    let (_, freed) = vault.release("a").await.unwrap();
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
    vault.delete("gone", false).await.unwrap();
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

    vault.delete("d", false).await.unwrap();
    let partial: Vec<(String, Vec<usize>)> = (vault.partial_copies().await.unwrap())
        .into_iter()
        .map(|(m, missing)| (m.name, missing))
        .collect();
    assert_eq!(partial, [("c".to_string(), vec![1, 2])]);
}

/// Turns a vault written by this version back into format 1 (a file per blob
/// under `chunks/`, lengths in a `chunks` table), as an earlier version left it.
fn downgrade_to_format_1(dir: &Path) {
    use peervault_store::segments::Slot;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const BLOBS: TableDefinition<[u8; 32], [u8; Slot::ENCODED_LEN]> = TableDefinition::new("blobs");
    const CHUNKS: TableDefinition<[u8; 32], u64> = TableDefinition::new("chunks");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let db = redb::Database::open(dir.join("meta.redb")).unwrap();
    let slots: Vec<([u8; 32], Slot)> = {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(BLOBS).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| {
                let (k, v) = row.unwrap();
                (k.value(), Slot::decode(&v.value()))
            })
            .collect()
    };
    let txn = db.begin_write().unwrap();
    {
        let mut blobs = txn.open_table(BLOBS).unwrap();
        let mut chunks = txn.open_table(CHUNKS).unwrap();
        for (id, slot) in &slots {
            let segment = dir.join(format!("segments/{:016x}.seg", slot.segment));
            let mut blob = vec![0u8; slot.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(
                &std::fs::File::open(segment).unwrap(),
                &mut blob,
                slot.offset,
            )
            .unwrap();
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let shard = dir.join("chunks").join(&hex[..2]);
            std::fs::create_dir_all(&shard).unwrap();
            std::fs::write(shard.join(&hex), &blob).unwrap();
            blobs.remove(id).unwrap();
            chunks.insert(id, slot.len as u64).unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .insert("format", 1u32.to_le_bytes().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
    std::fs::remove_dir_all(dir.join("segments")).unwrap();
}

#[tokio::test]
async fn a_format_1_vault_moves_its_chunk_files_into_segments_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| data(5 * SMALL_CHUNK as usize + 7 * i, 20 + i as u64))
        .collect();
    let used = {
        let vault = open(dir.path(), SMALL_CHUNK).await;
        for (i, bytes) in files.iter().enumerate() {
            vault
                .write_file(&format!("f{i}"), &bytes[..], None)
                .await
                .unwrap();
        }
        vault.usage().used_bytes
    };
    downgrade_to_format_1(dir.path());
    // What an earlier version could leave besides: a temporary file and a blob
    // file nothing records.
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp/half.tmp"), b"half").unwrap();
    std::fs::create_dir_all(dir.path().join("chunks/ee")).unwrap();
    std::fs::write(dir.path().join("chunks/ee").join("ee".repeat(32)), b"x").unwrap();

    let vault = open(dir.path(), SMALL_CHUNK).await;
    assert_eq!(vault.usage().used_bytes, used);
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(read_all(&vault, &format!("f{i}")).await.unwrap(), *bytes);
    }
    assert!(vault.verify_all().await.unwrap().iter().all(|r| r.is_ok()));
    assert!(!dir.path().join("chunks").exists());
    assert!(!dir.path().join("tmp").exists());
    let expected: u64 = files
        .iter()
        .map(|f| slots_of_file(f.len() as u64, SMALL_CHUNK))
        .sum();
    assert_eq!(blob_bytes_on_disk(dir.path()), expected);
    // Nothing left for the start-up sweep, and the move is not done twice.
    assert_eq!(vault.sweep().await.unwrap(), Default::default());
    drop(vault);
    let vault = open(dir.path(), SMALL_CHUNK).await;
    assert_eq!(vault.usage().used_bytes, used);
    assert_eq!(blob_bytes_on_disk(dir.path()), expected);
}

#[tokio::test]
async fn a_format_1_blob_file_that_is_gone_or_damaged_is_dropped_and_the_rest_moves() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 * SMALL_CHUNK as usize, 30);
    let manifest = {
        let vault = open(dir.path(), SMALL_CHUNK).await;
        vault
            .write_file("f", &bytes[..], None)
            .await
            .unwrap()
            .manifest
    };
    downgrade_to_format_1(dir.path());
    let path_of = |i: usize| {
        let hex = manifest.chunks[i].to_hex();
        dir.path().join("chunks").join(&hex[..2]).join(hex)
    };
    std::fs::remove_file(path_of(0)).unwrap();
    // Larger than any blob can be: damage, not data.
    std::fs::File::options()
        .write(true)
        .open(path_of(1))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();

    let vault = open(dir.path(), SMALL_CHUNK).await;
    let report = vault.verify_file("f").await.unwrap();
    let damaged: Vec<(usize, ChunkProblem)> = report
        .damaged
        .iter()
        .map(|d| (d.index, d.problem))
        .collect();
    assert_eq!(
        damaged,
        [(0, ChunkProblem::Missing), (1, ChunkProblem::Missing)]
    );
    // Only the one good blob counts, and the damaged file is kept aside.
    assert_eq!(
        vault.usage().used_bytes,
        (SMALL_CHUNK as usize + CHUNK_OVERHEAD) as u64
    );
    assert_eq!(files_under(&dir.path().join("quarantine")).len(), 1);
    assert!(!dir.path().join("chunks").exists());
}

#[tokio::test]
async fn without_direct_io_blobs_go_through_the_page_cache() {
    // tmpfs refuses O_DIRECT; the segments fall back to plain reads and writes.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm (tmpfs) on this machine");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let bytes = data(7 * SMALL_CHUNK as usize + 3, 40);
    vault.write_file("f", &bytes[..], None).await.unwrap();
    assert_eq!(read_all(&vault, "f").await.unwrap(), bytes);
    assert!(vault.verify_file("f").await.unwrap().is_ok());
    vault.delete("f", false).await.unwrap();
    assert_eq!(blob_bytes_on_disk(dir.path()), 0);
}

#[tokio::test]
async fn content_defined_chunks_share_what_an_insertion_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 64 * 1024);
    cfg.content_defined_chunks = true;
    let vault = Vault::open(cfg).await.unwrap();
    let mut bytes = vec![0u8; 4 << 20];
    let mut x: u64 = 7;
    for b in bytes.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 33) as u8;
    }
    let first = vault.write_file("f", &bytes[..], None).await.unwrap();
    assert!(!first.manifest.lengths.is_empty());
    assert!(
        first
            .manifest
            .lengths
            .iter()
            .all(|l| *l >= 16 * 1024 && *l <= 64 * 1024)
    );
    let old: std::collections::HashSet<_> = first.manifest.chunks.iter().copied().collect();
    bytes.splice(2 << 20..2 << 20, std::iter::repeat_n(0xAB, 100));
    let second = vault.write_file("f", &bytes[..], None).await.unwrap();
    let new: Vec<_> = second
        .manifest
        .chunks
        .iter()
        .filter(|id| !old.contains(id))
        .collect();
    assert!(
        new.len() <= 3,
        "{} new chunks for a 100-byte insertion",
        new.len()
    );
    // It reads back whole, across the cut lengths.
    let mut reader = vault.read_file("f").await.unwrap();
    let mut back = Vec::new();
    while let Some(piece) = futures::StreamExt::next(&mut reader).await {
        back.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(back, bytes);
}

async fn open_keeping(dir: &Path, origin: u8, retention: Retention) -> Vault {
    let mut config = config(dir, SMALL_CHUNK);
    config.origin = OriginId([origin; 16]);
    config.retention = retention;
    Vault::open(config).await.unwrap()
}

async fn read_version(vault: &Vault, name: &str, version: Version) -> Vec<u8> {
    let reader = vault
        .read_version_with(name, Some(version), None)
        .await
        .unwrap();
    drain(reader).await.unwrap()
}

fn versions_of(entries: &[CatalogueEntry]) -> Vec<(Version, bool)> {
    entries
        .iter()
        .map(|e| (e.version(), e.as_file().is_none()))
        .collect()
}

#[tokio::test]
async fn overwrites_and_deletes_keep_versions_that_read_back_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_keeping(dir.path(), 7, Retention::default()).await;
    let contents: Vec<Vec<u8>> = (0..3)
        .map(|i| data(2 * SMALL_CHUNK as usize, 60 + i))
        .collect();
    for content in &contents {
        vault.write_file("doc", &content[..], None).await.unwrap();
    }
    let versions = vault.versions("doc").await.unwrap();
    assert_eq!(versions.len(), 3);
    assert!(
        versions.windows(2).all(|w| w[0].version() > w[1].version()),
        "newest first"
    );
    for (entry, content) in versions.iter().zip(contents.iter().rev()) {
        assert_eq!(&read_version(&vault, "doc", entry.version()).await, content);
    }
    assert_eq!(vault.superseded_count(), 2);
    let history = vault.history_bytes().await.unwrap();
    assert_eq!(
        history,
        2 * 2 * stored_size_of(SMALL_CHUNK as u64, SMALL_CHUNK)
    );

    // A delete frees nothing while its versions are kept, and can be undone.
    let used = vault.usage().used_bytes;
    assert_eq!(vault.delete("doc", false).await.unwrap().freed_bytes, 0);
    assert_eq!(vault.usage().used_bytes, used);
    let versions = vault.versions("doc").await.unwrap();
    assert!(
        versions[0].as_file().is_none(),
        "the delete is the newest version"
    );
    let newest = versions[1].version();
    let back = vault.revive("doc", newest).await.unwrap();
    assert!(back.version > versions[0].version());
    assert_eq!(read_all(&vault, "doc").await.unwrap(), contents[2]);
    assert_eq!(vault.versions("doc").await.unwrap().len(), 5);
    assert_eq!(vault.usage().used_bytes, used, "nothing was stored twice");
    let deletion = vault.revive("doc", versions[0].version()).await;
    assert!(matches!(deletion, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn versions_past_the_retention_go_and_free_their_space_and_then_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_keeping(dir.path(), 7, Retention::default()).await;
    for i in 0..3 {
        let content = data(SMALL_CHUNK as usize, 70 + i);
        vault.write_file("doc", &content[..], None).await.unwrap();
    }
    let all = vault.versions("doc").await.unwrap();
    let one = stored_size_of(SMALL_CHUNK as u64, SMALL_CHUNK);
    assert_eq!(vault.usage().used_bytes, 3 * one);
    vault.set_retention(Retention {
        keep_versions: 1,
        keep_for: std::time::Duration::ZERO,
    });
    vault.collect_tombstones().await.unwrap();
    let kept = vault.versions("doc").await.unwrap();
    assert_eq!(
        versions_of(&kept),
        versions_of(&all[..2]),
        "the oldest went"
    );
    assert_eq!(vault.usage().used_bytes, 2 * one, "and its space came back");

    // Deleted: the versions go by time only, and the tombstone stays until they have.
    vault.set_retention(Retention {
        keep_versions: 1,
        keep_for: std::time::Duration::from_secs(3600),
    });
    vault.delete("doc", false).await.unwrap();
    vault.set_tombstone_retention(std::time::Duration::ZERO);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        vault.collect_tombstones().await.unwrap(),
        0,
        "versions still kept"
    );
    assert_eq!(vault.versions("doc").await.unwrap().len(), 3);
    vault.set_retention(Retention::NONE);
    assert_eq!(vault.collect_tombstones().await.unwrap(), 1);
    assert!(vault.versions("doc").await.is_err());
    assert_eq!(vault.usage().used_bytes, 0);
    assert_eq!(vault.catalogue_len(), 0);
}

#[tokio::test]
async fn concurrent_writes_end_with_the_same_history_on_both_vaults() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_keeping(a_dir.path(), 1, Retention::default()).await;
    let b = open_keeping(b_dir.path(), 2, Retention::default()).await;
    a.write_file("doc", &b"from a, first"[..], None)
        .await
        .unwrap();
    b.write_file("doc", &b"from b"[..], None).await.unwrap();
    a.write_file("doc", &b"from a, second"[..], None)
        .await
        .unwrap();
    let id = a.name_id("doc");
    // Each offers the other every record it holds, in whatever order.
    for (from, to) in [(&a, &b), (&b, &a)] {
        let wanted: Vec<(_, Version)> = versions_of(&from.versions("doc").await.unwrap())
            .into_iter()
            .map(|(v, _)| (id, v))
            .collect();
        let records = from.sealed_records(wanted).await.unwrap();
        for result in to.apply_sealed_many(records).await.unwrap() {
            result.unwrap();
        }
    }
    let (on_a, on_b) = (
        a.versions("doc").await.unwrap(),
        b.versions("doc").await.unwrap(),
    );
    assert_eq!(versions_of(&on_a), versions_of(&on_b));
    assert_eq!(on_a.len(), 3);
    assert_eq!(a.summary(), b.summary(), "the sync index agrees");
    assert_eq!(
        a.version_of(&id),
        b.version_of(&id),
        "and the same current version"
    );
    // Offering a record again changes nothing.
    let again = a
        .sealed_records(vec![(id, on_a[2].version())])
        .await
        .unwrap();
    let result = b
        .apply_sealed_many(again)
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    assert!(!result.applied);
}

/// Sends every record `from` keeps of `names` (current and history) to `to`.
async fn offer_all(from: &Vault, to: &Vault, names: &[&str]) {
    let mut wanted = Vec::new();
    for name in names {
        let id = from.name_id(name);
        if let Ok(versions) = from.versions(name).await {
            wanted.extend(versions.iter().map(|e| (id, e.version())));
        }
    }
    let records = from.sealed_records(wanted).await.unwrap();
    for result in to.apply_sealed_many(records).await.unwrap() {
        result.unwrap();
    }
}

#[tokio::test]
async fn any_interleaving_of_writes_deletes_purges_and_exchanges_converges() {
    const NAMES: [&str; 2] = ["a", "b"];
    let mut longest = 0;
    for seed in 1..=12u64 {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut vaults = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            vaults.push(open_keeping(dir.path(), i as u8 + 1, Retention::default()).await);
        }
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for step in 0..24u64 {
            let v = &vaults[next(3) as usize];
            let name = NAMES[next(2) as usize];
            match next(10) {
                0..=4 => {
                    let content = format!("{seed}-{step}");
                    v.write_file(name, content.as_bytes(), None).await.unwrap();
                }
                5 | 6 => {
                    let _ = v.delete(name, false).await;
                }
                7 => {
                    let _ = v.delete(name, true).await;
                }
                _ => {
                    let to = &vaults[next(3) as usize];
                    offer_all(v, to, &NAMES).await;
                }
            }
        }
        // Everyone tells everyone everything, twice over.
        for _ in 0..2 {
            for from in &vaults {
                for to in &vaults {
                    offer_all(from, to, &NAMES).await;
                }
            }
        }
        for name in NAMES {
            let histories: Vec<_> =
                futures::future::join_all(vaults.iter().map(|v| v.versions(name)))
                    .await
                    .into_iter()
                    .map(|r| r.map(|e| versions_of(&e)).unwrap_or_default())
                    .collect();
            assert_eq!(histories[0], histories[1], "seed {seed}, {name}");
            assert_eq!(histories[1], histories[2], "seed {seed}, {name}");
            longest = longest.max(histories[0].len());
        }
        assert_eq!(vaults[0].summary(), vaults[1].summary(), "seed {seed}");
        assert_eq!(vaults[1].summary(), vaults[2].summary(), "seed {seed}");
    }
    assert!(
        longest >= 4,
        "the runs made little history ({longest}): the test proves little"
    );
}

async fn read_range(vault: &Vault, name: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let reader = vault
        .read_range_with(name, None, Some(range), None)
        .await
        .unwrap();
    drain(reader).await.unwrap()
}

#[tokio::test]
async fn a_range_read_returns_exactly_those_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let size = 5 * SMALL_CHUNK as usize + 123;
    let bytes = data(size, 11);
    vault.write_file("r", &bytes[..], None).await.unwrap();
    let c = SMALL_CHUNK as u64;
    let size = size as u64;
    for (start, end) in [
        (0, size),
        (0, 1),
        (1, 2),
        (c - 1, c + 1),
        (c, 2 * c),
        (c + 7, 4 * c + 9),
        (size - 1, size),
        (size - 200, size + 500),
        (3, 3),
        (size, size + 10),
    ] {
        let want = &bytes[(start.min(size) as usize)..(end.min(size) as usize)];
        assert_eq!(
            read_range(&vault, "r", start..end).await,
            want,
            "{start}..{end}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn range_reads_match_the_slice_with_content_defined_chunks(
        size in 0usize..40_000,
        a in 0u64..45_000,
        b in 0u64..45_000,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut config = config(dir.path(), SMALL_CHUNK);
            config.content_defined_chunks = true;
            let vault = Vault::open(config).await.unwrap();
            let bytes = data(size, 5);
            vault.write_file("p", &bytes[..], None).await.unwrap();
            let (start, end) = (a.min(b), a.max(b));
            let s = (start as usize).min(size);
            let e = (end as usize).min(size);
            prop_assert_eq!(read_range(&vault, "p", start..end).await, bytes[s..e].to_vec());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn compose_joins_parts_without_copying_and_keeps_meta() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let parts = [
        data(3 * SMALL_CHUNK as usize + 5, 1),
        data(17, 2),
        data(2 * SMALL_CHUNK as usize, 3),
    ];
    let mut manifests = Vec::new();
    let mut whole = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let out = vault
            .write_file(&format!("part{i}"), &part[..], None)
            .await
            .unwrap();
        manifests.push(out.manifest);
        whole.extend_from_slice(part);
    }
    let used = vault.usage().used_bytes;
    let meta = peervault_store::FileMeta {
        object: Some(Box::new(peervault_store::ObjectMeta {
            etag: "abc-3".into(),
            content_type: Some("application/octet-stream".into()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let hash = *blake3::hash(&whole).as_bytes();
    let out = vault
        .compose("whole", manifests, hash, meta.clone())
        .await
        .unwrap();
    assert_eq!(out.manifest.size, whole.len() as u64);
    assert_eq!(vault.usage().used_bytes, used, "no new blob");
    for i in 0..3 {
        vault.delete(&format!("part{i}"), true).await.unwrap();
    }
    vault
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read_all(&vault, "whole").await.unwrap(), whole);
    let stat = vault.stat("whole").await.unwrap();
    assert_eq!(stat.meta, meta);
    assert_eq!(stat.hash, hash);
    let c = SMALL_CHUNK as u64;
    assert_eq!(
        read_range(&vault, "whole", 3 * c..3 * c + 20).await,
        whole[3 * c as usize..3 * c as usize + 20]
    );
    // Reopened, the composed manifest (lengths of mixed chunks) still decodes.
    drop(vault);
    let vault = open(dir.path(), SMALL_CHUNK).await;
    assert_eq!(read_all(&vault, "whole").await.unwrap(), whole);
}

#[tokio::test]
async fn a_failing_finish_abandons_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    vault.write_file("keep", &b"old"[..], None).await.unwrap();
    let bytes = data(10 * SMALL_CHUNK as usize, 9);
    let err = vault
        .write_file_finishing(
            "keep",
            Box::new(|| Err(std::io::Error::other("digest mismatch"))),
            &bytes[..],
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(read_all(&vault, "keep").await.unwrap(), b"old");
    vault
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(vault.usage().used_bytes < 2 * SMALL_CHUNK as u64 + 1024);
}

/// Many writes and reads at once through a budget of a few chunks: each
/// waits for buffers (none fails, none deadlocks), every byte comes back,
/// and every byte lent is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_wait_for_a_small_budget_and_all_finish() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(8 << 20);
    let mut config = config(dir.path(), peervault_store::DEFAULT_CHUNK_SIZE);
    config.content_defined_chunks = true;
    config.budget = budget.clone();
    let vault = std::sync::Arc::new(Vault::open(config).await.unwrap());
    const FILES: u64 = 12;
    const LEN: usize = 5 << 20;
    for i in 0..FILES {
        let name = format!("old/{i}");
        vault
            .write_file(&name, &data(LEN, i)[..], None)
            .await
            .unwrap();
    }
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..FILES {
        let writer = vault.clone();
        jobs.spawn(async move {
            let vault = writer;
            let name = format!("new/{i}");
            let bytes = data(LEN, 100 + i);
            vault.write_file(&name, &bytes[..], None).await.unwrap();
            assert_eq!(
                drain(vault.read_file(&name).await.unwrap()).await.unwrap(),
                bytes
            );
        });
        let reader = vault.clone();
        jobs.spawn(async move {
            let vault = reader;
            let back = drain(vault.read_file(&format!("old/{i}")).await.unwrap()).await;
            assert_eq!(back.unwrap(), data(LEN, i));
        });
    }
    let all = async {
        while let Some(job) = jobs.join_next().await {
            job.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("every transfer finishes (none waits forever)");
    assert!(
        budget.waits() > 0,
        "the budget was spent and transfers waited"
    );
    assert_eq!(budget.in_use(), 0, "every lease came back");
}

/// More read streams at once than tokio has blocking threads (512), through a
/// budget of a few chunks: streams waiting for the budget must not hold every
/// thread while those holding the budget wait for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_reads_at_once_than_blocking_threads_all_finish() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(64 * 1024);
    let mut config = config(dir.path(), SMALL_CHUNK);
    config.budget = budget.clone();
    let vault = std::sync::Arc::new(Vault::open(config).await.unwrap());
    const FILES: u64 = 8;
    for i in 0..FILES {
        let bytes = data(8 * SMALL_CHUNK as usize, i);
        vault
            .write_file(&format!("f{i}"), &bytes[..], None)
            .await
            .unwrap();
    }
    let mut readers = Vec::new();
    for n in 0..700u64 {
        readers.push(vault.read_file(&format!("f{}", n % FILES)).await.unwrap());
    }
    let all = futures::future::join_all(readers.into_iter().enumerate().map(
        |(n, reader)| async move {
            let back = drain(reader).await.unwrap();
            assert_eq!(back, data(8 * SMALL_CHUNK as usize, n as u64 % FILES));
        },
    ));
    tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("every read finishes");
    assert_eq!(budget.in_use(), 0);
}

/// Many copies at once (a read feeding a write, as S3's UploadPartCopy does)
/// through a budget of a few chunks: the copies' reads are paid for by their
/// writes, so they never hold chunks their own writes wait for buffers to
/// take, and they all finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_through_a_small_budget_all_finish() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(64 * 1024);
    let mut config = config(dir.path(), SMALL_CHUNK);
    config.budget = budget.clone();
    let vault = Vault::open(config).await.unwrap();
    let vault = &vault;
    let bytes = data(40 * SMALL_CHUNK as usize, 5);
    vault.write_file("source", &bytes[..], None).await.unwrap();
    let all = futures::future::join_all((0..40).map(|i| async move {
        let reader = vault
            .read_range_paying(
                "source",
                None,
                None,
                None,
                peervault_store::Paying::TheWriteItFeeds,
            )
            .await
            .unwrap();
        let stream = reader.map(|piece| piece.map_err(std::io::Error::other));
        let copy = tokio_util::io::StreamReader::new(stream);
        vault
            .write_file(&format!("copy{i}"), copy, None)
            .await
            .unwrap();
    }));
    tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("every copy finishes");
    for i in 0..40 {
        let back = drain(vault.read_file(&format!("copy{i}")).await.unwrap()).await;
        assert_eq!(back.unwrap(), bytes);
    }
    assert_eq!(budget.in_use(), 0);
}

#[tokio::test]
async fn rekey_moves_every_chunk_to_the_current_epoch_and_reads_stay_identical() {
    use peervault_store::EpochKey;
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path(), SMALL_CHUNK).await;
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("f{i}"), data(10_000 + i * 3_001, i as u64)))
        .collect();
    for (name, bytes) in &files {
        vault.write_file(name, &bytes[..], None).await.unwrap();
    }
    let used = vault.usage().used_bytes;
    let on_disk = blob_bytes_on_disk(dir.path());
    let chunks = vault.epoch_census().await.unwrap();
    assert_eq!(chunks.older, 0);
    assert!(chunks.current > 10);
    // A new epoch: new writes are sealed in it, old chunks are not yet.
    let one = EpochKey::generate(1).unwrap();
    vault.set_epochs(std::slice::from_ref(&one));
    let census = vault.epoch_census().await.unwrap();
    assert_eq!((census.current, census.older), (0, chunks.current));
    vault
        .write_file("new", &data(9_000, 99)[..], None)
        .await
        .unwrap();
    // A read holds some chunks while the pass runs: those are left for the
    // next pass, and the read still gets its bytes.
    let held = vault.read_file("f0").await.unwrap();
    let mut after = None;
    let mut resealed = 0;
    let mut deferred = 0;
    loop {
        let batch = vault.reseal_after(after, 5).await.unwrap();
        resealed += batch.resealed;
        deferred += batch.deferred;
        assert_eq!(batch.damaged, 0);
        match batch.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(drain(held).await.unwrap(), files[0].1);
    assert!(deferred > 0, "the read's chunks waited");
    // A second pass takes what the read held.
    let mut after = None;
    loop {
        let batch = vault.reseal_after(after, 64).await.unwrap();
        resealed += batch.resealed;
        assert_eq!(batch.deferred, 0);
        match batch.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(resealed as u64, chunks.current);
    let census = vault.epoch_census().await.unwrap();
    assert_eq!(census.older, 0, "no chunk left in the old epoch");
    // Same usage, the old slots given back, every file byte-identical, also
    // after reopening.
    assert_eq!(
        vault.usage().used_bytes,
        used + stored_size_of(9_000, SMALL_CHUNK)
    );
    assert!(
        blob_bytes_on_disk(dir.path())
            <= on_disk + slots_of_file(9_000, SMALL_CHUNK) + 64 * SLOT_ALIGN
    );
    for (name, bytes) in &files {
        assert_eq!(&read_all(&vault, name).await.unwrap(), bytes);
    }
    drop(vault);
    let vault = open(dir.path(), SMALL_CHUNK).await;
    // Without epoch 1's key nothing opens now.
    let e = read_all(&vault, "f3").await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Integrity {
                problem: ChunkProblem::UnknownEpoch,
                ..
            }
        ),
        "{e}"
    );
    vault.set_epochs(&[one]);
    for (name, bytes) in &files {
        assert_eq!(&read_all(&vault, name).await.unwrap(), bytes);
    }
    assert!(vault.verify_all().await.unwrap().iter().all(|r| r.is_ok()));
}

/// The sync index is updated just after each commit, so a reader can see it a
/// write behind: a version just written must still be found while other
/// writes of the same name supersede it (two nodes writing one name at once
/// once lost a version that way: "that version is no longer kept").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_just_written_is_found_while_other_writes_supersede_it() {
    let dir = tempfile::tempdir().unwrap();
    let vault = std::sync::Arc::new(open_keeping(dir.path(), 1, Retention::default()).await);
    let id = vault.name_id("doc");
    let mut writers = Vec::new();
    for writer in 0..4 {
        let vault = vault.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..150 {
                let text = format!("writer {writer}, write {i}");
                let out = vault
                    .write_file("doc", text.as_bytes(), None)
                    .await
                    .unwrap();
                let version = out.manifest.version;
                let found = vault.sealed_record(id, version).await.unwrap();
                assert!(
                    found.is_some(),
                    "write {i} of writer {writer} was not found"
                );
                let held = vault.holds_versions(vec![(id, version)]).await.unwrap();
                assert_ne!(
                    held[0],
                    peervault_store::Held::Nothing,
                    "write {i} of {writer}"
                );
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
}
