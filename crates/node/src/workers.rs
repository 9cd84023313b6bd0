//! Background work in rounds, behind one trait.
//!
//! The integrity GC and the repair worker have the same shape (wait, do a round,
//! say what it did, wait again), and so will what later issues add: scrubbing,
//! rebalancing after a device is removed, re-encoding for erasure coding. Written
//! as [`Worker`]s they are started in one place ([`Workers::start`], every one a
//! tracked task, stopped with the node) and observed in one place: each has a
//! [`WorkerStatus`] (rounds done, running now or when the next is due, how long
//! the last took, what it did or why it failed) that `status` shows. Limits that
//! later apply to all of them (a pause, a rate) hook in here, once.
//!
//! After garage's `Worker` (`src/util/background/worker.rs`), much reduced: a
//! worker here does a whole round at a time and is told when to run by its
//! schedule, not by the work it finds.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::Result;
use crate::tasks::Tasks;

/// Work done in rounds in the background.
pub(crate) trait Worker: Send + Sync + 'static {
    /// Its name in `status` and the logs.
    fn name(&self) -> &'static str;
    /// How long after start the first round runs.
    fn first_round(&self) -> Duration;
    /// How long after one round ends the next begins.
    fn interval(&self) -> Duration;
    /// Does one round; says in a line what it did.
    fn round(&self) -> impl Future<Output = Result<String>> + Send;
}

/// What one worker is doing, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub name: String,
    /// "waiting" or "running".
    pub state: String,
    /// Rounds finished, failed ones included.
    pub rounds: u64,
    pub failures: u64,
    /// While waiting: seconds until the next round.
    pub next_round_in_seconds: Option<f64>,
    /// How long the last round took.
    pub last_duration_ms: Option<u64>,
    /// What the last round did, or why it failed.
    pub last_outcome: Option<String>,
    /// When the last round ended (Unix ms).
    pub last_finished_unix_ms: Option<u64>,
}

/// A worker's status and, while it waits, when its next round is due.
#[derive(Debug)]
struct Entry {
    status: WorkerStatus,
    next_at: Option<Instant>,
}

/// The node's workers (see the module docs). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workers {
    entries: Arc<Mutex<Vec<Arc<Mutex<Entry>>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Workers {
    /// Runs `worker` in rounds on `tasks` until the node stops.
    pub(crate) fn start(&self, tasks: &Tasks, worker: impl Worker) {
        let entry = Arc::new(Mutex::new(Entry {
            status: WorkerStatus {
                name: worker.name().to_string(),
                state: "waiting".into(),
                rounds: 0,
                failures: 0,
                next_round_in_seconds: None,
                last_duration_ms: None,
                last_outcome: None,
                last_finished_unix_ms: None,
            },
            next_at: None,
        }));
        lock(&self.entries).push(entry.clone());
        tasks.spawn(async move {
            let mut wait = worker.first_round();
            loop {
                {
                    let mut e = lock(&entry);
                    e.status.state = "waiting".into();
                    e.next_at = Some(Instant::now() + wait);
                }
                tokio::time::sleep(wait).await;
                wait = worker.interval();
                {
                    let mut e = lock(&entry);
                    e.status.state = "running".into();
                    e.next_at = None;
                }
                let started = Instant::now();
                let outcome = worker.round().await;
                let mut e = lock(&entry);
                e.status.rounds += 1;
                e.status.last_duration_ms = Some(started.elapsed().as_millis() as u64);
                e.status.last_finished_unix_ms = Some(peervault_store::version::unix_millis_now());
                e.status.last_outcome = Some(match outcome {
                    Ok(line) => line,
                    Err(why) => {
                        tracing::warn!("{} round failed: {why}", worker.name());
                        e.status.failures += 1;
                        format!("failed: {why}")
                    }
                });
            }
        });
    }

    /// Every worker's status, in the order they were started.
    pub(crate) fn statuses(&self) -> Vec<WorkerStatus> {
        let now = Instant::now();
        lock(&self.entries)
            .iter()
            .map(|entry| {
                let e = lock(entry);
                let mut status = e.status.clone();
                status.next_round_in_seconds = e
                    .next_at
                    .map(|at| at.saturating_duration_since(now).as_secs_f64());
                status
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::error::NodeError;

    /// Counts its rounds; every third one fails.
    struct Counter(Arc<AtomicU64>);

    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn first_round(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn round(&self) -> Result<String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            if n.is_multiple_of(3) {
                Err(NodeError::Invalid(format!("round {n} went wrong")))
            } else {
                Ok(format!("round {n} done"))
            }
        }
    }

    /// Lets the runtime run every task that can run now.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_runs_on_its_schedule_and_reports_each_round() {
        let tasks = Tasks::default();
        let workers = Workers::default();
        let count = Arc::new(AtomicU64::new(0));
        workers.start(&tasks, Counter(count.clone()));
        settle().await;
        let s = &workers.statuses()[0];
        assert_eq!(
            (s.name.as_str(), s.state.as_str(), s.rounds),
            ("counter", "waiting", 0)
        );
        assert_eq!(s.next_round_in_seconds, Some(5.0));

        tokio::time::sleep(Duration::from_secs(6)).await;
        let s = &workers.statuses()[0];
        assert_eq!((s.state.as_str(), s.rounds), ("running", 0), "{s:?}");
        assert_eq!(s.next_round_in_seconds, None);

        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        let s = &workers.statuses()[0];
        assert_eq!((s.state.as_str(), s.rounds, s.failures), ("waiting", 1, 0));
        assert_eq!(s.last_outcome.as_deref(), Some("round 1 done"));
        assert_eq!(s.last_duration_ms, Some(2000));
        // The next round comes an interval after this one ended.
        assert_eq!(s.next_round_in_seconds, Some(59.0));

        // Two more rounds: the third fails, is counted, and the worker goes on.
        tokio::time::sleep(Duration::from_secs(2 * 62)).await;
        settle().await;
        let s = &workers.statuses()[0];
        assert_eq!((s.rounds, s.failures), (3, 1), "{s:?}");
        assert_eq!(
            s.last_outcome.as_deref(),
            Some("failed: round 3 went wrong")
        );
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_node_runs_no_more_rounds() {
        let tasks = Tasks::default();
        let workers = Workers::default();
        let count = Arc::new(AtomicU64::new(0));
        workers.start(&tasks, Counter(count.clone()));
        assert!(tasks.stop(Duration::from_secs(1)).await);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
