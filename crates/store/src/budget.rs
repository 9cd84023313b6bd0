//! One memory budget for the bytes of transfers in flight.
//!
//! Every transfer holds chunk buffers while it runs: a write fills one, seals it,
//! appends it and hands it to the peers that take a copy; a read keeps a few
//! chunks ahead of its consumer. Measured before this budget, 32 concurrent
//! gets of 32 MiB took a node to 465 MiB: each stream's buffers were cheap on
//! their own and unbounded together. S3 clients run 4 to 16 transfers at once
//! by default, and many clients may share one gateway.
//!
//! So every chunk buffer of a transfer is paid for from one [`MemoryBudget`]
//! per node, whoever started the transfer (the S3 gateway, the CLI, repair),
//! before it is filled, and the payment ([`Lease`]) travels with the bytes
//! until the last copy of them is dropped (written to disk, acknowledged by the
//! peers, sent to the client). When the budget is spent, the next transfer
//! waits for bytes to come back: requests are slowed, never refused.
//!
//! Three rules keep waiting from deadlocking:
//! - A transfer waits only for the one buffer it needs to make progress, and
//!   only while every buffer it already holds can be released without it
//!   (downstream stages never wait on the budget). Deeper read-ahead is taken
//!   only when the budget has it free ([`MemoryBudget::try_lease`]).
//! - What a write holds for its whole life (its carry) comes from a share of
//!   its own ([`MemoryBudget::admit_write`]).
//! - What a node does for a peer (serving a chunk it asked for, storing a chunk
//!   it sent) never waits on the budget: two nodes whose budgets are full of
//!   writes copying to each other would otherwise each wait for the other.
//!   Those paths are bounded by their own windows instead.
//!
//! Waiters are served first come, first served (a tokio semaphore), so a large
//! request is not starved by a stream of small ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

/// The budget when nothing else is configured: with it, 64 concurrent S3 GETs
/// and 64 PUTs keep a node under 256 MiB resident (see `tests/blackbox/s3.rs`).
pub const DEFAULT_TRANSFER_MEMORY: u64 = 64 * 1024 * 1024;

/// The smallest budget the binary accepts: a few default chunks, and a carry
/// of one in its quarter for writes.
pub const MIN_TRANSFER_MEMORY: u64 = 8 * 1024 * 1024;

/// Bytes of transfer buffers a node may hold at once (see the module docs).
#[derive(Debug)]
pub struct MemoryBudget {
    /// Chunk buffers: three quarters of the budget.
    buffers: Share,
    /// The carries of writes (see [`MemoryBudget::admit_write`]): a quarter.
    carries: Share,
    /// Leases that had to wait for bytes to come back.
    waits: AtomicU64,
    /// The most bytes lent at once so far.
    peak: AtomicU64,
}

/// One part of a budget, lent out first come, first served.
#[derive(Debug)]
struct Share {
    permits: Arc<Semaphore>,
    total: u32,
}

