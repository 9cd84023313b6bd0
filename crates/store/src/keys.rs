//! The network key and everything derived from it.
//!
//! Every node of one vault shares a single secret, the *network key* (its 32-byte
//! root). It comes from one of four places:
//!
//! * **generated**: a node started with no key creates a random root on its first
//!   start and keeps it in its data dir (the default: nobody can guess it);
//! * **a join code** (`peervault invite`), which carries the root;
//! * **64 hex digits** given with `--key`, the root itself;
//! * **a passphrase**, stretched with Argon2id under the vault's own random salt
//!   and costs ([`KdfParams`], kept in the data dir, carried in join codes, and
//!   handed to a new node that asks its bootstrap peer). Vaults created before
//!   per-vault salts keep their fixed salt ([`KdfParams::legacy`]), so their
//!   passphrases still give the same key.
//!
//! The root is never used directly. Each purpose gets its own subkey from
//! `blake3::derive_key` with a distinct context string, so that a weakness in one
//! use (say, the pre-shared key of the transport) cannot be turned against another
//! (say, chunk encryption). The contexts are part of the on-disk and on-wire format:
//! changing one makes existing vaults unreadable.
//!
//! What may be shown about a key: the [`KeyFingerprint`] (64 bits of a subkey).
//! For a passphrase vault, testing a guess against it costs one Argon2id run with
//! the vault's salt, which the fingerprint does not carry: nothing a node shows
//! lets anyone test passphrases faster than the key derivation allows.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::KeyError;

/// Length in bytes of the network key root and of every subkey.
pub const KEY_LEN: usize = 32;

/// The passphrase of the public default key, which nodes used when started without
/// a key before keys were generated. Only data dirs created then still use it.
const INSECURE_DEFAULT_PASSPHRASE: &str = "peervault insecure default network key";

/// The fixed salt passphrases were stretched with before each vault had its own.
const LEGACY_SALT: &[u8] = b"peervault/network-key/argon2id/v1";

/// Argon2id costs for new vaults: OWASP's recommendation (19 MiB, 2 passes, one
/// lane). More memory would push a small node's peak RSS past its budget at every
/// start; the parameters are stored per vault, so they can grow later.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;
/// Bytes of a new vault's salt.
const SALT_LEN: usize = 16;

/// The weakest costs accepted from anyone (a bootstrap peer, a join code): OWASP's
/// equivalent settings run from 7 MiB x 5 passes to 46 MiB x 1, all at least this
/// much memory times passes. Weaker ones would let whoever handed them out test
/// passphrase guesses cheaply against what this node then sends.
const MIN_MEMORY_KIB: u32 = 7 * 1024;
const MIN_MEMORY_TIMES_PASSES: u64 = 7 * 1024 * 5;
/// The costliest accepted: a peer must not make a node exhaust its memory.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_PASSES: u32 = 16;
const MAX_LANES: u32 = 8;

const CONTEXT_PNET: &str = "peervault 2026-11 pnet pre-shared key v1";
const CONTEXT_CHUNK_ID: &str = "peervault 2026-11 chunk id v1";
const CONTEXT_CHUNK_SEAL: &str = "peervault 2026-11 chunk encryption v1";
const CONTEXT_RECORD_SEAL: &str = "peervault 2026-11 record encryption v1";
const CONTEXT_NAME_ID: &str = "peervault 2026-11 name id v1";
const CONTEXT_FINGERPRINT: &str = "peervault 2026-11 key fingerprint v1";

/// Where a network key came from; decides what the node says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// 64 hex digits (or 32 raw bytes) given by the user.
    Hex,
    /// A passphrase given by the user, stretched with Argon2id.
    Passphrase,
    /// Made at random by this node on its first start, kept in the data dir.
    Generated,
    /// Received in a join code, kept in the data dir.
    Joined,
    /// The public key of data dirs created before keys were generated.
    InsecureDefault,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Hex => "hex key",
            KeySource::Passphrase => "passphrase",
            KeySource::Generated => "generated",
            KeySource::Joined => "joined",
            KeySource::InsecureDefault => "public default (insecure)",
        })
    }
}

