//! What the node knows about other nodes: who is connected, how each was found,
//! how healthy the link is, whom to dial again, and whom to forget.
//!
//! Three kinds of entries:
//! * **connected** peers, with their address, round-trip time and last sign of life;
//! * **bootstrap** endpoints from `-bootstrap`, dialled without knowing their peer id
//!   and redialled with exponential backoff for as long as the node runs;
//! * **known** peers (the address book), learnt from mDNS, peer exchange, the DHT or
//!   earlier connections. They are dialled while the node has fewer connections than
//!   it aims for, and forgotten when nobody has seen them for [`STALE_AFTER`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::addr::Endpoint;

/// First pause before redialling; doubles after each failure.
pub const REDIAL_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between redials of a bootstrap endpoint.
pub const REDIAL_MAX: Duration = Duration::from_secs(30);

/// The pause before the next dial of a peer or bootstrap address that failed
/// `failures` times in a row: [`REDIAL_FIRST`], doubling, at most [`REDIAL_MAX`].
/// (One definition: it was computed in three places, two of them without the cap.)
pub fn redial_pause(failures: u32) -> Duration {
    (REDIAL_FIRST * 2u32.pow(failures.saturating_sub(1).min(5))).min(REDIAL_MAX)
}
/// Dials of a known (non-bootstrap) peer before giving up on it until it is seen again.
pub const REDIAL_ATTEMPTS: u32 = 8;
/// A peer nobody has seen for this long is dropped from the address book.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Peers named in one peer-exchange message.
pub const PEX_LIMIT: usize = 20;
/// A peer found to hold another network key is not dialled again for this long
/// (a later successful connection clears the verdict at once).
pub const KEY_MISMATCH_EXPIRY: Duration = Duration::from_secs(10 * 60);

/// How a peer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// Named in `-bootstrap`.
    Bootstrap,
    /// Found on the local network by mDNS.
    Mdns,
    /// Named by another peer (peer exchange).
    Pex,
    /// Found through the DHT.
    Dht,
    /// It connected to us.
    Inbound,
    /// Dialled on request.
    Manual,
}

impl std::fmt::Display for PeerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerSource::Bootstrap => "bootstrap",
            PeerSource::Mdns => "mdns",
            PeerSource::Pex => "pex",
            PeerSource::Dht => "dht",
            PeerSource::Inbound => "inbound",
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
    /// How the best open connection to it runs.
    pub path: ConnectionPath,
}

/// How a connection reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum ConnectionPath {
    /// Through a relay (circuit relay v2): both ends behind NAT, or not yet punched.
    Relayed,
    /// A plain connection: one side dialled the other's address.
    #[default]
    Direct,
    /// A direct connection made by hole punching (DCUtR) over a relayed one.
    HolePunched,
}

impl std::fmt::Display for ConnectionPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectionPath::Relayed => "relayed",
            ConnectionPath::Direct => "direct",
            ConnectionPath::HolePunched => "hole-punched",
        })
    }
}

/// An address-book entry as shown by `discover`.
#[derive(Debug, Clone)]
pub struct KnownPeer {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub source: PeerSource,
    /// Time since anyone last saw it.
    pub last_seen: Duration,
    pub connected: bool,
    /// This node has been connected to it at some point.
    pub met: bool,
    /// A connection failed because it has another network key.
    pub key_mismatch: bool,
}

/// What `discover` shows.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub mdns_enabled: bool,
    pub pex_enabled: bool,
    /// Peers mDNS currently reports on the local network.
    pub mdns: Vec<KnownPeer>,
    /// The whole address book, connected peers included.
    pub known: Vec<KnownPeer>,
    /// Peers in the DHT routing table.
    pub dht_routing_table: usize,
    /// Peer lists received from peers since start (on connect and in rounds).
    pub pex_received: u64,
    /// Peers banned for misbehaving, with the time left.
    pub banned: Vec<(PeerId, Duration)>,
    /// Peers first learnt of from those lists.
    pub pex_learnt: u64,
}

#[derive(Debug)]
pub(crate) struct Connected {
    /// Last request or answer of the node's own protocol with this peer.
    pub last_used: Instant,
    pub remote: Multiaddr,
    pub dialed: bool,
    pub source: PeerSource,
    pub rtt: Option<Duration>,
    pub last_seen: Instant,
    pub since: Instant,
    pub agent: Option<String>,
    pub listen_addrs: Vec<Multiaddr>,
    /// The best path among its open connections.
    pub path: ConnectionPath,
    /// It offers a relay (circuit relay v2 hop) to peers behind NAT.
    pub relay: bool,
}

