//! The metadata database: catalogue entries, local chunk records and reference counts.
//!
//! One redb file (`meta.redb`) with four tables:
//!
//! | table        | key          | value                                  |
//! |--------------|--------------|----------------------------------------|
//! | `catalogue`  | name id      | sealed [`CatalogueEntry`] (latest version of the name) |
//! | `history`    | name id, version | sealed [`CatalogueEntry`] of a superseded version (see [`crate::history`]) |
//! | `blobs`      | chunk id     | the [`Slot`] of the blob held on this node |
//! | `chunk_refs` | chunk id     | number of manifests, current or kept in history, naming it (absent = 0) |
//! | `meta`       | text         | key fingerprint, clock, format          |
//!
//! Format 1 kept each blob in a file of its own and recorded only its length, in a
//! table `chunks`; the vault moves such blobs into segments when it opens a format 1
//! database ([`Catalogue::legacy_chunks`], [`Catalogue::migrate_legacy`]).
//!
//! Names exist only inside sealed records; the database alone reveals neither names
//! nor contents. Every change that belongs together happens in one write
//! transaction, so reference counts never drift from the catalogue: a crash leaves
//! the state before or after a change, never half of it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::crypto::{Crypto, RecordOpenError, catalogue_context};
use crate::error::{Result, StoreError};
use crate::history::{self, Retention};
use crate::ids::{ChunkId, NameId};
use crate::keys::KeyFingerprint;
use crate::manifest::{CatalogueEntry, Manifest};
use crate::segments::Slot;
use crate::version::Version;

const CATALOGUE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("catalogue");
/// Superseded records, sealed as they were when current (see [`crate::history`]).
const HISTORY: TableDefinition<[u8; history::KEY_LEN], &[u8]> = TableDefinition::new("history");
/// Format 1's blob records (length only; the blob was a file named by its id).
const LEGACY_CHUNKS: TableDefinition<[u8; 32], u64> = TableDefinition::new("chunks");
const BLOBS: TableDefinition<[u8; 32], [u8; Slot::ENCODED_LEN]> = TableDefinition::new("blobs");
const CHUNK_REFS: TableDefinition<[u8; 32], u32> = TableDefinition::new("chunk_refs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The database's page cache. redb's default is 1 GiB, and every page a full pass
/// over the catalogue touches (start-up, `ls`, a sync) stays cached up to that: the
/// 69 MB database of 100,000 files would all be held, and a larger vault's up to a
/// gigabyte. The file's pages stay in the kernel's page cache anyway; this cache
/// needs the B-trees' inner nodes, which every lookup walks (for 100,000 files, `ls`
/// took the same time with 4, 16, 64 MiB or the default).
const CACHE_BYTES: usize = 16 << 20;

const META_FINGERPRINT: &str = "key_fingerprint";
const META_CLOCK: &str = "clock";
const META_FORMAT: &str = "format";
/// 2: blobs in segment files (`blobs` table); 1: a file per blob (`chunks` table).
const FORMAT: u32 = 2;

/// What [`Catalogue::open`] found.
#[derive(Debug)]
pub struct OpenState {
    /// Last clock reading persisted.
    pub clock: u64,
    /// Total bytes of recorded blobs.
    pub used_bytes: u64,
    /// The database was created just now.
    pub created: bool,
}

/// Result of offering an entry to the catalogue.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// False if the catalogue already held this record, or it expired at once.
    pub applied: bool,
    /// The record is now the name's current entry (else it went into history).
    pub current: bool,
    /// Versions of the name that left its history (expired), possibly this one.
    pub expired: Vec<Version>,
    /// Bytes of blobs newly recorded by this change.
    pub recorded_bytes: u64,
    /// The new slots that were recorded, and those that were not because their
    /// chunk was recorded already (by a concurrent write): the latter are debris.
    pub slots: SlotOutcome,
    /// Chunks whose last live reference this change removed.
    pub unreferenced: Vec<ChunkId>,
    /// The current entry this one superseded (now in history), if any.
    pub previous: Option<CatalogueEntry>,
}

/// Versions that left history, by name, and the chunks no kept version uses
/// any more (see [`Catalogue::expire_history`]).
pub type ExpiredVersions = (Vec<(NameId, Vec<Version>)>, Vec<ChunkId>);

/// What became of new slots offered for recording.
#[derive(Debug, Default)]
pub struct SlotOutcome {
    pub recorded: Vec<Slot>,
    /// Slots of chunks already recorded elsewhere.
    pub unrecorded: Vec<Slot>,
}

/// A consistent view of the recorded blobs (see [`Catalogue::chunk_view`]).
pub struct ChunkView(redb::ReadOnlyTable<[u8; 32], [u8; Slot::ENCODED_LEN]>);

impl ChunkView {
    /// True if a blob for `id` was recorded when the view was taken.
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.0.get(id.0)?.is_some())
    }

    /// Where the blob of `id` is, if recorded when the view was taken.
    pub fn slot(&self, id: &ChunkId) -> Result<Option<Slot>> {
        Ok(self.0.get(id.0)?.map(|v| Slot::decode(&v.value())))
    }
}

