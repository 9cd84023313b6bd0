//! Writing a file: the three-stage pipeline (see the module docs of
//! [`crate::vault`]), its commit, and the blob tap that streams a write's new
//! blobs to peers while it is stored.

use std::collections::HashMap;

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::{BlobTap, Inner, TappedBlob, Vault};
use crate::budget::Lease;
use crate::buffers::PooledBuf;
use crate::crypto::{CHUNK_HEADER_LEN, CHUNK_OVERHEAD, SHARD_MAGIC};
use crate::erasure::{Redundancy, ShardSet};
use crate::error::{Result, StoreError};
use crate::ids::ChunkId;
use crate::manifest::{CatalogueEntry, CodedChunk, Coding, FileMeta, Manifest};
use crate::names::validate_name;
use crate::segments::Slot;
use crate::space::{Pins, Reservation};
use crate::version::Version;

/// Chunks buffered between pipeline stages (per stage).
const PIPELINE_DEPTH: usize = 2;

/// Writes in progress at once; more wait before their stages start. Each
/// takes two threads of tokio's blocking pool (512) for its stages, and holds
/// them while it waits for the memory budget: were the pool full of writes
/// waiting, the writes holding the budget could never get their threads.
/// The carries' share of the budget (see `crate::budget`) bounds writes too,
/// but a large `--transfer-memory` would let thousands through.
pub(crate) const WRITERS: usize = 64;

/// What a completed write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub manifest: Manifest,
    /// Bytes of new blobs this write added to the store (deduplicated chunks add none).
    pub stored_bytes: u64,
    /// Chunks that were already present and were reused.
    pub reused_chunks: usize,
    /// True if an earlier version of the name was replaced.
    pub replaced: bool,
}

/// How [`Vault::write_file_as`] writes a file.
pub struct WriteAs {
    /// Makes the file's metadata once all of it is read.
    pub finish: FinishMeta,
    pub layout: Layout,
    /// The current version of the name that this write keeps anew (the same
    /// bytes, another layout): the write commits only if that version is
    /// still the current one, as [`Version::reencoding`] of it, and that
    /// version is then dropped rather than kept as history.
    pub reencodes: Option<Version>,
}

/// What a write stored, for its commit.
struct Stored {
    size: u64,
    state: SealState,
    new_chunks: Vec<(ChunkId, Slot)>,
    by_content: bool,
    reencodes: Option<Version>,
}

/// How a write keeps its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Whole sealed chunks, the same blobs on every holder.
    #[default]
    Whole,
    /// Each sealed chunk cut into the shards of `redundancy` (see
    /// [`crate::erasure`]), of which this node keeps those in `keep`; every
    /// shard goes to the write's tap, for the other holders.
    Coded {
        redundancy: Redundancy,
        keep: ShardSet,
    },
}

/// A blob on its way from the sealer to the writer (and the tap).
struct Staged {
    id: ChunkId,
    blob: Bytes,
    lease: Lease,
    /// Which shard of its chunk it is (coded writes).
    shard: Option<u8>,
    /// Written here (a coded write sends some shards to peers only).
    keep: bool,
}

/// What the sealer stage accumulated; dropping it releases its pins and reservation.
struct SealState {
    hasher: blake3::Hasher,
    ids: Vec<ChunkId>,
    /// A coded write's coding, its chunks added in order.
    coding: Option<Coding>,
    /// Each chunk's plaintext length, in order.
    lengths: Vec<u32>,
    reused: usize,
    _pins: Pins,
    _reservation: Reservation,
}

/// Where chunks end: by content (FastCDC, the gear table seeded from the
/// vault's key) when the chunk size allows it, so that a new version of a
/// file shares every chunk its unchanged parts fill with the versions already
/// stored, and only what changed is stored and sent again; at the chunk size
/// otherwise (chunk sizes under 4 KiB, which only tests use). Content-defined
/// chunks are 1/4 to 1 of the chunk size long, 1/2 on average, so the pooled
/// buffers still hold any chunk.
#[derive(Debug, Clone, Copy)]
struct Chunker {
    max: usize,
    by_content: Option<(u32, u32, u64)>,
}

impl Chunker {
    /// Chunk sizes below this are cut at fixed offsets.
    const MIN_CDC_CHUNK: u32 = 4096;

    fn for_size(chunk_size: u32, seed: u64) -> Chunker {
        let by_content = (Self::MIN_CDC_CHUNK..=fastcdc::v2020::MAXIMUM_MAX)
            .contains(&chunk_size)
            .then_some((chunk_size / 4, chunk_size / 2, seed));
        Chunker {
            max: chunk_size as usize,
            by_content,
        }
    }

