//! Peers that misbehave: counted, and banned after repeated offences.
//!
//! Every member holds the network key, so a member gone bad (or a buggy one) can
//! send data that opens under the key and is still wrong: a chunk sealed under an
//! id that is not its content's hash, a record for another name, a malformed
//! message. Each such thing is refused where it is checked (nothing unverified
//! reaches disk) and reported here. [`BAN_AFTER`] offences within
//! [`OFFENCE_WINDOW`] ban the peer for [`BAN_FOR`]: its connections close and it
//! cannot reconnect until the ban ends.
//!
//! Honest peers can trip a check too (a disk that corrupted a chunk it then
//! served), hence a threshold rather than a ban at the first offence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peervault_net::PeerId;

/// Offences within [`OFFENCE_WINDOW`] that get a peer banned.
pub const BAN_AFTER: usize = 5;
pub const OFFENCE_WINDOW: Duration = Duration::from_secs(10 * 60);
pub const BAN_FOR: Duration = Duration::from_secs(10 * 60);

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offence {
    /// A chunk that failed its tag or hash check.
    BadChunk,
    /// A catalogue record that did not open, or named another file.
    BadRecord,
    /// A message that did not decode, or an oversized frame.
    Malformed,
}

impl Offence {
    pub fn label(self) -> &'static str {
        match self {
            Offence::BadChunk => "bad_chunk",
            Offence::BadRecord => "bad_record",
            Offence::Malformed => "malformed",
        }
    }
}

/// Recent offences per peer (plain data, `now` passed in, so it is unit tested).
#[derive(Debug, Default)]
pub struct Conduct {
    recent: HashMap<PeerId, Vec<Instant>>,
}

impl Conduct {
    /// Records an offence; true if it is the one that earns a ban (the peer's
    /// record is then cleared, so a returning peer starts afresh).
    pub fn offend(&mut self, peer: PeerId, now: Instant) -> bool {
        let times = self.recent.entry(peer).or_default();
        times.retain(|t| now.saturating_duration_since(*t) < OFFENCE_WINDOW);
        times.push(now);
        if times.len() >= BAN_AFTER {
            self.recent.remove(&peer);
            return true;
        }
        false
    }

    /// Offences of `peer` still counting.
    pub fn count(&self, peer: &PeerId, now: Instant) -> usize {
        self.recent.get(peer).map_or(0, |times| {
            times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < OFFENCE_WINDOW)
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_takes_repeated_offences_within_the_window() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let (bad, other) = (PeerId::random(), PeerId::random());
        for i in 0..BAN_AFTER - 1 {
            assert!(!conduct.offend(bad, start + Duration::from_secs(i as u64)));
        }
        assert!(!conduct.offend(other, start), "offences are per peer");
        assert!(conduct.offend(bad, start + Duration::from_secs(10)));
        assert_eq!(conduct.count(&bad, start), 0, "cleared once banned");
    }

    #[test]
    fn old_offences_expire() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let peer = PeerId::random();
        for _ in 0..BAN_AFTER - 1 {
            conduct.offend(peer, start);
        }
        let later = start + OFFENCE_WINDOW + Duration::from_secs(1);
        assert!(!conduct.offend(peer, later));
        assert_eq!(conduct.count(&peer, later), 1);
    }
}
