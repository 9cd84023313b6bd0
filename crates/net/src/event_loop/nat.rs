//! Behind NAT: whether this node is reachable (AutoNAT, the candidates identify
//! reports), reservations on relays, hole punching (DCUtR) and which path each
//! connection runs on.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, relay};

use super::EventLoop;
use crate::peers::ConnectionPath;

/// The protocol a relay (circuit relay v2) serves, as identify lists it.
pub(super) const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Relays a node behind NAT keeps a reservation on.
pub(super) const RELAY_RESERVATIONS: usize = 2;

/// Whether peers can reach this node directly, as AutoNAT found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// Not known yet (or `-advertise` was given, and it is not checked).
    Unknown,
    /// Peers could dial this address back.
    Public(Multiaddr),
    /// Peers could not dial back: behind NAT or a firewall.
    Private,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reachability::Unknown => f.write_str("unknown"),
            Reachability::Public(addr) => write!(f, "public at {addr}"),
            Reachability::Private => f.write_str("private (behind NAT or a firewall)"),
        }
    }
}

/// Our listen port on the observed IP: what a peer behind the same NAT view would dial.
pub(super) fn public_candidate(observed: &Multiaddr, listen: &[Multiaddr]) -> Option<Multiaddr> {
    let ip = observed.iter().next()?;
    if !matches!(ip, Protocol::Ip4(_) | Protocol::Ip6(_)) {
        return None;
    }
    let port = listen.iter().find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
    })?;
    Some(Multiaddr::empty().with(ip).with(Protocol::Tcp(port)))
}

impl EventLoop {
    /// Recomputes the best path to `peer` from its open connections.
    pub(super) fn update_path(&mut self, peer: PeerId) {
        let best = self
            .paths
            .values()
            .filter(|(p, _)| *p == peer)
            .map(|(_, path)| *path)
            .max();
        if let (Some(best), Some(c)) = (best, self.book.connected.get_mut(&peer)) {
            c.path = best;
        }
    }

    /// Behind NAT: holds a reservation on up to [`RELAY_RESERVATIONS`] connected
    /// relays, so that peers can reach this node through them.
    pub(super) fn reserve_relays(&mut self) {
        if self.reachability != Reachability::Private {
            return;
        }
        let reserved: std::collections::HashSet<PeerId> =
            self.relay_listeners.values().copied().collect();
        let candidates: Vec<(PeerId, Multiaddr)> = self
            .book
            .connected
            .iter()
            .filter(|(peer, c)| {
                c.relay && c.path != ConnectionPath::Relayed && !reserved.contains(*peer)
            })
            .map(|(peer, c)| (*peer, crate::peers::dialable_address(c)))
            .collect();
        for (relay, addr) in candidates
            .into_iter()
            .take(RELAY_RESERVATIONS.saturating_sub(reserved.len()))
        {
            let circuit = addr
                .with_p2p(relay)
                .unwrap_or_else(|a| a)
                .with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::info!("behind NAT: asking relay {relay} for a reservation");
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => tracing::debug!("cannot listen on {circuit}: {e}"),
            }
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } => {
                tracing::debug!("relay {relay_peer_id} accepted a reservation");
            }
            other => tracing::debug!("relay client: {other:?}"),
        }
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        match event.result {
            Ok(connection) => {
                tracing::info!(
                    "hole punched to {peer}: a direct connection replaces the relayed one"
                );
                if let Some(entry) = self.paths.get_mut(&connection) {
                    entry.1 = ConnectionPath::HolePunched;
                }
                // Prefer the direct path: the relay's circuit is no longer needed.
                let relayed: Vec<_> = self
                    .paths
                    .iter()
                    .filter(|(_, (p, path))| *p == peer && *path == ConnectionPath::Relayed)
                    .map(|(id, _)| *id)
                    .collect();
                for id in relayed {
                    self.swarm.close_connection(id);
                }
                self.update_path(peer);
            }
            Err(e) => tracing::info!("hole punching to {peer} failed ({e}); staying relayed"),
        }
    }

    pub(super) fn on_autonat(&mut self, event: autonat::Event) {
        if let autonat::Event::StatusChanged { new, .. } = event {
            self.reachability = match new {
                autonat::NatStatus::Public(addr) => Reachability::Public(addr),
                autonat::NatStatus::Private => Reachability::Private,
                autonat::NatStatus::Unknown => Reachability::Unknown,
            };
            tracing::info!("reachability: {}", self.reachability);
            self.reserve_relays();
        }
    }
}
