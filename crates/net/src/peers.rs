//! What the node knows about other nodes: who is connected, how each was found,
//! how healthy the link is, and whom to dial again.
//!
//! Three kinds of entries:
//! * **connected** peers, with their address, round-trip time and last sign of life;
//! * **bootstrap** endpoints from `-bootstrap`, dialled without knowing their peer id
//!   and redialled with exponential backoff for as long as the node runs;
//! * **known** peers learnt from other peers (or seen before), redialled a bounded
//!   number of times after they disconnect.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::addr::Endpoint;

/// First pause before redialling; doubles after each failure.
pub const REDIAL_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between redials of a bootstrap endpoint.
pub const REDIAL_MAX: Duration = Duration::from_secs(30);
/// Redials of a lost (non-bootstrap) peer before giving up on it.
pub const REDIAL_ATTEMPTS: u32 = 8;

/// How a peer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// Named in `-bootstrap`.
    Bootstrap,
    /// It connected to us.
    Inbound,
    /// Another peer told us about it.
    Exchange,
    /// Dialled on request.
    Manual,
}

impl std::fmt::Display for PeerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerSource::Bootstrap => "bootstrap",
            PeerSource::Inbound => "inbound",
            PeerSource::Exchange => "exchange",
            PeerSource::Manual => "manual",
        })
    }
}

/// A connected peer as shown by `peers`.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// The best address to name it by: a listen address if known, else the
    /// connection's remote address.
    pub address: Multiaddr,
    pub listen_addrs: Vec<Multiaddr>,
    pub source: PeerSource,
    /// Last ping round trip.
    pub rtt: Option<Duration>,
    /// Time since the last sign of life (connection, ping, message).
    pub last_seen: Duration,
    pub connected_for: Duration,
    pub agent: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Connected {
    pub remote: Multiaddr,
    pub dialed: bool,
    pub source: PeerSource,
    pub rtt: Option<Duration>,
    pub last_seen: Instant,
    pub since: Instant,
    pub agent: Option<String>,
    pub listen_addrs: Vec<Multiaddr>,
}

#[derive(Debug)]
pub(crate) struct Bootstrap {
    pub endpoint: Endpoint,
    pub peer: Option<PeerId>,
    pub pending: Option<ConnectionId>,
    pub resolving: bool,
    pub backoff: Duration,
    pub next_attempt: Instant,
    pub failures: u32,
}

#[derive(Debug)]
pub(crate) struct Known {
    pub addrs: Vec<Multiaddr>,
    pub source: PeerSource,
    pub attempts: u32,
    pub next_attempt: Instant,
    pub pending: bool,
}

/// All peer state of the event loop.
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    pub connected: HashMap<PeerId, Connected>,
    pub bootstrap: Vec<Bootstrap>,
    pub known: HashMap<PeerId, Known>,
}

impl PeerBook {
    pub fn new(bootstrap: Vec<Endpoint>, now: Instant) -> Self {
        Self {
            connected: HashMap::new(),
            bootstrap: bootstrap
                .into_iter()
                .map(|endpoint| Bootstrap {
                    endpoint,
                    peer: None,
                    pending: None,
                    resolving: false,
                    backoff: REDIAL_FIRST,
                    next_attempt: now,
                    failures: 0,
                })
                .collect(),
            known: HashMap::new(),
        }
    }

    /// Bootstrap entries due for a dial now.
    pub fn due_bootstraps(&self, now: Instant) -> Vec<usize> {
        self.bootstrap
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let connected = b.peer.is_some_and(|p| self.connected.contains_key(&p));
                !connected && b.pending.is_none() && !b.resolving && b.next_attempt <= now
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Records a failed bootstrap dial and schedules the next one; returns the pause.
    pub fn bootstrap_failed(&mut self, index: usize, now: Instant) -> Duration {
        let Some(b) = self.bootstrap.get_mut(index) else {
            return REDIAL_MAX;
        };
        b.pending = None;
        b.resolving = false;
        b.failures += 1;
        let pause = b.backoff;
        b.next_attempt = now + pause;
        b.backoff = (b.backoff * 2).min(REDIAL_MAX);
        pause
    }

    /// Known peers due for a redial now.
    pub fn due_known(&self, now: Instant) -> Vec<PeerId> {
        self.known
            .iter()
            .filter(|(peer, k)| {
                !self.connected.contains_key(peer)
                    && !k.pending
                    && k.attempts < REDIAL_ATTEMPTS
                    && k.next_attempt <= now
                    && !k.addrs.is_empty()
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Remembers a peer worth dialling, without downgrading what is already known.
    pub fn learn(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, source: PeerSource, now: Instant) {
        let entry = self.known.entry(peer).or_insert(Known {
            addrs: Vec::new(),
            source,
            attempts: 0,
            next_attempt: now,
            pending: false,
        });
        for addr in addrs {
            if !entry.addrs.contains(&addr) {
                entry.addrs.push(addr);
            }
        }
    }

    /// A snapshot for `peers`, sorted for stable numbering.
    pub fn snapshot(&self, now: Instant) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .connected
            .iter()
            .map(|(peer_id, c)| PeerInfo {
                peer_id: *peer_id,
                address: best_address(c),
                listen_addrs: c.listen_addrs.clone(),
                source: c.source,
                rtt: c.rtt,
                last_seen: now.saturating_duration_since(c.last_seen),
                connected_for: now.saturating_duration_since(c.since),
                agent: c.agent.clone(),
            })
            .collect();
        peers.sort_by(|a, b| {
            (a.address.to_string(), a.peer_id.to_base58())
                .cmp(&(b.address.to_string(), b.peer_id.to_base58()))
        });
        peers
    }
}

/// The address to show for a connected peer: where we dialled it, or the listen
/// address it announced on the IP it connected from, or the raw remote address.
fn best_address(c: &Connected) -> Multiaddr {
    if c.dialed {
        return c.remote.clone();
    }
    let remote_ip = c.remote.iter().next();
    c.listen_addrs
        .iter()
        .find(|a| a.iter().next() == remote_ip)
        .cloned()
        .unwrap_or_else(|| c.remote.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_backoff_doubles_up_to_the_cap() {
        let now = Instant::now();
        let mut book = PeerBook::new(vec![Endpoint::parse("localhost:3000").unwrap()], now);
        assert_eq!(book.due_bootstraps(now), vec![0]);
        let mut pauses = Vec::new();
        for _ in 0..8 {
            pauses.push(book.bootstrap_failed(0, now).as_secs());
        }
        assert_eq!(pauses, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(book.due_bootstraps(now).is_empty());
        assert_eq!(book.due_bootstraps(now + REDIAL_MAX), vec![0]);
    }

    #[test]
    fn learning_merges_addresses() {
        let now = Instant::now();
        let mut book = PeerBook::new(Vec::new(), now);
        let peer = PeerId::random();
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().unwrap();
        book.learn(peer, vec![a.clone()], PeerSource::Exchange, now);
        book.learn(peer, vec![a, b], PeerSource::Exchange, now);
        assert_eq!(book.known[&peer].addrs.len(), 2);
        assert_eq!(book.due_known(now), vec![peer]);
    }
}
