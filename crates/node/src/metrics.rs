//! The node's metrics, kept in a `prometheus-client` registry.
//!
//! Counters are bumped where the events happen; figures that are states rather
//! than events (peers, storage, uptime) are set from their source of truth right
//! before the registry is read ([`crate::Node::metrics_text`]), so a scrape never shows
//! a stale or made-up number. Metric names follow the original where it had them
//! (`peervault_peers_discovered`, ...); the rest are prefixed the same way.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use serde::{Deserialize, Serialize};

use crate::quota::QuotaStatus;
use crate::views::{GcSummary, PeerStatus, RepairRound};

/// The label of per-peer metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

/// Label of the offence counter: what kind of invalid data a peer sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OffenceLabel {
    pub kind: String,
}

/// Label of the error counter: what failed (`disk`, `integrity`, `peers`, `other`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Label of the refusal counter: why a request was refused (`not_found`,
/// `bad_name`, `quota`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// What can fail in the node itself: the alerts watch these.
const ERROR_KINDS: [&str; 4] = ["disk", "integrity", "peers", "other"];
/// Why a request may be refused: the caller's to fix, not the node's.
const REFUSAL_REASONS: [&str; 3] = ["not_found", "bad_name", "quota"];

/// How an error of an operation asked of the node is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A failure of the node, of this kind.
    Failure(&'static str),
    /// A refusal of the request, for this reason.
    Refusal(&'static str),
}

/// Failures of the node (disk, integrity, peers) apart from refusals of what
/// was asked (no such file, a bad name, no room): a typo must not look like a
/// failing disk to the alerts.
pub(crate) fn outcome(error: &peervault_store::StoreError) -> Outcome {
    use peervault_store::StoreError as E;
    match error {
        E::NotFound { .. } => Outcome::Refusal("not_found"),
        E::InvalidName(_) => Outcome::Refusal("bad_name"),
        E::QuotaExceeded { .. } => Outcome::Refusal("quota"),
        E::Io { .. } | E::Database(_) => Outcome::Failure("disk"),
        E::Integrity { .. } | E::CorruptRecord { .. } => Outcome::Failure("integrity"),
        E::Unavailable { .. } => Outcome::Failure("peers"),
        _ => Outcome::Failure("other"),
    }
}

/// Every metric of one node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) files_stored: Counter,
    pub(crate) files_retrieved: Counter,
    pub(crate) files_deleted: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) bytes_received: Counter,
    errors: Family<KindLabel, Counter>,
    requests_refused: Family<ReasonLabel, Counter>,
    pub(crate) replicas_accepted: Counter,
    pub(crate) peer_request_failures: Counter,
    pub(crate) request_duration: Histogram,
    pub(crate) chunk_transfer_duration: Histogram,
    pub(crate) peer_rtt: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    pub(crate) peer_healthy: Family<PeerLabel, Gauge>,
    pub(crate) peers_connected: Gauge,
    pub(crate) peers_discovered: Gauge,
    pub(crate) storage_used_bytes: Gauge,
    pub(crate) storage_total_bytes: Gauge,
    pub(crate) transfer_memory_bytes: Gauge,
    pub(crate) transfer_memory_budget_bytes: Gauge,
    pub(crate) transfer_memory_waits: Counter,
    pub(crate) storage_utilization: Gauge<f64, AtomicU64>,
    pub(crate) uptime_seconds: Gauge<f64, AtomicU64>,
    gc_runs: Counter,
    gc_duration: Histogram,
    chunks_checked: Counter,
    chunks_corrupted: Counter,
    chunks_quarantined: Counter,
    chunks_restored: Counter,
    chunks_removed: Counter,
    tombstones_collected: Counter,
    files_repaired: Counter,
    files_under_replicated: Gauge,
    pub(crate) peer_offences: Family<OffenceLabel, Counter>,
    pub(crate) peer_bans: Counter,
    pub(crate) stale_records: Counter,
    pub(crate) catalogue_syncs: Counter,
    repair_rounds: Counter,
    /// The last failure of the disk and when it happened.
    last_disk_error: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Every metric is named peervault_<name>.
        let mut registry = Registry::with_prefix("peervault");
        let m = Self {
            files_stored: Counter::default(),
            files_retrieved: Counter::default(),
            files_deleted: Counter::default(),
            bytes_sent: Counter::default(),
            bytes_received: Counter::default(),
            errors: Family::default(),
            requests_refused: Family::default(),
            replicas_accepted: Counter::default(),
            peer_request_failures: Counter::default(),
            request_duration: Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
            chunk_transfer_duration: Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
            peer_rtt: Family::default(),
            peer_healthy: Family::default(),
            peers_connected: Gauge::default(),
            peers_discovered: Gauge::default(),
            storage_used_bytes: Gauge::default(),
            storage_total_bytes: Gauge::default(),
            transfer_memory_bytes: Gauge::default(),
            transfer_memory_budget_bytes: Gauge::default(),
            transfer_memory_waits: Counter::default(),
            storage_utilization: Gauge::default(),
            uptime_seconds: Gauge::default(),
            gc_runs: Counter::default(),
            gc_duration: Histogram::new(exponential_buckets(0.01, 4.0, 10)),
            chunks_checked: Counter::default(),
            chunks_corrupted: Counter::default(),
            chunks_quarantined: Counter::default(),
            chunks_restored: Counter::default(),
            chunks_removed: Counter::default(),
            tombstones_collected: Counter::default(),
            files_repaired: Counter::default(),
            files_under_replicated: Gauge::default(),
            peer_offences: Family::default(),
            peer_bans: Counter::default(),
            stale_records: Counter::default(),
            last_disk_error: std::sync::Mutex::new(None),
            catalogue_syncs: Counter::default(),
            repair_rounds: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "catalogue_syncs",
            "Catalogue syncs with peers completed (at connect and in periodic rounds)",
            m.catalogue_syncs.clone(),
        );
        r.register(
            "repair_rounds",
            "Rounds of the repair worker completed",
            m.repair_rounds.clone(),
        );
        r.register(
            "files_stored",
            "Files stored through this node",
            m.files_stored.clone(),
        );
        r.register(
            "files_retrieved",
            "Files read through this node",
            m.files_retrieved.clone(),
        );
        r.register(
            "files_deleted",
            "Files deleted through this node",
            m.files_deleted.clone(),
        );
        r.register(
            "bytes_sent",
            "Chunk bytes (encrypted) sent to peers",
            m.bytes_sent.clone(),
        );
        r.register(
            "bytes_received",
            "Chunk bytes (encrypted) received from peers",
            m.bytes_received.clone(),
        );
        r.register(
            "errors",
            "Failures of the node by kind (disk, integrity, peers, other): stores, reads and deletes that failed, and damage GC could not repair. Refused requests are counted apart",
            m.errors.clone(),
        );
        r.register(
            "requests_refused",
            "Requests refused by reason (not_found, bad_name, quota): the caller's to fix, not failures of the node",
            m.requests_refused.clone(),
        );
        // Every kind and reason appears from the start (at 0), so that the
        // alerts and dashboards see the series before the first event.
        for kind in ERROR_KINDS {
            let _ = m.errors.get_or_create(&KindLabel { kind: kind.into() });
        }
        for reason in REFUSAL_REASONS {
            let _ = m.requests_refused.get_or_create(&ReasonLabel {
                reason: reason.into(),
            });
        }
        r.register(
            "replicas_accepted",
            "Copies of files this node agreed to hold for peers",
            m.replicas_accepted.clone(),
        );
        r.register(
            "peer_request_failures",
            "Requests to peers that failed or timed out",
            m.peer_request_failures.clone(),
        );
        r.register(
            "peer_request_duration_seconds",
            "Round trip of requests to peers",
            m.request_duration.clone(),
        );
        r.register(
            "chunk_transfer_duration_seconds",
            "Time to send one chunk to a peer or fetch one from it",
            m.chunk_transfer_duration.clone(),
        );
        r.register(
            "peer_rtt_seconds",
            "Ping round trip per connected peer",
            m.peer_rtt.clone(),
        );
        r.register(
            "peer_healthy",
            "1 if the connected peer answered recently and fast, else 0",
            m.peer_healthy.clone(),
        );
        r.register(
            "peers_connected",
            "Current number of connected peers",
            m.peers_connected.clone(),
        );
        r.register(
            "peers_discovered",
            "Distinct peers known through any discovery method",
            m.peers_discovered.clone(),
        );
        r.register(
            "storage_used_bytes",
            "Bytes of chunk blobs stored on this node",
            m.storage_used_bytes.clone(),
        );
        r.register(
            "storage_total_bytes",
            "Storage quota of this node in bytes",
            m.storage_total_bytes.clone(),
        );
        r.register(
            "transfer_memory_bytes",
            "Bytes of chunk buffers held by transfers now (S3, CLI, peers, repair)",
            m.transfer_memory_bytes.clone(),
        );
        r.register(
            "transfer_memory_budget_bytes",
            "The most bytes of chunk buffers transfers may hold together (--transfer-memory)",
            m.transfer_memory_budget_bytes.clone(),
        );
        r.register(
            "transfer_memory_waits",
            "Times a transfer waited for buffers because the budget was spent",
            m.transfer_memory_waits.clone(),
        );
        r.register(
            "storage_utilization",
            "Storage used, percent of the quota (0-100)",
            m.storage_utilization.clone(),
        );
        r.register(
            "uptime_seconds",
            "Seconds since the node started",
            m.uptime_seconds.clone(),
        );
        r.register("gc_runs", "Integrity GC runs completed", m.gc_runs.clone());
        r.register(
            "gc_duration_seconds",
            "Duration of integrity GC runs",
            m.gc_duration.clone(),
        );
        r.register(
            "chunks_checked",
            "Chunks verified (hash and tag) by the integrity GC",
            m.chunks_checked.clone(),
        );
        r.register(
            "chunks_corrupted",
            "Chunks found damaged or missing, by a read or by the integrity GC",
            m.chunks_corrupted.clone(),
        );
        r.register(
            "chunks_quarantined",
            "Damaged chunks moved to quarantine",
            m.chunks_quarantined.clone(),
        );
        r.register(
            "chunks_restored",
            "Damaged chunks replaced by a good copy from a peer",
            m.chunks_restored.clone(),
        );
        r.register(
            "chunks_removed",
            "Orphaned chunks and unrecorded space removed by the GC",
            m.chunks_removed.clone(),
        );
        r.register(
            "tombstones_collected",
            "Deletion records removed after the retention period",
            m.tombstones_collected.clone(),
        );
        r.register(
            "files_repaired",
            "Copies of files made by the repair worker",
            m.files_repaired.clone(),
        );
        r.register(
            "files_under_replicated",
            "Files held here with fewer live copies than the target, after the last repair round",
            m.files_under_replicated.clone(),
        );
        r.register(
            "peer_offences",
            "Invalid data received from peers and refused (bad_chunk, bad_record, malformed)",
            m.peer_offences.clone(),
        );
        r.register(
            "peer_bans",
            "Peers disconnected and banned for a while after repeated offences",
            m.peer_bans.clone(),
        );
        r.register(
            "stale_records",
            "Catalogue records from peers older than the version held here (ignored)",
            m.stale_records.clone(),
        );
        Self { registry, ..m }
    }

    pub(crate) fn gc_finished(&self, s: &GcSummary) {
        self.gc_runs.inc();
        self.gc_duration.observe(s.duration_ms as f64 / 1000.0);
        self.chunks_checked.inc_by(s.checked as u64);
        self.chunks_removed.inc_by(s.removed as u64);
        self.tombstones_collected
            .inc_by(s.tombstones_collected as u64);
        if s.corrupted > s.repaired {
            self.failure("integrity");
        }
    }

    /// Sets the damage counters from the vault's, which every path that finds,
    /// quarantines or restores a chunk counts (reads, the GC, restores).
    pub(crate) fn set_damage(&self, d: peervault_store::DamageCounts) {
        for (counter, value) in [
            (&self.chunks_corrupted, d.corrupted),
            (&self.chunks_quarantined, d.quarantined),
            (&self.chunks_restored, d.restored),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    fn failure(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Failures of the node, all kinds.
    pub fn errors_total(&self) -> u64 {
        ERROR_KINDS
            .iter()
            .map(|kind| {
                self.errors
                    .get_or_create(&KindLabel {
                        kind: (*kind).into(),
                    })
                    .get()
            })
            .sum()
    }

    /// Counts one operation that ended in `error`: a failure of the node or a
    /// refusal of the request. A failure of the disk is also remembered for
    /// `/health`.
    pub(crate) fn failed(&self, error: &peervault_store::StoreError) {
        match outcome(error) {
            Outcome::Failure(kind) => self.failure(kind),
            Outcome::Refusal(reason) => {
                self.requests_refused
                    .get_or_create(&ReasonLabel {
                        reason: reason.into(),
                    })
                    .inc();
            }
        }
        if error.is_disk_error() {
            *self
                .last_disk_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                Some((std::time::Instant::now(), error.to_string()));
        }
    }

    pub(crate) fn copies_repaired(&self, n: usize) {
        self.files_repaired.inc_by(n as u64);
    }

    /// A repair round ended, leaving `short` files held here short of copies.
    pub(crate) fn repair_round_done(&self, short: usize) {
        self.files_under_replicated.set(short as i64);
        self.repair_rounds.inc();
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The original's JSON shape (`/metrics/json`), with what an operator needs
/// beyond it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    pub files: FileCounts,
    pub network: NetworkFigures,
    pub storage: StorageFigures,
    pub errors: ErrorCount,
    pub system: SystemFigures,
    pub node: NodeFigures,
    pub replication: ReplicationFigures,
    pub gc: GcFigures,
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileCounts {
    pub stored: u64,
    pub retrieved: u64,
    pub deleted: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkFigures {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub peers_connected: usize,
    pub peers_discovered: usize,
    pub request_failures: u64,
    /// Invalid data refused from peers, and bans that followed.
    #[serde(default)]
    pub offences: u64,
    #[serde(default)]
    pub bans: u64,
    /// Catalogue syncs with peers completed.
    #[serde(default)]
    pub catalogue_syncs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageFigures {
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub utilization_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorCount {
    /// Failures of the node (what the alerts watch).
    pub total: u64,
    /// The same by kind: disk, integrity, peers, other.
    #[serde(default)]
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// Requests refused (no such file, a bad name, no room), by reason: not
    /// failures of the node.
    #[serde(default)]
    pub refused: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemFigures {
    pub uptime_seconds: f64,
    /// RFC 3339, UTC.
    pub start_time: String,
    /// When these figures were read (RFC 3339, UTC).
    pub last_update: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeFigures {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicationFigures {
    /// The replica setting ("3" or "all").
    pub target: String,
    pub files_held: usize,
    /// Files held here short of copies after the last repair round.
    pub under_replicated: usize,
    pub copies_repaired: u64,
    pub replicas_accepted: u64,
    /// Rounds of the repair worker completed.
    #[serde(default)]
    pub repair_rounds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcFigures {
    pub runs: u64,
    pub chunks_corrupted: u64,
    /// Damaged chunks moved to quarantine.
    #[serde(default)]
    pub chunks_quarantined: u64,
    pub chunks_restored: u64,
    pub chunks_removed: u64,
    pub last: Option<GcSummary>,
}

/// `/health`: healthy, or degraded with the reasons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// "healthy" or "degraded".
    pub status: String,
    pub uptime_seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub reasons: Vec<String>,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// A Unix time in milliseconds as RFC 3339, to the second.
pub(crate) fn rfc3339(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What a snapshot shows beside the counters: the node's state, read by the
/// node from its components.
#[derive(Debug)]
pub(crate) struct NodeFacts {
    pub peers: Vec<PeerStatus>,
    pub discovered: usize,
    pub quota: QuotaStatus,
    pub uptime_seconds: f64,
    pub started_unix_ms: u64,
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub replicas: String,
    pub last_gc: Option<GcSummary>,
    pub last_repair: Option<RepairRound>,
}

impl Metrics {
    /// The metrics as `/metrics/json` and `metrics --json` show them.
    pub(crate) fn snapshot(&self, facts: NodeFacts) -> MetricsSnapshot {
        let m = self;
        MetricsSnapshot {
            files: FileCounts {
                stored: m.files_stored.get(),
                retrieved: m.files_retrieved.get(),
                deleted: m.files_deleted.get(),
            },
            network: NetworkFigures {
                bytes_sent: m.bytes_sent.get(),
                bytes_received: m.bytes_received.get(),
                peers_connected: facts.peers.len(),
                peers_discovered: facts.discovered,
                request_failures: m.peer_request_failures.get(),
                offences: ["bad_chunk", "bad_record", "malformed"]
                    .iter()
                    .map(|kind| {
                        m.peer_offences
                            .get_or_create(&OffenceLabel {
                                kind: kind.to_string(),
                            })
                            .get()
                    })
                    .sum(),
                bans: m.peer_bans.get(),
                catalogue_syncs: m.catalogue_syncs.get(),
            },
            storage: StorageFigures {
                used_bytes: facts.quota.used_bytes,
                total_bytes: facts.quota.total_bytes,
                utilization_percent: facts.quota.utilization_percent,
            },
            errors: ErrorCount {
                total: m.errors_total(),
                by_kind: ERROR_KINDS
                    .iter()
                    .map(|kind| {
                        let label = KindLabel {
                            kind: (*kind).into(),
                        };
                        (kind.to_string(), m.errors.get_or_create(&label).get())
                    })
                    .collect(),
                refused: REFUSAL_REASONS
                    .iter()
                    .map(|reason| {
                        let label = ReasonLabel {
                            reason: (*reason).into(),
                        };
                        (
                            reason.to_string(),
                            m.requests_refused.get_or_create(&label).get(),
                        )
                    })
                    .collect(),
            },
            system: SystemFigures {
                uptime_seconds: facts.uptime_seconds,
                start_time: rfc3339(facts.started_unix_ms),
                last_update: rfc3339(peervault_store::version::unix_millis_now()),
            },
            node: NodeFigures {
                peer_id: facts.peer_id,
                listen_addrs: facts.listen_addrs,
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            replication: ReplicationFigures {
                target: facts.replicas,
                files_held: facts.last_repair.as_ref().map_or(0, |r| r.checked),
                under_replicated: m.files_under_replicated.get().max(0) as usize,
                copies_repaired: m.files_repaired.get(),
                replicas_accepted: m.replicas_accepted.get(),
                repair_rounds: m.repair_rounds.get(),
            },
            gc: GcFigures {
                runs: m.gc_runs.get(),
                chunks_corrupted: m.chunks_corrupted.get(),
                chunks_quarantined: m.chunks_quarantined.get(),
                chunks_restored: m.chunks_restored.get(),
                chunks_removed: m.chunks_removed.get(),
                last: facts.last_gc,
            },
            peers: facts.peers,
        }
    }

    /// `/health`: degraded, with reasons, when the node lacks the peers it
    /// expects (`lacks_peers`), holds files short of copies, had a disk error
    /// lately, or has damage the last GC (`last_gc`) could not repair.
    pub(crate) fn health(
        &self,
        lacks_peers: bool,
        last_gc: Option<&GcSummary>,
        uptime_seconds: f64,
    ) -> Health {
        let mut reasons = Vec::new();
        if lacks_peers {
            reasons.push(
                "no peers connected (this node has bootstrap peers or has been part of a vault)"
                    .to_string(),
            );
        }
        let short = self.files_under_replicated.get();
        if short > 0 {
            reasons.push(format!(
                "{} held here {} fewer copies than the replica target",
                plural(short as u64, "file"),
                if short == 1 { "has" } else { "have" }
            ));
        }
        let disk = self
            .last_disk_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((when, what)) = disk
            && when.elapsed() < DISK_ERROR_MEMORY
        {
            reasons.push(format!(
                "disk error {} s ago: {what}",
                when.elapsed().as_secs()
            ));
        }
        let unrepaired = last_gc.map_or(0, |gc| gc.corrupted.saturating_sub(gc.repaired));
        if unrepaired > 0 {
            reasons.push(format!(
                "{} could not be restored at the last integrity check",
                plural(unrepaired as u64, "damaged chunk")
            ));
        }
        Health {
            status: if reasons.is_empty() {
                "healthy"
            } else {
                "degraded"
            }
            .to_string(),
            uptime_seconds,
            reasons,
        }
    }
}

/// How long a disk error keeps `/health` degraded after the last one.
const DISK_ERROR_MEMORY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_what_it_expects_is_healthy() {
        let health = Metrics::new().health(false, None, 1.0);
        assert!(health.is_healthy(), "{health:?}");
        assert_eq!(health.status, "healthy");
    }

    #[test]
    fn each_problem_is_a_reason_to_be_degraded() {
        let m = Metrics::new();
        m.repair_round_done(2);
        let gc = GcSummary {
            corrupted: 3,
            repaired: 2,
            ..GcSummary::default()
        };
        let health = m.health(true, Some(&gc), 1.0);
        assert_eq!(health.status, "degraded");
        assert_eq!(health.reasons.len(), 3, "{:?}", health.reasons);
        assert!(health.reasons[0].starts_with("no peers connected"));
        assert_eq!(
            health.reasons[1],
            "2 files held here have fewer copies than the replica target"
        );
        assert_eq!(
            health.reasons[2],
            "1 damaged chunk could not be restored at the last integrity check"
        );
    }

    #[test]
    fn a_snapshot_shows_the_counters_and_the_facts() {
        let m = Metrics::new();
        m.files_stored.inc();
        m.bytes_sent.inc_by(10);
        let snapshot = m.snapshot(NodeFacts {
            peers: Vec::new(),
            discovered: 4,
            quota: QuotaStatus::new(5, 100),
            uptime_seconds: 2.0,
            started_unix_ms: 0,
            peer_id: "me".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/3000".into()],
            replicas: "3".into(),
            last_gc: None,
            last_repair: Some(RepairRound {
                checked: 7,
                ..RepairRound::default()
            }),
        });
        assert_eq!(snapshot.files.stored, 1);
        assert_eq!(snapshot.network.bytes_sent, 10);
        assert_eq!(snapshot.network.peers_discovered, 4);
        assert_eq!(snapshot.storage.used_bytes, 5);
        assert_eq!(snapshot.replication.files_held, 7);
        assert_eq!(snapshot.system.start_time, "1970-01-01T00:00:00Z");
    }
}