#[derive(Debug)]
pub(crate) struct Bootstrap {
    pub endpoint: Endpoint,
    pub peer: Option<PeerId>,
    pub pending: Option<ConnectionId>,
    pub resolving: bool,
    pub next_attempt: Instant,
    pub failures: u32,
    /// The endpoint led back to this node itself (a shared address such as
    /// localhost:3000 on another host): it is not dialled again.
    pub itself: bool,
    /// The last dial from the listen port failed with "address already in use":
    /// dial from a new port until a connection is made.
    pub new_port: bool,
}

#[derive(Debug)]
pub(crate) struct Known {
    pub addrs: Vec<Multiaddr>,
    pub source: PeerSource,
    pub last_seen: Instant,
    pub attempts: u32,
    pub next_attempt: Instant,
    pub pending: bool,
    /// Until when a key mismatch keeps it from being dialled.
    pub mismatch_until: Option<Instant>,
    /// As [`Bootstrap::new_port`].
    pub new_port: bool,
    /// This node has been connected to it at some point.
    pub met: bool,
}

impl Known {
    /// A key mismatch was found lately (it expires, and a connection clears it).
    pub fn mismatched(&self, now: Instant) -> bool {
        self.mismatch_until.is_some_and(|until| until > now)
    }
}

/// One peer as named in a peer-exchange message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PexEntry {
    pub peer: Vec<u8>,
    pub addrs: Vec<Vec<u8>>,
    pub source: PeerSource,
    pub seen_secs_ago: u64,
}

/// All peer state of the event loop.
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    pub connected: HashMap<PeerId, Connected>,
    pub bootstrap: Vec<Bootstrap>,
    pub known: HashMap<PeerId, Known>,
    /// Peers mDNS reports now, with their addresses.
    pub mdns: HashMap<PeerId, Vec<Multiaddr>>,
}

