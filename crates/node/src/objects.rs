//! Objects: what the S3 gateway (the `peervault-s3` crate) needs of a node,
//! and nothing more.
//!
//! An object is a vault file like any other, so that `peervault ls` and `get`
//! see what S3 clients write and the other way round; what S3 adds (the ETag
//! clients check, content type, user metadata) rides in the manifest's
//! [`FileMeta::object`]. Three things a file API does not give:
//!
//! - metadata made once every byte is read ([`Node::put_object`] takes a
//!   [`FinishMeta`]: the ETag of a single upload is the MD5 of the content);
//! - byte ranges read without reading what comes before ([`Node::read_object`]);
//! - a file made of other files without copying a byte ([`Node::compose`]): a
//!   multipart upload's parts become one object, a copy is a new manifest.
//!
//! Names under [`RESERVED_PREFIX`] are PeerVault's own (the gateway's access
//! keys, empty buckets, uploads in progress): replicated, synced and repaired
//! like any file, so that every node's gateway sees them, but not listed by
//! `ls` and refused to `put` and `rm`.

use std::ops::Range;

use tokio::io::AsyncRead;

use peervault_store::tree_hash::{self, LeafHasher};
use peervault_store::{FileMeta, FileReader, FileSummary, FinishMeta, Manifest, Paying};

use crate::Node;
use crate::error::{NodeError, Result};

/// One part of a composed object: the file, and its BLAKE3 leaves if they
/// were hashed as it was written (see [`peervault_store::tree_hash`]).
#[derive(Debug, Clone)]
pub struct ComposedPart {
    pub name: String,
    pub leaves: Option<PartLeaves>,
}

impl ComposedPart {
    /// A part whose leaves are not known (it is read to hash the whole).
    pub fn named(name: impl Into<String>) -> ComposedPart {
        ComposedPart {
            name: name.into(),
            leaves: None,
        }
    }
}

/// A part's BLAKE3 leaves, hashed as if it started at `offset` of the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartLeaves {
    pub offset: u64,
    pub leaves: Vec<[u8; 32]>,
}

/// Names PeerVault keeps for itself (see the module docs).
pub const RESERVED_PREFIX: &str = ".peervault/";

/// True if `name` is one of PeerVault's own.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Refuses a user's write or delete of one of PeerVault's own names.
pub(crate) fn refuse_reserved(name: &str) -> Result<()> {
    if is_reserved(name) {
        return Err(NodeError::Invalid(format!(
            "{name:?}: names under {RESERVED_PREFIX} are PeerVault's own (S3 access keys, \
             buckets, uploads); use another name, or `peervault s3 keys` for keys"
        )));
    }
    Ok(())
}

/// One object: a current file version as the gateway shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the content.
    pub hash: [u8; 32],
    /// When this version was written, milliseconds since the Unix epoch.
    pub modified_unix_ms: u64,
    pub meta: FileMeta,
}

impl ObjectInfo {
    fn of_manifest(m: &Manifest) -> Self {
        Self::of_summary(&FileSummary::of(m, false))
    }

    fn of_summary(s: &FileSummary) -> Self {
        Self {
            name: s.name.clone(),
            size: s.size,
            hash: s.hash,
            modified_unix_ms: s.version.unix_millis(),
            meta: s.meta.clone(),
        }
    }
}

