//! An in-memory summary of the catalogue, for anti-entropy between nodes.
//!
//! Each name's current version is kept by name id, with the versions kept in its
//! history (see [`crate::history`]), and the name-id space is cut into 256
//! buckets (by the first byte). A bucket's digest is the XOR of a hash of every
//! record `(name id, version)` in it, current or history, so it can be updated in O(1) when an entry changes,
//! and two nodes compare whole catalogues by exchanging 256 digests (4 KiB): only
//! buckets whose digests differ need their entry lists exchanged.
//!
//! The index is rebuilt at open by opening every record (names and versions live
//! only inside sealed records) and updated after every committed change. It also
//! knows which entries are live files, so that counting them (`status`, polled by
//! dashboards and scripts) costs nothing instead of opening every record.

use std::collections::HashMap;

use crate::ids::NameId;
use crate::manifest::CatalogueEntry;
use crate::version::Version;

/// Number of buckets the name-id space is cut into.
pub const BUCKETS: usize = 256;

/// Digest of one bucket (16 bytes).
pub type BucketDigest = [u8; 16];

/// Versions and bucket digests of the whole catalogue.
#[derive(Debug, Clone)]
pub struct CatalogueIndex {
    versions: HashMap<NameId, Slot>,
    /// Superseded versions kept, by name (only names that have some).
    history: HashMap<NameId, Vec<Version>>,
    digests: Vec<u128>,
    /// How many slots are live files (not tombstones).
    live: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    version: Version,
    live: bool,
}

impl Default for CatalogueIndex {
    fn default() -> Self {
        Self {
            versions: HashMap::new(),
            history: HashMap::new(),
            digests: vec![0; BUCKETS],
            live: 0,
        }
    }
}

fn bucket_of(id: &NameId) -> usize {
    usize::from(id.0[0])
}

fn entry_digest(id: &NameId, version: &Version) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&id.0);
    hasher.update(&version.clock.to_le_bytes());
    hasher.update(&version.origin.0);
    let mut first = [0u8; 16];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    u128::from_le_bytes(first)
}

impl CatalogueIndex {
    /// Records that `id` is now at `version`, a live file or (`live` false) a
    /// tombstone, replacing what was known.
    pub fn set(&mut self, id: NameId, version: Version, live: bool) {
        let bucket = bucket_of(&id);
        if let Some(old) = self.versions.insert(id, Slot { version, live }) {
            self.digests[bucket] ^= entry_digest(&id, &old.version);
            self.live -= usize::from(old.live);
        }
        self.digests[bucket] ^= entry_digest(&id, &version);
        self.live += usize::from(live);
    }

    /// Records `entry`, the catalogue's entry for `id` now: its version, and
    /// whether it is a live file.
    pub fn set_entry(&mut self, id: NameId, entry: &CatalogueEntry) {
        self.set(id, entry.version(), entry.as_file().is_some());
    }

    /// Forgets `id` and its history (used when tombstones are collected).
    pub fn remove(&mut self, id: &NameId) {
        if let Some(old) = self.versions.remove(id) {
            self.digests[bucket_of(id)] ^= entry_digest(id, &old.version);
            self.live -= usize::from(old.live);
        }
        for version in self.history.remove(id).unwrap_or_default() {
            self.digests[bucket_of(id)] ^= entry_digest(id, &version);
        }
    }

    /// Records that `version` of `id` is kept in history.
    pub fn add_superseded(&mut self, id: NameId, version: Version) {
        let kept = self.history.entry(id).or_default();
        if !kept.contains(&version) {
            kept.push(version);
            self.digests[bucket_of(&id)] ^= entry_digest(&id, &version);
        }
    }

    /// Records that `version` of `id` left its history.
    pub fn remove_superseded(&mut self, id: &NameId, version: &Version) {
        let Some(kept) = self.history.get_mut(id) else {
            return;
        };
        if let Some(at) = kept.iter().position(|v| v == version) {
            kept.swap_remove(at);
            self.digests[bucket_of(id)] ^= entry_digest(id, version);
        }
        if kept.is_empty() {
            self.history.remove(id);
        }
    }

    /// The current version of `id`.
    pub fn version(&self, id: &NameId) -> Option<Version> {
        self.versions.get(id).map(|slot| slot.version)
    }

    /// True if `version` of `id` is held, current or in history.
    pub fn has(&self, id: &NameId, version: &Version) -> bool {
        self.version(id) == Some(*version)
            || self
                .history
                .get(id)
                .is_some_and(|kept| kept.contains(version))
    }

    /// How many superseded versions are kept, over all names.
    pub fn superseded(&self) -> usize {
        self.history.values().map(Vec::len).sum()
    }