impl PeerBook {
    pub fn new(bootstrap: Vec<Endpoint>, now: Instant) -> Self {
        Self {
            bootstrap: bootstrap
                .into_iter()
                .map(|endpoint| Bootstrap {
                    endpoint,
                    peer: None,
                    pending: None,
                    resolving: false,
                    next_attempt: now,
                    failures: 0,
                    itself: false,
                    new_port: false,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Bootstrap entries due for a dial now.
    pub fn due_bootstraps(&self, now: Instant) -> Vec<usize> {
        self.bootstrap
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let connected = b.peer.is_some_and(|p| self.connected.contains_key(&p));
                !connected
                    && !b.itself
                    && b.pending.is_none()
                    && !b.resolving
                    && b.next_attempt <= now
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
        let pause = redial_pause(b.failures);
        b.next_attempt = now + pause;
        pause
    }

    /// Known peers due for a dial now, at most `budget` of them, most recently seen first.
    pub fn due_known(&self, now: Instant, budget: usize) -> Vec<PeerId> {
        let mut due: Vec<(&PeerId, &Known)> = self
            .known
            .iter()
            .filter(|(peer, k)| {
                !self.connected.contains_key(peer)
                    && !k.pending
                    && !k.mismatched(now)
                    && k.attempts < REDIAL_ATTEMPTS
                    && k.next_attempt <= now
                    && !k.addrs.is_empty()
            })
            .collect();
        due.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        due.into_iter()
            .take(budget)
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Remembers a peer, merging addresses. A peer seen again becomes worth dialling
    /// again; the first source it was found through is kept.
    pub fn learn(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        source: PeerSource,
        seen: Instant,
        now: Instant,
    ) {
        let entry = self.known.entry(peer).or_insert(Known {
            addrs: Vec::new(),
            source,
            last_seen: seen,
            attempts: 0,
            next_attempt: now,
            pending: false,
            mismatch_until: None,
            new_port: false,
            met: false,
        });
        if seen > entry.last_seen {
            entry.last_seen = seen;
            entry.attempts = 0;
        }
        for addr in addrs {
            if !entry.addrs.contains(&addr) {
                entry.addrs.push(addr);
            }
        }
    }

    /// Drops address-book entries nobody has seen for [`STALE_AFTER`] (connected peers
    /// and bootstrap endpoints stay). Returns how many went.
    pub fn age_out(&mut self, now: Instant) -> usize {
        let connected = &self.connected;
        let before = self.known.len();
        self.known.retain(|peer, k| {
            connected.contains_key(peer) || now.saturating_duration_since(k.last_seen) < STALE_AFTER
        });
        before - self.known.len()
    }

    /// When `peer` was last seen: now if connected, else from the address book.
    fn last_seen(&self, peer: &PeerId, now: Instant) -> Option<Instant> {
        if self.connected.contains_key(peer) {
            return Some(now);
        }
        self.known.get(peer).map(|k| k.last_seen)
    }

    /// The address a connected peer's connection runs to: what decides which
    /// addresses may pass between us (see [`reachable_via`]).
    pub fn via(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.connected.get(peer).map(|c| c.remote.clone())
    }

    /// Up to [`PEX_LIMIT`] peers to tell `to` about, most recently seen first; only
    /// peers without a key mismatch, with the addresses `to` can reach (no loopback
    /// or link-local address goes to a peer on another host).
    pub fn pex_entries(&self, to: &PeerId, now: Instant) -> Vec<PexEntry> {
        let via = self.via(to);
        let reachable = |addrs: &[Multiaddr]| -> Vec<Multiaddr> {
            addrs
                .iter()
                .filter(|a| via.as_ref().is_some_and(|via| reachable_via(a, via)))
                .cloned()
                .collect()
        };
        let mut candidates: Vec<(PeerId, Vec<Multiaddr>, PeerSource, Instant)> = Vec::new();
        for (peer, c) in &self.connected {
            let addrs = reachable(&c.listen_addrs);
            if peer != to && !addrs.is_empty() {
                candidates.push((*peer, addrs, c.source, now));
            }
        }
        for (peer, k) in &self.known {
            let addrs = reachable(&k.addrs);
            if peer != to
                && !self.connected.contains_key(peer)
                && !k.mismatched(now)
                && !addrs.is_empty()
            {
                candidates.push((*peer, addrs, k.source, k.last_seen));
            }
        }
        candidates.sort_by_key(|(_, _, _, seen)| std::cmp::Reverse(*seen));
        candidates
            .into_iter()
            .take(PEX_LIMIT)
            .map(|(peer, addrs, source, seen)| PexEntry {
                peer: peer.to_bytes(),
                addrs: addrs.iter().map(|a| a.to_vec()).collect(),
                source,
                seen_secs_ago: now.saturating_duration_since(seen).as_secs(),
            })
            .collect()
    }

    fn known_peer(&self, peer: &PeerId, now: Instant) -> KnownPeer {
        let known = self.known.get(peer);
        let connected = self.connected.get(peer);
        KnownPeer {
            peer_id: *peer,
            addrs: connected
                .map(|c| c.listen_addrs.clone())
                .filter(|a| !a.is_empty())
                .or_else(|| known.map(|k| k.addrs.clone()))
                .or_else(|| self.mdns.get(peer).cloned())
                .unwrap_or_default(),
            source: connected
                .map(|c| c.source)
                .or(known.map(|k| k.source))
                .unwrap_or(PeerSource::Mdns),
            last_seen: self
                .last_seen(peer, now)
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default(),
            connected: connected.is_some(),
            met: connected.is_some() || known.is_some_and(|k| k.met),
            key_mismatch: known.is_some_and(|k| k.mismatched(now)),
        }
    }

    /// Peers to disconnect so that at most `keep` connections remain: the longest
    /// unused first, never a bootstrap peer and never one used within `recent`.
    pub fn to_trim(&self, keep: usize, recent: Duration, now: Instant) -> Vec<PeerId> {
        let excess = self.connected.len().saturating_sub(keep);
        let mut idle: Vec<(&PeerId, &Connected)> = self
            .connected
            .iter()
            .filter(|(_, c)| {
                c.source != PeerSource::Bootstrap
                    && now.saturating_duration_since(c.last_used) >= recent
            })
            .collect();
        idle.sort_by_key(|(_, c)| c.last_used);
        idle.into_iter().take(excess).map(|(p, _)| *p).collect()
    }

    /// The `discover` view (without the DHT figure, which the swarm knows).
    pub fn discovery(&self, now: Instant) -> Discovery {
        let mut peers: Vec<PeerId> = self
            .known
            .keys()
            .chain(self.connected.keys())
            .copied()
            .collect();
        peers.sort_by_key(|p| p.to_base58());
        peers.dedup();
        let mut mdns: Vec<KnownPeer> = self.mdns.keys().map(|p| self.known_peer(p, now)).collect();
        mdns.sort_by_key(|k| k.peer_id.to_base58());
        Discovery {
            mdns,
            known: peers.iter().map(|p| self.known_peer(p, now)).collect(),
            ..Discovery::default()
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
                path: c.path,
            })
            .collect();
        peers.sort_by(|a, b| {
            (a.address.to_string(), a.peer_id.to_base58())
                .cmp(&(b.address.to_string(), b.peer_id.to_base58()))
        });
        peers
    }
}

/// Where an address can be dialled from: a loopback address only from this host,
/// a link-local one only from this host or the same link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Host,
    Link,
    Global,
}

/// The scope of `addr` (by its first component; a circuit counts by its relay).
pub fn scope(addr: &Multiaddr) -> Scope {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) if ip.is_loopback() => Scope::Host,
        Some(Protocol::Ip4(ip)) if ip.is_link_local() => Scope::Link,
        Some(Protocol::Ip6(ip)) if ip.is_loopback() => Scope::Host,
        Some(Protocol::Ip6(ip)) if ip.is_unicast_link_local() => Scope::Link,
        Some(Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name))
            if name.eq_ignore_ascii_case("localhost") =>
        {
            Scope::Host
        }
        _ => Scope::Global,
    }
}

