//! The node's side of the control socket.
//!
//! One task accepts connections; each connection gets its own task and carries one
//! request. At most [`MAX_CONNECTIONS`] are served at once (more wait in the
//! listen backlog). On shutdown the listener closes, the socket file is removed and
//! requests in flight get a grace period to finish.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use peervault_node::{CopyProgress, FileInfo, FileReader, Keeping, Node, NodeError, QueuedWriter};
use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::proto::{
    DATA_FRAME_BYTES, Frame, Request, Response, codec, message_frame, write_data_frame,
};
use super::socket::{recv_fd, socket_address, socket_path};
use crate::ops::{Operations, Wanted};

/// Requests served concurrently.
const MAX_CONNECTIONS: usize = 64;

type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// Removes a socket left at `path` by an earlier run; anything else there (a file,
/// a directory, a link) is someone's, and is refused rather than removed.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away (the node keeps its control \
                 socket there)",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A running control server.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl ControlServer {
    /// Binds `<data dir>/control.sock` (replacing a stale one: the caller holds the
    /// data dir lock, so no other node can be using it) and starts serving `node`.
    pub async fn start(node: Node) -> io::Result<ControlServer> {
        let path = socket_path(node.data_dir());
        let address = socket_address(node.data_dir())?;
        remove_stale_socket(&path)?;
        let listener = UnixListener::bind(&address.path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let (accept_tracker, accept_shutdown) = (tracker.clone(), shutdown.clone());
        tracker.spawn(async move {
            let _address = address;
            loop {
                let permit = tokio::select! {
                    _ = accept_shutdown.cancelled() => break,
                    permit = limit.clone().acquire_owned() => match permit {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let accepted = tokio::select! {
                    _ = accept_shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, _)) => {
                        super::socket::tune(&stream);
                        let node = node.clone();
                        accept_tracker.spawn(async move {
                            let (r, w) = stream.into_split();
                            let mut reader = FramedRead::new(r, codec());
                            let mut writer = FramedWrite::new(w, codec());
                            if let Err(e) = serve_one(&node, &mut reader, &mut writer).await {
                                tracing::debug!("control connection ended: {e}");
                            }
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("control socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(ControlServer {
            path,
            tracker,
            shutdown,
        })
    }

    /// Stops accepting, removes the socket and waits up to `grace` for requests in flight.
    pub async fn stop(self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = remove_stale_socket(&self.path);
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("control requests still running after {grace:?}; abandoning them");
        }
    }
}

/// Files per frame of a listing (a few hundred KB of JSON).
const LIST_BATCH: usize = 1000;

fn error_response(e: &NodeError) -> Response {
    Response::Error {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// The reply for an operation's error: the node's own error keeps its kind
/// (which the client turns into an exit code).
fn operation_error(e: &anyhow::Error) -> Response {
    match e.downcast_ref::<NodeError>() {
        Some(e) => error_response(e),
        None => Response::Error {
            kind: peervault_node::ErrorKind::Other,
            message: format!("{e:#}"),
        },
    }
}

async fn serve_one(node: &Node, reader: &mut Reader, writer: &mut Writer) -> io::Result<()> {
    let Some(first) = reader.next().await else {
        return Ok(());
    };
    let request: Request = Frame::decode(first?)
        .and_then(Frame::message)
        .map_err(io::Error::other)?;
    let response = match request {
        Request::Put {
            name,
            size,
            meta,
            redundancy,
        } => {
            let keeping = match redundancy.as_deref().map(Keeping::parse) {
                None => Keeping::Configured,
                Some(Ok(keeping)) => keeping,
                Some(Err(e)) => {
                    let response = Response::Error {
                        kind: peervault_node::ErrorKind::InvalidInput,
                        message: e,
                    };
                    writer.send(message_frame(&response)).await?;
                    return Ok(());
                }
            };
            let data = StreamReader::new(UploadFrames {
                reader,
                done: false,
            });
            let (progress, mut copies) = tokio::sync::watch::channel(CopyProgress::default());
            let store = node.store_kept(&name, meta, data, size, Some(&progress), keeping);
            tokio::pin!(store);
            let stored = loop {
                tokio::select! {
                    stored = &mut store => break stored,
                    Ok(()) = copies.changed() => {
                        let now = *copies.borrow_and_update();
                        let message = Response::Replicating {
                            copies: now.copies,
                            target: now.target,
                        };
                        // A client that stopped listening loses only the progress.
                        let _ = writer.send(message_frame(&message)).await;
                    }
                }
            };
            match stored {
                Ok(out) => Response::Stored {
                    file: out.file,
                    stored_bytes: out.stored_bytes,
                    replaced: out.replaced,
                    copies: out.replication.copies,
                    target: out.replication.target,
                    failures: out.replication.failure_lines(),
                },
                Err(e) => error_response(&e),
            }
        }
        Request::Get { name, version } => {
            let wanted = Wanted::version(&name, version.as_deref());
            return send_file(node, wanted, writer).await;
        }
        Request::GetInto { name, version } => {
            let wanted = Wanted::version(&name, version.as_deref());
            return write_file_into(node, wanted, reader, writer).await;
        }
        Request::Stat { name } => match node.stat(&name).await {
            Ok(file) => Response::File { file },
            Err(e) => error_response(&e),
        },
        Request::List => match node.listing(usize::MAX).await {
            Ok(listing) => {
                let mut files = listing.iter().peekable();
                while files.peek().is_some() {
                    let message = Response::Files {
                        files: files.by_ref().take(LIST_BATCH).collect(),
                    };
                    writer.send(message_frame(&message)).await?;
                }
                drop(files);
                drop(listing);
                peervault_node::memory::release_free_memory();
                Response::Done
            }
            Err(e) => error_response(&e),
        },
        Request::Delete { name, purge } => match Operations::delete(node, &name, purge).await {
            Ok(out) => Response::Deleted {
                name: out.name,
                freed_bytes: out.freed_bytes,
                recoverable: out.recoverable,
            },
            Err(e) => operation_error(&e),
        },
        Request::Versions { name } => match node.versions(&name).await {
            Ok(versions) => Response::Versions { versions },
            Err(e) => error_response(&e),
        },
        Request::Undelete { name } => match node.undelete(&name).await {
            Ok(file) => Response::File { file },
            Err(e) => error_response(&e),
        },
        Request::Restore { name, version } => {
            match Operations::restore(node, &name, &version).await {
                Ok(file) => Response::File { file },
                Err(e) => operation_error(&e),
            }
        }
        Request::S3KeyCreate { name } => match node.s3_key_create(&name).await {
            Ok(key) => Response::S3Key { key },
            Err(e) => operation_error(&e),
        },
        Request::S3KeyList => match node.s3_keys().await {
            Ok(keys) => Response::S3Keys { keys },
            Err(e) => operation_error(&e),
        },
        Request::S3KeyRemove { id } => match node.s3_key_remove(&id).await {
            Ok(()) => Response::S3KeyRemoved { id },
            Err(e) => operation_error(&e),
        },
        Request::Status => match node.status().await {
            Ok(status) => Response::Status {
                status: Box::new(status),
            },
            Err(e) => error_response(&e),
        },
        Request::Invite { expires_seconds } => match node
            .invite(expires_seconds.map(std::time::Duration::from_secs))
            .await
        {
            Ok(invitation) => Response::Invite { invitation },
            Err(e) => error_response(&e),
        },
        Request::Devices => match node.devices().await {
            Ok(devices) => Response::Devices { devices },
            Err(e) => error_response(&e),
        },
        Request::RenameDevice { who, name } => match node.rename_device(&who, &name).await {
            Ok(device) => Response::Device { device },
            Err(e) => error_response(&e),
        },
        Request::RemoveDevice { who } => match node.remove_device(&who).await {
            Ok(removed) => Response::DeviceRemoved { removed },
            Err(e) => error_response(&e),
        },
        Request::Rekey { all } => match if all {
            node.rekey_all().await
        } else {
            node.rekey().await
        } {
            Ok(epoch) => Response::Rekeyed { epoch },
            Err(e) => error_response(&e),
        },
        Request::Redundancy { set } => match set.as_deref().map(Keeping::parse) {
            None => Response::Redundancy {
                status: node.redundancy_status(),
            },
            Some(Err(message)) => Response::Error {
                kind: peervault_node::ErrorKind::InvalidInput,
                message,
            },
            Some(Ok(keeping)) => match node.set_redundancy(keeping.redundancy(None)).await {
                Ok(status) => Response::Redundancy { status },
                Err(e) => error_response(&e),
            },
        },
        Request::Verify { name } => match node.verify(name.as_deref()).await {
            Ok(files) => Response::Verified { files },
            Err(e) => error_response(&e),
        },
        Request::Quota => match node.quota_in_detail().await {
            Ok(quota) => Response::Quota { quota },
            Err(e) => error_response(&e),
        },
        Request::Limits => Response::Limits {
            limits: node.limits(),
        },
        Request::SetLimits { limits } => {
            node.set_limits(limits);
            Response::Limits {
                limits: node.limits(),
            }
        }
        Request::SetQuota { bytes } => match node.set_quota(bytes) {
            Ok(()) => Response::Quota {
                quota: node.quota(),
            },
            Err(e) => error_response(&e),
        },
        Request::Peers => Response::Peers {
            peers: node.peers().await,
        },
        Request::Discover => Response::Discovery {
            discovery: node.discovery().await,
        },
        Request::Metrics => Response::Metrics {
            metrics: Box::new(node.metrics_snapshot().await),
        },
        Request::Clean { names } => match node.clean(&names).await {
            Ok(report) => Response::Cleaned { report },
            Err(e) => error_response(&e),
        },
        Request::Gc => match node.collect_garbage().await {
            Ok(summary) => Response::Gc { summary },
            Err(e) => error_response(&e),
        },
        Request::Send { name, peer } => match Operations::send(node, &name, &peer).await {
            Ok(peer) => Response::Sent { name, peer },
            Err(e) => operation_error(&e),
        },
        Request::Fetch { name, peer } => match Operations::fetch(node, &name, &peer).await {
            Ok((peer, chunks)) => Response::Fetched { name, peer, chunks },
            Err(e) => operation_error(&e),
        },
    };
    writer.send(message_frame(&response)).await
}

/// Opens `wanted` for a read and answers `File`; `None` once the refusal is sent.
async fn open_file(
    node: &Node,
    wanted: Wanted<'_>,
    writer: &mut Writer,
) -> io::Result<Option<FileReader>> {
    let file = match crate::ops::open_wanted(node, wanted).await {
        Ok(file) => file,
        Err(e) => {
            writer.send(message_frame(&error_response(&e))).await?;
            return Ok(None);
        }
    };
    let info = FileInfo::new(file.manifest(), false, 0);
    writer
        .send(message_frame(&Response::File { file: info }))
        .await?;
    Ok(Some(file))
}

async fn send_file(node: &Node, wanted: Wanted<'_>, writer: &mut Writer) -> io::Result<()> {
    let Some(mut file) = open_file(node, wanted, writer).await? else {
        return Ok(());
    };
    while let Some(piece) = file.next().await {
        match piece {
            Ok(bytes) => {
                for part in bytes.chunks(DATA_FRAME_BYTES) {
                    write_data_frame(writer.get_mut(), part).await?;
                }
            }
            Err(e) => {
                let response = error_response(&NodeError::from(e));
                return writer.send(message_frame(&response)).await;
            }
        }
    }
    writer.send(message_frame(&Response::Done)).await
}

/// Writes `name` into the regular file the client passes after `File`, reporting
/// progress with `Written` (see the protocol's docs for why).
async fn write_file_into(
    node: &Node,
    wanted: Wanted<'_>,
    reader: &mut Reader,
    writer: &mut Writer,
) -> io::Result<()> {
    let Some(mut file) = open_file(node, wanted, writer).await? else {
        return Ok(());
    };
    let size = file.manifest().size;
    // The client sends nothing between its request and the descriptor, so a byte
    // already buffered by the codec would be a confused client.
    if !reader.read_buffer().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bytes arrived where the client's output file was expected",
        ));
    }
    let out = std::fs::File::from(recv_fd(reader.get_ref().as_ref()).await?);
    // Blocking writes into a pipe or a terminal could hold a thread for as long as
    // its reader likes; those destinations use the streamed `Get`.
    if !out.metadata()?.file_type().is_file() {
        let refusal = NodeError::Invalid("the passed output is not a regular file".into());
        return writer.send(message_frame(&error_response(&refusal))).await;
    }
    // Whole blocks bypass the page cache, written on a thread of their own (see
    // `peervault_store::direct` for why).
    let mut out = QueuedWriter::start(out)?;
    let mut reported = 0;
    let cannot_write = |e: io::Error, written: u64| {
        let what =
            format!("cannot write into the output file after {written} of {size} bytes: {e}");
        message_frame(&error_response(&NodeError::Invalid(what)))
    };
    while let Some(piece) = file.next().await {
        let bytes = match piece {
            Ok(bytes) => bytes,
            Err(e) => {
                let response = error_response(&NodeError::from(e));
                return writer.send(message_frame(&response)).await;
            }
        };
        if let Err(e) = out.write(bytes).await {
            return writer.send(cannot_write(e, out.written())).await;
        }
        // Progress only when there is some: the thread may not have moved on.
        if out.written() > reported {
            reported = out.written();
            let progress = Response::Written { bytes: reported };
            writer.send(message_frame(&progress)).await?;
        }
    }
    let written = out.written();
    if let Err(e) = out.finish().await {
        return writer.send(cannot_write(e, written)).await;
    }
    if reported < size {
        let progress = Response::Written { bytes: size };
        writer.send(message_frame(&progress)).await?;
    }
    writer.send(message_frame(&Response::Done)).await
}

/// The data frames of an upload as a byte stream that ends at the end frame.
/// A connection that closes before the end frame is an error, never a short file.
struct UploadFrames<'a> {
    reader: &'a mut Reader,
    done: bool,
}

impl Stream for UploadFrames<'_> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = match self.reader.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        Poll::Ready(match next {
            None => Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client disconnected before the end of the file",
            ))),
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(frame)) => match Frame::decode(frame) {
                Ok(Frame::Data(bytes)) => Some(Ok(bytes)),
                Ok(Frame::End) => {
                    self.done = true;
                    None
                }
                Ok(Frame::Message(_)) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a message arrived in the middle of file data",
                ))),
                Err(e) => Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
            },
        })
    }
}
