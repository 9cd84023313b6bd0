//! The private channel: every connection between nodes, before libp2p negotiates
//! anything, is an authenticated, encrypted channel that only holders of the
//! network key can open.
//!
//! It replaces what used to be three layers (libp2p's `pnet` design with AES-CTR,
//! a key-check marker, then Noise with ChaCha20-Poly1305). Measured on the
//! development VM during a replicated put, ChaCha20-Poly1305 and AES-CTR together
//! were 20% of the writer's CPU and 13% of each holder's; one AES-256-GCM pass
//! (ring, VAES) costs a fraction of that and gives every property the three gave:
//!
//! * **Membership.** Every key is mixed with the pre-shared key (derived from the
//!   network key), so a node without it cannot complete the handshake, and to an
//!   observer the hello is 64 random-looking bytes (the ephemeral public key is
//!   masked under the pre-shared key).
//! * **Confidentiality with forward secrecy.** An ephemeral X25519 exchange per
//!   connection: other members, who hold the pre-shared key too, cannot read a
//!   recorded connection, nor one they only watch.
//! * **Integrity.** AES-256-GCM per frame, with a per-direction key and a frame
//!   counter as nonce: a changed, dropped, replayed or reordered frame fails.
//! * **Identity.** Each side signs the handshake transcript with its node identity
//!   (ed25519) inside the encrypted channel; the peer id libp2p sees is the key
//!   that signed. A member in the middle would need both sides' ephemeral keys.
//! * **Plain words for a key mismatch.** With another pre-shared key the first
//!   frame cannot be opened: both sides fail at once with
//!   [`HandshakeError::KeyMismatch`] instead of hanging in negotiation.
//!
//! ```text
//! hello (each side, at once):  nonce (32) | X25519 public key XOR mask(psk, nonce) (32)
//! transcript  T = BLAKE3_psk("transcript" | min(hello_a, hello_b) | max(hello_a, hello_b))
//! secret      S = BLAKE3_psk("secret" | X25519 shared | T)
//! key of the direction sent by the side with nonce N:  BLAKE3_S("direction" | N)
//! frame:       length (u16, big endian) | AES-256-GCM(payload), AAD = length, nonce = counter
//! first frame: public key (protobuf) and signature over "identity" | T | own nonce
//! ```
//!
//! The construction is symmetric (no initiator or responder), so a simultaneous
//! open during hole punching needs no tie-break here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::SystemRandom;

use crate::transport::HandshakeError;

const HELLO_NONCE: usize = 32;
const HELLO_LEN: usize = 64;
const TAG_LEN: usize = 16;
/// Largest frame on the wire (ciphertext and tag), as a u16 allows.
const MAX_FRAME: usize = u16::MAX as usize;
/// Plaintext per frame.
const MAX_PAYLOAD: usize = MAX_FRAME - TAG_LEN;
/// A signed identity is a few hundred bytes; anything bigger is not one.
const MAX_IDENTITY: usize = 4096;

const LABEL_MASK: &[u8] = b"peervault channel v2 mask";
const LABEL_TRANSCRIPT: &[u8] = b"peervault channel v2 transcript";
const LABEL_SECRET: &[u8] = b"peervault channel v2 secret";
const LABEL_DIRECTION: &[u8] = b"peervault channel v2 direction";
const LABEL_IDENTITY: &[u8] = b"peervault channel v2 identity";

fn keyed(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

fn aead(key: &[u8; 32]) -> io::Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| io::Error::other("cannot set up AES-256-GCM"))
}

/// One direction of the channel: its key and how many frames it has carried.
struct Direction {
    key: LessSafeKey,
    counter: u64,
}

impl Direction {
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        let counter = self.counter;
        self.counter = counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the channel carried 2^64 frames; reconnect"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// An open channel to an authenticated peer.
pub struct Channel<S> {
    inner: S,
    remote: PeerId,
    send: Direction,
    recv: Direction,
    /// The frame being filled: room for its length header, then plaintext waiting
    /// to be sealed (at most `MAX_PAYLOAD`). Sealed in place, it becomes `out`.
    plain: Vec<u8>,
    /// Sealed frames waiting for the socket, and how much of them went out.
    out: Vec<u8>,
    out_written: usize,
    /// The frame being read: header, then ciphertext.
    frame: Vec<u8>,
    frame_filled: usize,
    /// Opened plaintext not yet handed to the reader.
    opened: Vec<u8>,
    opened_read: usize,
}

impl<S> std::fmt::Debug for Channel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("remote", &self.remote)
            .finish()
    }
}