/// True if a peer we reach through `via` (the connection's remote address) can
/// dial `addr`: a host-scoped address only when `via` is on this host, a
/// link-scoped one only when `via` is on this host or link. Dialling another
/// host's 127.0.0.1:3000 reaches whatever listens there here, on the default port
/// usually this very node.
pub(crate) fn reachable_via(addr: &Multiaddr, via: &Multiaddr) -> bool {
    scope(addr) >= scope(via)
}

/// An address to reach a connected peer by again: the one we dialled, or one it
/// announced on the IP it connected from.
pub(crate) fn dialable_address(c: &Connected) -> Multiaddr {
    best_address(c)
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

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

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
    fn learning_merges_addresses_and_keeps_the_first_source() {
        let now = Instant::now();
        let mut book = PeerBook::new(Vec::new(), now);
        let peer = PeerId::random();
        book.learn(peer, vec![addr(1)], PeerSource::Mdns, now, now);
        book.learn(peer, vec![addr(1), addr(2)], PeerSource::Pex, now, now);
        assert_eq!(book.known[&peer].addrs.len(), 2);
        assert_eq!(book.known[&peer].source, PeerSource::Mdns);
        assert_eq!(book.due_known(now, 10), vec![peer]);
        assert!(
            book.due_known(now, 0).is_empty(),
            "no dialling beyond the budget"
        );
    }

    #[test]
    fn stale_peers_age_out_after_thirty_minutes() {
        let start = Instant::now();
        let mut book = PeerBook::new(Vec::new(), start);
        let (old, fresh) = (PeerId::random(), PeerId::random());
        book.learn(old, vec![addr(1)], PeerSource::Pex, start, start);
        let later = start + Duration::from_secs(20 * 60);
        book.learn(fresh, vec![addr(2)], PeerSource::Pex, later, later);
        assert_eq!(book.age_out(later), 0);
        let much_later = start + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(book.age_out(much_later), 1);
        assert!(book.known.contains_key(&fresh) && !book.known.contains_key(&old));
        // Being seen again (reported by a peer) resets the clock.
        book.learn(fresh, vec![], PeerSource::Pex, much_later, much_later);
        assert_eq!(book.age_out(much_later + Duration::from_secs(29 * 60)), 0);
    }

    #[test]
    fn pex_names_at_most_twenty_recent_peers_and_never_the_receiver() {
        let now = Instant::now();
        let mut book = PeerBook::new(Vec::new(), now);
        let receiver = PeerId::random();
        book.learn(receiver, vec![addr(9)], PeerSource::Pex, now, now);
        // On this host (its connection is on 127.0.0.1), so it may hear of loopback
        // addresses.
        book.connected
            .insert(receiver, connected(PeerSource::Inbound, now));
        for i in 0..30u64 {
            let seen = now - Duration::from_secs(i);
            book.learn(
                PeerId::random(),
                vec![addr(1000 + i as u16)],
                PeerSource::Pex,
                seen,
                now,
            );
        }
        let entries = book.pex_entries(&receiver, now);
        assert_eq!(entries.len(), PEX_LIMIT);
        assert!(entries.iter().all(|e| e.peer != receiver.to_bytes()));
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].seen_secs_ago <= w[1].seen_secs_ago)
        );
    }

    fn connected(source: PeerSource, last_used: Instant) -> Connected {
        Connected {
            last_used,
            remote: addr(1),
            dialed: false,
            source,
            rtt: None,
            last_seen: last_used,
            since: last_used,
            agent: None,
            listen_addrs: Vec::new(),
            path: ConnectionPath::Direct,
            relay: false,
        }
    }

    #[test]
    fn trimming_closes_the_longest_unused_and_spares_bootstrap_and_busy_peers() {
        let start = Instant::now();
        let now = start + Duration::from_secs(120);
        let mut book = PeerBook::new(Vec::new(), start);
        let oldest = PeerId::random();
        let older = PeerId::random();
        let busy = PeerId::random();
        let bootstrap = PeerId::random();
        let inbound = |s| connected(PeerSource::Inbound, start + Duration::from_secs(s));
        book.connected.insert(oldest, inbound(0));
        book.connected.insert(older, inbound(10));
        book.connected.insert(busy, inbound(110));
        book.connected
            .insert(bootstrap, connected(PeerSource::Bootstrap, start));
        let recent = Duration::from_secs(30);
        // Four connections, keep two: the two longest unused go.
        assert_eq!(book.to_trim(2, recent, now), vec![oldest, older]);
        // Keep one: still only those two, since the bootstrap peer and the one
        // used 10 s ago are never closed.
        assert_eq!(book.to_trim(1, recent, now), vec![oldest, older]);
        assert!(book.to_trim(4, recent, now).is_empty());
    }

    #[test]
    fn a_key_mismatch_stops_dialling_until_it_expires() {
        let now = Instant::now();
        let mut book = PeerBook::new(Vec::new(), now);
        let peer = PeerId::random();
        book.learn(peer, vec![addr(1)], PeerSource::Mdns, now, now);
        book.known.get_mut(&peer).unwrap().mismatch_until = Some(now + KEY_MISMATCH_EXPIRY);
        assert!(book.due_known(now, 10).is_empty());
        assert!(book.discovery(now).known[0].key_mismatch);
        let later = now + KEY_MISMATCH_EXPIRY;
        assert_eq!(book.due_known(later, 10), vec![peer], "the verdict expires");
        assert!(!book.discovery(later).known[0].key_mismatch);
    }

    #[test]
    fn a_bootstrap_endpoint_that_is_this_node_is_not_dialled_again() {
        let now = Instant::now();
        let mut book = PeerBook::new(vec![Endpoint::parse("127.0.0.1:3000").unwrap()], now);
        assert_eq!(book.due_bootstraps(now), vec![0]);
        book.bootstrap[0].itself = true;
        assert!(book.due_bootstraps(now + REDIAL_MAX * 10).is_empty());
    }

    #[test]
    fn loopback_and_link_local_addresses_stay_on_their_host_and_link() {
        let a = |s: &str| -> Multiaddr { s.parse().unwrap() };
        let loopback = a("/ip4/127.0.0.1/tcp/3000");
        let link = a("/ip4/169.254.1.2/tcp/3000");
        let lan = a("/ip4/192.168.1.5/tcp/3000");
        let v6_link = a("/ip6/fe80::1/tcp/3000");
        let localhost = a("/dns/localhost/tcp/3000");
        // A peer on this host may be told of every address.
        for addr in [&loopback, &link, &lan, &v6_link, &localhost] {
            assert!(reachable_via(addr, &loopback), "{addr}");
        }
        // A peer on the link: not of loopback ones.
        assert!(!reachable_via(&loopback, &link));
        assert!(!reachable_via(&localhost, &link));
        assert!(reachable_via(&v6_link, &link) && reachable_via(&lan, &link));
        // A peer elsewhere: only global ones.
        assert!(!reachable_via(&loopback, &lan) && !reachable_via(&link, &lan));
        assert!(!reachable_via(&v6_link, &lan));
        assert!(reachable_via(&lan, &lan));

        // Peer exchange follows the rule for each receiver.
        let now = Instant::now();
        let mut book = PeerBook::new(Vec::new(), now);
        let (remote, local, third) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut over = |peer, via: &Multiaddr| {
            let mut c = connected(PeerSource::Inbound, now);
            c.remote = via.clone();
            book.connected.insert(peer, c);
        };
        over(remote, &a("/ip4/203.0.113.7/tcp/40000"));
        over(local, &a("/ip4/127.0.0.1/tcp/40001"));
        book.learn(
            third,
            vec![loopback.clone(), lan.clone()],
            PeerSource::Pex,
            now,
            now,
        );
        let told = |to| -> Vec<Vec<u8>> {
            book.pex_entries(&to, now)
                .into_iter()
                .find(|e| e.peer == third.to_bytes())
                .map(|e| e.addrs)
                .unwrap_or_default()
        };
        assert_eq!(told(remote), vec![lan.to_vec()]);
        assert_eq!(told(local), vec![loopback.to_vec(), lan.to_vec()]);
    }
}
