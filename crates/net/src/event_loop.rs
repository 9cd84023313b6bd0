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
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, autonat, connection_limits, dcutr, identify, kad,
    mdns, ping, relay,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::codec::FrameCodec;
use crate::network::{Addresses, Command, InboundRequest, NetConfig, NetError, NetEvent};
use crate::peers::{
    Connected, ConnectionPath, KEY_MISMATCH_EXPIRY, PEX_LIMIT, PeerBook, PeerSource, PexEntry,
    REDIAL_FIRST, REDIAL_MAX, STALE_AFTER, reachable_via,
};
use crate::transport::{HandshakeFailure, handshake_failure};

/// How often due redials are looked for.
const REDIAL_TICK: Duration = Duration::from_millis(250);
/// How often the address book is aged.
const AGEING_TICK: Duration = Duration::from_secs(60);
/// A key mismatch from one address is logged at most this often.
const MISMATCH_LOG_INTERVAL: Duration = Duration::from_secs(60);
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

#[derive(Serialize, Deserialize)]
struct PexMessage {
    peers: Vec<PexEntry>,
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
}

fn encode_pex(peers: Vec<PexEntry>) -> Vec<u8> {
    postcard::to_stdvec(&PexMessage { peers }).unwrap_or_default()
}

/// Peers named in a peer-exchange message, with when they were last seen.
pub(crate) fn decode_pex(bytes: &[u8], now: Instant) -> Vec<(PeerId, Vec<Multiaddr>, Instant)> {
    let Ok(message) = postcard::from_bytes::<PexMessage>(bytes) else {
        return Vec::new();
    };
    message
        .peers
        .into_iter()
        .take(PEX_LIMIT)
        .filter(|e| Duration::from_secs(e.seen_secs_ago) < STALE_AFTER)
        .filter_map(|e| {
            let peer = PeerId::from_bytes(&e.peer).ok()?;
            let addrs: Vec<Multiaddr> = e
                .addrs
                .into_iter()
                .filter_map(|a| Multiaddr::try_from(a).ok())
                .collect();
            let seen = now.checked_sub(Duration::from_secs(e.seen_secs_ago))?;
            Some((peer, addrs, seen))
        })
        .collect()
}

/// The protocol a relay (circuit relay v2) serves, as identify lists it.
const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Relays a node behind NAT keeps a reservation on.
const RELAY_RESERVATIONS: usize = 2;

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

/// `addr` without a trailing `/p2p/<peer id>` (the form kept in the address book).
fn strip_peer(addr: &Multiaddr) -> Multiaddr {
    let mut bare = addr.clone();
    if matches!(bare.iter().last(), Some(Protocol::P2p(_))) {
        bare.pop();
    }
    bare
}

/// True if a dial failed because the local address was in use (a dial from the
/// listen port whose pair of ports is still taken). The transport's layers
/// (`Either` among them) hide the `io::Error` from `source()`, as for handshake
/// verdicts, but every layer passes its debug rendering through.
fn port_in_use(error: &libp2p::swarm::DialError) -> bool {
    match error {
        libp2p::swarm::DialError::Transport(attempts) => attempts
            .iter()
            .any(|(_, e)| format!("{e:?}").contains("AddrInUse")),
        _ => false,
    }
}