    fn fixed(chunk_size: u32) -> Chunker {
        Chunker {
            max: chunk_size as usize,
            by_content: None,
        }
    }

    fn by_content(&self) -> bool {
        self.by_content.is_some()
    }

    /// The length of the chunk that starts `data` (at most the chunk size;
    /// all of `data` when it is shorter than the smallest chunk).
    fn cut(&self, data: &[u8]) -> usize {
        let Some((min, avg, seed)) = self.by_content else {
            return data.len().min(self.max);
        };
        if data.is_empty() {
            return 0;
        }
        let cdc = fastcdc::v2020::FastCDC::with_level_and_seed(
            data,
            min,
            avg,
            self.max as u32,
            fastcdc::v2020::Normalization::Level1,
            seed,
        );
        cdc.cut(0, data.len()).1
    }
}

fn seal_stage(
    inner: &Inner,
    layout: Layout,
    mut plain_rx: mpsc::Receiver<(PooledBuf, Lease)>,
    blob_tx: mpsc::Sender<Staged>,
) -> (SealState, Result<()>) {
    let mut state = SealState {
        hasher: blake3::Hasher::new(),
        ids: Vec::new(),
        coding: match layout {
            Layout::Whole => None,
            Layout::Coded { redundancy, .. } => Some(Coding {
                redundancy,
                chunks: Vec::new(),
            }),
        },
        lengths: Vec::new(),
        reused: 0,
        _pins: Pins::new(inner.pins.clone()),
        _reservation: Reservation::new(inner.space.clone()),
    };
    let mut seen = HashMap::new();
    let result = (|| {
        while let Some((mut buf, lease)) = plain_rx.blocking_recv() {
            let plain = &buf[CHUNK_HEADER_LEN..];
            state.hasher.update(plain);
            let id = inner.crypto.chunk_id(plain);
            state.ids.push(id);
            state.lengths.push(plain.len() as u32);
            if let Some(&first) = seen.get(&id) {
                // The same chunk again in this file: its shards are the first's.
                if let Some(coding) = &mut state.coding
                    && let Some(coded) = coding.chunks.get(first).cloned()
                {
                    coding.chunks.push(coded);
                }
                continue;
            }
            seen.insert(id, state.coding.as_ref().map_or(0, |c| c.chunks.len()));
            if let Layout::Coded { redundancy, keep } = layout {
                inner
                    .crypto
                    .seal_chunk_in_place(&id, &mut buf)
                    .map_err(|e| StoreError::io("sealing a chunk", std::io::Error::other(e)))?;
                let shards = crate::erasure::split_framed(redundancy, &buf, SHARD_MAGIC)
                    .map_err(|e| StoreError::io("coding a chunk", std::io::Error::other(e)))?;
                let coded = CodedChunk {
                    blob_len: buf.len() as u32,
                    shards: shards.iter().map(|s| inner.crypto.shard_id(s)).collect(),
                };
                drop(buf);
                let leases = lease.split(shards.len());
                for (j, (shard, lease)) in shards.into_iter().zip(leases).enumerate() {
                    let id = coded.shards[j];
                    let keep = keep.contains(j);
                    if keep {
                        state._pins.pin(id);
                        state._reservation.grow(shard.len() as u64)?;
                    }
                    let staged = Staged {
                        id,
                        blob: Bytes::from(shard),
                        lease,
                        shard: Some(j as u8),
                        keep,
                    };
                    if blob_tx.blocking_send(staged).is_err() {
                        return Ok(());
                    }
                }
                if let Some(coding) = &mut state.coding {
                    coding.chunks.push(coded);
                }
                continue;
            }
            // Pin before looking: once pinned, a present chunk cannot be removed.
            state._pins.pin(id);
            if inner.catalogue.has_chunk(&id)? {
                state.reused += 1;
                continue;
            }
            let blob_len = (buf.len() + CHUNK_OVERHEAD - CHUNK_HEADER_LEN) as u64;
            state._reservation.grow(blob_len)?;
            inner
                .crypto
                .seal_chunk_in_place(&id, &mut buf)
                .map_err(|e| StoreError::io("sealing a chunk", std::io::Error::other(e)))?;
            let len = buf.len();
            let staged = Staged {
                id,
                blob: buf.into_bytes(0..len),
                lease,
                shard: None,
                keep: true,
            };
            if blob_tx.blocking_send(staged).is_err() {
                // The writer failed; the caller reports its error.
                break;
            }
        }
        Ok(())
    })();
    (state, result)
}

