//! Multipart uploads: each part streams into the vault as a file of its own
//! under PeerVault's prefix (bounded memory, any size up to 5 GiB, in any
//! order and in parallel); completing the upload makes the object a manifest
//! of the parts' chunks, so no byte is copied or stored twice. What the upload
//! is for (bucket, key, metadata) is a small record beside its parts, so that
//! any node sees the uploads in progress.

use peervault_node::objects::{ComposedPart, ObjectInfo, PartLeaves};
use peervault_node::tree_hash;
use peervault_node::{FileMeta, ObjectMeta};
use s3s::dto::*;
use s3s::{S3Result, TrailingHeaders, s3_error};
use serde::{Deserialize, Serialize};

use crate::digests::Declared;
use crate::gateway::{Conditions, Gateway, etag_of, object_meta, owner, timestamp};
use crate::keys::{now_ms, read_small};
use crate::{errors, names};

/// S3's limits.
const MAX_PARTS: i32 = 10_000;
const MIN_PART_BYTES: u64 = 5 << 20;

/// What an upload is for.
#[derive(Debug, Serialize, Deserialize)]
struct Upload {
    bucket: String,
    key: String,
    initiated_unix_ms: u64,
    meta: ObjectMeta,
}

fn new_upload_id() -> S3Result<String> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(errors::internal)?;
    Ok(hex::encode(random))
}

fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Upload `id`, which must be for `bucket`/`key`.
async fn upload(gateway: &Gateway, id: &str, bucket: &str, key: &str) -> S3Result<Upload> {
    let missing = || {
        s3_error!(
            NoSuchUpload,
            "no upload {id} (completed, aborted, or never begun)"
        )
    };
    if !valid_upload_id(id) {
        return Err(missing());
    }
    let bytes = read_small(&gateway.node, &names::upload_record(id))
        .await
        .map_err(|_| missing())?;
    let upload: Upload = serde_json::from_slice(&bytes).map_err(errors::internal)?;
    if upload.bucket != bucket || upload.key != key {
        return Err(missing());
    }
    Ok(upload)
}

fn check_part_number(number: i32) -> S3Result<()> {
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "part numbers are 1 to {MAX_PARTS}, not {number}"
        ));
    }
    Ok(())
}

pub(crate) async fn create(
    gateway: &Gateway,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    names::check_key(&input.key)?;
    crate::gateway::check_metadata(&input.metadata)?;
    gateway.require_bucket(&input.bucket).await?;
    let id = new_upload_id()?;
    let upload = Upload {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        initiated_unix_ms: now_ms(),
        meta: crate::gateway::meta_of!(input),
    };
    let record = serde_json::to_vec(&upload).map_err(errors::internal)?;
    gateway
        .node
        .put_object(
            &names::upload_record(&id),
            &record[..],
            Some(record.len() as u64),
            Box::new(|| Ok(FileMeta::default())),
        )
        .await
        .map_err(errors::object)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        ..Default::default()
    })
}

pub(crate) async fn upload_part(
    gateway: &Gateway,
    input: UploadPartInput,
    trailers: Option<TrailingHeaders>,
) -> S3Result<UploadPartOutput> {
    check_part_number(input.part_number)?;
    upload(gateway, &input.upload_id, &input.bucket, &input.key).await?;
    let declared = crate::gateway::declared!(input, trailers);
    let part = gateway
        .write_body(
            &names::upload_part(&input.upload_id, input.part_number),
            input.body,
            input.content_length,
            ObjectMeta::default(),
            declared,
            Some(PartOf {
                object: names::object(&input.bucket, &input.key)?,
                likely_offset: likely_offset(input.part_number, input.content_length),
            }),
        )
        .await?;
    Ok(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag_of(&part))),
        ..Default::default()
    })
}

