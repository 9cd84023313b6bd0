//! Catalogue anti-entropy: every node ends up with every record of the vault.
//!
//! A sync with one peer is one round trip plus what actually differs:
//!
//! 1. We send our 256 bucket digests. The peer answers with the buckets whose
//!    digests differ and its records `(name id, version)` in those buckets, the
//!    current version of each name and those kept in its history.
//! 2. We fetch the records we lack and apply them: the greatest version of a name
//!    is its current entry, the others are its history (see
//!    `peervault_store::history`). Versions are totally ordered, so every node
//!    keeps the same winner of concurrent writes, and the loser in its history.
//! 3. We push the records in those buckets that the peer lacks.
//!
//! Both sides run this on connect and every sync interval, and every local change
//! is announced to all connected peers at once, so changes spread immediately and
//! nodes that were offline catch up when they return. A tombstone is newer than the
//! manifest it deletes, so a returning node cannot bring a deleted file back.
//!
//! At connect both sides pull, so neither pushes (step 3 is skipped): each would
//! otherwise send the other everything the other was fetching at that very moment,
//! and a new node joining a vault of 100,000 files received and opened every record
//! twice. The exception is a node that was re-syncing after a long absence: it
//! answered the peer's pull with nothing, so it pushes once its own records are
//! re-checked. The periodic rounds do all three steps and repair anything a
//! connect sync missed.
//!
//! The fetches of step 2 are pipelined ([`FETCHES_IN_FLIGHT`]), so the next batch
//! crosses the network while the last one is applied, and the records applied from
//! one message are passed on to the other peers in one message.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, FuturesUnordered, StreamExt};
use peervault_net::PeerId;
use peervault_store::{CatalogueEntry, NameId, Version};

use crate::client::CONTROL_TIMEOUT;
use crate::context::Context;
use crate::error::{PeerError, Result};
use crate::replicate::Replicator;
use crate::wire::{ENTRIES_PER_MESSAGE, Request, Response, SealedEntry};

/// Peers synced by one periodic round, chosen at random. Changes also spread by
/// announcements (forwarded once by every node that applies them), so the rounds
/// only repair what announcements missed; syncing with every peer every round would
/// also keep every connection, including those a DHT query opened once, busy for ever.
const SYNC_FANOUT: usize = 4;

/// Batches of records asked for at once in step 2 of a sync.
const FETCHES_IN_FLIGHT: usize = 3;

/// Why a sync runs, which decides whether it pushes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// A connection just opened; the peer runs its own sync and pulls.
    Connect,
    /// A periodic round: pull and push.
    Periodic,
}

/// What one sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub fetched: usize,
    pub applied: usize,
    pub pushed: usize,
    /// Records dropped because the vault deleted them while this node was away.
    pub forgotten: usize,
}

/// Catalogue anti-entropy with peers, and this node's standing in the vault
/// (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Syncer {
    ctx: Arc<Context>,
    replicator: Replicator,
    membership: Arc<Mutex<Membership>>,
}

impl Syncer {
    pub(crate) fn new(ctx: Arc<Context>, replicator: Replicator, membership: Membership) -> Syncer {
        Syncer {
            ctx,
            replicator,
            membership: Arc::new(Mutex::new(membership)),
        }
    }

    /// Reconciles our catalogue with `peer`'s, in both directions.
    pub async fn sync_with(&self, peer: PeerId) -> Result<SyncStats> {
        self.sync(peer, SyncKind::Periodic).await
    }

    /// [`Syncer::sync_with`], pushing only where `kind` calls for it.
    pub(crate) async fn sync(&self, peer: PeerId, kind: SyncKind) -> Result<SyncStats> {
        self.sync_impl(peer, kind)
            .await
            .map_err(|e| e.during("the catalogue sync failed"))
    }

