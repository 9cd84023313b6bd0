//! Where the control socket lives, and how to reach it from a long path.
//!
//! The socket is `<data dir>/control.sock`. The data dir is created owner-only
//! (0700) and the socket is made 0600, so only the user who runs the node can drive
//! it: the file system is the authentication.
//!
//! Unix socket addresses are limited to 107 bytes. When the data dir's path is
//! longer, both sides open the directory and address the socket through
//! `/proc/self/fd/<fd>/control.sock`, which is always short.
//!
//! A client that reads a file into a regular file passes that file's descriptor
//! over the socket ([`send_fd`]): the node writes the verified bytes into it
//! itself, and file data crosses no socket between the two processes.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
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

/// The byte a passed file descriptor travels with.
const FD_MARKER: u8 = b'F';

/// Passes `fd` to the other end of `stream`: one marker byte carrying it as
/// `SCM_RIGHTS`. The receiver gets its own descriptor of the same open file.
pub async fn send_fd(stream: &tokio::net::UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    loop {
        stream.writable().await?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            let fds = [fd];
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(io::Error::other("no room to pass a file descriptor"));
            }
            let marker = [FD_MARKER];
            Ok(sendmsg(
                stream,
                &[IoSlice::new(&marker)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives a descriptor sent with [`send_fd`]. Anything else in its place (no
/// descriptor, another byte, the end of the connection) is an error.
pub async fn recv_fd(stream: &tokio::net::UnixStream) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    loop {
        stream.readable().await?;
        let received = stream.try_io(tokio::io::Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut byte = [0u8; 1];
            let message = recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            // Extra descriptors, if a client sent several, are closed here.
            let fd = control.drain().find_map(|message| match message {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            });
            Ok((message.bytes, byte[0], fd))
        });
        return match received {
            Ok((1, FD_MARKER, Some(fd))) => Ok(fd),
            Ok((0, _, _)) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client disconnected before passing its output file",
            )),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "expected the client's output file (a passed file descriptor)",
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => Err(e),
        };
    }
}
