//! Who may start a handshake: at most [`MAX_PENDING_PER_SOURCE`] unfinished
//! inbound handshakes per source address.
//!
//! Every inbound connection holds a place among the swarm's pending connections
//! until its handshake ends, which for a peer that connects and says nothing is
//! the handshake's time limit. Without a limit per source, one host opening a few
//! dozen silent connections filled the node's pending limit and locked members
//! out (measured: 64 silent connections were enough). With it, a flood from one
//! address is refused at accept, before any handshake work, while members from
//! other addresses keep getting in. IPv6 sources count by their /64, which one
//! host usually holds whole.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Unfinished inbound handshakes one source address may hold at once.
pub const MAX_PENDING_PER_SOURCE: usize = 8;

/// Refusal of a connection beyond the per-source limit.
#[derive(Debug, thiserror::Error)]
#[error("{source_addr} already has {MAX_PENDING_PER_SOURCE} unfinished handshakes with this node")]
pub struct TooManyPending {
    source_addr: IpAddr,
}

/// The source a connection is counted under (`None` for addresses without an IP,
/// such as relayed circuits, which the relay limits already).
fn source_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => {
            let mut octets = ip.octets();
            octets[8..].fill(0);
            Some(IpAddr::V6(octets.into()))
        }
        _ => None,
    }
    .filter(|_| !addr.iter().any(|p| p == Protocol::P2pCircuit))
}

/// The behaviour that keeps the count.
#[derive(Debug, Default)]
pub struct PendingPerSource {
    pending: HashMap<ConnectionId, IpAddr>,
    per_source: HashMap<IpAddr, usize>,
}

impl PendingPerSource {
    fn finished(&mut self, connection: ConnectionId) {
        if let Some(source) = self.pending.remove(&connection)
            && let Some(count) = self.per_source.get_mut(&source)
        {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Unfinished handshakes from `addr`'s source now.
    pub fn pending_from(&self, addr: &Multiaddr) -> usize {
        source_of(addr)
            .and_then(|s| self.per_source.get(&s).copied())
            .unwrap_or(0)
    }
}

impl NetworkBehaviour for PendingPerSource {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(source) = source_of(remote_addr) else {
            return Ok(());
        };
        let count = self.per_source.entry(source).or_default();
        if *count >= MAX_PENDING_PER_SOURCE {
            return Err(ConnectionDenied::new(TooManyPending {
                source_addr: source,
            }));
        }
        *count += 1;
        self.pending.insert(connection_id, source);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.finished(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.finished(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_source_is_held_to_its_limit_and_others_are_not() {
        let mut limit = PendingPerSource::default();
        let local = addr("/ip4/127.0.0.1/tcp/3000");
        let flood = addr("/ip4/127.0.0.66/tcp/40000");
        let mut ids = Vec::new();
        for _ in 0..MAX_PENDING_PER_SOURCE {
            let id = ConnectionId::new_unchecked(ids.len());
            limit
                .handle_pending_inbound_connection(id, &local, &flood)
                .unwrap();
            ids.push(id);
        }
        let next = ConnectionId::new_unchecked(100);
        assert!(
            limit
                .handle_pending_inbound_connection(next, &local, &flood)
                .is_err()
        );
        let member = addr("/ip4/127.0.0.1/tcp/50000");
        assert!(
            limit
                .handle_pending_inbound_connection(next, &local, &member)
                .is_ok()
        );
        // One of the flood's handshakes ends: room for one more, not two.
        limit.finished(ids[0]);
        assert_eq!(limit.pending_from(&flood), MAX_PENDING_PER_SOURCE - 1);
        let again = ConnectionId::new_unchecked(101);
        assert!(
            limit
                .handle_pending_inbound_connection(again, &local, &flood)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(102), &local, &flood)
                .is_err()
        );
    }

    #[test]
    fn ipv6_sources_count_by_their_64_and_circuits_not_at_all() {
        let a = addr("/ip6/2001:db8:1:2::1/tcp/1");
        let b = addr("/ip6/2001:db8:1:2:ffff::9/tcp/1");
        assert_eq!(source_of(&a), source_of(&b));
        assert_ne!(
            source_of(&a),
            source_of(&addr("/ip6/2001:db8:1:3::1/tcp/1"))
        );
        let circuit = addr(
            "/ip4/10.0.0.1/tcp/4000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert_eq!(source_of(&circuit), None);
    }
}
