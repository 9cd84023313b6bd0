//! Where S3 names live in the vault.
//!
//! Object `KEY` of bucket `B` is the vault file `B/KEY`, so that `peervault ls`
//! and `get` see it. What S3 needs besides (empty buckets, uploads in
//! progress, access keys) lives under PeerVault's own prefix, which `ls` does
//! not show and users cannot write: no S3 name can reach it, because a
//! bucket name cannot start with a dot.

use peervault_node::objects::RESERVED_PREFIX;
use s3s::{S3Result, s3_error};

/// S3's limit on a key, in bytes of UTF-8.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The vault name of object `key` in `bucket`; refuses keys S3 or the vault
/// cannot hold, saying why.
pub(crate) fn object(bucket: &str, key: &str) -> S3Result<String> {
    check_key(key)?;
    Ok(format!("{bucket}/{key}"))
}

pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "an object key cannot be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(
            KeyTooLongError,
            "the key is {} bytes; S3 keys are at most {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(s3_error!(
            InvalidArgument,
            "the key holds the control character U+{:04X}; PeerVault keys cannot hold control characters",
            c as u32
        ));
    }
    Ok(())
}

/// The prefix of every object of `bucket`.
pub(crate) fn bucket_prefix(bucket: &str) -> String {
    format!("{bucket}/")
}

/// The marker that keeps a bucket with no object.
pub(crate) fn bucket_marker(bucket: &str) -> String {
    format!("{}{bucket}", markers_prefix())
}

pub(crate) fn markers_prefix() -> String {
    format!("{RESERVED_PREFIX}s3/buckets/")
}

/// Everything of multipart upload `id`.
pub(crate) fn upload_prefix(id: &str) -> String {
    format!("{}{id}/", uploads_prefix())
}

pub(crate) fn uploads_prefix() -> String {
    format!("{RESERVED_PREFIX}s3/uploads/")
}

/// What upload `id` is for (bucket, key, metadata).
pub(crate) fn upload_record(id: &str) -> String {
    format!("{}upload", upload_prefix(id))
}

/// Part `number` of upload `id` (numbers sort as text).
pub(crate) fn upload_part(id: &str, number: i32) -> String {
    format!("{}part/{number:05}", upload_prefix(id))
}

pub(crate) fn parts_prefix(id: &str) -> String {
    format!("{}part/", upload_prefix(id))
}

/// Access key `id`.
pub(crate) fn access_key(id: &str) -> String {
    format!("{}{id}", keys_prefix())
}

pub(crate) fn keys_prefix() -> String {
    format!("{RESERVED_PREFIX}s3/keys/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_names_and_back() {
        assert_eq!(object("b", "a/../c").unwrap(), "b/a/../c");
        assert!(object("b", "").is_err());
        assert!(object("b", "a\0b").is_err());
        assert!(object("b", &"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(object("b", &"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(bucket_marker("b").starts_with(RESERVED_PREFIX));
        assert!(upload_part("u", 7) < upload_part("u", 10));
    }
}