/// Where a pass of [`Catalogue::reseal_records`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCursor {
    Current(Option<[u8; 32]>),
    Kept(Option<[u8; crate::history::KEY_LEN]>),
}

/// The metadata database of one vault.
pub struct Catalogue {
    db: Database,
    crypto: Arc<Crypto>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalogue(..)")
    }
}

fn distinct(chunks: &[ChunkId]) -> BTreeSet<ChunkId> {
    chunks.iter().copied().collect()
}

impl Catalogue {
    /// Opens or creates the database and checks that it belongs to `fingerprint`'s key.
    pub fn open(
        path: &Path,
        crypto: Arc<Crypto>,
        fingerprint: KeyFingerprint,
        data_dir: &Path,
    ) -> Result<(Self, OpenState)> {
        // Every database this code creates records its key fingerprint in its first
        // transaction; a file that exists without one was damaged or replaced, and
        // taking it for a new vault would disown every chunk on disk.
        let existed = path.exists();
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        // redb creates its file with the default mode; the metadata is the owner's only.
        std::fs::set_permissions(
            path,
            std::os::unix::fs::PermissionsExt::from_mode(crate::segments::PRIVATE_FILE),
        )
        .map_err(|e| StoreError::io(format!("protecting {}", path.display()), e))?;
        let txn = db.begin_write()?;
        let state = {
            let mut meta = txn.open_table(META)?;
            let stored = meta.get(META_FINGERPRINT)?.map(|v| v.value().to_vec());
            match stored {
                Some(bytes) => {
                    let stored = <[u8; 8]>::try_from(bytes.as_slice())
                        .map(KeyFingerprint)
                        .map_err(|_| StoreError::CorruptRecord {
                            what: "key fingerprint".into(),
                        })?;
                    if stored != fingerprint {
                        return Err(StoreError::WrongKey {
                            data_dir: data_dir.to_path_buf(),
                            stored,
                            given: fingerprint,
                        });
                    }
                }
                None if existed => {
                    return Err(StoreError::Database(
                        "it holds no vault records (no key fingerprint)".into(),
                    ));
                }
                None => {
                    meta.insert(META_FINGERPRINT, fingerprint.0.as_slice())?;
                    meta.insert(META_FORMAT, FORMAT.to_le_bytes().as_slice())?;
                }
            }
            let clock = meta
                .get(META_CLOCK)?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            txn.open_table(CATALOGUE)?;
            txn.open_table(HISTORY)?;
            txn.open_table(CHUNK_REFS)?;
            txn.open_table(BLOBS)?;
            txn.open_table(LEGACY_CHUNKS)?;
            OpenState {
                clock,
                used_bytes: 0,
                created: !existed,
            }
        };
        txn.commit()?;
        let catalogue = Self { db, crypto };
        let used_bytes = catalogue.used_bytes()?;
        Ok((
            catalogue,
            OpenState {
                used_bytes,
                ..state
            },
        ))
    }

    /// Total bytes of recorded blobs (for the quota).
    pub fn used_bytes(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let mut used = 0u64;
        for row in txn.open_table(BLOBS)?.iter()? {
            used += Slot::decode(&row?.1.value()).len as u64;
        }
        // Blobs of format 1 count until they are moved into segments.
        for row in txn.open_table(LEGACY_CHUNKS)?.iter()? {
            used += row?.1.value();
        }
        Ok(used)
    }

    fn open_entry(&self, name_id: &NameId, sealed: &[u8]) -> Result<CatalogueEntry> {
        let plain = self
            .crypto
            .open_record(&catalogue_context(name_id), sealed)
            .map_err(|e| match e {
                RecordOpenError::UnknownEpoch => StoreError::UnknownEpoch {
                    what: format!("catalogue entry {name_id}"),
                },
                RecordOpenError::Failed => StoreError::CorruptRecord {
                    what: format!("catalogue entry {name_id}"),
                },
            })?;
        CatalogueEntry::decode(&plain).map_err(|e| StoreError::CorruptRecord {
            what: format!("catalogue entry {name_id}: {e}"),
        })
    }

