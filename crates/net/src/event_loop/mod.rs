//! The task that owns the swarm (see [`crate::network`] for what it does and why).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, autonat, connection_limits, dcutr, identify, kad,
    mdns, ping, relay,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::codec::FrameCodec;
use crate::network::{Addresses, Command, InboundRequest, NetConfig, NetError, NetEvent};
use crate::peers::{Connected, ConnectionPath, PeerBook, PeerSource, REDIAL_FIRST, reachable_via};
use crate::transport::{HandshakeFailure, HandshakeRoundTrips, handshake_failure};

mod dialing;
mod discovery;
mod nat;

use dialing::error_chain;
pub(crate) use discovery::decode_pex;
pub use nat::Reachability;
use nat::{RELAY_HOP_PROTOCOL, public_candidate};

/// How often due redials are looked for.
const REDIAL_TICK: Duration = Duration::from_millis(250);
/// How often the address book is aged.
const AGEING_TICK: Duration = Duration::from_secs(60);
/// How often the number of connections is checked against the target.
const TRIM_TICK: Duration = Duration::from_secs(5);
/// A connection unused for this long may be closed when there are too many.
const TRIM_UNUSED_FOR: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Peers banned for misbehaving: their connections close, new ones are denied.
    pub banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Unfinished inbound handshakes per source address.
    pub admission: crate::admission::PendingPerSource,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub pex: request_response::Behaviour<FrameCodec>,
    pub app: request_response::Behaviour<FrameCodec>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Reservations on relays and circuits through them, when behind NAT.
    pub relay_client: relay::client::Behaviour,
    /// A relay for peers behind NAT (`--relay`).
    pub relay_server: Toggle<relay::Behaviour>,
    /// Hole punching: direct connections made over relayed ones.
    pub dcutr: dcutr::Behaviour,
    /// Whether this node is reachable from outside (absent with `-advertise`).
    pub autonat: Toggle<autonat::Behaviour>,
    /// Long-lived streams for chunk transfers (see [`crate::network::CHUNK_PROTOCOL`]).
    pub stream: libp2p_stream::Behaviour,
}

type Responding = BoxFuture<
    'static,
    (
        ResponseChannel<Bytes>,
        Result<Bytes, oneshot::error::RecvError>,
    ),
