//! Erasure coding of blobs: K data shards and M parity shards, any K of which
//! rebuild the blob (Reed-Solomon, by `reed-solomon-simd`).
//!
//! Why: three full copies cost three times the disk and send every byte twice
//! from the writer; 4+2 survives two lost holders as three copies do, at 1.5x.
//! This module is the codec only, bytes in and bytes out: which shards go to
//! which node, and how each shard is checked before use (a shard that is
//! damaged but used would rebuild wrong bytes), belong to the callers.
//!
//! The data shards are the blob itself cut into K equal pieces, the last one
//! padded with zeros; the parity shards are computed from them. Every shard
//! has the same length, [`shard_len`]: the blob's length over K, rounded up to
//! an even number of bytes (the codec works on 16-bit symbols).

use std::fmt;

/// Most shards (data and parity together) per blob: the codec allows far
/// more, but every shard goes to a node of its own, and a [`ShardSet`] is a
/// 64-bit mask.
pub const MAX_SHARDS: u16 = 64;

/// How a blob is coded: `data`+`parity` shards, any `data` of which rebuild it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Redundancy {
    data: u16,
    parity: u16,
}

/// Why coding or rebuilding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "only {have} of the {need} shards needed to rebuild the chunk were found; the others \
         are on nodes that are gone or hold damaged copies"
    )]
    NotEnoughShards { have: usize, need: usize },
    #[error("a shard of {got} bytes where {expected} were expected")]
    ShardSize { expected: usize, got: usize },
}

impl Redundancy {
    /// `data`+`parity`: each at least 1, together at most [`MAX_SHARDS`].
    pub fn new(data: u16, parity: u16) -> Result<Self, ErasureError> {
        if data == 0 || parity == 0 || u32::from(data) + u32::from(parity) > u32::from(MAX_SHARDS) {
            return Err(ErasureError::Invalid(format!(
                "{data}+{parity}: give at least one data and one parity shard, at most \
                 {MAX_SHARDS} in all (e.g. 4+2)"
            )));
        }
        Ok(Self { data, parity })
    }

    /// Checks a value that was decoded rather than made by [`Redundancy::new`].
    pub fn checked(self) -> Result<Self, ErasureError> {
        Self::new(self.data, self.parity)
    }

    /// Reads `K+M`, as `--redundancy` takes it (e.g. `4+2`).
    pub fn parse(text: &str) -> Result<Self, ErasureError> {
        let invalid = || {
            ErasureError::Invalid(format!(
                "{text:?} is not K+M: give data and parity shards, e.g. 4+2"
            ))
        };
        let (data, parity) = text.trim().split_once('+').ok_or_else(invalid)?;
        let data = data.trim().parse().map_err(|_| invalid())?;
        let parity = parity.trim().parse().map_err(|_| invalid())?;
        Self::new(data, parity)
    }

    /// Shards any of which, this many together, rebuild a blob.
    pub fn data(&self) -> usize {
        self.data as usize
    }

    /// Shards that may be lost.
    pub fn parity(&self) -> usize {
        self.parity as usize
    }

    /// All shards of a blob.
    pub fn total(&self) -> usize {
        self.data() + self.parity()
    }
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.data, self.parity)
    }
}

/// A set of shard indexes (below [`MAX_SHARDS`]): which shards of a coded
/// file a node holds or is to hold.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ShardSet(pub u64);

impl ShardSet {
    /// No shard.
    pub const EMPTY: ShardSet = ShardSet(0);

    /// Just `index`.
    pub fn one(index: usize) -> ShardSet {
        let mut set = ShardSet::EMPTY;
        set.insert(index);
        set
    }

    /// Shards `0..total`.
    pub fn all(total: usize) -> ShardSet {
        ShardSet((0..total.min(64)).fold(0, |mask, i| mask | (1 << i)))
    }

    pub fn insert(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    pub fn remove(&mut self, index: usize) {
        if index < 64 {
            self.0 &= !(1 << index);
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The indexes, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |i| self.contains(*i))
    }

    pub fn union(self, other: ShardSet) -> ShardSet {
        ShardSet(self.0 | other.0)
    }
}

impl fmt::Display for ShardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.iter().map(|i| i.to_string()).collect();
        write!(f, "{{{}}}", list.join(","))
    }
}

/// Bytes of each shard of a blob of `len` bytes.
pub fn shard_len(redundancy: Redundancy, len: usize) -> usize {
    let per = len.div_ceil(redundancy.data()).max(1);
    per + per % 2
}

fn codec_error(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Invalid(format!("erasure codec: {e}"))
}

/// Cuts `blob` into its data shards and adds the parity shards: `total()`
/// shards of [`shard_len`] bytes, data first.
pub fn split(redundancy: Redundancy, blob: &[u8]) -> Result<Vec<Vec<u8>>, ErasureError> {
    split_framed(redundancy, blob, &[])
}

/// [`split`], each shard behind `header` (the shard blob's header, written
/// in place rather than copied in front afterwards).
pub fn split_framed(
    redundancy: Redundancy,
    blob: &[u8],
    header: &[u8],
) -> Result<Vec<Vec<u8>>, ErasureError> {
    let len = shard_len(redundancy, blob.len());
    let at = header.len();
    let framed = |piece: &[u8]| {
        let mut shard = Vec::with_capacity(at + len);
        shard.extend_from_slice(header);
        shard.extend_from_slice(piece);
        shard.resize(at + len, 0);
        shard
    };
    let mut shards: Vec<Vec<u8>> = (0..redundancy.data())
        .map(|i| {
            let start = (i * len).min(blob.len());
            let end = ((i + 1) * len).min(blob.len());
            framed(&blob[start..end])
        })
        .collect();
    let parity = reed_solomon_simd::encode(
        redundancy.data(),
        redundancy.parity(),
        shards.iter().map(|s| &s[at..]),
    )
    .map_err(codec_error)?;
    shards.extend(parity.iter().map(|p| framed(p)));
    Ok(shards)
}