    async fn sync_impl(
        &self,
        peer: PeerId,
        kind: SyncKind,
    ) -> std::result::Result<SyncStats, PeerError> {
        let vault = &self.ctx.vault;
        let summary = Request::Summary {
            digests: vault.summary(),
        };
        let (buckets, theirs, their_start, they_resync) =
            match self.ctx.ask(peer, &summary, CONTROL_TIMEOUT).await? {
                Response::Versions {
                    buckets,
                    versions,
                    member_since_ms,
                    resyncing,
                } => (buckets, versions, member_since_ms, resyncing),
                other => return Err(PeerError::refusal(peer, other)),
            };
        let me = self.membership();
        let mut stats = SyncStats::default();
        let lacking_here: Vec<(NameId, Version)> = theirs
            .iter()
            .filter(|(id, v)| !vault.has_record(id, v))
            .copied()
            .collect();
        // Owned batches and node handles: a stream borrowing them would make this
        // future's type too general for the compiler to prove it `Send`.
        let batches: Vec<Vec<(NameId, Version)>> = lacking_here
            .chunks(ENTRIES_PER_MESSAGE)
            .map(<[(NameId, Version)]>::to_vec)
            .collect();
        let mut fetches = stream::iter(batches)
            .map(|records| {
                let node = self.clone();
                async move {
                    let request = Request::FetchRecords { records };
                    node.ctx.ask(peer, &request, CONTROL_TIMEOUT).await
                }
            })
            .buffered(FETCHES_IN_FLIGHT);
        while let Some(answer) = fetches.next().await {
            let entries = match answer? {
                Response::Entries { entries } => entries,
                other => return Err(PeerError::refusal(peer, other)),
            };
            stats.fetched += entries.len();
            stats.applied += self.apply_from(peer, entries).await;
        }
        let their_records: HashSet<(NameId, Version)> = theirs.into_iter().collect();
        let mut newer_here: Vec<(NameId, Version)> = vault
            .versions_in(&buckets)
            .into_iter()
            .filter(|record| !their_records.contains(record))
            .collect();
        // Back after longer than the tombstone retention: a record this peer lacks
        // that is older than our last sync was deleted while we were away (its
        // tombstone is gone), if the peer was already a member then. Forget such
        // records rather than bring the files back.
        let judge = me.resyncing && !they_resync && their_start != 0;
        if judge && their_start < me.last_synced_ms {
            let mut kept = Vec::with_capacity(newer_here.len());
            for (id, version) in newer_here {
                let gone_there = !their_records.contains(&(id, version))
                    && version.unix_millis() < me.last_synced_ms;
                if !gone_there {
                    kept.push((id, version));
                    continue;
                }
                match vault.forget_entry(id, version).await {
                    Ok(()) => stats.forgotten += 1,
                    Err(e) => tracing::warn!("could not forget a deleted record: {e}"),
                }
            }
            newer_here = kept;
        }
        let newer_here: Vec<(NameId, Version)> = match kind {
            SyncKind::Connect if !me.resyncing => Vec::new(),
            _ => newer_here,
        };
        for batch in newer_here.chunks(ENTRIES_PER_MESSAGE) {
            let entries = self.sealed_batch(batch).await?;
            stats.pushed += entries.len();
            match self
                .ctx
                .ask(peer, &Request::Announce { entries }, CONTROL_TIMEOUT)
                .await?
            {
                Response::Ack => {}
                other => return Err(PeerError::refusal(peer, other)),
            }
        }
        if stats != SyncStats::default() {
            tracing::debug!("synced with {peer}: {stats:?}");
        }
        if judge {
            tracing::info!(
                "catalogue re-synced with {peer} after a long absence: {} records of files deleted meanwhile forgotten",
                stats.forgotten
            );
        }
        self.synced(!they_resync).await;
        self.ctx.metrics.catalogue_syncs.inc();
        Ok(stats)
    }

    /// Applies records `peer` sent, in one metadata transaction, and passes on
    /// those that took effect to the other peers, in one message (so that changes
    /// cross networks that are not fully connected: each node forwards a version
    /// once, when it first applies it). Returns how many took effect.
    pub(crate) async fn apply_from(&self, peer: PeerId, entries: Vec<SealedEntry>) -> usize {
        let records = entries
            .iter()
            .map(|e| (e.name_id, e.sealed.clone()))
            .collect();
        let results = match self.ctx.vault.apply_sealed_many(records).await {
            Ok(results) => results,
            Err(e) => {
                tracing::warn!("could not apply catalogue records from {peer}: {e}");
                return 0;
            }
        };
        let mut forward = Vec::new();
        for (result, sealed) in results.into_iter().zip(entries) {
            if let Ok(remote) = &result
                && remote.applied
                && crate::devices::Devices::touches(remote.entry.name())
            {
                self.ctx.devices.changed.notify_one();
            }
            match result {
                Ok(remote) if remote.applied => {
                    if let (true, CatalogueEntry::Deleted(gone)) = (remote.current, &remote.entry) {
                        self.replicator.stop_providing(&gone.name).await;
                    }
                    forward.push(sealed);
                }
                Ok(remote) => {
                    let name_id = self.ctx.vault.name_id(remote.entry.name());
                    if !self.ctx.vault.has_record(&name_id, &remote.entry.version()) {
                        // A version past the retention (from a peer far behind,
                        // or one that has yet to expire it): not kept.
                        self.ctx.metrics.stale_records.inc();
                    }
                }
                // Sealed in an epoch whose key has not reached this node yet:
                // the peer's grant comes, then a sync fetches it again.
                Err(peervault_store::StoreError::UnknownEpoch { .. }) => {
                    self.ctx.metrics.stale_records.inc();
                }
                Err(e) => {
                    self.ctx
                        .offence(
                            peer,
                            crate::conduct::Offence::BadRecord,
                            &format!("an invalid catalogue record ({e})"),
                        )
                        .await;
                }
            }
        }
        let applied = forward.len();
        if !forward.is_empty() {
            let node = self.clone();
            self.ctx
                .spawn(async move { node.send_announce(forward, &[peer]).await });
        }
        applied
    }

    async fn sealed_batch(
        &self,
        records: &[(NameId, Version)],
    ) -> std::result::Result<Vec<SealedEntry>, PeerError> {
        Ok(self
            .ctx
            .vault
            .sealed_records(records.to_vec())
            .await
            .map_err(|e| PeerError::Local {
                reason: e.to_string(),
            })?
            .into_iter()
            .map(|(name_id, sealed)| SealedEntry { name_id, sealed })
            .collect())
    }

