//! Quota accounting and chunk pins: the two pieces of shared state that let writes,
//! deletes and clean-up run concurrently without losing data or overcommitting disk.
//!
//! **Space.** `used` is the exact byte count of recorded blobs (a blob shared by many
//! files counts once). A write reserves each new blob's size *before* writing it; the
//! reservation becomes usage when the write commits and is released if it fails, so
//! concurrent writes can never together exceed the quota.
//!
//! **Pins.** A write pins every chunk it relies on (new or already present) before
//! checking whether it exists, and a read pins the chunks it will read. Removal of a
//! blob (after a delete, or by clean-up) happens only under the pin lock and skips
//! pinned chunks. Hence a blob a write decided to reuse cannot vanish before that
//! write's manifest commits, and clean-up never deletes a blob a write is producing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StoreError;
use crate::ids::ChunkId;

/// Byte accounting against the quota.
#[derive(Debug)]
pub struct Space {
    limit: AtomicU64,
    used: AtomicU64,
    reserved: AtomicU64,
}

/// A snapshot of the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of recorded blobs.
    pub used_bytes: u64,
    /// Bytes reserved by writes in flight.
    pub reserved_bytes: u64,
    /// The quota.
    pub limit_bytes: u64,
}

impl Usage {
    /// Bytes still free under the quota (counting reservations as used).
    pub fn available_bytes(&self) -> u64 {
        self.limit_bytes
            .saturating_sub(self.used_bytes)
            .saturating_sub(self.reserved_bytes)
    }
}

impl Space {
    pub fn new(limit: u64, used: u64) -> Self {
        Self {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(used),
            reserved: AtomicU64::new(0),
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            used_bytes: self.used.load(Ordering::SeqCst),
            reserved_bytes: self.reserved.load(Ordering::SeqCst),
            limit_bytes: self.limit.load(Ordering::SeqCst),
        }
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Fails if `bytes` more would not fit now (reserves nothing).
    pub fn check_fits(&self, bytes: u64) -> Result<(), StoreError> {
        let usage = self.usage();
        if bytes > usage.available_bytes() {
            return Err(StoreError::QuotaExceeded {
                needed: bytes,
                available: usage.available_bytes(),
                limit: usage.limit_bytes,
            });
        }
        Ok(())
    }

    fn try_reserve(&self, bytes: u64) -> Result<(), StoreError> {
        let mut current = self.reserved.load(Ordering::SeqCst);
        loop {
            let usage = Usage {
                reserved_bytes: current,
                ..self.usage()
            };
            if bytes > usage.available_bytes() {
                return Err(StoreError::QuotaExceeded {
                    needed: bytes,
                    available: usage.available_bytes(),
                    limit: usage.limit_bytes,
                });
            }
            match self.reserved.compare_exchange(
                current,
                current + bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.reserved.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Counts newly recorded blob bytes.
    pub fn add_used(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Uncounts forgotten blob bytes.
    pub fn sub_used(&self, bytes: u64) {
        // Saturating: accounting must never wrap even if a caller double-frees.
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(bytes))
            });
    }
}

/// Bytes reserved by one write; released on drop.
#[derive(Debug)]
pub struct Reservation {
    space: Arc<Space>,
    bytes: u64,
}

impl Reservation {
    pub fn new(space: Arc<Space>) -> Self {
        Self { space, bytes: 0 }
    }

    /// Reserves `bytes` more, or fails with the quota error.
    pub fn grow(&mut self, bytes: u64) -> Result<(), StoreError> {
        self.space.try_reserve(bytes)?;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.space.release(self.bytes);
    }
}

/// Chunks that must not be removed right now, with a count per chunk.
#[derive(Debug, Default)]
pub struct PinSet {
    pins: Mutex<HashMap<ChunkId, usize>>,
}

/// Held while removing blobs: no pin can be taken or dropped meanwhile.
pub struct PinLock<'a>(MutexGuard<'a, HashMap<ChunkId, usize>>);

impl PinLock<'_> {
    pub fn is_pinned(&self, id: &ChunkId) -> bool {
        self.0.contains_key(id)
    }
}

impl PinSet {
    fn guard(&self) -> MutexGuard<'_, HashMap<ChunkId, usize>> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock(&self) -> PinLock<'_> {
        PinLock(self.guard())
    }
}

/// The pins of one operation; all released on drop.
#[derive(Debug)]
pub struct Pins {
    set: Arc<PinSet>,
    held: Vec<ChunkId>,
}

impl Pins {
    pub fn new(set: Arc<PinSet>) -> Self {
        Self {
            set,
            held: Vec::new(),
        }
    }

    pub fn pin(&mut self, id: ChunkId) {
        *self.set.guard().entry(id).or_insert(0) += 1;
        self.held.push(id);
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut pins = self.set.guard();
        for id in self.held.drain(..) {
            if let Some(count) = pins.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    pins.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_cannot_overcommit() {
        let space = Arc::new(Space::new(100, 40));
        let mut a = Reservation::new(space.clone());
        let mut b = Reservation::new(space.clone());
        a.grow(50).unwrap();
        let err = b.grow(20).unwrap_err();
        assert!(matches!(
            err,
            StoreError::QuotaExceeded {
                needed: 20,
                available: 10,
                limit: 100
            }
        ));
        b.grow(10).unwrap();
        drop(a);
        assert_eq!(space.usage().reserved_bytes, 10);
        assert_eq!(space.usage().available_bytes(), 50);
    }

    #[test]
    fn pins_are_counted() {
        let set = Arc::new(PinSet::default());
        let id = ChunkId([1; 32]);
        let mut a = Pins::new(set.clone());
        let mut b = Pins::new(set.clone());
        a.pin(id);
        b.pin(id);
        drop(a);
        assert!(set.lock().is_pinned(&id));
        drop(b);
        assert!(!set.lock().is_pinned(&id));
    }
}
