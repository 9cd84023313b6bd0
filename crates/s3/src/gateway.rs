//! S3 operations onto the vault. `s3s` parses requests, checks signatures and
//! writes responses; this maps each operation onto the node's object API.

use std::time::{Duration, SystemTime};

use peervault_node::objects::{ComposedPart, ObjectInfo};
use peervault_node::{FileMeta, Node, ObjectMeta};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::digests::{Declared, Digests};
use crate::listing::{self, url_encode};
use crate::multipart::PartOf;
use crate::{errors, multipart, names};

/// S3's largest single upload (PutObject, one part): 5 GiB.
pub(crate) const MAX_PUT_BYTES: u64 = 5 << 30;

/// The S3 API of one node.
pub(crate) struct Gateway {
    pub(crate) node: Node,
}

/// `ms` since the Unix epoch as S3 shows times.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn seconds_of(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// The ETag of `object`: what the gateway computed when it was written, or,
/// for a file stored by `peervault put`, its BLAKE3 in a form no client
/// mistakes for an MD5 (`-1` marks it, as multipart ETags are marked).
pub(crate) fn etag_of(object: &ObjectInfo) -> String {
    match &object.meta.object {
        Some(meta) if !meta.etag.is_empty() => meta.etag.clone(),
        _ => format!("{}-1", hex::encode(&object.hash[..16])),
    }
}

/// What S3 keeps with an object, from a request's headers.
pub(crate) fn object_meta(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> ObjectMeta {
    let mut user: Vec<(String, String)> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    user.sort();
    ObjectMeta {
        etag: String::new(),
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        user,
    }
}

/// S3's limit on user metadata: 2 KB of names and values together.
pub(crate) fn check_metadata(metadata: &Option<Metadata>) -> S3Result<()> {
    let size: usize = metadata
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > 2048 {
        return Err(s3_error!(
            MetadataTooLarge,
            "x-amz-meta-* headers hold {size} bytes; S3 allows 2 KB"
        ));
    }
    Ok(())
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().cloned().collect())
}

impl Gateway {
    /// True if `bucket` was created or holds an object.
    pub(crate) async fn bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        if self.has_marker(bucket).await {
            return Ok(true);
        }
        let objects = self
            .node
            .objects(&names::bucket_prefix(bucket))
            .await
            .map_err(errors::object)?;
        Ok(!objects.is_empty())
    }

    /// True if `bucket` was created (and not deleted) by CreateBucket.
    async fn has_marker(&self, bucket: &str) -> bool {
        self.node
            .object(&names::bucket_marker(bucket))
            .await
            .is_ok()
    }

    pub(crate) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match self.bucket_exists(bucket).await? {
            true => Ok(()),
            false => Err(no_such_bucket(bucket)),
        }
    }

    /// Object `key` of `bucket`, or NoSuchKey / NoSuchBucket.
    async fn existing(&self, bucket: &str, key: &str) -> S3Result<ObjectInfo> {
        let name = names::object(bucket, key)?;
        match self.node.object(&name).await {
            Ok(object) => Ok(object),
            Err(e) => {
                self.require_bucket(bucket).await?;
                Err(errors::object(e))
            }
        }
    }

    /// Streams `body` into `name` with its MD5 as ETag, refusing it if the
    /// checksums the request declared do not match. A part of a multipart
    /// upload (`part_of`) is placed with its object and hashed into leaves.
    pub(crate) async fn write_body(
        &self,
        name: &str,
        body: Option<StreamingBlob>,
        size_hint: Option<i64>,
        mut meta: ObjectMeta,
        declared: Declared,
        part_of: Option<PartOf>,
    ) -> S3Result<ObjectInfo> {
        let body = body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
        let size_hint = size_hint.and_then(|s| u64::try_from(s).ok());
        if size_hint.is_some_and(|s| s > MAX_PUT_BYTES) {
            return Err(s3_error!(
                EntityTooLarge,
                "one upload is at most 5 GiB; send larger objects as multipart uploads"
            ));
        }
        let leaves_at = part_of.as_ref().and_then(|p| p.likely_offset);
        let digests = Digests::new(&declared)?.with_leaves_at(leaves_at);
        let reader = digests.reader(body);
        let finish_digests = digests.clone();
        let finish = Box::new(move || {
            let finished = finish_digests.finish(&declared)?;
            meta.etag = finished.etag;
            if let Some(leaves) = finished.leaves {
                crate::multipart::keep_leaves(&mut meta, &leaves);
            }
            Ok(FileMeta {
                object: Some(Box::new(meta)),
                ..FileMeta::default()
            })
        });
        let placed_with = part_of.as_ref().map_or(name, |p| p.object.as_str());
        match self
            .node
            .put_part(name, placed_with, reader, size_hint, finish)
            .await
        {
            Ok(object) => Ok(object),
            Err(e) => Err(digests.refusal().unwrap_or_else(|| errors::object(e))),
        }
    }

    /// The bytes of `object` in `range`, as a response body.
    async fn body_of(
        &self,
        object: &ObjectInfo,
        range: Option<std::ops::Range<u64>>,
    ) -> S3Result<StreamingBlob> {
        let reader = self
            .node
            .read_object(&object.name, range)
            .await
            .map_err(errors::object)?;
        Ok(StreamingBlob::wrap(reader))
    }

    /// The source of a copy, checked against its conditions.
    pub(crate) async fn copy_source(
        &self,
        source: &CopySource,
        conditions: Conditions,
    ) -> S3Result<ObjectInfo> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
        };
        if version_id.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "versions are not exposed over S3 (peervault versions / get --version reach them)"
            ));
        }
        let object = self.existing(bucket, key).await?;
        conditions.check(&object, true)?;
        Ok(object)
    }
}

