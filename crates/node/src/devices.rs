//! Devices: the vault's members, who may connect, and how a device is removed.
//!
//! **Members are records in the catalogue.** Each member device has a record
//! under `.peervault/devices/<peer id>` (its name, who added it, when and how),
//! and each removed device one under `.peervault/removed/<peer id>`. Both are
//! empty files whose record carries the data (in the object metadata, so that
//! every node has it without holding any chunk), announced rather than offered
//! as copies, and synced and forwarded like every record: the member list
//! converges wherever the catalogue does, also on nodes that were offline. A
//! removal is a record of its own and is never deleted or overwritten, so a
//! rename written at the same time cannot undo it; in memory, removals are
//! sticky too. Invitations and their use (see [`crate::invitations`]) and
//! `rekey --all` requests (see [`crate::rekey`]) are records of the same kind.
//!
//! **Records are signed** by the device that wrote them (`by`), with its
//! identity key, over the record's fields; one whose signature does not verify
//! is ignored (and logged). Only key holders can write records at all; the
//! signature says which of them did.
//!
//! **Who may connect** ([`VaultGate`], the network's [`Gatekeeper`]):
//! - a removed device never, whatever key it holds (a dialler refuses it too);
//! - a member, with the key of any epoch this node holds (one that was offline
//!   while a new epoch started still dials with the old key);
//! - anyone else, only with the current epoch's key. Before any removal that
//!   is the vault key, so that nodes started with `-key`, an older join code,
//!   or a data dir from before members existed are admitted; each records
//!   itself after its first sync if no record of it came (a vault from before
//!   this adopts its connected nodes this way). After a removal the current
//!   key is one only members hold: the vault key no longer admits anyone by
//!   itself, and new devices come with invitations;
//! - a device with an open invitation's key, once: it is answered with the
//!   vault's keys and recorded (see [`crate::invitations`]).
//!
//! **A removal** ([`crate::Node::remove_device`]) starts a new key epoch (see
//! [`crate::epochs`]): the new key is sealed to each remaining member it can
//! reach at once, then the removal record is written (in the new epoch), the
//! device is disconnected, and repair copies what it held to the others. A
//! member that was offline gets the new key from the first member it connects
//! to: each side of a connection learns the other's current epoch, and a side
//! that sees another epoch than its own sends every key it holds (so two
//! epochs started at once on two members both reach everyone).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use libp2p_identity::Keypair;
use peervault_net::{Gatekeeper, PeerId, Side, Ticket, Verdict};
use peervault_store::{EpochKey, FileMeta, ObjectMeta, Vault};
use serde::{Deserialize, Serialize};

use crate::error::{NodeError, Result};
use crate::invitations::{
    INVITATIONS_PREFIX, INVITED_PREFIX, InvitationRecord, UsedRecord, invitation_name, used_name,
};
use crate::metrics::rfc3339;

/// Where member records live.
pub const DEVICES_PREFIX: &str = ".peervault/devices/";
/// Where removal records live.
pub const REMOVED_PREFIX: &str = ".peervault/removed/";
/// The object metadata entry that holds a record.
const RECORD_ENTRY: &str = "peervault-device";
const SIGNING_CONTEXT: &[u8] = b"peervault device record v1\0";
/// Longest device name.
pub const MAX_DEVICE_NAME: usize = 64;

/// How a device became a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// It connected holding the vault's current key (`-key`, a join code).
    Key,
    /// A member admitted it with an invitation (`peervault invite`).
    Invitation,
}

/// A member device, as its record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub peer_id: String,
    pub name: String,
    pub added_by: String,
    pub added_at_ms: u64,
    pub how: Admission,
    /// Who wrote this version of the record (the adder, or who renamed it),
    /// and when; `signature` is theirs.
    pub by: String,
    pub at_ms: u64,
    /// The invitation it came with (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<String>,
    #[serde(default)]
    pub signature: String,
}

/// A removed device, as its removal record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    pub peer_id: String,
    /// Its name when it was removed.
    pub name: String,
    pub by: String,
    pub at_ms: u64,
    /// The key epoch the removal started.
    #[serde(default)]
    pub epoch: u32,
    #[serde(default)]
    pub signature: String,
}

/// Signing and checking of a record by the device named in its `by`.
pub(crate) trait Signed: Serialize + Clone {
    fn by(&self) -> &str;
    fn signature_mut(&mut self) -> &mut String;

    /// The bytes signed: the record, signature empty, as JSON.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature_mut().clear();
        let json = serde_json::to_vec(&unsigned).unwrap_or_default();
        [SIGNING_CONTEXT, &json].concat()
    }

    fn sign(mut self, identity: &Keypair) -> Result<Self>
    where
        Self: Sized,
    {
        let signature = identity
            .sign(&self.signed_bytes())
            .map_err(|e| NodeError::Invalid(format!("cannot sign a device record: {e}")))?;
        *self.signature_mut() = hex::encode(signature);
        Ok(self)
    }

    fn verifies(&self) -> bool {
        let Ok(by) = self.by().parse::<PeerId>() else {
            return false;
        };
        let Some(key) = crate::epochs::public_key(&by) else {
            return false;
        };
        let mut me = self.clone();
        let Ok(signature) = hex::decode(me.signature_mut().as_str()) else {
            return false;
        };
        key.verify(&self.signed_bytes(), &signature)
    }
}

/// Implements [`Signed`] for records whose writer is `by` and whose
/// signature is `signature`.
macro_rules! signed_by_field {
    ($($record:ty),*) => {$(
        impl Signed for $record {
            fn by(&self) -> &str {
                &self.by
            }
            fn signature_mut(&mut self) -> &mut String {
                &mut self.signature
            }
        }
    )*};
}
pub(crate) use signed_by_field;

signed_by_field!(DeviceRecord, RemovalRecord, InvitationRecord, UsedRecord);

