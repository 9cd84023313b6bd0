//! The last hour of traffic, one point every [`SAMPLE_EVERY`], kept by the node
//! so that the dashboard's chart survives a reload (it used to start empty each
//! time the page was opened).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// How often a point is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Points kept: an hour.
pub const POINTS: usize = 720;

/// Bytes per second sent to and received from peers (chunk bytes, as
/// `bytes_sent`/`bytes_received`) over the interval that ended at `unix_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThroughputPoint {
    pub unix_ms: u64,
    pub sent_per_second: f64,
    pub received_per_second: f64,
}

/// The history, shared by the sampler and the readers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    points: Arc<Mutex<VecDeque<ThroughputPoint>>>,
}

impl Throughput {
    pub(crate) fn points(&self) -> Vec<ThroughputPoint> {
        self.lock().iter().copied().collect()
    }

    fn push(&self, point: ThroughputPoint) {
        let mut points = self.lock();
        if points.len() == POINTS {
            points.pop_front();
        }
        points.push_back(point);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ThroughputPoint>> {
        self.points.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples `metrics` every [`SAMPLE_EVERY`] until the node stops.
    pub(crate) async fn sample(self, ctx: Arc<crate::context::Context>) {
        let totals = |m: &Metrics| (m.bytes_sent.get(), m.bytes_received.get());
        let mut last = (totals(&ctx.metrics), tokio::time::Instant::now());
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = (totals(&ctx.metrics), tokio::time::Instant::now());
            let seconds = now.1.duration_since(last.1).as_secs_f64().max(0.001);
            self.push(ThroughputPoint {
                unix_ms: peervault_store::version::unix_millis_now(),
                sent_per_second: now.0.0.saturating_sub(last.0.0) as f64 / seconds,
                received_per_second: now.0.1.saturating_sub(last.0.1) as f64 / seconds,
            });
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_is_kept_and_no_more() {
        let history = Throughput::default();
        for i in 0..POINTS as u64 + 10 {
            history.push(ThroughputPoint {
                unix_ms: i,
                sent_per_second: 1.0,
                received_per_second: 0.0,
            });
        }
        let points = history.points();
        assert_eq!(points.len(), POINTS);
        assert_eq!(points[0].unix_ms, 10);
    }
}
