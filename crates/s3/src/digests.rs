//! What a gateway computes of a body as it streams into the vault: the MD5
//! that becomes the ETag, and the checksums a client sent (`Content-MD5`,
//! `x-amz-checksum-*` as headers or as aws-chunked trailers), which must match
//! before the object is recorded: a body damaged on the way is refused, and
//! the object it would have replaced stays.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use peervault_node::objects::PartLeaves;
use peervault_node::tree_hash::LeafHasher;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3Result, TrailingHeaders, s3_error};

/// The checksums a request declares.
#[derive(Debug, Default, Clone)]
pub(crate) struct Declared {
    pub content_md5: Option<String>,
    pub checksums: Checksum,
    pub algorithm: Option<ChecksumAlgorithm>,
    pub trailers: Option<TrailingHeaders>,
}

struct State {
    md5: Md5,
    checks: ChecksumHasher,
    /// The BLAKE3 leaves of a multipart upload's part (see
    /// `peervault_store::tree_hash`), hashed where the part will likely start.
    leaves: Option<(u64, LeafHasher)>,
}

/// What a body's digests came to.
pub(crate) struct Finished {
    /// The MD5, in hex: the ETag.
    pub etag: String,
    pub leaves: Option<PartLeaves>,
}

/// Digests of one body, shared by the stream that feeds the vault and the
/// check made after its last byte.
#[derive(Clone)]
pub(crate) struct Digests {
    state: Arc<Mutex<Option<State>>>,
    /// Why the body was refused, for the response.
    refusal: Arc<Mutex<Option<S3Error>>>,
}

impl Digests {
    pub(crate) fn new(declared: &Declared) -> S3Result<Self> {
        let mut checks = ChecksumHasher::default();
        let c = &declared.checksums;
        let algorithm = declared
            .algorithm
            .as_ref()
            .map(|a| a.as_str().to_ascii_uppercase());
        let wants = |given: &Option<String>, name: &str| {
            given.is_some() || algorithm.as_deref() == Some(name)
        };
        if wants(&c.checksum_crc32, "CRC32") {
            checks.crc32 = Some(Crc32::new());
        }
        if wants(&c.checksum_crc32c, "CRC32C") {
            checks.crc32c = Some(Crc32c::new());
        }
        if wants(&c.checksum_sha1, "SHA1") {
            checks.sha1 = Some(Sha1::new());
        }
        if wants(&c.checksum_sha256, "SHA256") {
            checks.sha256 = Some(Sha256::new());
        }
        if wants(&c.checksum_crc64nvme, "CRC64NVME") {
            checks.crc64nvme = Some(Crc64Nvme::new());
        }
        if let Some(name) = &algorithm
            && !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&name.as_str())
        {
            return Err(s3_error!(
                InvalidArgument,
                "unknown checksum algorithm {name}"
            ));
        }
        Ok(Self {
            state: Arc::new(Mutex::new(Some(State {
                md5: Md5::new(),
                checks,
                leaves: None,
            }))),
            refusal: Arc::new(Mutex::new(None)),
        })
    }

    /// Also hashes the body into BLAKE3 leaves as if it started at `offset`
    /// of a whole (a part of a multipart upload), if that is a leaf boundary.
    pub(crate) fn with_leaves_at(self, offset: Option<u64>) -> Self {
        if let Some(offset) = offset
            && let Some(hasher) = LeafHasher::new(offset)
            && let Ok(mut state) = self.state.lock()
            && let Some(state) = state.as_mut()
        {
            state.leaves = Some((offset, hasher));
        }
        self
    }

    /// `body`, digested as it passes, as the vault reads it.
    pub(crate) fn reader(
        &self,
        body: StreamingBlob,
    ) -> impl tokio::io::AsyncRead + Unpin + Send + use<> {
        let state = self.state.clone();
        let stream = body.map(move |piece| {
            if let (Ok(bytes), Ok(mut state)) = (&piece, state.lock())
                && let Some(state) = state.as_mut()
            {
                state.md5.update(bytes);
                state.checks.update(bytes);
                if let Some((_, leaves)) = &mut state.leaves {
                    leaves.update(bytes);
                }
            }
            piece.map_err(std::io::Error::other)
        });
        tokio_util::io::StreamReader::new(Box::pin(stream) as BoxedBytes)
    }

    /// After the last byte: the MD5 (hex) and the leaves, or the refusal of a
    /// body whose declared checksums do not match (kept for
    /// [`Digests::refusal`]).
    pub(crate) fn finish(&self, declared: &Declared) -> std::io::Result<Finished> {
        let state = self.state.lock().ok().and_then(|mut s| s.take());
        let Some(state) = state else {
            return Err(std::io::Error::other("the body's digests were taken twice"));
        };
        let md5 = state.md5.finalize();
        let result = check(declared, &md5, state.checks.finalize());
        match result {
            Ok(()) => Ok(Finished {
                etag: hex::encode(md5),
                leaves: state.leaves.map(|(offset, hasher)| PartLeaves {
                    offset,
                    leaves: hasher.finish(),
                }),
            }),
            Err(refusal) => {
                let message = refusal.to_string();
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(refusal);
                }
                Err(std::io::Error::other(message))
            }
        }
    }

    /// Why [`Digests::finish`] refused the body, if it did.
    pub(crate) fn refusal(&self) -> Option<S3Error> {
        self.refusal.lock().ok().and_then(|mut r| r.take())
    }
}

type BoxedBytes = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

fn check(declared: &Declared, md5: &[u8; 16], got: Checksum) -> S3Result<()> {
    use base64::Engine;
    if let Some(expected) = &declared.content_md5 {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(expected.trim())
            .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
        if expected != md5 {
            return Err(s3_error!(
                BadDigest,
                "the body does not match its Content-MD5"
            ));
        }
    }
    let mut want = declared.checksums.clone();
    if let Some(trailers) = declared.trailers.as_ref().and_then(TrailingHeaders::take) {
        let get = |name: &str| {
            trailers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        want.checksum_crc32 = want.checksum_crc32.or_else(|| get("x-amz-checksum-crc32"));
        want.checksum_crc32c = want
            .checksum_crc32c
            .or_else(|| get("x-amz-checksum-crc32c"));
        want.checksum_sha1 = want.checksum_sha1.or_else(|| get("x-amz-checksum-sha1"));
        want.checksum_sha256 = want
            .checksum_sha256
            .or_else(|| get("x-amz-checksum-sha256"));
        want.checksum_crc64nvme = want
            .checksum_crc64nvme
            .or_else(|| get("x-amz-checksum-crc64nvme"));
    }
    for (name, want, got) in [
        ("CRC32", &want.checksum_crc32, &got.checksum_crc32),
        ("CRC32C", &want.checksum_crc32c, &got.checksum_crc32c),
        ("SHA1", &want.checksum_sha1, &got.checksum_sha1),
        ("SHA256", &want.checksum_sha256, &got.checksum_sha256),
        (
            "CRC64NVME",
            &want.checksum_crc64nvme,
            &got.checksum_crc64nvme,
        ),
    ] {
        if let (Some(want), Some(got)) = (want, got)
            && want != got
        {
            return Err(s3_error!(
                BadDigest,
                "the body's {name} is {got}, not the {want} the request declared"
            ));
        }
    }
    Ok(())
}
