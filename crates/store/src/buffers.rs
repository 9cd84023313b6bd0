//! Reusable chunk-sized buffers.
//!
//! Every chunk that passes through the node needs a buffer of about 1 MiB, on
//! whichever thread happens to handle it. Allocating each one fresh makes glibc
//! spread them over per-thread arenas that it never gives back: measured here, a
//! node's RSS climbed past 60 MiB on a 1 GiB transfer while its live buffers never
//! exceeded 8 MiB. Forcing such buffers onto `mmap` instead fixed the RSS but cost
//! half the throughput in page faults. A small pool of reused buffers keeps both:
//! the working set stays allocated, nothing else grows.
//!
//! A [`PooledBuf`] goes back to its pool when dropped, also when it was turned into
//! [`Bytes`] (the `Bytes` owns it). The pool keeps at most `max_idle` buffers; extra
//! ones are freed.
//!
//! Buffers come either empty ([`BufferPool::take`]) or at the pool's full length
//! ([`BufferPool::take_filled`], for reads that need initialised memory to land
//! in, such as `O_DIRECT`): an idle buffer keeps its length, so a full one is
//! handed out again without being zeroed, and a new one comes zeroed from the
//! allocator, whose untouched pages do not count against RSS.

use std::ops::{Deref, DerefMut, Range};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// A bounded free list of equally sized buffers.
#[derive(Debug)]
pub struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
    max_idle: usize,
}

impl BufferPool {
    /// A pool of buffers that can each hold `capacity` bytes without growing.
    pub fn new(capacity: usize, max_idle: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            capacity,
            max_idle,
        })
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn take(self: &Arc<Self>) -> PooledBuf {
        let vec = match self.pop() {
            Some(mut vec) => {
                vec.clear();
                vec
            }
            None => Vec::with_capacity(self.capacity),
        };
        self.lend(vec)
    }

    /// A buffer of exactly the pool's capacity in length, its bytes left from
    /// an earlier use (or zero).
    pub fn take_filled(self: &Arc<Self>) -> PooledBuf {
        let vec = match self.pop() {
            Some(mut vec) => {
                vec.resize(self.capacity, 0);
                vec
            }
            None => vec![0u8; self.capacity],
        };
        self.lend(vec)
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn lend(self: &Arc<Self>, vec: Vec<u8>) -> PooledBuf {
        PooledBuf {
            vec,
            pool: Some(self.clone()),
        }
    }

    fn give_back(&self, vec: Vec<u8>) {
        if vec.capacity() < self.capacity || vec.capacity() > 2 * self.capacity {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(vec);
        }
    }

    /// Buffers waiting for reuse (for tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A buffer on loan from a [`BufferPool`].
#[derive(Debug)]
pub struct PooledBuf {
    vec: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl PooledBuf {
    /// A buffer of no pool, freed when dropped: for sizes a pool does not keep.
    pub fn unpooled(vec: Vec<u8>) -> PooledBuf {
        PooledBuf { vec, pool: None }
    }

    /// The buffer's bytes in `range` as [`Bytes`], without copying; the buffer goes
    /// back to the pool when the last `Bytes` referring to it is dropped.
    pub fn into_bytes(self, range: Range<usize>) -> Bytes {
        Bytes::from_owner(self).slice(range)
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.vec
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.vec
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.vec));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_when_dropped_and_when_their_bytes_are() {
        let pool = BufferPool::new(1024, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"hello world");
        let bytes = a.into_bytes(6..11);
        assert_eq!(&bytes[..], b"world");
        assert_eq!(pool.idle(), 0);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.idle(), 0, "still referenced");
        drop(clone);
        assert_eq!(pool.idle(), 1);
        let b = pool.take();
        assert!(b.is_empty() && b.capacity() >= 1024);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn filled_buffers_come_back_at_full_length_with_their_bytes() {
        let pool = BufferPool::new(64, 2);
        let mut a = pool.take_filled();
        assert_eq!(&a[..], &[0u8; 64][..], "a new one is zeroed");
        a[..5].copy_from_slice(b"dirty");
        drop(a);
        let b = pool.take_filled();
        assert_eq!(b.len(), 64);
        assert_eq!(&b[..5], b"dirty", "reused as it was, not zeroed again");
        drop(b);
        let c = pool.take();
        assert!(
            c.is_empty() && c.capacity() >= 64,
            "an empty one from the same list"
        );
    }

    #[test]
    fn the_pool_is_bounded() {
        let pool = BufferPool::new(16, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.take()).collect();
        drop(bufs);
        assert_eq!(pool.idle(), 2);
    }
}