/// How a passphrase becomes a key: Argon2id with these costs and this salt.
///
/// Written as a PHC-style string without the hash,
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt in base64, no padding>`, in the data dir
/// (`kdf`), in join codes and in answers to nodes that ask for it.
#[derive(Clone, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: Vec<u8>,
}

impl fmt::Debug for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl serde::Serialize for KdfParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> serde::Deserialize<'de> for KdfParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_text(&text).map_err(serde::de::Error::custom)
    }
}

impl KdfParams {
    /// Fresh parameters for a new vault: a random salt, OWASP's costs.
    pub fn generate() -> Result<Self, KeyError> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            memory_kib: ARGON2_MEMORY_KIB,
            passes: ARGON2_PASSES,
            lanes: ARGON2_LANES,
            salt,
        })
    }

    /// The parameters every vault used before vaults had salts of their own.
    pub fn legacy() -> Self {
        Self {
            memory_kib: ARGON2_MEMORY_KIB,
            passes: ARGON2_PASSES,
            lanes: ARGON2_LANES,
            salt: LEGACY_SALT.to_vec(),
        }
    }

    /// True for [`KdfParams::legacy`].
    pub fn is_legacy(&self) -> bool {
        self.salt == LEGACY_SALT
    }

    /// The PHC-style text form (see the type's docs).
    pub fn to_text(&self) -> String {
        use base64::Engine as _;
        format!(
            "$argon2id$v=19$m={},t={},p={}${}",
            self.memory_kib,
            self.passes,
            self.lanes,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.salt)
        )
    }

    /// Parses [`KdfParams::to_text`]'s form, refusing costs below OWASP's
    /// recommendation or beyond what a node can afford.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        use base64::Engine as _;
        let bad = |why: &str| KeyError::Parameters(format!("{why} in {text:?}"));
        let mut parts = text.trim().split('$');
        if parts.next() != Some("") || parts.next() != Some("argon2id") {
            return Err(bad("not Argon2id parameters"));
        }
        if parts.next() != Some("v=19") {
            return Err(bad("not Argon2 version 19"));
        }
        let costs = parts.next().ok_or_else(|| bad("no costs"))?;
        let salt = parts.next().ok_or_else(|| bad("no salt"))?;
        if parts.next().is_some() {
            return Err(bad("trailing fields"));
        }
        let cost = |name: &str| -> Result<u32, KeyError> {
            costs
                .split(',')
                .find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(&format!("no cost {name}")))
        };
        let params = Self {
            memory_kib: cost("m")?,
            passes: cost("t")?,
            lanes: cost("p")?,
            salt: base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(salt)
                .map_err(|_| bad("a salt that is not base64"))?,
        };
        if !(8..=64).contains(&params.salt.len()) {
            return Err(bad("a salt of the wrong length"));
        }
        if params.memory_kib < MIN_MEMORY_KIB
            || u64::from(params.memory_kib) * u64::from(params.passes) < MIN_MEMORY_TIMES_PASSES
        {
            return Err(bad("costs below OWASP's recommendation"));
        }
        if params.memory_kib > MAX_MEMORY_KIB
            || !(1..=MAX_PASSES).contains(&params.passes)
            || !(1..=MAX_LANES).contains(&params.lanes)
        {
            return Err(bad("costs beyond what a node can afford"));
        }
        Ok(params)
    }
}

/// What a user gave as the key, before it is turned into one.
#[derive(Clone, PartialEq, Eq)]
pub enum UserKey {
    /// 64 hex digits: the key itself.
    Hex([u8; KEY_LEN]),
    /// Anything else: a passphrase, stretched with the vault's parameters.
    Passphrase(String),
}

impl Drop for UserKey {
    fn drop(&mut self) {
        match self {
            UserKey::Hex(root) => root.zeroize(),
            UserKey::Passphrase(text) => text.zeroize(),
        }
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserKey::Hex(_) => "UserKey::Hex(..)",
            UserKey::Passphrase(_) => "UserKey::Passphrase(..)",
        })
    }
}

impl UserKey {
    /// Reads what a user typed: exactly 64 hex digits are a raw key; 32 to 128 hex
    /// digits of another length are refused (a key cut or doubled in pasting, which
    /// taken as a passphrase would silently open another vault); anything else
    /// non-empty is a passphrase, used exactly as given.
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(KeyError::Empty);
        }
        let hex_digits = trimmed.bytes().all(|b| b.is_ascii_hexdigit());
        if hex_digits && trimmed.len() == 2 * KEY_LEN {
            let mut root = [0u8; KEY_LEN];
            hex::decode_to_slice(trimmed, &mut root).map_err(|_| KeyError::Empty)?;
            return Ok(UserKey::Hex(root));
        }
        if hex_digits && (KEY_LEN..=4 * KEY_LEN).contains(&trimmed.len()) {
            return Err(KeyError::HexLength(trimmed.len()));
        }
        Ok(UserKey::Passphrase(input.to_string()))
    }
}

/// The shared secret of one vault.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NetworkKey {
    root: [u8; KEY_LEN],
    #[zeroize(skip)]
    source: KeySource,
    /// For a passphrase's key: how it was stretched.
    #[zeroize(skip)]
    kdf: Option<KdfParams>,
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
    /// A key from its 32 raw bytes.
    pub fn from_bytes(root: [u8; KEY_LEN], source: KeySource) -> Self {
        Self {
            root,
            source,
            kdf: None,
        }
    }

    /// A new random key (for a new vault).
    pub fn generate() -> Result<Self, KeyError> {
        let mut root = [0u8; KEY_LEN];
        getrandom::fill(&mut root).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_bytes(root, KeySource::Generated))
    }

    /// A key from 64 hex digits (surrounding whitespace allowed).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        match UserKey::parse(text)? {
            UserKey::Hex(root) => Ok(Self::from_bytes(root, KeySource::Hex)),
            UserKey::Passphrase(_) => Err(KeyError::NotHex),
        }
    }

    /// Stretches a passphrase with Argon2id under `params` (a second or so of CPU
    /// and `params`' memory: keep it off async threads).
    pub fn from_passphrase(passphrase: &str, params: &KdfParams) -> Result<Self, KeyError> {
        let argon = argon2::Params::new(
            params.memory_kib,
            params.passes,
            params.lanes,
            Some(KEY_LEN),
        )
        .map_err(|e| KeyError::Stretch(e.to_string()))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon);
        let mut root = [0u8; KEY_LEN];
        argon
            .hash_password_into(passphrase.as_bytes(), &params.salt, &mut root)
            .map_err(|e| KeyError::Stretch(e.to_string()))?;
        Ok(Self {
            root,
            source: KeySource::Passphrase,
            kdf: Some(params.clone()),
        })
    }

    /// The public default key of data dirs created before keys were generated.
    /// Anyone can read it in the source; the caller must warn.
    pub fn insecure_default() -> Self {
        let mut key = Self::from_passphrase(INSECURE_DEFAULT_PASSPHRASE, &KdfParams::legacy())
            .unwrap_or_else(|_| unreachable!("the default passphrase is valid"));
        key.source = KeySource::InsecureDefault;
        key.kdf = None;
        key
    }

    /// The same key, carrying the parameters its passphrase is stretched with (a
    /// joined node of a passphrase vault hands them on).
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.kdf = Some(params);
        self
    }

    /// The same key, marked as coming from `source` (a generated or joined key read
    /// back from the data dir).
    pub fn with_source(mut self, source: KeySource) -> Self {
        self.source = source;
        self
    }

    /// How this key was given.
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// For a passphrase's key, the parameters it was stretched with.
    pub fn kdf_params(&self) -> Option<&KdfParams> {
        self.kdf.as_ref()
    }

    /// The raw root, for writing into the data dir or a join code.
    pub fn root(&self) -> &[u8; KEY_LEN] {
        &self.root
    }

    /// True if both are the same key, whatever their sources.
    pub fn same_key(&self, other: &NetworkKey) -> bool {
        // Not secret-dependent timing that matters: both keys are this node's own.
        self.root == other.root
    }

    /// True for the built-in public key.
    pub fn is_insecure_default(&self) -> bool {
        self.source == KeySource::InsecureDefault
    }

    fn derive(&self, context: &str) -> [u8; KEY_LEN] {
        blake3::derive_key(context, &self.root)
    }

    /// The private channel's pre-shared key (the context still says "pnet", the
    /// layer it was first made for: it is part of the format).
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

/// The key of one key epoch (see [`crate::crypto`]): data sealed from the
/// epoch's start on uses the subkeys of this key, not the vault key's.
///
/// Epoch 0 is the vault key itself and never appears as an `EpochKey`. A new
/// epoch starts when a device is removed (or on `peervault rekey`), and its key
/// is handed only to the members that remain, so that what is written from then
/// on cannot be opened with what the removed device held.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, serde::Serialize, serde::Deserialize)]
pub struct EpochKey {
    /// Counts up from 1; two epochs started at once on two nodes share a number
    /// and are told apart by their keys ([`EpochKey::hint`]).
    #[zeroize(skip)]
    pub number: u32,
    pub key: [u8; KEY_LEN],
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochKey({}, {})", self.number, hex::encode(self.hint()))
    }
}

const CONTEXT_EPOCH_HINT: &str = "peervault 2026-12 epoch key hint v1";

impl EpochKey {
    /// A new random key for epoch `number`.
    pub fn generate(number: u32) -> Result<Self, KeyError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self { number, key })
    }

    /// Two bytes that name the key in every blob and record sealed with it, so
    /// that opening picks the right key without trying each (public: it says
    /// nothing useful about the key).
    pub fn hint(&self) -> [u8; 2] {
        let full = blake3::derive_key(CONTEXT_EPOCH_HINT, &self.key);
        [full[0], full[1]]
    }

    /// The order of epochs: by number, then (for two started at once) by hint
    /// and key, so that every node that holds both picks the same current one.
    pub fn order(&self) -> (u32, [u8; 2], [u8; KEY_LEN]) {
        (self.number, self.hint(), self.key)
    }

    /// The channel's pre-shared key in this epoch.
    pub fn pnet_psk(&self) -> [u8; KEY_LEN] {
        blake3::derive_key(CONTEXT_PNET, &self.key)
    }

    pub(crate) fn chunk_seal(&self) -> [u8; KEY_LEN] {
        blake3::derive_key(CONTEXT_CHUNK_SEAL, &self.key)
    }

    pub(crate) fn record_seal(&self) -> [u8; KEY_LEN] {
        blake3::derive_key(CONTEXT_RECORD_SEAL, &self.key)
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
        let key = NetworkKey::from_hex(hex_key).unwrap();
        assert_eq!(key.source(), KeySource::Hex);
        assert_eq!(key.root[1], 0x11);
        // Upper case and surrounding whitespace name the same key.
        let upper = NetworkKey::from_hex(&format!(" {} ", hex_key.to_uppercase())).unwrap();
        assert_eq!(key.fingerprint(), upper.fingerprint());
        assert!(matches!(
            UserKey::parse(hex_key).unwrap(),
            UserKey::Hex(root) if root == key.root
        ));
    }

    #[test]
    fn hex_of_the_wrong_length_is_refused_with_a_reason() {
        for len in [32, 62, 63, 65, 66, 128] {
            let e = UserKey::parse(&"a".repeat(len)).unwrap_err();
            assert!(
                matches!(e, KeyError::HexLength(n) if n == len),
                "{len}: {e}"
            );
            assert!(e.to_string().contains("64"), "{e}");
        }
        // Short hex words and anything with other characters are passphrases.
        for text in ["deadbeef", "correct horse battery staple", &"g".repeat(63)] {
            assert!(matches!(
                UserKey::parse(text).unwrap(),
                UserKey::Passphrase(_)
            ));
        }
        assert!(matches!(UserKey::parse("  "), Err(KeyError::Empty)));
    }

    #[test]
    fn a_passphrase_gives_one_key_per_salt() {
        let params = KdfParams::generate().unwrap();
        let a = NetworkKey::from_passphrase("your-32-byte-secure-encryption-key", &params).unwrap();
        let b = NetworkKey::from_passphrase("your-32-byte-secure-encryption-key", &params).unwrap();
        let c = NetworkKey::from_passphrase("another passphrase", &params).unwrap();
        assert_eq!(a.source(), KeySource::Passphrase);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        let other_vault = KdfParams::generate().unwrap();
        assert_ne!(params, other_vault, "salts are random");
        let d = NetworkKey::from_passphrase("your-32-byte-secure-encryption-key", &other_vault)
            .unwrap();
        assert_ne!(
            a.fingerprint(),
            d.fingerprint(),
            "another vault, another key"
        );
        assert_eq!(a.kdf_params(), Some(&params));
    }

    #[test]
    fn the_legacy_salt_gives_the_keys_vaults_were_created_with() {
        // Fingerprints from before per-vault salts, as stored in their data dirs.
        let key =
            NetworkKey::from_passphrase("blackbox test passphrase", &KdfParams::legacy()).unwrap();
        assert_eq!(key.fingerprint().to_string(), LEGACY_FINGERPRINT);
        assert!(KdfParams::legacy().is_legacy());
        assert!(!KdfParams::generate().unwrap().is_legacy());
    }

    /// The fingerprint of "blackbox test passphrase" under the fixed salt, computed
    /// outside this code (argon2-cffi's Argon2id and the blake3 package in Python).
    const LEGACY_FINGERPRINT: &str = "2166b30be27be2d4";

    #[test]
    fn parameters_round_trip_and_weak_or_huge_ones_are_refused() {
        let params = KdfParams::generate().unwrap();
        let text = params.to_text();
        assert!(
            text.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{text}"
        );
        assert_eq!(KdfParams::from_text(&text).unwrap(), params);
        assert_eq!(
            KdfParams::from_text(&KdfParams::legacy().to_text()).unwrap(),
            KdfParams::legacy()
        );
        let salt = "c2FsdHNhbHRzYWx0c2FsdA";
        for bad in [
            String::new(),
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ".into(),
            format!("$argon2id$v=19$m=8,t=1,p=1${salt}"),
            format!("$argon2id$v=19$m=9216,t=1,p=1${salt}"),
            format!("$argon2id$v=19$m=4194304,t=2,p=1${salt}"),
            format!("$argon2id$v=19$m=19456,t=2,p=64${salt}"),
            "$argon2id$v=19$m=19456,t=2,p=1$!!".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA".into(),
            format!("$argon2id$v=19$m=19456,t=2,p=1${salt}$x"),
        ] {
            assert!(KdfParams::from_text(&bad).is_err(), "{bad}");
        }
        // OWASP's other equivalent settings are fine.
        assert!(KdfParams::from_text(&format!("$argon2id$v=19$m=47104,t=1,p=1${salt}")).is_ok());
        assert!(KdfParams::from_text(&format!("$argon2id$v=19$m=7168,t=5,p=1${salt}")).is_ok());
    }

    #[test]
    fn generated_keys_are_random_and_marked() {
        let (a, b) = (
            NetworkKey::generate().unwrap(),
            NetworkKey::generate().unwrap(),
        );
        assert!(!a.same_key(&b));
        assert_eq!(a.source(), KeySource::Generated);
        let read_back =
            NetworkKey::from_bytes(*a.root(), KeySource::Hex).with_source(KeySource::Joined);
        assert!(read_back.same_key(&a));
        assert_eq!(read_back.source(), KeySource::Joined);
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
