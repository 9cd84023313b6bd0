//! Finding peers: peer exchange (lists asked of each peer on connect and every
//! interval, and learnt from), mDNS on the local network, and the Kademlia DHT
//! (routing, provider records, closest-peer queries).

use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, kad, mdns, request_response};
use serde::{Deserialize, Serialize};

use super::EventLoop;
use crate::peers::{PEX_LIMIT, PeerSource, PexEntry, STALE_AFTER, reachable_via};

#[derive(Serialize, Deserialize)]
pub(super) struct PexMessage {
    peers: Vec<PexEntry>,
}

pub(super) fn encode_pex(peers: Vec<PexEntry>) -> Vec<u8> {
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

impl EventLoop {
    /// Sends our peer list to `peer` (its answer carries its list).
    pub(super) fn exchange_with(&mut self, peer: PeerId) {
        let entries = self.book.pex_entries(&peer, Instant::now());
        self.swarm
            .behaviour_mut()
            .pex
            .send_request(&peer, encode_pex(entries).into());
    }

    pub(super) fn exchange_with_all(&mut self) {
        let peers: Vec<PeerId> = self.book.connected.keys().copied().collect();
        tracing::debug!("peer exchange round with {} peers", peers.len());
        for peer in peers {
            self.exchange_with(peer);
        }
    }

    /// Learns the peers a peer told us about and dials new ones within the budget.
    pub(super) fn learn_from_pex(&mut self, from: PeerId, bytes: &[u8]) {
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

    pub(super) fn on_pex(&mut self, event: request_response::Event<Bytes, Bytes>) {
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

    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
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

    pub(super) fn on_kad(&mut self, event: kad::Event) {
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
