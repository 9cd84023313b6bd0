//! The transport: TCP, then the private channel ([`crate::channel`]: a Noise
//! handshake with the network key as pre-shared key, then AES-256-GCM frames),
//! then Yamux.
//!
//! The channel runs before any libp2p negotiation, so a node without the network
//! key gets a two-byte refusal and cannot even start multistream-select.
//! Yamux is then negotiated inside the channel, as libp2p would after its own
//! security upgrade.
//!
//! **Time limits.** The channel handshake must finish within
//! [`HANDSHAKE_TIMEOUT`]; the whole upgrade, within [`UPGRADE_TIMEOUT`]. A peer that
//! accepts TCP and then says nothing costs one timer, not a stuck connection.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::{PeerId, Transport, tcp};
use multistream_select::Version;

use crate::channel::{ChannelConfig, Role};
use crate::muxer::Muxer;

/// Limit for the channel handshake (three Noise messages).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for the complete connection upgrade (adds Yamux).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(15);

const YAMUX: &str = "/yamux/1.0.0";

/// How long a handshake's round trip waits for the swarm to report its
/// connection (a connection the swarm refuses, e.g. over the limits, never is).
const ROUND_TRIP_KEPT: Duration = Duration::from_secs(60);

/// The round trips that connection handshakes measured
/// ([`crate::channel::Channel::round_trip`]), by peer, until the event loop
/// takes them as the peer's round trip for the time before its first ping.
#[derive(Debug, Clone, Default)]
pub struct HandshakeRoundTrips(Arc<Mutex<HashMap<PeerId, (Duration, Instant)>>>);

impl HandshakeRoundTrips {
    fn record(&self, peer: PeerId, rtt: Duration) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, (_, at)| at.elapsed() < ROUND_TRIP_KEPT);
        kept.insert(peer, (rtt, Instant::now()));
    }

    /// The round trip the newest handshake with `peer` measured, once.
    pub fn take(&self, peer: &PeerId) -> Option<Duration> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.remove(peer)
            .filter(|(_, at)| at.elapsed() < ROUND_TRIP_KEPT)
            .map(|(rtt, _)| rtt)
    }
}

/// Why the private-channel handshake failed. Each verdict is reported as what it
/// is: only [`HandshakeError::KeyMismatch`] says the other side holds another key.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "network key mismatch: the peer does not hold this vault's network key; no data was exchanged"
    )]
    KeyMismatch,
    #[error("the peer's identity does not verify: {0}")]
    BadIdentity(String),
    #[error("this address leads back to this node itself")]
    SelfDial,
    #[error("not a PeerVault node of this version ({0})")]
    NotPeerVault(String),
    #[error("the connection closed during the handshake")]
    ClosedDuringHandshake,
    #[error("{0}")]
    Refused(String),
    #[error("welcomed {0} with an invitation; it connects again as a member")]
    Welcomed(PeerId),
    #[error("answered a request for the vault's key-derivation parameters")]
    ParametersAsked,
    #[error("the peer did not complete the handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake failed: {0}")]
    Io(#[from] io::Error),
}

/// A handshake verdict, as the event loop acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    KeyMismatch,
    BadIdentity,
    SelfDial,
    NotPeerVault,
    ClosedDuringHandshake,
    ParametersAsked,
    Timeout,
    /// The gatekeeper of one side refused the other (a removed device).
    Refused,
    /// An invitation was redeemed (not a failure).
    Welcomed,
}

impl HandshakeFailure {
    fn of(error: &HandshakeError) -> Option<Self> {
        Some(match error {
            HandshakeError::KeyMismatch => Self::KeyMismatch,
            HandshakeError::BadIdentity(_) => Self::BadIdentity,
            HandshakeError::SelfDial => Self::SelfDial,
            HandshakeError::NotPeerVault(_) => Self::NotPeerVault,
            HandshakeError::ClosedDuringHandshake => Self::ClosedDuringHandshake,
            HandshakeError::ParametersAsked => Self::ParametersAsked,
            HandshakeError::HandshakeTimeout(_) => Self::Timeout,
            HandshakeError::Refused(_) => Self::Refused,
            HandshakeError::Welcomed(_) => Self::Welcomed,
            HandshakeError::Io(_) => return None,
        })
    }

    /// The variant's name, as it appears in the debug rendering of any error that
    /// wraps it.
    fn debug_name(self) -> &'static str {
        match self {
            Self::KeyMismatch => "KeyMismatch",
            Self::BadIdentity => "BadIdentity(",
            Self::SelfDial => "SelfDial",
            Self::NotPeerVault => "NotPeerVault(",
            Self::ClosedDuringHandshake => "ClosedDuringHandshake",
            Self::ParametersAsked => "ParametersAsked",
            Self::Timeout => "HandshakeTimeout(",
            Self::Refused => "Refused(",
            Self::Welcomed => "Welcomed(",
        }
    }

    const ALL: [Self; 9] = [
        Self::KeyMismatch,
        Self::BadIdentity,
        Self::SelfDial,
        Self::NotPeerVault,
        Self::ClosedDuringHandshake,
        Self::ParametersAsked,
        Self::Timeout,
        Self::Refused,
        Self::Welcomed,
    ];
}