/// The metadata that carries a record.
pub(crate) fn record_meta<T: Serialize>(record: &T) -> Result<FileMeta> {
    let json = serde_json::to_string(record)
        .map_err(|e| NodeError::Invalid(format!("device record: {e}")))?;
    Ok(FileMeta {
        object: Some(Box::new(ObjectMeta {
            user: vec![(RECORD_ENTRY.to_string(), json)],
            ..ObjectMeta::default()
        })),
        ..FileMeta::default()
    })
}

fn record_of<T: for<'de> Deserialize<'de> + Signed>(name: &str, meta: &FileMeta) -> Option<T> {
    let json = meta
        .object
        .as_ref()?
        .user
        .iter()
        .find(|(k, _)| k == RECORD_ENTRY)?
        .1
        .as_str();
    match serde_json::from_str::<T>(json) {
        Ok(record) if record.verifies() => Some(record),
        Ok(_) => {
            tracing::warn!("{name}: its signature does not verify; ignored");
            None
        }
        Err(e) => {
            tracing::warn!("{name}: not a device record ({e}); ignored");
            None
        }
    }
}

/// The member and removal records, as the catalogue holds them now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    pub members: HashMap<PeerId, DeviceRecord>,
    pub removed: HashMap<PeerId, RemovalRecord>,
    /// Invitations by id, and who used each.
    pub invitations: HashMap<String, InvitationRecord>,
    pub used: HashMap<String, UsedRecord>,
    /// The newest request to re-encrypt everything (`rekey --all`).
    pub rekey: Option<crate::rekey::RekeyRequest>,
    /// How the vault keeps files, if a member set it (`redundancy K+M|none`).
    pub redundancy: Option<crate::writes::RedundancySetting>,
    /// Files in the catalogue that are these records (not the user's).
    pub files: usize,
}

impl Registry {
    /// Reads every record from the local catalogue.
    pub(crate) async fn load(vault: &Vault) -> Result<Registry> {
        let mut registry = Registry::default();
        let mut files = 0;
        // One pass over PeerVault's own names (a pass opens every record).
        for (_, summary) in vault
            .summaries_under(crate::objects::RESERVED_PREFIX)
            .await?
        {
            let (name, meta) = (&summary.name, &summary.meta);
            if !Devices::touches(name) {
                continue;
            }
            files += 1;
            if name.starts_with(DEVICES_PREFIX) {
                if let Some(record) = record_of::<DeviceRecord>(name, meta)
                    && let Ok(peer) = record.peer_id.parse()
                    && *name == member_name(&peer)
                {
                    registry.members.insert(peer, record);
                }
            } else if name.starts_with(REMOVED_PREFIX) {
                if let Some(record) = record_of::<RemovalRecord>(name, meta)
                    && let Ok(peer) = record.peer_id.parse()
                    && *name == removal_name(&peer)
                {
                    registry.removed.insert(peer, record);
                }
            } else if name.starts_with(INVITATIONS_PREFIX) {
                if let Some(record) = record_of::<InvitationRecord>(name, meta)
                    && *name == invitation_name(&record.id)
                {
                    registry.invitations.insert(record.id.clone(), record);
                }
            } else if name.starts_with(INVITED_PREFIX) {
                if let Some(record) = record_of::<UsedRecord>(name, meta)
                    && *name == used_name(&record.id)
                {
                    registry.used.insert(record.id.clone(), record);
                }
            } else if name == crate::rekey::REKEY_NAME {
                registry.rekey = record_of(name, meta);
            } else if name == crate::writes::REDUNDANCY_NAME {
                registry.redundancy = record_of(name, meta);
            }
        }
        registry.files = files;
        // A removed device is no member, whatever else was written meanwhile;
        // nor one whose invitation the catalogue says another device used.
        let used = registry.used.clone();
        registry.members.retain(|peer, record| {
            let lost = record
                .invitation
                .as_ref()
                .is_some_and(|id| used.get(id).is_some_and(|u| u.used_by != peer.to_string()));
            !lost
        });
        for peer in registry.removed.keys() {
            registry.members.remove(peer);
        }
        Ok(registry)
    }

    /// The member `who` names: a peer id, or a name (unique), or a peer id's
    /// unambiguous start of at least 8 characters.
    pub(crate) fn find(&self, who: &str) -> Result<(PeerId, DeviceRecord)> {
        let who = who.trim();
        if let Ok(peer) = who.parse::<PeerId>() {
            return self
                .members
                .get(&peer)
                .map(|r| (peer, r.clone()))
                .ok_or_else(|| self.not_found(who));
        }
        let by_name: Vec<_> = self.members.iter().filter(|(_, r)| r.name == who).collect();
        let by_start: Vec<_> = if who.len() >= 8 {
            self.members
                .iter()
                .filter(|(p, _)| p.to_string().starts_with(who))
                .collect()
        } else {
            Vec::new()
        };
        match (by_name.as_slice(), by_start.as_slice()) {
            ([(peer, record)], _) | ([], [(peer, record)]) => Ok((**peer, (*record).clone())),
            ([], []) => Err(self.not_found(who)),
            _ => Err(NodeError::Invalid(format!(
                "{who:?} names more than one device; give its peer id (`peervault devices`)"
            ))),
        }
    }

    fn not_found(&self, who: &str) -> NodeError {
        let removed = self
            .removed
            .values()
            .any(|r| r.peer_id == who || r.name == who);
        NodeError::Invalid(if removed {
            format!("{who:?} was removed from the vault already")
        } else {
            format!("no device {who:?} in this vault (`peervault devices` lists them)")
        })
    }
}

pub(crate) fn member_name(peer: &PeerId) -> String {
    format!("{DEVICES_PREFIX}{peer}")
}

pub(crate) fn removal_name(peer: &PeerId) -> String {
    format!("{REMOVED_PREFIX}{peer}")
}

