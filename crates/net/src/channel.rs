//! The private channel: every connection between nodes, before libp2p negotiates
//! anything, is an authenticated, encrypted channel that only holders of the
//! network key can open.
//!
//! **The handshake is a standard one**: `Noise_XXpsk0_25519_AESGCM_SHA256` from the
//! Noise Protocol Framework, run by the `snow` crate, with the network key's
//! pre-shared key as `psk`. What each message carries:
//!
//! ```text
//! -> psk, e                    message 1: 32-byte ephemeral key, tag of an empty payload
//! <- e, ee, s, es              message 2: payload = responder's identity
//! -> s, se                     message 3: payload = initiator's identity
//! identity payload: libp2p public key (protobuf) | ed25519 signature over
//!                   "peervault noise static key v1:" | the sender's Noise static key
//! each message on the wire: length (u16, big endian) | message
//! ```
//!
//! Why this pattern (DESIGN.md, "Private channel", says the same):
//!
//! * **psk0** mixes the pre-shared key into the very first message, so a responder
//!   checks message 1's tag (a few HMAC-SHA256 and one AES-GCM open of 16 bytes) before
//!   any Diffie-Hellman, signature or frame buffer: a stranger who connects gets a
//!   two-byte refusal and nothing that depends on the key. With psk3 (the other
//!   usual choice) a responder would run two X25519 operations and reveal its
//!   identity to anyone before learning that the dialler is a stranger.
//! * **What a stranger can learn offline.** Message 1 is the only key-dependent
//!   thing a node sends before the peer proves the key, and a node sends it only when
//!   it dials (a bootstrap address, a peer it was told of). Whoever receives or
//!   records message 1 can test guesses of the key against its tag, one guess per
//!   key derivation: that is inherent to every pre-shared-key handshake, and why a
//!   vault's key is random by default and a passphrase is stretched with Argon2id
//!   under a per-vault salt. The ephemeral key itself is a plain X25519 public key,
//!   the same for any key guess: nothing in it depends on the pre-shared key.
//! * **XX** carries both static keys encrypted, so identities are hidden from
//!   observers, and each side's libp2p identity signs its Noise static key (the
//!   scheme libp2p's own Noise upgrade uses); the static key is proven by the `es`
//!   and `se` exchanges of this very handshake. The peer id libp2p sees is the key
//!   that signed.
//! * **Forward secrecy** against other members too: the session keys come from
//!   ephemeral exchanges (`ee`, `es`, `se`) that members who only hold the
//!   pre-shared key cannot recompute.
//!
//! **The record layer is our own**, for speed (DESIGN.md's "Private channel" has
//! the measurements): the handshake's two split keys (Noise `Split()`, taken raw)
//! each drive one direction of AES-256-GCM frames through ring, a frame counter as
//! the Noise nonce, each frame's two-byte length as associated data, frames of up to
//! 64 KiB. Each direction rekeys with Noise's `REKEY` function (the first 32 bytes of
//! encrypting 32 zero bytes under nonce 2^64-1) every [`DEFAULT_REKEY_INTERVAL`]
//! frames, at the same frame count on both ends, with no message.
//!
//! **Admission.** Which pre-shared keys a responder accepts, which one a dialler
//! uses, and whether an authenticated peer may stay are the node's to say
//! ([`crate::gate::Gatekeeper`]). A responder tries each accepted key on message
//! 1; after message 3 its verdict is the first frame inside the channel:
//! `0 | its current ticket`, `1 | a reason` (a removed device is told why), or
//! `2 | a welcome` (a new device's keys, for an invitation; the connection ends
//! there). A dialler judges the responder after message 2 and sends no identity
//! to one it refuses.
//!
//! **Verdicts.** A responder whose message 1 does not open answers a zero length
//! (refused) and closes, so the dialler reports [`HandshakeError::KeyMismatch`] for
//! what it is; anything else that is not PeerVault's handshake is
//! [`HandshakeError::NotPeerVault`], a bad signature [`HandshakeError::BadIdentity`],
//! and a node that reached itself (a loopback address that was another host's)
//! [`HandshakeError::SelfDial`].
//!
//! **The one question a stranger may ask**: an empty first message asks for the
//! vault's key-derivation parameters (the Argon2id salt and costs of a passphrase
//! vault), so that a new node given the passphrase and a bootstrap address derives
//! the same key. A salt is not a secret; it only stops one precomputed table from
//! serving every vault.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroize;

use crate::gate::{FixedKey, Gatekeeper, Side, Ticket, Verdict};
use crate::transport::HandshakeError;

/// The Noise protocol of every connection.
pub const NOISE_PATTERN: &str = "Noise_XXpsk0_25519_AESGCM_SHA256";
/// Bound into the handshake hash: another protocol or version cannot be mistaken
/// for this one.
const PROLOGUE: &[u8] = b"peervault channel 3";
/// What an identity signs, before its Noise static key.
const STATIC_KEY_SIGNING_PREFIX: &[u8] = b"peervault noise static key v1:";

