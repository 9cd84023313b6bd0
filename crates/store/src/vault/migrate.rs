//! Moving the blobs of a format 1 vault (a file each, under `chunks/`) into
//! segment files.
//!
//! Runs when a vault written by an earlier version opens, before anything else
//! uses it. Blobs move in batches: appended to a segment and made durable, then, in
//! one transaction, recorded at their slots with their old records dropped, and
//! only then are their files deleted. A crash at any point leaves every blob
//! recorded either at its file or at its slot, and the next open carries on where
//! this one stopped; a file whose record has moved is debris, removed at the end.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::catalogue::Catalogue;
use crate::error::{Result, StoreError};
use crate::ids::ChunkId;
use crate::segments::{MAX_BLOB_LEN, Segments, Slot};

/// Bytes moved between two commits: each commit costs an `fdatasync` and a
/// transaction, and a crash repeats at most this much work.
const BATCH_BYTES: usize = 64 << 20;

/// Moves every blob that the database records as a format 1 file into segments.
/// `created`: the database is new (a vault being rebuilt from peers), so it
/// records none of the files there may be. Returns true if records changed.
pub(super) fn blob_files_into_segments(
    data_dir: &Path,
    catalogue: &Catalogue,
    segments: &Segments,
    created: bool,
) -> Result<bool> {
    let legacy_dir = data_dir.join("chunks");
    // Temporary files of format 1 writes are debris whatever else happens.
    remove_tree(&data_dir.join("tmp"))?;
    let legacy = catalogue.legacy_chunks()?;
    let has_dir = legacy_dir.is_dir();
    if legacy.is_empty() && !has_dir {
        return Ok(false);
    }
    if created {
        tracing::warn!(
            "{} holds chunk files that an earlier version recorded in a database that is \
             gone; this node no longer uses them. Delete that directory once the other \
             nodes hold every file again (`peervault verify` on them)",
            legacy_dir.display()
        );
        return Ok(false);
    }
    if !legacy.is_empty() {
        tracing::info!(
            "moving {} chunk files into segment files (once, after an upgrade)",
            legacy.len()
        );
    }
    let mut batch = Batch::default();
    let mut appender = segments.appender();
    for (id, _) in legacy {
        let path = legacy_dir.join(hex::encode(&id.0[..1])).join(id.to_hex());
        match read_blob_file(&path) {
            Ok(blob) => {
                let slot = appender
                    .append(&blob)
                    .map_err(|e| StoreError::io(format!("moving chunk {id} into a segment"), e))?;
                batch.bytes += blob.len();
                batch.moved.push((id, slot));
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        "chunk file {} cannot be moved ({e}); it goes to quarantine and the \
                         repair worker fetches the chunk from a peer",
                        path.display()
                    );
                    let aside = data_dir
                        .join("quarantine")
                        .join(format!("{}.legacy", id.to_hex()));
                    let _ = fs::rename(&path, aside);
                }
                batch.dropped.push(id);
            }
        }
        if batch.bytes >= BATCH_BYTES {
            batch.commit(&legacy_dir, catalogue, segments, &mut appender)?;
        }
    }
    batch.commit(&legacy_dir, catalogue, segments, &mut appender)?;
    // Whatever is left there, no record names.
    remove_tree(&legacy_dir)?;
    catalogue.finish_migration()?;
    Ok(true)
}

#[derive(Default)]
struct Batch {
    moved: Vec<(ChunkId, Slot)>,
    dropped: Vec<ChunkId>,
    bytes: usize,
}

impl Batch {
    fn commit(
        &mut self,
        legacy_dir: &Path,
        catalogue: &Catalogue,
        segments: &Segments,
        appender: &mut crate::segments::Appender,
    ) -> Result<()> {
        appender
            .sync()
            .map_err(|e| StoreError::io("making moved chunks durable", e))?;
        catalogue.migrate_legacy(&self.moved, &self.dropped)?;
        let slots: Vec<Slot> = self.moved.iter().map(|(_, slot)| *slot).collect();
        segments.settle(&slots, &[]);
        for (id, _) in &self.moved {
            let path = legacy_dir.join(hex::encode(&id.0[..1])).join(id.to_hex());
            // Left behind, it is removed with the directory at the end.
            let _ = fs::remove_file(path);
        }
        *self = Batch::default();
        Ok(())
    }
}

/// Reads a format 1 blob file, refusing sizes no blob has.
fn read_blob_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_BLOB_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, larger than any chunk"),
        ));
    }
    let mut blob = Vec::with_capacity(len as usize);
    file.read_to_end(&mut blob)?;
    Ok(blob)
}

fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(
            format!("removing {} (left by an earlier version)", dir.display()),
            e,
        )),
        _ => Ok(()),
    }
}
