//! PeerVault's networking layer.
//!
//! Only this crate names libp2p types; the node talks to the network through the
//! small types exported here: a [`NetHandle`] to send requests and query peers,
//! and channels of [`InboundRequest`]s and [`NetEvent`]s to drain. Messages are
//! opaque bytes at this level; the node defines and decodes them.

pub mod addr;
pub mod admission;
pub mod channel;
pub mod codec;
mod event_loop;
pub mod gate;
pub mod identity;
pub mod muxer;
pub mod network;
pub mod peers;
pub mod split_safe;
pub mod transport;

/// Entry points for the fuzz targets (`fuzz/`) and their corpus replay, for
/// decoders that are private to this crate. Each takes arbitrary bytes and must
/// neither panic nor hang.
pub mod fuzzing {
    /// A peer-exchange message, as received.
    pub fn pex_message(bytes: &[u8]) -> usize {
        crate::event_loop::decode_pex(bytes, std::time::Instant::now()).len()
    }

    /// The identity message inside a channel handshake.
    pub fn channel_identity(bytes: &[u8]) -> bool {
        crate::channel::parse_identity(bytes).is_some()
    }

    /// A channel handshake, both roles, against a peer that sends `bytes`.
    pub fn channel_handshake(bytes: &[u8]) -> bool {
        let as_initiator = crate::channel::handshake_under_test_key(bytes, true);
        crate::channel::handshake_under_test_key(bytes, false) || as_initiator
    }

    /// Channel frames as they arrive from the wire, read under a fixed key.
    pub fn channel_frames(bytes: &[u8]) -> usize {
        crate::channel::read_all_under_test_key(bytes)
    }
}

pub use addr::{AddrError, Endpoint, Host};
pub use gate::{FixedKey, Gatekeeper, Redeemer, Side, Ticket, Verdict};
pub use identity::{IdentityError, NodeIdentity};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use libp2p_stream::IncomingStreams;
pub use network::{
    Addresses, DEFAULT_MAX_PEERS, DEFAULT_PEX_INTERVAL, InboundRequest, NetConfig, NetError,
    NetEvent, NetHandle, NetSettings, Network, ask_kdf_parameters, redeem_invitation,
    refused_protocol, start,
};
pub use peers::{
    ConnectionPath, Discovery, KnownPeer, PeerInfo, PeerSource, Scope as AddressScope,
    scope as address_scope,
};
