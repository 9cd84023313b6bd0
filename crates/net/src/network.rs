//! The network actor: one task owns the libp2p swarm; everything else talks to it
//! through a cloneable [`NetHandle`] and hears from it through channels.
//!
//! Behaviours on every connection:
//! * identify: peers' listen addresses and agent, and our address as they see it;
//! * ping: round-trip time and liveness for `peers`;
//! * members (`/peervault/members/1`): on every new connection each side asks the
//!   other for the peers it is connected to and dials those it does not know, so
//!   nodes that joined through one bootstrap node end up connected to each other;
//! * app (`/peervault/app/1`): the node's own requests (catalogue sync, chunks),
//!   opaque bytes here;
//! * connection limits.
//!
//! Requests from peers go to the node through a bounded channel; if the node is
//! saturated the request is dropped (the peer sees a failure and tries elsewhere)
//! rather than letting the event loop block or memory grow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, connection_limits, identify, ping,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::addr::Endpoint;
use crate::codec::FrameCodec;
use crate::identity::NodeIdentity;
use crate::peers::{PeerBook, PeerInfo, PeerSource, REDIAL_FIRST};
use crate::transport::{self, is_key_mismatch};

const APP_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/app/1");
const MEMBERS_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/members/1");
const IDENTIFY_PROTOCOL: &str = "/peervault/1.0.0";

/// Connections without any open stream close after this long; periodic catalogue
/// sync and pings keep connections to live peers open.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often due redials are looked for.
const REDIAL_TICK: Duration = Duration::from_millis(250);
/// Requests from peers waiting for the node.
const INBOUND_QUEUE: usize = 256;
/// Peers named in one members answer.
const MEMBERS_LIMIT: usize = 64;
/// A key mismatch from one address is logged at most this often.
const MISMATCH_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How to start the network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub identity: NodeIdentity,
    /// Pre-shared key of the private network.
    pub psk: [u8; 32],
    pub listen: Vec<Endpoint>,
    /// Address announced to peers in addition to the listen addresses.
    pub advertise: Option<Endpoint>,
    pub bootstrap: Vec<Endpoint>,
    /// Announce the address peers observe for us.
    pub public_ip: bool,
    /// Upper bound for any request; callers may use shorter ones.
    pub request_timeout: Duration,
    /// Most connections in total (a sensible cap even for large networks).
    pub max_connections: u32,
}

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot set up the network: {0}")]
    Setup(String),
    #[error("peer {peer} did not answer within the time limit")]
    Timeout { peer: PeerId },
    #[error("peer {peer} is not reachable: {reason}")]
    Unreachable { peer: PeerId, reason: String },
    #[error("the exchange with peer {peer} failed: {reason}")]
    Failed { peer: PeerId, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("the network has stopped")]
    Stopped,
}

/// Something the node should know about.
#[derive(Debug, Clone)]
pub enum NetEvent {
    Connected(PeerId),
    Disconnected(PeerId),
    /// A connection failed because the other side has another network key.
    KeyMismatch {
        address: Multiaddr,
    },
}

/// A request from a peer; answer through `reply` (dropping it fails the request).
#[derive(Debug)]
pub struct InboundRequest {
    pub peer: PeerId,
    pub bytes: Vec<u8>,
    pub reply: oneshot::Sender<Vec<u8>>,
}

/// The node's own addresses.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub listen: Vec<Multiaddr>,
    pub external: Vec<Multiaddr>,
}

