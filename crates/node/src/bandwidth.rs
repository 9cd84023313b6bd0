//! Bandwidth limits: `--max-upload-rate` and `--max-download-rate`, node-wide.
//!
//! Every chunk that crosses to or from a peer passes one of two token buckets
//! ([`Limiter`]), whoever moves it: a user's put or get, replication, repair,
//! the GC restoring a chunk, a peer reading from this node. Chunks are what
//! fills a link (control messages are a few hundred bytes), and they are the
//! bytes the `bytes_sent`/`bytes_received` metrics count, so a limit holds in
//! the figures an operator watches. `bytes_sent` counts a chunk as it passes
//! the upload bucket, on its way out, so the limit holds in it exactly.
//! `bytes_received` counts a chunk when it arrives, a little after the
//! download bucket let it be asked for, so over a short window it can run
//! ahead of the rate by the chunks that were in flight.
//!
//! * **Upload**: a `PutChunk` waits for its bytes before it is sent; a chunk
//!   served to a peer waits before its answer goes.
//! * **Download**: a `GetChunk` takes a chunk's worth before it is asked and is
//!   settled with the real size when the answer comes; a `PutChunk` from a peer
//!   is taken before it is acknowledged, which holds back the sender's window.
//!
//! The bucket may go into debt by one chunk (a chunk larger than the burst must
//! still pass), and holds at most [`BURST`] of the rate, so over any window of
//! `w` seconds at most `rate * w + burst + one chunk` pass: within 3% over 5 s
//! at 20 MB/s.
//!
//! **Who goes first.** The maintenance workers (repair, GC) mark their work as
//! [`Class::Background`] (a task-local, so everything they call inherits it);
//! everything else is [`Class::Foreground`]. While any foreground transfer
//! waits, background ones do not take tokens: repair and GC yield to users.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The bucket holds at most this share of a second's worth of the rate.
const BURST: f64 = 0.1;
/// ... and at least this many bytes, so that small limits still pass a frame.
const MIN_BURST: f64 = 64.0 * 1024.0;

/// Whose transfer it is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Foreground,
    Background,
}

tokio::task_local! {
    static CLASS: Class;
}

/// The class of the transfer the current task makes.
pub(crate) fn current_class() -> Class {
    CLASS.try_with(|c| *c).unwrap_or(Class::Foreground)
}

/// Runs `work` as background traffic (repair, GC).
pub(crate) async fn in_background<F: Future>(work: F) -> F::Output {
    CLASS.scope(Class::Background, work).await
}

/// The limits in force (bytes per second; `None` is unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    pub upload_bytes_per_second: Option<u64>,
    pub download_bytes_per_second: Option<u64>,
}

/// A limit in words: "20.00 MB/s" or "unlimited".
pub fn describe(rate: Option<u64>) -> String {
    match rate {
        Some(rate) => format!("{}/s", crate::HumanSize(rate)),
        None => "unlimited".into(),
    }
}

/// Both directions' buckets.
#[derive(Debug)]
pub(crate) struct Bandwidth {
    pub(crate) upload: Limiter,
    pub(crate) download: Limiter,
}

impl Bandwidth {
    pub(crate) fn new(limits: RateLimits) -> Bandwidth {
        Bandwidth {
            upload: Limiter::new(limits.upload_bytes_per_second),
            download: Limiter::new(limits.download_bytes_per_second),
        }
    }

    pub(crate) fn limits(&self) -> RateLimits {
        RateLimits {
            upload_bytes_per_second: self.upload.rate(),
            download_bytes_per_second: self.download.rate(),
        }
    }

    pub(crate) fn set(&self, limits: RateLimits) {
        self.upload.set_rate(limits.upload_bytes_per_second);
        self.download.set_rate(limits.download_bytes_per_second);
    }
}

/// A token bucket with two classes of takers.
#[derive(Debug)]
pub(crate) struct Limiter {
    state: Mutex<Bucket>,
    /// Wakes waiters when the rate changes or a foreground taker leaves.
    changed: Notify,
}

#[derive(Debug)]
struct Bucket {
    rate: Option<u64>,
    tokens: f64,
    refilled: Instant,
    foreground_waiting: usize,
}

impl Bucket {
    fn burst(rate: u64) -> f64 {
        (rate as f64 * BURST).max(MIN_BURST)
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate as f64).min(Self::burst(rate));
        }
        self.refilled = now;
    }
}

/// Counts a foreground taker as waiting for as long as it lives.
struct Waiting<'a>(&'a Limiter);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().foreground_waiting -= 1;
        self.0.changed.notify_waiters();
    }
}

