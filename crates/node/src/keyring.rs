//! Which key a node's vault uses, where it is kept, and how nodes are added.
//!
//! A vault's worth is that nobody else gets in, so the default is a key nobody can
//! guess: a node started with nothing creates a random 256-bit key on its first
//! start and keeps it in its data dir (`vault.key`, 0600). Further nodes join with
//! a code from `peervault invite` ([`JoinCode`]: the key, the inviting node's
//! addresses, and for a passphrase vault its key-derivation parameters), and keep
//! the key the same way. Scripts may still give the key itself (`--key`, 64 hex
//! digits) or a passphrase; a passphrase is stretched with the vault's own random
//! salt ([`KdfParams`]), kept in the data dir (`kdf`) and asked of a bootstrap peer
//! by a new node that has only the passphrase.
//!
//! Data dirs from before all this (a `meta.redb` and neither file) keep the key
//! they were made with: their passphrase under the old fixed salt, or the public
//! default key if they were started without one, which the node then says at
//! every start.
//!
//! Nothing is written until the vault has opened with the key (its fingerprint
//! checked), so a wrong key never leaves a key file behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peervault_net::{Endpoint, Multiaddr};
use peervault_store::{KdfParams, KeyError, KeySource, NetworkKey, UserKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The key of a vault whose key was generated here or received in a join code.
pub const VAULT_KEY_FILE: &str = "vault.key";
/// The key-derivation parameters of a passphrase vault.
pub const KDF_FILE: &str = "kdf";
/// The metadata database: its presence without key files marks an older data dir.
const DATABASE_FILE: &str = "meta.redb";

/// How long a new node with a passphrase keeps asking its bootstrap peers for the
/// vault's parameters before it gives up (they may still be starting).
pub const KDF_QUERY_PATIENCE: Duration = Duration::from_secs(60);
const KDF_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const KDF_QUERY_PAUSE: Duration = Duration::from_secs(1);

/// What a node was given to find its vault's key.
#[derive(Clone, Default)]
pub enum KeyInput {
    /// Nothing: the data dir's key, or a new random one on the first start.
    #[default]
    Stored,
    /// The key itself (64 hex digits, or given by a program).
    Key(NetworkKey),
    /// A passphrase, stretched with the vault's parameters.
    Passphrase(Zeroizing<String>),
    /// A join code of an earlier version (it carries the vault key).
    Join(JoinCode),
    /// An invitation from `peervault invite` (see [`crate::invitations`]).
    Invitation(crate::invitations::InvitationCode),
}

impl std::fmt::Debug for KeyInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyInput::Stored => "KeyInput::Stored",
            KeyInput::Key(_) => "KeyInput::Key(..)",
            KeyInput::Passphrase(_) => "KeyInput::Passphrase(..)",
            KeyInput::Join(_) => "KeyInput::Join(..)",
            KeyInput::Invitation(_) => "KeyInput::Invitation(..)",
        })
    }
}

impl From<NetworkKey> for KeyInput {
    fn from(key: NetworkKey) -> Self {
        KeyInput::Key(key)
    }
}

impl KeyInput {
    /// What a user typed for `--key`: 64 hex digits are the key, a hex string of
    /// another length is refused, anything else is a passphrase.
    pub fn parse_key(text: &str) -> Result<Self, KeyError> {
        Ok(match UserKey::parse(text)? {
            UserKey::Hex(root) => KeyInput::Key(NetworkKey::from_bytes(root, KeySource::Hex)),
            UserKey::Passphrase(ref passphrase) => {
                KeyInput::Passphrase(Zeroizing::new(passphrase.clone()))
            }
        })
    }
}