/// Appends the write's blobs to a segment of its own (see [`crate::segments`]),
/// handing each on to `tap` once written, and makes them all durable at the end:
/// one `fdatasync` for the whole write. Returns the slots written, also when it
/// fails (their space is then the caller's to give back).
fn write_stage(
    inner: &Inner,
    mut blob_rx: mpsc::Receiver<Staged>,
    tap: Option<BlobTap>,
) -> (Vec<(ChunkId, Slot)>, Result<()>) {
    let mut appender = inner.files.appender();
    let mut written = Vec::new();
    let result = (|| {
        let mut tap = tap;
        while let Some(staged) = blob_rx.blocking_recv() {
            let Staged {
                id,
                blob,
                lease,
                shard,
                keep,
            } = staged;
            if keep {
                let slot = appender
                    .append(&blob)
                    .map_err(|e| StoreError::io(format!("writing chunk {id}"), e))?;
                written.push((id, slot));
            }
            // Hand the sealed blob on (to replication), with what pays for it;
            // a closed tap is simply dropped.
            if let Some(t) = &tap
                && t.blocking_send(TappedBlob {
                    id,
                    blob,
                    lease,
                    shard,
                })
                .is_err()
            {
                tap = None;
            }
        }
        appender
            .sync()
            .map_err(|e| StoreError::io("making chunks durable", e))
    })();
    (written, result)
}

/// The coding of the concatenation of `parts`: none if none is coded, theirs
/// if all are coded alike. Parts kept differently (the vault's redundancy
/// changed during an upload) cannot make one file.
fn compose_coding(parts: &[Manifest]) -> Result<Option<Coding>> {
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let redundancy = first.redundancy();
    if parts.iter().any(|p| p.redundancy() != redundancy) {
        return Err(StoreError::Invalid(
            "the parts are kept differently (some erasure coded, some not, or with other \
             redundancy): upload the object again"
                .into(),
        ));
    }
    Ok(redundancy.map(|redundancy| Coding {
        redundancy,
        chunks: parts
            .iter()
            .flat_map(|p| p.coding.iter().flat_map(|c| c.chunks.iter().cloned()))
            .collect(),
    }))
}

/// Makes a file's metadata once all of it is read (see
/// [`Vault::write_file_finishing`]).
pub type FinishMeta = Box<dyn FnOnce() -> std::io::Result<FileMeta> + Send>;

