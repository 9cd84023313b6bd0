//! The messages nodes exchange (protocol `/peervault/app/1`).
//!
//! Encoded with postcard behind a one-byte protocol version. Records travel sealed,
//! exactly as stored (see `Catalogue::sealed_entries`), and chunks travel as sealed
//! blobs: the network layer's own encryption is a second envelope, not the only one.
//! Decoding rejects unknown versions and anything postcard cannot read; it never
//! panics and never allocates more than the message it is given (the network layer
//! caps message size before reading).

use peervault_store::index::BucketDigest;
use peervault_store::{ChunkId, NameId, ShardSet, Version};
use serde::{Deserialize, Serialize};

const WIRE_VERSION: u8 = 1;

/// Entries asked for or sent in one message.
pub const ENTRIES_PER_MESSAGE: usize = 512;

/// A sealed catalogue record and the name id it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEntry {
    pub name_id: NameId,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A request from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// "Here are my bucket digests": answered with my versions in the buckets that differ.
    Summary { digests: Vec<BucketDigest> },
    /// "Send me these records."
    FetchEntries { ids: Vec<NameId> },
    /// "Here are records you may lack or hold older versions of."
    Announce { entries: Vec<SealedEntry> },
    /// "Hold a copy of this file": the record first, then the chunks you ask for.
    Offer { entry: SealedEntry },
    /// One sealed chunk for you to keep.
    PutChunk {
        id: ChunkId,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
    },
    /// "Send me this sealed chunk."
    GetChunk { id: ChunkId },
    /// "Which of these versions do you hold completely?"
    Holdings { files: Vec<(NameId, Version)> },
    /// "How full are you, and what do you hold?" (the vault view, `/api/cluster`)
    Info,
    /// "Send me these versions" (current or kept in history): the sync's fetch.
    /// `FetchEntries` (current records by name id) is still answered for nodes
    /// that predate history.
    FetchRecords { records: Vec<(NameId, Version)> },
    /// "Here are the key epochs I hold, sealed to your identity key" (see
    /// [`crate::epochs`]): answered with `Ack` once they are kept.
    Grant {
        #[serde(with = "serde_bytes")]
        sealed: Vec<u8>,
    },
    /// "Hold these shards of this coded file": the record first, then the
    /// shards you ask for (an `Offer` for erasure-coded files).
    OfferShards {
        entry: SealedEntry,
        shards: ShardSet,
    },
}

/// A node's own figures, as the vault view shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub files_held: u64,
    pub version: String,
}

/// Whether a node holds a file version completely, and why (see
/// [`crate::extras`]). Encoded as postcard encodes `false`/`true` for the first
/// two, as the `Vec<bool>` this answer used to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holding {
    No,
    /// A copy the file's placement put here.
    Copy,
    /// A copy a user asked for (`fetch`): it never makes a regular one surplus.
    Extra,
    /// Of an erasure-coded file: these shards of every chunk.
    Shards(ShardSet),
}

/// Why a node would not take a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Not enough quota for the chunks it lacks.
    Quota { needed: u64, available: u64 },
    /// The version offered is past the retention of old versions: not kept.
    Superseded,
    /// The data failed verification.
    Invalid(String),
    /// Anything else, in words.
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Quota { needed, available } => {
                write!(f, "quota full (needs {needed} bytes, {available} free)")
            }
            Refusal::Superseded => {
                f.write_str("that version is past the retention of old versions")
            }
            Refusal::Invalid(why) => write!(f, "the data failed verification: {why}"),
            Refusal::Other(why) => f.write_str(why),
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The buckets that differ from your summary, and my versions in them.
    Versions {
        buckets: Vec<u8>,
        versions: Vec<(NameId, Version)>,
        /// When the answering node first synced with the vault (Unix ms; 0 = never).
        member_since_ms: u64,
        /// The answering node is re-syncing after a long absence: its catalogue is
        /// not to be trusted yet (it answers with no versions).
        resyncing: bool,
    },
    Entries {
        entries: Vec<SealedEntry>,
    },
    Ack,
    /// I will hold the file; send me these chunks.
    Want {
        missing: Vec<ChunkId>,
    },
    Refused(Refusal),
    Stored,
    Chunk {
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
    },
    Missing,
    Held {
        held: Vec<Holding>,
    },
    /// The request could not be handled (in words).
    Error(String),
    Info(NodeInfo),
}

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message of protocol version {0}, this node speaks {WIRE_VERSION}")]
    Version(u8),
    #[error("undecodable message: {0}")]
    Postcard(#[from] postcard::Error),
}

/// Appends the encoding of `message` to `out`, whose capacity should fit it: a
/// message with a blob is then written in one pass, with no regrowth (each
/// regrowth copied the whole message so far).
fn encode_into<T: Serialize>(message: &T, mut out: Vec<u8>) -> Vec<u8> {
    out.push(WIRE_VERSION);
    // Serialising our own message types into a Vec cannot fail.
    postcard::to_extend(message, out).unwrap_or_default()
}