/// Why the vault's key could not be settled. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "this vault's key comes from a passphrase (the data dir has {}): give it with --key or PEERVAULT_KEY",
        .0.display()
    )]
    PassphraseNeeded(PathBuf),
    #[error(
        "this data dir's vault key is kept in {} and is not a passphrase's: start without --key \
         (or give the key's 64 hex digits)",
        .0.display()
    )]
    NotAPassphraseVault(PathBuf),
    #[error(
        "this data dir belongs to another vault (its key is in {}); use another --data-dir to \
         join this one",
        .0.display()
    )]
    OtherVault(PathBuf),
    #[error(
        "the bootstrap peer {0} holds a vault whose key is not a passphrase: a passphrase cannot \
         join it. Run `peervault invite` on that node and start this one with --join CODE"
    )]
    PeerHasNoPassphrase(String),
    #[error(
        "could not learn this vault's passphrase salt from any bootstrap peer within {}s ({last}). \
         Start a bootstrap node first, or join with a code from `peervault invite`",
        waited.as_secs()
    )]
    NoParameters { waited: Duration, last: String },
    #[error("the bootstrap peer {0} sent unusable key-derivation parameters: {1}")]
    BadParameters(String, KeyError),
    #[error("invalid join code: {0}")]
    BadJoinCode(String),
    #[error("the invitation was refused: {0}")]
    InvitationRefused(String),
    #[error(
        "no member answered the invitation at its addresses ({0}); check that the inviting \
         node runs and can be reached from here"
    )]
    InvitationUnanswered(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key derivation task failed: {0}")]
    Task(String),
}

/// What resolving the key found, for the node to say at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A random key made now for a new vault.
    Created,
    /// The key kept in the data dir.
    Kept,
    /// Given with `--key` (hex or passphrase).
    Given,
    /// From a join code.
    Joined,
    /// An older data dir without a key: the public default.
    LegacyDefault,
}

/// The settled key (with a passphrase vault's parameters) and where it came from.
#[derive(Debug)]
pub struct ResolvedKey {
    pub key: NetworkKey,
    pub origin: KeyOrigin,
    /// Addresses from a join code, to dial as bootstrap peers.
    pub join_addrs: Vec<Multiaddr>,
    /// Key epochs an invitation's welcome brought.
    pub epochs: Vec<peervault_store::EpochKey>,
    /// Removal records (signed JSON) the welcome brought.
    pub removals: Vec<String>,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError {
    let path = path.to_path_buf();
    move |source| KeyringError::Io {
        action,
        path,
        source,
    }
}

/// Reads `vault.key`: 64 hex digits, then how the key came (generated, joined).
fn read_vault_key(path: &Path) -> Result<Option<NetworkKey>, KeyringError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read", path)(e)),
    };
    let mut lines = text.lines();
    let key =
        NetworkKey::from_hex(lines.next().unwrap_or_default()).map_err(|_| KeyringError::Io {
            action: "cannot use",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "it does not start with 64 hex digits; restore it from a backup",
            ),
        })?;
    let source = match lines.next().map(str::trim) {
        Some("joined") => KeySource::Joined,
        _ => KeySource::Generated,
    };
    Ok(Some(key.with_source(source)))
}

fn read_kdf(path: &Path) -> Result<Option<KdfParams>, KeyringError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(KdfParams::from_text(&text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

async fn stretch(
    passphrase: Zeroizing<String>,
    params: KdfParams,
) -> Result<NetworkKey, KeyringError> {
    // Argon2id takes a moment and its memory: keep it off the async threads.
    tokio::task::spawn_blocking(move || NetworkKey::from_passphrase(&passphrase, &params))
        .await
        .map_err(|e| KeyringError::Task(e.to_string()))?
        .map_err(KeyringError::Key)
}

/// Asks the bootstrap peers, in turn, for the vault's key-derivation parameters
/// until one answers or `patience` runs out.
async fn ask_bootstrap(
    bootstrap: &[Endpoint],
    patience: Duration,
) -> Result<KdfParams, KeyringError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut last = String::from("no bootstrap peer given");
    let mut announced = false;
    loop {
        for endpoint in bootstrap {
            match peervault_net::ask_kdf_parameters(endpoint, KDF_QUERY_TIMEOUT).await {
                Ok(Some(text)) => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    return KdfParams::from_text(&text)
                        .map_err(|e| KeyringError::BadParameters(endpoint.to_string(), e));
                }
                Ok(None) => return Err(KeyringError::PeerHasNoPassphrase(endpoint.to_string())),
                Err(e) => last = e.to_string(),
            }
        }
        if tokio::time::Instant::now() + KDF_QUERY_PAUSE >= deadline {
            return Err(KeyringError::NoParameters {
                waited: patience,
                last,
            });
        }
        if !announced {
            tracing::warn!(
                "waiting for a bootstrap peer to learn this vault's passphrase salt ({last})"
            );
            announced = true;
        }
        tokio::time::sleep(KDF_QUERY_PAUSE).await;
    }
}