impl Share {
    fn new(bytes: u64) -> Share {
        let total = bytes.clamp(1, u64::from(u32::MAX)) as u32;
        Share {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// `bytes` cut to the whole share, so that a large request waits for
    /// everything to come back instead of forever.
    fn clip(&self, bytes: usize) -> u32 {
        bytes.min(self.total as usize) as u32
    }

    fn try_lease(&self, want: u32) -> Option<Lease> {
        let permit = self.permits.clone().try_acquire_many_owned(want).ok()?;
        permit.forget();
        Some(self.lent(want))
    }

    async fn lease(&self, bytes: usize, waits: &AtomicU64) -> Lease {
        let want = self.clip(bytes);
        if let Some(lease) = self.try_lease(want) {
            return lease;
        }
        waits.fetch_add(1, Ordering::Relaxed);
        match self.permits.clone().acquire_many_owned(want).await {
            Ok(permit) => {
                permit.forget();
                self.lent(want)
            }
            // The semaphore is never closed; a lease of nothing is the safe answer.
            Err(_) => Lease::none(),
        }
    }

    fn lent(&self, bytes: u32) -> Lease {
        Lease {
            permits: Some(self.permits.clone()),
            bytes,
        }
    }

    fn in_use(&self) -> u64 {
        u64::from(self.total).saturating_sub(self.permits.available_permits() as u64)
    }
}

impl MemoryBudget {
    /// A budget of `bytes`: three quarters for buffers and one for carries,
    /// each share at most 4 GiB (a share counts in `u32` bytes).
    pub fn new(bytes: u64) -> Arc<Self> {
        let bytes = bytes.clamp(4, 4 * u64::from(u32::MAX));
        let carries = bytes / 4;
        Arc::new(Self {
            buffers: Share::new(bytes - carries),
            carries: Share::new(carries),
            waits: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// Pays for a chunk buffer of `bytes`, waiting until they are free. Call it
    /// only while every buffer already held can be released without this one
    /// (see the module docs).
    pub async fn lease(&self, bytes: usize) -> Lease {
        let lease = self.buffers.lease(bytes, &self.waits).await;
        self.note_peak();
        lease
    }

    /// Pays for `bytes` of buffers if they are free now (read-ahead beyond
    /// the chunk a read needs next).
    pub fn try_lease(&self, bytes: usize) -> Option<Lease> {
        let lease = self.buffers.try_lease(self.buffers.clip(bytes))?;
        self.note_peak();
        Some(lease)
    }

    /// Pays for the carry of a write: the bytes past one chunk's cut that
    /// begin the next, held from the write's first byte to its last. A write
    /// holding its carry then waits for chunk buffers; were carries paid from
    /// the same bytes as buffers, writes holding carries could spend the whole
    /// budget and wait forever for a buffer. Carries have a quarter of the
    /// budget to themselves, so a write waits here, holding nothing, until
    /// one comes back. A write pays for the carry it can need: a chunk, or
    /// the whole file if that is smaller.
    pub async fn admit_write(&self, bytes: usize) -> Lease {
        let lease = self.carries.lease(bytes, &self.waits).await;
        self.note_peak();
        lease
    }

    fn note_peak(&self) {
        self.peak.fetch_max(self.in_use(), Ordering::Relaxed);
    }

    /// The whole budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.buffers.total) + u64::from(self.carries.total)
    }

    /// Bytes lent out now.
    pub fn in_use(&self) -> u64 {
        self.buffers.in_use() + self.carries.in_use()
    }

    /// Leases that have waited so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The most bytes lent at once since the start, or since the last
    /// [`MemoryBudget::reset_peak`].
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement (from what is lent now).
    pub fn reset_peak(&self) {
        self.peak.store(self.in_use(), Ordering::Relaxed);
    }
}

/// Bytes paid for from a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub struct Lease {
    permits: Option<Arc<Semaphore>>,
    bytes: u32,
}

impl Lease {
    /// A lease of nothing (for buffers no budget pays for).
    pub fn none() -> Lease {
        Lease {
            permits: None,
            bytes: 0,
        }
    }

    /// The bytes this lease holds.
    pub fn bytes(&self) -> u64 {
        u64::from(self.bytes)
    }

    /// This lease in `parts` leases (at least one) that together hold what it
    /// held: the shards of a chunk each pay for a part of its buffer.
    pub fn split(mut self, parts: usize) -> Vec<Lease> {
        let parts = parts.max(1) as u32;
        let permits = self.permits.take();
        let (each, rest) = (self.bytes / parts, self.bytes % parts);
        (0..parts)
            .map(|i| Lease {
                permits: permits.clone(),
                bytes: each + u32::from(i == 0) * rest,
            })
            .collect()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(permits) = self.permits.take()
            && self.bytes > 0
        {
            permits.add_permits(self.bytes as usize);
        }
    }
}

/// Bytes with the lease that pays for them: turned into [`bytes::Bytes`], the
/// lease is given back when the last clone of those bytes is dropped.
#[derive(Debug)]
pub struct LeasedBytes {
    bytes: bytes::Bytes,
    _lease: Lease,
}

impl LeasedBytes {
    /// `bytes` kept paid for by `lease` for as long as any clone of the result lives.
    pub fn wrap(bytes: bytes::Bytes, lease: Lease) -> bytes::Bytes {
        if lease.bytes == 0 {
            return bytes;
        }
        bytes::Bytes::from_owner(LeasedBytes {
            bytes,
            _lease: lease,
        })
    }
}

impl AsRef<[u8]> for LeasedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A budget of 100 bytes of buffers (and 33 of carries).
    fn hundred() -> Arc<MemoryBudget> {
        MemoryBudget::new(133)
    }

    #[tokio::test]
    async fn leases_come_back_when_dropped_and_when_their_bytes_are() {
        let budget = hundred();
        let a = budget.lease(60).await;
        assert_eq!(budget.in_use(), 60);
        assert!(budget.try_lease(50).is_none(), "only 40 are free");
        let b = budget.try_lease(40).expect("40 are free");
        drop(a);
        assert_eq!(budget.in_use(), 40);
        let bytes = LeasedBytes::wrap(bytes::Bytes::from_static(b"hello"), b);
        let clone = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(budget.in_use(), 40, "a clone still holds them");
        drop(clone);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_lease_waits_for_bytes_to_come_back() {
        let budget = hundred();
        let held = budget.lease(80).await;
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.lease(50).await.bytes() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "50 are not free yet");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 50);
        assert_eq!(budget.waits(), 1);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 80, "80 at most were lent at once");
        budget.reset_peak();
        assert_eq!(budget.peak(), 0);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = hundred();
        let lease = budget.lease(1000).await;
        assert_eq!(lease.bytes(), 100);
        assert_eq!(budget.total(), 133);
        assert_eq!(budget.in_use(), 100);
    }

    #[tokio::test]
    async fn carries_never_take_the_bytes_of_buffers() {
        let budget = hundred();
        let carries = [budget.admit_write(20).await, budget.admit_write(13).await];
        let late = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.admit_write(10).await.bytes() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!late.is_finished(), "the carries are spent");
        let buffer = budget
            .try_lease(100)
            .expect("every buffer byte is still free");
        assert_eq!(budget.in_use(), 133);
        drop(buffer);
        drop(carries);
        assert_eq!(late.await.unwrap(), 10);
        assert_eq!(budget.in_use(), 0);
    }
}
