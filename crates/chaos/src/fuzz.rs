//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs` call these), one per
//! decoder of bytes that come from the network or the disk. The corpus replay
//! test (`tests/fuzz_corpus.rs`) runs every stored input through the same
//! functions on every CI run, so a crash the fuzzer once found stays fixed.
//!
//! Each body takes arbitrary bytes; it may reject them, but must not panic,
//! hang, or allocate more than the input justifies.

use bytes::BytesMut;
use peervault::control::proto::{Frame, Request as ControlRequest, Response as ControlResponse};
use peervault_node::wire::{Request, Response, chunk_in_response};
use peervault_store::crypto::{ChunkCheck, Crypto, catalogue_context};
use peervault_store::{CatalogueEntry, ChunkId, KdfParams, KeySource, NameId, NetworkKey};

/// The body of one target.
pub type Target = fn(&[u8]);

/// Every target: its name (the corpus directory) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("catalogue_entry", catalogue_entry),
    ("sealed_record", sealed_record),
    ("chunk_blob", chunk_blob),
    ("control_frame", control_frame),
    ("pex_message", pex_message),
    ("channel_frames", channel_frames),
    ("channel_identity", channel_identity),
    ("quota_file", quota_file),
    ("channel_handshake", channel_handshake),
    ("kdf_params", kdf_params),
    ("join_code", join_code),
];

fn crypto() -> Crypto {
    let key = NetworkKey::from_bytes([0xab; 32], KeySource::Hex);
    Crypto::new(&key.store_keys())
}

/// A request from a peer (`/peervault/app/1`).
pub fn wire_request(data: &[u8]) {
    if let Ok(request) = Request::decode(data) {
        // What decodes must encode back to something that decodes the same.
        assert_eq!(Request::decode(&request.encode()).ok(), Some(request));
    }
}

/// An answer from a peer, including the zero-copy chunk path.
pub fn wire_response(data: &[u8]) {
    let _ = Response::decode(data);
    if let Some(range) = chunk_in_response(data) {
        assert!(range.end == data.len());
    }
}

/// A catalogue entry's plaintext (inside a sealed record on disk and on the wire).
pub fn catalogue_entry(data: &[u8]) {
    if let Ok(entry) = CatalogueEntry::decode(data) {
        let _ = entry.name();
        assert!(CatalogueEntry::decode(&entry.encode()).is_ok());
    }
}

/// A sealed record as stored in the metadata database or sent by a peer.
pub fn sealed_record(data: &[u8]) {
    let crypto = crypto();
    let name_id = NameId([3; 32]);
    if let Ok(plain) = crypto.open_record(&catalogue_context(&name_id), data) {
        let _ = CatalogueEntry::decode(&plain);
    }
}

/// A sealed chunk blob as read from disk or received from a peer.
pub fn chunk_blob(data: &[u8]) {
    let crypto = crypto();
    let mut blob = data.to_vec();
    let _ = crypto.open_chunk_in_place(&ChunkId([9; 32]), &mut blob, ChunkCheck::TagAndHash);
}

/// A frame on the control socket (a client's request, or a node's answer).
pub fn control_frame(data: &[u8]) {
    if let Ok(frame) = Frame::decode(BytesMut::from(data)) {
        let _ = frame.message::<ControlRequest>();
    }
    if let Ok(frame) = Frame::decode(BytesMut::from(data)) {
        let _ = frame.message::<ControlResponse>();
    }
}

/// A peer-exchange message.
pub fn pex_message(data: &[u8]) {
    assert!(peervault_net::fuzzing::pex_message(data) <= 20);
}

/// Bytes arriving on a private channel after the handshake.
pub fn channel_frames(data: &[u8]) {
    assert!(peervault_net::fuzzing::channel_frames(data) <= data.len());
}

/// The identity message of a channel handshake.
pub fn channel_identity(data: &[u8]) {
    let _ = peervault_net::fuzzing::channel_identity(data);
}

/// `.quota_config.json` as found in a data dir.
pub fn quota_file(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("peervault-fuzz-quota-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join(".quota_config.json"), data).is_ok()
    {
        let _ = peervault_node::QuotaConfig::load(&dir);
    }
}

/// The bytes a peer sends during a channel handshake, to either role.
pub fn channel_handshake(data: &[u8]) {
    let _ = peervault_net::fuzzing::channel_handshake(data);
}

/// Key-derivation parameters, as a bootstrap peer answers them or the data dir's
/// `kdf` file holds them.
pub fn kdf_params(data: &[u8]) {
    if let Ok(params) = KdfParams::from_text(&String::from_utf8_lossy(data)) {
        assert_eq!(KdfParams::from_text(&params.to_text()).ok(), Some(params));
    }
}

/// A join code or an invitation, as a user pastes it.
pub fn join_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(code) = peervault_node::JoinCode::parse(&text) {
        assert_eq!(
            peervault_node::JoinCode::parse(&code.to_text()).ok(),
            Some(code)
        );
    }
    use peervault_node::invitations::InvitationCode;
    if let Ok(code) = InvitationCode::parse(&text) {
        let again = InvitationCode::parse(&code.to_text()).ok();
        assert_eq!(
            again.map(|c| (c.id(), c.psk())),
            Some((code.id(), code.psk()))
        );
    }
}