/// A request's preconditions (If-Match and friends).
#[derive(Default)]
pub(crate) struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

impl Conditions {
    /// Checks `object` as RFC 9110 orders the conditions. A read that need
    /// not be sent gets 304 Not Modified; a copy or a failed match gets 412.
    pub(crate) fn check(self, object: &ObjectInfo, copy: bool) -> S3Result<()> {
        let etag = ETag::Strong(etag_of(object));
        let modified = (object.modified_unix_ms / 1000) as i64;
        let matches = |c: &ETagCondition, weak: bool| match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) if weak => e.weak_cmp(&etag),
            ETagCondition::ETag(e) => e.strong_cmp(&etag),
        };
        match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) if !matches(c, false) => {
                return Err(s3_error!(
                    PreconditionFailed,
                    "If-Match: the ETag is {}",
                    etag.value()
                ));
            }
            (None, Some(t)) if modified > seconds_of(t) => {
                return Err(s3_error!(
                    PreconditionFailed,
                    "modified since If-Unmodified-Since"
                ));
            }
            _ => {}
        }
        let not_modified = match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) => matches(c, true),
            (None, Some(t)) => modified <= seconds_of(t),
            (None, None) => false,
        };
        if not_modified {
            return Err(match copy {
                true => s3_error!(PreconditionFailed, "the copy source is not modified"),
                false => S3Error::new(S3ErrorCode::NotModified),
            });
        }
        Ok(())
    }
}

/// `$output` (GetObjectOutput, HeadObjectOutput) with what S3 tells of
/// `$object` (ETag, time, metadata) and the fields given.
macro_rules! described {
    ($output:ident, $object:expr, { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let object: &ObjectInfo = $object;
        let meta = object.meta.object.as_deref().cloned().unwrap_or_default();
        $output {
            $($field $(: $value)?,)*
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(object.modified_unix_ms)),
            e_tag: Some(ETag::Strong(etag_of(object))),
            metadata: user_metadata(&meta),
            content_type: meta.content_type,
            content_encoding: meta.content_encoding,
            content_disposition: meta.content_disposition,
            content_language: meta.content_language,
            cache_control: meta.cache_control,
            ..Default::default()
        }
    }};
}

