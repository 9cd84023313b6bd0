//! Storing, listing, reading and deleting real files through the CLI.

use std::time::Duration;

use crate::harness::{
    TestNode, blob_bytes_on_disk, files_under, flip_byte, hash_file, segment_files, stderr, stdout,
    write_random_file,
};

const CHUNK: u64 = 1024 * 1024;

fn ls_json(node: &TestNode) -> Vec<serde_json::Value> {
    serde_json::from_str(&node.ok(&["ls", "--json"])).unwrap()
}

#[test]
fn get_makes_missing_folders_and_replaces_a_file_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let input = dir.path().join("b.txt");
    std::fs::write(&input, "new contents\n").unwrap();
    node.ok(&["put", input.to_str().unwrap()]);

    // Folders that do not exist yet are made.
    let nested = dir.path().join("out/sub/b.txt");
    node.ok(&["get", "b.txt", "-o", nested.to_str().unwrap()]);
    assert_eq!(std::fs::read(&nested).unwrap(), b"new contents\n");

    // An existing file is kept, with the way to replace it, and no partial file.
    let existing = dir.path().join("mine.txt");
    std::fs::write(&existing, "mine").unwrap();
    let refused = node.cli(&["get", "b.txt", "-o", existing.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("exists; add --force to replace it"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"mine");
    // Through a symlink too: the file it leads to is what would be replaced.
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&existing, &link).unwrap();
    assert!(
        !node
            .cli(&["get", "b.txt", link.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"mine");
    // With --force it is replaced.
    node.ok(&["get", "b.txt", "-o", existing.to_str().unwrap(), "--force"]);
    assert_eq!(std::fs::read(&existing).unwrap(), b"new contents\n");

    // A missing name says so before anything about the destination, and a
    // failed read leaves no folders behind.
    let missing = node.cli(&["get", "nothing.txt", "-o", existing.to_str().unwrap()]);
    assert!(
        stderr(&missing).contains("no file named"),
        "{}",
        stderr(&missing)
    );
    let never = dir.path().join("never/made/x.txt");
    assert!(
        !node
            .cli(&["get", "nothing.txt", never.to_str().unwrap()])
            .status
            .success()
    );
    assert!(!dir.path().join("never").exists());
    // A file in the way of a folder is an error that names it.
    let blocked = node.cli(&["get", "b.txt", "-o", existing.join("x").to_str().unwrap()]);
    assert!(!blocked.status.success());
    assert!(stderr(&blocked).contains("cannot"), "{}", stderr(&blocked));
    assert_eq!(std::fs::read(&existing).unwrap(), b"new contents\n");
}

#[test]
fn put_ls_get_rm_restart_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345];
    let mut hashes = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("file-{size}.bin"));
        hashes.push(write_random_file(&path, *size, i as u64));
        let out = node.ok(&["put", path.to_str().unwrap()]);
        assert!(out.contains("stored successfully"), "{out}");
    }
    let listed = ls_json(&node);
    assert_eq!(listed.len(), sizes.len());
    for entry in &listed {
        let name = entry["name"].as_str().unwrap();
        let size = entry["size"].as_u64().unwrap();
        let i = sizes.iter().position(|s| *s == size).unwrap();
        assert_eq!(name, format!("file-{size}.bin"));
        assert_eq!(entry["hash"].as_str().unwrap(), hashes[i].to_hex().as_str());
    }
    // Every size comes back byte-identical, to a file and to stdout.
    for (i, size) in sizes.iter().enumerate() {
        let out = dir.path().join(format!("out-{size}"));
        node.ok(&[
            "get",
            &format!("file-{size}.bin"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(hash_file(&out), hashes[i], "size {size}");
    }
    let piped = node.cli(&["get", "file-1.bin"]);
    assert!(piped.status.success());
    assert_eq!(blake3::hash(&piped.stdout), hashes[1]);

    node.ok(&["rm", "file-1.bin", "--yes"]);
    assert_eq!(ls_json(&node).len(), sizes.len() - 1);
    node.stop();

    let node = TestNode::start(&data);
    let listed = ls_json(&node);
    assert_eq!(listed.len(), sizes.len() - 1);
    assert!(listed.iter().all(|e| e["name"] != "file-1.bin"));
    let out = dir.path().join("after-restart");
    let big = format!("file-{}.bin", 3 * CHUNK + 12_345);
    node.ok(&["get", &big, "-o", out.to_str().unwrap()]);
    assert_eq!(hash_file(&out), hashes[5]);
    let missing = node.cli(&["get", "file-1.bin"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no file named"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_large_file_round_trips_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let input = dir.path().join("large.bin");
    let hash = write_random_file(&input, 200 * CHUNK + 7, 42);
    node.ok(&["put", input.to_str().unwrap(), "--name", "large"]);
    std::fs::remove_file(&input).unwrap();
    let output = dir.path().join("large.out");
    node.ok(&["get", "large", "-o", output.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&output).unwrap().len(), 200 * CHUNK + 7);
    assert_eq!(hash_file(&output), hash);
    let verify = node.ok(&["verify", "large"]);
    assert!(verify.contains("OK"), "{verify}");
}

#[test]
fn standard_input_can_be_stored() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let out = node.cli_with_input(&["put", "-", "--name", "from-stdin"], b"piped bytes");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(node.cli(&["get", "from-stdin"]).stdout, b"piped bytes");
    let out = node.cli_with_input(&["put", "-"], b"x");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--name"));
}

#[test]
fn plaintext_never_reaches_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    let marker = b"DISTINCTIVE-PLAINTEXT-PATTERN-7f3a9c";
    let input = dir.path().join("marked.txt");
    let body: Vec<u8> = marker
        .iter()
        .copied()
        .cycle()
        .take(3 * CHUNK as usize)
        .collect();
    std::fs::write(&input, &body).unwrap();
    let name = "SECRET-FILE-NAME-MARKER.txt";
    node.ok(&["put", input.to_str().unwrap(), "--name", name]);
    node.stop();
    for path in files_under(&data) {
        let contents = std::fs::read(&path).unwrap();
        for needle in [&marker[..], name.as_bytes()] {
            assert!(
                !contents.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                path.display()
            );
        }
    }
}

#[test]
fn a_corrupted_chunk_fails_get_writes_no_wrong_bytes_and_verify_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start(&data);
    let input = dir.path().join("precious.bin");
    let hash = write_random_file(&input, 3 * CHUNK, 9);
    node.ok(&["put", input.to_str().unwrap()]);
    assert!(
        node.ok(&["verify"])
            .contains("All 1 file held here verified")
    );

    // Flip one byte a third of the way into the blobs: a fresh node appends
    // the blobs of one put to one segment file, one after another.
    let segments = segment_files(&data);
    assert_eq!(segments.len(), 1);
    let victim = &segments[0];
    let slot = std::fs::metadata(victim).unwrap().len() / 3;
    flip_byte(victim, slot + 1000, 0x40);

    let dest = dir.path().join("restored.bin");
    std::fs::write(&dest, b"previous contents").unwrap();
    let out = node.cli(&[
        "get",
        "precious.bin",
        "-o",
        dest.to_str().unwrap(),
        "--force",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("integrity check failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        b"previous contents",
        "destination untouched"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        4,
        "no partial file left beside the destination"
    );

    // To stdout: only verified bytes (a correct prefix) come out, and the exit code says failure.
    let piped = node.cli(&["get", "precious.bin"]);
    assert!(!piped.status.success());
    let original = std::fs::read(&input).unwrap();
    assert!(
        original.starts_with(&piped.stdout),
        "stdout holds only verified bytes"
    );
    assert!(piped.stdout.len() < original.len());
    // The same into a redirected standard output, which the node writes itself.
    let redirected = dir.path().join("redirected.bin");
    let got = node.cli_into(
        &["get", "precious.bin"],
        std::fs::File::create(&redirected).unwrap(),
    );
    assert!(!got.status.success());
    assert!(
        stderr(&got).contains("integrity check failed"),
        "{}",
        stderr(&got)
    );
    let prefix = std::fs::read(&redirected).unwrap();
    assert!(original.starts_with(&prefix), "only verified bytes");
    assert!(prefix.len() < original.len());
    std::fs::remove_file(&redirected).unwrap();

    let verify = node.cli(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(stdout(&verify).contains("DAMAGED"), "{}", stdout(&verify));
    let json: serde_json::Value =
        serde_json::from_slice(&node.cli(&["verify", "--json"]).stdout).unwrap();
    let damaged = &json[0]["damaged"];
    assert_eq!(damaged.as_array().unwrap().len(), 1, "{json}");
    // The blob that holds the flipped byte, wherever the chunker cut.
    let flipped = slot + 1000;
    let at = damaged[0]["offset"].as_u64().unwrap();
    assert!(at <= flipped && flipped - at <= CHUNK + 64, "{json}");
    assert_eq!(damaged[0]["segment"].as_str(), victim.to_str());
    assert!(
        stdout(&verify).contains(&format!("at byte {at} of {}", victim.display())),
        "{}",
        stdout(&verify)
    );
    assert_ne!(hash, blake3::hash(b""));
}

#[test]
fn hostile_names_stay_inside_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let sentinel = dir.path().join("sentinel.txt");
    std::fs::write(&sentinel, b"sentinel").unwrap();
    let node = TestNode::start(&data);
    let input = dir.path().join("payload.txt");
    std::fs::write(&input, b"payload").unwrap();

    let absolute = sentinel.to_str().unwrap().to_string();
    let names = [
        absolute.clone(),
        "../sentinel.txt".to_string(),
        "../../sentinel.txt".to_string(),
        "a/../../sentinel.txt".to_string(),
        "./././sentinel.txt".to_string(),
        "名前 with spaces/ünïcode ✓".to_string(),
        "n".repeat(4096),
    ];
    for name in &names {
        node.ok(&["put", input.to_str().unwrap(), "--name", name]);
        let out = node.cli(&["get", name]);
        assert!(out.status.success(), "{name:?}: {}", stderr(&out));
        assert_eq!(out.stdout, b"payload");
    }
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"sentinel");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&node.ok(&["ls", "--json"])).unwrap();
    assert_eq!(listed.len(), names.len());

    for (name, words) in [
        ("", "empty"),
        (&*"x".repeat(10_000), "limit is 4096"),
        ("tab\there", "control character"),
    ] {
        let out = node.cli(&["put", input.to_str().unwrap(), "--name", name]);
        assert!(!out.status.success(), "{name:?} accepted");
        assert!(stderr(&out).contains(words), "{name:?}: {}", stderr(&out));
    }
    for name in &names {
        node.ok(&["rm", name, "--yes"]);
    }
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"sentinel");
    let top: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 4, "nothing new beside the data dir: {top:?}");
}

