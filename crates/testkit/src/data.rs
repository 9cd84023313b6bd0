//! Incompressible, reproducible test data from BLAKE3's extendable output: the
//! same seed gives the same bytes on every machine, and no compression or
//! deduplication can make a transfer of it look faster than it is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

fn stream(seed: u64) -> blake3::OutputReader {
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
}

/// `len` bytes for `seed`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    stream(seed).fill(&mut out);
    out
}

/// Writes the `len` bytes for `seed` to `path`; returns their BLAKE3 hash.
pub fn write_file(path: &Path, len: u64, seed: u64) -> std::io::Result<blake3::Hash> {
    let mut xof = stream(seed);
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        xof.fill(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    file.flush()?;
    Ok(hasher.finalize())
}

/// BLAKE3 of a file, streaming.
pub fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize())
}

/// The bytes for a seed, cut to a length, as an async reader (to store without
/// a file).
pub struct RandomReader {
    xof: blake3::OutputReader,
    left: u64,
}

impl RandomReader {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            xof: stream(seed),
            left: len,
        }
    }
}

impl AsyncRead for RandomReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let dest = buf.initialize_unfilled_to(n);
        self.xof.fill(dest);
        buf.advance(n);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Every regular file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_bytes_and_the_file_its_hash() {
        let dir = std::env::temp_dir().join(format!("pv-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let hash = write_file(&path, 3 << 20, 7).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes(3 << 20, 7));
        assert_eq!(hash_file(&path).unwrap(), hash);
        assert_ne!(bytes(64, 7), bytes(64, 8));
        assert_eq!(files_under(&dir), vec![path]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