/// What S3 keeps with an object, from the headers of `$input` (PutObjectInput,
/// CreateMultipartUploadInput, CopyObjectInput with REPLACE).
macro_rules! meta_of {
    ($input:expr) => {
        object_meta(
            $input.content_type,
            $input.content_encoding,
            $input.content_disposition,
            $input.content_language,
            $input.cache_control,
            $input.metadata,
        )
    };
}
pub(crate) use meta_of;

/// What a request with a body declares of it (`$input` has S3's checksum
/// fields: PutObjectInput, UploadPartInput).
macro_rules! declared {
    ($input:expr, $trailers:expr) => {
        Declared {
            content_md5: $input.content_md5,
            checksums: Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                ..Default::default()
            },
            algorithm: $input.checksum_algorithm,
            trailers: $trailers,
        }
    };
}
pub(crate) use declared;

/// The preconditions of `$input`: `conditions!(input)` for a read's
/// (`if_match`, ...), `conditions!(input, copy_source)` for a copy's source
/// (`copy_source_if_match`, ...).
macro_rules! conditions {
    ($input:expr) => {
        Conditions {
            if_match: $input.if_match,
            if_none_match: $input.if_none_match,
            if_modified_since: $input.if_modified_since,
            if_unmodified_since: $input.if_unmodified_since,
        }
    };
    ($input:expr, copy_source) => {
        Conditions {
            if_match: $input.copy_source_if_match,
            if_none_match: $input.copy_source_if_none_match,
            if_modified_since: $input.copy_source_if_modified_since,
            if_unmodified_since: $input.copy_source_if_unmodified_since,
        }
    };
}
pub(crate) use conditions;

