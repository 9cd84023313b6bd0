//! Disk faults on a real node: a full disk, a read-only data dir, a damaged
//! metadata database. They need root (to mount a small tmpfs inside the test's
//! own temp dir); under `CI=true` (which runs as root) not being root fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{TEST_KEY, TestNode, hash_file, http_get, stderr, write_random_file};

const MIB: u64 = 1024 * 1024;

/// A tmpfs of `size` mounted at `at`, unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            let msg = "not root: cannot mount a small tmpfs for the disk-fault tests";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs at {}", at.display());
        Some(Tmpfs {
            at: at.to_path_buf(),
        })
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

#[test]
fn a_full_disk_refuses_the_write_clearly_keeps_what_was_stored_and_degrades_health() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "12m") else {
        return;
    };
    let data = disk.at.join("node");
    // A quota far above what the disk holds: the disk fills first.
    let node = TestNode::start_with(
        &data,
        TEST_KEY,
        &["--quota", "1GB", "-metrics", "127.0.0.1:0"],
    );
    let small = dir.path().join("small.bin");
    let small_hash = write_random_file(&small, 3 * MIB, 1);
    node.ok(&["put", small.to_str().unwrap()]);
    let big = dir.path().join("big.bin");
    write_random_file(&big, 20 * MIB, 2);
    let out = node.cli(&["put", big.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the disk holding the data dir is full"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // What was stored is intact, and the failed write left nothing behind.
    let copy = dir.path().join("copy.bin");
    node.ok(&["get", "small.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), small_hash);
    assert_eq!(node.ls().len(), 1);
    // Three blobs of 1 MiB (and a few bytes) in slots of whole 4 KiB blocks.
    assert_eq!(crate::harness::blob_bytes_on_disk(&data), 3 * (MIB + 4096));
    let (code, body) = http_get(&format!("{}/health", node.metrics_url()));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("disk error"), "{body}");
    // Space freed, writes work again.
    node.ok(&["rm", "small.bin", "--yes"]);
    let fits = dir.path().join("fits.bin");
    write_random_file(&fits, 6 * MIB, 3);
    node.ok(&["put", fits.to_str().unwrap()]);
}

#[test]
fn a_read_only_data_dir_is_refused_at_start_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "16m") else {
        return;
    };
    // The data dir is the mount itself, so that the node's log (beside it) is not.
    let data = disk.at.clone();
    let node = TestNode::start(&data);
    let input = dir.path().join("kept.txt");
    std::fs::write(&input, b"written before the disk went read-only").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);
    node.stop();
    disk.remount("ro");
    let mut again = TestNode::spawn(&data, TEST_KEY, &[]);
    assert!(!again.wait_exit(Duration::from_secs(20)).success());
    let log = again.log();
    assert!(log.contains("read-only file system"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    disk.remount("rw");
    let back = TestNode::start(&data);
    assert_eq!(
        back.ok(&["get", "kept.txt"]),
        "written before the disk went read-only"
    );
}

#[test]
fn a_damaged_metadata_database_is_refused_with_advice_and_nothing_panics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    let input = dir.path().join("f.bin");
    write_random_file(&input, 2 * MIB, 4);
    node.ok(&["put", input.to_str().unwrap()]);
    node.stop();
    let blobs = crate::harness::blob_bytes_on_disk(&data);
    assert!(blobs > 2 * MIB);
    let meta = data.join("meta.redb");
    let original = std::fs::read(&meta).unwrap();
    for (what, damaged) in [
        ("truncated", original[..original.len() / 3].to_vec()),
        ("overwritten", {
            let mut bytes = original.clone();
            for b in bytes.iter_mut().take(4096) {
                *b ^= 0xa5;
            }
            bytes
        }),
        ("emptied", Vec::new()),
    ] {
        std::fs::write(&meta, &damaged).unwrap();
        let mut node = TestNode::spawn(&data, TEST_KEY, &[]);
        let status = node.wait_exit(Duration::from_secs(30));
        let log = node.log();
        assert!(!status.success(), "{what}: the node started on it:\n{log}");
        assert!(!log.contains("panicked"), "{what}: {log}");
        assert!(
            log.contains("meta.redb") && log.contains("move it aside"),
            "{what}: {log}"
        );
        // Refusing touched no chunk.
        assert_eq!(crate::harness::blob_bytes_on_disk(&data), blobs);
    }
    // The advice works: with the file moved aside the node starts, with an empty
    // catalogue to rebuild from peers, and keeps the chunk blobs for it.
    std::fs::rename(&meta, data.join("meta.redb.damaged")).unwrap();
    let fresh = TestNode::start(&data);
    assert!(fresh.ls().is_empty());
    assert_eq!(crate::harness::blob_bytes_on_disk(&data), blobs);
    assert!(
        fresh.log().contains("the catalogue is rebuilt from peers"),
        "{}",
        fresh.log()
    );
}