    /// Tells every connected peer (but `skip`) about `version` of `name`, in
    /// the background: the version a write or delete made, which need not be
    /// the name's current one (a concurrent write may have won, or come
    /// since). Announcing the current one instead left a losing write to the
    /// next periodic sync, 30 s later.
    pub(crate) fn announce_version(&self, name: &str, version: Version, skip: &[PeerId]) {
        let node = self.clone();
        let skip = skip.to_vec();
        let name_id = self.ctx.vault.name_id(name);
        self.ctx.spawn(async move {
            match node.sealed_batch(&[(name_id, version)]).await {
                Ok(entries) => node.send_announce(entries, &skip).await,
                Err(e) => tracing::warn!("cannot announce a change: {e}"),
            }
        });
    }

    /// Sends `entries` in one announcement to every connected peer but `skip`.
    async fn send_announce(&self, entries: Vec<SealedEntry>, skip: &[PeerId]) {
        let request = Request::Announce { entries };
        let peers = self.ctx.connected_peers().await;
        let mut sends: FuturesUnordered<_> = peers
            .into_iter()
            .filter(|p| !skip.contains(p))
            .map(|peer| {
                let request = &request;
                async move { (peer, self.ctx.ask(peer, request, CONTROL_TIMEOUT).await) }
            })
            .collect();
        while let Some((peer, result)) = sends.next().await {
            if let Err(e) = result {
                // Not fatal: the next sync with that peer carries the change.
                tracing::debug!("announcing to {peer} failed: {e}");
            }
        }
    }
}

/// Syncs with every connected peer each `interval`.
pub(crate) async fn periodic(syncer: Syncer, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick fires at once; connections sync on their own
    loop {
        tick.tick().await;
        let mut peers = syncer.ctx.connected_peers().await;
        rand::seq::SliceRandom::shuffle(&mut peers[..], &mut rand::rng());
        peers.truncate(SYNC_FANOUT);
        futures::stream::iter(peers)
            .for_each_concurrent(SYNC_FANOUT, |peer| {
                let syncer = syncer.clone();
                async move {
                    if let Err(e) = syncer.sync_with(peer).await {
                        tracing::debug!("periodic sync with {peer} failed: {e}");
                    }
                }
            })
            .await;
    }
}

/// Meta keys under which the membership times are kept with the vault.
const META_MEMBER_SINCE: &str = "member_since_ms";
const META_LAST_SYNCED: &str = "last_synced_ms";

/// This node's standing in the vault, for the tombstone rule.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Membership {
    /// First sync with any peer (Unix ms; 0 = never).
    pub member_since_ms: u64,
    /// Last completed sync (Unix ms; 0 = never).
    pub last_synced_ms: u64,
    /// Away longer than the tombstone retention and not yet re-synced.
    pub resyncing: bool,
}

impl Membership {
    /// Reads the times kept with the vault and decides whether the node must
    /// re-sync before it offers its records to anyone.
    pub(crate) async fn load(vault: &peervault_store::Vault) -> Membership {
        let read = |key| async move { vault.meta_u64(key).await.ok().flatten().unwrap_or(0) };
        let member_since_ms = read(META_MEMBER_SINCE).await;
        let last_synced_ms = read(META_LAST_SYNCED).await;
        let away = peervault_store::version::unix_millis_now().saturating_sub(last_synced_ms);
        let resyncing = last_synced_ms != 0
            && away > vault.tombstone_retention().as_millis() as u64
            && vault.catalogue_len() > 0;
        if resyncing {
            tracing::warn!(
                "this node was away for {} days, longer than deletions are remembered ({} days): it re-syncs its catalogue before offering it to peers",
                away / 86_400_000,
                vault.tombstone_retention().as_secs() / 86_400
            );
        }
        Membership {
            member_since_ms,
            last_synced_ms,
            resyncing,
        }
    }
}

impl Syncer {
    /// This node's standing (see [`Membership`]).
    pub(crate) fn membership(&self) -> Membership {
        *self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a completed sync; `trusted` if the peer was not re-syncing itself.
    /// The time is written down every time: the re-sync rule treats every record
    /// older than it as known to the vault, so it must not lag behind.
    async fn synced(&self, trusted: bool) {
        let now = peervault_store::version::unix_millis_now();
        let first = {
            let mut m = self.membership.lock().unwrap_or_else(|p| p.into_inner());
            if trusted {
                m.resyncing = false;
            }
            let first = m.member_since_ms == 0;
            if first {
                m.member_since_ms = now;
            }
            m.last_synced_ms = now;
            first
        };
        let vault = &self.ctx.vault;
        if first && let Err(e) = vault.set_meta_u64(META_MEMBER_SINCE, now).await {
            tracing::warn!("could not record the membership time: {e}");
        }
        if let Err(e) = vault.set_meta_u64(META_LAST_SYNCED, now).await {
            tracing::warn!("could not record the sync time: {e}");
        }
    }
}
