//! The versions of a name kept after overwrites and deletes: listing them,
//! reading one, and making one current again (see [`crate::history`] for what is
//! kept and for how long).

use super::{Inner, Vault};
use crate::error::{Result, StoreError};
use crate::history::Retention;
use crate::ids::NameId;
use crate::manifest::{CatalogueEntry, FileSummary, Manifest};
use crate::version::Version;

impl Vault {
    /// How long superseded versions are kept.
    pub fn retention(&self) -> Retention {
        self.inner.retention()
    }

    /// Changes how long superseded versions are kept (from the next write or GC).
    pub fn set_retention(&self, retention: Retention) {
        *self
            .inner
            .retention
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = retention;
    }

    /// Every version of `name` held here, the current one (a file or a
    /// deletion) first, then the superseded ones newest first. Not found if the
    /// vault has no record of the name.
    pub async fn versions(&self, name: &str) -> Result<Vec<CatalogueEntry>> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let versions = inner.catalogue.versions(&name)?;
            if versions.is_empty() {
                return Err(StoreError::NotFound { name });
            }
            Ok(versions)
        })
        .await
    }

    /// The manifest of `version` of `name`, current or superseded.
    pub async fn manifest_version(&self, name: &str, version: Version) -> Result<Manifest> {
        let name = name.to_string();
        self.blocking(move |inner| inner.version_manifest(&name, version))
            .await
    }

    /// Writes `version` of `name` again, as a new version (`undelete`, `restore`):
    /// the same content, chunks and file metadata, so nothing is copied, and a
    /// new record that replicates like any write. Returns the new manifest.
    pub async fn revive(&self, name: &str, version: Version) -> Result<Manifest> {
        let name = name.to_string();
        self.blocking(move |inner| {
            let mut manifest = inner.version_manifest(&name, version)?;
            manifest.version = Version {
                clock: inner.clock.tick(),
                origin: inner.origin,
            };
            manifest.author = inner.author.clone();
            let outcome = inner.apply_entry(&CatalogueEntry::File(manifest.clone()), &[])?;
            inner.forget(&outcome.unreferenced)?;
            Ok(manifest)
        })
        .await
    }

    /// Bytes of blobs held here that only superseded versions use.
    pub async fn history_bytes(&self) -> Result<u64> {
        if self.superseded_count() == 0 {
            return Ok(0);
        }
        self.blocking(|inner| inner.catalogue.history_only_bytes())
            .await
    }

    /// How many superseded versions are kept, over all names.
    pub fn superseded_count(&self) -> usize {
        self.with_index(|i| i.superseded())
    }

    /// Every superseded file version, as listings show files, with whether this
    /// node holds all its chunks (for the repair worker: old versions keep their
    /// copies like current ones).
    pub async fn superseded_summaries(&self) -> Result<Vec<(NameId, FileSummary)>> {
        if self.superseded_count() == 0 {
            return Ok(Vec::new());
        }
        self.blocking(|inner| {
            let view = inner.catalogue.chunk_view()?;
            let mut out = Vec::new();
            inner.catalogue.try_for_each_superseded(|id, entry| {
                if let CatalogueEntry::File(m) = entry {
                    let held = super::exchange::holds_file(&view, &m)?;
                    out.push((id, FileSummary::of(&m, held)));
                }
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }
}

impl Inner {
    /// The manifest of `version` of `name`: not found if that version is not
    /// held, and refused if it is a deletion.
    pub(super) fn version_manifest(&self, name: &str, version: Version) -> Result<Manifest> {
        match self.record(self.crypto.name_id(name), version)? {
            Some((CatalogueEntry::File(m), _)) => Ok(m),
            Some((CatalogueEntry::Deleted(_), _)) => Err(StoreError::NotFound {
                name: format!("{name} (that version is its deletion)"),
            }),
            None => Err(StoreError::NotFound {
                name: format!("{name} (version {})", version.label()),
            }),
        }
    }
}