pub(crate) async fn upload_part_copy(
    gateway: &Gateway,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    check_part_number(input.part_number)?;
    upload(gateway, &input.upload_id, &input.bucket, &input.key).await?;
    let source = gateway
        .copy_source(
            &input.copy_source,
            crate::gateway::conditions!(input, copy_source),
        )
        .await?;
    let range = match &input.copy_source_range {
        None => None,
        Some(text) => {
            let range = Range::parse(text).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "x-amz-copy-source-range is bytes=FIRST-LAST"
                )
            })?;
            let range = range.check(source.size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "the range is outside the source ({} bytes)",
                    source.size
                )
            })?;
            Some(range)
        }
    };
    let length = range.as_ref().map_or(source.size, |r| r.end - r.start);
    let reader = gateway
        .node
        .read_object_to_copy(&source.name, range)
        .await
        .map_err(errors::object)?;
    let part = gateway
        .write_body(
            &names::upload_part(&input.upload_id, input.part_number),
            Some(StreamingBlob::wrap(reader)),
            Some(length as i64),
            ObjectMeta::default(),
            Declared::default(),
            Some(PartOf {
                object: names::object(&input.bucket, &input.key)?,
                likely_offset: likely_offset(input.part_number, Some(length as i64)),
            }),
        )
        .await?;
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag_of(&part))),
            last_modified: Some(timestamp(part.modified_unix_ms)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(crate) async fn complete(
    gateway: &Gateway,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let upload = upload(gateway, &input.upload_id, &input.bucket, &input.key).await?;
    let name = names::object(&input.bucket, &input.key)?;
    let listed = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a completion names at least one part"
        ));
    }
    let numbers: Vec<i32> = listed.iter().map(|p| p.part_number.unwrap_or(0)).collect();
    if numbers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(s3_error!(
            InvalidPartOrder,
            "parts must be listed in ascending order"
        ));
    }
    let mut parts = Vec::with_capacity(listed.len());
    let mut md5s = Vec::with_capacity(listed.len() * 16);
    for (index, (wanted, number)) in listed.iter().zip(numbers).enumerate() {
        let part_name = names::upload_part(&input.upload_id, number);
        let part = gateway.node.object(&part_name).await.map_err(|_| {
            s3_error!(
                InvalidPart,
                "part {number} was not uploaded (or not to this node yet)"
            )
        })?;
        let etag = etag_of(&part);
        if let Some(want) = &wanted.e_tag
            && want.value() != etag
        {
            return Err(s3_error!(
                InvalidPart,
                "part {number}'s ETag is {etag}, not {}",
                want.value()
            ));
        }
        if index + 1 < listed.len() && part.size < MIN_PART_BYTES {
            return Err(s3_error!(
                EntityTooSmall,
                "part {number} is {} bytes; every part but the last is at least 5 MiB",
                part.size
            ));
        }
        md5s.extend(hex::decode(&etag).map_err(errors::internal)?);
        parts.push(ComposedPart {
            leaves: kept_leaves(&part),
            name: part_name,
        });
    }
    let mut meta = upload.meta;
    meta.etag = format!("{}-{}", hex::encode(md5_of(&md5s)), listed.len());
    let object = gateway
        .node
        .compose(
            &name,
            &parts,
            FileMeta {
                object: Some(Box::new(meta)),
                ..FileMeta::default()
            },
        )
        .await
        .map_err(errors::object)?;
    forget(gateway, &input.upload_id).await;
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(etag_of(&object))),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    })
}

/// What a part is written for: the object it becomes (its copies go where
/// the object's will) and where in it the part likely starts.
pub(crate) struct PartOf {
    pub object: String,
    pub likely_offset: Option<u64>,
}

/// Where part `number` of `length` bytes starts if every part before it is
/// as long, as clients cut them (all parts but the last the same size): its
/// BLAKE3 leaves are hashed for that offset as it streams, and the whole's hash
/// needs no reading back where the guess was right (see
/// `peervault_store::tree_hash`). The last part is usually shorter; it alone
/// is read again at completion.
fn likely_offset(number: i32, length: Option<i64>) -> Option<u64> {
    let length = u64::try_from(length?).ok()?;
    u64::try_from(number - 1).ok()?.checked_mul(length)
}

/// The user-metadata entry of a part that holds its leaves. Parts are
/// PeerVault's own files: no client sees their metadata.
const LEAVES_KEY: &str = "peervault-leaves";

/// Records `leaves` in the metadata of the part being written.
pub(crate) fn keep_leaves(meta: &mut ObjectMeta, leaves: &PartLeaves) {
    let text = format!(
        "{}:{}",
        leaves.offset,
        tree_hash::leaves_to_text(&leaves.leaves)
    );
    meta.user.push((LEAVES_KEY.to_string(), text));
}