/// Settles the vault's key for `data_dir` (which the caller has locked);
/// `identity` is the node's, to which an invitation's keys are sealed.
pub async fn resolve(
    data_dir: &Path,
    input: KeyInput,
    bootstrap: &[Endpoint],
    patience: Duration,
    identity: &peervault_net::NodeIdentity,
) -> Result<ResolvedKey, KeyringError> {
    let key_path = data_dir.join(VAULT_KEY_FILE);
    let kdf_path = data_dir.join(KDF_FILE);
    let kept = read_vault_key(&key_path)?;
    let kdf = read_kdf(&kdf_path)?;
    let older = kept.is_none() && kdf.is_none() && data_dir.join(DATABASE_FILE).exists();
    let resolved = |key, origin| ResolvedKey {
        key,
        origin,
        join_addrs: Vec::new(),
        epochs: Vec::new(),
        removals: Vec::new(),
    };
    match input {
        KeyInput::Stored => match (kept, kdf) {
            (Some(key), Some(params)) => Ok(resolved(key.with_kdf_params(params), KeyOrigin::Kept)),
            (Some(key), None) => Ok(resolved(key, KeyOrigin::Kept)),
            (None, Some(_)) => Err(KeyringError::PassphraseNeeded(kdf_path)),
            (None, None) if older => {
                let key = tokio::task::spawn_blocking(NetworkKey::insecure_default)
                    .await
                    .map_err(|e| KeyringError::Task(e.to_string()))?;
                Ok(resolved(key, KeyOrigin::LegacyDefault))
            }
            (None, None) => Ok(resolved(NetworkKey::generate()?, KeyOrigin::Created)),
        },
        KeyInput::Key(key) => match kept {
            Some(kept) if !kept.same_key(&key) => Err(KeyringError::OtherVault(key_path)),
            _ => Ok(resolved(key, KeyOrigin::Given)),
        },
        KeyInput::Passphrase(passphrase) => {
            let params = match (kdf, kept) {
                (Some(params), _) => params,
                (None, Some(_)) => return Err(KeyringError::NotAPassphraseVault(key_path)),
                (None, None) if older => KdfParams::legacy(),
                (None, None) if !bootstrap.is_empty() => ask_bootstrap(bootstrap, patience).await?,
                (None, None) => KdfParams::generate()?,
            };
            Ok(resolved(
                stretch(passphrase, params).await?,
                KeyOrigin::Given,
            ))
        }
        KeyInput::Invitation(code) => {
            let join_addrs = code.addrs.clone();
            // Joined before (a restart with the same flags): the kept key.
            if let Some(key) = kept {
                let key = match kdf {
                    Some(params) => key.with_kdf_params(params),
                    None => key,
                };
                return Ok(ResolvedKey {
                    join_addrs,
                    ..resolved(key, KeyOrigin::Kept)
                });
            }
            let (key, epochs, removals) = redeem(&code, identity).await?;
            Ok(ResolvedKey {
                join_addrs,
                epochs,
                removals,
                ..resolved(key, KeyOrigin::Joined)
            })
        }
        KeyInput::Join(code) => {
            let key = NetworkKey::from_bytes(code.key, KeySource::Joined);
            if let Some(kept) = &kept
                && !kept.same_key(&key)
            {
                return Err(KeyringError::OtherVault(key_path));
            }
            // A passphrase vault's parameters are kept, so that `--key PASSPHRASE`
            // opens this vault too and this node can hand them on.
            let key = match kdf.as_ref().or(code.kdf.as_ref()) {
                Some(params) => key.with_kdf_params(params.clone()),
                None => key,
            };
            Ok(ResolvedKey {
                join_addrs: code.addrs.clone(),
                ..resolved(key, KeyOrigin::Joined)
            })
        }
    }
}

/// How long redeeming an invitation may take at each address.
const REDEEM_TIMEOUT: Duration = Duration::from_secs(10);