const DH_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Message 1 is exactly an ephemeral key and the tag of an empty payload.
const MESSAGE_ONE_LEN: usize = DH_LEN + TAG_LEN;
/// A signed identity is about a hundred bytes; anything bigger is not one.
const MAX_IDENTITY: usize = 1024;
/// The largest message 2 (e, encrypted s, encrypted identity).
const MAX_HANDSHAKE_MESSAGE: usize = DH_LEN + DH_LEN + TAG_LEN + MAX_IDENTITY + TAG_LEN;
/// The smallest message 2: e, encrypted s, and the tag of a payload.
const MIN_MESSAGE_TWO: usize = DH_LEN + DH_LEN + TAG_LEN + TAG_LEN;
/// A responder's answer to a message 1 that does not open; also the initiator's
/// empty first message that asks for the key-derivation parameters.
const EMPTY: [u8; 2] = [0, 0];
/// Longest reason a refusal carries.
const MAX_REASON: usize = 1024;
/// Largest welcome (a new device's keys, sealed).
const MAX_WELCOME: usize = 64 * 1024;
/// Largest key-derivation parameters a node hands out.
const MAX_PARAMETERS: usize = 512;
/// Largest frame on the wire (ciphertext and tag), as a u16 allows.
const MAX_FRAME: usize = u16::MAX as usize;
/// Plaintext per frame.
const MAX_PAYLOAD: usize = MAX_FRAME - TAG_LEN;

/// Frames each direction carries under one key before it rekeys (2^20: 64 GiB of
/// full frames per key).
pub const DEFAULT_REKEY_INTERVAL: u64 = 1 << 20;

/// The nonce Noise reserves for `REKEY` and never uses for a frame.
const REKEY_NONCE: u64 = u64::MAX;

fn aead(key: &[u8; 32]) -> io::Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| io::Error::other("cannot set up AES-256-GCM"))
}

fn noise_nonce(counter: u64) -> Nonce {
    // Noise's AESGCM nonce: 32 zero bits, then the counter big-endian.
    let mut nonce = [0u8; NONCE_LEN];
    nonce[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// One direction of the channel: its key, how many frames it has carried, and
/// how many more it carries before the key changes.
struct Direction {
    key: LessSafeKey,
    counter: u64,
    until_rekey: u64,
    rekey_interval: u64,
}

impl Direction {
    fn new(mut key: [u8; 32], rekey_interval: u64) -> io::Result<Self> {
        let aead = aead(&key);
        key.zeroize();
        Ok(Self {
            key: aead?,
            counter: 0,
            until_rekey: rekey_interval.max(1),
            rekey_interval: rekey_interval.max(1),
        })
    }

    fn next_nonce(&mut self) -> io::Result<Nonce> {
        if self.until_rekey == 0 {
            self.rekey()?;
            self.until_rekey = self.rekey_interval;
        }
        self.until_rekey -= 1;
        let counter = self.counter;
        if counter == REKEY_NONCE - 1 {
            return Err(io::Error::other(
                "the channel carried 2^64 frames; reconnect",
            ));
        }
        self.counter += 1;
        Ok(noise_nonce(counter))
    }

    /// Noise's `REKEY(k)`: the first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros).
    fn rekey(&mut self) -> io::Result<()> {
        let mut block = [0u8; 32];
        // The tag is not part of the new key.
        let _tag = self
            .key
            .seal_in_place_separate_tag(noise_nonce(REKEY_NONCE), Aad::empty(), &mut block)
            .map_err(|_| io::Error::other("rekeying failed"))?;
        let key = aead(&block);
        block.zeroize();
        self.key = key?;
        Ok(())
    }
}

/// This node's part of every handshake: a Noise static key made for this process,
/// and the identity payload that binds it to the node's libp2p identity (signed
/// once, not per connection).
pub struct NoiseIdentity {
    peer_id: PeerId,
    static_private: [u8; DH_LEN],
    payload: Vec<u8>,
}

impl Drop for NoiseIdentity {
    fn drop(&mut self) {
        self.static_private.zeroize();
    }
}

impl std::fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseIdentity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

fn noise_params() -> snow::params::NoiseParams {
    NOISE_PATTERN
        .parse()
        .unwrap_or_else(|_| unreachable!("the pattern name is valid"))
}

fn noise_error(e: snow::Error) -> io::Error {
    io::Error::other(format!("noise: {e}"))
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        HandshakeError::Io(noise_error(e))
    }
}

impl NoiseIdentity {
    /// A fresh static key, signed by `identity`.
    pub fn new(identity: &Keypair) -> io::Result<Self> {
        let keypair = snow::Builder::new(noise_params())
            .generate_keypair()
            .map_err(noise_error)?;
        let mut static_private = [0u8; DH_LEN];
        static_private.copy_from_slice(&keypair.private);
        let signed = [STATIC_KEY_SIGNING_PREFIX, &keypair.public].concat();
        let signature = identity
            .sign(&signed)
            .map_err(|e| io::Error::other(format!("cannot sign the static key: {e}")))?;
        let key = identity.public().encode_protobuf();
        let mut payload = Vec::with_capacity(4 + key.len() + signature.len());
        for part in [&key, &signature] {
            let len =
                u16::try_from(part.len()).map_err(|_| io::Error::other("identity too long"))?;
            payload.extend_from_slice(&len.to_be_bytes());
            payload.extend_from_slice(part);
        }
        Ok(Self {
            peer_id: identity.public().to_peer_id(),
            static_private,
            payload,
        })
    }

    /// The peer id this identity proves.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }
}

/// Everything a handshake needs besides the socket.
#[derive(Clone)]
pub struct ChannelConfig {
    /// The pre-shared keys accepted and dialled with, and who is admitted.
    pub gate: Arc<dyn Gatekeeper>,
    pub identity: Arc<NoiseIdentity>,
    /// Frames per key in each direction ([`DEFAULT_REKEY_INTERVAL`]; tests lower it).
    pub rekey_interval: u64,
    /// What to answer a stranger who asks for the key-derivation parameters
    /// (`None`: this vault's key is not derived from a passphrase).
    pub kdf_parameters: Option<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("identity", &self.identity)
            .field("rekey_interval", &self.rekey_interval)
            .finish()
    }
}

