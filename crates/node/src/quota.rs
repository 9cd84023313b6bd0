//! The quota file, `.quota_config.json`, in the original's format.
//!
//! ```json
//! {"max_storage_bytes": 5368709120, "storage_root": "/var/lib/peervault/node_port_3000"}
//! ```
//!
//! The file is the source of truth for the quota across restarts. It is replaced
//! atomically (temp file, fsync, rename, fsync of the directory), so an edit by the
//! node can never leave a truncated file behind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data dir.
pub const QUOTA_FILE: &str = ".quota_config.json";

/// Quota used when none is configured and nobody can be asked: 10 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 10 << 30;

/// Contents of `.quota_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaConfig {
    pub max_storage_bytes: u64,
    pub storage_root: String,
}

/// Why the quota file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QuotaFileError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not valid ({reason}); fix it (it needs \"max_storage_bytes\" as a number of \
         bytes) or delete it and set the quota again with --quota SIZE"
    )]
    Invalid { path: PathBuf, reason: String },
}

impl QuotaConfig {
    /// Path of the quota file in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(QUOTA_FILE)
    }

    /// Reads the quota file; `Ok(None)` if there is none yet.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, QuotaFileError> {
        let path = Self::path(data_dir);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(QuotaFileError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| QuotaFileError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes the quota file atomically and durably (through a symlink to where it
    /// leads; anything but a regular file there is refused, never replaced).
    pub fn save(&self, data_dir: &Path) -> Result<(), QuotaFileError> {
        let path = Self::path(data_dir);
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        peervault_store::files::write_atomically(&path, text.as_bytes(), 0o600).map_err(|source| {
            QuotaFileError::Io {
                action: "write",
                path,
                source,
            }
        })
    }
}

/// Quota figures as the `quota` command shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuotaStatus {
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// 0-100 (may exceed 100 if the quota was lowered below usage).
    pub utilization_percent: f64,
    /// Of `used_bytes`, what only old versions (kept in history) use: shown by
    /// `quota`, absent where it was not counted (status, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_versions_bytes: Option<u64>,
}

impl QuotaStatus {
    pub fn new(used: u64, total: u64) -> Self {
        Self {
            used_bytes: used,
            total_bytes: total,
            available_bytes: total.saturating_sub(used),
            utilization_percent: if total == 0 {
                if used == 0 { 0.0 } else { 100.0 }
            } else {
                used as f64 * 100.0 / total as f64
            },
            old_versions_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_the_originals_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(QuotaConfig::load(dir.path()).unwrap(), None);
        let config = QuotaConfig {
            max_storage_bytes: 5_368_709_120,
            storage_root: "storage/node_port_3000".into(),
        };
        config.save(dir.path()).unwrap();
        let text = fs::read_to_string(QuotaConfig::path(dir.path())).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["max_storage_bytes"], 5_368_709_120u64);
        assert_eq!(value["storage_root"], "storage/node_port_3000");
        assert_eq!(QuotaConfig::load(dir.path()).unwrap(), Some(config));
    }

    #[test]
    fn a_broken_file_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            QuotaConfig::path(dir.path()),
            "{\"max_storage_bytes\": \"lots\"}",
        )
        .unwrap();
        let e = QuotaConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("--quota"), "{e}");
    }

    #[test]
    fn status_percentages() {
        let s = QuotaStatus::new(2_514_800_000, 5_368_709_120);
        assert!((s.utilization_percent - 46.84).abs() < 0.01);
        assert_eq!(QuotaStatus::new(0, 0).utilization_percent, 0.0);
        assert_eq!(QuotaStatus::new(10, 5).available_bytes, 0);
    }
}
