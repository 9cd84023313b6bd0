//! Every task a node starts, tracked and stopped with it.
//!
//! Tasks started with a bare `tokio::spawn` (a peer's request, a chunk lane, a
//! write's streaming to its holders) used to outlive
//! [`Node::shutdown`](crate::Node::shutdown): each held a clone of the node, hence the vault and its
//! data-dir lock, for as long as it ran, and a node restarted on the same data dir
//! found it still locked. Now every task goes through one [`Tasks`]: shutdown
//! cancels them all and waits for them, so when it returns nothing of the node
//! runs any more.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Starts tasks that end when the node stops. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `work` until it ends or the node stops.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Detached: the tracker still knows it, and stop waits for it.
        drop(self.spawn_joinable(work));
    }

    /// Runs `work` until it ends or the node stops; the handle gives its output,
    /// or `None` if the node stopped first.
    pub fn spawn_joinable<F, T>(&self, work: F) -> JoinHandle<Option<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                // The stop first: work started after it never runs, even if it
                // could finish at once.
                biased;
                _ = stop.cancelled() => None,
                output = work => Some(output),
            }
        })
    }

    /// Cancels every task, refuses new ones, and waits for them (at most `grace`);
    /// false if some were still running when it gave up.
    pub async fn stop(&self, grace: std::time::Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }

    /// How many tasks run now.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn stopping_cancels_every_task_and_drops_what_it_held() {
        let tasks = Tasks::default();
        let held = Arc::new(());
        for _ in 0..10 {
            let held = held.clone();
            tasks.spawn(async move {
                let _held = held;
                std::future::pending::<()>().await;
            });
        }
        let joined = tasks.spawn_joinable(async { 7 });
        assert_eq!(joined.await.unwrap(), Some(7));
        assert_eq!(Arc::strong_count(&held), 11);
        assert!(tasks.stop(Duration::from_secs(5)).await);
        assert_eq!(Arc::strong_count(&held), 1, "every task let go");
        assert_eq!(tasks.running(), 0);
        // After the stop, new work never runs.
        let late = tasks.spawn_joinable(async { 8 });
        assert_eq!(late.await.unwrap(), None);
    }
}
