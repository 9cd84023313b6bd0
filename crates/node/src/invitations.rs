//! Invitations: a code that admits one device, once, before it expires, and
//! does not carry the vault's key.
//!
//! **The code** (`pv2-`, [`InvitationCode`]) holds 32 random bytes and the
//! inviting node's addresses. From the bytes come the invitation's id and a
//! pre-shared key for the private channel; the code holds no vault key, so
//! whoever copies it off a chat log after it was used (or after it expired)
//! holds nothing.
//!
//! **The record** (`.peervault/invitations/<id>`: the pre-shared key, who made
//! it, when it expires, signed) travels with the catalogue like member
//! records, sealed in the current key epoch: every member accepts the
//! invitation's key, so the new device is admitted by whichever member it
//! reaches. A responder tries invitation keys after the epochs' keys.
//!
//! **Redeeming**: the new device dials with the invitation's key. The member
//! that accepts it checks the invitation (not expired, not used by another
//! device), marks it used at once (so a second device is refused even before
//! the record is written), and answers, still inside the handshake, with a
//! *welcome*: the vault key, a passphrase vault's parameters and every key
//! epoch, sealed to the new device's identity key (see [`crate::epochs`]).
//! Then it records the device as a member and the invitation as used
//! (`.peervault/invited/<id>`). The new device keeps the keys and connects
//! again as a member.
//!
//! **Used twice at once.** Two members partitioned from each other could each
//! admit another device with one invitation. The used record has one name per
//! invitation, so the catalogue keeps one of them everywhere; a member record
//! made by an invitation that its used record names for another device is
//! ignored, so all nodes agree on who got in.

use std::time::Duration;

use libp2p_identity::Keypair;
use peervault_net::{Multiaddr, PeerId};
use peervault_store::EpochKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{NodeError, Result};
use crate::keyring::{KeyringError, decode_code, encode_code};

/// Where invitation records live.
pub const INVITATIONS_PREFIX: &str = ".peervault/invitations/";
/// Where the records of used invitations live.
pub const INVITED_PREFIX: &str = ".peervault/invited/";
/// How long an invitation lasts unless `--expires` says otherwise.
pub const DEFAULT_INVITATION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest an invitation may last.
pub const MAX_INVITATION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an expired invitation's key is still accepted, to tell a late
/// device that it expired (instead of a key mismatch).
pub(crate) const EXPIRED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

const CODE_PREFIX: &str = "pv2-";
const CONTEXT_PSK: &str = "peervault 2026-12 invitation pre-shared key v1";
const CONTEXT_ID: &str = "peervault 2026-12 invitation id v1";
const WELCOME_LABEL: &[u8] = b" welcome";

/// What `peervault invite` prints: the secret and where to reach the inviter.
#[derive(Clone, Serialize, Deserialize)]
pub struct InvitationCode {
    secret: [u8; 32],
    #[serde(with = "crate::keyring::multiaddrs")]
    pub addrs: Vec<Multiaddr>,
}

impl std::fmt::Debug for InvitationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationCode")
            .field("id", &self.id())
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Drop for InvitationCode {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
    }
}

impl InvitationCode {
    /// A new invitation, reachable at `addrs`.
    pub(crate) fn generate(addrs: Vec<Multiaddr>) -> Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| NodeError::Invalid(format!("no randomness for an invitation: {e}")))?;
        Ok(Self { secret, addrs })
    }

    /// The channel's pre-shared key while the invitation is redeemed.
    pub fn psk(&self) -> [u8; 32] {
        blake3::derive_key(CONTEXT_PSK, &self.secret)
    }

    /// The invitation's public name: 16 hex digits.
    pub fn id(&self) -> String {
        hex::encode(&blake3::derive_key(CONTEXT_ID, &self.secret)[..8])
    }

    /// The one-line text form (`pv2-...`).
    pub fn to_text(&self) -> String {
        let bytes = Zeroizing::new(postcard::to_stdvec(self).unwrap_or_default());
        encode_code(CODE_PREFIX, &bytes)
    }

    /// Reads a code as `to_text` writes it.
    pub fn parse(text: &str) -> std::result::Result<Self, KeyringError> {
        let payload = decode_code(CODE_PREFIX, text)?;
        postcard::from_bytes(&payload)
            .map_err(|_| KeyringError::BadJoinCode("it does not decode".into()))
    }

    /// True if `text` looks like an invitation (not an older join code).
    pub fn is_invitation(text: &str) -> bool {
        text.trim().starts_with(CODE_PREFIX)
    }
}

/// An invitation, as every member keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRecord {
    pub id: String,
    /// The pre-shared key (hex): only members read the catalogue.
    pub psk: String,
    pub by: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    #[serde(default)]
    pub signature: String,
}

/// An invitation used: by which device, admitted by which member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedRecord {
    pub id: String,
    pub used_by: String,
    pub by: String,
    pub at_ms: u64,
    #[serde(default)]
    pub signature: String,
}

impl InvitationRecord {
    pub(crate) fn psk_bytes(&self) -> Option<[u8; 32]> {
        let mut psk = [0u8; 32];
        hex::decode_to_slice(&self.psk, &mut psk).ok()?;
        Some(psk)
    }
}

/// What a new device receives: everything it needs to open the vault.
#[derive(Serialize, Deserialize)]
pub(crate) struct Welcome {
    pub vault_key: [u8; 32],
    /// A passphrase vault's key-derivation parameters (PHC text).
    pub kdf: Option<String>,
    pub epochs: Vec<EpochKey>,
    /// Removal records the member knows (JSON, signed).
    pub removals: Vec<String>,
}

impl Drop for Welcome {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.vault_key.zeroize();
    }
}

