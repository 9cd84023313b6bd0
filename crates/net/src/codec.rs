//! Framing for request-response protocols: a 4-byte big-endian length, then the
//! message bytes. Messages are opaque here (the node encodes them), so this crate
//! stays independent of what the vault says; what it enforces is the size limit,
//! checked before any allocation, so a peer cannot make a node reserve memory it
//! did not intend to.

use std::io;

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;

/// Largest message in either direction: a 16 MiB chunk plus framing and headers.
pub const MAX_MESSAGE_BYTES: usize = 17 * 1024 * 1024;

/// Bytes of an announced message reserved before they arrive: a 1 MiB chunk
/// and its message header.
const UPFRONT_BYTES: usize = (1 << 20) + 4096;

/// Length-prefixed opaque messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    read_body(io, u32::from_be_bytes(len) as usize, MAX_MESSAGE_BYTES).await
}

/// Reads one message of a stream that carries many (a chunk stream), refusing
/// any longer than `limit`; `None` at a clean end of the stream.
pub async fn read_message<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    if io.read(&mut len[..1]).await? == 0 {
        return Ok(None);
    }
    io.read_exact(&mut len[1..]).await?;
    read_body(io, u32::from_be_bytes(len) as usize, limit)
        .await
        .map(Some)
}

/// Writes one message of a stream that carries many, and flushes it.
pub async fn write_message<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> io::Result<()> {
    io.write_all(&frame_len(bytes)?.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

/// A message of `len` bytes after its length.
async fn read_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    len: usize,
    limit: usize,
) -> io::Result<Vec<u8>> {
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds the {limit}-byte limit"),
        ));
    }
    // Trust the length only up to one default chunk's message, and grow beyond it
    // as bytes arrive: a peer that announces 17 MiB and sends nothing costs at most
    // that much per stream, while a chunk still arrives in one allocation of its
    // exact size (`read_to_end` doubled each buffer when it probed for more bytes:
    // a reader's peak RSS rose by half).
    let mut buf = vec![0u8; len.min(UPFRONT_BYTES)];
    io.read_exact(&mut buf).await?;
    while buf.len() < len {
        let filled = buf.len();
        buf.resize(len.min(filled + UPFRONT_BYTES), 0);
        io.read_exact(&mut buf[filled..]).await?;
    }
    Ok(buf)
}

fn frame_len(bytes: &[u8]) -> io::Result<u32> {
    u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len as usize <= MAX_MESSAGE_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large to send"))
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(&frame_len(bytes)?.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    /// Requests are shared buffers, so one encoded message can go to several peers;
    /// responses too, so that a message can start inside its buffer (a chunk read
    /// from disk with `O_DIRECT` sits at an aligned address behind its header).
    type Request = Bytes;
    type Response = Bytes;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await.map(Bytes::from)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await.map(Bytes::from)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_allocating() {
        let mut wire = Cursor::new(Vec::new());
        write_frame(&mut wire, b"hello").await.unwrap();
        let mut read = Cursor::new(wire.into_inner());
        assert_eq!(read_frame(&mut read).await.unwrap(), b"hello");

        let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let err = read_frame(&mut huge).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut short = Cursor::new(vec![0, 0, 0, 9, 1, 2]);
        assert!(read_frame(&mut short).await.is_err());
    }

    #[tokio::test]
    async fn a_stream_carries_many_messages_and_ends_cleanly_only_between_them() {
        let mut wire = Cursor::new(Vec::new());
        for message in [&b"one"[..], b"", b"three"] {
            write_message(&mut wire, message).await.unwrap();
        }
        let bytes = wire.into_inner();
        let mut read = Cursor::new(bytes.clone());
        for message in [&b"one"[..], b"", b"three"] {
            let got = read_message(&mut read, 10).await.unwrap();
            assert_eq!(got.as_deref(), Some(message));
        }
        assert_eq!(read_message(&mut read, 10).await.unwrap(), None);
        // Cut inside a message: an error, never a clean end.
        let mut cut = Cursor::new(bytes[..bytes.len() - 2].to_vec());
        for _ in 0..2 {
            read_message(&mut cut, 10).await.unwrap();
        }
        assert!(read_message(&mut cut, 10).await.is_err());
        // Longer than the limit: refused before it is read.
        let mut long = Cursor::new(bytes);
        let refused = read_message(&mut long, 2).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
    }
}