impl Node {
    /// Stores `reader` under `name` (PeerVault's own names included) with the
    /// metadata `finish` makes after the last byte; an error from `finish`
    /// (a digest that does not match) abandons the write and keeps what was
    /// there. Replicated like [`Node::store`].
    pub async fn put_object<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
        finish: FinishMeta,
    ) -> Result<ObjectInfo>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.put_part(name, name, reader, size_hint, finish).await
    }

    /// [`Node::put_object`] of a file that will become part of `object` (an
    /// S3 multipart upload's part): its copies go to the peers that `object`'s
    /// will, so that composing the object copies no chunk again. Placed by
    /// its own name, each part would go to peers of its own and the object's
    /// holders would then fetch every chunk a second time.
    pub async fn put_part<R>(
        &self,
        name: &str,
        object: &str,
        reader: R,
        size_hint: Option<u64>,
        finish: FinishMeta,
    ) -> Result<ObjectInfo>
    where
        R: AsyncRead + Unpin + Send,
    {
        let write = crate::writes::Write {
            name,
            placed_with: object,
            finish,
            size_hint,
            progress: None,
            keeping: crate::settings::Keeping::Configured,
            reencodes: None,
        };
        let (_, manifest) = self.write_replicated(write, reader).await?;
        Ok(ObjectInfo::of_manifest(&manifest))
    }

    /// The current version of `name`, from the local catalogue.
    pub async fn object(&self, name: &str) -> Result<ObjectInfo> {
        let manifest = self.inner.ctx.vault.stat(name).await?;
        Ok(ObjectInfo::of_manifest(&manifest))
    }

    /// Every current file whose name starts with `prefix`, sorted by name (S3's
    /// order: bytes of UTF-8), from the local catalogue: no peer is asked.
    pub async fn objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let summaries = self.inner.ctx.vault.summaries_under(prefix).await?;
        Ok(summaries
            .iter()
            .map(|(_, s)| ObjectInfo::of_summary(s))
            .collect())
    }

    /// Opens the bytes of `name` in `range` (all of it if `None`), verified,
    /// chunks this node lacks fetched from peers. Only the chunks that hold the
    /// range are read.
    pub async fn read_object(&self, name: &str, range: Option<Range<u64>>) -> Result<FileReader> {
        self.open(name, None, range).await
    }

    /// [`Node::read_object`] of the source of a copy into a new object
    /// ([`Node::put_object`] of these bytes): the write pays for the bytes it
    /// copies, and the read waits for no budget (see [`Paying::TheWriteItFeeds`]).
    pub async fn read_object_to_copy(
        &self,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<FileReader> {
        self.open_paying(name, None, range, Paying::TheWriteItFeeds)
            .await
    }

    /// Makes `name` the concatenation of the current versions of `parts`, with
    /// `meta`, without copying their chunks: a new manifest lists them. The
    /// whole's BLAKE3 comes from the parts' leaves where they were hashed at
    /// the offset they have in the whole (see
    /// [`peervault_store::tree_hash`]); parts without are read. The parts
    /// stay; the caller removes them when it no longer needs them.
    pub async fn compose(
        &self,
        name: &str,
        parts: &[ComposedPart],
        meta: FileMeta,
    ) -> Result<ObjectInfo> {
        let vault = &self.inner.ctx.vault;
        let mut manifests = Vec::with_capacity(parts.len());
        for part in parts {
            manifests.push(vault.stat(&part.name).await?);
        }
        let hash = match manifests.as_slice() {
            [one] => one.hash,
            _ => self.hash_of(&manifests, parts).await?,
        };
        let out = vault
            .compose(name, manifests, hash, meta)
            .await
            .inspect_err(|e| self.inner.ctx.metrics.failed(e))?;
        self.inner.ctx.metrics.files_stored.inc();
        // Parts written through other nodes are only announced: those nodes
        // hold the chunks, and the record tells them they hold the whole.
        self.spread(&out.manifest).await?;
        Ok(ObjectInfo::of_manifest(&out.manifest))
    }

    /// BLAKE3 of the versions `manifests` name, one after the other: merged
    /// from the leaves of `parts` that were hashed where they now start, the
    /// others read and hashed here; all read when a part does not start on a
    /// leaf, or the whole is one leaf.
    async fn hash_of(&self, manifests: &[Manifest], parts: &[ComposedPart]) -> Result<[u8; 32]> {
        let total: u64 = manifests.iter().map(|m| m.size).sum();
        let mut all = Vec::new();
        let mut offset = 0u64;
        for (m, part) in manifests.iter().zip(parts) {
            let Some(mut hasher) = LeafHasher::new(offset) else {
                return self.read_and_hash(manifests).await;
            };
            match &part.leaves {
                Some(known) if known.offset == offset => all.extend_from_slice(&known.leaves),
                _ => {
                    self.read_each(m, |piece| hasher.update(piece)).await?;
                    all.extend(hasher.finish());
                }
            }
            offset += m.size;
        }
        let expected_leaves = total.div_ceil(tree_hash::LEAF);
        match tree_hash::root_of(all.iter().copied()) {
            Some(root) if all.len() as u64 == expected_leaves => Ok(*root.as_bytes()),
            _ => self.read_and_hash(manifests).await,
        }
    }

    /// BLAKE3 of `manifests` one after the other, every byte read.
    async fn read_and_hash(&self, manifests: &[Manifest]) -> Result<[u8; 32]> {
        let mut hasher = blake3::Hasher::new();
        for m in manifests {
            self.read_each(m, |piece| {
                hasher.update(piece);
            })
            .await?;
        }
        Ok(*hasher.finalize().as_bytes())
    }

    /// Calls `f` with every verified piece of the version `m` names, in order.
    async fn read_each(&self, m: &Manifest, mut f: impl FnMut(&[u8])) -> Result<()> {
        use futures::StreamExt;
        let source = self.inner.replicator.chunk_source(&m.name).await;
        let mut reader = self
            .inner
            .ctx
            .vault
            .read_range_with(&m.name, Some(m.version), None, Some(source))
            .await?;
        while let Some(piece) = reader.next().await {
            f(&piece?);
        }
        Ok(())
    }

    /// Deletes `name` (PeerVault's own names included); `purge` as
    /// [`Node::purge`] does.
    pub async fn remove_object(&self, name: &str, purge: bool) -> Result<()> {
        self.remove_any(name, purge).await.map(|_| ())
    }
}