    /// The latest entry for `name`, live or deleted.
    pub fn entry(&self, name: &str) -> Result<Option<CatalogueEntry>> {
        let name_id = self.crypto.name_id(name);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CATALOGUE)?;
        let Some(sealed) = table.get(name_id.0)? else {
            return Ok(None);
        };
        self.open_entry(&name_id, sealed.value()).map(Some)
    }

    /// Calls `each` with every entry, live or deleted, and its name id, one at a
    /// time (a catalogue of 100,000 entries collected first took ~40 MB at every
    /// start). Records that fail to open are reported and skipped, so one damaged
    /// record cannot hide the rest of the vault.
    pub fn for_each_entry(&self, mut each: impl FnMut(NameId, CatalogueEntry)) -> Result<()> {
        self.try_for_each_entry(|id, entry| {
            each(id, entry);
            Ok(())
        })
    }

    /// [`Catalogue::for_each_entry`] over live files only, stopping at the first
    /// error `each` returns.
    pub fn try_for_each_file(
        &self,
        mut each: impl FnMut(NameId, Manifest) -> Result<()>,
    ) -> Result<()> {
        self.try_for_each_entry(|id, entry| match entry {
            CatalogueEntry::File(manifest) => each(id, manifest),
            CatalogueEntry::Deleted(_) => Ok(()),
        })
    }

    fn try_for_each_entry(
        &self,
        mut each: impl FnMut(NameId, CatalogueEntry) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CATALOGUE)?;
        for row in table.iter()? {
            let (key, value) = row?;
            let id = NameId(key.value());
            match self.open_entry(&id, value.value()) {
                Ok(entry) => each(id, entry)?,
                Err(e) => tracing::warn!("skipping catalogue record: {e}"),
            }
        }
        Ok(())
    }

    /// The sealed records of `ids`, as stored (missing ones are left out). Records are
    /// portable: every node of the vault seals with the same key and binds each record
    /// to its name id, so a peer can store them as they are.
    pub fn sealed_entries(&self, ids: &[NameId]) -> Result<Vec<(NameId, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CATALOGUE)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(sealed) = table.get(id.0)? {
                out.push((*id, sealed.value().to_vec()));
            }
        }
        Ok(out)
    }

    /// Opens a sealed record received from elsewhere and checks that it really is the
    /// record of `name_id` (a record moved to another name id fails authentication;
    /// this also catches a record whose name does not hash to its id).
    pub fn open_sealed(&self, name_id: &NameId, sealed: &[u8]) -> Result<CatalogueEntry> {
        let entry = self.open_entry(name_id, sealed)?;
        if self.crypto.name_id(entry.name()) != *name_id {
            return Err(StoreError::CorruptRecord {
                what: format!("catalogue entry {name_id}: its name does not match its id"),
            });
        }
        Ok(entry)
    }

    /// Records blobs that are now durable in their slots; returns the bytes newly
    /// recorded and which slots were (a chunk recorded already keeps its slot).
    pub fn record_chunks(&self, chunks: &[(ChunkId, Slot)]) -> Result<(u64, SlotOutcome)> {
        let txn = self.db.begin_write()?;
        let recorded = {
            let mut table = txn.open_table(BLOBS)?;
            record_in(&mut table, chunks)?
        };
        txn.commit()?;
        Ok(recorded)
    }

    /// Live files, sorted by name.
    pub fn files(&self) -> Result<Vec<Manifest>> {
        let mut files = Vec::new();
        self.try_for_each_file(|_, m| {
            files.push(m);
            Ok(())
        })?;
        // Names are unique in the catalogue, so an unstable sort loses nothing.
        files.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// True if this node holds a recorded blob for `id`.
    pub fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        self.chunk_view()?.has(id)
    }

    /// The chunk records as of now, for many lookups in one read transaction (one
    /// transaction per lookup made `ls` of 100,000 files cost a transaction each).
    pub fn chunk_view(&self) -> Result<ChunkView> {
        let txn = self.db.begin_read()?;
        Ok(ChunkView(txn.open_table(BLOBS)?))
    }

    /// Where the blob of `id` is, if this node holds it.
    pub fn slot(&self, id: &ChunkId) -> Result<Option<Slot>> {
        self.chunk_view()?.slot(id)
    }

    /// All recorded blobs with their slots.
    pub fn chunk_records(&self) -> Result<Vec<(ChunkId, Slot)>> {
        let mut out = Vec::new();
        self.for_each_slot(|id, slot| out.push((id, slot)))?;
        Ok(out)
    }

    fn for_each_slot(&self, mut each: impl FnMut(ChunkId, Slot)) -> Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        for row in table.iter()? {
            let (k, v) = row?;
            each(ChunkId(k.value()), Slot::decode(&v.value()));
        }
        Ok(())
    }

    /// The recorded slots in each of `segments`.
    pub fn slots_in(&self, segments: &BTreeSet<u64>) -> Result<HashMap<u64, Vec<Slot>>> {
        let mut out: HashMap<u64, Vec<Slot>> = HashMap::new();
        self.for_each_slot(|_, slot| {
            if segments.contains(&slot.segment) {
                out.entry(slot.segment).or_default().push(slot);
            }
        })?;
        Ok(out)
    }

    /// How many recorded slots each segment holds.
    pub fn live_counts(&self) -> Result<HashMap<u64, u64>> {
        let mut out: HashMap<u64, u64> = HashMap::new();
        self.for_each_slot(|_, slot| *out.entry(slot.segment).or_default() += 1)?;
        Ok(out)
    }

    /// Blobs recorded by format 1 (a file each) and not yet moved into segments.
    pub fn legacy_chunks(&self) -> Result<Vec<(ChunkId, u64)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LEGACY_CHUNKS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((ChunkId(k.value()), v.value()));
        }
        Ok(out)
    }

    /// In one transaction: records `moved` format 1 blobs at their new (durable)
    /// slots and forgets their old records, and forgets the old records of
    /// `dropped` (blobs whose files were missing or unreadable). Returns the bytes
    /// the dropped ones accounted for.
    pub fn migrate_legacy(&self, moved: &[(ChunkId, Slot)], dropped: &[ChunkId]) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let mut freed = 0;
        {
            let mut legacy = txn.open_table(LEGACY_CHUNKS)?;
            let mut blobs = txn.open_table(BLOBS)?;
            for (id, slot) in moved {
                legacy.remove(id.0)?;
                blobs.insert(id.0, slot.encode())?;
            }
            for id in dropped {
                if let Some(len) = legacy.remove(id.0)? {
                    freed += len.value();
                }
            }
        }
        txn.commit()?;
        Ok(freed)
    }

    /// Records that every blob is in a segment (format 2).
    pub fn finish_migration(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(META_FORMAT, FORMAT.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Records new blobs and offers `entry`: it becomes the name's current entry if
    /// newer than what is held, and goes into the name's history otherwise (see
    /// [`crate::history`]); versions past `retention` then leave the history.
    /// `new_chunks` are recorded either way: their blobs are durable and counted.
    pub fn apply(
        &self,
        entry: &CatalogueEntry,
        new_chunks: &[(ChunkId, Slot)],
        clock: u64,
        retention: &Retention,
    ) -> Result<ApplyOutcome> {
        let txn = self.db.begin_write()?;
        let now = crate::version::unix_millis_now();
        let outcome = self.apply_in(&txn, entry, new_chunks, retention, now)?;
        txn.open_table(META)?
            .insert(META_CLOCK, clock.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(outcome)
    }

    /// Offers several entries from peers in one transaction (one fsync for a whole
    /// batch of a sync instead of one per record).
    pub fn apply_many(
        &self,
        entries: &[CatalogueEntry],
        clock: u64,
        retention: &Retention,
    ) -> Result<Vec<ApplyOutcome>> {
        let txn = self.db.begin_write()?;
        let now = crate::version::unix_millis_now();
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            outcomes.push(self.apply_in(&txn, entry, &[], retention, now)?);
        }
        txn.open_table(META)?
            .insert(META_CLOCK, clock.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(outcomes)
    }

    fn apply_in(
        &self,
        txn: &redb::WriteTransaction,
        entry: &CatalogueEntry,
        new_chunks: &[(ChunkId, Slot)],
        retention: &Retention,
        now: u64,
    ) -> Result<ApplyOutcome> {
        let name_id = self.crypto.name_id(entry.name());
        let sealed = self
            .crypto
            .seal_record(&catalogue_context(&name_id), &entry.encode())
            .map_err(|e| StoreError::io("sealing a catalogue entry", std::io::Error::other(e)))?;
        let mut outcome = ApplyOutcome::default();
        (outcome.recorded_bytes, outcome.slots) =
            record_in(&mut txn.open_table(BLOBS)?, new_chunks)?;
        let mut catalogue = txn.open_table(CATALOGUE)?;
        let mut history = txn.open_table(HISTORY)?;
        let mut refs = txn.open_table(CHUNK_REFS)?;
        let current = match catalogue.get(name_id.0)? {
            Some(v) => Some((self.open_entry(&name_id, v.value())?, v.value().to_vec())),
            None => None,
        };
        let version = entry.version();
        // History holds only versions older than the current one: a newer
        // record (every write) needs no look there.
        let held = match &current {
            Some((c, _)) if c.version() == version => true,
            Some((c, _)) if c.version() > version => {
                history.get(history::key(&name_id, &version))?.is_some()
            }
            _ => false,
        };
        if held {
            return Ok(outcome);
        }
        if let CatalogueEntry::File(m) = entry {
            add_refs(&mut refs, &m.blobs())?;
        }
        match current {
            Some((newer, _)) if newer.version() > version => {
                history.insert(history::key(&name_id, &version), sealed.as_slice())?;
            }
            previous => {
                catalogue.insert(name_id.0, sealed.as_slice())?;
                if let Some((previous, previous_sealed)) = previous {
                    let key = history::key(&name_id, &previous.version());
                    history.insert(key, previous_sealed.as_slice())?;
                    outcome.previous = Some(previous);
                }
                outcome.current = true;
            }
        }
        (outcome.expired, outcome.unreferenced) = self.expire_name(
            &catalogue,
            &mut history,
            &mut refs,
            &name_id,
            retention,
            now,
        )?;
        outcome.applied = !outcome.expired.contains(&version);
        Ok(outcome)
    }

    /// Removes the versions of `id` that `retention` no longer keeps; returns them
    /// and the chunks that lost their last reference.
    fn expire_name(
        &self,
        catalogue: &redb::Table<[u8; 32], &[u8]>,
        history: &mut redb::Table<[u8; history::KEY_LEN], &[u8]>,
        refs: &mut redb::Table<[u8; 32], u32>,
        id: &NameId,
        retention: &Retention,
        now: u64,
    ) -> Result<(Vec<Version>, Vec<ChunkId>)> {
        let (low, high) = history::range_of(id);
        // Most names have no history: nothing to open (every write and every
        // record a sync applies comes through here).
        if history.range(low..=high)?.next().is_none() {
            return Ok(Default::default());
        }
        let Some(current) = catalogue.get(id.0)? else {
            return Ok(Default::default());
        };
        let current = self.open_entry(id, current.value())?;
        let mut older = Vec::new();
        let mut purged = purge_version(&current);
        let mut reencoded: Vec<(Version, u64)> = reencoded_version(&current).into_iter().collect();
        for row in history.range(low..=high)?.rev() {
            let (key, value) = row?;
            let version = history::parse_key(&key.value()).1;
            let entry = self.open_entry(id, value.value())?;
            if purged.is_none() {
                purged = purge_version(&entry);
            }
            reencoded.extend(reencoded_version(&entry));
            older.push(version);
        }
        let mut expired = Vec::new();
        let mut unreferenced = Vec::new();
        let live = current.as_file().is_some();
        for i in retention.expired(current.version(), live, &older, purged, &reencoded, now) {
            let version = older[i];
            let Some(sealed) = history.remove(history::key(id, &version))? else {
                continue;
            };
            if let CatalogueEntry::File(m) = self.open_entry(id, sealed.value())? {
                unreferenced.extend(drop_refs(refs, &m.blobs())?);
            }
            expired.push(version);
        }
        Ok((expired, unreferenced))
    }

    /// Every version of `name` held, the current one first, then its history
    /// newest first.
    pub fn versions(&self, name: &str) -> Result<Vec<CatalogueEntry>> {
        let id = self.crypto.name_id(name);
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        if let Some(sealed) = txn.open_table(CATALOGUE)?.get(id.0)? {
            out.push(self.open_entry(&id, sealed.value())?);
        }
        let history = txn.open_table(HISTORY)?;
        let (low, high) = history::range_of(&id);
        for row in history.range(low..=high)?.rev() {
            out.push(self.open_entry(&id, row?.1.value())?);
        }
        Ok(out)
    }

    /// Calls `each` with every record kept in history and its name id.
    pub fn try_for_each_superseded(
        &self,
        mut each: impl FnMut(NameId, CatalogueEntry) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        for row in txn.open_table(HISTORY)?.iter()? {
            let (key, value) = row?;
            let (id, _) = history::parse_key(&key.value());
            match self.open_entry(&id, value.value()) {
                Ok(entry) => each(id, entry)?,
                Err(e) => tracing::warn!("skipping a record of history: {e}"),
            }
        }
        Ok(())
    }

    /// The sealed record of each of the given versions, current or in history,
    /// as stored, in order (`None` if not held), in one read transaction.
    ///
    /// `current` says which are their name's current version: the sync index
    /// knows without opening a record, but it is updated just after a commit,
    /// so it can be a write behind. A history key names exactly one version, so
    /// history is looked at first: a version the index still calls current
    /// that a write has just superseded is found there. Otherwise a version the
    /// index calls current is read from the catalogue without being opened (a
    /// sync serves thousands; opening each cost a decryption). One it does not
    /// call current may have just become current: the catalogue's record is
    /// opened and taken only if it is that version.
    pub fn sealed_records_each(
        &self,
        wanted: &[(NameId, Version)],
        current: impl Fn(&NameId, &Version) -> bool,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let txn = self.db.begin_read()?;
        let catalogue = txn.open_table(CATALOGUE)?;
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::with_capacity(wanted.len());
        for (id, version) in wanted {
            if let Some(kept) = history.get(history::key(id, version))? {
                out.push(Some(kept.value().to_vec()));
                continue;
            }
            let Some(sealed) = catalogue.get(id.0)? else {
                out.push(None);
                continue;
            };
            let sealed = sealed.value().to_vec();
            let is_it = current(id, version)
                || matches!(self.open_entry(id, &sealed), Ok(entry) if entry.version() == *version);
            out.push(is_it.then_some(sealed));
        }
        Ok(out)
    }

    /// Removes from every name's history the versions `retention` no longer keeps.
    /// Returns them by name, and the chunks that lost their last reference.
    pub fn expire_history(&self, retention: &Retention) -> Result<ExpiredVersions> {
        let mut names = BTreeSet::new();
        {
            let txn = self.db.begin_read()?;
            for row in txn.open_table(HISTORY)?.iter()? {
                names.insert(history::parse_key(&row?.0.value()).0);
            }
        }
        if names.is_empty() {
            return Ok(Default::default());
        }
        let now = crate::version::unix_millis_now();
        let txn = self.db.begin_write()?;
        let mut expired = Vec::new();
        let mut unreferenced = Vec::new();
        {
            let catalogue = txn.open_table(CATALOGUE)?;
            let mut history = txn.open_table(HISTORY)?;
            let mut refs = txn.open_table(CHUNK_REFS)?;
            for id in names {
                let (gone, unref) =
                    self.expire_name(&catalogue, &mut history, &mut refs, &id, retention, now)?;
                if !gone.is_empty() {
                    expired.push((id, gone));
                }
                unreferenced.extend(unref);
            }
        }
        txn.commit()?;
        Ok((expired, unreferenced))
    }

    /// Forgets recorded blobs that no live manifest references and that `keep` does
    /// not protect. Returns what was forgotten; the caller deletes the files.
    pub fn forget_unreferenced(
        &self,
        candidates: &[ChunkId],
        keep: impl Fn(&ChunkId) -> bool,
    ) -> Result<Vec<(ChunkId, Slot)>> {
        let txn = self.db.begin_write()?;
        let mut forgotten = Vec::new();
        {
            let refs = txn.open_table(CHUNK_REFS)?;
            let mut blobs = txn.open_table(BLOBS)?;
            for id in candidates {
                if keep(id) || refs.get(id.0)?.is_some() {
                    continue;
                }
                if let Some(slot) = blobs.remove(id.0)? {
                    forgotten.push((*id, Slot::decode(&slot.value())));
                }
            }
        }
        txn.commit()?;
        Ok(forgotten)
    }

    /// Re-seals in the current key epoch the records (current entries, then
    /// kept versions) sealed in earlier ones, up to `limit` rows after
    /// `after` (`None`: from the start). Returns the records re-sealed and
    /// where to go on (`None`: done).
    pub fn reseal_records(
        &self,
        after: Option<RecordCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RecordCursor>)> {
        match after.unwrap_or(RecordCursor::Current(None)) {
            RecordCursor::Current(after) => {
                let (count, next) = self.reseal_table(CATALOGUE, after, limit)?;
                Ok((
                    count,
                    Some(match next {
                        Some(key) => RecordCursor::Current(Some(key)),
                        None => RecordCursor::Kept(None),
                    }),
                ))
            }
            RecordCursor::Kept(after) => {
                let (count, next) = self.reseal_table(HISTORY, after, limit)?;
                Ok((count, next.map(|key| RecordCursor::Kept(Some(key)))))
            }
        }
    }

    /// [`Catalogue::reseal_records`] in one table whose keys start with the
    /// name id (the records' associated data).
    fn reseal_table<const N: usize>(
        &self,
        table: TableDefinition<[u8; N], &[u8]>,
        after: Option<[u8; N]>,
        limit: usize,
    ) -> Result<(usize, Option<[u8; N]>)> {
        let rows: Vec<([u8; N], Vec<u8>)> = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(table)?;
            let range = match after {
                Some(after) => {
                    t.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))?
                }
                None => t.range::<[u8; N]>(..)?,
            };
            let mut rows = Vec::new();
            for row in range.take(limit) {
                let (k, v) = row?;
                rows.push((k.value(), v.value().to_vec()));
            }
            rows
        };
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|(k, _)| *k))
            .flatten();
        let stale: Vec<&([u8; N], Vec<u8>)> = rows
            .iter()
            .filter(|(_, sealed)| !self.crypto.record_is_current(sealed))
            .collect();
        if stale.is_empty() {
            return Ok((0, next));
        }
        let txn = self.db.begin_write()?;
        let mut count = 0;
        {
            let mut t = txn.open_table(table)?;
            for (key, sealed) in stale {
                let mut name_id = [0u8; 32];
                name_id.copy_from_slice(&key[..32]);
                let context = catalogue_context(&NameId(name_id));
                let Ok(plain) = self.crypto.open_record(&context, sealed) else {
                    continue; // an epoch not held, or damage: left as it is
                };
                let resealed = self
                    .crypto
                    .seal_record(&context, &plain)
                    .map_err(|e| StoreError::io("sealing a record", std::io::Error::other(e)))?;
                // Only if the row did not change since it was read.
                let same = t.get(*key)?.is_some_and(|v| v.value() == sealed.as_slice());
                if same {
                    t.insert(*key, resealed.as_slice())?;
                    count += 1;
                }
            }
        }
        txn.commit()?;
        Ok((count, next))
    }

    /// Up to `limit` recorded chunks with ids after `after` (from the first if
    /// `None`), in id order: a pass over every chunk in bounded steps.
    pub fn chunks_after(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<(ChunkId, Slot)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        let mut out = Vec::with_capacity(limit.min(4096));
        let rows = match after {
            Some(after) => table.range((
                std::ops::Bound::Excluded(after.0),
                std::ops::Bound::Unbounded,
            ))?,
            None => table.range::<[u8; 32]>(..)?,
        };
        for row in rows.take(limit) {
            let (id, slot) = row?;
            out.push((ChunkId(id.value()), Slot::decode(&slot.value())));
        }
        Ok(out)
    }

    /// Moves each chunk of `moves` from its old slot to its new one, if it is
    /// still recorded at the old (in one transaction). Returns the moves made.
    pub fn move_chunks(
        &self,
        moves: &[(ChunkId, Slot, Slot)],
    ) -> Result<Vec<(ChunkId, Slot, Slot)>> {
        let txn = self.db.begin_write()?;
        let mut moved = Vec::new();
        {
            let mut blobs = txn.open_table(BLOBS)?;
            for (id, old, new) in moves {
                let current = blobs.get(id.0)?.map(|v| Slot::decode(&v.value()));
                if current == Some(*old) {
                    blobs.insert(id.0, new.encode())?;
                    moved.push((*id, *old, *new));
                }
            }
        }
        txn.commit()?;
        Ok(moved)
    }

    /// Forgets the records of `ids`, referenced or not (a damaged blob, or a copy
    /// this node gives up). Returns the slots they had.
    pub fn forget_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Slot>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_write()?;
        let mut forgotten = Vec::new();
        {
            let mut blobs = txn.open_table(BLOBS)?;
            for id in ids {
                if let Some(slot) = blobs.remove(id.0)? {
                    forgotten.push(Slot::decode(&slot.value()));
                }
            }
        }
        txn.commit()?;
        Ok(forgotten)
    }

    /// Those of `ids` (deduplicated) that exactly one live manifest references.
    pub fn referenced_once(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let txn = self.db.begin_read()?;
        let refs = txn.open_table(CHUNK_REFS)?;
        let mut out = Vec::new();
        for id in distinct(ids) {
            if refs.get(id.0)?.map(|v| v.value()) == Some(1) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The chunks that only the versions of `name_id` (current and history) use:
    /// what dropping this node's copy of the name may free.
    pub fn chunks_only_of(&self, name_id: &NameId) -> Result<Vec<ChunkId>> {
        let txn = self.db.begin_read()?;
        let mut uses: HashMap<ChunkId, u32> = HashMap::new();
        let mut count = |sealed: &[u8]| -> Result<()> {
            if let CatalogueEntry::File(m) = self.open_entry(name_id, sealed)? {
                for id in distinct(&m.blobs()) {
                    *uses.entry(id).or_default() += 1;
                }
            }
            Ok(())
        };
        if let Some(sealed) = txn.open_table(CATALOGUE)?.get(name_id.0)? {
            count(sealed.value())?;
        }
        let (low, high) = history::range_of(name_id);
        for row in txn.open_table(HISTORY)?.range(low..=high)? {
            count(row?.1.value())?;
        }
        let mut out = used_only_by(&txn.open_table(CHUNK_REFS)?, uses)?;
        out.sort_unstable();
        Ok(out)
    }

    /// Bytes of the blobs held here that only superseded versions use (what
    /// history costs this node; the quota counts them with the rest).
    pub fn history_only_bytes(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let mut uses: HashMap<ChunkId, u32> = HashMap::new();
        for row in txn.open_table(HISTORY)?.iter()? {
            let (key, value) = row?;
            let (id, _) = history::parse_key(&key.value());
            if let Ok(CatalogueEntry::File(m)) = self.open_entry(&id, value.value()) {
                for chunk in distinct(&m.blobs()) {
                    *uses.entry(chunk).or_default() += 1;
                }
            }
        }
        let blobs = txn.open_table(BLOBS)?;
        let mut bytes = 0;
        for id in used_only_by(&txn.open_table(CHUNK_REFS)?, uses)? {
            if let Some(slot) = blobs.get(id.0)? {
                bytes += u64::from(Slot::decode(&slot.value()).len);
            }
        }
        Ok(bytes)
    }

    /// Removes tombstones whose deletion happened before `cutoff` (Unix ms).
    /// Returns the name ids removed.
    pub fn remove_tombstones_before(&self, cutoff: u64) -> Result<Vec<NameId>> {
        let mut expired = Vec::new();
        self.for_each_entry(|id, entry| {
            if crate::vault::is_expired_tombstone(&entry, cutoff) {
                expired.push(id);
            }
        })?;
        self.remove_expired(expired, cutoff)
    }

    /// Removes the entries of `ids` that are tombstones older than `cutoff`.
    pub fn remove_expired(&self, expired: Vec<NameId>, cutoff: u64) -> Result<Vec<NameId>> {
        if expired.is_empty() {
            return Ok(expired);
        }
        let txn = self.db.begin_write()?;
        let mut removed = Vec::new();
        {
            let mut catalogue = txn.open_table(CATALOGUE)?;
            let history = txn.open_table(HISTORY)?;
            for id in expired {
                // A tombstone never goes before its name's kept versions:
                // without it, the newest of them would be the name's entry again.
                let (low, high) = history::range_of(&id);
                if history.range(low..=high)?.next().is_some() {
                    continue;
                }
                // Checked again inside the transaction: a newer entry may have come.
                let still = match catalogue.get(id.0)? {
                    Some(v) => crate::vault::is_expired_tombstone(
                        &self.open_entry(&id, v.value())?,
                        cutoff,
                    ),
                    None => false,
                };
                if still {
                    catalogue.remove(id.0)?;
                    removed.push(id);
                }
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// A number kept in the meta table (`None` if never set).
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_le_bytes))
    }

    /// Sets a number in the meta table.
    pub fn set_meta_u64(&self, key: &str, value: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(key, value.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Removes every record of `name_id`, current and history, whatever they are
    /// (a name the rest of the vault no longer has). Returns the chunks that lost
    /// their last reference.
    pub fn remove_entry(&self, name_id: &NameId) -> Result<Vec<ChunkId>> {
        let txn = self.db.begin_write()?;
        let mut unreferenced = Vec::new();
        {
            let mut catalogue = txn.open_table(CATALOGUE)?;
            let mut history = txn.open_table(HISTORY)?;
            let mut refs = txn.open_table(CHUNK_REFS)?;
            let mut removed = Vec::new();
            if let Some(v) = catalogue.remove(name_id.0)? {
                removed.push(self.open_entry(name_id, v.value())?);
            }
            let (low, high) = history::range_of(name_id);
            for row in history.extract_from_if(low..=high, |_, _| true)? {
                removed.push(self.open_entry(name_id, row?.1.value())?);
            }
            for entry in removed {
                if let CatalogueEntry::File(old) = entry {
                    unreferenced.extend(drop_refs(&mut refs, &old.blobs())?);
                }
            }
        }
        txn.commit()?;
        Ok(unreferenced)
    }

    /// Removes one version of `name_id` from its history (one the rest of the
    /// vault no longer has). Returns the chunks that lost their last reference.
    pub fn remove_superseded(&self, name_id: &NameId, version: &Version) -> Result<Vec<ChunkId>> {
        let txn = self.db.begin_write()?;
        let mut unreferenced = Vec::new();
        {
            let mut history = txn.open_table(HISTORY)?;
            let removed = match history.remove(history::key(name_id, version))? {
                Some(v) => Some(self.open_entry(name_id, v.value())?),
                None => None,
            };
            if let Some(CatalogueEntry::File(old)) = removed {
                let mut refs = txn.open_table(CHUNK_REFS)?;
                unreferenced = drop_refs(&mut refs, &old.blobs())?;
            }
        }
        txn.commit()?;
        Ok(unreferenced)
    }

    /// Recorded blobs that no live manifest references, with their slots.
    pub fn unreferenced_chunks(&self) -> Result<Vec<(ChunkId, Slot)>> {
        let txn = self.db.begin_read()?;
        let refs = txn.open_table(CHUNK_REFS)?;
        let blobs = txn.open_table(BLOBS)?;
        let mut out = Vec::new();
        for row in blobs.iter()? {
            let (id, slot) = row?;
            if refs.get(id.value())?.is_none() {
                out.push((ChunkId(id.value()), Slot::decode(&slot.value())));
            }
        }
        Ok(out)
    }
}

/// The version of `entry` if it is a purging tombstone.
fn purge_version(entry: &CatalogueEntry) -> Option<Version> {
    match entry {
        CatalogueEntry::Deleted(t) if t.purge => Some(t.version),
        _ => None,
    }
}

/// The version `entry` keeps anew, and when, if it is a re-encoding (see
/// [`crate::Manifest::reencodes`]).
fn reencoded_version(entry: &CatalogueEntry) -> Option<(Version, u64)> {
    entry
        .as_file()
        .and_then(|m| m.reencodes)
        .map(|r| (r.of, r.at_ms))
}

/// The chunks of `uses` (chunk, references counted among some manifests) that
/// no other manifest references: their whole reference count is those uses.
fn used_only_by(
    refs: &redb::ReadOnlyTable<[u8; 32], u32>,
    uses: HashMap<ChunkId, u32>,
) -> Result<Vec<ChunkId>> {
    let mut out = Vec::new();
    for (id, n) in uses {
        if refs.get(id.0)?.map(|v| v.value()) == Some(n) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Counts one more reference to each distinct chunk of `chunks`.
fn add_refs(refs: &mut redb::Table<[u8; 32], u32>, chunks: &[ChunkId]) -> Result<()> {
    for id in distinct(chunks) {
        let count = refs.get(id.0)?.map(|v| v.value()).unwrap_or(0);
        refs.insert(id.0, count.saturating_add(1))?;
    }
    Ok(())
}

/// Counts one reference fewer to each distinct chunk of `chunks`; returns those
/// that have none left.
fn drop_refs(refs: &mut redb::Table<[u8; 32], u32>, chunks: &[ChunkId]) -> Result<Vec<ChunkId>> {
    let mut unreferenced = Vec::new();
    for id in distinct(chunks) {
        let count = refs.get(id.0)?.map(|v| v.value()).unwrap_or(0);
        if count <= 1 {
            refs.remove(id.0)?;
            unreferenced.push(id);
        } else {
            refs.insert(id.0, count - 1)?;
        }
    }
    Ok(unreferenced)
}

/// Records the slots of `chunks` not recorded yet; returns their bytes and which
/// slots were recorded.
fn record_in(
    table: &mut redb::Table<[u8; 32], [u8; Slot::ENCODED_LEN]>,
    chunks: &[(ChunkId, Slot)],
) -> Result<(u64, SlotOutcome)> {
    let mut bytes = 0;
    let mut outcome = SlotOutcome::default();
    for (id, slot) in chunks {
        if table.get(id.0)?.is_none() {
            table.insert(id.0, slot.encode())?;
            bytes += slot.len as u64;
            outcome.recorded.push(*slot);
        } else {
            outcome.unrecorded.push(*slot);
        }
    }
    Ok((bytes, outcome))
}
