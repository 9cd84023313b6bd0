//! What PeerVault's black-box tests, the chaos checker and the benchmarks share.
//!
//! Each of them used to start `peervault` processes, find free ports and make
//! test data in its own way (three spawners, three `free_port`s); a fix to one,
//! such as waiting for the control socket rather than for a log line, reached
//! only that one. Here they are written once:
//!
//! * [`process`]: a node process started with a clean environment and its output
//!   in a log file, ready when its control socket answers, signalled (stop,
//!   pause, resume, SIGKILL), restarted on its data dir, and killed when dropped,
//!   so that a failing test leaves no process behind;
//! * [`disk`]: a node's segment files, the bytes of blobs in them, a flipped bit;
//! * [`data`]: incompressible, reproducible bytes from BLAKE3's extendable output,
//!   as a file, a buffer or an async reader, and hashes of files;
//! * [`free_port`] and [`eventually`].
//!
//! It depends on no PeerVault crate: it drives the binary from outside, as a
//! user would.

pub mod data;
pub mod disk;
pub mod process;

use std::time::{Duration, Instant};

pub use process::{Launch, NodeProcess, StartError};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Polls `check` every 100 ms until it is true; panics after `within`.
pub fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
