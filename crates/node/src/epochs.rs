//! Key epochs a node holds, kept in its data dir, and handed from member to
//! member sealed to the recipient's identity key.
//!
//! **Why epochs.** Every member holds the vault key, and a removed device keeps
//! its copy. So a removal starts a new key epoch ([`EpochKey`]): a random key
//! from which data written from then on is sealed and the channel's pre-shared
//! key is derived (see `peervault_store::crypto` and [`crate::devices`]). Only the
//! members that remain receive it.
//!
//! **Where they are kept.** In `epochs` in the data dir (0600, one line per
//! epoch: its number and key in hex), beside `vault.key` and the identity, the
//! other secrets of a node. A data dir copied off a removed device holds the
//! epochs it had, and nothing later.
//!
//! **How they travel: a grant.** A member hands every epoch key it holds, with
//! the removals it knows (so that no node holds a new epoch without knowing
//! who was removed, and hands it to nobody removed), to
//! another member as one message of the standard one-way Noise pattern
//! `Noise_X_25519_AESGCM_SHA256` (the sender's static key is authenticated, the
//! recipient's is known in advance), with both peer ids in the prologue. The
//! static keys are the X25519 forms of the two nodes' Ed25519 identity keys
//! (the birational map libsodium and age's ssh-ed25519 recipients use; the
//! joint security of Ed25519 signatures and an X25519 KEM on one key is shown
//! in Thormarker, "On using the same key pair for Ed25519 and an X25519 based
//! KEM", 2021). So a grant opens only with the recipient's identity key, and
//! proves which member sent it; anyone can make one for any peer id, with no
//! key exchanged beforehand.

use std::path::{Path, PathBuf};

use libp2p_identity::{Keypair, PeerId, PublicKey};
use peervault_store::EpochKey;
use zeroize::Zeroizing;

use crate::error::{NodeError, Result};

/// The file that keeps a node's epoch keys.
pub(crate) const EPOCHS_FILE: &str = "epochs";

/// The Noise pattern of a grant.
const GRANT_PATTERN: &str = "Noise_X_25519_AESGCM_SHA256";
const GRANT_PROLOGUE: &[u8] = b"peervault key grant v1";
/// A grant is one Noise message; with 36 bytes per epoch this allows ~1,800.
const MAX_EPOCHS: usize = 1000;

/// Reads the epoch keys kept in `data_dir` (none before the first removal).
pub(crate) fn load(data_dir: &Path) -> Result<Vec<EpochKey>> {
    let path = data_dir.join(EPOCHS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(damaged(&path, &e.to_string())),
    };
    let mut keys = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (number, key) = line
            .split_once(' ')
            .ok_or_else(|| damaged(&path, "a line is not `NUMBER KEY`"))?;
        let number: u32 = number
            .parse()
            .map_err(|_| damaged(&path, "an epoch number is not a number"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key.trim(), &mut bytes)
            .map_err(|_| damaged(&path, "a key is not 64 hex digits"))?;
        keys.push(EpochKey { number, key: bytes });
    }
    Ok(keys)
}

fn damaged(path: &Path, why: &str) -> NodeError {
    NodeError::Invalid(format!(
        "{} cannot be read ({why}); it holds this node's key epochs. Restore it from a backup, \
         or move it away: the other members hand the epochs over again when this node connects",
        path.display()
    ))
}

/// Writes `keys` to `data_dir`, replacing what was kept.
pub(crate) fn save(data_dir: &Path, keys: &[EpochKey]) -> Result<()> {
    let mut text = Zeroizing::new(String::new());
    for key in keys {
        text.push_str(&format!("{} {}\n", key.number, hex::encode(key.key)));
    }
    let path: PathBuf = data_dir.join(EPOCHS_FILE);
    crate::keyring::write_private(&path, text.as_bytes())
        .map_err(|e| NodeError::Invalid(format!("cannot write {}: {e}", path.display())))
}

/// Adds the keys of `new` that `have` lacks; true if any was.
pub(crate) fn merge(have: &mut Vec<EpochKey>, new: Vec<EpochKey>) -> bool {
    let before = have.len();
    for key in new {
        if key.number > 0 && !have.contains(&key) && have.len() < MAX_EPOCHS {
            have.push(key);
        }
    }
    have.sort_by_key(EpochKey::order);
    have.len() != before
}

/// The X25519 secret of an Ed25519 identity (the scalar half of SHA-512 of its
/// seed, as libsodium's `crypto_sign_ed25519_sk_to_curve25519`).
fn x25519_secret(identity: &Keypair) -> Result<Zeroizing<[u8; 32]>> {
    let ed = identity
        .clone()
        .try_into_ed25519()
        .map_err(|_| NodeError::Invalid("this node's identity is not an Ed25519 key".into()))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(ed.secret().as_ref());
    Ok(Zeroizing::new(
        ed25519_dalek::SigningKey::from_bytes(&seed).to_scalar_bytes(),
    ))
}

/// The X25519 public key of the Ed25519 identity inside `peer`.
pub(crate) fn x25519_public(peer: &PeerId) -> Result<[u8; 32]> {
    let not_ed25519 = || NodeError::Invalid(format!("peer {peer} has no Ed25519 identity key"));
    let public = public_key(peer).ok_or_else(not_ed25519)?;
    let ed = public.try_into_ed25519().map_err(|_| not_ed25519())?;
    let point =
        ed25519_dalek::VerifyingKey::from_bytes(&ed.to_bytes()).map_err(|_| not_ed25519())?;
    Ok(point.to_montgomery().to_bytes())
}

