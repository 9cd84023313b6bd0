//! The BLAKE3 of a whole from the hashes of its parts, hashed apart.
//!
//! Every file's manifest records the BLAKE3 of its content. An S3 multipart
//! upload sends its parts in parallel and in any order, and the object is
//! composed from them at the end; hashing the whole then meant reading it all
//! back (1 GiB: about a second of a 3.4 s upload), and for the largest objects
//! S3 allows (5 TiB) longer than any client waits for its answer.
//!
//! BLAKE3 is a tree: each aligned run of 2^k 1 KiB chunks has a chaining value
//! of its own, which depends only on those bytes and where they start. So a
//! part is hashed as it streams, in leaves of [`LEAF`] bytes at the offset the
//! part will have in the whole, and [`root_of`] merges the leaves of every part
//! into the same hash `blake3::hash` gives of the whole. This is BLAKE3's own
//! tree mode through its `hazmat` API, not a hash of our making: the tests
//! compare it with `blake3::hash` over many sizes and splits.
//!
//! Leaves are 1 MiB, so a part can be hashed apart when it starts at a multiple
//! of 1 MiB: clients cut parts of whole MiB (boto3 and the AWS CLI 8 MiB,
//! rclone 5 MiB). A part that does not is read back, as before.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// Bytes per leaf: a power of two, a multiple of BLAKE3's 1 KiB chunk.
pub const LEAF: u64 = 1 << 20;

/// Hashes one part into leaves, given where the part starts in the whole.
#[derive(Debug, Clone)]
pub struct LeafHasher {
    /// Where the current leaf starts in the whole.
    leaf_start: u64,
    /// Bytes of the current leaf so far.
    filled: u64,
    hasher: blake3::Hasher,
    leaves: Vec<ChainingValue>,
}

impl LeafHasher {
    /// A hasher of the part that starts at `offset`; `None` unless that is a
    /// multiple of [`LEAF`].
    pub fn new(offset: u64) -> Option<LeafHasher> {
        offset.is_multiple_of(LEAF).then(|| LeafHasher {
            leaf_start: offset,
            filled: 0,
            hasher: Self::leaf_at(offset),
            leaves: Vec::new(),
        })
    }

    fn leaf_at(offset: u64) -> blake3::Hasher {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        hasher
    }

    /// Takes the next bytes of the part.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (LEAF - self.filled) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.hasher.update(now);
            self.filled += now.len() as u64;
            data = rest;
            if self.filled == LEAF {
                self.leaves.push(self.hasher.finalize_non_root());
                self.leaf_start += LEAF;
                self.filled = 0;
                self.hasher = Self::leaf_at(self.leaf_start);
            }
        }
    }

    /// The part's leaves, in order; the last may be short (only the last part
    /// of a whole may end inside a leaf).
    pub fn finish(mut self) -> Vec<ChainingValue> {
        if self.filled > 0 {
            self.leaves.push(self.hasher.finalize_non_root());
        }
        self.leaves
    }
}

/// The BLAKE3 of a whole whose leaves, in order, are `leaves`: every one
/// [`LEAF`] bytes long but the last. `None` for a whole of one leaf or none,
/// whose hash BLAKE3 computes only from its bytes.
pub fn root_of(leaves: impl IntoIterator<Item = ChainingValue>) -> Option<blake3::Hash> {
    // BLAKE3's own incremental merge (as its `Hasher` does for chunks): when
    // leaf `n` arrives, the subtrees that the first `n` leaves complete are
    // merged, which leaves as many on the stack as `n` has bits set; what
    // remains at the end is merged from the right, the last merge the root.
    let mut stack: Vec<ChainingValue> = Vec::new();
    for (count, leaf) in leaves.into_iter().enumerate() {
        while stack.len() > count.count_ones() as usize {
            let right = stack.pop()?;
            let left = stack.pop()?;
            stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
        }
        stack.push(leaf);
    }
    while stack.len() > 2 {
        let right = stack.pop()?;
        let left = stack.pop()?;
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
    match stack.as_slice() {
        [left, right] => Some(merge_subtrees_root(left, right, Mode::Hash)),
        _ => None,
    }
}

/// Leaves as text (for a part's record): hex of their bytes, one after another.
pub fn leaves_to_text(leaves: &[ChainingValue]) -> String {
    leaves.iter().map(hex::encode).collect()
}

/// Leaves from [`leaves_to_text`]; `None` if the text is not such.
pub fn leaves_from_text(text: &str) -> Option<Vec<ChainingValue>> {
    let bytes = hex::decode(text).ok()?;
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| {
                let mut leaf = [0u8; 32];
                leaf.copy_from_slice(c);
                leaf
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    /// The leaves of `data` cut into parts at `cuts` (multiples of LEAF), each
    /// part hashed apart, fed in pieces of `piece` bytes.
    fn leaves(data: &[u8], cuts: &[usize], piece: usize) -> Vec<ChainingValue> {
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().copied().filter(|&c| c < data.len()));
        bounds.push(data.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut out = Vec::new();
        for pair in bounds.windows(2) {
            let mut part = LeafHasher::new(pair[0] as u64).unwrap();
            for bit in data[pair[0]..pair[1]].chunks(piece.max(1)) {
                part.update(bit);
            }
            out.extend(part.finish());
        }
        out
    }

    #[test]
    fn whole_leaves_and_a_short_last_one() {
        let l = LEAF as usize;
        for len in [
            l + 1,
            2 * l,
            2 * l + 1024,
            3 * l + 5,
            4 * l,
            5 * l + 999,
            8 * l + 1,
        ] {
            let data = bytes(len, 7);
            let expected = blake3::hash(&data);
            assert_eq!(root_of(leaves(&data, &[], 65_536)), Some(expected), "{len}");
            assert_eq!(
                root_of(leaves(&data, &[l, 3 * l, 4 * l], 4096)),
                Some(expected),
                "{len} in parts"
            );
        }
    }

    #[test]
    fn one_leaf_or_none_has_no_root_from_leaves() {
        assert_eq!(root_of(leaves(&bytes(LEAF as usize, 1), &[], 4096)), None);
        assert_eq!(root_of(leaves(&bytes(10, 1), &[], 4096)), None);
        assert_eq!(root_of(Vec::new()), None);
    }

    #[test]
    fn parts_must_start_on_a_leaf() {
        assert!(LeafHasher::new(LEAF / 2).is_none());
        assert!(LeafHasher::new(3 * LEAF).is_some());
    }

    #[test]
    fn leaves_survive_their_text() {
        let list = leaves(&bytes(3 * LEAF as usize, 3), &[], 1 << 20);
        assert_eq!(leaves_from_text(&leaves_to_text(&list)), Some(list));
        assert_eq!(leaves_from_text("abc"), None);
        assert_eq!(leaves_from_text("zz"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any size, any cut into parts of whole leaves, any feeding: the
        /// same hash as BLAKE3 of the whole.
        #[test]
        fn the_root_of_parts_is_blake3_of_the_whole(
            len in (LEAF as usize + 1)..(9 * LEAF as usize),
            cuts in proptest::collection::vec(1usize..9, 0..5),
            piece in 1usize..300_000,
            seed in any::<u8>(),
        ) {
            let data = bytes(len, seed);
            let cuts: Vec<usize> = cuts.iter().map(|c| c * LEAF as usize).collect();
            prop_assert_eq!(root_of(leaves(&data, &cuts, piece)), Some(blake3::hash(&data)));
        }
    }
}