/// A range checked against an object's size.
fn range_of(range: Option<Range>, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    match range {
        None => Ok(None),
        Some(range) => range.check(size).map(Some).map_err(|_| {
            s3_error!(
                InvalidRange,
                "the range is outside the object ({size} bytes)"
            )
        }),
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut buckets: std::collections::BTreeMap<String, u64> = Default::default();
        let all = self.node.objects("").await.map_err(errors::object)?;
        let markers = names::markers_prefix();
        for object in &all {
            let (name, created) = match object.name.strip_prefix(&markers) {
                Some(bucket) => (bucket, object.modified_unix_ms),
                None if peervault_node::objects::is_reserved(&object.name) => continue,
                None => match object.name.split_once('/') {
                    Some((bucket, _)) if s3s::path::check_bucket_name(bucket) => {
                        (bucket, object.modified_unix_ms)
                    }
                    _ => continue,
                },
            };
            let entry = buckets.entry(name.to_string()).or_insert(created);
            *entry = (*entry).min(created);
        }
        let buckets = buckets
            .into_iter()
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        if self.bucket_exists(&bucket).await? {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "bucket {bucket:?} exists"
            ));
        }
        let marker = names::bucket_marker(&bucket);
        self.node
            .put_object(
                &marker,
                &b""[..],
                Some(0),
                Box::new(|| Ok(FileMeta::default())),
            )
            .await
            .map_err(errors::object)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        let objects = self
            .node
            .objects(&names::bucket_prefix(&bucket))
            .await
            .map_err(errors::object)?;
        if !objects.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "bucket {bucket:?} holds {} objects; delete them first",
                objects.len()
            ));
        }
        if !self.has_marker(&bucket).await {
            return Err(no_such_bucket(&bucket));
        }
        let marker = names::bucket_marker(&bucket);
        self.node
            .remove_object(&marker, true)
            .await
            .map_err(errors::object)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        // The vault keeps versions of every file, but S3's versioning calls
        // are not offered: to S3 clients a bucket is unversioned.
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let name = names::object(&input.bucket, &input.key)?;
        check_metadata(&input.metadata)?;
        self.require_bucket(&input.bucket).await?;
        if input.if_match.is_some() || input.if_none_match.is_some() {
            let current = self.node.object(&name).await.ok();
            if input.if_none_match.is_some() && current.is_some() {
                return Err(s3_error!(
                    PreconditionFailed,
                    "the object exists (If-None-Match)"
                ));
            }
            if let Some(c) = &input.if_match {
                let Some(current) = &current else {
                    return Err(s3_error!(NoSuchKey, "If-Match: no such object"));
                };
                let etag = ETag::Strong(etag_of(current));
                if let ETagCondition::ETag(e) = c
                    && !e.strong_cmp(&etag)
                {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "If-Match: the ETag is {}",
                        etag.value()
                    ));
                }
            }
        }
        let meta = meta_of!(input);
        let declared = declared!(input, req.trailing_headers);
        let object = self
            .write_body(
                &name,
                input.body,
                input.content_length,
                meta,
                declared,
                None,
            )
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag_of(&object))),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        if input.version_id.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "versions are not exposed over S3"
            ));
        }
        let object = self.existing(&input.bucket, &input.key).await?;
        conditions!(input).check(&object, false)?;
        let range = range_of(input.range, object.size)?;
        let (length, content_range) = match &range {
            Some(r) => (
                r.end - r.start,
                Some(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    object.size
                )),
            ),
            None => (object.size, None),
        };
        let body = self.body_of(&object, range).await?;
        Ok(S3Response::new(described!(GetObjectOutput, &object, {
            body: Some(body),
            content_length: Some(length as i64),
            content_range,
        })))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let object = self.existing(&input.bucket, &input.key).await?;
        conditions!(input).check(&object, false)?;
        Ok(S3Response::new(described!(HeadObjectOutput, &object, {
            content_length: Some(object.size as i64),
        })))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let name = names::object(&input.bucket, &input.key)?;
        if self.node.object(&name).await.is_err() {
            // Deleting what is not there succeeds, in a bucket that is.
            self.require_bucket(&input.bucket).await?;
            return Ok(S3Response::new(DeleteObjectOutput::default()));
        }
        self.node
            .remove_object(&name, false)
            .await
            .map_err(errors::object)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for object in input.delete.objects {
            let result = match names::object(&input.bucket, &object.key) {
                Err(e) => Err(e),
                Ok(name) => match self.node.object(&name).await {
                    Err(_) => Ok(()),
                    Ok(_) => self
                        .node
                        .remove_object(&name, false)
                        .await
                        .map_err(errors::object),
                },
            };
            match result {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..Default::default()
                }),
                Err(e) => failed.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(object.key),
                    message: e.message().map(str::to_string),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!failed.is_empty()).then_some(failed),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let target = names::object(&input.bucket, &input.key)?;
        self.require_bucket(&input.bucket).await?;
        let source = self
            .copy_source(&input.copy_source, conditions!(input, copy_source))
            .await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        if source.name == target && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself must change its metadata (--metadata-directive REPLACE)"
            ));
        }
        if replace {
            check_metadata(&input.metadata)?;
        }
        let mut meta = match replace {
            true => meta_of!(input),
            false => source.meta.object.as_deref().cloned().unwrap_or_default(),
        };
        // The content is the same, and so is its ETag.
        meta.etag = etag_of(&source);
        let copy = self
            .node
            .compose(
                &target,
                &[ComposedPart::named(&source.name)],
                FileMeta {
                    object: Some(Box::new(meta)),
                    ..FileMeta::default()
                },
            )
            .await
            .map_err(errors::object)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag_of(&copy))),
                last_modified: Some(timestamp(copy.modified_unix_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let list = self
            .list(
                &input.bucket,
                input.prefix.as_deref(),
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                input.max_keys,
            )
            .await?;
        let url = url_encoding(&input.encoding_type);
        let encode = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(input.prefix.unwrap_or_default())),
            marker: input.marker.map(encode),
            delimiter: input.delimiter.map(encode),
            max_keys: Some(list.max_keys),
            is_truncated: Some(list.truncated),
            next_marker: list.next.clone().filter(|_| list.truncated).map(encode),
            contents: Some(list.contents(url)),
            common_prefixes: Some(list.prefixes(url)),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let token = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => None,
        };
        let marker = match (token.as_deref(), input.start_after.as_deref()) {
            (Some(t), Some(s)) => Some(t.max(s)),
            (t, s) => t.or(s),
        };
        let list = self
            .list(
                &input.bucket,
                input.prefix.as_deref(),
                input.delimiter.as_deref(),
                marker,
                input.max_keys,
            )
            .await?;
        let url = url_encoding(&input.encoding_type);
        let encode = |s: String| if url { url_encode(&s) } else { s };
        let count = (list.page.keys.len() + list.page.common_prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(encode),
            start_after: input.start_after.map(encode),
            continuation_token: input.continuation_token,
            next_continuation_token: list
                .next
                .clone()
                .filter(|_| list.truncated)
                .map(|n| encode_token(&n)),
            max_keys: Some(list.max_keys),
            key_count: Some(count),
            is_truncated: Some(list.truncated),
            contents: Some(list.contents(url)),
            common_prefixes: Some(list.prefixes(url)),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req.input, req.trailing_headers)
            .await
            .map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req.input).await.map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req.input)
            .await
            .map(S3Response::new)
    }
}

