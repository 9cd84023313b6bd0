//! The control protocol between client commands and the local node.
//!
//! A connection carries one request. Every frame is length-delimited (4-byte big
//! endian length, at most [`MAX_FRAME_BYTES`]) and starts with a tag byte:
//!
//! | tag | frame                                   |
//! |-----|-----------------------------------------|
//! | `J` | a JSON [`Request`] or [`Response`]       |
//! | `D` | raw file bytes                          |
//! | `E` | end of file bytes (client to node only) |
//!
//! ```text
//! put:   client J(Put) D* E        node J(Stored | Error)   (Error may come early)
//! get:   client J(Get)             node J(File) D* J(Done | Error)
//! get into a file:
//!        client J(GetInto)         node J(File | Error)
//!        client passes its file    node J(Written)* J(Done | Error)
//! list:  client J(List)            node J(Files)* J(Done | Error)   (batches: a
//!                                  vault of any size fits the frame limit)
//! other: client J(request)         node J(response | Error)
//! ```
//!
//! File bytes travel in frames rather than as a raw stream so that the end of a
//! file is explicit: a client that dies mid-upload can never be mistaken for a
//! short file, and a read that fails an integrity check mid-way is reported as an
//! error after the bytes that were verified.
//!
//! `GetInto` is the fast form of `get` for a destination that is a regular file:
//! after `File`, the client passes the open file over the socket (one byte with
//! `SCM_RIGHTS`, see [`super::socket::send_fd`]) and the node writes the verified
//! bytes straight into it, reporting how many with `Written`. The bytes then cross
//! no socket between the processes: on the 2-core benchmark machine the old path
//! cost the reader and the client about a sixth of all CPU of a remote get. A
//! failure mid-way leaves a verified prefix, as with `Get`.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use peervault_node::{
    CleanReport, DiscoveryStatus, ErrorKind, FileCheck, FileInfo, FileMeta, GcSummary,
    MetricsSnapshot, NodeStatus, PeerStatus, QuotaStatus, RateLimits, VersionInfo,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::LengthDelimitedCodec;

/// Largest frame either side accepts.
// Room for one JSON answer about a large vault (`verify --json` over 100,000
// files is ~10 MB); listings come in batches anyway. Only the node's owner can
// connect, so this bounds mistakes, not attacks.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// File bytes per data frame.
pub const DATA_FRAME_BYTES: usize = 1 << 20;

const TAG_MESSAGE: u8 = b'J';
const TAG_DATA: u8 = b'D';
const TAG_END: u8 = b'E';

/// The codec both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    Message(Bytes),
    Data(Bytes),
    End,
}

/// A frame that is not part of the protocol.
#[derive(Debug, thiserror::Error)]
#[error("protocol error: {0}")]
pub struct ProtocolError(pub String);

impl Frame {
    pub fn decode(frame: BytesMut) -> Result<Frame, ProtocolError> {
        let mut frame = frame.freeze();
        if frame.is_empty() {
            return Err(ProtocolError("empty frame".into()));
        }
        let tag = frame[0];
        let body = frame.split_off(1);
        match tag {
            TAG_MESSAGE => Ok(Frame::Message(body)),
            TAG_DATA => Ok(Frame::Data(body)),
            TAG_END if body.is_empty() => Ok(Frame::End),
            _ => Err(ProtocolError(format!("unknown frame tag {tag:#04x}"))),
        }
    }

    /// The JSON body of a message frame, decoded.
    pub fn message<T: for<'de> Deserialize<'de>>(self) -> Result<T, ProtocolError> {
        match self {
            Frame::Message(body) => serde_json::from_slice(&body)
                .map_err(|e| ProtocolError(format!("undecodable message: {e}"))),
            Frame::Data(_) => Err(ProtocolError("expected a message, got file data".into())),
            Frame::End => Err(ProtocolError("expected a message, got end of data".into())),
        }
    }
}

/// Encodes a message frame.
pub fn message_frame<T: Serialize>(message: &T) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(TAG_MESSAGE);
    // Our message types always serialise.
    out.extend_from_slice(&serde_json::to_vec(message).unwrap_or_default());
    out.freeze()
}

/// Writes a data frame straight to `writer`, without copying `bytes` into a frame
/// buffer: file bytes are most of the traffic, and each copy costs CPU that the
/// node's crypto needs. The caller must have flushed any buffered frames first.
pub async fn write_data_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(bytes.len() + 1)
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "data frame too large"))?;
    let mut header = [0u8; 5];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = TAG_DATA;
    writer.write_all(&header).await?;
    writer.write_all(bytes).await
}

