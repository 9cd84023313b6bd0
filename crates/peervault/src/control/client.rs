//! The client side of the control socket, used by the subcommands and the benchmark.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use peervault_node::{ErrorKind, FileInfo, FileMeta};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::proto::{
    DATA_FRAME_BYTES, Frame, ProtocolError, Request, Response, codec, end_frame, message_frame,
    write_data_frame,
};
use super::socket::{send_fd, socket_address, socket_path};
use crate::ops::Wanted;

type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no PeerVault node is running for the data dir {data_dir} (nothing answers on {socket}). \
         Start one with `peervault --data-dir {data_dir}`, or pass the --addr or --data-dir \
         of the node you mean"
    )]
    NotRunning { data_dir: PathBuf, socket: PathBuf },
    #[error("lost the connection to the node: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("{message}")]
    Remote { kind: ErrorKind, message: String },
    #[error("unexpected reply from the node ({0}); are the client and node the same version?")]
    Unexpected(String),
}

/// A client of the node that owns one data dir.
#[derive(Debug, Clone)]
pub struct Client {
    data_dir: PathBuf,
}

/// Turns an `Error` reply into `Err`.
fn ok(response: Response) -> Result<Response, ClientError> {
    match response {
        Response::Error { kind, message } => Err(ClientError::Remote { kind, message }),
        other => Ok(other),
    }
}

/// What a put stores besides the bytes: the file's metadata and how it is kept.
#[derive(Debug, Clone, Default)]
pub struct PutWhat {
    pub meta: FileMeta,
    pub keeping: peervault_node::Keeping,
}

/// How far a put has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutProgress {
    /// Bytes uploaded to the node so far.
    Sent(u64),
    /// Durable copies reached so far (this node's included) and wanted.
    Copies { copies: usize, target: usize },
}

async fn read_message(reader: &mut Reader) -> Result<Response, ClientError> {
    match reader.next().await {
        Some(frame) => Ok(Frame::decode(frame?)?.message()?),
        None => Err(ClientError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the node closed the connection without answering",
        ))),
    }
}

