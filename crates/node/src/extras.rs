//! Extra copies: files this node holds because a user asked (`fetch`), not
//! because the file's placement put them here.
//!
//! The repair worker drops surplus copies so that a file keeps its target
//! number. Counting a fetched copy among them made a placement holder drop its
//! copy as surplus; when the fetching node then left, the file was short (issue
//! 25, item 21). So a node says, when asked which files it holds, which of its
//! copies are extras (`Holding::Extra`), and [`crate::maintenance`] never lets
//! an extra copy push a regular one out: it counts towards the copies a file
//! has, never towards a surplus.
//!
//! The set is kept in `extra_copies` in the data dir (one name id per line), so
//! that it survives restarts. A copy stops being extra when the placement makes
//! it a regular one (a replication offer this node accepts), or when it goes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use peervault_store::NameId;

/// The file in the data dir.
const FILE: &str = "extra_copies";

/// The set of extra copies, saved on every change.
#[derive(Debug)]
pub(crate) struct Extras {
    path: PathBuf,
    set: Mutex<HashSet<NameId>>,
}

impl Extras {
    /// Loads the set from `data_dir` (empty if there is none, and lines that are
    /// not name ids are skipped: a damaged file costs extras, not the node).
    pub(crate) fn load(data_dir: &Path) -> Extras {
        let path = data_dir.join(FILE);
        let set = std::fs::read_to_string(&path)
            .map(|text| text.lines().filter_map(NameId::from_hex).collect())
            .unwrap_or_default();
        Extras {
            path,
            set: Mutex::new(set),
        }
    }

    pub(crate) fn contains(&self, id: &NameId) -> bool {
        self.lock().contains(id)
    }

    /// Marks `id` as an extra copy.
    pub(crate) fn insert(&self, id: NameId) {
        let mut set = self.lock();
        if set.insert(id) {
            self.save(&set);
        }
    }

    /// `id` is no longer an extra copy (it became a regular one, or went).
    pub(crate) fn remove(&self, id: &NameId) {
        let mut set = self.lock();
        if set.remove(id) {
            self.save(&set);
        }
    }

    fn save(&self, set: &HashSet<NameId>) {
        let mut text: Vec<String> = set.iter().map(NameId::to_hex).collect();
        text.sort();
        let mut bytes = text.join("\n").into_bytes();
        bytes.push(b'\n');
        if let Err(e) = peervault_store::files::write_atomically(&self.path, &bytes, 0o600) {
            tracing::warn!(
                "cannot save the extra copies to {}: {e}; after a restart they count as regular copies",
                self.path.display()
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<NameId>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_survive_a_restart_and_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let extras = Extras::load(dir.path());
        extras.insert(NameId([1; 32]));
        extras.insert(NameId([2; 32]));
        extras.remove(&NameId([1; 32]));
        let again = Extras::load(dir.path());
        assert!(again.contains(&NameId([2; 32])));
        assert!(!again.contains(&NameId([1; 32])));
        std::fs::write(dir.path().join(FILE), "not hex\n").unwrap();
        assert!(!Extras::load(dir.path()).contains(&NameId([2; 32])));
    }
}