/// An error with every cause it wraps, for logs ("denied: connection limit ...").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Our listen port on the observed IP: what a peer behind the same NAT view would dial.
fn public_candidate(observed: &Multiaddr, listen: &[Multiaddr]) -> Option<Multiaddr> {
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
    ) -> Self {
        Self {
            swarm,
            commands,
            command_tx,
            inbound,
            events,
            pending: HashMap::new(),
            responding: FuturesUnordered::new(),
            providers: HashMap::new(),
            book: PeerBook::new(config.bootstrap.clone(), Instant::now()),
            public_ip: config.public_ip,
            max_peers: config.max_peers.max(1),
            discover_pex: config.discover_pex,
            pex_interval: config.pex_interval,
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

    /// Connections the node may still open to peers it learns about (dials under
    /// way count as connections).
    fn dial_budget(&self) -> usize {
        let dialling = self.book.known.values().filter(|k| k.pending).count();
        self.max_peers
            .saturating_sub(self.book.connected.len() + dialling)
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

    /// Dials every bootstrap endpoint and known peer whose time has come.
    fn redial(&mut self) {
        let now = Instant::now();
        for index in self.book.due_bootstraps(now) {
            let entry = &mut self.book.bootstrap[index];
            entry.resolving = true;
            let endpoint = entry.endpoint.clone();
            let commands = self.command_tx.clone();
            tokio::spawn(async move {
                let result = endpoint.resolve_for_dial().await;
                let _ = commands.send(Command::Resolved { index, result }).await;
            });
        }
        for peer in self.book.due_known(now, self.dial_budget()) {
            self.dial_known(peer, now);
        }
    }

    fn dial_known(&mut self, peer: PeerId, now: Instant) {
        let Some(known) = self.book.known.get_mut(&peer) else {
            return;
        };
        known.pending = true;
        known.attempts += 1;
        let mut addrs = known.addrs.clone();
        // A peer behind NAT is reachable only through the relay it reserved on:
        // try the connected relays too (a relay refuses peers it holds no
        // reservation for, at the cost of one request).
        for (relay, c) in &self.book.connected {
            if c.relay && *relay != peer {
                let circuit = crate::peers::dialable_address(c)
                    .with_p2p(*relay)
                    .unwrap_or_else(|a| a)
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(peer));
                addrs.push(circuit);
            }
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing);
        let opts = if known.new_port {
            opts.allocate_new_port().build()
        } else {
            opts.build()
        };
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!("cannot dial {peer}: {e}");
            known.pending = false;
            known.next_attempt = now + REDIAL_FIRST * 2u32.pow(known.attempts.min(5));
        }
    }

    fn dial_bootstrap(&mut self, index: usize, resolved: std::io::Result<Vec<Multiaddr>>) {
        let now = Instant::now();
        let Some(entry) = self.book.bootstrap.get_mut(index) else {
            return;
        };
        entry.resolving = false;
        let addrs = match resolved {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => return self.bootstrap_failed(index, "the name resolves to no address".into()),
            Err(e) => return self.bootstrap_failed(index, e.to_string()),
        };
        // With several addresses (127.0.0.1 and ::1 for localhost), rotate through
        // them from one attempt to the next.
        let addr = addrs[entry.failures as usize % addrs.len()].clone();
        let opts = DialOpts::unknown_peer_id().address(addr);
        let opts = if entry.new_port {
            opts.allocate_new_port().build()
        } else {
            opts.build()
        };
        entry.pending = Some(opts.connection_id());
        entry.next_attempt = now;
        if let Err(e) = self.swarm.dial(opts) {
            self.bootstrap_failed(index, e.to_string());
        }
    }

    fn bootstrap_failed(&mut self, index: usize, reason: String) {
        let pause = self.book.bootstrap_failed(index, Instant::now());
        let entry = &self.book.bootstrap[index];
        if entry.failures == 1 {
            tracing::warn!(
                "cannot reach bootstrap peer {} ({reason}); retrying every {}s at most, until it answers",
                entry.endpoint,
                REDIAL_MAX.as_secs()
            );
        } else {
            tracing::debug!(
                "bootstrap {} still unreachable ({reason}); next try in {pause:?}",
                entry.endpoint
            );
        }
    }

    /// A dial failed: say why, in the words the verdict deserves, and decide what
    /// to dial next time.
    fn on_dial_failed(
        &mut self,
        connection_id: libp2p::swarm::ConnectionId,
        peer_id: Option<PeerId>,
        error: &libp2p::swarm::DialError,
        now: Instant,
    ) {
        self.manual_dials.remove(&connection_id);
        let verdict = handshake_failure(error);
        // libp2p dials from the listen port (for hole punching) and, unlike for
        // "address not available", does not fall back to a new port when the
        // kernel says "address already in use" (the same pair of ports still in
        // TIME_WAIT from a closed connection, for up to a minute): the next dial
        // takes a new port.
        let in_use = port_in_use(error);
        if let Some(index) = self
            .book
            .bootstrap
            .iter()
            .position(|b| b.pending == Some(connection_id))
        {
            let endpoint = self.book.bootstrap[index].endpoint.clone();
            match verdict {
                Some(HandshakeFailure::SelfDial) => {
                    tracing::info!(
                        "bootstrap address {endpoint} leads back to this node itself; not dialling it again"
                    );
                    self.book.bootstrap[index].itself = true;
                    self.book.bootstrap[index].pending = None;
                    return;
                }
                Some(HandshakeFailure::KeyMismatch) => {
                    self.log_key_mismatch(&endpoint.to_multiaddr(), false)
                }
                _ => {}
            }
            self.book.bootstrap[index].new_port |= in_use;
            self.bootstrap_failed(index, error_chain(error));
            return;
        }
        let Some(peer) = peer_id else {
            tracing::debug!("dial failed: {}", error_chain(error));
            return;
        };
        // Addresses that led back to this node are another host's loopback (or a
        // stale address now ours): never dial them for that peer again.
        if let libp2p::swarm::DialError::Transport(attempts) = error {
            let itself: Vec<Multiaddr> = attempts
                .iter()
                .filter(|(_, e)| handshake_failure(e) == Some(HandshakeFailure::SelfDial))
                .map(|(addr, _)| addr.clone())
                .collect();
            for addr in &itself {
                let bare = strip_peer(addr);
                if let Some(known) = self.book.known.get_mut(&peer) {
                    known.addrs.retain(|a| *a != bare);
                }
                self.swarm.behaviour_mut().kad.remove_address(&peer, &bare);
                tracing::debug!("{bare} (given for {peer}) leads back to this node; forgotten");
            }
        }
        let mut address = Multiaddr::empty();
        if let Some(known) = self.book.known.get_mut(&peer) {
            known.pending = false;
            known.next_attempt = now + REDIAL_FIRST * 2u32.pow(known.attempts.min(5));
            known.new_port |= in_use;
            if verdict == Some(HandshakeFailure::KeyMismatch) {
                known.mismatch_until = Some(now + KEY_MISMATCH_EXPIRY);
            }
            address = known
                .addrs
                .first()
                .cloned()
                .unwrap_or_else(Multiaddr::empty);
        }
        match verdict {
            Some(HandshakeFailure::KeyMismatch) => self.log_key_mismatch(&address, false),
            Some(HandshakeFailure::BadIdentity) => {
                tracing::warn!("dial to {peer} refused: {}", error_chain(error))
            }
            _ => tracing::debug!("dial to {peer} failed: {}", error_chain(error)),
        }
    }

    fn log_key_mismatch(&mut self, address: &Multiaddr, inbound: bool) {
        let key = address
            .iter()
            .next()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let now = Instant::now();
        let recently = self
            .mismatch_logged
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < MISMATCH_LOG_INTERVAL);
        if !recently {
            self.mismatch_logged.insert(key, now);
            let direction = if inbound { "from" } else { "to" };
            tracing::warn!(
                "network key mismatch: refused the connection {direction} {address}; that node holds another vault's key (check --key / --join on both sides)"
            );
        }
        self.emit(NetEvent::KeyMismatch {
            address: address.clone(),
        });
    }

    /// Sends our peer list to `peer` (its answer carries its list).
    fn exchange_with(&mut self, peer: PeerId) {
        let entries = self.book.pex_entries(&peer, Instant::now());
        self.swarm
            .behaviour_mut()
            .pex
            .send_request(&peer, encode_pex(entries).into());
    }

    fn exchange_with_all(&mut self) {
        let peers: Vec<PeerId> = self.book.connected.keys().copied().collect();
        tracing::debug!("peer exchange round with {} peers", peers.len());
        for peer in peers {
            self.exchange_with(peer);
        }
    }

    /// Learns the peers a peer told us about and dials new ones within the budget.
    fn learn_from_pex(&mut self, from: PeerId, bytes: &[u8]) {
        let now = Instant::now();
        let local = *self.swarm.local_peer_id();
        let Some(via) = self.book.via(&from) else {
            return;
        };
        let mut new = 0;
        for (peer, mut addrs, seen) in decode_pex(bytes, now) {
            if peer == local {
                continue;
            }
            addrs.retain(|a| reachable_via(a, &via));
            if !self.book.known.contains_key(&peer) && !self.book.connected.contains_key(&peer) {
                new += 1;
            }
            for addr in &addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            self.book.learn(peer, addrs, PeerSource::Pex, seen, now);
        }
        self.pex_received += 1;
        self.pex_learnt += new;
        if new > 0 {
            tracing::debug!("learnt of {new} peers from {from}");
        }
        for peer in self.book.due_known(now, self.dial_budget()) {
            self.dial_known(peer, now);
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
            b.backoff = REDIAL_FIRST;
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
                rtt: None,
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

    /// Recomputes the best path to `peer` from its open connections.
    fn update_path(&mut self, peer: PeerId) {
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
    fn reserve_relays(&mut self) {
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

    fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } => {
                tracing::debug!("relay {relay_peer_id} accepted a reservation");
            }
            other => tracing::debug!("relay client: {other:?}"),
        }
    }

    fn on_dcutr(&mut self, event: dcutr::Event) {
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

    fn on_autonat(&mut self, event: autonat::Event) {
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

    fn on_pex(&mut self, event: request_response::Event<Bytes, Bytes>) {
        if let request_response::Event::Message { peer, message, .. } = event {
            self.touch(&peer);
            match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let answer = encode_pex(self.book.pex_entries(&peer, Instant::now()));
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .pex
                        .send_response(channel, Bytes::from(answer));
                    self.learn_from_pex(peer, &request);
                }
                request_response::Message::Response { response, .. } => {
                    self.learn_from_pex(peer, &response)
                }
            }
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

    fn on_mdns(&mut self, event: mdns::Event) {
        let now = Instant::now();
        let local = *self.swarm.local_peer_id();
        match event {
            mdns::Event::Discovered(found) => {
                for (peer, addr) in found {
                    if peer == local {
                        continue;
                    }
                    let addrs = self.book.mdns.entry(peer).or_default();
                    if !addrs.contains(&addr) {
                        tracing::debug!("mDNS found {peer} at {addr}");
                        addrs.push(addr.clone());
                    }
                    self.book
                        .learn(peer, vec![addr], PeerSource::Mdns, now, now);
                }
                for peer in self.book.due_known(now, self.dial_budget()) {
                    self.dial_known(peer, now);
                }
            }
            mdns::Event::Expired(gone) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.book.mdns.get_mut(&peer) {
                        addrs.retain(|a| *a != addr);
                        if addrs.is_empty() {
                            self.book.mdns.remove(&peer);
                        }
                    }
                }
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                let result = match result {
                    kad::QueryResult::GetProviders(result) => result,
                    kad::QueryResult::StartProviding(result) => {
                        match result {
                            Ok(_) => tracing::debug!(
                                "DHT: provider record stored on {} of {} peers asked",
                                stats.num_successes(),
                                stats.num_requests()
                            ),
                            Err(e) => tracing::debug!("DHT: provider record not stored: {e}"),
                        }
                        return;
                    }
                    _ => return,
                };
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                    let now = Instant::now();
                    for provider in providers {
                        if provider == *self.swarm.local_peer_id() {
                            continue;
                        }
                        // Dial now, while the query still knows the provider's addresses.
                        if !self.book.connected.contains_key(&provider) {
                            let opts = DialOpts::peer_id(provider)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = self.swarm.dial(opts);
                            self.book
                                .learn(provider, Vec::new(), PeerSource::Dht, now, now);
                        }
                        if let Some((found, _)) = self.providers.get_mut(&id)
                            && !found.contains(&provider)
                        {
                            found.push(provider);
                        }
                    }
                }
                if step.last
                    && let Some((found, reply)) = self.providers.remove(&id)
                {
                    tracing::info!(
                        "DHT lookup: {} found after {} requests ({} answered) in {} ms",
                        match found.len() {
                            1 => "1 provider".to_string(),
                            n => format!("{n} providers"),
                        },
                        stats.num_requests(),
                        stats.num_successes(),
                        stats.duration().unwrap_or_default().as_millis()
                    );
                    let _ = reply.send(found);
                }
            }
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                // The routing table is what this node tells others: keep another
                // host's loopback and link-local addresses out of it.
                let mut addresses = addresses.into_vec();
                if let Some(via) = self.book.via(&peer) {
                    for addr in addresses.iter().filter(|a| !reachable_via(a, &via)) {
                        self.swarm.behaviour_mut().kad.remove_address(&peer, addr);
                    }
                    addresses.retain(|a| reachable_via(a, &via));
                }
                // Remember DHT peers in the address book, without dialling them all.
                let now = Instant::now();
                if !self.book.connected.contains_key(&peer) && !self.book.known.contains_key(&peer)
                {
                    self.book.learn(peer, addresses, PeerSource::Dht, now, now);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