/// A new member record for `peer`, signed by this node.
pub(crate) fn new_member(
    identity: &Keypair,
    peer: &PeerId,
    name: &str,
    how: Admission,
    now_ms: u64,
) -> Result<DeviceRecord> {
    let me = identity.public().to_peer_id().to_string();
    DeviceRecord {
        peer_id: peer.to_string(),
        name: name.to_string(),
        added_by: me.clone(),
        added_at_ms: now_ms,
        how,
        by: me,
        at_ms: now_ms,
        invitation: None,
        signature: String::new(),
    }
    .sign(identity)
}

/// `record` renamed to `name` by this node.
pub(crate) fn renamed(
    identity: &Keypair,
    record: &DeviceRecord,
    name: &str,
    now_ms: u64,
) -> Result<DeviceRecord> {
    DeviceRecord {
        name: name.to_string(),
        by: identity.public().to_peer_id().to_string(),
        at_ms: now_ms,
        signature: String::new(),
        ..record.clone()
    }
    .sign(identity)
}

/// A removal record of `record`'s device, by this node.
pub(crate) fn removal(
    identity: &Keypair,
    record: &DeviceRecord,
    epoch: u32,
    now_ms: u64,
) -> Result<RemovalRecord> {
    RemovalRecord {
        peer_id: record.peer_id.clone(),
        name: record.name.clone(),
        by: identity.public().to_peer_id().to_string(),
        at_ms: now_ms,
        epoch,
        signature: String::new(),
    }
    .sign(identity)
}

/// The metadata of a member record's file.
pub(crate) fn member_meta(record: &DeviceRecord) -> Result<FileMeta> {
    record_meta(record)
}

/// The metadata of a removal record's file.
pub(crate) fn removal_meta(record: &RemovalRecord) -> Result<FileMeta> {
    record_meta(record)
}

/// Checks a device name a user gave.
pub(crate) fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_DEVICE_NAME
        || name.chars().any(char::is_control)
    {
        return Err(NodeError::Invalid(format!(
            "a device's name is 1 to {MAX_DEVICE_NAME} printable characters, e.g. laptop"
        )));
    }
    Ok(name)
}

/// A default name for a device: the start of its peer id.
pub(crate) fn default_name(peer: &PeerId) -> String {
    let id = peer.to_string();
    let start = id.len().saturating_sub(8);
    format!("device-{}", &id[start..])
}

/// The ticket of an epoch key: its number, then its hint, so tickets order as
/// epochs do. Epoch 0 (the vault key) is ticket 0.
pub(crate) fn ticket_of(key: &EpochKey) -> Ticket {
    let hint = key.hint();
    ((key.number as u64) << 16) | u16::from_be_bytes(hint) as u64
}

/// Tickets of invitations have the top bit set (epochs never reach it).
const INVITATION_TICKET: Ticket = 1 << 63;

fn invitation_ticket(id: &str) -> Ticket {
    INVITATION_TICKET | (u64::from_str_radix(id, 16).unwrap_or(0) >> 1)
}

/// A device admitted with an invitation, for the node to record.
#[derive(Debug, Clone)]
pub(crate) struct InvitationUsed {
    pub peer: PeerId,
    pub invitation: String,
}

/// What a new device gets: the vault key and a passphrase vault's
/// parameters (the epochs come from the gate's state).
pub(crate) struct VaultSecrets {
    pub root: zeroize::Zeroizing<[u8; 32]>,
    pub kdf: Option<String>,
    pub identity: Keypair,
}

/// The network's gatekeeper for this vault (see the module docs).
pub(crate) struct VaultGate {
    /// The vault key's pre-shared key (epoch 0).
    root_psk: [u8; 32],
    secrets: VaultSecrets,
    state: RwLock<GateState>,
    /// Devices admitted with invitations, for the node to record.
    used: tokio::sync::mpsc::UnboundedSender<InvitationUsed>,
}

#[derive(Default)]
struct GateState {
    /// Epochs after the first, oldest first.
    epochs: Vec<EpochKey>,
    members: std::collections::HashSet<PeerId>,
    /// Removed devices and what they are told.
    removed: HashMap<PeerId, String>,
    /// The epoch each peer proved last (the key it dialled with, or its current).
    tickets: HashMap<PeerId, Ticket>,
    /// Invitations whose keys are accepted (newest first).
    invitations: Vec<InvitationRecord>,
    /// Who used each invitation: from the records, and from admissions
    /// whose records are still being written.
    used: HashMap<String, PeerId>,
    /// The removal records (JSON), for a new device's welcome.
    removal_records: Vec<String>,
}

impl std::fmt::Debug for VaultGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultGate(..)")
    }
}

/// Most invitations whose keys a responder tries.
const MAX_OPEN_INVITATIONS: usize = 64;