impl ChannelConfig {
    /// A channel with one pre-shared key that admits every holder.
    pub fn with_psk(psk: [u8; 32], identity: Arc<NoiseIdentity>) -> Self {
        Self {
            gate: Arc::new(FixedKey(psk)),
            identity,
            rekey_interval: DEFAULT_REKEY_INTERVAL,
            kdf_parameters: None,
        }
    }
}

/// Which side of the handshake this node plays: the dialler initiates (unless
/// hole punching's role override says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
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
    /// The round trip the handshake measured (see [`Channel::round_trip`]).
    round_trip: Option<Duration>,
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
            round_trip: None,
        }
    }

    /// The peer at the other end, proven by its signature.
    pub fn remote_peer(&self) -> PeerId {
        self.remote
    }

    /// The round trip to the peer as the handshake measured it: from sending a
    /// message to the start of its answer (the initiator's message 1 to message
    /// 2, the responder's message 2 to message 3), which adds only the peer's
    /// few milliseconds of Noise to the path's round trip.
    ///
    /// Why: a connection's first transfer needs the round trip to size what it
    /// keeps in flight, and the pings that measure it answer a round trip
    /// later at best; across 200 ms the first put of a new connection ran a
    /// round trip or two on windows sized for loopback.
    pub fn round_trip(&self) -> Option<Duration> {
        self.round_trip
    }
}

async fn write_message<S: AsyncWrite + Unpin>(socket: &mut S, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| io::Error::other("message too long"))?;
    socket.write_all(&len.to_be_bytes()).await?;
    socket.write_all(message).await?;
    socket.flush().await
}

async fn read_len<S: AsyncRead + Unpin>(socket: &mut S) -> Result<usize, HandshakeError> {
    let mut header = [0u8; 2];
    socket.read_exact(&mut header).await.map_err(closed)?;
    Ok(u16::from_be_bytes(header) as usize)
}

/// An end of stream in the middle of a handshake gives no verdict on the key.
fn closed(e: io::Error) -> HandshakeError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        HandshakeError::ClosedDuringHandshake
    } else {
        HandshakeError::Io(e)
    }
}

/// Reads a handshake message of `len` bytes into a buffer of its own size.
async fn read_body<S: AsyncRead + Unpin>(
    socket: &mut S,
    len: usize,
) -> Result<Vec<u8>, HandshakeError> {
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).await.map_err(closed)?;
    Ok(body)
}

/// True if `message` is a message 1 made with `psk` (for the tests; a responder
/// checks its own state, see [`handshake`]).
#[cfg(test)]
fn opens_message_one(psk: &[u8; 32], message: &[u8]) -> bool {
    let Ok(identity) = NoiseIdentity::new(&Keypair::generate_ed25519()) else {
        return false;
    };
    builder(psk, &identity)
        .and_then(|b| Ok(b.build_responder()?))
        .is_ok_and(|mut noise| noise.read_message(message, &mut []).is_ok())
}

fn builder<'a>(
    psk: &'a [u8; 32],
    identity: &'a NoiseIdentity,
) -> Result<snow::Builder<'a>, HandshakeError> {
    snow::Builder::new(noise_params())
        .prologue(PROLOGUE)
        .and_then(|b| b.psk(0, psk))
        .and_then(|b| b.local_private_key(&identity.static_private))
        .map_err(HandshakeError::from)
}

/// Checks an identity payload against the Noise static key it must have signed.
fn verify_identity(payload: &[u8], remote_static: Option<&[u8]>) -> Result<PeerId, HandshakeError> {
    let (public_key, signature) = parse_identity(payload)
        .ok_or_else(|| HandshakeError::BadIdentity("malformed identity payload".into()))?;
    let remote_static = remote_static
        .ok_or_else(|| HandshakeError::BadIdentity("no static key in the handshake".into()))?;
    let signed = [STATIC_KEY_SIGNING_PREFIX, remote_static].concat();
    if !public_key.verify(&signed, signature) {
        return Err(HandshakeError::BadIdentity(
            "the signature over its static key does not verify".into(),
        ));
    }
    Ok(public_key.to_peer_id())
}

