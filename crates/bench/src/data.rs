//! Incompressible, reproducible benchmark data from the BLAKE3 extendable output.

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// An endless, seeded byte stream cut to `len` bytes.
pub struct RandomReader {
    xof: blake3::OutputReader,
    left: u64,
}

impl RandomReader {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            xof: blake3::Hasher::new()
                .update(&seed.to_le_bytes())
                .finalize_xof(),
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

/// Writes `len` random bytes to `path` (not timed by callers).
pub fn write_file(path: &Path, seed: u64, len: u64) -> std::io::Result<()> {
    let mut xof = blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof();
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        xof.fill(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.flush()
}
