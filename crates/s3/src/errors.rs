//! Node errors as S3 gives errors: a code clients act on, and a message that
//! says what to do.

use peervault_node::{ErrorKind, NodeError};
use s3s::{S3Error, S3ErrorCode, s3_error};

/// `error` as S3 reports it, where `missing` is the code for a name not found
/// (NoSuchKey for objects, NoSuchUpload for parts, ...).
pub(crate) fn s3_of(error: NodeError, missing: S3ErrorCode) -> S3Error {
    let message = error.to_string();
    match error.kind() {
        ErrorKind::NotFound => S3Error::with_message(missing, message),
        ErrorKind::InvalidInput => S3Error::with_message(S3ErrorCode::InvalidArgument, message),
        ErrorKind::QuotaExceeded => {
            // No AWS code fits; MinIO's name and 507 tell clients to stop, not retry.
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("XPeerVaultStorageFull".into()),
                format!("{message} (free space with rm --purge, or raise the quota)"),
            );
            e.set_status_code(hyper::StatusCode::INSUFFICIENT_STORAGE);
            e
        }
        ErrorKind::Busy | ErrorKind::Unavailable => {
            S3Error::with_message(S3ErrorCode::ServiceUnavailable, message)
        }
        _ => {
            tracing::warn!("S3 request failed: {message}");
            S3Error::with_message(S3ErrorCode::InternalError, message)
        }
    }
}

/// An object error (a name not found is NoSuchKey).
pub(crate) fn object(error: NodeError) -> S3Error {
    s3_of(error, S3ErrorCode::NoSuchKey)
}

/// A failure of the gateway's own bookkeeping (keys, markers, uploads).
pub(crate) fn internal(error: impl std::fmt::Display) -> S3Error {
    tracing::warn!("S3 gateway: {error}");
    s3_error!(InternalError, "{error}")
}
