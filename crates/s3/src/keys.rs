//! Access keys: kept in the vault, so that every node's gateway accepts them.
//!
//! A key is a small vault file under PeerVault's own prefix: sealed with the
//! vault key like every file, replicated and synced like every file, deleted
//! everywhere by one `s3 keys rm`. A gateway reads a key's secret when a
//! request names it, and keeps it until the file changes.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use futures::StreamExt;
use peervault_node::{FileMeta, Node, NodeError};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::names;

/// One access key, secret included (what `s3 keys create` prints).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// What the key is for, as its creator named it.
    pub name: String,
    pub created_unix_ms: u64,
}

/// A key as `s3 keys ls` shows it: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeySummary {
    pub access_key_id: String,
    pub name: String,
    pub created_unix_ms: u64,
}

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no access key {0} (peervault s3 keys ls lists them)")]
    NoSuchKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("access key record {0} does not decode: {1}")]
    Corrupt(String, serde_json::Error),
}

/// Access key ids: "PV" and 18 characters of base32 (S3's are 20 characters).
const ID_LEN: usize = 20;

/// Makes a new key named `name` and stores it in the vault.
pub async fn create(node: &Node, name: &str) -> Result<AccessKey, KeyError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(KeyError::Invalid(
            "a key's name is 1 to 200 printable characters, e.g. backup-laptop".into(),
        ));
    }
    // Separate bytes for the id (public) and the secret (240 bits).
    let (mut id_bytes, mut secret_bytes) = ([0u8; ID_LEN - 2], [0u8; 30]);
    for bytes in [&mut id_bytes[..], &mut secret_bytes[..]] {
        getrandom::fill(bytes).map_err(|e| KeyError::Invalid(format!("no randomness: {e}")))?;
    }
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = "PV"
        .chars()
        .chain(id_bytes.iter().map(|b| BASE32[(b & 31) as usize] as char))
        .collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let key = AccessKey {
        access_key_id: id,
        secret_access_key: secret,
        name: name.to_string(),
        created_unix_ms: now_ms(),
    };
    let record = serde_json::to_vec(&key).map_err(|e| KeyError::Invalid(e.to_string()))?;
    node.put_object(
        &names::access_key(&key.access_key_id),
        &record[..],
        Some(record.len() as u64),
        Box::new(|| Ok(FileMeta::default())),
    )
    .await?;
    Ok(key)
}

/// Every key, oldest first, without secrets.
pub async fn list(node: &Node) -> Result<Vec<KeySummary>, KeyError> {
    let mut out = Vec::new();
    for object in node.objects(&names::keys_prefix()).await? {
        let key = read(node, &object.name).await?;
        out.push(KeySummary {
            access_key_id: key.access_key_id,
            name: key.name,
            created_unix_ms: key.created_unix_ms,
        });
    }
    out.sort_by(|a, b| {
        (a.created_unix_ms, &a.access_key_id).cmp(&(b.created_unix_ms, &b.access_key_id))
    });
    Ok(out)
}

/// Deletes key `id` on every node: requests signed with it fail from then on.
pub async fn remove(node: &Node, id: &str) -> Result<(), KeyError> {
    if !valid_id(id) || node.object(&names::access_key(id)).await.is_err() {
        return Err(KeyError::NoSuchKey(id.to_string()));
    }
    // Purged: a secret should not outlive its removal in the version history.
    node.remove_object(&names::access_key(id), true).await?;
    Ok(())
}

fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn read(node: &Node, name: &str) -> Result<AccessKey, KeyError> {
    let bytes = read_small(node, name).await?;
    serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt(name.to_string(), e))
}

/// The content of a small file of the gateway's own.
pub(crate) async fn read_small(node: &Node, name: &str) -> Result<Vec<u8>, NodeError> {
    let mut reader = node.read_object(name, None).await?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks signatures against the keys in the vault.
pub(crate) struct VaultKeys {
    node: Node,
    /// Secrets read, by key id, with the content hash of the record they came from.
    cache: Mutex<HashMap<String, ([u8; 32], SecretKey)>>,
}

impl VaultKeys {
    pub(crate) fn new(node: Node) -> Self {
        Self {
            node,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for VaultKeys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let unknown = || {
            s3_error!(
                InvalidAccessKeyId,
                "no such access key (peervault s3 keys ls lists them)"
            )
        };
        if !valid_id(access_key) {
            return Err(unknown());
        }
        let name = names::access_key(access_key);
        // A key removed on any node is gone here as soon as the record arrives.
        let Ok(current) = self.node.object(&name).await else {
            if let Ok(mut cache) = self.cache.lock() {
                cache.remove(access_key);
            }
            return Err(unknown());
        };
        if let Ok(cache) = self.cache.lock()
            && let Some((hash, secret)) = cache.get(access_key)
            && *hash == current.hash
        {
            return Ok(secret.clone());
        }
        let key = read(&self.node, &name)
            .await
            .map_err(crate::errors::internal)?;
        let secret = SecretKey::from(key.secret_access_key);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(access_key.to_string(), (current.hash, secret.clone()));
        }
        Ok(secret)
    }
}
