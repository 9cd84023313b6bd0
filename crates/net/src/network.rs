//! The network actor: one task owns the libp2p swarm; everything else talks to it
//! through a cloneable [`NetHandle`] and hears from it through channels.
//!
//! Behaviours on every connection:
//! * identify: peers' listen addresses and agent, and our address as they see it;
//! * ping: round-trip time and liveness for `peers`;
//! * peer exchange (`/peervault/pex/1`): on every new connection, and every
//!   `pex_interval` with `-discover-pex`, both sides trade up to 20 peers they know
//!   (with how each was found and when it was last seen) and dial the new ones, so
//!   nodes that joined through one bootstrap node end up connected to each other;
//! * mDNS (with `-discover-local`): peers on the local link;
//! * Kademlia (`/peervault/kad/1`): a routing table for larger networks and provider
//!   records telling who holds which file;
//! * app (`/peervault/app/1`): the node's own requests (catalogue sync, chunks),
//!   opaque bytes here;
//! * connection limits.
//!
//! A node dials peers it learns about only while it has fewer than `max_peers`
//! connections (bootstrap peers are always dialled), so large networks stay sparse
//! and the DHT carries what direct connections do not.
//!
//! Requests from peers go to the node through a bounded channel; if the node is
//! saturated the request is dropped (the peer sees a failure and tries elsewhere)
//! rather than letting the event loop block or memory grow.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, allow_block_list, autonat,
    connection_limits, dcutr, identify, kad, mdns, ping, relay,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::addr::Endpoint;
use crate::channel::{ChannelConfig, NoiseIdentity};
use crate::codec::FrameCodec;
use crate::event_loop::{Behaviour, BehaviourEvent, EventLoop};
use crate::gate::Gatekeeper;
use crate::identity::NodeIdentity;
use crate::peers::{Discovery, PeerInfo};
use crate::split_safe::SplitSafe;
use crate::transport;

pub(crate) const APP_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/app/1");
pub(crate) const PEX_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/pex/1");
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/kad/1");
const IDENTIFY_PROTOCOL: &str = "/peervault/1.0.0";

/// Connections without any open stream close after this long (pings do not count):
/// connections made for one DHT query or one transfer do not linger.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Requests from peers waiting for the node.
const INBOUND_QUEUE: usize = 256;
/// How often mDNS asks the link who is there (it also answers at once when asked).
const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(30);
/// Time limit of one DHT query.
const DHT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Nodes that store each provider record. Kademlia's usual 20 is meant for open,
/// churning networks; the members of a private vault are few and stable, and each
/// record put makes the provider connect to that many nodes.
const DHT_REPLICATION: usize = 8;

/// AutoNAT: the first reachability probe soon after start, retries while unsure,
/// and a fresh check now and then once sure.
const AUTONAT_BOOT_DELAY: Duration = Duration::from_secs(3);
const AUTONAT_RETRY: Duration = Duration::from_secs(15);
const AUTONAT_REFRESH: Duration = Duration::from_secs(15 * 60);

/// What a relay grants to peers behind NAT: enough for a vault's transfers, few
/// enough that relaying cannot take over the node. Each circuit carries at most
/// [`RELAY_CIRCUIT_BYTES`] for at most an hour, then the peers open another (or,
/// mostly, have hole-punched a direct connection long before).
pub const RELAY_CIRCUIT_BYTES: u64 = 1 << 30;
const RELAY_MAX_CIRCUITS: usize = 64;
const RELAY_MAX_RESERVATIONS: usize = 64;

fn relay_limits() -> relay::Config {
    relay::Config {
        max_reservations: RELAY_MAX_RESERVATIONS,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: RELAY_MAX_CIRCUITS,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(60 * 60),
        max_circuit_bytes: RELAY_CIRCUIT_BYTES,
        ..relay::Config::default()
    }
}