/// Opens a channel over `socket` (see the module docs for the messages);
/// `target` is the peer a dialler means to reach, when its address names it.
pub async fn handshake<S>(
    mut socket: S,
    role: Role,
    config: &ChannelConfig,
    target: Option<&PeerId>,
) -> Result<Channel<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let identity = &config.identity;
    let gate = &config.gate;
    let mut buffer = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    let round_trip;
    let (mut noise, remote, ticket) = match role {
        Role::Initiator => {
            let (ticket, psk) = gate.dial_key(target);
            let mut noise = builder(&psk, identity)?.build_initiator()?;
            let n = noise.write_message(&[], &mut buffer)?;
            write_message(&mut socket, &buffer[..n]).await?;
            let sent = Instant::now();
            let len = read_len(&mut socket).await?;
            round_trip = Some(sent.elapsed());
            if len == 0 {
                return Err(HandshakeError::KeyMismatch);
            }
            if !(MIN_MESSAGE_TWO..=MAX_HANDSHAKE_MESSAGE).contains(&len) {
                return Err(HandshakeError::NotPeerVault(format!(
                    "its first answer announced {len} bytes"
                )));
            }
            let message = read_body(&mut socket, len).await?;
            let mut payload = vec![0u8; len];
            // Only a responder with another key, or none, sends a message 2 that does not
            // open: one with our key has checked our message 1 already.
            let n = noise
                .read_message(&message, &mut payload)
                .map_err(|_| HandshakeError::KeyMismatch)?;
            let remote = verify_identity(&payload[..n], noise.get_remote_static())?;
            if remote != identity.peer_id
                && let Verdict::Refuse(reason) = gate.admit(&remote, Side::Dialled, ticket)
            {
                let _ = socket.close().await;
                return Err(HandshakeError::Refused(reason));
            }
            let n = noise.write_message(&identity.payload, &mut buffer)?;
            write_message(&mut socket, &buffer[..n]).await?;
            (noise, remote, ticket)
        }
        Role::Responder => {
            let len = read_len(&mut socket).await?;
            if len == 0 {
                let answer = config
                    .kdf_parameters
                    .as_ref()
                    .map(|p| p.as_slice())
                    .filter(|p| p.len() <= MAX_PARAMETERS)
                    .unwrap_or_default();
                write_message(&mut socket, answer).await?;
                let _ = socket.close().await;
                return Err(HandshakeError::ParametersAsked);
            }
            if len != MESSAGE_ONE_LEN {
                return Err(HandshakeError::NotPeerVault(format!(
                    "its first message announced {len} bytes, not {MESSAGE_ONE_LEN}"
                )));
            }
            let message_one = read_body(&mut socket, len).await?;
            // Setting up costs some hashing and deriving our static public key
            // (one base-point multiplication); checking message 1 costs some
            // HMAC-SHA256 and a 16-byte AES-GCM open, for each key accepted. No
            // Diffie-Hellman, signature or frame buffer is spent on a stranger.
            let mut opened = None;
            for (ticket, psk) in gate.accepted() {
                let mut noise = builder(&psk, identity)?.build_responder()?;
                if noise.read_message(&message_one, &mut []).is_ok() {
                    opened = Some((noise, ticket));
                    break;
                }
            }
            let Some((mut noise, ticket)) = opened else {
                socket.write_all(&EMPTY).await?;
                let _ = socket.close().await;
                return Err(HandshakeError::KeyMismatch);
            };
            let n = noise.write_message(&identity.payload, &mut buffer)?;
            write_message(&mut socket, &buffer[..n]).await?;
            let sent = Instant::now();
            let len = read_len(&mut socket).await?;
            round_trip = Some(sent.elapsed());
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(HandshakeError::NotPeerVault(format!(
                    "its last message announced {len} bytes"
                )));
            }
            let message = read_body(&mut socket, len).await?;
            let mut payload = vec![0u8; len];
            let n = noise.read_message(&message, &mut payload).map_err(|_| {
                HandshakeError::BadIdentity("its last message does not open".into())
            })?;
            let remote = verify_identity(&payload[..n], noise.get_remote_static())?;
            (noise, remote, ticket)
        }
    };
    if remote == identity.peer_id {
        return Err(HandshakeError::SelfDial);
    }
    let (initiator_to_responder, responder_to_initiator) = noise.dangerously_get_raw_split();
    drop(noise);
    let (send, recv) = match role {
        Role::Initiator => (initiator_to_responder, responder_to_initiator),
        Role::Responder => (responder_to_initiator, initiator_to_responder),
    };
    let mut channel = Channel::new(
        socket,
        remote,
        Direction::new(send, config.rekey_interval)?,
        Direction::new(recv, config.rekey_interval)?,
    );
    channel.round_trip = round_trip;
    match role {
        Role::Responder => {
            let verdict = gate.admit(&remote, Side::Accepted, ticket);
            write_verdict(&mut channel, &verdict, gate.current()).await?;
            match verdict {
                Verdict::Admit => {}
                Verdict::Refuse(reason) => {
                    let _ = channel.close().await;
                    return Err(HandshakeError::Refused(format!(
                        "refused {remote}: {reason}"
                    )));
                }
                Verdict::Welcome(_) => {
                    let _ = channel.close().await;
                    return Err(HandshakeError::Welcomed(remote));
                }
            }
        }
        Role::Initiator => match read_verdict(&mut channel).await? {
            Ok(their_current) => gate.peer_current(&remote, their_current),
            Err(welcome) => {
                gate.welcomed(&remote, welcome);
                let _ = channel.close().await;
                return Err(HandshakeError::Welcomed(remote));
            }
        },
    }
    Ok(channel)
}

/// The responder's verdict, the first thing it sends inside the channel:
/// `0 | its current ticket (u64, big endian)`, `1 | reason (u16 length, UTF-8)`
/// or `2 | welcome (u32 length, bytes)`.
async fn write_verdict<S: AsyncWrite + Unpin>(
    channel: &mut Channel<S>,
    verdict: &Verdict,
    current: Ticket,
) -> Result<(), HandshakeError> {
    let mut out = Vec::new();
    match verdict {
        Verdict::Admit => {
            out.push(0);
            out.extend_from_slice(&current.to_be_bytes());
        }
        Verdict::Refuse(reason) => {
            let reason = &reason.as_bytes()[..reason.len().min(MAX_REASON)];
            out.push(1);
            out.extend_from_slice(&(reason.len() as u16).to_be_bytes());
            out.extend_from_slice(reason);
        }
        Verdict::Welcome(welcome) => {
            let welcome = &welcome[..welcome.len().min(MAX_WELCOME)];
            out.push(2);
            out.extend_from_slice(&(welcome.len() as u32).to_be_bytes());
            out.extend_from_slice(welcome);
        }
    }
    channel.write_all(&out).await?;
    channel.flush().await?;
    Ok(())
}

