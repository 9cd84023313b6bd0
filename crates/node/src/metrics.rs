//! The node's metrics, kept in a `prometheus-client` registry.
//!
//! Counters are bumped where the events happen; figures that are states rather
//! than events (peers, storage, uptime) are set from their source of truth right
//! before the registry is read ([`Node::metrics_text`]), so a scrape never shows
//! a stale or made-up number. Metric names follow the original where it had them
//! (`peervault_peers_discovered`, ...); the rest are prefixed the same way.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::maintenance::GcSummary;
use crate::node::Node;

/// Every metric of one node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) peers_connected: Gauge,
    pub(crate) peers_discovered: Gauge,
    pub(crate) storage_used_bytes: Gauge,
    pub(crate) storage_total_bytes: Gauge,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            peers_connected: Gauge::default(),
            peers_discovered: Gauge::default(),
            storage_used_bytes: Gauge::default(),
            storage_total_bytes: Gauge::default(),
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
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "peervault_peers_connected",
            "Current number of connected peers",
            m.peers_connected.clone(),
        );
        r.register(
            "peervault_peers_discovered",
            "Distinct peers known through any discovery method",
            m.peers_discovered.clone(),
        );
        r.register(
            "peervault_storage_used_bytes",
            "Bytes of chunk blobs stored on this node",
            m.storage_used_bytes.clone(),
        );
        r.register(
            "peervault_storage_total_bytes",
            "Storage quota of this node in bytes",
            m.storage_total_bytes.clone(),
        );
        r.register(
            "peervault_storage_utilization",
            "Storage used, percent of the quota (0-100)",
            m.storage_utilization.clone(),
        );
        r.register(
            "peervault_uptime_seconds",
            "Seconds since the node started",
            m.uptime_seconds.clone(),
        );
        r.register(
            "peervault_gc_runs",
            "Integrity GC runs completed",
            m.gc_runs.clone(),
        );
        r.register(
            "peervault_gc_duration_seconds",
            "Duration of integrity GC runs",
            m.gc_duration.clone(),
        );
        r.register(
            "peervault_chunks_checked",
            "Chunks verified (hash and tag) by the integrity GC",
            m.chunks_checked.clone(),
        );
        r.register(
            "peervault_chunks_corrupted",
            "Chunks found damaged or missing by the integrity GC",
            m.chunks_corrupted.clone(),
        );
        r.register(
            "peervault_chunks_quarantined",
            "Damaged chunks moved to quarantine",
            m.chunks_quarantined.clone(),
        );
        r.register(
            "peervault_chunks_restored",
            "Damaged chunks replaced by a good copy from a peer",
            m.chunks_restored.clone(),
        );
        r.register(
            "peervault_chunks_removed",
            "Orphaned chunks and temporary files removed by the GC",
            m.chunks_removed.clone(),
        );
        r.register(
            "peervault_tombstones_collected",
            "Deletion records removed after the retention period",
            m.tombstones_collected.clone(),
        );
        r.register(
            "peervault_files_repaired",
            "Copies of files made by the repair worker",
            m.files_repaired.clone(),
        );
        r.register(
            "peervault_files_under_replicated",
            "Files held here with fewer live copies than the target, after the last repair round",
            m.files_under_replicated.clone(),
        );
        Self { registry, ..m }
    }

    pub(crate) fn gc_finished(&self, s: &GcSummary) {
        self.gc_runs.inc();
        self.gc_duration.observe(s.duration_ms as f64 / 1000.0);
        self.chunks_checked.inc_by(s.checked as u64);
        self.chunks_corrupted.inc_by(s.corrupted as u64);
        self.chunks_quarantined.inc_by(s.corrupted as u64);
        self.chunks_restored.inc_by(s.repaired as u64);
        self.chunks_removed
            .inc_by((s.removed + s.temp_removed) as u64);
        self.tombstones_collected
            .inc_by(s.tombstones_collected as u64);
    }

    pub(crate) fn copies_repaired(&self, n: usize) {
        self.files_repaired.inc_by(n as u64);
    }

    pub(crate) fn set_under_replicated(&self, n: usize) {
        self.files_under_replicated.set(n as i64);
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Node {
    /// Every metric in the Prometheus text format, with the state figures (peers,
    /// storage, uptime) read just now.
    pub async fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        let discovery = self.inner.net.discovery().await;
        m.peers_connected
            .set(discovery.known.iter().filter(|p| p.connected).count() as i64);
        m.peers_discovered.set(discovery.known.len() as i64);
        let quota = self.quota();
        m.storage_used_bytes.set(quota.used_bytes as i64);
        m.storage_total_bytes.set(quota.total_bytes as i64);
        m.storage_utilization.set(quota.utilization_percent);
        m.uptime_seconds
            .set(self.inner.started.elapsed().as_secs_f64());
        m.encode()
    }
}
