//! The versions of a name kept after it is overwritten or deleted, and for how long.
//!
//! Every write of a name (a manifest or a tombstone) is a record identified by the
//! name's id and the write's [`Version`]. The greatest is the name's current entry;
//! the others are its history, kept in a table of their own so that listings and
//! lookups of current files cost what they did before history existed. A node that
//! learns of a record older than its current entry (a concurrent write that lost,
//! or a version it missed while away) keeps it as history: every node converges on
//! the same set of records per name, so every node shows the same history.
//!
//! [`Retention`] decides when a superseded record goes. The rule depends only on the
//! set of records and the time, so nodes with the same records drop the same ones,
//! and a record dropped once is dropped again if a peer that has not dropped it yet
//! offers it back (it arrives, and is expired at once). Keeping is "whichever keeps
//! more": the newest `keep_versions` superseded versions of a live name, and every
//! version superseded less than `keep_for` ago. A deleted name keeps its versions
//! for `keep_for` after the delete only (counting them would keep a deleted file's
//! space for ever); its tombstone stays at least until they are gone, so a delete
//! never comes undone by itself.
//!
//! A purging delete (`rm --purge`) is the exception: every version older than a
//! purging tombstone of the name, current or kept, has expired, on every node and
//! whenever it arrives, so its space returns at once and nothing brings it back.

use std::time::Duration;

use crate::ids::{NameId, OriginId};
use crate::version::Version;

/// Default number of superseded versions kept per live name.
pub const DEFAULT_KEEP_VERSIONS: u32 = 10;
/// How long a re-encoded version is kept after its re-encoding (see
/// [`Retention::expired`]).
pub const REENCODED_GRACE: Duration = Duration::from_secs(600);

/// Default time a superseded version is kept.
pub const DEFAULT_VERSION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long superseded versions are kept (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Superseded versions of a live name kept whatever their age.
    pub keep_versions: u32,
    /// Every version superseded less than this long ago is kept.
    pub keep_for: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_versions: DEFAULT_KEEP_VERSIONS,
            keep_for: DEFAULT_VERSION_RETENTION,
        }
    }
}

impl Retention {
    /// Keep no superseded version: an overwrite or a delete frees at once.
    pub const NONE: Retention = Retention {
        keep_versions: 0,
        keep_for: Duration::ZERO,
    };

    /// Which of `older`, the superseded versions of a name newest first, have
    /// expired at `now_ms` (indices into `older`). `current` is the name's current
    /// version, and `live` says whether it is a file (not a tombstone). A version
    /// was superseded when the next newer one was written. Every version older
    /// than `purged`, the newest purging tombstone of the name, has expired.
    /// A version in `reencoded` (a newer one keeps the same bytes another
    /// way, see [`crate::Manifest::reencodes`]; with the time it was made)
    /// is kept only [`REENCODED_GRACE`] (or `keep_for`, if shorter) after
    /// that, whatever `keep_versions` says: long enough for the new
    /// version's copies or shards to be placed while reads can still fall
    /// back on it.
    pub fn expired(
        &self,
        current: Version,
        live: bool,
        older: &[Version],
        purged: Option<Version>,
        reencoded: &[(Version, u64)],
        now_ms: u64,
    ) -> Vec<usize> {
        let grace = (self.keep_for.min(REENCODED_GRACE)).as_millis() as u64;
        let keep_for = self.keep_for.as_millis() as u64;
        let mut superseded_at = current.unix_millis();
        let mut out = Vec::new();
        for (i, version) in older.iter().enumerate() {
            let by_count = live && (i as u64) < u64::from(self.keep_versions);
            let by_time = now_ms.saturating_sub(superseded_at) < keep_for;
            let purged = purged.is_some_and(|p| *version < p);
            let reencoded = reencoded.iter().find(|(v, _)| v == version);
            let kept = match reencoded {
                Some((_, at_ms)) => now_ms.saturating_sub(*at_ms) < grace,
                None => by_count || by_time,
            };
            if purged || !kept {
                out.push(i);
            }
            superseded_at = version.unix_millis();
        }
        out
    }
}

/// Length of a history table key: name id, clock (big-endian, so a name's
/// records lie together in version order), origin.
pub(crate) const KEY_LEN: usize = 32 + 8 + 16;