impl Limiter {
    pub(crate) fn new(rate: Option<u64>) -> Limiter {
        Limiter {
            state: Mutex::new(Bucket {
                rate: rate.filter(|r| *r > 0),
                tokens: 0.0,
                refilled: Instant::now(),
                foreground_waiting: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn rate(&self) -> Option<u64> {
        self.lock().rate
    }

    /// Changes the rate now (`None` or 0: unlimited); waiters see it at once.
    pub(crate) fn set_rate(&self, rate: Option<u64>) {
        {
            let mut bucket = self.lock();
            bucket.refill(Instant::now());
            bucket.rate = rate.filter(|r| *r > 0);
            if let Some(rate) = bucket.rate {
                bucket.tokens = bucket.tokens.min(Bucket::burst(rate));
            }
        }
        self.changed.notify_waiters();
    }

    /// Waits until `bytes` may pass for a transfer of the current task's class.
    pub(crate) async fn take(&self, bytes: u64) {
        self.take_as(bytes, current_class()).await
    }

    /// Waits until `bytes` may pass for a transfer of `class`.
    pub(crate) async fn take_as(&self, bytes: u64, class: Class) {
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            // Registered before the check, so that a wake-up between the check
            // and the wait is not lost.
            let changed = self.changed.notified();
            let pause = {
                let mut bucket = self.lock();
                let Some(rate) = bucket.rate else { return };
                bucket.refill(Instant::now());
                let others_first = match class {
                    Class::Foreground => false,
                    Class::Background => bucket.foreground_waiting > 0,
                };
                if bucket.tokens >= 0.0 && !others_first {
                    bucket.tokens -= bytes as f64;
                    return;
                }
                if class == Class::Foreground && waiting.is_none() {
                    bucket.foreground_waiting += 1;
                    waiting = Some(Waiting(self));
                }
                let short = (-bucket.tokens).max(0.0);
                Duration::from_secs_f64(short / rate as f64).max(Duration::from_millis(1))
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = changed => {}
            }
        }
    }

    /// Corrects what was taken by `delta` bytes (a chunk's real size after an
    /// estimate; a negative delta gives tokens back).
    pub(crate) fn settle(&self, delta: i64) {
        let mut bucket = self.lock();
        if let Some(rate) = bucket.rate {
            bucket.tokens = (bucket.tokens - delta as f64).min(Bucket::burst(rate));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const MB: u64 = 1 << 20;

    #[tokio::test(start_paused = true)]
    async fn the_rate_holds_over_every_window() {
        let limiter = Limiter::new(Some(4 * MB));
        let start = tokio::time::Instant::now();
        let mut passed = Vec::new();
        for _ in 0..60 {
            limiter.take_as(MB, Class::Foreground).await;
            passed.push(start.elapsed().as_secs_f64());
        }
        // 60 MB at 4 MB/s: 15 s, less what the first burst lets through.
        assert!(passed[59] >= 14.5, "{}", passed[59]);
        for (i, t0) in passed.iter().enumerate() {
            for (j, t1) in passed.iter().enumerate().skip(i) {
                let bytes = ((j - i + 1) as u64 * MB) as f64;
                let allowed = 4.0 * MB as f64 * (t1 - t0) + 4.0 * MB as f64 * BURST + MB as f64;
                assert!(bytes <= allowed + 1.0, "{bytes} in {}s", t1 - t0);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn background_yields_to_foreground() {
        let limiter = Arc::new(Limiter::new(Some(MB)));
        let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let mut tasks = Vec::new();
        for (i, class) in [Class::Foreground, Class::Background]
            .into_iter()
            .enumerate()
        {
            for _ in 0..3 {
                let (limiter, counts) = (limiter.clone(), counts.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        limiter.take_as(64 * 1024, class).await;
                        counts[i].fetch_add(64 * 1024, Ordering::Relaxed);
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (fg, bg) = (
            counts[0].load(Ordering::Relaxed),
            counts[1].load(Ordering::Relaxed),
        );
        assert!(fg >= 9 * MB, "foreground got {fg}");
        assert!(bg <= MB / 2, "background got {bg} while users waited");
        // Users gone: the background gets the link.
        for task in tasks.drain(..3) {
            task.abort();
        }
        let before = counts[1].load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(counts[1].load(Ordering::Relaxed) - before >= 4 * MB);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_to_those_waiting_and_none_is_unlimited() {
        let limiter = Arc::new(Limiter::new(Some(1024)));
        limiter.take_as(10 * MB, Class::Foreground).await; // deep in debt now
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.take_as(1, Class::Foreground).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        limiter.set_rate(None);
        tokio::time::timeout(Duration::from_millis(10), waiter)
            .await
            .expect("released by the change")
            .unwrap();
        limiter.take_as(100 * MB, Class::Background).await;
    }

    #[tokio::test]
    async fn background_work_is_marked_as_such() {
        assert_eq!(current_class(), Class::Foreground);
        assert_eq!(
            in_background(async { current_class() }).await,
            Class::Background
        );
    }
}