/// Rebuilds a blob of `len` bytes from its shards, by index (`None`: not
/// at hand). Any `data()` of them suffice; fewer is
/// [`ErasureError::NotEnoughShards`], never wrong bytes.
pub fn join(
    redundancy: Redundancy,
    len: usize,
    shards: &[Option<&[u8]>],
) -> Result<Vec<u8>, ErasureError> {
    let expected = shard_len(redundancy, len);
    if shards.len() != redundancy.total() {
        return Err(ErasureError::Invalid(format!(
            "{} shard places for a {redundancy} blob",
            shards.len()
        )));
    }
    for shard in shards.iter().flatten() {
        if shard.len() != expected {
            return Err(ErasureError::ShardSize {
                expected,
                got: shard.len(),
            });
        }
    }
    let have = shards.iter().filter(|s| s.is_some()).count();
    if have < redundancy.data() {
        return Err(ErasureError::NotEnoughShards {
            have,
            need: redundancy.data(),
        });
    }
    let (data, parity) = shards.split_at(redundancy.data());
    let mut out = Vec::with_capacity(expected * redundancy.data());
    if data.iter().all(Option::is_some) {
        for shard in data.iter().flatten() {
            out.extend_from_slice(shard);
        }
    } else {
        let originals = data
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)));
        let recovery = parity
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)));
        let restored =
            reed_solomon_simd::decode(redundancy.data(), redundancy.parity(), originals, recovery)
                .map_err(codec_error)?;
        for (i, shard) in data.iter().enumerate() {
            match shard {
                Some(shard) => out.extend_from_slice(shard),
                None => out.extend_from_slice(restored.get(&i).ok_or_else(|| {
                    ErasureError::Invalid(format!("the codec did not restore shard {i}"))
                })?),
            }
        }
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_k_of_the_shards_rebuild_the_blob(
            data in 1u16..=8,
            parity in 1u16..=4,
            len in 0usize..5000,
            seed: u8,
            pick in proptest::collection::vec(any::<bool>(), 12),
            rotate in 0usize..12,
        ) {
            let r = Redundancy::new(data, parity).unwrap();
            let original = blob(len, seed);
            let shards = split(r, &original).unwrap();
            prop_assert_eq!(shards.len(), r.total());
            prop_assert!(shards.iter().all(|s| s.len() == shard_len(r, len)));
            // Keep exactly `data` shards, chosen by `pick` (rotated), the rest missing.
            let mut order: Vec<usize> = (0..r.total()).collect();
            order.sort_by_key(|i| (!pick[(i + rotate) % pick.len()], (i + rotate) % r.total()));
            let kept: std::collections::HashSet<usize> = order.into_iter().take(r.data()).collect();
            let given: Vec<Option<&[u8]>> = shards
                .iter()
                .enumerate()
                .map(|(i, s)| kept.contains(&i).then_some(s.as_slice()))
                .collect();
            prop_assert_eq!(join(r, len, &given).unwrap(), original);
        }

        #[test]
        fn fewer_than_k_shards_are_an_error_never_bytes(
            data in 2u16..=8,
            parity in 1u16..=4,
            len in 1usize..3000,
            missing_extra in 0usize..4,
        ) {
            let r = Redundancy::new(data, parity).unwrap();
            let original = blob(len, 1);
            let shards = split(r, &original).unwrap();
            let have = r.data() - 1 - missing_extra.min(r.data() - 1);
            let given: Vec<Option<&[u8]>> = shards
                .iter()
                .enumerate()
                .map(|(i, s)| (i < have).then_some(s.as_slice()))
                .collect();
            prop_assert_eq!(
                join(r, len, &given),
                Err(ErasureError::NotEnoughShards { have, need: r.data() })
            );
        }
    }

    #[test]
    fn redundancy_is_read_as_k_plus_m_and_bad_forms_say_what_to_give() {
        let r = Redundancy::parse("4+2").unwrap();
        assert_eq!((r.data(), r.parity(), r.total()), (4, 2, 6));
        assert_eq!(r.to_string(), "4+2");
        assert_eq!(Redundancy::parse(" 8 + 3 ").unwrap().to_string(), "8+3");
        for bad in [
            "4", "4+", "+2", "0+2", "4+0", "a+b", "100+1", "60+5", "4+2+1",
        ] {
            let e = Redundancy::parse(bad).unwrap_err().to_string();
            assert!(e.contains("4+2"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_shard_of_another_length_is_refused() {
        let r = Redundancy::new(2, 1).unwrap();
        let shards = split(r, &blob(100, 3)).unwrap();
        let short = &shards[1][..10];
        let given = [Some(shards[0].as_slice()), Some(short), None];
        assert!(matches!(
            join(r, 100, &given),
            Err(ErasureError::ShardSize { .. })
        ));
    }

    #[test]
    fn four_plus_two_stores_one_and_a_half_times_a_chunk() {
        let r = Redundancy::new(4, 2).unwrap();
        let chunk = 1 << 20;
        let stored: usize = split(r, &blob(chunk, 9))
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum();
        assert_eq!(stored, chunk * 3 / 2);
    }
}