/// Redeems `code` at its addresses, in turn: the vault key and its epochs.
async fn redeem(
    code: &crate::invitations::InvitationCode,
    identity: &peervault_net::NodeIdentity,
) -> Result<(NetworkKey, Vec<peervault_store::EpochKey>, Vec<String>), KeyringError> {
    use peervault_net::transport::HandshakeError;
    let mut last = String::from("the code holds no address");
    for addr in &code.addrs {
        let Ok(endpoint) = Endpoint::parse(&addr.to_string()) else {
            continue;
        };
        let psk = code.psk();
        match peervault_net::redeem_invitation(&endpoint, identity, psk, REDEEM_TIMEOUT).await {
            Ok((member, sealed)) => {
                let welcome =
                    crate::invitations::open_welcome(identity.keypair(), &member, &sealed)
                        .map_err(|e| KeyringError::InvitationRefused(e.to_string()))?;
                let mut key = NetworkKey::from_bytes(welcome.vault_key, KeySource::Joined);
                if let Some(text) = &welcome.kdf {
                    key = key.with_kdf_params(KdfParams::from_text(text)?);
                }
                tracing::info!("invitation accepted by {member}: this node is a member now");
                return Ok((key, welcome.epochs.clone(), welcome.removals.clone()));
            }
            Err(HandshakeError::Refused(reason)) => {
                return Err(KeyringError::InvitationRefused(reason));
            }
            Err(HandshakeError::KeyMismatch) => {
                last = format!(
                    "{endpoint} does not know this invitation (another vault, or the \
                     invitation's record has not reached it)"
                );
            }
            Err(e) => last = format!("{endpoint}: {e}"),
        }
    }
    Err(KeyringError::InvitationUnanswered(last))
}

/// Writes a secret file of the data dir (0600), atomically and durably; a symlink
/// is followed, anything but a regular file there is refused, never replaced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    peervault_store::files::write_atomically(path, bytes, 0o600)
}

impl ResolvedKey {
    /// Writes the key files the data dir lacks: a passphrase vault's parameters,
    /// and a key made here or received in a join code (never one given with
    /// `--key`, nor a passphrase). Call once the vault has opened with the key.
    pub fn persist(&self, data_dir: &Path) -> Result<(), KeyringError> {
        let kdf_path = data_dir.join(KDF_FILE);
        if let Some(params) = self.key.kdf_params()
            && !kdf_path.exists()
        {
            let text = format!("{}\n", params.to_text());
            write_private(&kdf_path, text.as_bytes()).map_err(io_err("cannot write", &kdf_path))?;
        }
        let key_path = data_dir.join(VAULT_KEY_FILE);
        let source = match self.origin {
            KeyOrigin::Created => "generated",
            KeyOrigin::Joined => "joined",
            _ => return Ok(()),
        };
        if !key_path.exists() {
            let text = Zeroizing::new(format!("{}\n{source}\n", hex::encode(self.key.root())));
            write_private(&key_path, text.as_bytes()).map_err(io_err("cannot write", &key_path))?;
        }
        Ok(())
    }
}

/// Prefix of every join code (its format's version).
const JOIN_PREFIX: &str = "pv1-";

/// A code that lets a new node join a vault: the vault's key, the key-derivation
/// parameters of a passphrase vault, and where the inviting node listens.
///
/// Text form: `pv1-` then base64url (no padding) of the postcard encoding,
/// followed by the first 4 bytes of its BLAKE3 hash, so that a mistyped code is
/// refused rather than taken for another vault. Anyone holding a code can join
/// the vault and read everything in it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinCode {
    key: [u8; 32],
    kdf: Option<KdfParams>,
    #[serde(with = "multiaddrs")]
    pub addrs: Vec<Multiaddr>,
}

impl std::fmt::Debug for JoinCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinCode")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Drop for JoinCode {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
}