/// The handshake verdict inside `error` (or anything it wraps), if there is one.
///
/// The swarm reports handshake errors wrapped in several layers, some of which
/// (`Either`) hide the wrapped error from `source()`. So besides walking the source
/// chain this also looks for the variant's name in the debug rendering, which every
/// layer passes through.
pub fn handshake_failure(error: &(dyn std::error::Error + 'static)) -> Option<HandshakeFailure> {
    if let Some(found) = in_source_chain(error) {
        return Some(found);
    }
    let debug = format!("{error:?}");
    HandshakeFailure::ALL
        .into_iter()
        .find(|f| debug.contains(f.debug_name()))
}

fn in_source_chain(error: &(dyn std::error::Error + 'static)) -> Option<HandshakeFailure> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e
            .downcast_ref::<HandshakeError>()
            .and_then(HandshakeFailure::of)
        {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = in_source_chain(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Upgrades a raw connection: the channel, then Yamux negotiated inside it.
/// `endpoint` says which side initiates the handshake and proposes the
/// multiplexer (with a role override, as hole punching uses, the override decides).
/// The round trip the handshake measured goes to Yamux and to `round_trips`.
pub async fn secure_and_multiplex<S>(
    socket: S,
    endpoint: &ConnectedPoint,
    config: &ChannelConfig,
    round_trips: &HandshakeRoundTrips,
) -> Result<(PeerId, StreamMuxerBox), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // `to_endpoint` ignores the override that hole punching sets on one of the two
    // dialling sides: that side must act as the listener here.
    let role = match endpoint {
        ConnectedPoint::Dialer { role_override, .. } => *role_override,
        ConnectedPoint::Listener { .. } => Endpoint::Listener,
    };
    let channel_role = match role {
        Endpoint::Dialer => Role::Initiator,
        Endpoint::Listener => Role::Responder,
    };
    // The swarm appends the peer id to the address of a dial to a known peer.
    let target = match endpoint {
        ConnectedPoint::Dialer { address, .. } => match address.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some(peer),
            _ => None,
        },
        ConnectedPoint::Listener { .. } => None,
    };
    let channel = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        crate::channel::handshake(socket, channel_role, config, target.as_ref()),
    )
    .await
    .map_err(|_| HandshakeError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    let peer = channel.remote_peer();
    let rtt = channel.round_trip();
    if let Some(rtt) = rtt {
        round_trips.record(peer, rtt);
    }
    let muxer = match role {
        Endpoint::Dialer => {
            let (protocol, io) =
                multistream_select::dialer_select_proto(channel, [YAMUX], Version::V1Lazy)
                    .await
                    .map_err(io::Error::other)?;
            debug_assert_eq!(protocol, YAMUX);
            Muxer::new(io, role, rtt)
        }
        Endpoint::Listener => {
            let (protocol, io) = multistream_select::listener_select_proto(channel, [YAMUX])
                .await
                .map_err(io::Error::other)?;
            debug_assert_eq!(protocol, YAMUX);
            Muxer::new(io, role, rtt)
        }
    };
    Ok((peer, StreamMuxerBox::new(muxer)))
}

/// TCP, and circuits through relays, each secured by the private channel and
/// multiplexed by Yamux. A circuit runs the channel end to end: the relay carries
/// bytes it cannot read, as any router would.
pub fn build(
    config: ChannelConfig,
    relay: libp2p::relay::client::Transport,
    round_trips: HandshakeRoundTrips,
) -> io::Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let config = Arc::new(config);
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    // Circuit addresses go to the relay transport; TCP refuses them, and the
    // relay transport refuses everything else.
    let secured = relay.or_transport(tcp).and_then(move |socket, endpoint| {
        let config = config.clone();
        let round_trips = round_trips.clone();
        async move { secure_and_multiplex(socket, &endpoint, &config, &round_trips).await }
    });
    Ok(TransportTimeout::new(secured, UPGRADE_TIMEOUT).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_found_inside_wrapping_errors() {
        let is_key_mismatch = |e: &(dyn std::error::Error + 'static)| {
            handshake_failure(e) == Some(HandshakeFailure::KeyMismatch)
        };
        let wrapped = io::Error::other(HandshakeError::KeyMismatch);
        assert!(is_key_mismatch(&wrapped));
        let twice = io::Error::other(wrapped);
        assert!(is_key_mismatch(&twice));
        assert!(!is_key_mismatch(&io::Error::other("connection refused")));
        assert_eq!(
            handshake_failure(&HandshakeError::HandshakeTimeout(HANDSHAKE_TIMEOUT)),
            Some(HandshakeFailure::Timeout)
        );
        let self_dial = io::Error::other(io::Error::other(HandshakeError::SelfDial));
        assert_eq!(
            handshake_failure(&self_dial),
            Some(HandshakeFailure::SelfDial)
        );
        assert!(
            !is_key_mismatch(&self_dial),
            "reaching oneself is not another key"
        );
        // Hidden from source() but visible in the debug form, as libp2p's Either is.
        #[derive(Debug)]
        struct Opaque(#[allow(dead_code)] HandshakeError);
        impl std::fmt::Display for Opaque {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("opaque")
            }
        }
        impl std::error::Error for Opaque {}
        let hidden = Opaque(HandshakeError::BadIdentity("x".into()));
        assert_eq!(
            handshake_failure(&hidden),
            Some(HandshakeFailure::BadIdentity)
        );
        assert_eq!(handshake_failure(&io::Error::other("Timeout")), None);
    }
}
