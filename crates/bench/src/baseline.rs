//! Raw baselines: what the machine does with the same bytes and no PeerVault.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const BUF_BYTES: usize = 1 << 20;

/// Copies `from` to `to` and fsyncs `to`: the cost of durably writing the bytes.
pub fn write_fsync(from: &Path, to: &Path) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut src = File::open(from)?;
    let mut dst = File::create(to)?;
    let mut buf = vec![0u8; BUF_BYTES];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()?;
    Ok(start.elapsed())
}

/// Reads `path` to the end: the cost of getting the bytes back.
pub fn read(path: &Path) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut src = File::open(path)?;
    let mut buf = vec![0u8; BUF_BYTES];
    while src.read(&mut buf)? > 0 {}
    Ok(start.elapsed())
}

/// Empties the page cache so the next read comes from the disk. Needs root; returns
/// false (and changes nothing) otherwise.
pub fn drop_caches() -> bool {
    // SAFETY-free: sync(2) through the command, then the documented sysctl.
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}