impl<S> Channel<S> {
    fn new(inner: S, remote: PeerId, send: Direction, recv: Direction) -> Self {
        Channel {
            inner,
            remote,
            send,
            recv,
            plain: empty_frame(),
            out: Vec::new(),
            out_written: 0,
            frame: Vec::new(),
            frame_filled: 0,
            opened: Vec::new(),
            opened_read: 0,
        }
    }

    /// The peer at the other end, proven by its signature.
    pub fn remote_peer(&self) -> PeerId {
        self.remote
    }
}

/// Opens a channel over `socket`: hello, keys, then both identities. Fails with
/// [`HandshakeError::KeyMismatch`] if the other side has another pre-shared key.
pub async fn handshake<S>(
    mut socket: S,
    psk: &[u8; 32],
    identity: &Keypair,
) -> Result<Channel<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let rng = SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&X25519, &rng)
        .map_err(|_| io::Error::other("cannot make an ephemeral key"))?;
    let public = ephemeral
        .compute_public_key()
        .map_err(|_| io::Error::other("cannot make an ephemeral key"))?;
    let mut ours = [0u8; HELLO_LEN];
    getrandom::fill(&mut ours[..HELLO_NONCE]).map_err(|e| io::Error::other(e.to_string()))?;
    ours[HELLO_NONCE..].copy_from_slice(public.as_ref());
    let masked = mask(psk, &ours);
    socket.write_all(&masked).await?;
    socket.flush().await?;
    let mut theirs = [0u8; HELLO_LEN];
    socket.read_exact(&mut theirs).await?;
    let theirs = mask(psk, &theirs);
    if theirs[..HELLO_NONCE] == ours[..HELLO_NONCE] {
        // Our own hello reflected back: nothing honest does that.
        return Err(HandshakeError::KeyMismatch);
    }

    let (low, high) = if ours < theirs {
        (&ours, &theirs)
    } else {
        (&theirs, &ours)
    };
    let transcript = keyed(psk, &[LABEL_TRANSCRIPT, low, high]);
    let peer_public = UnparsedPublicKey::new(&X25519, &theirs[HELLO_NONCE..]);
    let secret = agreement::agree_ephemeral(ephemeral, &peer_public, |shared| {
        keyed(psk, &[LABEL_SECRET, shared, &transcript])
    })
    // A malformed (e.g. all-zero) public key: the other side is not one of us.
    .map_err(|_| HandshakeError::KeyMismatch)?;
    let direction = |nonce: &[u8]| -> io::Result<Direction> {
        Ok(Direction {
            key: aead(&keyed(&secret, &[LABEL_DIRECTION, nonce]))?,
            counter: 0,
        })
    };
    let mut channel = Channel::new(
        socket,
        PeerId::from(identity.public()),
        direction(&ours[..HELLO_NONCE])?,
        direction(&theirs[..HELLO_NONCE])?,
    );

    // Identities, inside the channel: both sides send at once, then read.
    let signed = [LABEL_IDENTITY, &transcript, &ours[..HELLO_NONCE]].concat();
    let signature = identity
        .sign(&signed)
        .map_err(|e| io::Error::other(format!("cannot sign the handshake: {e}")))?;
    let key = identity.public().encode_protobuf();
    let mut message = Vec::with_capacity(4 + key.len() + signature.len());
    for part in [&key, &signature] {
        let len = u16::try_from(part.len()).map_err(|_| io::Error::other("identity too long"))?;
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(part);
    }
    channel.write_all(&message).await?;
    channel.flush().await?;
    let theirs_signed = match read_identity(&mut channel).await {
        Ok(message) => message,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(HandshakeError::KeyMismatch);
        }
        Err(e) => return Err(e.into()),
    };
    let (public_key, signature) = parse_identity(&theirs_signed)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed identity message"))?;
    let expected = [LABEL_IDENTITY, &transcript, &theirs[..HELLO_NONCE]].concat();
    if !public_key.verify(&expected, signature) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer's identity signature does not verify",
        )
        .into());
    }
    channel.remote = PeerId::from(public_key);
    Ok(channel)
}