impl Vault {
    /// Stores the bytes of `reader` under `name`, replacing any earlier version.
    /// `size_hint`, if known, lets an oversized file be refused before any byte is read.
    pub async fn write_file<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.write_file_tapped(name, reader, size_hint, None).await
    }

    /// Like [`Vault::write_file`], also handing every new sealed blob to `tap` as soon
    /// as it is written, so that it can travel to other nodes while the rest of the
    /// file is still being stored. Back-pressure from the tap slows the write; a
    /// dropped tap receiver is ignored.
    pub async fn write_file_tapped<R>(
        &self,
        name: &str,
        reader: R,
        size_hint: Option<u64>,
        tap: Option<BlobTap>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.write_file_with(name, FileMeta::default(), reader, size_hint, tap)
            .await
    }

    /// [`Vault::write_file_tapped`] of a file with what it was on its disk
    /// (mode, modification time, link target).
    pub async fn write_file_with<R>(
        &self,
        name: &str,
        meta: FileMeta,
        reader: R,
        size_hint: Option<u64>,
        tap: Option<BlobTap>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.write_file_finishing(name, Box::new(move || Ok(meta)), reader, size_hint, tap)
            .await
    }

    /// [`Vault::write_file_with`], with the file's metadata made by `finish`
    /// once every byte is read (an S3 ETag is the MD5 of the content). An
    /// error from `finish` abandons the write, as a read error does.
    pub async fn write_file_finishing<R>(
        &self,
        name: &str,
        finish: FinishMeta,
        reader: R,
        size_hint: Option<u64>,
        tap: Option<BlobTap>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        let how = WriteAs {
            finish,
            layout: Layout::Whole,
            reencodes: None,
        };
        self.write_file_as(name, how, reader, size_hint, tap).await
    }

    /// [`Vault::write_file_finishing`], as `how` says: the chunks kept as
    /// its layout says, and the version a re-encoding.
    pub async fn write_file_as<R>(
        &self,
        name: &str,
        how: WriteAs,
        mut reader: R,
        size_hint: Option<u64>,
        tap: Option<BlobTap>,
    ) -> Result<WriteOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        let WriteAs {
            finish,
            layout,
            reencodes,
        } = how;
        validate_name(name)?;
        if let Some(size) = size_hint {
            self.check_fits(size)?;
        }
        let chunk_size = self.inner.chunk_size as usize;
        // Admitted first (see `WRITERS` and `crate::budget`): the bytes past
        // each chunk's cut, the start of the next, are paid for until the
        // write ends. Before the stages below take their two blocking threads:
        // 2,000 writes at once whose stages all started filled tokio's blocking
        // pool (512) with stages waiting for writes not yet admitted, and the
        // admitted ones' stages never got a thread.
        let _writer = self.inner.writers.acquire().await.ok();
        let budget = &self.inner.budget;
        // A carry never outgrows the file: a small file pays for what it can
        // hold, so that many small writes run at once (up to `WRITERS`).
        let carry_bytes = size_hint.map_or(chunk_size, |size| size.min(chunk_size as u64) as usize);
        let _carry_lease = budget.admit_write(carry_bytes).await;
        let (plain_tx, plain_rx) = mpsc::channel::<(PooledBuf, Lease)>(PIPELINE_DEPTH);
        // A coded chunk is several blobs: room for all of one chunk's.
        let depth = match layout {
            Layout::Whole => PIPELINE_DEPTH,
            Layout::Coded { redundancy, .. } => PIPELINE_DEPTH * redundancy.total(),
        };
        let (blob_tx, blob_rx) = mpsc::channel::<Staged>(depth);
        let inner = self.inner.clone();
        let sealer =
            tokio::task::spawn_blocking(move || seal_stage(&inner, layout, plain_rx, blob_tx));
        let inner = self.inner.clone();
        let writer = tokio::task::spawn_blocking(move || write_stage(&inner, blob_rx, tap));

        let chunker = match self.inner.content_defined_chunks {
            true => Chunker::for_size(self.inner.chunk_size, self.inner.crypto.cdc_seed()),
            false => Chunker::fixed(self.inner.chunk_size),
        };
        let mut size = 0u64;
        let mut read_error = None;
        // Bytes read past the last cut, the start of the next chunk (paid for
        // above); every chunk buffer is paid for before it is filled, and its
        // lease travels with it.
        let buffer_len = self.inner.blob_buffer_len();
        let mut carry: Vec<u8> = Vec::new();
        let mut eof = false;
        loop {
            let lease = budget.lease(buffer_len).await;
            let mut buf = self.inner.buffers.take();
            buf.resize(CHUNK_HEADER_LEN, 0);
            buf.extend_from_slice(&carry);
            carry.clear();
            let full = CHUNK_HEADER_LEN + chunk_size;
            while !eof && buf.len() < full {
                // Reads into the buffer's spare capacity: no zeroing, no reallocation.
                let room = full - buf.len();
                match reader.read_buf(&mut (&mut *buf).limit(room)).await {
                    Ok(0) => eof = true,
                    Ok(_) => {}
                    Err(e) => {
                        read_error = Some(e);
                        break;
                    }
                }
            }
            if read_error.is_some() {
                break;
            }
            let cut = chunker.cut(&buf[CHUNK_HEADER_LEN..]);
            carry.extend_from_slice(&buf[CHUNK_HEADER_LEN + cut..]);
            buf.truncate(CHUNK_HEADER_LEN + cut);
            if cut > 0 {
                size += cut as u64;
                // A closed channel means a later stage failed; its error is reported below.
                if plain_tx.send((buf, lease)).await.is_err() {
                    break;
                }
            }
            if eof && carry.is_empty() {
                break;
            }
        }
        drop(plain_tx);

        let sealed = sealer
            .await
            .map_err(|e| StoreError::io("sealing chunks", std::io::Error::other(e)))?;
        let written = writer
            .await
            .map_err(|e| StoreError::io("writing chunks", std::io::Error::other(e)))?;
        let (state, seal_result) = sealed;
        let (new_chunks, write_result) = written;
        let failure = match (read_error, write_result, seal_result) {
            (Some(e), _, _) => StoreError::io("reading the input", e),
            (None, Err(e), _) => e,
            (None, Ok(()), Err(e)) => e,
            (None, Ok(()), Ok(())) => match finish() {
                Ok(meta) => {
                    let by_content = chunker.by_content();
                    let stored = Stored {
                        size,
                        state,
                        new_chunks,
                        by_content,
                        reencodes,
                    };
                    return self.commit_write(name, meta, stored).await;
                }
                Err(e) => StoreError::io("finishing the file", e),
            },
        };
        drop(state);
        let slots: Vec<Slot> = new_chunks.iter().map(|(_, slot)| *slot).collect();
        if let Err(e) = self
            .blocking(move |inner| {
                inner.files.discard(&slots);
                Ok(())
            })
            .await
        {
            tracing::warn!("could not free the space of a failed write: {e}");
        }
        Err(failure)
    }

    async fn commit_write(
        &self,
        name: &str,
        meta: FileMeta,
        stored: Stored,
    ) -> Result<WriteOutcome> {
        let Stored {
            size,
            state,
            new_chunks,
            by_content,
            reencodes,
        } = stored;
        let name = name.to_string();
        self.blocking(move |inner| {
            let reencoding = reencodes.map(|of| crate::manifest::Reencoding {
                of,
                at_ms: crate::version::unix_millis_now(),
            });
            let version = match reencodes {
                None => Version {
                    clock: inner.clock.tick(),
                    origin: inner.origin,
                },
                Some(old) => {
                    let current = inner.catalogue.entry(&name)?.map(|e| e.version());
                    if current != Some(old) {
                        inner
                            .files
                            .discard(&new_chunks.iter().map(|(_, s)| *s).collect::<Vec<_>>());
                        return Err(StoreError::Invalid(format!(
                            "{name:?} was written again while it was re-encoded; the new \
                             version is re-encoded next"
                        )));
                    }
                    let version = Version::reencoding(old, inner.origin);
                    inner.clock.observe(version.clock);
                    version
                }
            };
            let manifest = Manifest {
                name,
                size,
                hash: *state.hasher.finalize().as_bytes(),
                chunk_size: inner.chunk_size,
                chunks: state.ids.clone(),
                version,
                author: inner.author.clone(),
                meta,
                lengths: if by_content {
                    state.lengths.clone()
                } else {
                    Vec::new()
                },
                coding: state.coding.clone().map(Box::new),
                reencodes: reencoding,
            };
            let entry = CatalogueEntry::File(manifest.clone());
            let outcome = match inner.apply_entry(&entry, &new_chunks) {
                Ok(outcome) => outcome,
                Err(e) => {
                    inner
                        .files
                        .discard(&new_chunks.iter().map(|(_, s)| *s).collect::<Vec<_>>());
                    return Err(e);
                }
            };
            inner
                .files
                .settle(&outcome.slots.recorded, &outcome.slots.unrecorded);
            let reused_chunks = state.reused;
            // Our own pins must go before the old version's chunks can be forgotten.
            drop(state);
            inner.forget(&outcome.unreferenced)?;
            Ok(WriteOutcome {
                manifest,
                stored_bytes: outcome.recorded_bytes,
                reused_chunks,
                replaced: matches!(outcome.previous, Some(CatalogueEntry::File(_))),
            })
        })
        .await
    }

    /// Makes `name` the concatenation of `parts` without copying a byte: the
    /// new version lists their chunks in order (an S3 multipart upload, a
    /// copy). `hash` is BLAKE3 of the whole, which the caller computed by
    /// reading the parts (a single part's is its own). The parts' records must
    /// stay until this returns, so that their chunks are not collected first.
    pub async fn compose(
        &self,
        name: &str,
        parts: Vec<Manifest>,
        hash: [u8; 32],
        meta: FileMeta,
    ) -> Result<WriteOutcome> {
        validate_name(name)?;
        let name = name.to_string();
        self.blocking(move |inner| {
            let mut chunks = Vec::new();
            let mut lengths = Vec::new();
            let mut size = 0u64;
            let mut chunk_size = inner.chunk_size;
            let coding = compose_coding(&parts)?.map(Box::new);
            for part in &parts {
                chunk_size = chunk_size.max(part.chunk_size);
                for index in 0..part.chunks.len() {
                    lengths.push(part.chunk_len(index) as u32);
                }
                chunks.extend_from_slice(&part.chunks);
                size += part.size;
            }
            let manifest = Manifest {
                name,
                size,
                hash,
                chunk_size,
                chunks,
                version: Version {
                    clock: inner.clock.tick(),
                    origin: inner.origin,
                },
                author: inner.author.clone(),
                meta,
                lengths,
                coding,
                reencodes: None,
            };
            let outcome = inner.apply_entry(&CatalogueEntry::File(manifest.clone()), &[])?;
            inner.forget(&outcome.unreferenced)?;
            Ok(WriteOutcome {
                manifest,
                stored_bytes: 0,
                reused_chunks: 0,
                replaced: matches!(outcome.previous, Some(CatalogueEntry::File(_))),
            })
        })
        .await
    }
}
