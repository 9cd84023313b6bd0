//! Dialing: bootstrap peers (resolved, retried with backoff, recognised when
//! they turn out to be this node), known peers within the connection budget,
//! and what a failed dial teaches (a key mismatch, an address that leads back
//! here, a source port still in use).

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use super::EventLoop;
use crate::network::{Command, NetEvent};
use crate::peers::{KEY_MISMATCH_EXPIRY, REDIAL_MAX, redial_pause};
use crate::transport::{HandshakeFailure, handshake_failure};

/// A key mismatch from one address is logged at most this often.
pub(super) const MISMATCH_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// `addr` without a trailing `/p2p/<peer id>` (the form kept in the address book).
pub(super) fn strip_peer(addr: &Multiaddr) -> Multiaddr {
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
pub(super) fn port_in_use(error: &libp2p::swarm::DialError) -> bool {
    match error {
        libp2p::swarm::DialError::Transport(attempts) => attempts
            .iter()
            .any(|(_, e)| format!("{e:?}").contains("AddrInUse")),
        _ => false,
    }
}

/// An error with every cause it wraps, for logs ("denied: connection limit ...").
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl EventLoop {
    /// Connections the node may still open to peers it learns about (dials under
    /// way count as connections).
    pub(super) fn dial_budget(&self) -> usize {
        let dialling = self.book.known.values().filter(|k| k.pending).count();
        self.max_peers
            .saturating_sub(self.book.connected.len() + dialling)
    }

    /// Dials every bootstrap endpoint and known peer whose time has come.
    pub(super) fn redial(&mut self) {
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

    pub(super) fn dial_known(&mut self, peer: PeerId, now: Instant) {
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
            known.next_attempt = now + redial_pause(known.attempts);
        }
    }

    pub(super) fn dial_bootstrap(
        &mut self,
        index: usize,
        resolved: std::io::Result<Vec<Multiaddr>>,
    ) {
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

    pub(super) fn bootstrap_failed(&mut self, index: usize, reason: String) {
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
    pub(super) fn on_dial_failed(
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
                Some(HandshakeFailure::Refused) => {
                    self.log_refused(&endpoint.to_multiaddr(), &error_chain(error), false)
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
            known.next_attempt = now + redial_pause(known.attempts);
            known.new_port |= in_use;
            if matches!(
                verdict,
                Some(HandshakeFailure::KeyMismatch | HandshakeFailure::Refused)
            ) {
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
            Some(HandshakeFailure::Refused) => {
                self.log_refused(&address, &error_chain(error), false)
            }
            Some(HandshakeFailure::BadIdentity) => {
                tracing::warn!("dial to {peer} refused: {}", error_chain(error))
            }
            _ => tracing::debug!("dial to {peer} failed: {}", error_chain(error)),
        }
    }

    /// A gatekeeper's refusal (a removed device, or one that is not a member),
    /// logged at most once a minute per host like a key mismatch.
    pub(super) fn log_refused(&mut self, address: &Multiaddr, why: &str, inbound: bool) {
        let key = format!(
            "refused {}",
            address
                .iter()
                .next()
                .map(|p| p.to_string())
                .unwrap_or_default()
        );
        let now = Instant::now();
        if self
            .mismatch_logged
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < MISMATCH_LOG_INTERVAL)
        {
            return;
        }
        self.mismatch_logged.insert(key, now);
        if inbound {
            tracing::info!("refused a connection from {address}: {why}");
        } else {
            tracing::warn!("the node at {address} refused this node: {why}");
        }
    }

    pub(super) fn log_key_mismatch(&mut self, address: &Multiaddr, inbound: bool) {
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
}
