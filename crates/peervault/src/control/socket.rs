//! Where the control socket lives, and how to reach it from a long path.
//!
//! The socket is `<data dir>/control.sock`. The data dir is created owner-only
//! (0700) and the socket is made 0600, so only the user who runs the node can drive
//! it: the file system is the authentication.
//!
//! Unix socket addresses are limited to 107 bytes. When the data dir's path is
//! longer, both sides open the directory and address the socket through
//! `/proc/self/fd/<fd>/control.sock`, which is always short.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// File name of the socket inside the data dir.
pub const SOCKET_FILE: &str = "control.sock";

/// Longest path `sockaddr_un` holds, minus the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// An address usable with `bind`/`connect`; keeps the directory open if needed.
#[derive(Debug)]
pub struct SocketAddress {
    pub path: PathBuf,
    _dir: Option<File>,
}

/// The socket's real location, for messages.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// An address for the socket of `data_dir` that fits in `sockaddr_un`.
pub fn socket_address(data_dir: &Path) -> io::Result<SocketAddress> {
    let path = socket_path(data_dir);
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(SocketAddress { path, _dir: None });
    }
    let dir = File::open(data_dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", dir.as_raw_fd()));
    Ok(SocketAddress {
        path,
        _dir: Some(dir),
    })
}

/// Socket buffer size for control connections. File data crosses the socket in
/// 1 MiB frames; with the default (~200 KiB) buffer every frame takes several
/// sleep/wake round trips between the two processes.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Enlarges a connection's buffers (best effort: the kernel caps them at
/// `net.core.wmem_max`/`rmem_max`).
pub fn tune(stream: &tokio::net::UnixStream) {
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(stream, SOCKET_BUFFER_BYTES);
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(stream, SOCKET_BUFFER_BYTES);
}
