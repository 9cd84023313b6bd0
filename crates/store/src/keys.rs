//! The network key and everything derived from it.
//!
//! Every node of one vault shares a single secret, the *network key*. Users give it
//! either as 64 hex digits (32 raw bytes) or as any passphrase; a passphrase is
//! stretched with Argon2id under a fixed, domain-specific salt so that every node
//! derives the same root from the same words.
//!
//! The root is never used directly. Each purpose gets its own subkey from
//! `blake3::derive_key` with a distinct context string, so that a weakness in one
//! use (say, the pre-shared key of the transport) cannot be turned against another
//! (say, chunk encryption). The contexts are part of the on-disk and on-wire format:
//! changing one makes existing vaults unreadable.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::KeyError;

/// Length in bytes of the network key root and of every subkey.
pub const KEY_LEN: usize = 32;

/// The passphrase used when the user gives no key. Public, hence insecure: it exists
/// only so that the Quick Start works without preparation, and the node says so loudly.
const INSECURE_DEFAULT_PASSPHRASE: &str = "peervault insecure default network key";

/// Fixed salt for stretching passphrases. A per-vault random salt would be stronger
/// against precomputation, but every node must derive the same key from the same
/// passphrase without any prior exchange, so the salt has to be a constant.
const PASSPHRASE_SALT: &[u8] = b"peervault/network-key/argon2id/v1";

/// Argon2id cost: the OWASP-recommended minimum (19 MiB, 2 passes, 1 lane). Higher
/// memory would push a small node's peak RSS past its budget at every start.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;

const CONTEXT_PNET: &str = "peervault 2026-11 pnet pre-shared key v1";
const CONTEXT_CHUNK_ID: &str = "peervault 2026-11 chunk id v1";
const CONTEXT_CHUNK_SEAL: &str = "peervault 2026-11 chunk encryption v1";
const CONTEXT_RECORD_SEAL: &str = "peervault 2026-11 record encryption v1";
const CONTEXT_NAME_ID: &str = "peervault 2026-11 name id v1";
const CONTEXT_FINGERPRINT: &str = "peervault 2026-11 key fingerprint v1";

/// Where a network key came from; decides whether the node must warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// 64 hex digits given by the user.
    Hex,
    /// A passphrase given by the user, stretched with Argon2id.
    Passphrase,
    /// No key given: the public built-in default.
    InsecureDefault,
}

/// The shared secret of one vault.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NetworkKey {
    root: [u8; KEY_LEN],
    #[zeroize(skip)]
    source: KeySource,
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkKey")
            .field("source", &self.source)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl NetworkKey {
    /// Interprets what a user typed: exactly 64 hex digits are the raw key, anything
    /// else non-empty is a passphrase.
    pub fn from_user_input(input: &str) -> Result<Self, KeyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(KeyError::Empty);
        }
        if trimmed.len() == 2 * KEY_LEN && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut root = [0u8; KEY_LEN];
            hex::decode_to_slice(trimmed, &mut root).map_err(|_| KeyError::Empty)?;
            return Ok(Self {
                root,
                source: KeySource::Hex,
            });
        }
        // The passphrase is used exactly as given (not trimmed), so that a key with
        // meaningful spaces still works; only the hex form is whitespace-tolerant.
        Self::from_passphrase(input, KeySource::Passphrase)
    }

    /// The public default key. Anyone can read it in the source; the caller must warn.
    pub fn insecure_default() -> Self {
        Self::from_passphrase(INSECURE_DEFAULT_PASSPHRASE, KeySource::InsecureDefault)
            .unwrap_or_else(|_| unreachable!("the default passphrase is valid"))
    }

    fn from_passphrase(passphrase: &str, source: KeySource) -> Result<Self, KeyError> {
        let params = argon2::Params::new(
            ARGON2_MEMORY_KIB,
            ARGON2_PASSES,
            ARGON2_LANES,
            Some(KEY_LEN),
        )
        .map_err(|e| KeyError::Stretch(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut root = [0u8; KEY_LEN];
        argon
            .hash_password_into(passphrase.as_bytes(), PASSPHRASE_SALT, &mut root)
            .map_err(|e| KeyError::Stretch(e.to_string()))?;
        Ok(Self { root, source })
    }

    /// How this key was given.
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// True for the built-in public key.
    pub fn is_insecure_default(&self) -> bool {
        self.source == KeySource::InsecureDefault
    }

    fn derive(&self, context: &str) -> [u8; KEY_LEN] {
        blake3::derive_key(context, &self.root)
    }

    /// The libp2p private-network pre-shared key.
    pub fn pnet_psk(&self) -> [u8; KEY_LEN] {
        self.derive(CONTEXT_PNET)
    }

    /// The subkeys used by the store.
    pub fn store_keys(&self) -> StoreKeys {
        StoreKeys {
            chunk_id: self.derive(CONTEXT_CHUNK_ID),
            chunk_seal: self.derive(CONTEXT_CHUNK_SEAL),
            record_seal: self.derive(CONTEXT_RECORD_SEAL),
            name_id: self.derive(CONTEXT_NAME_ID),
        }
    }

    /// A short public identifier of the key: safe to store and print, useless for
    /// decryption, equal on every node that shares the key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        let full = self.derive(CONTEXT_FINGERPRINT);
        let mut short = [0u8; 8];
        short.copy_from_slice(&full[..8]);
        KeyFingerprint(short)
    }
}