/// Room for a message's header beside its blob.
const HEADER_ROOM: usize = 64;

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    Ok(postcard::from_bytes(body)?)
}

/// Position of `PutChunk` among [`Request`]'s variants (postcard encodes the index).
const PUT_CHUNK_VARIANT: u32 = 4;

/// `PutChunk` over borrowed bytes: the same encoding as [`Request::PutChunk`]
/// without first copying the blob into a request.
struct PutChunkRef<'a> {
    id: &'a ChunkId,
    blob: &'a [u8],
}

impl Serialize for PutChunkRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        let mut variant =
            serializer.serialize_struct_variant("Request", PUT_CHUNK_VARIANT, "PutChunk", 2)?;
        variant.serialize_field("id", self.id)?;
        variant.serialize_field("blob", serde_bytes::Bytes::new(self.blob))?;
        variant.end()
    }
}

/// Position of `Chunk` among [`Response`]'s variants.
const CHUNK_VARIANT: u8 = 6;

/// The start of an encoded `Response::Chunk` carrying `blob_len` bytes: the blob
/// itself follows (so a holder reads it from disk straight into the message).
pub fn chunk_response_prefix(blob_len: usize) -> Vec<u8> {
    // The blob's length, as postcard writes that of any byte string (into a Vec,
    // which cannot fail).
    let header = vec![WIRE_VERSION, CHUNK_VARIANT];
    postcard::to_extend(&(blob_len as u64), header).unwrap_or_default()
}

/// Where the blob lies in `message` if it is an encoded `Response::Chunk` (so a
/// reader can take it without copying); `None` for any other message.
pub fn chunk_in_response(message: &[u8]) -> Option<std::ops::Range<usize>> {
    let [WIRE_VERSION, CHUNK_VARIANT, rest @ ..] = message else {
        return None;
    };
    let (len, blob) = postcard::take_from_bytes::<u64>(rest).ok()?;
    let start = message.len() - blob.len();
    (usize::try_from(len).ok()? == blob.len()).then_some(start..message.len())
}

/// The encoded `PutChunk` request for a blob, made once and sent to every holder.
pub fn encode_put_chunk(id: &ChunkId, blob: &[u8]) -> Vec<u8> {
    encode_into(
        &PutChunkRef { id, blob },
        Vec::with_capacity(blob.len() + HEADER_ROOM),
    )
}

/// The `range` of `message` as a buffer of its own, without copying when
/// `message` has no other owner (a message as it arrived).
pub(crate) fn take_range(message: bytes::Bytes, range: std::ops::Range<usize>) -> bytes::BytesMut {
    let part = message.slice(range);
    drop(message);
    part.try_into_mut()
        .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]))
}

/// The chunk id and where the blob lies in `message` if it is an encoded
/// `Request::PutChunk` (so a holder can check and store it without copying it out
/// of the message); `None` for any other message.
pub fn put_chunk_in_request(message: &[u8]) -> Option<(ChunkId, std::ops::Range<usize>)> {
    let [WIRE_VERSION, rest @ ..] = message else {
        return None;
    };
    let (variant, rest) = postcard::take_from_bytes::<u32>(rest).ok()?;
    if variant != PUT_CHUNK_VARIANT {
        return None;
    }
    let (id, rest) = postcard::take_from_bytes::<ChunkId>(rest).ok()?;
    let (blob, rest) = postcard::take_from_bytes::<&[u8]>(rest).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let start = message.len() - blob.len();
    Some((id, start..message.len()))
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let room = match self {
            Request::PutChunk { blob, .. } => blob.len() + HEADER_ROOM,
            _ => 0,
        };
        encode_into(self, Vec::with_capacity(room))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode(bytes)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let room = match self {
            Response::Chunk { blob } => blob.len() + HEADER_ROOM,
            _ => 0,
        };
        encode_into(self, Vec::with_capacity(room))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode(bytes)
    }
}

