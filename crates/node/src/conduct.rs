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
//! served), hence a threshold rather than a ban at the first offence, and a bad
//! chunk counts once per chunk: a holder whose disk damaged one chunk serves that
//! same bad copy to every reader until its GC finds it, and without that rule the
//! fifth read of one damaged file would ban an otherwise good node from the vault
//! for ten minutes. A peer that sends [`BAN_AFTER`] *different* bad chunks is
//! banned as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peervault_net::PeerId;
use peervault_store::ChunkId;

/// Offences within [`OFFENCE_WINDOW`] that get a peer banned.
pub const BAN_AFTER: usize = 5;
pub const OFFENCE_WINDOW: Duration = Duration::from_secs(10 * 60);
pub const BAN_FOR: Duration = Duration::from_secs(10 * 60);

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offence {
    /// A chunk that failed its tag or hash check.
    BadChunk(ChunkId),
    /// A catalogue record that did not open, or named another file.
    BadRecord,
    /// A message that did not decode, or an oversized frame.
    Malformed,
}

impl Offence {
    pub fn label(self) -> &'static str {
        match self {
            Offence::BadChunk(_) => "bad_chunk",
            Offence::BadRecord => "bad_record",
            Offence::Malformed => "malformed",
        }
    }
}

/// Recent offences per peer (plain data, `now` passed in, so it is unit tested).
#[derive(Debug, Default)]
pub struct Conduct {
    recent: HashMap<PeerId, Vec<(Instant, Offence)>>,
}

/// How [`Conduct::offend`] judged an offence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; this many of the peer's offences count now.
    Counted(usize),
    /// The same bad chunk from the same peer, already counted in the window.
    Repeated,
    /// Counted, and the one that earns a ban (the peer's record is then cleared,
    /// so a returning peer starts afresh).
    Ban,
}

impl Conduct {
    /// Records an offence and says whether it counts, and whether it earns a ban.
    pub fn offend(&mut self, peer: PeerId, offence: Offence, now: Instant) -> Verdict {
        let recent = self.recent.entry(peer).or_default();
        recent.retain(|(t, _)| now.saturating_duration_since(*t) < OFFENCE_WINDOW);
        if matches!(offence, Offence::BadChunk(_)) && recent.iter().any(|(_, o)| *o == offence) {
            return Verdict::Repeated;
        }
        recent.push((now, offence));
        if recent.len() >= BAN_AFTER {
            self.recent.remove(&peer);
            return Verdict::Ban;
        }
        Verdict::Counted(recent.len())
    }

    /// Offences of `peer` still counting (each verdict carries it; kept for tests).
    #[cfg(test)]
    pub fn count(&self, peer: &PeerId, now: Instant) -> usize {
        self.recent.get(peer).map_or(0, |recent| {
            recent
                .iter()
                .filter(|(t, _)| now.saturating_duration_since(*t) < OFFENCE_WINDOW)
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8) -> Offence {
        Offence::BadChunk(ChunkId([n; 32]))
    }

    #[test]
    fn a_ban_takes_repeated_offences_within_the_window() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let (bad, other) = (PeerId::random(), PeerId::random());
        for i in 0..BAN_AFTER - 1 {
            let at = start + Duration::from_secs(i as u64);
            assert_eq!(
                conduct.offend(bad, Offence::Malformed, at),
                Verdict::Counted(i + 1)
            );
        }
        assert_eq!(
            conduct.offend(other, Offence::Malformed, start),
            Verdict::Counted(1),
            "offences are per peer"
        );
        let last = start + Duration::from_secs(10);
        assert_eq!(conduct.offend(bad, chunk(1), last), Verdict::Ban);
        assert_eq!(conduct.count(&bad, start), 0, "cleared once banned");
    }

    #[test]
    fn old_offences_expire() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let peer = PeerId::random();
        for _ in 0..BAN_AFTER - 1 {
            conduct.offend(peer, Offence::BadRecord, start);
        }
        let later = start + OFFENCE_WINDOW + Duration::from_secs(1);
        assert_eq!(
            conduct.offend(peer, Offence::BadRecord, later),
            Verdict::Counted(1)
        );
        assert_eq!(conduct.count(&peer, later), 1);
    }

    #[test]
    fn one_damaged_chunk_served_again_and_again_counts_once() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let holder = PeerId::random();
        assert_eq!(conduct.offend(holder, chunk(7), start), Verdict::Counted(1));
        for i in 1..(BAN_AFTER as u64 * 4) {
            let at = start + Duration::from_secs(i);
            assert_eq!(conduct.offend(holder, chunk(7), at), Verdict::Repeated);
        }
        assert_eq!(conduct.count(&holder, start), 1);
        // After the window the same chunk counts again (once).
        let later = start + OFFENCE_WINDOW + Duration::from_secs(1);
        assert_eq!(conduct.offend(holder, chunk(7), later), Verdict::Counted(1));
        assert_eq!(conduct.offend(holder, chunk(7), later), Verdict::Repeated);
    }

    #[test]
    fn different_bad_chunks_still_earn_a_ban() {
        let start = Instant::now();
        let mut conduct = Conduct::default();
        let liar = PeerId::random();
        for n in 0..BAN_AFTER as u8 - 1 {
            assert!(matches!(
                conduct.offend(liar, chunk(n), start),
                Verdict::Counted(_)
            ));
        }
        assert_eq!(conduct.offend(liar, chunk(200), start), Verdict::Ban);
    }
}