enum Command {
    Request {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Addresses(oneshot::Sender<Addresses>),
    Dial {
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Resolved {
        index: usize,
        result: std::io::Result<Vec<Multiaddr>>,
    },
}

/// A running network: the handle, plus the channels the node must drain.
pub struct Network {
    pub handle: NetHandle,
    pub inbound: mpsc::Receiver<InboundRequest>,
    pub events: mpsc::Receiver<NetEvent>,
}

/// Cheap to clone; all clones drive the same network.
#[derive(Debug, Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    shutdown: CancellationToken,
    request_timeout: Duration,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

#[derive(Serialize, Deserialize)]
struct MemberList {
    /// Peer id bytes and listen addresses (bytes) of each connected peer.
    peers: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    members: request_response::Behaviour<FrameCodec>,
    app: request_response::Behaviour<FrameCodec>,
}

type Responding = BoxFuture<
    'static,
    (
        ResponseChannel<Vec<u8>>,
        Result<Vec<u8>, oneshot::error::RecvError>,
    ),
>;

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    command_tx: mpsc::Sender<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    events: mpsc::Sender<NetEvent>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>>,
    responding: FuturesUnordered<Responding>,
    book: PeerBook,
    public_ip: bool,
    listen: Vec<Multiaddr>,
    mismatch_logged: HashMap<String, Instant>,
    shutdown: CancellationToken,
}

impl NetHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Sends a request and waits for the answer, for at most `timeout` (and never
    /// longer than the network's own request limit).
    pub async fn request(
        &self,
        peer: PeerId,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let asked = self.ask(|reply| Command::Request { peer, bytes, reply });
        match tokio::time::timeout(timeout.min(self.request_timeout), asked).await {
            Ok(result) => result?,
            Err(_) => Err(NetError::Timeout { peer }),
        }
    }

    /// Connected peers, sorted by address.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// Listen and external addresses.
    pub async fn addresses(&self) -> Addresses {
        self.ask(Command::Addresses).await.unwrap_or_default()
    }

    /// Dials an address (its peer id is learnt on connection).
    pub async fn dial(&self, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addrs, reply }).await?
    }

    /// Stops the network: connections close, pending requests fail.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Builds the swarm, starts listening (failing if an address cannot be bound) and
