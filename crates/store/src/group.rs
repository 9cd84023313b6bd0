//! Group commit: many small durable writes share one directory fsync and one
//! metadata transaction.
//!
//! Blobs from peers arrive one per request, several at a time. Each must be durable
//! (its file fsynced, the rename fsynced through its directory, its record committed)
//! before it is acknowledged. Doing the last two per blob costs two extra fsyncs per
//! MiB. Instead, the first caller to arrive becomes the leader and flushes whatever
//! has queued up, then anything that queued meanwhile; the others wait for the
//! batch that contains their item. No item is acknowledged before its batch is
//! durable, and a failed flush fails every item in it.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A queue of items committed in batches.
#[derive(Debug)]
pub struct GroupCommit<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
}

#[derive(Debug)]
struct State<T> {
    queue: Vec<T>,
    /// Number of the batch now being collected.
    collecting: u64,
    leader: bool,
    /// Outcome of finished batches not yet collected by all their callers.
    done: HashMap<u64, Result<(), String>>,
    waiting: HashMap<u64, usize>,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                collecting: 0,
                leader: false,
                done: HashMap::new(),
                waiting: HashMap::new(),
            }),
            finished: Condvar::new(),
        }
    }
}

impl<T> GroupCommit<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` and returns once a batch containing it has been flushed by
    /// `flush` (run by whichever caller leads; never concurrently with itself).
    pub fn commit(
        &self,
        item: T,
        flush: impl Fn(Vec<T>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut state = self.lock();
        let batch = state.collecting;
        state.queue.push(item);
        *state.waiting.entry(batch).or_insert(0) += 1;
        if !state.leader {
            state.leader = true;
            loop {
                let items = std::mem::take(&mut state.queue);
                let this = state.collecting;
                state.collecting += 1;
                drop(state);
                let outcome = flush(items);
                state = self.lock();
                state.done.insert(this, outcome);
                self.finished.notify_all();
                if state.queue.is_empty() {
                    state.leader = false;
                    break;
                }
            }
        }
        while !state.done.contains_key(&batch) {
            state = self.finished.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let outcome = state.done.get(&batch).cloned().unwrap_or(Ok(()));
        let left = state.waiting.get_mut(&batch).map(|n| {
            *n -= 1;
            *n
        });
        if left == Some(0) {
            state.waiting.remove(&batch);
            state.done.remove(&batch);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_items_share_flushes_and_all_are_flushed() {
        let group = Arc::new(GroupCommit::<u32>::default());
        let flushed = Arc::new(Mutex::new(Vec::new()));
        let flushes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (group, flushed, flushes) = (group.clone(), flushed.clone(), flushes.clone());
                std::thread::spawn(move || {
                    group
                        .commit(i, |items| {
                            flushes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            flushed.lock().unwrap().extend(items);
                            Ok(())
                        })
                        .unwrap();
                    // Once commit returns, the item must be flushed.
                    assert!(flushed.lock().unwrap().contains(&i));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all = flushed.lock().unwrap().clone();
        all.sort();
        assert_eq!(all, (0..32).collect::<Vec<_>>());
        assert!(
            flushes.load(Ordering::SeqCst) < 32,
            "items should share flushes"
        );
        assert!(group.lock().done.is_empty() && group.lock().waiting.is_empty());
    }

    #[test]
    fn a_failed_flush_fails_its_items() {
        let group = GroupCommit::<u32>::default();
        let err = group.commit(1, |_| Err("disk full".into())).unwrap_err();
        assert_eq!(err, "disk full");
        assert!(group.commit(2, |_| Ok(())).is_ok());
    }
}