fn no_such_bucket(bucket: &str) -> S3Error {
    s3_error!(
        NoSuchBucket,
        "no bucket {bucket:?} (create it with CreateBucket, e.g. aws s3 mb s3://{bucket})"
    )
}

/// The owner S3 clients are shown: the vault has one.
pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("peervault".into()),
        id: Some("peervault".into()),
    }
}

fn url_encoding(encoding: &Option<EncodingType>) -> bool {
    encoding
        .as_ref()
        .is_some_and(|e| e.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

/// Continuation tokens are opaque to clients: the key they continue after.
fn encode_token(after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "the continuation token is not one this gateway gave"
            )
        })
}

/// One page of a bucket's listing.
struct Listed {
    objects: Vec<ObjectInfo>,
    bucket_prefix_len: usize,
    page: listing::Page,
    truncated: bool,
    next: Option<String>,
    max_keys: i32,
}

impl Listed {
    fn contents(&self, url: bool) -> Vec<Object> {
        self.page
            .keys
            .iter()
            .map(|i| {
                let object = &self.objects[*i];
                let key = &object.name[self.bucket_prefix_len..];
                Object {
                    key: Some(if url {
                        url_encode(key)
                    } else {
                        key.to_string()
                    }),
                    size: Some(object.size as i64),
                    e_tag: Some(ETag::Strong(etag_of(object))),
                    last_modified: Some(timestamp(object.modified_unix_ms)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    owner: Some(owner()),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn prefixes(&self, url: bool) -> Vec<CommonPrefix> {
        self.page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(if url { url_encode(p) } else { p.clone() }),
            })
            .collect()
    }
}

impl Gateway {
    async fn list(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Listed> {
        let max_keys = max_keys.unwrap_or(1000).clamp(0, 1000);
        let bucket_prefix = names::bucket_prefix(bucket);
        let objects = self
            .node
            .objects(&bucket_prefix)
            .await
            .map_err(errors::object)?;
        // No object: the bucket is there only if it was created empty (its
        // objects were just listed, so they need not be looked for again).
        if objects.is_empty() && !self.has_marker(bucket).await {
            return Err(no_such_bucket(bucket));
        }
        let keys: Vec<&str> = objects
            .iter()
            .map(|o| &o.name[bucket_prefix.len()..])
            .collect();
        let page = listing::page(
            &keys,
            prefix.unwrap_or(""),
            delimiter,
            marker,
            max_keys as usize,
        );
        drop(keys);
        Ok(Listed {
            truncated: page.truncated,
            next: page.last.clone(),
            objects,
            bucket_prefix_len: bucket_prefix.len(),
            page,
            max_keys,
        })
    }
}