#[test]
fn quota_refuses_a_file_that_does_not_fit_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("node"),
        crate::harness::TEST_KEY,
        &["--quota", "10MB"],
    );
    let small = dir.path().join("small.bin");
    let small_hash = write_random_file(&small, 2 * CHUNK, 1);
    node.ok(&["put", small.to_str().unwrap()]);
    let big = dir.path().join("big.bin");
    write_random_file(&big, 20 * CHUNK, 2);
    let out = node.cli(&["put", big.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not enough storage quota") && err.contains("needs"),
        "{err}"
    );
    let back = dir.path().join("small.out");
    node.ok(&["get", "small.bin", "-o", back.to_str().unwrap()]);
    assert_eq!(hash_file(&back), small_hash);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&node.ok(&["ls", "--json"])).unwrap();
    assert_eq!(listed.len(), 1);

    // `quota` shows and changes it live; the change is saved.
    let q: serde_json::Value = serde_json::from_str(&node.ok(&["quota", "--json"])).unwrap();
    assert_eq!(q["total_bytes"], 10u64 << 20);
    assert!(q["used_bytes"].as_u64().unwrap() > 2 * CHUNK);
    let out = node.ok(&["quota", "set", "64MB"]);
    assert!(out.contains("Quota set to 64.00 MB"), "{out}");
    assert!(out.contains("=== Storage Quota ==="), "{out}");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("node/.quota_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["max_storage_bytes"], 64u64 << 20);
    node.ok(&["put", big.to_str().unwrap()]);
    let bad = node.cli(&["quota", "set", "lots"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("not a size"), "{}", stderr(&bad));
}

#[test]
fn gc_on_a_lone_node_reports_damage_it_cannot_repair() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"));
    let input = dir.path().join("f.bin");
    write_random_file(&input, 3 * CHUNK, 5);
    node.ok(&["put", input.to_str().unwrap()]);
    let healthy = node.ok(&["gc"]);
    assert!(
        healthy.starts_with("Garbage collection completed in ")
            && healthy.contains(": 0 corrupted, 0 orphaned, 0 removed"),
        "{healthy}"
    );
    // The first block of the first chunk's blob, garbled.
    let segment = &segment_files(&dir.path().join("node"))[0];
    for at in 0..7 {
        flip_byte(segment, at, 0xa5);
    }
    let out = node.cli(&["gc", "--json"]);
    assert!(!out.status.success(), "unrepaired damage fails the command");
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["corrupted"], 1);
    assert_eq!(summary["repaired"], 0);
    assert!(node.log().contains("Garbage collection completed in"));
    let verify = node.cli(&["verify"]);
    assert!(!verify.status.success());
}