/// Connections a node opens by itself: enough for a small vault to be one mesh,
/// few enough that a large one stays sparse (the DHT finds the rest).
pub const DEFAULT_MAX_PEERS: usize = 32;
/// How often peer lists are exchanged with `discover_pex` (they are always
/// exchanged on connect).
pub const DEFAULT_PEX_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What the operator decides about the network: addresses, discovery, limits.
/// The node's configuration nests this as it is; the node adds what it derives
/// (identity, key) in [`NetConfig`].
#[derive(Debug, Clone)]
pub struct NetSettings {
    pub listen: Vec<Endpoint>,
    /// Address announced to peers in addition to the listen addresses.
    pub advertise: Option<Endpoint>,
    /// Announce only `advertise` (and addresses peers confirm), never the listen
    /// addresses: behind a proxy or port forwarding those are unreachable.
    pub advertise_only: bool,
    pub bootstrap: Vec<Endpoint>,
    /// Announce the address peers observe for us.
    pub public_ip: bool,
    /// Upper bound for any request; callers may use shorter ones.
    pub request_timeout: Duration,
    /// Connections the node keeps by dialling peers it learns of.
    pub max_peers: usize,
    /// Find peers on the local link with mDNS.
    pub discover_local: bool,
    /// Exchange peer lists periodically (they are always exchanged on connect).
    pub discover_pex: bool,
    pub pex_interval: Duration,
    /// Offer a relay (circuit relay v2, with limits) to peers behind NAT.
    pub relay_server: bool,
    /// Frames each direction of a connection carries under one key (tests lower it
    /// to see many rekeys).
    pub rekey_interval: u64,
}

impl NetSettings {
    /// Defaults for everything but the listen addresses.
    pub fn new(listen: Vec<Endpoint>) -> Self {
        Self {
            listen,
            advertise: None,
            advertise_only: false,
            bootstrap: Vec::new(),
            public_ip: false,
            request_timeout: Duration::from_secs(60),
            max_peers: DEFAULT_MAX_PEERS,
            discover_local: false,
            discover_pex: false,
            pex_interval: DEFAULT_PEX_INTERVAL,
            relay_server: false,
            rekey_interval: crate::channel::DEFAULT_REKEY_INTERVAL,
        }
    }
}

/// How to start the network: the operator's settings and what the node derives.
#[derive(Clone)]
pub struct NetConfig {
    pub identity: NodeIdentity,
    /// The pre-shared keys of the private channel, and who is admitted.
    pub gate: Arc<dyn Gatekeeper>,
    pub settings: NetSettings,
    /// The vault's key-derivation parameters, handed to whoever asks (a node given
    /// the passphrase and this node's address needs them); `None` when the key is
    /// not derived from a passphrase.
    pub kdf_parameters: Option<Vec<u8>>,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("identity", &self.identity)
            .field("settings", &self.settings)
            .finish()
    }
}

impl NetConfig {
    pub fn new(identity: NodeIdentity, gate: Arc<dyn Gatekeeper>, settings: NetSettings) -> Self {
        Self {
            identity,
            gate,
            settings,
            kdf_parameters: None,
        }
    }
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
    /// A peer broke the protocol in a way no honest node does.
    Misbehaved {
        peer: PeerId,
        what: String,
    },
}

/// A request from a peer; answer through `reply` (dropping it fails the request).
#[derive(Debug)]
pub struct InboundRequest {
    pub peer: PeerId,
    pub bytes: Bytes,
    pub reply: oneshot::Sender<Bytes>,
}

/// The node's own addresses.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub listen: Vec<Multiaddr>,
    pub external: Vec<Multiaddr>,
    /// Addresses through relays (held while behind NAT).
    pub relayed: Vec<Multiaddr>,
    /// What AutoNAT found: public, private or unknown.
    pub reachability: String,
    /// This node relays for peers behind NAT (`--relay`).
    pub relay_service: bool,
}