/// Encodes the end-of-data frame.
pub fn end_frame() -> Bytes {
    Bytes::from_static(&[TAG_END])
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Followed by data frames and an end frame.
    Put {
        name: String,
        size: Option<u64>,
        /// Mode, modification time, link target (`put -r`).
        #[serde(default)]
        meta: FileMeta,
        /// `K+M` to erasure-code the file, `none` for whole copies; absent:
        /// as the node is configured (see `peervault_node::Keeping`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redundancy: Option<String>,
    },
    Get {
        name: String,
        /// A version's label (or its first digits); the current one if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// Like `Get`, into a regular file the client passes after `File`.
    GetInto {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    Stat {
        name: String,
    },
    List,
    Delete {
        name: String,
        /// With every old version, for good.
        #[serde(default)]
        purge: bool,
    },
    Versions {
        name: String,
    },
    Undelete {
        name: String,
    },
    Restore {
        name: String,
        version: String,
    },
    Status,
    /// `s3 keys create NAME`.
    S3KeyCreate {
        name: String,
    },
    /// `s3 keys ls`.
    S3KeyList,
    /// `s3 keys rm ID`.
    S3KeyRemove {
        id: String,
    },
    /// An invitation for one new device.
    Invite {
        /// How long it lasts (the node's default if absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_seconds: Option<u64>,
    },
    /// `devices`.
    Devices,
    /// `devices rename WHO NAME`.
    RenameDevice {
        who: String,
        name: String,
    },
    /// `devices remove WHO`.
    RemoveDevice {
        who: String,
    },
    /// `rekey [--all]`.
    Rekey {
        #[serde(default)]
        all: bool,
    },
    /// `redundancy [K+M|none]`: the setting, or a new one.
    Redundancy {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<String>,
    },
    Verify {
        name: Option<String>,
    },
    Quota,
    Limits,
    SetLimits {
        limits: RateLimits,
    },
    SetQuota {
        bytes: u64,
    },
    Peers,
    Discover,
    /// Run the integrity GC now.
    Gc,
    /// Drop this node's copies of the files named, or of every file.
    Clean {
        #[serde(default)]
        names: Vec<String>,
    },
    Metrics,
    /// Push a copy of a file to one peer (number, peer id or address).
    Send {
        name: String,
        peer: String,
    },
    /// Pull a file's chunks from one peer only.
    Fetch {
        name: String,
        peer: String,
    },
}

/// What the node answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    /// Sent during a put, each time another copy is durable; the final answer
    /// (`Stored` or an error) follows.
    Replicating {
        copies: usize,
        target: usize,
    },
    Stored {
        file: FileInfo,
        stored_bytes: u64,
        replaced: bool,
        /// Durable copies reached (this node included) and wanted.
        copies: usize,
        target: usize,
        /// Peers that could not take a copy, and why.
        failures: Vec<String>,
    },
    /// Precedes the data of a get.
    File {
        file: FileInfo,
    },
    /// Follows the data of a complete get.
    Done,
    /// During a `GetInto`: bytes written into the client's file so far.
    Written {
        bytes: u64,
    },
    Files {
        files: Vec<FileInfo>,
    },
    Deleted {
        name: String,
        freed_bytes: u64,
        #[serde(default)]
        recoverable: bool,
    },
    Versions {
        versions: Vec<VersionInfo>,
    },
    S3Key {
        key: peervault_s3::keys::AccessKey,
    },
    S3Keys {
        keys: Vec<peervault_s3::keys::KeySummary>,
    },
    S3KeyRemoved {
        id: String,
    },
    Status {
        status: Box<NodeStatus>,
    },
    Invite {
        invitation: peervault_node::invitations::Invitation,
    },
    Devices {
        devices: Vec<peervault_node::devices::DeviceInfo>,
    },
    Device {
        device: peervault_node::devices::DeviceInfo,
    },
    DeviceRemoved {
        removed: peervault_node::devices::RemovedDevice,
    },
    Rekeyed {
        epoch: u32,
    },
    Redundancy {
        status: peervault_node::writes::RedundancyStatus,
    },
    Verified {
        files: Vec<FileCheck>,
    },
    Quota {
        quota: QuotaStatus,
    },
    Limits {
        limits: RateLimits,
    },
    Peers {
        peers: Vec<PeerStatus>,
    },
    Discovery {
        discovery: DiscoveryStatus,
    },
    Gc {
        summary: GcSummary,
    },
    Cleaned {
        report: CleanReport,
    },
    Metrics {
        metrics: Box<MetricsSnapshot>,
    },
    Sent {
        name: String,
        peer: String,
    },
    Fetched {
        name: String,
        peer: String,
        chunks: usize,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let req = Request::Put {
            name: "a/b".into(),
            size: Some(3),
            meta: FileMeta::default(),
            redundancy: Some("4+2".into()),
        };
        let frame = Frame::decode(BytesMut::from(&message_frame(&req)[..])).unwrap();
        let back: Request = frame.message().unwrap();
        assert!(matches!(back, Request::Put { size: Some(3), .. }));
        assert!(matches!(
            Frame::decode(BytesMut::from(&end_frame()[..])).unwrap(),
            Frame::End
        ));
    }

    #[tokio::test]
    async fn direct_data_frames_decode_like_codec_frames() {
        use futures::StreamExt;
        let mut wire = Vec::new();
        write_data_frame(&mut wire, b"payload").await.unwrap();
        let mut frames = tokio_util::codec::FramedRead::new(&wire[..], codec());
        let frame = Frame::decode(frames.next().await.unwrap().unwrap()).unwrap();
        assert!(matches!(frame, Frame::Data(d) if &d[..] == b"payload"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"Z", b"E!", b"J{not json"] {
            let decoded = Frame::decode(BytesMut::from(bytes)).and_then(|f| f.message::<Request>());
            assert!(decoded.is_err(), "{bytes:?}");
        }
    }
}
