//! Replays every stored fuzz input (`fuzz/corpus/<target>/`) through its target,
//! so that what the fuzzer found once stays fixed. `PEERVAULT_WRITE_SEEDS=1`
//! writes the hand-made seed inputs (valid messages of each kind) first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use peervault_chaos::fuzz::TARGETS;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// Valid inputs of each kind, for the fuzzer to start from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    use peervault::control::proto::{Request as Control, message_frame};
    use peervault_node::wire::{Request, Response, SealedEntry, chunk_response_prefix};
    use peervault_store::{ChunkId, NameId};
    let id = ChunkId([1; 32]);
    match target {
        "wire_request" => vec![
            Request::GetChunk { id }.encode(),
            Request::PutChunk {
                id,
                blob: vec![5; 40],
            }
            .encode(),
            Request::FetchEntries {
                ids: vec![NameId([2; 32])],
            }
            .encode(),
            Request::Offer {
                entry: SealedEntry {
                    name_id: NameId([2; 32]),
                    sealed: vec![9; 60],
                },
            }
            .encode(),
            Request::Summary {
                digests: Vec::new(),
            }
            .encode(),
        ],
        "wire_response" => vec![
            Response::Ack.encode(),
            Response::Missing.encode(),
            Response::Want { missing: vec![id] }.encode(),
            [chunk_response_prefix(3), vec![1, 2, 3]].concat(),
        ],
        "control_frame" => vec![
            message_frame(&Control::List)[4..].to_vec(),
            message_frame(&Control::Put {
                name: "a".into(),
                size: Some(3),
                meta: Default::default(),
                redundancy: Some("4+2".into()),
            })[4..]
                .to_vec(),
            b"Dsome data".to_vec(),
            b"E".to_vec(),
        ],
        "quota_file" => vec![
            br#"{"max_storage_bytes": 1073741824, "storage_root": "/tmp/x"}"#.to_vec(),
            br#"{"max_storage_bytes": -1}"#.to_vec(),
        ],
        "kdf_params" => vec![
            peervault_store::KdfParams::legacy().to_text().into_bytes(),
            peervault_store::KdfParams::generate()
                .unwrap()
                .to_text()
                .into_bytes(),
            b"$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHRzYWx0".to_vec(),
        ],
        "join_code" => vec![
            peervault_node::JoinCode::new(
                &peervault_store::NetworkKey::generate().unwrap(),
                vec!["/ip4/192.0.2.1/tcp/3000".parse().unwrap()],
            )
            .to_text()
            .into_bytes(),
        ],
        "channel_handshake" => vec![
            // An empty first message (a parameters question), a message 1 of the
            // right length, and a refusal.
            vec![0, 0],
            [&[0u8, 48][..], &[0x42; 48]].concat(),
            [&[0u8, 96][..], &[0x17; 96]].concat(),
        ],
        _ => vec![vec![0u8; 64], (0..=255u8).collect()],
    }
}

#[test]
fn every_stored_fuzz_input_still_passes() {
    let write = std::env::var_os("PEERVAULT_WRITE_SEEDS").is_some();
    let mut replayed = 0;
    for (name, body) in TARGETS {
        let dir = corpus().join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds(name).into_iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is part of the repo)", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            body(&bytes);
            replayed += 1;
        }
    }
    eprintln!(
        "replayed {replayed} fuzz inputs over {} targets",
        TARGETS.len()
    );
}