pub(crate) fn seal_welcome(
    identity: &Keypair,
    peer: &PeerId,
    welcome: &Welcome,
) -> Result<Vec<u8>> {
    let payload = Zeroizing::new(
        postcard::to_stdvec(welcome).map_err(|e| NodeError::Invalid(format!("welcome: {e}")))?,
    );
    crate::epochs::seal_to(identity, peer, WELCOME_LABEL, &payload)
}

pub(crate) fn open_welcome(identity: &Keypair, member: &PeerId, sealed: &[u8]) -> Result<Welcome> {
    let payload = crate::epochs::open_from(identity, member, WELCOME_LABEL, sealed)?;
    postcard::from_bytes(&payload).map_err(|e| NodeError::Invalid(format!("welcome: {e}")))
}

pub(crate) fn invitation_name(id: &str) -> String {
    format!("{INVITATIONS_PREFIX}{id}")
}

pub(crate) fn used_name(id: &str) -> String {
    format!("{INVITED_PREFIX}{id}")
}

/// What `peervault invite` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub code: String,
    pub id: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl crate::Node {
    /// A new invitation that admits one device until `lifetime` has passed
    /// (default [`DEFAULT_INVITATION_LIFETIME`]): its code holds this node's
    /// addresses, and any member accepts it once its record has synced.
    pub async fn invite(&self, lifetime: Option<Duration>) -> Result<Invitation> {
        let lifetime = lifetime.unwrap_or(DEFAULT_INVITATION_LIFETIME);
        if lifetime.is_zero() || lifetime > MAX_INVITATION_LIFETIME {
            return Err(NodeError::Invalid(format!(
                "an invitation lasts from a second to {} days (--expires 24h, 30m, 7d)",
                MAX_INVITATION_LIFETIME.as_secs() / 86_400
            )));
        }
        let code = InvitationCode::generate(self.invite_addresses().await)?;
        let now = peervault_store::version::unix_millis_now();
        let expires_at_ms = now + lifetime.as_millis() as u64;
        let record = crate::devices::Signed::sign(
            InvitationRecord {
                id: code.id(),
                psk: hex::encode(code.psk()),
                by: self.peer_id(),
                created_at_ms: now,
                expires_at_ms,
                signature: String::new(),
            },
            self.inner.ctx.devices.identity(),
        )?;
        self.write_device_record(
            &invitation_name(&record.id),
            crate::devices::record_meta(&record)?,
        )
        .await?;
        Ok(Invitation {
            code: code.to_text(),
            id: record.id,
            expires_at: crate::metrics::rfc3339(expires_at_ms),
        })
    }

    /// Records what the gate admitted with an invitation: the device as a
    /// member, the invitation as used.
    pub(crate) async fn record_invitation_used(&self, used: crate::devices::InvitationUsed) {
        let identity = self.inner.ctx.devices.identity();
        let now = peervault_store::version::unix_millis_now();
        let written = async {
            let record = crate::devices::Signed::sign(
                UsedRecord {
                    id: used.invitation.clone(),
                    used_by: used.peer.to_string(),
                    by: self.peer_id(),
                    at_ms: now,
                    signature: String::new(),
                },
                identity,
            )?;
            self.write_device_record(
                &used_name(&record.id),
                crate::devices::record_meta(&record)?,
            )
            .await?;
            let mut member = crate::devices::new_member(
                identity,
                &used.peer,
                &crate::devices::default_name(&used.peer),
                crate::devices::Admission::Invitation,
                now,
            )?;
            member.invitation = Some(used.invitation.clone());
            let member = crate::devices::Signed::sign(member, identity)?;
            self.write_device_record(
                &crate::devices::member_name(&used.peer),
                crate::devices::member_meta(&member)?,
            )
            .await
        };
        match written.await {
            Ok(()) => tracing::info!(
                "{} joined the vault with invitation {}",
                used.peer,
                used.invitation
            ),
            Err(e) => tracing::warn!(
                "cannot record that {} used invitation {}: {e}",
                used.peer,
                used.invitation
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_carry_no_key_of_the_vault() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/3000".parse().unwrap();
        let code = InvitationCode::generate(vec![addr.clone()]).unwrap();
        let text = code.to_text();
        assert!(InvitationCode::is_invitation(&text));
        let back = InvitationCode::parse(&text).unwrap();
        assert_eq!(back.psk(), code.psk());
        assert_eq!(back.id(), code.id());
        assert_eq!(back.addrs, vec![addr]);
        assert_eq!(code.id().len(), 16);
        let mut bent = text.clone();
        bent.pop();
        bent.push(if text.ends_with('A') { 'B' } else { 'A' });
        assert!(InvitationCode::parse(&bent).is_err());
        assert!(InvitationCode::parse("pv1-abc").is_err());
    }

    #[test]
    fn a_welcome_opens_only_for_the_new_device() {
        let (member, device, other) = (
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
            Keypair::generate_ed25519(),
        );
        let welcome = Welcome {
            vault_key: [7; 32],
            kdf: None,
            epochs: vec![EpochKey::generate(1).unwrap()],
            removals: Vec::new(),
        };
        let to = device.public().to_peer_id();
        let from = member.public().to_peer_id();
        let sealed = seal_welcome(&member, &to, &welcome).unwrap();
        let opened = open_welcome(&device, &from, &sealed).unwrap();
        assert_eq!(opened.vault_key, [7; 32]);
        assert_eq!(opened.epochs, welcome.epochs);
        assert!(open_welcome(&other, &from, &sealed).is_err());
        // A grant is not a welcome: the label is bound in.
        let grant = crate::epochs::Grant {
            epochs: welcome.epochs.clone(),
            removals: Vec::new(),
        };
        let grant = crate::epochs::seal_grant(&member, &to, &grant).unwrap();
        assert!(open_welcome(&device, &from, &grant).is_err());
    }
}