#[test]
fn the_gc_worker_runs_by_itself_after_its_delay_and_then_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = TestNode::start_with(
        &data,
        crate::harness::TEST_KEY,
        &[
            "--gc-delay",
            "2s",
            "--gc-interval",
            "1s",
            "--gc-grace",
            "1s",
        ],
    );
    let input = dir.path().join("kept.bin");
    let hash = write_random_file(&input, 2 * CHUNK + 5, 6);
    node.ok(&["put", input.to_str().unwrap()]);
    // Blobs nobody recorded (what a crash mid-write leaves) in a segment file of
    // their own, as the first write after the restart would have started one.
    let segments = segment_files(&data);
    assert_eq!(segments.len(), 1);
    let held = blob_bytes_on_disk(&data);
    let orphan = data.join("segments/00000000000000ff.seg");
    std::fs::copy(&segments[0], &orphan).unwrap();
    let runs = |node: &TestNode| {
        let m: serde_json::Value = serde_json::from_str(&node.ok(&["metrics", "--json"])).unwrap();
        m["gc"]["runs"].as_u64().unwrap()
    };
    assert_eq!(runs(&node), 0, "no run before the delay");
    crate::harness::eventually(
        "the first run removes the orphan",
        Duration::from_secs(20),
        || !orphan.exists(),
    );
    assert!(
        node.log().contains(": 0 corrupted, 1 orphaned, 1 removed"),
        "{}",
        node.log()
    );
    crate::harness::eventually(
        "further runs every interval",
        Duration::from_secs(20),
        || runs(&node) >= 3,
    );
    // Nothing a live file uses was touched.
    assert_eq!(segment_files(&data), segments);
    assert_eq!(blob_bytes_on_disk(&data), held);
    let copy = dir.path().join("copy.bin");
    node.ok(&["get", "kept.bin", "-o", copy.to_str().unwrap()]);
    assert_eq!(hash_file(&copy), hash);
}