/// XORs the public-key half of a hello with a mask derived from its nonce.
fn mask(psk: &[u8; 32], hello: &[u8; HELLO_LEN]) -> [u8; HELLO_LEN] {
    let mask = keyed(psk, &[LABEL_MASK, &hello[..HELLO_NONCE]]);
    let mut out = *hello;
    for (byte, m) in out[HELLO_NONCE..].iter_mut().zip(mask) {
        *byte ^= m;
    }
    out
}

/// Reads the first frame, which must be the identity message alone. An AEAD
/// failure here means another key, reported as `InvalidData`.
async fn read_identity<S: AsyncRead + AsyncWrite + Unpin>(
    channel: &mut Channel<S>,
) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 2];
    channel.inner.read_exact(&mut header).await?;
    let len = u16::from_be_bytes(header) as usize;
    if !(TAG_LEN..=MAX_IDENTITY).contains(&len) {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut frame = vec![0u8; len];
    channel.inner.read_exact(&mut frame).await?;
    let nonce = channel.recv.next_nonce()?;
    let plain = channel
        .recv
        .key
        .open_in_place(nonce, Aad::from(header), &mut frame)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    Ok(plain.to_vec())
}

pub(crate) fn parse_identity(message: &[u8]) -> Option<(PublicKey, &[u8])> {
    let (key, rest) = length_prefixed(message)?;
    let (signature, rest) = length_prefixed(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some((PublicKey::try_decode_protobuf(key).ok()?, signature))
}

fn length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
    let body = bytes.get(2..2 + len)?;
    Some((body, &bytes[2 + len..]))
}

/// Reads `wire` as frames of a channel whose receiving key is all sevens; returns
/// the plaintext bytes read (for the fuzz targets: framing must never panic).
pub(crate) fn read_all_under_test_key(wire: &[u8]) -> usize {
    let Ok(key) = aead(&[7; 32]) else { return 0 };
    let Ok(send) = aead(&[8; 32]) else { return 0 };
    let mut channel = Channel::new(
        futures::io::Cursor::new(wire.to_vec()),
        PeerId::random(),
        Direction {
            key: send,
            counter: 0,
        },
        Direction { key, counter: 0 },
    );
    let mut out = Vec::new();
    let _ = futures::executor::block_on(channel.read_to_end(&mut out));
    out.len()
}

/// Bytes of a frame's length header.
const HEADER_LEN: usize = 2;

/// A frame to fill: its header's room, no plaintext yet.
fn empty_frame() -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + MAX_FRAME);
    frame.extend_from_slice(&[0; HEADER_LEN]);
    frame
}

impl<S> Channel<S> {
    /// Plaintext bytes in the frame being filled.
    fn pending_len(&self) -> usize {
        self.plain.len() - HEADER_LEN
    }
}