impl Client {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn connect(&self) -> Result<(Reader, Writer), ClientError> {
        let not_running = || ClientError::NotRunning {
            data_dir: self.data_dir.clone(),
            socket: socket_path(&self.data_dir),
        };
        let address = match socket_address(&self.data_dir) {
            Ok(address) => address,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_running()),
            Err(e) => return Err(e.into()),
        };
        let stream = match UnixStream::connect(&address.path).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(not_running());
            }
            Err(e) => return Err(e.into()),
        };
        super::socket::tune(&stream);
        let (r, w) = stream.into_split();
        Ok((FramedRead::new(r, codec()), FramedWrite::new(w, codec())))
    }

    /// Sends a request without file data and returns the reply.
    pub async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let (mut reader, mut writer) = self.connect().await?;
        writer.send(message_frame(request)).await?;
        ok(read_message(&mut reader).await?)
    }

    /// Every file in the vault (the node sends them in batches).
    pub async fn list(&self) -> Result<Vec<FileInfo>, ClientError> {
        let (mut reader, mut writer) = self.connect().await?;
        writer.send(message_frame(&Request::List)).await?;
        let mut files = Vec::new();
        loop {
            match ok(read_message(&mut reader).await?)? {
                Response::Files { files: batch } => files.extend(batch),
                Response::Done => return Ok(files),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Uploads `source` as `name`. `progress` is told the bytes sent so far, then
    /// the durable copies reached and wanted as the node replicates.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        size: Option<u64>,
        source: R,
        progress: &mut (dyn FnMut(PutProgress) + Send),
    ) -> Result<Response, ClientError> {
        self.put_with(name, size, PutWhat::default(), source, progress)
            .await
    }

    /// [`Client::put`] of a file with what it was on its disk (`put -r`).
    pub async fn put_with<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        size: Option<u64>,
        what: PutWhat,
        mut source: R,
        progress: &mut (dyn FnMut(PutProgress) + Send),
    ) -> Result<Response, ClientError> {
        let (mut reader, mut writer) = self.connect().await?;
        let request = Request::Put {
            name: name.to_string(),
            size,
            meta: what.meta,
            redundancy: what.keeping.label(),
        };
        writer.send(message_frame(&request)).await?;
        let mut buf = vec![0u8; DATA_FRAME_BYTES];
        let mut sent = 0u64;
        let upload: io::Result<()> = async {
            loop {
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                write_data_frame(writer.get_mut(), &buf[..n]).await?;
                sent += n as u64;
                progress(PutProgress::Sent(sent));
            }
            writer.send(end_frame()).await
        }
        .await;
        match upload {
            Ok(()) => loop {
                match ok(read_message(&mut reader).await?)? {
                    Response::Replicating { copies, target } => {
                        progress(PutProgress::Copies { copies, target })
                    }
                    answer => return Ok(answer),
                }
            },
            // The node may have refused early (quota) and closed: its reply explains.
            Err(send_error) => match read_message(&mut reader).await {
                Ok(response) => ok(response),
                Err(_) => Err(send_error.into()),
            },
        }
    }

    /// Sends a read request and takes the `File` answer that opens every read.
    async fn open_file(
        &self,
        request: &Request,
    ) -> Result<(Reader, Writer, FileInfo), ClientError> {
        let (mut reader, mut writer) = self.connect().await?;
        writer.send(message_frame(request)).await?;
        match ok(read_message(&mut reader).await?)? {
            Response::File { file } => Ok((reader, writer, file)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Downloads `name` into `sink`; returns its metadata once every byte arrived
    /// verified. On error, `sink` may hold a verified prefix of the file.
    pub async fn get<'a, W: AsyncWrite + Unpin>(
        &self,
        wanted: impl Into<Wanted<'a>>,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64, &FileInfo) + Send),
    ) -> Result<FileInfo, ClientError> {
        let wanted = wanted.into();
        let request = Request::Get {
            name: wanted.name.to_string(),
            version: wanted.version.map(str::to_string),
        };
        let (mut reader, _writer, info) = self.open_file(&request).await?;
        let mut received = 0u64;
        loop {
            let Some(frame) = reader.next().await else {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the node closed the connection mid-file",
                )));
            };
            match Frame::decode(frame?)? {
                Frame::Data(bytes) => {
                    sink.write_all(&bytes).await?;
                    received += bytes.len() as u64;
                    progress(received, &info);
                }
                frame @ Frame::Message(_) => match ok(frame.message()?)? {
                    Response::Done if received == info.size => break,
                    Response::Done => {
                        return Err(ClientError::Unexpected(format!(
                            "the node sent {received} of {} bytes",
                            info.size
                        )));
                    }
                    other => return Err(ClientError::Unexpected(format!("{other:?}"))),
                },
                Frame::End => return Err(ClientError::Unexpected("end frame".into())),
            }
        }
        sink.flush().await?;
        Ok(info)
    }

    /// Downloads `name` into `file`, which must be a regular file open for writing:
    /// the node writes the verified bytes into it directly (at its current offset),
    /// so they cross no socket. Same guarantees as [`Client::get`]; on error, `file`
    /// may hold a verified prefix. The bytes are written, not yet made durable.
    pub async fn get_into<'a>(
        &self,
        wanted: impl Into<Wanted<'a>>,
        file: BorrowedFd<'_>,
        progress: &mut (dyn FnMut(u64, &FileInfo) + Send),
    ) -> Result<FileInfo, ClientError> {
        let wanted = wanted.into();
        let request = Request::GetInto {
            name: wanted.name.to_string(),
            version: wanted.version.map(str::to_string),
        };
        let (mut reader, writer, info) = self.open_file(&request).await?;
        send_fd(writer.get_ref().as_ref(), file).await?;
        let mut written = 0u64;
        loop {
            match ok(read_message(&mut reader).await?)? {
                Response::Written { bytes } => {
                    written = bytes;
                    progress(written, &info);
                }
                Response::Done if written == info.size => return Ok(info),
                Response::Done => {
                    return Err(ClientError::Unexpected(format!(
                        "the node wrote {written} of {} bytes",
                        info.size
                    )));
                }
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }
}