>;

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    command_tx: mpsc::Sender<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    events: mpsc::Sender<NetEvent>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Bytes, NetError>>>,
    responding: FuturesUnordered<Responding>,
    providers: HashMap<kad::QueryId, (Vec<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    book: PeerBook,
    public_ip: bool,
    max_peers: usize,
    discover_pex: bool,
    pex_interval: Duration,
    listen: Vec<Multiaddr>,
    mismatch_logged: HashMap<String, Instant>,
    /// Dials asked for by address (`send`/`fetch`), until they connect or fail.
    manual_dials: HashSet<libp2p::swarm::ConnectionId>,
    /// Peer lists received, and peers first learnt of from them.
    pex_received: u64,
    pex_learnt: u64,
    /// Banned peers and when their bans end.
    bans: HashMap<PeerId, Instant>,
    /// Every open connection: its peer and how it runs.
    paths: HashMap<libp2p::swarm::ConnectionId, (PeerId, ConnectionPath)>,
    /// What AutoNAT concluded about this node.
    reachability: Reachability,
    /// Listeners on relays (reservations), by the relay they use.
    relay_listeners: HashMap<libp2p::core::transport::ListenerId, PeerId>,
    shutdown: CancellationToken,
    /// What connection handshakes measured: a peer's round trip until its
    /// first ping answers.
    round_trips: HandshakeRoundTrips,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        swarm: Swarm<Behaviour>,
        config: &NetConfig,
        listen: Vec<Multiaddr>,
        commands: mpsc::Receiver<Command>,
        command_tx: mpsc::Sender<Command>,
        inbound: mpsc::Sender<InboundRequest>,
        events: mpsc::Sender<NetEvent>,
        shutdown: CancellationToken,
        round_trips: HandshakeRoundTrips,
    ) -> Self {
        Self {
            round_trips,
            swarm,
            commands,
            command_tx,
            inbound,
            events,
            pending: HashMap::new(),
            responding: FuturesUnordered::new(),
            providers: HashMap::new(),
            book: PeerBook::new(config.settings.bootstrap.clone(), Instant::now()),
            public_ip: config.settings.public_ip,
            max_peers: config.settings.max_peers.max(1),
            discover_pex: config.settings.discover_pex,
            pex_interval: config.settings.pex_interval,
            listen,
            mismatch_logged: HashMap::new(),
            manual_dials: HashSet::new(),
            pex_received: 0,
            pex_learnt: 0,
            bans: HashMap::new(),
            paths: HashMap::new(),
            reachability: Reachability::Unknown,
            relay_listeners: HashMap::new(),
            shutdown,
        }
    }

    /// Runs until shutdown, first handling the events that arrived while the
    /// listeners were starting.
    pub async fn run(mut self, early: Vec<SwarmEvent<BehaviourEvent>>) {
        for event in early {
            self.on_swarm_event(event);
        }
        let mut redial = tokio::time::interval(REDIAL_TICK);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ageing = tokio::time::interval(AGEING_TICK);
        let mut trim = tokio::time::interval(TRIM_TICK);
        let mut pex = tokio::time::interval_at(
            tokio::time::Instant::now() + self.pex_interval,
            self.pex_interval,
        );
        pex.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                Some((channel, answer)) = self.responding.next(), if !self.responding.is_empty() => {
                    if let Ok(bytes) = answer {
                        let _ = self.swarm.behaviour_mut().app.send_response(channel, bytes);
                    }
                }
                _ = redial.tick() => self.redial(),
                _ = ageing.tick() => {
                    let gone = self.book.age_out(Instant::now());
                    if gone > 0 {
                        tracing::debug!("forgot {gone} peers nobody has seen for 30 minutes");
                    }
                }
                                _ = pex.tick(), if self.discover_pex => self.exchange_with_all(),
                _ = trim.tick() => {
                    self.trim();
                    self.lift_bans();
                }
            }
        }
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(NetError::Stopped));
        }
    }

    fn emit(&self, event: NetEvent) {
        if self.events.try_send(event).is_err() {
            tracing::debug!("network event dropped: the node is not keeping up");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { peer, bytes, reply } => {
                self.touch_used(&peer);
                let id = self.swarm.behaviour_mut().app.send_request(&peer, bytes);
                self.pending.insert(id, reply);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.book.snapshot(Instant::now()));
            }
            Command::Discovery(reply) => {
                let mut discovery = self.book.discovery(Instant::now());
                discovery.mdns_enabled = self.swarm.behaviour().mdns.is_enabled();
                discovery.pex_enabled = self.discover_pex;
                discovery.pex_received = self.pex_received;
                let now = Instant::now();
                discovery.banned = self
                    .bans
                    .iter()
                    .map(|(peer, until)| (*peer, until.saturating_duration_since(now)))
                    .collect();
                discovery.pex_learnt = self.pex_learnt;
                discovery.dht_routing_table = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .map(|b| b.num_entries())
                    .sum();
                let _ = reply.send(discovery);
            }
            Command::Addresses(reply) => {
                let _ = reply.send(Addresses {
                    listen: self
                        .swarm
                        .listeners()
                        .filter(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
                        .cloned()
                        .collect(),
                    external: self.swarm.external_addresses().cloned().collect(),
                    relayed: self
                        .swarm
                        .listeners()
                        .filter(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
                        .cloned()
                        .collect(),
                    reachability: self.reachability.to_string(),
                    relay_service: self.swarm.behaviour().relay_server.is_enabled(),
                });
            }
            Command::Dial { addrs, reply } => {
                let result = match addrs.first() {
                    None => Err(NetError::Dial {
                        addr: String::new(),
                        reason: "no address given".into(),
                    }),
                    Some(addr) => {
                        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                        let connection = opts.connection_id();
                        self.swarm
                            .dial(opts)
                            .map(|()| {
                                self.manual_dials.insert(connection);
                            })
                            .map_err(|e| NetError::Dial {
                                addr: addr.to_string(),
                                reason: e.to_string(),
                            })
                    }
                };
                let _ = reply.send(result);
            }
            Command::Resolved { index, result } => self.dial_bootstrap(index, result),
            Command::Used(peer) => self.touch_used(&peer),
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
                self.book.known.remove(&peer);
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
            Command::Ban { peer, until } => {
                tracing::warn!(
                    "banned peer {peer} for {} s: it kept sending invalid data",
                    until.saturating_duration_since(Instant::now()).as_secs()
                );
                self.swarm.behaviour_mut().banned.block_peer(peer);
                self.bans.insert(peer, until);
                self.book.known.remove(&peer);
            }
            Command::Provide(key) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(kad::RecordKey::new(&key))
                {
                    tracing::debug!("cannot announce a provider record: {e}");
                }
            }
            Command::StopProviding(key) => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&kad::RecordKey::new(&key));
            }
            Command::FindProviders { key, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(kad::RecordKey::new(&key));
                self.providers.insert(id, (Vec::new(), reply));
            }
        }
    }

    fn on_connected(
        &mut self,
        peer_id: PeerId,
        connection_id: libp2p::swarm::ConnectionId,
        endpoint: ConnectedPoint,
    ) {
        let now = Instant::now();
        let bootstrap = self
            .book
            .bootstrap
            .iter_mut()
            .find(|b| b.pending == Some(connection_id) || b.peer == Some(peer_id));
        let source = match (&bootstrap, &endpoint) {
            (Some(_), _) => PeerSource::Bootstrap,
            (None, ConnectedPoint::Listener { .. }) => PeerSource::Inbound,
            (None, ConnectedPoint::Dialer { .. }) if self.manual_dials.remove(&connection_id) => {
                PeerSource::Manual
            }
            // Not asked for by this node's own logic: Kademlia's lookups dial the
            // peers they learn of.
            (None, ConnectedPoint::Dialer { .. }) => self
                .book
                .known
                .get(&peer_id)
                .map(|k| k.source)
                .unwrap_or(PeerSource::Dht),
        };
        if let Some(b) = bootstrap {
            if b.failures > 0 {
                tracing::info!(
                    "reached bootstrap peer {} after {} failed attempts",
                    b.endpoint,
                    b.failures
                );
            }
            b.peer = Some(peer_id);
            b.pending = None;
            b.failures = 0;
            b.new_port = false;
        }
        if let Some(known) = self.book.known.get_mut(&peer_id) {
            known.pending = false;
            known.attempts = 0;
            known.last_seen = now;
            // Whatever failed before, this peer holds our key.
            known.mismatch_until = None;
            known.new_port = false;
        }
        let (remote, dialed) = match &endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), true),
            ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr.clone(), false),
        };
        tracing::info!("connected to peer {peer_id} at {remote} ({source})");
        self.book.connected.insert(
            peer_id,
            Connected {
                remote,
                dialed,
                source,
                rtt: self.round_trips.take(&peer_id),
                last_seen: now,
                last_used: now,
                since: now,
                agent: None,
                listen_addrs: Vec::new(),
                path: ConnectionPath::Direct,
                relay: false,
            },
        );
        self.exchange_with(peer_id);
        self.emit(NetEvent::Connected(peer_id));
    }

    /// The last connection to `peer` closed: remember how to reach it again.
    fn on_disconnected(&mut self, peer_id: PeerId, cause: Option<String>, now: Instant) {
        if let Some(gone) = self.book.connected.remove(&peer_id) {
            tracing::info!(
                "disconnected from peer {peer_id}{}",
                cause.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            let addrs = if gone.listen_addrs.is_empty() && gone.dialed {
                vec![gone.remote.clone()]
            } else {
                gone.listen_addrs
            };
            self.book.learn(peer_id, addrs, gone.source, now, now);
            if let Some(known) = self.book.known.get_mut(&peer_id) {
                known.next_attempt = now + REDIAL_FIRST;
                known.pending = false;
                known.met = true;
            }
        }
        for b in &mut self.book.bootstrap {
            if b.peer == Some(peer_id) {
                b.next_attempt = now + REDIAL_FIRST;
            }
        }
        self.emit(NetEvent::Disconnected(peer_id));
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                // The dialling side sees the circuit in the address it dialled, the
                // listening side in its own (relayed) listen address.
                let relayed = endpoint.is_relayed();
                let path = if relayed {
                    ConnectionPath::Relayed
                } else {
                    ConnectionPath::Direct
                };
                self.paths.insert(connection_id, (peer_id, path));
                if num_established.get() == 1 {
                    self.on_connected(peer_id, connection_id, endpoint);
                }
                self.update_path(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.paths.remove(&connection_id);
                if num_established == 0 {
                    self.on_disconnected(peer_id, cause.map(|c| c.to_string()), now);
                } else {
                    self.update_path(peer_id);
                }
            }
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } if self.relay_listeners.contains_key(&listener_id) => {
                tracing::info!("reachable through a relay at {address}");
            }
            SwarmEvent::ListenerClosed { listener_id, .. }
                if self.relay_listeners.contains_key(&listener_id) =>
            {
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    tracing::info!("the reservation on relay {relay} ended");
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.on_dial_failed(connection_id, peer_id, &error, now),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => match handshake_failure(&error) {
                Some(HandshakeFailure::KeyMismatch) => {
                    self.log_key_mismatch(&send_back_addr, true);
                }
                Some(HandshakeFailure::Refused) => {
                    self.log_refused(&send_back_addr, &error_chain(&error), true)
                }
                Some(HandshakeFailure::Welcomed) => {
                    tracing::info!("a new device at {send_back_addr} redeemed an invitation")
                }
                Some(HandshakeFailure::BadIdentity) => tracing::warn!(
                    "refused a connection from {send_back_addr}: {}",
                    error_chain(&error)
                ),
                _ => tracing::debug!(
                    "incoming connection from {send_back_addr} failed: {}",
                    error_chain(&error)
                ),
            },
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!("listening on {address}");
                if !self.listen.contains(&address) {
                    self.listen.push(address);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn touch(&mut self, peer: &PeerId) {
        if let Some(c) = self.book.connected.get_mut(peer) {
            c.last_seen = Instant::now();
        }
    }

    /// Like [`EventLoop::touch`], and marks the connection as in use (not to be trimmed).
    fn touch_used(&mut self, peer: &PeerId) {
        if let Some(c) = self.book.connected.get_mut(peer) {
            let now = Instant::now();
            c.last_seen = now;
            c.last_used = now;
        }
    }

    /// Lets banned peers back in once their bans are over.
    fn lift_bans(&mut self) {
        let now = Instant::now();
        let over: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in over {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().banned.unblock_peer(peer);
            tracing::info!("the ban of peer {peer} is over");
        }
    }

    /// Keeps the number of connections near the target: beyond twice `max_peers`,
    /// connections nobody has used for a while (DHT lookups open many) are closed.
    fn trim(&mut self) {
        let high = self.max_peers * 2;
        if self.book.connected.len() <= high {
            return;
        }
        let now = Instant::now();
        for peer in self.book.to_trim(self.max_peers, TRIM_UNUSED_FOR, now) {
            tracing::debug!("closing the unused connection to {peer} (over the connection target)");
            if let Some(known) = self.book.known.get_mut(&peer) {
                // Not worth redialling at once: it was closed on purpose.
                known.next_attempt = now + TRIM_UNUSED_FOR;
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Admission(never) => match never {},
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => {
                if let Ok(rtt) = result
                    && let Some(c) = self.book.connected.get_mut(&peer)
                {
                    c.rtt = Some(rtt);
                    c.last_seen = Instant::now();
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identified(peer_id, info)
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Pex(event) => self.on_pex(event),
            BehaviourEvent::App(event) => self.on_app(event),
            BehaviourEvent::Mdns(event) => self.on_mdns(event),
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::RelayClient(event) => self.on_relay_client(event),
            BehaviourEvent::RelayServer(event) => {
                tracing::debug!("relay service: {event:?}");
            }
            BehaviourEvent::Dcutr(event) => self.on_dcutr(event),
            BehaviourEvent::Autonat(event) => self.on_autonat(event),
            BehaviourEvent::Stream(()) => {}
        }
    }

    fn on_identified(&mut self, peer_id: PeerId, mut info: identify::Info) {
        // Keep only what we can dial: another host's loopback address would lead
        // here, not there.
        if let Some(via) = self.book.via(&peer_id) {
            info.listen_addrs.retain(|a| reachable_via(a, &via));
        }
        for addr in &info.listen_addrs {
            self.swarm.add_peer_address(peer_id, addr.clone());
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer_id, addr.clone());
        }
        if let Some(c) = self.book.connected.get_mut(&peer_id) {
            c.agent = Some(info.agent_version.clone());
            c.listen_addrs = info.listen_addrs.clone();
            c.relay = info
                .protocols
                .iter()
                .any(|p| p.as_ref() == RELAY_HOP_PROTOCOL);
        }
        self.reserve_relays();
        if self.public_ip
            && let Some(candidate) = public_candidate(&info.observed_addr, &self.listen)
            && !self.swarm.external_addresses().any(|a| *a == candidate)
        {
            tracing::info!("public address detected: {candidate} (as seen by peer {peer_id})");
            self.swarm.add_external_address(candidate);
        }
    }

    fn on_app(&mut self, event: request_response::Event<Bytes, Bytes>) {
        match event {
            request_response::Event::Message { peer, message, .. } => {
                self.touch_used(&peer);
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        let (reply, answer) = oneshot::channel();
                        let inbound = InboundRequest {
                            peer,
                            bytes: request,
                            reply,
                        };
                        if self.inbound.try_send(inbound).is_err() {
                            tracing::debug!("dropped a request from {peer}: the node is saturated");
                            return;
                        }
                        self.responding
                            .push(Box::pin(async move { (channel, answer.await) }));
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(reply) = self.pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error: request_response::InboundFailure::Io(error),
                ..
            } if error.kind() == std::io::ErrorKind::InvalidData => {
                // Only our own codec reports InvalidData: an oversized or
                // malformed frame, which no honest node sends.
                self.emit(NetEvent::Misbehaved {
                    peer,
                    what: format!("a malformed request ({error})"),
                });
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let error = match error {
                        request_response::OutboundFailure::Timeout => NetError::Timeout { peer },
                        request_response::OutboundFailure::DialFailure => NetError::Unreachable {
                            peer,
                            reason: "not connected and could not dial it".into(),
                        },
                        other => NetError::Failed {
                            peer,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dialing::port_in_use;
    use super::discovery::encode_pex;
    use super::*;
    use crate::peers::{PexEntry, STALE_AFTER};

    #[test]
    fn pex_messages_round_trip_and_garbage_is_ignored() {
        let now = Instant::now();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        let bytes = encode_pex(vec![
            PexEntry {
                peer: peer.to_bytes(),
                addrs: vec![addr.to_vec()],
                source: PeerSource::Mdns,
                seen_secs_ago: 5,
            },
            PexEntry {
                peer: PeerId::random().to_bytes(),
                addrs: vec![addr.to_vec()],
                source: PeerSource::Pex,
                seen_secs_ago: STALE_AFTER.as_secs() + 1,
            },
        ]);
        let decoded = decode_pex(&bytes, now);
        assert_eq!(decoded.len(), 1, "stale entries are not learnt");
        assert_eq!((decoded[0].0, decoded[0].1.clone()), (peer, vec![addr]));
        assert!(decode_pex(b"\xff\xff garbage", now).is_empty());
    }

    #[test]
    fn a_dial_from_a_port_in_use_is_recognised_through_its_wrappers() {
        use libp2p::TransportError;
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        let dial = |e: std::io::Error| {
            libp2p::swarm::DialError::Transport(vec![(addr.clone(), TransportError::Other(e))])
        };
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert!(port_in_use(&dial(std::io::Error::other(
            std::io::Error::other(in_use)
        ))));
        assert!(!port_in_use(&dial(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
    }

    #[test]
    fn the_public_candidate_uses_our_listen_port() {
        let observed: Multiaddr = "/ip4/203.0.113.5/tcp/51234".parse().unwrap();
        let listen: Vec<Multiaddr> = vec!["/ip4/0.0.0.0/tcp/3000".parse().unwrap()];
        assert_eq!(
            public_candidate(&observed, &listen).unwrap().to_string(),
            "/ip4/203.0.113.5/tcp/3000"
        );
    }
}