/// Reads the responder's verdict: its current ticket, or its refusal.
async fn read_verdict<S: AsyncRead + Unpin>(
    channel: &mut Channel<S>,
) -> Result<Result<Ticket, Vec<u8>>, HandshakeError> {
    let mut kind = [0u8; 1];
    channel.read_exact(&mut kind).await.map_err(closed)?;
    match kind[0] {
        0 => {
            let mut ticket = [0u8; 8];
            channel.read_exact(&mut ticket).await.map_err(closed)?;
            Ok(Ok(u64::from_be_bytes(ticket)))
        }
        2 => {
            let mut len = [0u8; 4];
            channel.read_exact(&mut len).await.map_err(closed)?;
            let len = u32::from_be_bytes(len) as usize;
            if len > MAX_WELCOME {
                return Err(HandshakeError::NotPeerVault(format!(
                    "its welcome announced {len} bytes"
                )));
            }
            let mut welcome = vec![0u8; len];
            channel.read_exact(&mut welcome).await.map_err(closed)?;
            Ok(Err(welcome))
        }
        1 => {
            let mut len = [0u8; 2];
            channel.read_exact(&mut len).await.map_err(closed)?;
            let len = (u16::from_be_bytes(len) as usize).min(MAX_REASON);
            let mut reason = vec![0u8; len];
            channel.read_exact(&mut reason).await.map_err(closed)?;
            Err(HandshakeError::Refused(
                String::from_utf8_lossy(&reason).into_owned(),
            ))
        }
        other => Err(HandshakeError::NotPeerVault(format!(
            "its verdict began with byte {other}"
        ))),
    }
}

/// Asks the node at the other end of `socket` for its vault's key-derivation
/// parameters: `None` if its key is not derived from a passphrase.
pub async fn ask_kdf_parameters<S>(mut socket: S) -> io::Result<Option<Vec<u8>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.write_all(&EMPTY).await?;
    socket.flush().await?;
    let mut header = [0u8; 2];
    socket.read_exact(&mut header).await?;
    let len = u16::from_be_bytes(header) as usize;
    if len == 0 {
        return Ok(None);
    }
    if len > MAX_PARAMETERS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer announced {len} bytes; not a PeerVault node"),
        ));
    }
    let mut parameters = vec![0u8; len];
    socket.read_exact(&mut parameters).await?;
    Ok(Some(parameters))
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
    let (Ok(send), Ok(recv)) = (
        Direction::new([8; 32], DEFAULT_REKEY_INTERVAL),
        Direction::new([7; 32], 3),
    ) else {
        return 0;
    };
    let mut channel = Channel::new(
        futures::io::Cursor::new(wire.to_vec()),
        PeerId::random(),
        send,
        recv,
    );
    let mut out = Vec::new();
    let _ = futures::executor::block_on(channel.read_to_end(&mut out));
    out.len()
}