/// spawns the event loop.
pub async fn start(config: NetConfig) -> Result<Network, NetError> {
    let keypair = config.identity.keypair().clone();
    let local_peer_id = keypair.public().to_peer_id();
    let psk = config.psk;
    let app_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(256);
    let members_config =
        request_response::Config::default().with_request_timeout(Duration::from_secs(10));
    let max_connections = config.max_connections;
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            transport::build(key, psk)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_behaviour(|key| Behaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(2))
                    .with_max_established(Some(max_connections))
                    .with_max_pending_incoming(Some(64)),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("peervault/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
            members: request_response::Behaviour::with_codec(
                FrameCodec,
                [(MEMBERS_PROTOCOL, ProtocolSupport::Full)],
                members_config,
            ),
            app: request_response::Behaviour::with_codec(
                FrameCodec,
                [(APP_PROTOCOL, ProtocolSupport::Full)],
                app_config,
            ),
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    let listen = listen_all(&mut swarm, &config.listen).await?;
    if let Some(advertise) = &config.advertise {
        swarm.add_external_address(advertise.to_multiaddr());
    }

    let (command_tx, commands) = mpsc::channel(256);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let (events_tx, events) = mpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let event_loop = EventLoop {
        swarm,
        commands,
        command_tx: command_tx.clone(),
        inbound: inbound_tx,
        events: events_tx,
        pending: HashMap::new(),
        responding: FuturesUnordered::new(),
        book: PeerBook::new(config.bootstrap, Instant::now()),
        public_ip: config.public_ip,
        listen,
        mismatch_logged: HashMap::new(),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(event_loop.run());
    Ok(Network {
        handle: NetHandle {
            commands: command_tx,
            local_peer_id,
            shutdown,
            request_timeout: config.request_timeout,
        },
        inbound,
        events,
    })
}

/// Listens on every endpoint and waits until each listener is up or has failed.
async fn listen_all(
    swarm: &mut Swarm<Behaviour>,
    endpoints: &[Endpoint],
) -> Result<Vec<Multiaddr>, NetError> {
    let mut waiting = HashMap::new();
    for endpoint in endpoints {
        let fail = |reason: String| NetError::Listen {
            addr: endpoint.to_string(),
            reason,
        };
        let addr = endpoint
            .resolve_for_listen()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let id = swarm.listen_on(addr).map_err(|e| fail(e.to_string()))?;
        waiting.insert(id, endpoint.to_string());
    }
    let mut addresses = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !waiting.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetError::Setup("listening did not start within 10 s".into()))?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                waiting.remove(&listener_id);
                addresses.push(address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    let reason = match reason {
                        Err(e) => e.to_string(),
                        Ok(()) => "the listener closed".into(),
                    };
                    return Err(NetError::Listen { addr, reason });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    return Err(NetError::Listen {
                        addr,
                        reason: error.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    // A listener on 0.0.0.0 reports each interface; give the rest a moment.
    while let Ok(SwarmEvent::NewListenAddr { address, .. }) =
        tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await
    {
        addresses.push(address);
    }
    Ok(addresses)
}

fn encode_members(list: &MemberList) -> Vec<u8> {
    postcard::to_stdvec(list).unwrap_or_default()
}

fn decode_members(bytes: &[u8]) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let Ok(list) = postcard::from_bytes::<MemberList>(bytes) else {
        return Vec::new();
    };
    list.peers
        .into_iter()
        .take(MEMBERS_LIMIT)
        .filter_map(|(id, addrs)| {
            let peer = PeerId::from_bytes(&id).ok()?;
            let addrs = addrs
                .into_iter()
                .filter_map(|a| Multiaddr::try_from(a).ok())
                .collect();
            Some((peer, addrs))
        })
        .collect()
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
    async fn run(mut self) {
        let mut tick = tokio::time::interval(REDIAL_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = tick.tick() => self.redial(),
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
                let id = self.swarm.behaviour_mut().app.send_request(&peer, bytes);
                self.pending.insert(id, reply);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.book.snapshot(Instant::now()));
            }
            Command::Addresses(reply) => {
                let _ = reply.send(Addresses {
                    listen: self.swarm.listeners().cloned().collect(),
                    external: self.swarm.external_addresses().cloned().collect(),
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
                        self.swarm.dial(opts).map_err(|e| NetError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        })
                    }
                };
                let _ = reply.send(result);
            }
            Command::Resolved { index, result } => self.dial_bootstrap(index, result),
        }
    }

    /// Dials every bootstrap endpoint and lost peer whose time has come.
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
        for peer in self.book.due_known(now) {
            let Some(known) = self.book.known.get_mut(&peer) else {
                continue;
            };
            known.pending = true;
            known.attempts += 1;
            let opts = DialOpts::peer_id(peer)
                .addresses(known.addrs.clone())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!("cannot redial {peer}: {e}");
                known.pending = false;
                known.next_attempt = now + REDIAL_FIRST * 2u32.pow(known.attempts.min(5));
            }
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
            Ok(_) => {
                self.bootstrap_failed(index, "the name resolves to no address".into());
                return;
            }
            Err(e) => {
                self.bootstrap_failed(index, e.to_string());
                return;
            }
        };
        // With several addresses (127.0.0.1 and ::1 for localhost), rotate through
        // them from one attempt to the next.
        let addr = addrs[entry.failures as usize % addrs.len()].clone();
        let opts = DialOpts::unknown_peer_id().address(addr).build();
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
                crate::peers::REDIAL_MAX.as_secs()
            );
        } else {
            tracing::debug!(
                "bootstrap {} still unreachable ({reason}); next try in {pause:?}",
                entry.endpoint
            );
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
                "network key mismatch: refused the connection {direction} {address}; that node uses a different network key (check --key / PEERVAULT_KEY on both sides)"
            );
        }
        self.emit(NetEvent::KeyMismatch {
            address: address.clone(),
        });
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
                let bootstrap = self
                    .book
                    .bootstrap
                    .iter_mut()
                    .find(|b| b.pending == Some(connection_id) || b.peer == Some(peer_id));
                let source = match (&bootstrap, &endpoint) {
                    (Some(_), _) => PeerSource::Bootstrap,
                    (None, ConnectedPoint::Listener { .. }) => PeerSource::Inbound,
                    (None, ConnectedPoint::Dialer { .. }) => self
                        .book
                        .known
                        .get(&peer_id)
                        .map(|k| k.source)
                        .unwrap_or(PeerSource::Manual),
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
                }
                if let Some(known) = self.book.known.get_mut(&peer_id) {
                    known.pending = false;
                    known.attempts = 0;
                }
                if num_established.get() == 1 {
                    let (remote, dialed) = match &endpoint {
                        ConnectedPoint::Dialer { address, .. } => (address.clone(), true),
                        ConnectedPoint::Listener { send_back_addr, .. } => {
                            (send_back_addr.clone(), false)
                        }
                    };
                    tracing::info!("connected to peer {peer_id} at {remote} ({source})");
                    self.book.connected.insert(
                        peer_id,
                        crate::peers::Connected {
                            remote,
                            dialed,
                            source,
                            rtt: None,
                            last_seen: now,
                            since: now,
                            agent: None,
                            listen_addrs: Vec::new(),
                        },
                    );
                    self.swarm
                        .behaviour_mut()
                        .members
                        .send_request(&peer_id, encode_members(&MemberList { peers: Vec::new() }));
                    self.emit(NetEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => self.on_disconnected(peer_id, cause.map(|c| c.to_string()), now),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let mismatch = is_key_mismatch(&error);
                if let Some(index) = self
                    .book
                    .bootstrap
                    .iter()
                    .position(|b| b.pending == Some(connection_id))
                {
                    let address = self.book.bootstrap[index].endpoint.to_multiaddr();
                    if mismatch {
                        self.log_key_mismatch(&address, false);
                    }
                    self.bootstrap_failed(index, error.to_string());
                } else if let Some(peer) = peer_id {
                    if let Some(known) = self.book.known.get_mut(&peer) {
                        known.pending = false;
                        known.next_attempt = now + REDIAL_FIRST * 2u32.pow(known.attempts.min(5));
                    }
                    if mismatch {
                        let address = self
                            .book
                            .known
                            .get(&peer)
                            .and_then(|k| k.addrs.first().cloned())
                            .unwrap_or_else(Multiaddr::empty);
                        self.log_key_mismatch(&address, false);
                    }
                    tracing::debug!("dial to {peer} failed: {error}");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                if is_key_mismatch(&error) {
                    self.log_key_mismatch(&send_back_addr, true);
                } else {
                    tracing::debug!("incoming connection from {send_back_addr} failed: {error}");
                }
            }
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

    /// The last connection to `peer` closed: remember how to reach it again.
    fn on_disconnected(&mut self, peer_id: PeerId, cause: Option<String>, now: Instant) {
        if let Some(gone) = self.book.connected.remove(&peer_id) {
            tracing::info!(
                "disconnected from peer {peer_id}{}",
                cause.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            if !gone.listen_addrs.is_empty() {
                self.book
                    .learn(peer_id, gone.listen_addrs, gone.source, now);
            }
            if let Some(known) = self.book.known.get_mut(&peer_id) {
                known.next_attempt = now + REDIAL_FIRST;
                known.pending = false;
            }
        }
        for b in &mut self.book.bootstrap {
            if b.peer == Some(peer_id) {
                b.next_attempt = now + REDIAL_FIRST;
            }
        }
        self.emit(NetEvent::Disconnected(peer_id));
    }

    fn touch(&mut self, peer: &PeerId) {
        if let Some(c) = self.book.connected.get_mut(peer) {
            c.last_seen = Instant::now();
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => {
                if let Ok(rtt) = result
                    && let Some(c) = self.book.connected.get_mut(&peer)
                {
                    c.rtt = Some(rtt);
                    c.last_seen = Instant::now();
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in &info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr.clone());
                }
                if let Some(c) = self.book.connected.get_mut(&peer_id) {
                    c.agent = Some(info.agent_version.clone());
                    c.listen_addrs = info.listen_addrs.clone();
                }
                if self.public_ip
                    && let Some(candidate) = public_candidate(&info.observed_addr, &self.listen)
                    && !self.swarm.external_addresses().any(|a| *a == candidate)
                {
                    tracing::info!(
                        "public address detected: {candidate} (as seen by peer {peer_id})"
                    );
                    self.swarm.add_external_address(candidate);
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Members(request_response::Event::Message { peer, message, .. }) => {
                self.touch(&peer);
                match message {
                    request_response::Message::Request { channel, .. } => {
                        let peers = self
                            .book
                            .connected
                            .iter()
                            .filter(|(id, c)| **id != peer && !c.listen_addrs.is_empty())
                            .take(MEMBERS_LIMIT)
                            .map(|(id, c)| {
                                (
                                    id.to_bytes(),
                                    c.listen_addrs.iter().map(|a| a.to_vec()).collect(),
                                )
                            })
                            .collect();
                        let answer = encode_members(&MemberList { peers });
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .members
                            .send_response(channel, answer);
                    }
                    request_response::Message::Response { response, .. } => {
                        let local = *self.swarm.local_peer_id();
                        for (member, addrs) in decode_members(&response) {
                            if member == local || self.book.connected.contains_key(&member) {
                                continue;
                            }
                            tracing::debug!("learnt of peer {member} from {peer}");
                            self.book
                                .learn(member, addrs, PeerSource::Exchange, Instant::now());
                        }
                    }
                }
            }
            BehaviourEvent::Members(_) => {}
            BehaviourEvent::App(request_response::Event::Message { peer, message, .. }) => {
                self.touch(&peer);
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
            BehaviourEvent::App(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
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
            BehaviourEvent::App(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_round_trip_and_garbage_is_ignored() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        let bytes = encode_members(&MemberList {
            peers: vec![(peer.to_bytes(), vec![addr.to_vec()])],
        });
        assert_eq!(decode_members(&bytes), vec![(peer, vec![addr])]);
        assert!(decode_members(b"\xff\xff garbage").is_empty());
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
