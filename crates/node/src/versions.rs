//! The history of a name, for users: `versions`, `get --version`, `undelete` and
//! `restore` (what is kept, and for how long, is `peervault_store::history`).
//!
//! Bringing a version back is a new write of its manifest (same content, chunks
//! and file metadata, a new version): nothing is copied, and the record spreads
//! and wins over the delete or the newer version like any other write, so a
//! node that was away comes back to the same result. A version is named by the
//! short label of its [`Version`] (8 hex digits), the same on every node.

use peervault_store::{CatalogueEntry, Version};
use serde::{Deserialize, Serialize};

use crate::error::{NodeError, Result};
use crate::node::Node;
use crate::views::FileInfo;

/// One version of a name, as `versions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Its label: what `get --version` and `restore --version` take.
    pub version: String,
    /// Bytes (0 for a deletion).
    pub size: u64,
    /// BLAKE3 of the contents, 64 hex digits (empty for a deletion).
    pub hash: String,
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// Milliseconds since the Unix epoch when it was written.
    pub time_unix_ms: u64,
    /// True for a deletion.
    pub deleted: bool,
    /// True for a deletion for good (`rm --purge`): the versions before it are gone.
    #[serde(default)]
    pub purged: bool,
    /// True for the name's current version.
    pub current: bool,
    /// Peer id of the node that wrote it.
    pub author: String,
}

impl VersionInfo {
    fn of(entry: &CatalogueEntry, current: bool) -> Self {
        let version = entry.version();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(version.unix_millis());
        let (size, hash, author) = match entry {
            CatalogueEntry::File(m) => (m.size, m.hash_hex(), m.author.clone()),
            CatalogueEntry::Deleted(t) => (0, String::new(), t.author.clone()),
        };
        Self {
            version: version.label(),
            size,
            hash,
            time: humantime::format_rfc3339_millis(at).to_string(),
            time_unix_ms: version.unix_millis(),
            deleted: entry.as_file().is_none(),
            purged: matches!(entry, CatalogueEntry::Deleted(t) if t.purge),
            current,
            author,
        }
    }
}

impl Node {
    /// Every version of `name` this node keeps, newest first: the current one
    /// (a file, or the deletion) and those kept in history.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        let entries = self.inner.ctx.vault.versions(name).await?;
        Ok(entries
            .iter()
            .enumerate()
            .map(|(i, e)| VersionInfo::of(e, i == 0))
            .collect())
    }

    /// The version of `name` whose label starts with `label` (at least 4 hex
    /// digits, and only one may match).
    pub async fn find_version(&self, name: &str, label: &str) -> Result<Version> {
        let label = label.trim().to_ascii_lowercase();
        if label.len() < 4 || !label.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeError::Invalid(format!(
                "{label:?} is not a version: give at least the first 4 of its hex digits \
                 (peervault versions {name} lists them)"
            )));
        }
        let entries = self.inner.ctx.vault.versions(name).await?;
        let mut matches = entries
            .iter()
            .map(CatalogueEntry::version)
            .filter(|v| v.label().starts_with(&label));
        match (matches.next(), matches.next()) {
            (Some(v), None) => Ok(v),
            (Some(_), Some(_)) => Err(NodeError::Invalid(format!(
                "{label:?} matches several versions of {name}: give more digits"
            ))),
            (None, _) => Err(NodeError::Invalid(format!(
                "{name} has no version {label} (peervault versions {name} lists those kept)"
            ))),
        }
    }

    /// Opens `version` of `name` for reading, from this node or its peers.
    pub async fn get_version(
        &self,
        name: &str,
        version: Version,
    ) -> Result<peervault_store::FileReader> {
        self.open(name, Some(version), None).await
    }

    /// `undelete NAME`: makes the newest file version of a deleted name current
    /// again. Refused if the name is not deleted.
    pub async fn undelete(&self, name: &str) -> Result<FileInfo> {
        let entries = self.inner.ctx.vault.versions(name).await?;
        if entries.first().is_some_and(|e| e.as_file().is_some()) {
            return Err(NodeError::Invalid(format!(
                "{name} is not deleted; to bring back an older version use \
                 peervault restore {name} --version V"
            )));
        }
        let newest = entries
            .iter()
            .find(|e| e.as_file().is_some())
            .ok_or_else(|| {
                NodeError::Invalid(format!(
                    "no version of {name} is kept any more (they expired); nothing to bring back"
                ))
            })?;
        self.revive(name, newest.version()).await
    }

    /// `restore NAME --version V`: makes `version` of `name` current again.
    pub async fn restore(&self, name: &str, version: Version) -> Result<FileInfo> {
        self.revive(name, version).await
    }

    async fn revive(&self, name: &str, version: Version) -> Result<FileInfo> {
        let manifest = self
            .inner
            .ctx
            .vault
            .revive(name, version)
            .await
            .inspect_err(|e| self.inner.ctx.metrics.failed(e))?;
        self.inner.ctx.metrics.files_stored.inc();
        // The name's placement is the same for every version, so its holders
        // mostly hold these chunks already and nothing crosses the network.
        let (local, copies) = self.spread(&manifest).await?;
        Ok(FileInfo::new(&manifest, local, copies))
    }
}