/// Runs a handshake, in the role `initiator` says, against a peer that sends
/// `wire` and then nothing, under a fixed key (for the fuzz targets: whatever
/// arrives, the handshake must end without a panic or a hang).
pub(crate) fn handshake_under_test_key(wire: &[u8], initiator: bool) -> bool {
    /// Hands out `input`, swallows what is written.
    struct Scripted<'a> {
        input: &'a [u8],
    }
    impl AsyncRead for Scripted<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Poll::Ready(Ok(n))
        }
    }
    impl AsyncWrite for Scripted<'_> {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    // One identity for every run: making one costs more than a handshake.
    static IDENTITY: std::sync::OnceLock<Option<Arc<NoiseIdentity>>> = std::sync::OnceLock::new();
    let Some(identity) = IDENTITY
        .get_or_init(|| {
            NoiseIdentity::new(&Keypair::generate_ed25519())
                .ok()
                .map(Arc::new)
        })
        .clone()
    else {
        return false;
    };
    let config = ChannelConfig {
        kdf_parameters: Some(Arc::new(b"parameters".to_vec())),
        ..ChannelConfig::with_psk([7; 32], identity)
    };
    let role = if initiator {
        Role::Initiator
    } else {
        Role::Responder
    };
    futures::executor::block_on(handshake(Scripted { input: wire }, role, &config, None)).is_ok()
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
        let direction = |key: [u8; 32]| Direction::new(key, DEFAULT_REKEY_INTERVAL).unwrap();
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

    fn config(psk: [u8; 32]) -> ChannelConfig {
        ChannelConfig::with_psk(
            psk,
            Arc::new(NoiseIdentity::new(&Keypair::generate_ed25519()).unwrap()),
        )
    }

    type Opened =
        Result<Channel<tokio_util::compat::Compat<tokio::io::DuplexStream>>, HandshakeError>;

    async fn connected_pair(a: &ChannelConfig, b: &ChannelConfig) -> (Opened, Opened) {
        let (x, y) = tokio::io::duplex(1 << 16);
        tokio::join!(
            handshake(x.compat(), Role::Initiator, a, None),
            handshake(y.compat(), Role::Responder, b, None)
        )
    }

    /// A socket whose every write waits [`SLOW_WRITE`] first: a path with a
    /// round trip of at least twice that.
    struct SlowWrites<S> {
        inner: S,
        wait: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    const SLOW_WRITE: Duration = Duration::from_millis(30);

    impl<S: AsyncRead + Unpin> AsyncRead for SlowWrites<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for SlowWrites<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(SLOW_WRITE)));
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_close(cx)
        }
    }

    #[tokio::test]
    async fn the_handshake_measures_the_round_trip_on_both_sides() {
        let (a, b) = (config([9; 32]), config([9; 32]));
        let (x, y) = tokio::io::duplex(1 << 16);
        let slow = |s| SlowWrites {
            inner: tokio_util::compat::TokioAsyncReadCompatExt::compat(s),
            wait: None,
        };
        let (initiator, responder) = tokio::join!(
            handshake(slow(x), Role::Initiator, &a, None),
            handshake(slow(y), Role::Responder, &b, None)
        );
        for (side, channel) in [("initiator", initiator), ("responder", responder)] {
            let rtt = channel.expect("the handshake succeeds").round_trip();
            // Each side's answer was written at least one slow write later.
            assert!(
                rtt.is_some_and(|rtt| rtt >= SLOW_WRITE),
                "the {side} measured {rtt:?}"
            );
        }
    }

    async fn exchange_both_ways<S: AsyncRead + AsyncWrite + Unpin>(
        a: &mut Channel<S>,
        b: &mut Channel<S>,
        len: usize,
    ) {
        let data = message(len);
        let (sent, got) = tokio::join!(
            async {
                a.write_all(&data).await.unwrap();
                a.flush().await.unwrap();
                let mut back = vec![0u8; len];
                a.read_exact(&mut back).await.unwrap();
                back
            },
            async {
                let mut got = vec![0u8; len];
                b.read_exact(&mut got).await.unwrap();
                b.write_all(&got).await.unwrap();
                b.flush().await.unwrap();
                got
            }
        );
        assert!(got == data, "the responder read other bytes");
        assert!(sent == data, "the initiator read other bytes back");
    }

    #[tokio::test]
    async fn the_handshake_authenticates_both_peers_and_carries_data_both_ways() {
        let (a, b) = (config([8; 32]), config([8; 32]));
        let (ca, cb) = connected_pair(&a, &b).await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        assert_eq!(ca.remote_peer(), b.identity.peer_id());
        assert_eq!(cb.remote_peer(), a.identity.peer_id());
        exchange_both_ways(&mut ca, &mut cb, 200_000).await;
    }

    /// A gatekeeper with two keys (tickets 1 and 2, dialling with `dial`) that
    /// refuses one peer, and remembers what it was told.
    struct TwoKeys {
        dial: Ticket,
        refuse: Option<PeerId>,
        admitted: std::sync::Mutex<Vec<(PeerId, Side, Ticket)>>,
        told: std::sync::Mutex<Vec<Ticket>>,
    }

    impl Gatekeeper for TwoKeys {
        fn accepted(&self) -> Vec<(Ticket, [u8; 32])> {
            vec![(2, [2; 32]), (1, [1; 32])]
        }
        fn dial_key(&self, _peer: Option<&PeerId>) -> (Ticket, [u8; 32]) {
            (self.dial, [self.dial as u8; 32])
        }
        fn admit(&self, peer: &PeerId, side: Side, ticket: Ticket) -> Verdict {
            self.admitted.lock().unwrap().push((*peer, side, ticket));
            if Some(*peer) == self.refuse {
                Verdict::Refuse("this device was removed from the vault".into())
            } else {
                Verdict::Admit
            }
        }
        fn current(&self) -> Ticket {
            2
        }
        fn peer_current(&self, _peer: &PeerId, ticket: Ticket) {
            self.told.lock().unwrap().push(ticket);
        }
    }

    fn gated(dial: Ticket, refuse: Option<PeerId>) -> (ChannelConfig, Arc<TwoKeys>) {
        let gate = Arc::new(TwoKeys {
            dial,
            refuse,
            admitted: Default::default(),
            told: Default::default(),
        });
        let mut config = config([0; 32]);
        config.gate = gate.clone();
        (config, gate)
    }

    #[tokio::test]
    async fn a_responder_accepts_each_of_its_keys_and_says_which() {
        for dial in [1, 2] {
            let (a, a_gate) = gated(dial, None);
            let (b, b_gate) = gated(2, None);
            let (x, y) = connected_pair(&a, &b).await;
            let (mut x, mut y) = (x.unwrap(), y.unwrap());
            exchange_both_ways(&mut x, &mut y, 1000).await;
            assert_eq!(
                b_gate.admitted.lock().unwrap()[..],
                [(a.identity.peer_id(), Side::Accepted, dial)],
                "the responder knows which key the dialler proved"
            );
            assert_eq!(
                a_gate.admitted.lock().unwrap()[..],
                [(b.identity.peer_id(), Side::Dialled, dial)]
            );
            assert_eq!(
                a_gate.told.lock().unwrap()[..],
                [2],
                "and the dialler, its current"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_dialler_is_told_why() {
        let (a, _) = gated(1, None);
        let (b, _) = gated(2, Some(a.identity.peer_id()));
        let (x, y) = connected_pair(&a, &b).await;
        match x {
            Err(HandshakeError::Refused(reason)) => {
                assert!(reason.contains("removed from the vault"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(y, Err(HandshakeError::Refused(_))), "{y:?}");
        // A dialler refuses a responder it does not admit, before sending its identity.
        let (b, _) = gated(2, None);
        let (a, _) = gated(1, Some(b.identity.peer_id()));
        let (x, y) = connected_pair(&a, &b).await;
        assert!(matches!(x, Err(HandshakeError::Refused(_))), "{x:?}");
        assert!(y.is_err(), "{y:?}");
    }

    #[tokio::test]
    async fn another_pre_shared_key_is_a_key_mismatch_on_both_sides() {
        let (a, b) = connected_pair(&config([1; 32]), &config([2; 32])).await;
        assert!(matches!(a, Err(HandshakeError::KeyMismatch)), "{a:?}");
        assert!(matches!(b, Err(HandshakeError::KeyMismatch)), "{b:?}");
    }

    #[tokio::test]
    async fn a_node_that_reaches_itself_says_so() {
        let a = config([5; 32]);
        let (x, y) = connected_pair(&a, &a).await;
        assert!(matches!(x, Err(HandshakeError::SelfDial)), "{x:?}");
        assert!(matches!(y, Err(HandshakeError::SelfDial)), "{y:?}");
    }

    #[tokio::test]
    async fn a_member_cannot_pass_for_another_node() {
        // A member holds the key, and has seen another node's identity payload
        // (its signature over that node's static key): sending it with a static
        // key of its own does not verify.
        let victim = NoiseIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let member = NoiseIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let forged = NoiseIdentity {
            peer_id: victim.peer_id,
            static_private: member.static_private,
            payload: victim.payload.clone(),
        };
        let mut impostor = config([2; 32]);
        impostor.identity = Arc::new(forged);
        let honest = config([2; 32]);
        for (a, b) in [(&impostor, &honest), (&honest, &impostor)] {
            let (x, y) = connected_pair(a, b).await;
            let verdicts = [x.err(), y.err()];
            assert!(
                verdicts
                    .iter()
                    .any(|v| matches!(v, Some(HandshakeError::BadIdentity(_)))),
                "{verdicts:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_reflected_message_is_refused() {
        // A peer that echoes every byte back.
        let (a, b) = tokio::io::duplex(1 << 16);
        let echo = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(b);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let result = handshake(a.compat(), Role::Initiator, &config([9; 32]), None).await;
        assert!(
            matches!(
                result,
                Err(HandshakeError::KeyMismatch | HandshakeError::NotPeerVault(_))
            ),
            "{result:?}"
        );
        echo.abort();
    }

    /// What a responder sends back for `first` (all of it, until it closes).
    async fn answer_to(config: &ChannelConfig, first: &[u8]) -> (Vec<u8>, HandshakeError) {
        let (mut stranger, node) = tokio::io::duplex(1 << 16);
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stranger.write_all(first).await.unwrap();
        let verdict = handshake(node.compat(), Role::Responder, config, None)
            .await
            .unwrap_err();
        let mut answer = Vec::new();
        stranger.read_to_end(&mut answer).await.unwrap();
        (answer, verdict)
    }

    /// A message 1 as a node with `psk` sends it when it dials.
    async fn message_one(psk: [u8; 32]) -> Vec<u8> {
        let (mut stranger, node) = tokio::io::duplex(1 << 16);
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let config = config(psk);
        let dial = tokio::spawn(async move {
            let _ = handshake(node.compat(), Role::Initiator, &config, None).await;
        });
        let mut sent = vec![0u8; 2 + MESSAGE_ONE_LEN];
        stranger.read_exact(&mut sent).await.unwrap();
        // The stranger refuses, as a node with another key would.
        stranger.write_all(&EMPTY).await.unwrap();
        dial.await.unwrap();
        sent.split_off(2)
    }

    #[tokio::test]
    async fn a_stranger_gets_two_zero_bytes_whatever_the_key() {
        let node = config([3; 32]);
        for stranger_key in [[4u8; 32], [5; 32]] {
            let first = message_one(stranger_key).await;
            let mut framed = (first.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&first);
            let (answer, verdict) = answer_to(&node, &framed).await;
            assert_eq!(answer, EMPTY, "a refusal is constant");
            assert!(
                matches!(verdict, HandshakeError::KeyMismatch),
                "{verdict:?}"
            );
        }
        // Garbage of the wrong length is not even read.
        let (answer, verdict) = answer_to(&node, &[0xff, 0xff, 1, 2, 3]).await;
        assert!(answer.is_empty());
        assert!(
            matches!(verdict, HandshakeError::NotPeerVault(_)),
            "{verdict:?}"
        );
    }

    #[tokio::test]
    async fn key_derivation_parameters_are_answered_and_nothing_else() {
        let mut node = config([3; 32]);
        let (x, y) = tokio::io::duplex(1 << 16);
        let serve = handshake(y.compat(), Role::Responder, &node, None);
        let (asked, served) = tokio::join!(ask_kdf_parameters(x.compat()), serve);
        assert_eq!(asked.unwrap(), None, "no passphrase, no parameters");
        assert!(matches!(served, Err(HandshakeError::ParametersAsked)));

        node.kdf_parameters = Some(Arc::new(b"salt and costs".to_vec()));
        let (x, y) = tokio::io::duplex(1 << 16);
        let serve = handshake(y.compat(), Role::Responder, &node, None);
        let (asked, _) = tokio::join!(ask_kdf_parameters(x.compat()), serve);
        assert_eq!(asked.unwrap(), Some(b"salt and costs".to_vec()));
    }

    /// The old handshake's flaw: its masked ephemeral key, unmasked under the right
    /// key, was always a valid curve point with its top bit clear, so every hello
    /// tested key guesses. Now the ephemeral key is sent as it is (the same for any
    /// guess), and unmasking it under any key-derived mask gives noise.
    #[tokio::test]
    async fn the_bytes_a_node_sends_tell_the_right_key_from_a_random_one_no_better_than_chance() {
        let right = [0x42u8; 32];
        let random: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(97) ^ 0x5a);
        let mut messages = Vec::new();
        for _ in 0..64 {
            messages.push(message_one(right).await);
        }
        // What an observer could check, with a key guess `k`, on each message.
        let top_bit_clear = |bytes: &[u8]| bytes[31] & 0x80 == 0;
        let on_curve = |bytes: &[u8]| {
            let point: [u8; 32] = bytes.try_into().unwrap();
            curve25519_dalek::montgomery::MontgomeryPoint(point)
                .to_edwards(0)
                .is_some()
        };
        // A key-dependent reading of the key half, per message (as the old hello
        // was unmasked with a mask of the key and the hello's nonce).
        let unmasked = |k: &[u8; 32], m: &[u8]| -> Vec<u8> {
            let mask = blake3::keyed_hash(k, &m[32..]);
            m[..32]
                .iter()
                .zip(mask.as_bytes())
                .map(|(a, b)| a ^ b)
                .collect()
        };
        for (name, check) in [
            ("top bit", &top_bit_clear as &dyn Fn(&[u8]) -> bool),
            ("curve point", &on_curve),
        ] {
            let count = |k: &[u8; 32]| messages.iter().filter(|m| check(&unmasked(k, m))).count();
            let (with_right, with_random) = (count(&right), count(&random));
            // Chance gives Bin(64, 1/2) either way (P outside 14..=50 is below 1e-5);
            // the old hello gave 64 under the right key.
            for n in [with_right, with_random] {
                assert!(
                    (14..=50).contains(&n),
                    "{name}: {with_right} vs {with_random}"
                );
            }
            // On the bytes as sent, no key enters the check at all.
            let raw = messages.iter().filter(|m| check(&m[..32])).count();
            assert_eq!(raw, 64, "{name}: an X25519 public key is what it is");
        }
        // The one key-dependent thing is message 1's tag, which psk0 inherently
        // exposes to whoever a node dials (see the module docs).
        assert!(messages.iter().all(|m| opens_message_one(&right, m)));
        assert!(messages.iter().all(|m| !opens_message_one(&random, m)));
    }

    #[tokio::test]
    async fn transfers_across_many_rekeys_are_byte_identical() {
        let (mut a, mut b) = (config([6; 32]), config([6; 32]));
        a.rekey_interval = 3;
        b.rekey_interval = 3;
        let (ca, cb) = connected_pair(&a, &b).await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        // ~3 MB each way: about 50 frames, so 16 rekeys per direction.
        exchange_both_ways(&mut ca, &mut cb, 3_000_000).await;
        assert!(ca.send.counter > 3 * 15 && cb.send.counter > 3 * 15);
        // Ends that disagree on the interval cannot read each other past it.
        let mut c = config([6; 32]);
        c.rekey_interval = 4;
        let (cc, cd) = connected_pair(&a, &c).await;
        let (mut cc, mut cd) = (cc.unwrap(), cd.unwrap());
        let data = message(10 * MAX_PAYLOAD);
        let len = data.len();
        let writer = tokio::spawn(async move {
            let _ = cc.write_all(&data).await;
            let _ = cc.flush().await;
        });
        let mut got = vec![0u8; len];
        let read = cd.read_exact(&mut got).await;
        writer.abort();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn rekey_is_the_noise_rekey_function() {
        // Checked against snow's own transport state: after one rekey, both seal
        // "hello" with nonce 0 and no associated data into the same bytes.
        let psk = [1u8; 32];
        let identity = NoiseIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let other = NoiseIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let mut i = builder(&psk, &identity).unwrap().build_initiator().unwrap();
        let mut r = builder(&psk, &other).unwrap().build_responder().unwrap();
        let mut buf = vec![0u8; 1024];
        let mut payload = vec![0u8; 1024];
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut payload).unwrap();
        let n = r.write_message(&[], &mut buf).unwrap();
        i.read_message(&buf[..n], &mut payload).unwrap();
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut payload).unwrap();
        let (send_key, _) = i.dangerously_get_raw_split();
        let mut transport = i.into_transport_mode().unwrap();
        transport.rekey_outgoing();
        let n = transport.write_message(b"hello", &mut buf).unwrap();
        let mut ours = Direction::new(send_key, 1).unwrap();
        ours.rekey().unwrap();
        let mut sealed = b"hello".to_vec();
        ours.key
            .seal_in_place_append_tag(noise_nonce(0), Aad::empty(), &mut sealed)
            .unwrap();
        assert_eq!(sealed, buf[..n]);
    }

    #[test]
    fn odd_handshake_input_is_refused_without_a_panic() {
        for len in [0, 1, 2, 31, 32, 47, 48, 49, 50, 200, 70_000] {
            for initiator in [true, false] {
                let mut wire = vec![0xa5; len];
                if len >= 2 {
                    // A plausible length header in front.
                    wire[..2].copy_from_slice(&((len - 2).min(65_535) as u16).to_be_bytes());
                }
                assert!(!handshake_under_test_key(&wire, initiator));
            }
        }
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