pub(crate) mod multiaddrs {
    use peervault_net::Multiaddr;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(addrs: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<serde_bytes::ByteBuf> = addrs
            .iter()
            .map(|a| serde_bytes::ByteBuf::from(a.to_vec()))
            .collect();
        bytes.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
        let bytes = Vec::<serde_bytes::ByteBuf>::deserialize(d)?;
        bytes
            .into_iter()
            .map(|b| Multiaddr::try_from(b.into_vec()).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Most addresses a code carries (a node on many interfaces lists its first few).
const MAX_JOIN_ADDRS: usize = 8;

impl JoinCode {
    /// A code for `key`, reachable at `addrs`.
    pub fn new(key: &NetworkKey, addrs: Vec<Multiaddr>) -> Self {
        let mut addrs = addrs;
        addrs.truncate(MAX_JOIN_ADDRS);
        Self {
            key: *key.root(),
            kdf: key.kdf_params().cloned(),
            addrs,
        }
    }

    /// The key it carries.
    pub fn key(&self) -> NetworkKey {
        NetworkKey::from_bytes(self.key, KeySource::Joined)
    }

    /// The one-line text form.
    pub fn to_text(&self) -> String {
        let bytes = Zeroizing::new(postcard::to_stdvec(self).unwrap_or_default());
        encode_code(JOIN_PREFIX, &bytes)
    }

    /// Reads a code as `to_text` writes it (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let payload = decode_code(JOIN_PREFIX, text)?;
        postcard::from_bytes(&payload)
            .map_err(|_| KeyringError::BadJoinCode("it does not decode".into()))
    }
}

/// `prefix`, then base64url (no padding) of `payload` and the first 4 bytes
/// of its BLAKE3 hash, so that a mistyped code is refused rather than taken
/// for another.
pub(crate) fn encode_code(prefix: &str, payload: &[u8]) -> String {
    use base64::Engine as _;
    let mut bytes = Zeroizing::new(payload.to_vec());
    let check = blake3::hash(payload);
    bytes.extend_from_slice(&check.as_bytes()[..4]);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*bytes)
    )
}