/// What the responder made of a request that may be a chunk request (see
/// `service::Responder::answer_chunk_request`).
pub(crate) enum ChunkAnswer {
    /// A chunk request (`GetChunk`, `PutChunk`), answered: the encoded answer.
    Answered(bytes::Bytes),
    /// Another request, decoded, for the responder's general answer.
    Other(Request),
    /// Not a request this node understands.
    Undecodable(WireError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use peervault_store::OriginId;
    use proptest::prelude::*;

    #[test]
    fn chunk_responses_can_be_built_and_read_without_copying_the_blob() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 1 << 20] {
            let blob: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let encoded = Response::Chunk { blob: blob.clone() }.encode();
            let mut built = chunk_response_prefix(len);
            built.extend_from_slice(&blob);
            assert_eq!(built, encoded, "blob of {len} bytes");
            let range = chunk_in_response(&encoded).unwrap();
            assert_eq!(&encoded[range], &blob[..]);
        }
        assert_eq!(chunk_in_response(&Response::Missing.encode()), None);
        assert_eq!(chunk_in_response(&[]), None);
        let mut short = chunk_response_prefix(10);
        short.extend_from_slice(&[0; 9]);
        assert_eq!(chunk_in_response(&short), None, "a blob shorter than said");
        assert_eq!(
            chunk_in_response(&[WIRE_VERSION, CHUNK_VARIANT, 0xff, 0xff]),
            None
        );
    }

    proptest! {
        #[test]
        fn chunk_in_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = chunk_in_response(&bytes);
            let mut tagged = vec![WIRE_VERSION, CHUNK_VARIANT];
            tagged.extend_from_slice(&bytes);
            if let Some(range) = chunk_in_response(&tagged) {
                prop_assert!(range.end == tagged.len());
            }
        }
    }

    #[test]
    fn only_a_whole_put_chunk_is_taken_for_one() {
        let other = Request::GetChunk {
            id: ChunkId([1; 32]),
        }
        .encode();
        assert_eq!(put_chunk_in_request(&other), None);
        let mut put = encode_put_chunk(&ChunkId([2; 32]), &[5; 300]);
        put.push(0);
        assert_eq!(put_chunk_in_request(&put), None, "a trailing byte");
        put.truncate(put.len() - 2);
        assert_eq!(put_chunk_in_request(&put), None, "a blob shorter than said");
        assert_eq!(put_chunk_in_request(&[]), None);
    }

    proptest! {
        #[test]
        fn put_chunk_in_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = put_chunk_in_request(&bytes);
            let mut tagged = vec![WIRE_VERSION, PUT_CHUNK_VARIANT as u8];
            tagged.extend_from_slice(&bytes);
            if let Some((_, range)) = put_chunk_in_request(&tagged) {
                prop_assert!(range.end == tagged.len());
            }
        }
    }

    #[test]
    fn a_borrowed_put_chunk_encodes_exactly_as_the_request() {
        for len in [0usize, 1, 127, 128, 70_000] {
            let id = ChunkId([len as u8; 32]);
            let blob: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let owned = Request::PutChunk {
                id,
                blob: blob.clone(),
            }
            .encode();
            assert_eq!(encode_put_chunk(&id, &blob), owned, "blob of {len} bytes");
            let (found, range) = put_chunk_in_request(&owned).unwrap();
            assert_eq!((found, &owned[range]), (id, &blob[..]));
            assert_eq!(
                Request::decode(&owned).unwrap(),
                Request::PutChunk { id, blob }
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let version = Version {
            clock: 42,
            origin: OriginId([3; 16]),
        };
        let requests = vec![
            Request::Summary {
                digests: vec![[1; 16]; 256],
            },
            Request::FetchEntries {
                ids: vec![NameId([2; 32])],
            },
            Request::PutChunk {
                id: ChunkId([5; 32]),
                blob: vec![9; 1000],
            },
            Request::Holdings {
                files: vec![(NameId([4; 32]), version)],
            },
            Request::Info,
            Request::FetchRecords {
                records: vec![(NameId([6; 32]), version)],
            },
        ];
        for r in requests {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        let responses = vec![
            Response::Versions {
                buckets: vec![1],
                versions: vec![(NameId([1; 32]), version)],
                member_since_ms: 7,
                resyncing: false,
            },
            Response::Refused(Refusal::Quota {
                needed: 10,
                available: 3,
            }),
            Response::Chunk {
                blob: vec![1, 2, 3],
            },
            Response::Held {
                held: vec![Holding::Copy, Holding::No, Holding::Extra],
            },
            Response::Info(NodeInfo {
                used_bytes: 5,
                quota_bytes: 10,
                files_held: 2,
                version: "0.1.0".into(),
            }),
        ];
        for r in responses {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn holdings_read_as_the_booleans_they_were() {
        let now = postcard::to_allocvec(&vec![Holding::No, Holding::Copy]).unwrap();
        assert_eq!(now, postcard::to_allocvec(&vec![false, true]).unwrap());
        let before: Vec<Holding> = postcard::from_bytes(&[2, 1, 0]).unwrap();
        assert_eq!(before, [Holding::Copy, Holding::No]);
    }

    #[test]
    fn blobs_are_encoded_as_bytes_not_as_sequences() {
        let r = Request::PutChunk {
            id: ChunkId([0; 32]),
            blob: vec![0xff; 1 << 20],
        };
        assert!(r.encode().len() < (1 << 20) + 64);
    }

    #[test]
    fn other_versions_and_garbage_are_errors() {
        assert!(matches!(Request::decode(&[]), Err(WireError::Empty)));
        assert!(matches!(
            Request::decode(&[2, 0]),
            Err(WireError::Version(2))
        ));
        assert!(Request::decode(&[1, 0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }
}