    /// How many entries are live files.
    pub fn live_files(&self) -> usize {
        self.live
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// All bucket digests, in bucket order.
    pub fn digests(&self) -> Vec<BucketDigest> {
        self.digests.iter().map(|d| d.to_le_bytes()).collect()
    }

    /// Buckets whose digest differs from `theirs` (a list of [`BUCKETS`] digests;
    /// anything else is treated as all different).
    pub fn differing(&self, theirs: &[BucketDigest]) -> Vec<u8> {
        (0..BUCKETS)
            .filter(|&b| theirs.get(b).map(|d| u128::from_le_bytes(*d)) != Some(self.digests[b]))
            .map(|b| b as u8)
            .collect()
    }

    /// Every record `(name id, version)`, current or history, in the given buckets.
    pub fn versions_in(&self, buckets: &[u8]) -> Vec<(NameId, Version)> {
        let mut wanted = [false; BUCKETS];
        for b in buckets {
            wanted[usize::from(*b)] = true;
        }
        let mut out: Vec<_> = self
            .versions
            .iter()
            .filter(|(id, _)| wanted[bucket_of(id)])
            .map(|(id, slot)| (*id, slot.version))
            .collect();
        for (id, kept) in &self.history {
            if wanted[bucket_of(id)] {
                out.extend(kept.iter().map(|v| (*id, *v)));
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OriginId;
    use proptest::prelude::*;

    fn v(clock: u64) -> Version {
        Version {
            clock,
            origin: OriginId([1; 16]),
        }
    }

    #[test]
    fn equal_contents_have_equal_digests_whatever_the_order() {
        let ids: Vec<NameId> = (0..50u8)
            .map(|i| NameId([i.wrapping_mul(37); 32]))
            .collect();
        let mut a = CatalogueIndex::default();
        let mut b = CatalogueIndex::default();
        for (i, id) in ids.iter().enumerate() {
            a.set(*id, v(1), true);
            a.set(*id, v(i as u64 + 10), true);
        }
        for (i, id) in ids.iter().enumerate().rev() {
            b.set(*id, v(i as u64 + 10), true);
        }
        assert_eq!(a.digests(), b.digests());
        assert!(a.differing(&b.digests()).is_empty());
        assert_eq!((a.live_files(), b.live_files()), (50, 50));
        b.set(ids[3], v(999), false);
        assert_eq!(b.live_files(), 49, "a tombstone is not a live file");
        assert_eq!(a.differing(&b.digests()), vec![ids[3].0[0]]);
        assert_eq!(b.versions_in(&[ids[3].0[0]]), vec![(ids[3], v(999))]);
        b.remove(&ids[3]);
        a.remove(&ids[3]);
        assert!(a.differing(&b.digests()).is_empty());
        assert_eq!((a.live_files(), b.live_files(), a.len()), (49, 49, 49));
        assert_eq!(
            a.differing(&[]).len(),
            BUCKETS,
            "a malformed summary differs everywhere"
        );
    }

    #[test]
    fn history_counts_in_the_digest_whichever_record_is_current() {
        let id = NameId([5; 32]);
        let mut a = CatalogueIndex::default();
        a.set(id, v(1), true);
        a.add_superseded(id, v(1));
        a.set(id, v(2), true);
        let mut b = CatalogueIndex::default();
        b.set(id, v(2), true);
        assert_ne!(a.digests(), b.digests(), "b lacks version 1");
        b.add_superseded(id, v(1));
        assert_eq!(a.digests(), b.digests());
        assert!(a.has(&id, &v(1)) && a.has(&id, &v(2)) && !a.has(&id, &v(3)));
        assert_eq!(a.versions_in(&[5]), vec![(id, v(1)), (id, v(2))]);
        a.remove_superseded(&id, &v(1));
        assert_eq!((a.superseded(), a.versions_in(&[5]).len()), (0, 1));
        b.remove(&id);
        assert_eq!(b.digests(), CatalogueIndex::default().digests());
    }

    proptest! {
        #[test]
        fn digests_depend_only_on_the_final_state(updates in proptest::collection::vec((0u8..8, 0u64..4), 0..40)) {
            let mut stepwise = CatalogueIndex::default();
            let mut last = HashMap::new();
            for (id, clock) in &updates {
                stepwise.set(NameId([*id; 32]), v(*clock), clock % 2 == 0);
                last.insert(*id, *clock);
            }
            let mut direct = CatalogueIndex::default();
            for (&id, &clock) in &last {
                direct.set(NameId([id; 32]), v(clock), clock % 2 == 0);
            }
            prop_assert_eq!(stepwise.digests(), direct.digests());
            let live = last.values().filter(|clock| *clock % 2 == 0).count();
            prop_assert_eq!(stepwise.live_files(), live);
            prop_assert_eq!(direct.live_files(), live);
        }
    }
}
