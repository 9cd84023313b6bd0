//! The transport: TCP, then the private channel ([`crate::channel`]: membership,
//! encryption, integrity and both peers' identities in one layer), then Yamux.
//!
//! The channel runs before any libp2p negotiation, so a node without the network
//! key sees nothing but random bytes and cannot even start multistream-select.
//! Yamux is then negotiated inside the channel, as libp2p would after its own
//! security upgrade.
//!
//! **Time limits.** The channel handshake must finish within
//! [`HANDSHAKE_TIMEOUT`]; the whole upgrade, within [`UPGRADE_TIMEOUT`]. A peer that
//! accepts TCP and then says nothing costs one timer, not a stuck connection.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::{PeerId, Transport, identity::Keypair, tcp};
use multistream_select::Version;

use crate::muxer::Muxer;

/// Limit for the channel handshake (hello, keys, identities).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for the complete connection upgrade (adds Yamux).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(15);

const YAMUX: &str = "/yamux/1.0.0";

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

/// Upgrades a raw connection: the channel, then Yamux negotiated inside it.
/// `endpoint` says which side proposes the multiplexer (with a role override, as
/// hole punching uses, the override decides).
pub async fn secure_and_multiplex<S>(
    socket: S,
    endpoint: &ConnectedPoint,
    psk: &[u8; 32],
    identity: &Keypair,
) -> Result<(PeerId, StreamMuxerBox), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let channel = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        crate::channel::handshake(socket, psk, identity),
    )
    .await
    .map_err(|_| HandshakeError::Timeout(HANDSHAKE_TIMEOUT))??;
    let peer = channel.remote_peer();
    // `to_endpoint` ignores the override that hole punching sets on one of the two
    // dialling sides: that side must act as the listener here.
    let role = match endpoint {
        ConnectedPoint::Dialer { role_override, .. } => *role_override,
        ConnectedPoint::Listener { .. } => Endpoint::Listener,
    };
    let muxer = match role {
        Endpoint::Dialer => {
            let (protocol, io) =
                multistream_select::dialer_select_proto(channel, [YAMUX], Version::V1Lazy)
                    .await
                    .map_err(io::Error::other)?;
            debug_assert_eq!(protocol, YAMUX);
            Muxer::new(io, role)
        }
        Endpoint::Listener => {
            let (protocol, io) = multistream_select::listener_select_proto(channel, [YAMUX])
                .await
                .map_err(io::Error::other)?;
            debug_assert_eq!(protocol, YAMUX);
            Muxer::new(io, role)
        }
    };
    Ok((peer, StreamMuxerBox::new(muxer)))
}

/// TCP, and circuits through relays, each secured by the private channel and
/// multiplexed by Yamux. A circuit runs the channel end to end: the relay carries
/// bytes it cannot read, as any router would.
pub fn build(
    keypair: &Keypair,
    psk: [u8; 32],
    relay: libp2p::relay::client::Transport,
) -> io::Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let keypair = keypair.clone();
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    // Circuit addresses go to the relay transport; TCP refuses them, and the
    // relay transport refuses everything else.
    let secured = relay.or_transport(tcp).and_then(move |socket, endpoint| {
        let keypair = keypair.clone();
        async move { secure_and_multiplex(socket, &endpoint, &psk, &keypair).await }
    });
    Ok(TransportTimeout::new(secured, UPGRADE_TIMEOUT).boxed())
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