pub(crate) enum Command {
    Request {
        peer: PeerId,
        bytes: Bytes,
        reply: oneshot::Sender<Result<Bytes, NetError>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Discovery(oneshot::Sender<Discovery>),
    Addresses(oneshot::Sender<Addresses>),
    Dial {
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Resolved {
        index: usize,
        result: std::io::Result<Vec<Multiaddr>>,
    },
    Ban {
        peer: PeerId,
        until: std::time::Instant,
    },
    /// Close every connection to this peer and forget its addresses (the
    /// gatekeeper refuses it from now on).
    Disconnect(PeerId),
    /// The connection to this peer carries work outside the swarm (a chunk lane).
    Used(PeerId),
    Provide(Vec<u8>),
    StopProviding(Vec<u8>),
    FindProviders {
        key: Vec<u8>,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// A running network: the handle, plus the channels the node must drain.
pub struct Network {
    pub handle: NetHandle,
    pub inbound: mpsc::Receiver<InboundRequest>,
    pub events: mpsc::Receiver<NetEvent>,
    /// Chunk streams peers open to this node ([`CHUNK_PROTOCOL`]).
    pub chunk_streams: libp2p_stream::IncomingStreams,
}

/// The protocol of long-lived chunk streams: length-prefixed chunk requests one
/// way and their answers, in the same order, the other (see the node's lanes).
pub const CHUNK_PROTOCOL: StreamProtocol = StreamProtocol::new("/peervault/chunks/1");

/// Cheap to clone; all clones drive the same network.
#[derive(Debug, Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    shutdown: CancellationToken,
    request_timeout: Duration,
    streams: Streams,
}

/// Opens streams of protocols outside the swarm's behaviours.
#[derive(Clone)]
struct Streams(libp2p_stream::Control);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streams")
    }
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
    /// longer than the network's own request limit). The peer is dialled if needed,
    /// with whatever addresses the node knows for it.
    pub async fn request(
        &self,
        peer: PeerId,
        bytes: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        let bytes = bytes.into();
        let asked = self.ask(|reply| Command::Request { peer, bytes, reply });
        match tokio::time::timeout(timeout.min(self.request_timeout), asked).await {
            Ok(result) => result?,
            Err(_) => Err(NetError::Timeout { peer }),
        }
    }

    /// Opens a chunk stream ([`CHUNK_PROTOCOL`]) to `peer`, over its connection
    /// (dialling it if needed), within the network's request limit. It may be
    /// split and its halves polled by two tasks (see [`SplitSafe`]).
    pub async fn open_chunk_stream(
        &self,
        peer: PeerId,
    ) -> Result<SplitSafe<libp2p::Stream>, NetError> {
        let mut control = self.streams.0.clone();
        let opening = control.open_stream(peer, CHUNK_PROTOCOL);
        match tokio::time::timeout(self.request_timeout, opening).await {
            Ok(Ok(stream)) => Ok(SplitSafe::new(stream)),
            Ok(Err(e)) => Err(NetError::Failed {
                peer,
                reason: e.to_string(),
            }),
            Err(_) => Err(NetError::Timeout { peer }),
        }
    }

    /// Connected peers, sorted by address.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// What discovery knows: mDNS, the address book, the DHT.
    pub async fn discovery(&self) -> Discovery {
        self.ask(Command::Discovery).await.unwrap_or_default()
    }

    /// Listen and external addresses.
    pub async fn addresses(&self) -> Addresses {
        self.ask(Command::Addresses).await.unwrap_or_default()
    }

    /// Dials an address (its peer id is learnt on connection).
    pub async fn dial(&self, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addrs, reply }).await?
    }

    /// Disconnects `peer` and refuses it for `duration`.
    pub async fn ban(&self, peer: PeerId, duration: Duration) {
        let until = std::time::Instant::now() + duration;
        let _ = self.commands.send(Command::Ban { peer, until }).await;
    }

    /// Closes every connection to `peer` and forgets its addresses: for a peer
    /// the gatekeeper now refuses (a removed device), which cannot come back.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect(peer)).await;
    }

    /// Tells the network that the connection to `peer` is in use (by a chunk
    /// stream, which the swarm does not see), so that trimming leaves it open.
    pub fn mark_used(&self, peer: PeerId) {
        let _ = self.commands.try_send(Command::Used(peer));
    }

    /// Announces in the DHT that this node holds what `key` names.
    pub async fn provide(&self, key: Vec<u8>) {
        let _ = self.commands.send(Command::Provide(key)).await;
    }

    /// Withdraws [`NetHandle::provide`].
    pub async fn stop_providing(&self, key: Vec<u8>) {
        let _ = self.commands.send(Command::StopProviding(key)).await;
    }

    /// Peers that announced `key` in the DHT; each is dialled as it is found.
    pub async fn find_providers(&self, key: Vec<u8>) -> Vec<PeerId> {
        let asked = self.ask(|reply| Command::FindProviders { key, reply });
        tokio::time::timeout(DHT_QUERY_TIMEOUT + Duration::from_secs(2), asked)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Stops the network: connections close, pending requests fail.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Asks the node at `endpoint` for its vault's key-derivation parameters (the
/// salt and costs a passphrase is stretched with there): `Ok(None)` if its key is
/// not a passphrase's. Tries each address the endpoint resolves to.
pub async fn ask_kdf_parameters(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, NetError> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let fail = |reason: String| NetError::Dial {
        addr: endpoint.to_string(),
        reason,
    };
    let addrs = endpoint
        .resolve_for_dial()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut last = String::from("the name resolves to no address");
    for socket_addr in addrs.iter().filter_map(tcp_socket_addr) {
        let asked = async {
            let socket = tokio::net::TcpStream::connect(socket_addr).await?;
            crate::channel::ask_kdf_parameters(socket.compat()).await
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {timeout:?}"),
        }
    }
    Err(fail(last))
}

/// Redeems an invitation at `endpoint`: dials it with the invitation's key
/// `psk` as `identity` and returns the member that answered and its welcome
/// (the vault's keys, sealed to `identity`), or why it was refused.
pub async fn redeem_invitation(
    endpoint: &Endpoint,
    identity: &NodeIdentity,
    psk: [u8; 32],
    timeout: Duration,
) -> Result<(PeerId, Vec<u8>), crate::transport::HandshakeError> {
    use crate::transport::HandshakeError;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let redeemer = Arc::new(crate::gate::Redeemer {
        psk,
        welcome: std::sync::Mutex::new(None),
    });
    let noise = NoiseIdentity::new(identity.keypair()).map_err(HandshakeError::Io)?;
    let config = ChannelConfig {
        gate: redeemer.clone(),
        ..ChannelConfig::with_psk(psk, Arc::new(noise))
    };
    let attempt = async {
        let addrs = endpoint
            .resolve_for_dial()
            .await
            .map_err(|e| HandshakeError::Io(std::io::Error::other(e.to_string())))?;
        let mut last = HandshakeError::Io(std::io::Error::other("the address resolves to nothing"));
        for addr in addrs.iter().filter_map(tcp_socket_addr) {
            let socket = match tokio::net::TcpStream::connect(addr).await {
                Ok(socket) => socket,
                Err(e) => {
                    last = HandshakeError::Io(e);
                    continue;
                }
            };
            let role = crate::channel::Role::Initiator;
            match crate::channel::handshake(socket.compat(), role, &config, None).await {
                Err(HandshakeError::Welcomed(peer)) => return Ok(peer),
                Err(e) => last = e,
                Ok(_) => {
                    last = HandshakeError::NotPeerVault(
                        "it took the invitation's key for a member's".into(),
                    )
                }
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| HandshakeError::HandshakeTimeout(timeout))??;
    redeemer
        .welcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| HandshakeError::NotPeerVault("it welcomed with nothing".into()))
}

/// Builds the swarm, starts listening (failing if an address cannot be bound) and
/// spawns the event loop.
pub async fn start(config: NetConfig) -> Result<Network, NetError> {
    let keypair = config.identity.keypair().clone();
    let local_peer_id = keypair.public().to_peer_id();
    let channel = ChannelConfig {
        gate: config.gate.clone(),
        identity: Arc::new(
            NoiseIdentity::new(&keypair).map_err(|e| NetError::Setup(e.to_string()))?,
        ),
        rekey_interval: config.settings.rekey_interval,
        kdf_parameters: config.kdf_parameters.clone().map(Arc::new),
    };
    let app_config = request_response::Config::default()
        .with_request_timeout(config.settings.request_timeout)
        // Each inbound request may hold up to a message's worth of memory while it
        // arrives; this bounds what one peer's connection can make the node hold.
        .with_max_concurrent_streams(64);
    let pex_config =
        request_response::Config::default().with_request_timeout(Duration::from_secs(10));
    // A hard cap far above the dialling target, only against floods: other nodes'
    // dials and DHT lookups add connections beyond the ones this node opens itself
    // (two per peer when both dial at once); unused ones are trimmed and close after
    // the idle timeout. A cap near the target made busy nodes refuse newcomers,
    // which then could not read files only those nodes held.
    let max_connections = (config.settings.max_peers * 8 + 128) as u32;
    let discover_local = config.settings.discover_local;
    let hide_listen = config.settings.advertise_only;
    let relay_server = config.settings.relay_server;
    // Reachability is detected only when no address was set by hand (manual
    // settings win).
    let detect_reachability = config.settings.advertise.is_none();
    let (relay_transport, relay_client) = libp2p::relay::client::new(local_peer_id);
    let mut relay_client = Some(relay_client);
    let round_trips = transport::HandshakeRoundTrips::default();
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|_| {
            transport::build(channel, relay_transport, round_trips.clone())
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mdns = if discover_local {
                let config = mdns::Config {
                    query_interval: MDNS_QUERY_INTERVAL,
                    ..mdns::Config::default()
                };
                Some(mdns::tokio::Behaviour::new(config, peer_id)?)
            } else {
                None
            };
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_query_timeout(DHT_QUERY_TIMEOUT);
            if let Some(k) = std::num::NonZeroUsize::new(DHT_REPLICATION) {
                kad_config.set_replication_factor(k);
            }
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            // Every node of a private vault can be asked: no waiting for a confirmed
            // public address before answering DHT queries.
            kad.set_mode(Some(kad::Mode::Server));
            let relay_client = relay_client
                .take()
                .ok_or_else(|| std::io::Error::other("the relay client was taken twice"))?;
            let relay_server = relay_server.then(|| relay::Behaviour::new(peer_id, relay_limits()));
            let autonat = detect_reachability.then(|| {
                autonat::Behaviour::new(
                    peer_id,
                    autonat::Config {
                        boot_delay: AUTONAT_BOOT_DELAY,
                        retry_interval: AUTONAT_RETRY,
                        refresh_interval: AUTONAT_REFRESH,
                        confidence_max: 1,
                        // A private vault lives on private addresses as often as not.
                        only_global_ips: false,
                        ..autonat::Config::default()
                    },
                )
            });
            Ok(Behaviour {
                banned: allow_block_list::Behaviour::default(),
                admission: crate::admission::PendingPerSource::default(),
                relay_client,
                relay_server: Toggle::from(relay_server),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: Toggle::from(autonat),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        // Two dials crossing, plus an AutoNAT dial-back or a
                        // hole-punched connection beside a relayed one.
                        .with_max_established_per_peer(Some(3))
                        .with_max_established(Some(max_connections))
                        // No single source can fill this: see `admission`.
                        .with_max_pending_incoming(Some(128)),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(format!("peervault/{}", env!("CARGO_PKG_VERSION")))
                        .with_hide_listen_addrs(hide_listen)
                        // A reservation on a relay adds an address: tell peers at once.
                        .with_push_listen_addr_updates(true),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                pex: request_response::Behaviour::with_codec(
                    FrameCodec,
                    [(PEX_PROTOCOL, ProtocolSupport::Full)],
                    pex_config,
                ),
                app: request_response::Behaviour::with_codec(
                    FrameCodec,
                    [(APP_PROTOCOL, ProtocolSupport::Full)],
                    app_config,
                ),
                mdns: Toggle::from(mdns),
                kad,
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                // A stream's protocol is proposed with its first bytes, not
                // agreed on first: every request, lane and ping saves a round
                // trip (across 200 ms, the offer that ends a put took 0.4 s
                // instead of 0.2). Safe because every protocol a node proposes
                // is its peer's too: both are PeerVault nodes of one vault (the
                // channel admits nothing else), and a stream refused anyway
                // fails on its first read, as a refused negotiation would.
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();

    let mut streams = swarm.behaviour().stream.new_control();
    let chunk_streams = streams
        .accept(CHUNK_PROTOCOL)
        .map_err(|e| NetError::Setup(format!("{CHUNK_PROTOCOL}: {e:?}")))?;
    let (listen, early) = listen_all(&mut swarm, &config.settings.listen).await?;
    if let Some(advertise) = &config.settings.advertise {
        swarm.add_external_address(advertise.to_multiaddr());
    }

    let (command_tx, commands) = mpsc::channel(256);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let (events_tx, events) = mpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let event_loop = EventLoop::new(
        swarm,
        &config,
        listen,
        commands,
        command_tx.clone(),
        inbound_tx,
        events_tx,
        shutdown.clone(),
        round_trips,
    );
    tokio::spawn(event_loop.run(early));
    Ok(Network {
        handle: NetHandle {
            commands: command_tx,
            local_peer_id,
            shutdown,
            request_timeout: config.settings.request_timeout,
            streams: Streams(streams),
        },
        inbound,
        events,
        chunk_streams,
    })
}

/// Whether `error`, read from a stream this node opened, says the peer does
/// not serve the stream's protocol.
///
/// Why: streams propose their protocol with their first bytes (lazy
/// negotiation, see the swarm's configuration in [`start`]), so opening one
/// cannot fail for that reason: the refusal arrives instead of the first
/// answer, after the first requests went out unread.
pub fn refused_protocol(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<multistream_select::NegotiationError>())
        .is_some_and(|e| matches!(e, multistream_select::NegotiationError::Failed))
}

/// The IP and TCP port an `/ip4|ip6/../tcp/..` multiaddr names.
fn tcp_socket_addr(addr: &Multiaddr) -> Option<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) => Some((ip, port).into()),
        _ => None,
    }
}

/// Fails if another process listens on `addr`'s port already.
///
/// libp2p binds listeners with `SO_REUSEPORT` (it dials from the listen port, for
/// hole punching), and Linux lets every socket of one user that sets it share a
/// port: a second node on the same port started without a word, and the two took
/// turns at accepting connections. A probe bound without `SO_REUSEPORT` (with
/// `SO_REUSEADDR`, as std sets it, so that our own connections waiting out
/// TIME_WAIT do not count) fails while anyone listens there.
fn check_port_free(addr: &Multiaddr) -> Result<(), String> {
    let Some(socket_addr) = tcp_socket_addr(addr).filter(|a| a.port() != 0) else {
        return Ok(());
    };
    let port = socket_addr.port();
    match std::net::TcpListener::bind(socket_addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "address already in use: another process listens on port {port} (another PeerVault \
             node?); stop it, or give this node another port with -addr"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Listens on every endpoint and waits until each listener is up or has failed.
///
/// Returns the listen addresses and every other event the swarm produced
/// meanwhile (an mDNS answer, an inbound connection), which the event loop
/// handles first: dropping them would lose a peer found during start-up.
async fn listen_all(
    swarm: &mut Swarm<Behaviour>,
    endpoints: &[Endpoint],
) -> Result<(Vec<Multiaddr>, Vec<SwarmEvent<BehaviourEvent>>), NetError> {
    use futures::StreamExt;
    use std::collections::HashMap;
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
        check_port_free(&addr).map_err(fail)?;
        let id = swarm.listen_on(addr).map_err(|e| fail(e.to_string()))?;
        waiting.insert(id, endpoint.to_string());
    }
    let mut addresses = Vec::new();
    let mut early = Vec::new();
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
            other => early.push(other),
        }
    }
    // A listener on 0.0.0.0 reports each interface; give the rest a moment.
    while let Ok(event) =
        tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await
    {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => addresses.push(address),
            other => early.push(other),
        }
    }
    Ok((addresses, early))
}
