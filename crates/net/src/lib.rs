//! PeerVault's networking layer.
//!
//! Only this crate names libp2p types; the node talks to the network through the
//! small types exported here: a [`NetHandle`] to send requests and query peers,
//! and channels of [`InboundRequest`]s and [`NetEvent`]s to drain. Messages are
//! opaque bytes at this level; the node defines and decodes them.

pub mod addr;
pub mod channel;
pub mod codec;
mod event_loop;
pub mod identity;
pub mod network;
pub mod peers;
pub mod transport;

pub use addr::{AddrError, Endpoint, Host};
pub use identity::{IdentityError, NodeIdentity};
pub use libp2p::{Multiaddr, PeerId};
pub use network::{
    Addresses, InboundRequest, NetConfig, NetError, NetEvent, NetHandle, Network, start,
};
pub use peers::{Discovery, KnownPeer, PeerInfo, PeerSource};