/// The leaves recorded with `part`, if any (and readable).
fn kept_leaves(part: &ObjectInfo) -> Option<PartLeaves> {
    let meta = part.meta.object.as_deref()?;
    let (_, text) = meta.user.iter().find(|(k, _)| k == LEAVES_KEY)?;
    let (offset, leaves) = text.split_once(':')?;
    Some(PartLeaves {
        offset: offset.parse().ok()?,
        leaves: tree_hash::leaves_from_text(leaves)?,
    })
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    use s3s::crypto::Checksum;
    s3s::crypto::Md5::checksum(bytes)
}

/// Removes every file of upload `id` for good (the object, if completed,
/// keeps the chunks it uses).
async fn forget(gateway: &Gateway, id: &str) {
    let Ok(files) = gateway.node.objects(&names::upload_prefix(id)).await else {
        return;
    };
    for file in files {
        if let Err(e) = gateway.node.remove_object(&file.name, true).await {
            tracing::warn!("could not remove {} of upload {id}: {e}", file.name);
        }
    }
}

pub(crate) async fn abort(
    gateway: &Gateway,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    upload(gateway, &input.upload_id, &input.bucket, &input.key).await?;
    forget(gateway, &input.upload_id).await;
    Ok(AbortMultipartUploadOutput::default())
}

pub(crate) async fn list_parts(
    gateway: &Gateway,
    input: ListPartsInput,
) -> S3Result<ListPartsOutput> {
    upload(gateway, &input.upload_id, &input.bucket, &input.key).await?;
    let prefix = names::parts_prefix(&input.upload_id);
    let files = gateway
        .node
        .objects(&prefix)
        .await
        .map_err(errors::object)?;
    let after = input.part_number_marker.unwrap_or(0);
    let max = input.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
    let mut parts: Vec<Part> = files
        .iter()
        .filter_map(|f| {
            let number: i32 = f.name[prefix.len()..].parse().ok()?;
            (number > after).then(|| Part {
                part_number: Some(number),
                size: Some(f.size as i64),
                e_tag: Some(ETag::Strong(etag_of(f))),
                last_modified: Some(timestamp(f.modified_unix_ms)),
                ..Default::default()
            })
        })
        .collect();
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts
        .last()
        .and_then(|p| p.part_number)
        .filter(|_| truncated);
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: Some("peervault".into()),
            id: Some("peervault".into()),
        }),
        owner: Some(owner()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    })
}

pub(crate) async fn list_uploads(
    gateway: &Gateway,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    gateway.require_bucket(&input.bucket).await?;
    let records = gateway
        .node
        .objects(&names::uploads_prefix())
        .await
        .map_err(errors::object)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut uploads = Vec::new();
    for record in records.iter().filter(|r| r.name.ends_with("/upload")) {
        let id = record.name[names::uploads_prefix().len()..]
            .trim_end_matches("/upload")
            .to_string();
        let Ok(bytes) = read_small(&gateway.node, &record.name).await else {
            continue;
        };
        let Ok(upload) = serde_json::from_slice::<Upload>(&bytes) else {
            continue;
        };
        if upload.bucket != input.bucket || !upload.key.starts_with(&prefix) {
            continue;
        }
        let after_marker = match (&input.key_marker, &input.upload_id_marker) {
            (Some(key), Some(id_marker)) => (&upload.key, &id) > (key, id_marker),
            (Some(key), None) => &upload.key > key,
            _ => true,
        };
        if after_marker {
            uploads.push((upload.key, upload.initiated_unix_ms, id));
        }
    }
    uploads.sort();
    let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let last = uploads.last().cloned().filter(|_| truncated);
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: last.as_ref().map(|l| l.0.clone()),
        next_upload_id_marker: last.map(|l| l.2),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(
            uploads
                .into_iter()
                .map(|(key, initiated, id)| MultipartUpload {
                    key: Some(key),
                    upload_id: Some(id),
                    initiated: Some(timestamp(initiated)),
                    owner: Some(owner()),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    })
}