/// Regression: `ls` on a vault of about 30,000 files or more failed ("the node
/// closed the connection without answering"): the whole listing was one frame,
/// over the control socket's frame limit. Listings now come in batches.
#[test]
fn a_listing_of_many_batches_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("n"),
        crate::harness::TEST_KEY,
        &["--replicas", "1"],
    );
    let client = peervault::control::client::Client::new(&node.data_dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    const FILES: usize = 2_500;
    runtime.block_on(async {
        use futures::StreamExt;
        let puts = futures::stream::iter(0..FILES).map(|i| {
            let client = &client;
            async move {
                let body = format!("file {i}");
                client
                    .put(
                        &format!("many-{i:05}"),
                        Some(body.len() as u64),
                        body.as_bytes(),
                        &mut |_| {},
                    )
                    .await
                    .unwrap();
            }
        });
        puts.buffer_unordered(16).collect::<Vec<()>>().await;
    });
    let listed = ls_json(&node);
    assert_eq!(listed.len(), FILES);
    let names: Vec<&str> = listed.iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    assert_eq!(names[0], "many-00000");
    assert_eq!(names[FILES - 1], format!("many-{:05}", FILES - 1));
}

/// `get` into a regular file hands the file to the node, which writes the bytes
/// itself (the control protocol's `GetInto`): at the file's own offset, only
/// verified bytes, and never into a pipe or terminal, which are streamed to.
#[test]
fn the_node_writes_a_get_into_the_clients_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        &dir.path().join("n"),
        crate::harness::TEST_KEY,
        &["--replicas", "1"],
    );
    let input = dir.path().join("in.bin");
    let hash = write_random_file(&input, 3 * 1024 * 1024 + 77, 9);
    node.ok(&["put", input.to_str().unwrap(), "--name", "x.bin"]);

    // `get x.bin >> out`: the bytes land after what the file already held.
    let out = dir.path().join("out.bin");
    std::fs::write(&out, b"kept: ").unwrap();
    let append = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    let got = node.cli_into(&["get", "x.bin"], append);
    assert!(got.status.success(), "{}", stderr(&got));
    let written = std::fs::read(&out).unwrap();
    assert_eq!(&written[..6], b"kept: ");
    assert_eq!(blake3::hash(&written[6..]), hash);

    // Through the library: a pipe is refused with a reason; a file gets progress.
    let client = peervault::control::client::Client::new(&node.data_dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use std::os::fd::AsFd;
        let (_read, write) = std::io::pipe().unwrap();
        let refused = client
            .get_into("x.bin", write.as_fd(), &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("not a regular file"),
            "{refused}"
        );
        let file = std::fs::File::create(dir.path().join("lib.bin")).unwrap();
        let mut seen = Vec::new();
        let info = client
            .get_into("x.bin", file.as_fd(), &mut |done, _| seen.push(done))
            .await
            .unwrap();
        assert_eq!(seen.last(), Some(&info.size));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        // At an aligned offset (whole blocks bypass the page cache there) the bytes
        // follow what the file held, and the file's offset is left behind them, as
        // plain writes leave it: what the client writes next comes after.
        use std::io::Write;
        let mut file = std::fs::File::create(dir.path().join("mid.bin")).unwrap();
        file.write_all(&[b'<'; 8192]).unwrap();
        client
            .get_into("x.bin", file.as_fd(), &mut |_, _| {})
            .await
            .unwrap();
        file.write_all(b">").unwrap();
        let mid = std::fs::read(dir.path().join("mid.bin")).unwrap();
        assert_eq!(mid.len(), 8192 + 3 * 1024 * 1024 + 77 + 1);
        assert!(mid[..8192].iter().all(|b| *b == b'<'));
        assert_eq!(blake3::hash(&mid[8192..mid.len() - 1]), hash);
        assert_eq!(mid.last(), Some(&b'>'));
        let missing = client
            .get_into("nothing.bin", file.as_fd(), &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("no file named"), "{missing}");
    });
    assert_eq!(hash_file(&dir.path().join("lib.bin")), hash);
    // The node is unharmed by all of it.
    node.ok(&[
        "get",
        "x.bin",
        "-o",
        dir.path().join("again.bin").to_str().unwrap(),
    ]);
}