/// The public key a peer id contains (Ed25519 peer ids inline their key).
pub(crate) fn public_key(peer: &PeerId) -> Option<PublicKey> {
    let hash = peer.as_ref();
    (hash.code() == 0).then(|| PublicKey::try_decode_protobuf(hash.digest()).ok())?
}

fn prologue(label: &[u8], sender: &PeerId, recipient: &PeerId) -> Vec<u8> {
    [
        GRANT_PROLOGUE,
        label,
        &sender.to_bytes(),
        &recipient.to_bytes(),
    ]
    .concat()
}

fn noise_error(e: snow::Error) -> NodeError {
    NodeError::Invalid(format!("key grant: {e}"))
}

/// Seals `payload` for `recipient` as one `Noise_X` message (see the module
/// docs); `label` says what it is (a grant, a welcome) and is bound in.
pub(crate) fn seal_to(
    sender: &Keypair,
    recipient: &PeerId,
    label: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>> {
    let secret = x25519_secret(sender)?;
    let remote = x25519_public(recipient)?;
    let prologue = prologue(label, &sender.public().to_peer_id(), recipient);
    let mut noise = snow::Builder::new(GRANT_PATTERN.parse().map_err(noise_error)?)
        .prologue(&prologue)
        .and_then(|b| b.local_private_key(&secret[..]))
        .and_then(|b| b.remote_public_key(&remote))
        .and_then(|b| b.build_initiator())
        .map_err(noise_error)?;
    let mut out = vec![0u8; payload.len() + 128];
    let n = noise
        .write_message(payload, &mut out)
        .map_err(noise_error)?;
    out.truncate(n);
    Ok(out)
}

/// Opens what `sender` sealed for this node with [`seal_to`]; fails unless
/// it really came from `sender`, for this identity, with this `label`.
pub(crate) fn open_from(
    recipient: &Keypair,
    sender: &PeerId,
    label: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let secret = x25519_secret(recipient)?;
    let prologue = prologue(label, sender, &recipient.public().to_peer_id());
    let mut noise = snow::Builder::new(GRANT_PATTERN.parse().map_err(noise_error)?)
        .prologue(&prologue)
        .and_then(|b| b.local_private_key(&secret[..]))
        .and_then(|b| b.build_responder())
        .map_err(noise_error)?;
    let mut payload = Zeroizing::new(vec![0u8; sealed.len()]);
    let n = noise
        .read_message(sealed, &mut payload)
        .map_err(|_| NodeError::Invalid(format!("keys sealed by {sender} do not open here")))?;
    if noise.get_remote_static() != Some(&x25519_public(sender)?[..]) {
        return Err(NodeError::Invalid(format!(
            "keys said to be from {sender} were sealed by another key"
        )));
    }
    payload.truncate(n);
    Ok(payload)
}

/// Seals every epoch key in `keys` for `recipient` (a grant).
pub(crate) fn seal_grant(sender: &Keypair, recipient: &PeerId, grant: &Grant) -> Result<Vec<u8>> {
    let payload = Zeroizing::new(
        postcard::to_stdvec(grant).map_err(|e| NodeError::Invalid(format!("key grant: {e}")))?,
    );
    seal_to(sender, recipient, b" grant", &payload)
}

/// Opens a grant `sender` sealed for this node.
pub(crate) fn open_grant(recipient: &Keypair, sender: &PeerId, sealed: &[u8]) -> Result<Grant> {
    let payload = open_from(recipient, sender, b" grant", sealed)?;
    let grant: Grant = postcard::from_bytes(&payload)
        .map_err(|e| NodeError::Invalid(format!("a key grant from {sender}: {e}")))?;
    if grant.epochs.len() > MAX_EPOCHS {
        return Err(NodeError::Invalid(format!(
            "a key grant from {sender} holds {} epochs",
            grant.epochs.len()
        )));
    }
    Ok(grant)
}

/// What a grant hands over: every epoch key, and the removals the granter
/// knows (signed records, as JSON), so that no member holds a new epoch's key
/// without knowing whom it must not go to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Grant {
    pub epochs: Vec<EpochKey>,
    pub removals: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_opens_only_for_its_recipient_and_names_its_sender() {
        let (a, b, c) = (
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
        );
        let (a_id, b_id) = (a.public().to_peer_id(), b.public().to_peer_id());
        let keys = vec![
            EpochKey::generate(1).unwrap(),
            EpochKey::generate(2).unwrap(),
        ];
        let grant = Grant {
            epochs: keys.clone(),
            removals: vec!["{}".into()],
        };
        let sealed = seal_grant(&a, &b_id, &grant).unwrap();
        assert_eq!(open_grant(&b, &a_id, &sealed).unwrap(), grant);
        assert!(
            !sealed
                .windows(32)
                .any(|w| w == keys[0].key || w == keys[1].key),
            "the keys are not in the clear"
        );
        // Not for c, even holding the bytes; not from c, whoever says so.
        assert!(open_grant(&c, &a_id, &sealed).is_err());
        let forged = seal_grant(&c, &b_id, &grant).unwrap();
        assert!(open_grant(&b, &a_id, &forged).is_err());
        let mut bent = sealed.clone();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        assert!(open_grant(&b, &a_id, &bent).is_err());
    }

    #[test]
    fn epochs_survive_the_file_and_merge_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let mut have = vec![EpochKey::generate(1).unwrap()];
        let more = vec![have[0].clone(), EpochKey::generate(2).unwrap()];
        assert!(merge(&mut have, more.clone()));
        assert!(!merge(&mut have, more));
        save(dir.path(), &have).unwrap();
        assert_eq!(load(dir.path()).unwrap(), have);
        std::fs::write(dir.path().join(EPOCHS_FILE), "1 zz\n").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
    }
}
