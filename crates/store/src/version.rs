//! Versions of catalogue entries and the hybrid logical clock that issues them.
//!
//! Every write of a name (a new manifest or a tombstone) carries a [`Version`]:
//! a hybrid-logical-clock reading plus the writer's [`OriginId`]. Versions are
//! totally ordered, so when two nodes write one name concurrently every node picks
//! the same winner (the larger version): last writer wins, deterministically.
//!
//! The clock reading packs wall-clock milliseconds in the high 48 bits and a
//! counter in the low 16. It never goes backwards, even if the wall clock does:
//! each reading is `max(wall, last + 1)`, and the last reading is persisted with
//! every commit so a restart cannot reissue an old version. Observing a remote
//! version pulls the clock forward, so a write made after seeing another node's
//! write always wins over it.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::OriginId;

const COUNTER_BITS: u32 = 16;

/// Total order over writes of one name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Version {
    /// Hybrid logical clock reading (compared first).
    pub clock: u64,
    /// Writer (breaks ties between equal readings).
    pub origin: OriginId,
}

impl Version {
    /// Wall-clock milliseconds since the Unix epoch encoded in the reading.
    pub fn unix_millis(&self) -> u64 {
        self.clock >> COUNTER_BITS
    }

    /// The version of a re-encoding of `old` (the same bytes kept another way)
    /// by the node of origin `by`: one tick after `old`, so that it
    /// supersedes `old` and nothing written after it, and an origin whose
    /// first byte is 0, so that it loses a tie with a real write that got the
    /// same tick (a writer whose wall clock lags gets exactly `old`'s clock
    /// plus one); the rest is `by`'s, so that two nodes re-encoding at once
    /// make different versions, never one version with two contents.
    pub fn reencoding(old: Version, by: OriginId) -> Version {
        let mut origin = [0u8; 16];
        origin[1..].copy_from_slice(&by.0[..15]);
        Version {
            clock: old.clock + 1,
            origin: OriginId(origin),
        }
    }

    /// How people name this version: 8 hex digits of a hash of it, the same on
    /// every node (versions of one name are few, so they do not collide).
    pub fn label(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.clock.to_le_bytes());
        hasher.update(&self.origin.0);
        let mut hex = hasher.finalize().to_hex().to_string();
        hex.truncate(8);
        hex
    }
}

/// A monotonic hybrid logical clock.
#[derive(Debug)]
pub struct HybridClock {
    last: Mutex<u64>,
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HybridClock {
    /// A clock that will never issue a reading at or below `last`.
    pub fn new(last: u64) -> Self {
        Self {
            last: Mutex::new(last),
        }
    }

    /// A fresh reading, strictly greater than every earlier one.
    pub fn tick(&self) -> u64 {
        self.tick_at(unix_millis_now())
    }

    fn tick_at(&self, wall_millis: u64) -> u64 {
        let wall = wall_millis << COUNTER_BITS;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = wall.max(last.saturating_add(1));
        *last
    }

    /// Moves the clock past a reading seen elsewhere.
    pub fn observe(&self, remote: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = (*last).max(remote);
    }

    /// The latest reading issued or observed.
    pub fn last(&self) -> u64 {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_strictly_increasing_even_if_the_wall_clock_goes_back() {
        let clock = HybridClock::new(0);
        let a = clock.tick_at(1_000);
        let b = clock.tick_at(1_000);
        let c = clock.tick_at(500);
        assert!(a < b && b < c);
        assert_eq!(a >> COUNTER_BITS, 1_000);
    }

    #[test]
    fn observing_a_later_reading_moves_the_clock_past_it() {
        let clock = HybridClock::new(0);
        let remote = 5_000u64 << COUNTER_BITS;
        clock.observe(remote);
        assert!(clock.tick_at(1_000) > remote);
    }

    #[test]
    fn ties_are_broken_by_origin() {
        let a = Version {
            clock: 7,
            origin: OriginId([1; 16]),
        };
        let b = Version {
            clock: 7,
            origin: OriginId([2; 16]),
        };
        let later = Version {
            clock: 8,
            origin: OriginId([0; 16]),
        };
        assert!(a < b && b < later);
    }
}