/// The history table key of `version` of `id`.
pub(crate) fn key(id: &NameId, version: &Version) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..32].copy_from_slice(&id.0);
    key[32..40].copy_from_slice(&version.clock.to_be_bytes());
    key[40..].copy_from_slice(&version.origin.0);
    key
}

/// The name id and version a history key stands for.
pub(crate) fn parse_key(key: &[u8; KEY_LEN]) -> (NameId, Version) {
    let mut id = [0u8; 32];
    id.copy_from_slice(&key[..32]);
    let mut clock = [0u8; 8];
    clock.copy_from_slice(&key[32..40]);
    let mut origin = [0u8; 16];
    origin.copy_from_slice(&key[40..]);
    (
        NameId(id),
        Version {
            clock: u64::from_be_bytes(clock),
            origin: OriginId(origin),
        },
    )
}

/// The first and last possible keys of `id`'s records (for a range scan).
pub(crate) fn range_of(id: &NameId) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut low = [0u8; KEY_LEN];
    low[..32].copy_from_slice(&id.0);
    let mut high = [0xffu8; KEY_LEN];
    high[..32].copy_from_slice(&id.0);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 86_400_000;

    fn at(ms: u64) -> Version {
        Version {
            clock: ms << 16,
            origin: OriginId([1; 16]),
        }
    }

    #[test]
    fn whichever_keeps_more_and_deleted_names_keep_by_time_only() {
        let retention = Retention {
            keep_versions: 2,
            keep_for: Duration::from_millis(30 * DAY),
        };
        let now = 100 * DAY;
        // Current written at day 99; older ones at days 10, 20, 30, 90 (newest first).
        let older = [at(90 * DAY), at(30 * DAY), at(20 * DAY), at(10 * DAY)];
        // Day 90 is kept by count and time, day 30 by count (superseded at day 90:
        // also by time), day 20 superseded at day 30 (70 days ago): expired, as is day 10.
        assert_eq!(
            retention.expired(at(99 * DAY), true, &older, None, &[], now),
            vec![2, 3]
        );
        // Deleted at day 99: only time counts; day 30 was superseded at day 90.
        assert_eq!(
            retention.expired(at(99 * DAY), false, &older, None, &[], now),
            vec![2, 3]
        );
        // Deleted at day 50: the versions are kept until day 80 for the newest.
        let gone = retention.expired(at(50 * DAY), false, &older[1..], None, &[], now);
        assert_eq!(gone, vec![0, 1, 2]);
        let none = Retention {
            keep_versions: 0,
            keep_for: Duration::ZERO,
        };
        assert_eq!(
            none.expired(at(99 * DAY), true, &older, None, &[], now)
                .len(),
            4
        );
        // A purge at day 25 takes what is older, whatever the retention keeps.
        let purged = retention.expired(at(99 * DAY), true, &older, Some(at(25 * DAY)), &[], now);
        assert_eq!(purged, vec![2, 3]);
        let all = retention.expired(at(99 * DAY), true, &older, Some(at(99 * DAY)), &[], now);
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn keys_round_trip_and_sort_by_name_then_version() {
        let id = NameId([7; 32]);
        let (a, b) = (at(5), at(6));
        assert_eq!(parse_key(&key(&id, &a)), (id, a));
        assert!(key(&id, &a) < key(&id, &b));
        let (low, high) = range_of(&id);
        assert!(low <= key(&id, &a) && key(&id, &b) <= high);
        assert!(key(&NameId([8; 32]), &a) > high);
    }

    proptest! {
        /// Expiry only grows with time: what has expired stays expired.
        #[test]
        fn expiry_is_monotone_in_time(stamps in proptest::collection::vec(1u64..1000, 1..12), keep in 0u32..4, live: bool, t in 0u64..3000) {
            let mut stamps = stamps;
            stamps.sort_unstable_by(|a, b| b.cmp(a));
            let current = at(stamps[0] + 1);
            let older: Vec<Version> = stamps.iter().map(|s| at(*s)).collect();
            let r = Retention { keep_versions: keep, keep_for: Duration::from_millis(500) };
            let early = r.expired(current, live, &older, None, &[], t);
            let late = r.expired(current, live, &older, None, &[], t + 100);
            prop_assert!(early.iter().all(|i| late.contains(i)));
        }
    }
}
