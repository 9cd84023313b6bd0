//! Looking at and damaging a node's files from outside, as the fault tests do.

use std::path::{Path, PathBuf};

use crate::data::files_under;

/// A node's segment files (where its chunk blobs lie), in the order created.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(&data_dir.join("segments"))
}

/// Bytes of chunk blob data in a node's segment files: whole blocks, holes
/// excluded (found with `SEEK_DATA` and `SEEK_HOLE`; `st_blocks` would also count
/// the file system's own blocks).
pub fn blob_bytes_on_disk(data_dir: &Path) -> u64 {
    use rustix::fs::{SeekFrom, seek};
    let mut total = 0;
    for path in segment_files(data_dir) {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let mut at = 0;
        while let Ok(start) = seek(&file, SeekFrom::Data(at)) {
            let Ok(end) = seek(&file, SeekFrom::Hole(start)) else {
                break;
            };
            total += end - start;
            at = end;
        }
    }
    total
}

/// Flips the bits of `mask` in the byte at `at` of `path`, durably.
pub fn flip_byte(path: &Path, at: u64, mask: u8) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::options().read(true).write(true).open(path)?;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at)?;
    file.write_all_at(&[byte[0] ^ mask], at)?;
    file.sync_all()
}