impl VaultGate {
    pub(crate) fn new(
        root_psk: [u8; 32],
        secrets: VaultSecrets,
        epochs: Vec<EpochKey>,
        used: tokio::sync::mpsc::UnboundedSender<InvitationUsed>,
    ) -> VaultGate {
        VaultGate {
            root_psk,
            secrets,
            state: RwLock::new(GateState {
                epochs,
                ..GateState::default()
            }),
            used,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, GateState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, GateState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the member list and the invitations from `registry`.
    pub(crate) fn set_registry(&self, registry: &Registry) {
        let mut state = self.write();
        state.members = registry.members.keys().copied().collect();
        state.removed = registry
            .removed
            .iter()
            .map(|(peer, r)| {
                (
                    *peer,
                    format!(
                        "this device ({peer}, {:?}) was removed from the vault by {} at {}; \
                         it can no longer connect to the vault's members",
                        r.name,
                        r.by,
                        rfc3339(r.at_ms)
                    ),
                )
            })
            .collect();
        state.removal_records = registry
            .removed
            .values()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        let oldest = now_ms().saturating_sub(crate::invitations::EXPIRED_KEPT.as_millis() as u64);
        let mut invitations: Vec<InvitationRecord> = registry
            .invitations
            .values()
            .filter(|i| i.expires_at_ms >= oldest && i.psk_bytes().is_some())
            .cloned()
            .collect();
        invitations.sort_by_key(|i| std::cmp::Reverse(i.created_at_ms));
        invitations.truncate(MAX_OPEN_INVITATIONS);
        state.invitations = invitations;
        for (id, used) in &registry.used {
            if let Ok(peer) = used.used_by.parse() {
                state.used.insert(id.clone(), peer);
            }
        }
    }

    pub(crate) fn set_epochs(&self, epochs: Vec<EpochKey>) {
        self.write().epochs = epochs;
    }

    /// (ticket, pre-shared key) of every epoch, newest first.
    fn keys(state: &GateState, root: [u8; 32]) -> Vec<(Ticket, [u8; 32])> {
        let mut keys: Vec<_> = state
            .epochs
            .iter()
            .map(|k| (ticket_of(k), k.pnet_psk()))
            .collect();
        keys.push((0, root));
        keys.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        keys
    }

    pub(crate) fn current_ticket(&self) -> Ticket {
        self.read().epochs.iter().map(ticket_of).max().unwrap_or(0)
    }

    /// The epoch `peer` last proved, if it connected since this node started.
    pub(crate) fn peer_ticket(&self, peer: &PeerId) -> Option<Ticket> {
        self.read().tickets.get(peer).copied()
    }

    pub(crate) fn is_removed(&self, peer: &PeerId) -> bool {
        self.read().removed.contains_key(peer)
    }

    /// A device redeems invitation `ticket`: its welcome, or why not.
    fn redeem(&self, state: &mut GateState, peer: &PeerId, ticket: Ticket) -> Verdict {
        let Some(invitation) = state
            .invitations
            .iter()
            .find(|i| invitation_ticket(&i.id) == ticket)
            .cloned()
        else {
            return Verdict::Refuse("this invitation is no longer known here".into());
        };
        let ask = "ask a member for a new one (`peervault invite`)";
        match state.used.get(&invitation.id) {
            Some(user) if user != peer => {
                return Verdict::Refuse(format!(
                    "this invitation was used already, by another device; {ask}"
                ));
            }
            Some(_) => {} // the same device again (it lost the first answer)
            None if now_ms() > invitation.expires_at_ms => {
                return Verdict::Refuse(format!(
                    "this invitation expired at {}; {ask}",
                    rfc3339(invitation.expires_at_ms)
                ));
            }
            None => {
                state.used.insert(invitation.id.clone(), *peer);
                let _ = self.used.send(InvitationUsed {
                    peer: *peer,
                    invitation: invitation.id.clone(),
                });
            }
        }
        let welcome = crate::invitations::Welcome {
            vault_key: *self.secrets.root,
            kdf: self.secrets.kdf.clone(),
            epochs: state.epochs.clone(),
            removals: state.removal_records.clone(),
        };
        match crate::invitations::seal_welcome(&self.secrets.identity, peer, &welcome) {
            Ok(sealed) => Verdict::Welcome(sealed),
            Err(e) => Verdict::Refuse(format!("the member could not seal the keys: {e}")),
        }
    }
}

impl Gatekeeper for VaultGate {
    fn accepted(&self) -> Vec<(Ticket, [u8; 32])> {
        let state = self.read();
        let mut keys = Self::keys(&state, self.root_psk);
        keys.extend(
            state
                .invitations
                .iter()
                .filter_map(|i| Some((invitation_ticket(&i.id), i.psk_bytes()?))),
        );
        keys
    }

    fn dial_key(&self, peer: Option<&PeerId>) -> (Ticket, [u8; 32]) {
        let state = self.read();
        let keys = Self::keys(&state, self.root_psk);
        // A peer that proved an older epoch is dialled with its key: it may
        // not hold the newer one yet.
        let known = peer.and_then(|p| state.tickets.get(p));
        known
            .and_then(|t| keys.iter().find(|(k, _)| k == t))
            .or(keys.first())
            .copied()
            .unwrap_or((0, self.root_psk))
    }

    fn admit(&self, peer: &PeerId, side: Side, ticket: Ticket) -> Verdict {
        let mut state = self.write();
        if let Some(reason) = state.removed.get(peer) {
            return Verdict::Refuse(reason.clone());
        }
        if side == Side::Dialled {
            return Verdict::Admit;
        }
        if ticket & INVITATION_TICKET != 0 {
            return self.redeem(&mut state, peer, ticket);
        }
        state.tickets.insert(*peer, ticket);
        let current = state.epochs.iter().map(ticket_of).max().unwrap_or(0);
        if ticket == current || state.members.contains(peer) {
            Verdict::Admit
        } else {
            Verdict::Refuse(
                "not a member of this vault: its key was changed when a device was removed, \
                 and the key this node holds no longer admits a new device; ask a member for \
                 an invitation (`peervault invite`)"
                    .into(),
            )
        }
    }

    fn current(&self) -> Ticket {
        self.current_ticket()
    }

    fn peer_current(&self, peer: &PeerId, ticket: Ticket) {
        self.write().tickets.insert(*peer, ticket);
    }
}

/// What the node keeps about devices besides the records: when peers were
/// last seen, and the epoch keys it holds.
pub(crate) struct Devices {
    pub(crate) gate: std::sync::Arc<VaultGate>,
    identity: Keypair,
    data_dir: std::path::PathBuf,
    registry: RwLock<Registry>,
    last_seen: Mutex<HashMap<PeerId, u64>>,
    epochs: Mutex<Vec<EpochKey>>,
    /// Records under the device prefixes changed (a sync applied some).
    pub(crate) changed: tokio::sync::Notify,
    /// This node's own record was written or found, this run.
    pub(crate) recorded_self: std::sync::atomic::AtomicBool,
    /// The newest epoch handed to each peer (see `Node::reload_devices`).
    granted: Mutex<HashMap<PeerId, u32>>,
    /// Devices known removed from a grant, not yet disconnected and replaced.
    pending_removed: Mutex<Vec<PeerId>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Devices(..)")
    }
}

impl Devices {
    pub(crate) fn new(
        gate: std::sync::Arc<VaultGate>,
        identity: Keypair,
        data_dir: std::path::PathBuf,
        epochs: Vec<EpochKey>,
    ) -> Devices {
        Devices {
            gate,
            identity,
            data_dir,
            registry: RwLock::new(Registry::default()),
            last_seen: Mutex::new(HashMap::new()),
            epochs: Mutex::new(epochs),
            changed: tokio::sync::Notify::new(),
            recorded_self: std::sync::atomic::AtomicBool::new(false),
            granted: Mutex::new(HashMap::new()),
            pending_removed: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The vault's redundancy setting, if a member made one (without
    /// cloning the registry: every write asks).
    pub(crate) fn redundancy_setting(&self) -> Option<crate::writes::RedundancySetting> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .redundancy
            .clone()
    }

    /// Takes a new member list. Removals are for good, so one known before
    /// stays even if `registry` lacks it (read while its record was being
    /// written).
    pub(crate) fn set_registry(&self, mut registry: Registry) {
        let mut current = self.registry.write().unwrap_or_else(|p| p.into_inner());
        for (peer, removal) in &current.removed {
            registry
                .removed
                .entry(*peer)
                .or_insert_with(|| removal.clone());
            registry.members.remove(peer);
        }
        self.gate.set_registry(&registry);
        *current = registry;
    }

    pub(crate) fn seen(&self, peer: PeerId, now_ms: u64) {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, now_ms);
    }