/// The store's subkeys, one per purpose.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoreKeys {
    pub(crate) chunk_id: [u8; KEY_LEN],
    pub(crate) chunk_seal: [u8; KEY_LEN],
    pub(crate) record_seal: [u8; KEY_LEN],
    pub(crate) name_id: [u8; KEY_LEN],
}

impl fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKeys(..)")
    }
}

/// Eight bytes that identify a network key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyFingerprint(pub [u8; 8]);

impl KeyFingerprint {
    /// Parses the 16-hex-digit form written by `Display`.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 8];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_hex_digits_are_a_raw_key() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let key = NetworkKey::from_user_input(hex_key).unwrap();
        assert_eq!(key.source(), KeySource::Hex);
        assert_eq!(key.root[1], 0x11);
        // Upper case and surrounding whitespace name the same key.
        let upper = NetworkKey::from_user_input(&format!(" {} ", hex_key.to_uppercase())).unwrap();
        assert_eq!(key.fingerprint(), upper.fingerprint());
    }

    #[test]
    fn anything_else_is_a_passphrase_and_is_deterministic() {
        let a = NetworkKey::from_user_input("your-32-byte-secure-encryption-key").unwrap();
        let b = NetworkKey::from_user_input("your-32-byte-secure-encryption-key").unwrap();
        let c = NetworkKey::from_user_input("another passphrase").unwrap();
        assert_eq!(a.source(), KeySource::Passphrase);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        // 63 hex digits are not a raw key.
        let almost = NetworkKey::from_user_input(&"a".repeat(63)).unwrap();
        assert_eq!(almost.source(), KeySource::Passphrase);
    }

    #[test]
    fn empty_key_is_refused() {
        assert!(matches!(
            NetworkKey::from_user_input("  "),
            Err(KeyError::Empty)
        ));
    }

    #[test]
    fn subkeys_are_distinct() {
        let key = NetworkKey::insecure_default();
        assert!(key.is_insecure_default());
        let keys = key.store_keys();
        let all = [
            key.pnet_psk(),
            keys.chunk_id,
            keys.chunk_seal,
            keys.record_seal,
            keys.name_id,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
            assert_ne!(a, &key.root);
        }
    }

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = NetworkKey::insecure_default().fingerprint();
        assert_eq!(KeyFingerprint::from_hex(&fp.to_string()), Some(fp));
        assert_eq!(KeyFingerprint::from_hex("zz"), None);
    }
}
