//! Identifiers: 32-byte keyed hashes shown as hex.
//!
//! A [`ChunkId`] is the keyed BLAKE3 hash of a chunk's plaintext under the network's
//! chunk-id subkey: equal chunks get equal ids inside one network (so they are stored
//! once), while outsiders who lack the key learn nothing from an id. A [`NameId`] is
//! the same construction over a file name under another subkey, so the metadata
//! database can be indexed by name without ever holding a name in clear.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id as 64 lower-case hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }

            /// The first `n` hex digits, for people.
            pub fn short(&self, n: usize) -> String {
                let mut hex = self.to_hex();
                hex.truncate(n.min(64));
                hex
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.short(16))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short(16))
            }
        }
    };
}

hash_id!(
    /// Content address of one chunk.
    ChunkId
);
hash_id!(
    /// Database key of one file name.
    NameId
);

/// Identifies the node that wrote a version; breaks ties between equal clocks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct OriginId(pub [u8; 16]);

impl OriginId {
    /// Derives a stable origin from any node identifier (e.g. a peer id's bytes).
    pub fn derive(node_identifier: &[u8]) -> Self {
        let hash = blake3::hash(node_identifier);
        let mut origin = [0u8; 16];
        origin.copy_from_slice(&hash.as_bytes()[..16]);
        Self(origin)
    }
}

impl fmt::Debug for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginId({})", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = ChunkId([0xab; 32]);
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(8), "abababab");
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(ChunkId::from_hex("abc"), None);
    }
}