/// The payload of a code [`encode_code`] wrote with `prefix`.
pub(crate) fn decode_code(prefix: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    use base64::Engine as _;
    let bad = |why: &str| KeyringError::BadJoinCode(why.to_string());
    let body = text.trim().strip_prefix(prefix).ok_or_else(|| {
        KeyringError::BadJoinCode(format!(
            "it does not start with {prefix} (copy the whole line `peervault invite` printed)"
        ))
    })?;
    let mut bytes = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("it is cut or has characters that do not belong in it"))?,
    );
    if bytes.len() < 4 {
        return Err(bad("it is too short"));
    }
    let (payload, check) = bytes.split_at(bytes.len() - 4);
    if &blake3::hash(payload).as_bytes()[..4] != check {
        return Err(bad(
            "its checksum does not match (a character changed in copying?)",
        ));
    }
    let len = bytes.len() - 4;
    bytes.truncate(len);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn code() -> JoinCode {
        JoinCode::new(
            &NetworkKey::generate().unwrap(),
            vec![
                "/ip4/192.0.2.7/tcp/3000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                    .parse()
                    .unwrap(),
            ],
        )
    }

    #[test]
    fn join_codes_round_trip_and_damaged_ones_are_refused() {
        let code = code();
        let text = code.to_text();
        assert!(text.starts_with("pv1-") && !text.contains(char::is_whitespace));
        assert_eq!(JoinCode::parse(&format!("  {text}\n")).unwrap(), code);
        // One changed character, a cut, another prefix.
        let mut changed = text.clone().into_bytes();
        let at = changed.len() - 10;
        changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::from_utf8(changed).unwrap(),
            text[..text.len() - 5].to_string(),
            text.replacen("pv1-", "pv2-", 1),
            String::new(),
        ] {
            assert!(JoinCode::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_passphrase_vaults_code_carries_its_parameters() {
        let params = KdfParams::generate().unwrap();
        let key = NetworkKey::from_passphrase("words", &params).unwrap();
        let code = JoinCode::parse(&JoinCode::new(&key, Vec::new()).to_text()).unwrap();
        assert_eq!(code.kdf, Some(params));
        assert!(code.key().same_key(&key));
    }

    async fn resolve_in(dir: &Path, input: KeyInput) -> Result<ResolvedKey, KeyringError> {
        let identity = peervault_net::NodeIdentity::load_or_create(dir).unwrap();
        let resolved = resolve(dir, input, &[], Duration::from_secs(1), &identity).await?;
        resolved.persist(dir)?;
        Ok(resolved)
    }

    #[tokio::test]
    async fn no_key_makes_a_random_one_once_and_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_in(dir.path(), KeyInput::Stored).await.unwrap();
        assert_eq!(first.origin, KeyOrigin::Created);
        let other = tempfile::tempdir().unwrap();
        let elsewhere = resolve_in(other.path(), KeyInput::Stored).await.unwrap();
        assert!(!first.key.same_key(&elsewhere.key), "two vaults, two keys");
        let again = resolve_in(dir.path(), KeyInput::Stored).await.unwrap();
        assert_eq!(again.origin, KeyOrigin::Kept);
        assert!(again.key.same_key(&first.key));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(VAULT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same key given in hex is fine; another is another vault.
        let hex = hex::encode(first.key.root());
        assert!(
            resolve_in(dir.path(), KeyInput::parse_key(&hex).unwrap())
                .await
                .is_ok()
        );
        let wrong = KeyInput::parse_key(&"ab".repeat(32)).unwrap();
        assert!(matches!(
            resolve_in(dir.path(), wrong).await,
            Err(KeyringError::OtherVault(_))
        ));
        assert!(matches!(
            resolve_in(dir.path(), KeyInput::parse_key("a passphrase").unwrap()).await,
            Err(KeyringError::NotAPassphraseVault(_))
        ));
    }

    #[tokio::test]
    async fn a_passphrase_vault_keeps_its_salt_and_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let words = || KeyInput::parse_key("correct horse battery staple").unwrap();
        let first = resolve_in(dir.path(), words()).await.unwrap();
        let params = first.key.kdf_params().unwrap().clone();
        assert!(!params.is_legacy());
        assert!(
            !dir.path().join(VAULT_KEY_FILE).exists(),
            "a passphrase is not stored"
        );
        let again = resolve_in(dir.path(), words()).await.unwrap();
        assert!(again.key.same_key(&first.key));
        assert!(matches!(
            resolve_in(dir.path(), KeyInput::Stored).await,
            Err(KeyringError::PassphraseNeeded(_))
        ));
        // The same passphrase in a new data dir without a bootstrap peer is another vault.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = resolve_in(other.path(), words()).await.unwrap();
        assert!(!elsewhere.key.same_key(&first.key));
    }

    #[tokio::test]
    async fn an_older_data_dir_keeps_the_key_it_was_made_with() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
        let words = KeyInput::parse_key("blackbox test passphrase").unwrap();
        let key = resolve_in(dir.path(), words).await.unwrap().key;
        assert_eq!(key.fingerprint().to_string(), "2166b30be27be2d4");
        assert!(
            read_kdf(&dir.path().join(KDF_FILE))
                .unwrap()
                .unwrap()
                .is_legacy()
        );

        let unkeyed = tempfile::tempdir().unwrap();
        std::fs::write(unkeyed.path().join(DATABASE_FILE), b"").unwrap();
        let resolved = resolve_in(unkeyed.path(), KeyInput::Stored).await.unwrap();
        assert_eq!(resolved.origin, KeyOrigin::LegacyDefault);
        assert!(resolved.key.is_insecure_default());
        assert!(!unkeyed.path().join(VAULT_KEY_FILE).exists());
    }

    #[tokio::test]
    async fn a_join_code_gives_the_vaults_key_and_its_addresses() {
        let code = code();
        let dir = tempfile::tempdir().unwrap();
        let joined = resolve_in(dir.path(), KeyInput::Join(code.clone()))
            .await
            .unwrap();
        assert!(joined.key.same_key(&code.key()));
        assert_eq!(joined.join_addrs, code.addrs);
        let kept = resolve_in(dir.path(), KeyInput::Stored).await.unwrap();
        assert_eq!(kept.key.source(), KeySource::Joined);
        // Joining again is harmless; another vault's code is refused.
        assert!(
            resolve_in(dir.path(), KeyInput::Join(code.clone()))
                .await
                .is_ok()
        );
        assert!(matches!(
            resolve_in(dir.path(), KeyInput::Join(self::code())).await,
            Err(KeyringError::OtherVault(_))
        ));
    }

    #[tokio::test]
    async fn a_bootstrap_peer_that_does_not_answer_is_waited_for_then_named() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bootstrap = vec![Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap()];
        let words = KeyInput::parse_key("words words").unwrap();
        let identity = peervault_net::NodeIdentity::load_or_create(dir.path()).unwrap();
        let patience = Duration::from_secs(2);
        let e = resolve(dir.path(), words, &bootstrap, patience, &identity)
            .await
            .unwrap_err();
        assert!(matches!(e, KeyringError::NoParameters { .. }), "{e}");
        assert!(e.to_string().contains("peervault invite"), "{e}");
    }
}
