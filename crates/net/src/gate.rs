//! Who may connect: the pre-shared keys a node accepts and dials with, and its
//! verdict on each authenticated peer.
//!
//! The private channel ([`crate::channel`]) proves two things about the other
//! side: which pre-shared key it holds, and which identity (peer id) it is. What
//! those two facts mean is the vault's business, not the network's, so the
//! channel asks a [`Gatekeeper`] the node supplies:
//!
//! * **which keys a responder accepts** ([`Gatekeeper::accepted`]): a node in a
//!   vault that has started new key epochs accepts the key of each epoch it
//!   holds, each under a [`Ticket`] that says which one it was;
//! * **which key to dial with** ([`Gatekeeper::dial_key`]), given the peer being
//!   dialled when the address names it: a member that was offline while a new
//!   epoch started still holds only the old key, so it is dialled with that one;
//! * **whether an authenticated peer may stay** ([`Gatekeeper::admit`]), after
//!   message 3 for a responder and after message 2 for a dialler. A refusal
//!   carries a reason, which the responder sends to the dialler inside the
//!   channel, so that a removed device is told why instead of seeing a closed
//!   connection.
//!
//! Tests and tools without a vault use [`FixedKey`]: one key, everyone admitted.

use libp2p::PeerId;

/// Which accepted key a peer proved (the gatekeeper's own numbering).
pub type Ticket = u64;

/// Which end of the connection this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This node dialled; the ticket is the key it dialled with.
    Dialled,
    /// The peer dialled; the ticket is the key the peer's message 1 opened with.
    Accepted,
}

/// A gatekeeper's decision on an authenticated peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refused, and why, in words for the refused node's operator.
    Refuse(String),
    /// A device redeeming an invitation: these bytes (its keys, sealed to
    /// it) are its answer, and the connection ends there. It connects again
    /// as a member.
    Welcome(Vec<u8>),
}

/// The node's side of admission (see the module docs).
pub trait Gatekeeper: Send + Sync + 'static {
    /// The pre-shared keys a responder accepts, each with its ticket; tried in
    /// this order (the usual one first: each try costs a few hashes).
    fn accepted(&self) -> Vec<(Ticket, [u8; 32])>;

    /// The key to dial `peer` with (`None` when the address does not name it).
    fn dial_key(&self, peer: Option<&PeerId>) -> (Ticket, [u8; 32]);

    /// Whether `peer`, authenticated with the key of `ticket`, may connect.
    fn admit(&self, peer: &PeerId, side: Side, ticket: Ticket) -> Verdict;

    /// The ticket of the key a responder dials with itself, sent to a dialler
    /// it admits (so that each side knows how current the other is).
    fn current(&self) -> Ticket;

    /// A responder that admitted this node said `ticket` is its current one.
    fn peer_current(&self, _peer: &PeerId, _ticket: Ticket) {}

    /// A responder answered with a welcome (see [`Verdict::Welcome`]).
    fn welcomed(&self, _peer: &PeerId, _welcome: Vec<u8>) {}
}

/// Redeems an invitation: dials with the invitation's key and keeps the
/// welcome the member answers with.
#[derive(Debug)]
pub struct Redeemer {
    pub psk: [u8; 32],
    pub welcome: std::sync::Mutex<Option<(PeerId, Vec<u8>)>>,
}

impl Gatekeeper for Redeemer {
    fn accepted(&self) -> Vec<(Ticket, [u8; 32])> {
        Vec::new()
    }

    fn dial_key(&self, _peer: Option<&PeerId>) -> (Ticket, [u8; 32]) {
        (0, self.psk)
    }

    fn admit(&self, _peer: &PeerId, _side: Side, _ticket: Ticket) -> Verdict {
        Verdict::Admit
    }

    fn current(&self) -> Ticket {
        0
    }

    fn welcomed(&self, peer: &PeerId, welcome: Vec<u8>) {
        *self.welcome.lock().unwrap_or_else(|p| p.into_inner()) = Some((*peer, welcome));
    }
}

/// One pre-shared key, and every holder admitted (tests, tools, the chaos proxy).
#[derive(Debug, Clone)]
pub struct FixedKey(pub [u8; 32]);

impl Gatekeeper for FixedKey {
    fn accepted(&self) -> Vec<(Ticket, [u8; 32])> {
        vec![(0, self.0)]
    }

    fn dial_key(&self, _peer: Option<&PeerId>) -> (Ticket, [u8; 32]) {
        (0, self.0)
    }

    fn admit(&self, _peer: &PeerId, _side: Side, _ticket: Ticket) -> Verdict {
        Verdict::Admit
    }

    fn current(&self) -> Ticket {
        0
    }
}