    pub(crate) fn last_seen(&self, peer: &PeerId) -> Option<u64> {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(peer)
            .copied()
    }

    pub(crate) fn epochs(&self) -> Vec<EpochKey> {
        self.epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds `new` to the epochs held; if any was new, keeps them in the data
    /// dir and makes the vault and the gate use them. True if any was new.
    pub(crate) fn add_epochs(&self, vault: &Vault, new: Vec<EpochKey>) -> Result<bool> {
        let mut epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
        let mut merged = epochs.clone();
        if !crate::epochs::merge(&mut merged, new) {
            return Ok(false);
        }
        // Kept before used: data sealed in an epoch whose key a crash lost
        // would open nowhere if this node were its only holder.
        crate::epochs::save(&self.data_dir, &merged)?;
        vault.set_epochs(&merged);
        self.gate.set_epochs(merged.clone());
        *epochs = merged;
        Ok(true)
    }

    /// The number a new epoch gets: after every epoch held.
    pub(crate) fn next_epoch_number(&self) -> u32 {
        self.epochs().iter().map(|k| k.number).max().unwrap_or(0) + 1
    }

    /// Starts a new key epoch (numbered after every epoch held); its key.
    pub(crate) fn new_epoch(&self, vault: &Vault) -> Result<EpochKey> {
        let number = self.next_epoch_number();
        let key = EpochKey::generate(number)
            .map_err(|e| NodeError::Invalid(format!("no new epoch key: {e}")))?;
        self.add_epochs(vault, vec![key.clone()])?;
        Ok(key)
    }

    /// `peer` took every epoch key this node holds.
    pub(crate) fn granted(&self, peer: PeerId) {
        let newest = self.epochs().iter().map(|k| k.number).max().unwrap_or(0);
        let mut granted = self.granted.lock().unwrap_or_else(|p| p.into_inner());
        let entry = granted.entry(peer).or_default();
        *entry = (*entry).max(newest);
    }

    /// The newest epoch this node handed `peer` since it started.
    pub(crate) fn granted_to(&self, peer: &PeerId) -> Option<u32> {
        self.granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(peer)
            .copied()
    }

    /// Every epoch key held, sealed for `peer`.
    pub(crate) fn grant_for(&self, peer: &PeerId) -> Result<Vec<u8>> {
        let grant = crate::epochs::Grant {
            epochs: self.epochs(),
            removals: self.removals_json(),
        };
        crate::epochs::seal_grant(&self.identity, peer, &grant)
    }

    /// Every removal this node knows, as the signed JSON records (kept by
    /// the gate, which welcomes new devices with them).
    pub(crate) fn removals_json(&self) -> Vec<String> {
        self.gate.read().removal_records.clone()
    }

    /// Takes removals another member vouched for (a grant's, a welcome's):
    /// each signed record that verifies is known at once, before any key
    /// that comes with it is used. The devices newly removed wait in
    /// `pending_removed` for the node to disconnect and replace them.
    pub(crate) fn take_removals(&self, records: &[String]) {
        let mut registry = self.registry();
        let mut newly = Vec::new();
        for json in records {
            let Ok(record) = serde_json::from_str::<RemovalRecord>(json) else {
                continue;
            };
            if !record.verifies() {
                continue;
            }
            let Ok(peer) = record.peer_id.parse::<PeerId>() else {
                continue;
            };
            if !registry.removed.contains_key(&peer) {
                newly.push(peer);
                registry.members.remove(&peer);
                registry.removed.insert(peer, record);
            }
        }
        if !newly.is_empty() {
            self.set_registry(registry);
            self.pending_removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(newly);
            self.changed.notify_one();
        }
    }

    /// Removals taken from grants that the node has yet to act on.
    pub(crate) fn take_pending_removed(&self) -> Vec<PeerId> {
        std::mem::take(
            &mut self
                .pending_removed
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Opens and keeps the epochs `from` granted; true if any was new. Only a
    /// device that is not removed may grant (one whose connection was accepted).
    pub(crate) fn accept_grant(&self, vault: &Vault, from: &PeerId, sealed: &[u8]) -> Result<bool> {
        if self.gate.is_removed(from) {
            return Err(NodeError::Invalid(format!(
                "{from} was removed from the vault; its keys are not taken"
            )));
        }
        let grant = crate::epochs::open_grant(&self.identity, from, sealed)?;
        // Whom the keys must not reach, before the keys.
        self.take_removals(&grant.removals);
        let added = self.add_epochs(vault, grant.epochs)?;
        if added {
            tracing::info!(
                "key epoch {} received from {from}: data written from now on is sealed in it",
                vault.current_epoch()
            );
        }
        Ok(added)
    }

    pub(crate) fn identity(&self) -> &Keypair {
        &self.identity
    }

    /// True if `name` is a member's or a removal's record.
    pub(crate) fn touches(name: &str) -> bool {
        [
            DEVICES_PREFIX,
            REMOVED_PREFIX,
            INVITATIONS_PREFIX,
            INVITED_PREFIX,
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == crate::rekey::REKEY_NAME
            || name == crate::writes::REDUNDANCY_NAME
    }
}

/// A member device as `peervault devices` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub peer_id: String,
    pub name: String,
    /// Connected to the node answering (or that node itself).
    pub online: bool,
    /// When the answering node last saw it connected (RFC 3339): now if
    /// online, `None` if not since that node started.
    pub last_seen: Option<String>,
    pub added_by: String,
    /// RFC 3339.
    pub added_at: String,
    /// How it became a member.
    pub how: Admission,
    /// It is the node answering.
    #[serde(default)]
    pub this_device: bool,
}

/// What `devices remove` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedDevice {
    pub peer_id: String,
    pub name: String,
    /// The key epoch the removal started.
    pub epoch: u32,
    /// Peers that received the new epoch's key at once (the others get it
    /// from the first member they connect to).
    pub members_told: usize,
    /// Members besides this node and the removed device.
    pub members_left: usize,
}

fn now_ms() -> u64 {
    peervault_store::version::unix_millis_now()
}

impl crate::Node {
    /// The vault's member devices, oldest first. This node is listed even
    /// before another member has recorded it.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        let ctx = &self.inner.ctx;
        let registry = ctx.devices.registry();
        let me = self.inner.identity.peer_id();
        let online: std::collections::HashSet<PeerId> =
            ctx.connected_peers().await.into_iter().collect();
        let now = now_ms();
        let mut out: Vec<DeviceInfo> = registry
            .members
            .iter()
            .map(|(peer, r)| {
                let on = *peer == me || online.contains(peer);
                let seen = if on {
                    Some(now)
                } else {
                    ctx.devices.last_seen(peer)
                };
                DeviceInfo {
                    peer_id: r.peer_id.clone(),
                    name: r.name.clone(),
                    online: on,
                    last_seen: seen.map(rfc3339),
                    added_by: r.added_by.clone(),
                    added_at: rfc3339(r.added_at_ms),
                    how: r.how,
                    this_device: *peer == me,
                }
            })
            .collect();
        if !registry.members.contains_key(&me) && !registry.removed.contains_key(&me) {
            out.push(DeviceInfo {
                peer_id: me.to_string(),
                name: default_name(&me),
                online: true,
                last_seen: Some(rfc3339(now)),
                added_by: me.to_string(),
                added_at: rfc3339(self.inner.started_unix_ms),
                how: Admission::Key,
                this_device: true,
            });
        }
        out.sort_by(|a, b| (&a.added_at, &a.peer_id).cmp(&(&b.added_at, &b.peer_id)));
        Ok(out)
    }

    /// Renames the member `who` (peer id or name) on every node.
    pub async fn rename_device(&self, who: &str, name: &str) -> Result<DeviceInfo> {
        let name = check_name(name)?;
        let registry = self.inner.ctx.devices.registry();
        let me = self.inner.identity.peer_id();
        let (peer, record) = match registry.find(who) {
            Ok(found) => found,
            // This node before anyone recorded it.
            Err(_) if who == me.to_string() || who == default_name(&me) => (
                me,
                new_member(self.keypair(), &me, name, Admission::Key, now_ms())?,
            ),
            Err(e) => return Err(e),
        };
        if registry
            .members
            .iter()
            .any(|(p, r)| *p != peer && r.name == name)
        {
            return Err(NodeError::Invalid(format!(
                "another device is named {name:?} already; choose another name"
            )));
        }
        let record = renamed(self.keypair(), &record, name, now_ms())?;
        self.write_device_record(&member_name(&peer), member_meta(&record)?)
            .await?;
        self.devices()
            .await?
            .into_iter()
            .find(|d| d.peer_id == record.peer_id)
            .ok_or_else(|| NodeError::Invalid("the renamed device is not listed".into()))
    }

    /// Removes the member `who` (peer id or name) from the vault: a new key
    /// epoch that it does not receive, its removal recorded on every node,
    /// its connections closed, and what it held copied to the others.
    pub async fn remove_device(&self, who: &str) -> Result<RemovedDevice> {
        let ctx = &self.inner.ctx;
        let registry = ctx.devices.registry();
        let me = self.inner.identity.peer_id();
        let (peer, record) = match registry.find(who) {
            Ok(found) => found,
            // This node before anyone recorded it.
            Err(_) if who.trim() == me.to_string() || who.trim() == default_name(&me) => (
                me,
                new_member(self.keypair(), &me, who, Admission::Key, now_ms())?,
            ),
            Err(e) => return Err(e),
        };
        if peer == me {
            return Err(NodeError::Invalid(
                "a device cannot remove itself: run `peervault devices remove` on another member"
                    .into(),
            ));
        }
        // Refused and disconnected first, so that nothing more reaches it.
        let number = ctx.devices.next_epoch_number();
        let gone = removal(self.keypair(), &record, number, now_ms())?;
        let mut refused = registry.clone();
        refused.members.remove(&peer);
        refused.removed.insert(peer, gone.clone());
        ctx.devices.set_registry(refused);
        self.device_removed(peer).await;
        // The remaining members get the new key with the removal in the same
        // grant (they refuse the device before they hold the key), then the
        // removal record, sealed in the new epoch, reaches everyone.
        let epoch = ctx.devices.new_epoch(&ctx.vault)?;
        let others: Vec<PeerId> = ctx
            .connected_peers()
            .await
            .into_iter()
            .filter(|p| *p != peer)
            .collect();
        let told = self.push_grants(&others).await;
        self.write_device_record(&removal_name(&peer), removal_meta(&gone)?)
            .await?;
        tracing::warn!(
            "removed device {peer} ({:?}) from the vault; key epoch {} started",
            record.name,
            epoch.number
        );
        Ok(RemovedDevice {
            peer_id: peer.to_string(),
            name: record.name,
            epoch: epoch.number,
            members_told: told,
            members_left: registry
                .members
                .keys()
                .filter(|p| **p != peer && **p != self.inner.identity.peer_id())
                .count(),
        })
    }

    /// Starts a new key epoch without removing anyone: data written from now
    /// on is sealed in it. Its number.
    pub async fn rekey(&self) -> Result<u32> {
        let ctx = &self.inner.ctx;
        let epoch = ctx.devices.new_epoch(&ctx.vault)?;
        let peers = ctx.connected_peers().await;
        self.push_grants(&peers).await;
        Ok(epoch.number)
    }

    /// The key epoch new data is sealed in.
    pub fn key_epoch(&self) -> u32 {
        self.inner.ctx.vault.current_epoch()
    }

    fn keypair(&self) -> &Keypair {
        self.inner.ctx.devices.identity()
    }

    /// Hands every epoch key to each of `peers`; how many took them.
    async fn push_grants(&self, peers: &[PeerId]) -> usize {
        let grants = peers.iter().map(|peer| async move {
            let sealed = match self.inner.ctx.devices.grant_for(peer) {
                Ok(sealed) => sealed,
                Err(e) => {
                    tracing::warn!("cannot seal the key epochs for {peer}: {e}");
                    return false;
                }
            };
            let request = crate::wire::Request::Grant { sealed };
            match self
                .inner
                .ctx
                .ask(*peer, &request, crate::client::CONTROL_TIMEOUT)
                .await
            {
                Ok(crate::wire::Response::Ack) => {
                    self.inner.ctx.devices.granted(*peer);
                    true
                }
                Ok(other) => {
                    tracing::warn!("{peer} did not take the key epochs: {other:?}");
                    false
                }
                Err(e) => {
                    tracing::warn!("cannot hand the key epochs to {peer}: {e}");
                    false
                }
            }
        });
        futures::future::join_all(grants)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Writes a device record under `name` (an empty file; the record rides
    /// in its metadata), announces it to every connected peer (each forwards
    /// it; the sync takes it to the others) and reloads the member list. No
    /// copy is offered: a record without chunks is complete wherever it is.
    pub(crate) async fn write_device_record(&self, name: &str, meta: FileMeta) -> Result<()> {
        let written = self
            .inner
            .ctx
            .vault
            .write_file_finishing(name, Box::new(move || Ok(meta)), &[][..], Some(0), None)
            .await?;
        let version = written.manifest.version;
        self.inner.syncer.announce_version(name, version, &[]);
        self.reload_devices().await
    }

    /// Reads the member list again, and acts on removals it did not know of.
    async fn reload_devices(&self) -> Result<()> {
        let ctx = &self.inner.ctx;
        let before = ctx.devices.registry();
        let registry = Registry::load(&ctx.vault).await?;
        let newly_removed: Vec<PeerId> = registry
            .removed
            .keys()
            .filter(|p| !before.removed.contains_key(p))
            .copied()
            .collect();
        let removals: Vec<(PeerId, u32)> = newly_removed
            .iter()
            .filter_map(|p| registry.removed.get(p).map(|r| (*p, r.epoch)))
            .collect();
        ctx.devices.set_registry(registry);
        for peer in newly_removed {
            self.device_removed(peer).await;
        }
        // A removal started on another member while this one handed its keys
        // to that device (two removals at once, each device still a member to
        // the other remover): the device may hold a key as new as the epoch
        // its removal started, so this node starts one it never had.
        for (peer, epoch) in removals {
            if ctx.devices.granted_to(&peer).is_some_and(|n| n >= epoch) {
                tracing::warn!(
                    "removed device {peer} received key epoch keys from this node before its \
                     removal reached it: starting a new epoch"
                );
                if let Err(e) = self.rekey().await {
                    tracing::warn!("cannot start a new key epoch: {e}");
                }
            }
        }
        Ok(())
    }

    /// A removal this node now knows of: the device is disconnected, never
    /// waited for, and what it held is copied to the others at once.
    async fn device_removed(&self, peer: PeerId) {
        let ctx = &self.inner.ctx;
        ctx.net.disconnect(peer).await;
        self.inner.maintenance.peer_removed(&peer);
        let maintenance = self.inner.maintenance.clone();
        ctx.spawn(async move {
            // Give the disconnection a moment to reach the peer list.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if let Err(e) = maintenance.repair_round().await {
                tracing::warn!("repair after a removal: {e}");
            }
        });
    }

    /// Records each device the gate admitted with an invitation.
    pub(crate) async fn watch_invitations(
        self,
        mut used: tokio::sync::mpsc::UnboundedReceiver<InvitationUsed>,
    ) {
        while let Some(admitted) = used.recv().await {
            self.record_invitation_used(admitted).await;
        }
    }

    /// Reloads the member list whenever a sync applies a device record.
    pub(crate) async fn watch_devices(self) {
        loop {
            self.inner.ctx.devices.changed.notified().await;
            for peer in self.inner.ctx.devices.take_pending_removed() {
                self.device_removed(peer).await;
            }
            // Records of one sync arrive in batches: take them together.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Err(e) = self.reload_devices().await {
                tracing::warn!("cannot read the member list: {e}");
            }
        }
    }

    /// A peer connected: refused if it was removed (false), else seen, and
    /// handed the key epochs if it proved another one than this node's.
    pub(crate) async fn device_connected(&self, peer: PeerId) -> bool {
        let devices = &self.inner.ctx.devices;
        if devices.gate.is_removed(&peer) {
            self.inner.ctx.net.disconnect(peer).await;
            return false;
        }
        devices.seen(peer, now_ms());
        // Behind, or on another epoch started at the same time: either way it
        // gets every key this node holds (and sends its own when it sees ours).
        let current = devices.gate.current_ticket();
        if current > 0 && devices.gate.peer_ticket(&peer).is_none_or(|t| t != current) {
            let node = self.clone();
            self.inner.ctx.spawn(async move {
                node.push_grants(&[peer]).await;
            });
        }
        true
    }

    /// After a sync: records this node as a member if no record of it came
    /// with the catalogue (it holds the current key: `-key`, a join code, or
    /// a vault from before members were recorded). Once per run; done after a
    /// sync so that a record made elsewhere (a rename) is not overwritten.
    pub(crate) async fn record_self(&self) {
        let devices = &self.inner.ctx.devices;
        if devices
            .recorded_self
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let me = self.inner.identity.peer_id();
        let written = async {
            let registry = Registry::load(&self.inner.ctx.vault).await?;
            if registry.members.contains_key(&me) || registry.removed.contains_key(&me) {
                return Ok(false);
            }
            let record = new_member(
                self.keypair(),
                &me,
                &default_name(&me),
                Admission::Key,
                now_ms(),
            )?;
            self.write_device_record(&member_name(&me), member_meta(&record)?)
                .await?;
            Ok::<_, NodeError>(true)
        };
        match written.await {
            Ok(true) => tracing::info!("recorded this node as a member of the vault"),
            Ok(false) => {}
            Err(e) => {
                devices
                    .recorded_self
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!("cannot record this node as a member: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_verify_only_as_signed() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        let record = new_member(&a, &b, "laptop", Admission::Key, 1).unwrap();
        assert!(record.verifies());
        let mut bent = record.clone();
        bent.name = "evil".into();
        assert!(!bent.verifies(), "a changed field breaks the signature");
        let mut claimed = record.clone();
        claimed.by = b.to_string();
        assert!(!claimed.verifies(), "signed by another than it says");
        let renamed = renamed(&a, &record, "desk", 2).unwrap();
        assert!(renamed.verifies() && renamed.added_at_ms == 1 && renamed.name == "desk");
        let gone = removal(&a, &record, 1, 3).unwrap();
        assert!(gone.verifies());
        let meta = removal_meta(&gone).unwrap();
        assert_eq!(record_of::<RemovalRecord>("x", &meta), Some(gone));
    }

    fn registry_of(names: &[&str]) -> (Registry, Vec<PeerId>) {
        let a = Keypair::generate_ed25519();
        let mut registry = Registry::default();
        let mut peers = Vec::new();
        for name in names {
            let peer = Keypair::generate_ed25519().public().to_peer_id();
            let record = new_member(&a, &peer, name, Admission::Key, 1).unwrap();
            registry.members.insert(peer, record);
            peers.push(peer);
        }
        (registry, peers)
    }

    #[test]
    fn devices_are_found_by_id_name_or_a_long_enough_start() {
        let (registry, peers) = registry_of(&["laptop", "desk", "desk"]);
        assert_eq!(registry.find("laptop").unwrap().0, peers[0]);
        assert_eq!(registry.find(&peers[1].to_string()).unwrap().0, peers[1]);
        let e = registry.find("desk").unwrap_err().to_string();
        assert!(e.contains("more than one"), "{e}");
        let e = registry.find("phone").unwrap_err().to_string();
        assert!(e.contains("peervault devices"), "{e}");
        let id = peers[0].to_string();
        assert_eq!(registry.find(&id[..id.len() - 2]).unwrap().0, peers[0]);
    }

    #[test]
    fn the_gate_admits_members_and_current_key_holders_and_never_the_removed() {
        let (mut registry, peers) = registry_of(&["a", "b"]);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let secrets = VaultSecrets {
            root: zeroize::Zeroizing::new([1; 32]),
            kdf: None,
            identity: Keypair::generate_ed25519(),
        };
        let gate = VaultGate::new([1; 32], secrets, Vec::new(), tx);
        gate.set_registry(&registry);
        let stranger = Keypair::generate_ed25519().public().to_peer_id();
        // Before any removal the vault key is current: key holders get in.
        assert_eq!(gate.admit(&stranger, Side::Accepted, 0), Verdict::Admit);
        // A removal: b is out, a new epoch is current.
        let record = registry.members.remove(&peers[1]).unwrap();
        let a = Keypair::generate_ed25519();
        registry
            .removed
            .insert(peers[1], removal(&a, &record, 1, 5).unwrap());
        gate.set_registry(&registry);
        let one = EpochKey::generate(1).unwrap();
        gate.set_epochs(vec![one.clone()]);
        let current = ticket_of(&one);
        assert_eq!(gate.accepted()[0], (current, one.pnet_psk()));
        assert_eq!(gate.accepted()[1], (0, [1; 32]));
        for ticket in [0, current] {
            assert!(matches!(
                gate.admit(&peers[1], Side::Accepted, ticket),
                Verdict::Refuse(r) if r.contains("removed")
            ));
            assert!(matches!(
                gate.admit(&peers[1], Side::Dialled, ticket),
                Verdict::Refuse(_)
            ));
        }
        // The old key admits members only; the new one, its holders.
        assert!(matches!(
            gate.admit(&stranger, Side::Accepted, 0),
            Verdict::Refuse(r) if r.contains("not a member")
        ));
        assert_eq!(gate.admit(&peers[0], Side::Accepted, 0), Verdict::Admit);
        assert_eq!(
            gate.dial_key(Some(&peers[0])),
            (0, [1; 32]),
            "dialled as it proved"
        );
        assert_eq!(gate.dial_key(None).0, current);
        assert_eq!(
            gate.admit(&stranger, Side::Accepted, current),
            Verdict::Admit
        );
    }
}