impl<S: AsyncWrite + Unpin> Channel<S> {
    /// Seals the buffered plaintext into one frame behind those already pending.
    /// The frame is sealed where it was filled, and when nothing else is pending
    /// (every caller drains first) it becomes the output buffer as it is: copying
    /// it over was a third copy of every byte sent (yamux's and this one's in).
    fn seal_pending(&mut self) -> io::Result<()> {
        if self.pending_len() == 0 {
            return Ok(());
        }
        let header = ((self.pending_len() + TAG_LEN) as u16).to_be_bytes();
        let nonce = self.send.next_nonce()?;
        let tag = self
            .send
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut self.plain[HEADER_LEN..])
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.plain[..HEADER_LEN].copy_from_slice(&header);
        self.plain.extend_from_slice(tag.as_ref());
        if self.out.is_empty() {
            std::mem::swap(&mut self.out, &mut self.plain);
        } else {
            self.out.extend_from_slice(&self.plain);
        }
        // Room for the next frame's header (in the emptied buffer or the old one).
        self.plain.resize(HEADER_LEN, 0);
        Ok(())
    }

    /// Writes out sealed frames; Ready(Ok) once none are left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_written < self.out.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_written += n;
        }
        self.out.clear();
        self.out_written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Channel<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending_len() == MAX_PAYLOAD {
            ready!(this.poll_drain(cx))?;
            this.seal_pending()?;
        }
        let n = buf.len().min(MAX_PAYLOAD - this.pending_len());
        this.plain.extend_from_slice(&buf[..n]);
        if this.pending_len() == MAX_PAYLOAD {
            // A full frame: seal it and start sending, without waiting for a flush.
            if this.out.is_empty() {
                this.seal_pending()?;
            }
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        this.seal_pending()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> Channel<S> {
    /// Reads until `frame` holds `want` bytes. Ready(Ok(false)) on a clean end of
    /// stream before any byte of the frame.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<bool>> {
        if self.frame.len() < want {
            self.frame.resize(want, 0);
        }
        while self.frame_filled < want {
            let n = ready!(
                Pin::new(&mut self.inner).poll_read(cx, &mut self.frame[self.frame_filled..want])
            )?;
            if n == 0 {
                if self.frame_filled == 0 {
                    return Poll::Ready(Ok(false));
                }
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.frame_filled += n;
        }
        Poll::Ready(Ok(true))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Channel<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while this.opened_read == this.opened.len() {
            if !ready!(this.poll_fill(cx, 2))? {
                return Poll::Ready(Ok(0));
            }
            let header = [this.frame[0], this.frame[1]];
            let len = u16::from_be_bytes(header) as usize;
            if len < TAG_LEN {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "channel frame shorter than its tag",
                )));
            }
            if !ready!(this.poll_fill(cx, 2 + len))? {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let nonce = this.recv.next_nonce()?;
            let plain_len = this
                .recv
                .key
                .open_in_place(nonce, Aad::from(header), &mut this.frame[2..2 + len])
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a channel frame failed authentication",
                    )
                })?
                .len();
            // Swap the opened frame out instead of copying it.
            std::mem::swap(&mut this.opened, &mut this.frame);
            this.opened.truncate(2 + plain_len);
            this.opened_read = 2;
            this.frame_filled = 0;
        }
        let n = buf.len().min(this.opened.len() - this.opened_read);
        buf[..n].copy_from_slice(&this.opened[this.opened_read..this.opened_read + n]);
        this.opened_read += n;
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    fn channel_over<S>(inner: S, send: [u8; 32], recv: [u8; 32]) -> Channel<S> {
        let direction = |key: [u8; 32]| Direction {
            key: aead(&key).unwrap(),
            counter: 0,
        };
        Channel::new(inner, PeerId::random(), direction(send), direction(recv))
    }

    fn message(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// What a channel with send key `key` puts on the wire for `data`.
    async fn sealed(key: [u8; 32], data: &[u8]) -> Vec<u8> {
        let mut writer = channel_over(Cursor::new(Vec::new()), key, [0; 32]);
        // Uneven writes, to exercise frames that fill across calls.
        for piece in data.chunks(10_007) {
            writer.write_all(piece).await.unwrap();
        }
        writer.flush().await.unwrap();
        writer.inner.into_inner()
    }

    async fn open(key: [u8; 32], wire: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut reader = channel_over(Cursor::new(wire), [0; 32], key);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn frames_round_trip_and_hide_the_plaintext() {
        let data = message(300_000);
        let wire = sealed([3; 32], &data).await;
        assert!(wire.len() < data.len() + 6 * (2 + TAG_LEN));
        assert!(
            !wire
                .windows(64)
                .any(|w| data.windows(64).take(1).any(|d| d == w)),
            "the plaintext must not appear on the wire"
        );
        assert_eq!(open([3; 32], wire).await.unwrap(), data);
    }

    /// Hands out its bytes in pieces of the given sizes, in turn.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        pieces: Vec<usize>,
        turn: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = &mut *self;
            let piece = this.pieces[this.turn % this.pieces.len()];
            this.turn += 1;
            let n = piece.min(buf.len()).min(this.data.len() - this.at);
            buf[..n].copy_from_slice(&this.data[this.at..this.at + n]);
            this.at += n;
            Poll::Ready(Ok(n))
        }
    }

    #[tokio::test]
    async fn frames_split_anywhere_by_the_socket_are_read_whole() {
        let data = message(5 * MAX_PAYLOAD + 333);
        let wire = sealed([6; 32], &data).await;
        // Pieces that end inside headers, right after them and inside bodies.
        for pieces in [
            vec![1],
            vec![2, 3],
            vec![MAX_FRAME + 1, 1, 5],
            vec![MAX_FRAME + 3],
        ] {
            let trickle = Trickle {
                data: wire.clone(),
                at: 0,
                pieces: pieces.clone(),
                turn: 0,
            };
            let mut reader = channel_over(trickle, [0; 32], [6; 32]);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.unwrap();
            assert!(out == data, "pieces {pieces:?}");
        }
    }

    #[tokio::test]
    async fn a_changed_dropped_reordered_or_cut_frame_fails() {
        let data = message(3 * MAX_PAYLOAD);
        let wire = sealed([4; 32], &data).await;
        let frame = 2 + MAX_FRAME;
        assert_eq!(wire.len(), 3 * frame);

        let mut flipped = wire.clone();
        flipped[frame + 100] ^= 1;
        let e = open([4; 32], flipped).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let dropped = [&wire[..frame], &wire[2 * frame..]].concat();
        assert_eq!(
            open([4; 32], dropped).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let reordered = [&wire[frame..2 * frame], &wire[..frame], &wire[2 * frame..]].concat();
        assert_eq!(
            open([4; 32], reordered).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let cut = wire[..frame + 10].to_vec();
        assert_eq!(
            open([4; 32], cut).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            open([5; 32], wire).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData,
            "another key opens nothing"
        );
    }

    async fn connected_pair(
        psk_a: [u8; 32],
        psk_b: [u8; 32],
    ) -> (
        Result<Channel<impl AsyncRead + AsyncWrite + Unpin>, HandshakeError>,
        Result<Channel<impl AsyncRead + AsyncWrite + Unpin>, HandshakeError>,
        Keypair,
        Keypair,
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (ca, cb) = tokio::join!(
            handshake(a.compat(), &psk_a, &ka),
            handshake(b.compat(), &psk_b, &kb)
        );
        (ca, cb, ka, kb)
    }

    #[tokio::test]
    async fn the_handshake_authenticates_both_peers_and_carries_data_both_ways() {
        let (a, b, ka, kb) = connected_pair([8; 32], [8; 32]).await;
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.remote_peer(), PeerId::from(kb.public()));
        assert_eq!(b.remote_peer(), PeerId::from(ka.public()));
        let data = message(200_000);
        let (sent, got) = tokio::join!(
            async {
                a.write_all(&data).await.unwrap();
                a.flush().await.unwrap();
                let mut back = vec![0u8; 5];
                a.read_exact(&mut back).await.unwrap();
                back
            },
            async {
                let mut got = vec![0u8; data.len()];
                b.read_exact(&mut got).await.unwrap();
                b.write_all(b"thank").await.unwrap();
                b.flush().await.unwrap();
                got
            }
        );
        assert_eq!(got, data);
        assert_eq!(sent, b"thank");
    }

    #[tokio::test]
    async fn another_pre_shared_key_is_a_key_mismatch_on_both_sides() {
        let (a, b, _, _) = connected_pair([1; 32], [2; 32]).await;
        assert!(matches!(a, Err(HandshakeError::KeyMismatch)), "{a:?}");
        assert!(matches!(b, Err(HandshakeError::KeyMismatch)), "{b:?}");
    }

    #[tokio::test]
    async fn a_reflected_hello_is_refused() {
        // A peer that echoes every byte back.
        let (a, b) = tokio::io::duplex(1 << 16);
        let echo = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(b);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let result = handshake(a.compat(), &[9; 32], &Keypair::generate_ed25519()).await;
        assert!(
            matches!(result, Err(HandshakeError::KeyMismatch)),
            "{result:?}"
        );
        echo.abort();
    }

    #[test]
    fn identity_messages_are_parsed_strictly() {
        assert!(parse_identity(b"").is_none());
        assert!(parse_identity(&[0, 5, 1, 2]).is_none());
        assert_eq!(length_prefixed(&[0, 0]), Some((&[][..], &[][..])));
        let key = Keypair::generate_ed25519().public().encode_protobuf();
        let mut message = Vec::new();
        for part in [&key[..], b"sig"] {
            message.extend_from_slice(&(part.len() as u16).to_be_bytes());
            message.extend_from_slice(part);
        }
        assert!(parse_identity(&message).is_some());
        message.push(0);
        assert!(parse_identity(&message).is_none(), "trailing bytes");
    }
}
