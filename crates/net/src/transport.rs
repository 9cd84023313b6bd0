//! The transport: TCP, then the private-network layer, then a key check, then
//! Noise and Yamux.
//!
//! **Private network.** Every TCP connection is encrypted under a pre-shared key
//! derived from the network key ([`crate::private`]: libp2p's pnet design with AES
//! instead of XSalsa20), so a node without the key cannot even read the protocol
//! negotiation, let alone learn anything about the vault.
//!
//! **Key check.** With mismatched keys the private layer itself does not fail: each side just
//! decrypts garbage, and the connection dies later in protocol negotiation with an
//! error that says nothing useful, or hangs. So right after the nonce exchange each
//! side sends a fixed 16-byte marker through the encrypted stream and reads the
//! other's. A marker that decrypts wrongly means the keys differ: both sides fail
//! with [`HandshakeError::KeyMismatch`] at once, and the node logs it in plain words.
//!
//! **Time limits.** Everything up to and including the key check must finish within
//! [`HANDSHAKE_TIMEOUT`]; the whole upgrade, within [`UPGRADE_TIMEOUT`]. A peer that
//! accepts TCP and then says nothing costs one timer, not a stuck connection.

use std::io;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::transport::upgrade::Version;

use libp2p::{PeerId, Transport, identity::Keypair, noise, tcp, yamux};

/// Limit for the TCP-level handshake: private-network nonces and the key check.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for the complete connection upgrade (adds Noise and Yamux).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(15);

/// What each side sends through the private-network stream to prove its key.
const KEY_CHECK_MARKER: &[u8; 16] = b"peervault/pnet/1";

/// Why the private-network handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "network key mismatch: the peer does not use this node's network key \
         (or it is not a PeerVault node); no data was exchanged"
    )]
    KeyMismatch,
    #[error("the peer did not complete the handshake within {0:?}")]
    Timeout(Duration),

    #[error("handshake failed: {0}")]
    Io(#[from] io::Error),
}

/// True if `error` (or anything it wraps) is a key mismatch.
///
/// The swarm reports handshake errors wrapped in several layers, some of which
/// (`Either`) hide the wrapped error from `source()`. So besides walking the source
/// chain this also looks for the variant's name in the debug rendering, which every
/// layer passes through.
pub fn is_key_mismatch(error: &(dyn std::error::Error + 'static)) -> bool {
    in_source_chain(error) || format!("{error:?}").contains("KeyMismatch")
}

fn in_source_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if matches!(
            e.downcast_ref::<HandshakeError>(),
            Some(HandshakeError::KeyMismatch)
        ) {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && in_source_chain(inner)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// TCP + private-network layer + key check + Noise + Yamux.
pub fn build(keypair: &Keypair, psk: [u8; 32]) -> io::Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let noise = noise::Config::new(keypair).map_err(io::Error::other)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    Ok(tcp
        .and_then(move |socket, _| async move {
            let checked = async {
                let mut stream = crate::private::handshake(socket, &psk).await?;
                stream.write_all(KEY_CHECK_MARKER).await?;
                stream.flush().await?;
                let mut marker = [0u8; KEY_CHECK_MARKER.len()];
                stream.read_exact(&mut marker).await?;
                if &marker != KEY_CHECK_MARKER {
                    return Err(HandshakeError::KeyMismatch);
                }
                Ok(stream)
            };
            tokio::time::timeout(HANDSHAKE_TIMEOUT, checked)
                .await
                .map_err(|_| HandshakeError::Timeout(HANDSHAKE_TIMEOUT))?
        })
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(UPGRADE_TIMEOUT)
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mismatch_is_found_inside_wrapping_errors() {
        let wrapped = io::Error::other(HandshakeError::KeyMismatch);
        assert!(is_key_mismatch(&wrapped));
        let twice = io::Error::other(wrapped);
        assert!(is_key_mismatch(&twice));
        assert!(!is_key_mismatch(&io::Error::other("connection refused")));
        assert!(!is_key_mismatch(&HandshakeError::Timeout(
            HANDSHAKE_TIMEOUT
        )));
    }
}
