//! PeerVault's networking layer.
//!
//! Only this crate names libp2p types; the node talks to the network through the
//! small types exported here.

pub mod addr;
pub mod identity;

pub use addr::{AddrError, Endpoint, Host};
pub use identity::{IdentityError, NodeIdentity};
pub use libp2p_identity::PeerId;
