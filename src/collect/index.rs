//! The collector's persistent state under `OUT/.logferry/`: which source
//! generation is written to which output file, what of it is written
//! (completeness), and how far each `_unattributed` partition file goes.
//!
//! Several collectors (one consumer group, one shared OUT) update it, so
//! every change is a read-merge-write under an exclusive `flock` on
//! `OUT/.logferry/lock`, and every write is atomic (temp file, fsync,
//! rename, directory fsync): a `kill -9` leaves either the old or the new
//! index, never a torn one. The lock dies with its holder.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use logferry_tail::{FileId, GenerationId};
use serde::{Deserialize, Serialize};

use super::completeness::{Completeness, RangeSet};
use super::custody::Custody;
use super::fault::Fault;
use super::naming;

/// State directory under OUT (kept out of the per-host trees, which hold
/// only log files).
pub const STATE_DIR: &str = ".logferry";
/// Records without (or with a corrupt) source attribution.
pub const UNATTRIBUTED_DIR: &str = "_unattributed";
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = "lock";
/// Held shared by every collector running on OUT for its whole life, so
/// `status` can tell whether the custody marks are kept current.
const RUNNING_FILE: &str = "running";
const INDEX_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a collector index this version can read: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl IndexError {
    /// The underlying I/O error, to tell a full disk from other failures.
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            IndexError::Io { source, .. } => Some(source),
            IndexError::Corrupt { .. } => None,
        }
    }

    /// Whether a record's output name caused it ([`Fault::Record`]) or
    /// OUT cannot be written (anything else, an unreadable index included).
    pub fn fault(&self) -> Fault {
        self.io().map_or(Fault::Storage, Fault::of)
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which life of a file a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lineage {
    Generation(GenerationId),
    /// Records from agents older than generations: (device, inode).
    Inode(FileId),
}

impl GenEntry {
    /// Closed: a newer generation of the same source path holds the live
    /// name (only the newest one has it).
    pub fn is_closed(&self) -> bool {
        self.archived.is_some() || self.has_older_name()
    }

    /// Whether the output is named `<live>.<seconds>-<generation>` (told
    /// from the name itself: `source_path` is kept lossy, so the live name
    /// cannot always be made again from it).
    fn has_older_name(&self) -> bool {
        self.output
            .strip_suffix(self.generation.as_str())
            .and_then(|s| s.strip_suffix('-'))
            .and_then(|s| s.rsplit_once('.'))
            .is_some_and(|(_, secs)| !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()))
    }

    /// When the first record seen of this generation was produced (Unix
    /// ms, the agent's clock), which orders the generations of one path.
    /// An index written before this was kept falls back to when the
    /// collector first saw the generation.
    pub fn first_record_ms(&self) -> u64 {
        self.first_record_ms
            .unwrap_or(self.first_seen.saturating_mul(1000))
    }
}

/// The name of a generation that does not (or no longer) hold the live
/// name: `<live>.<seconds>-<generation>`, seconds of its first record, so
/// that the names of one path sort by time.
fn older_name(live: &str, first_record_ms: u64, generation: &str) -> String {
    format!("{live}.{}-{generation}", first_record_ms / 1000)
}

impl std::fmt::Display for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lineage::Generation(g) => write!(f, "{g}"),
            Lineage::Inode(id) => write!(f, "inode-{}-{}", id.dev, id.ino),
        }
    }
}

/// A generation as the writer keys it: generations are unique per host,
/// inodes only per host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenKey {
    pub host: String,
    pub lineage: Lineage,
}

#[cfg(test)]
impl GenKey {
    /// Generation `g` of host `h`: the key unit tests build outputs of.
    pub fn test_generation(g: u64) -> GenKey {
        GenKey {
            host: "h".into(),
            lineage: Lineage::Generation(logferry_tail::GenerationId(g)),
        }
    }
}

impl GenKey {
    /// The key in the index file.
    pub fn id(&self) -> String {
        format!("{}/{}", self.host, self.lineage)
    }
}

/// One source generation in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenEntry {
    pub host: String,
    /// The generation id (hex) or `inode-DEV-INO`.
    pub generation: String,
    /// Source path as first seen (lossy UTF-8 for display).
    pub source_path: String,
    /// Output file, relative to OUT.
    pub output: String,
    /// Unix time the collector first saw the generation.
    pub first_seen: u64,
    /// Producer timestamp (Unix ms) of the first record seen of it: see
    /// [`GenEntry::first_record_ms`]. None in indexes written before it
    /// was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_record_ms: Option<u64>,
    /// Unix time of the last write saved.
    pub last_write: u64,
    #[serde(default)]
    pub completeness: Completeness,
    /// Set once housekeeping compressed or deleted the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<Archived>,
    /// What this OUT holds of the generation when its records all go to
    /// one partition (see [`super::custody`]); None otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody: Option<Custody>,
}

/// What housekeeping did to a closed generation's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Archived {
    Compressed,
    /// Removed by retention; the entry stays so that a late duplicate is
    /// recognised instead of starting the file again.
    Deleted,
}

/// How far an `_unattributed` partition file goes: records below
/// `next_offset` are in its first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendPos {
    pub next_offset: i64,
    pub len: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    /// The writers' `gap_timeout`, for `collect status`.
    #[serde(default)]
    pub gap_timeout_secs: u64,
    #[serde(default)]
    pub generations: BTreeMap<String, GenEntry>,
    /// `TOPIC/PARTITION` -> position.
    #[serde(default)]
    pub unattributed: BTreeMap<String, AppendPos>,
    /// Renames decided but maybe not done (a crash in between): finished
    /// at the next load, before any output file is opened.
    #[serde(default)]
    pub pending_renames: Vec<(String, String)>,
    /// This output directory's id in the collectors' shared index (made
    /// once, random): which OUT holds a generation whole.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub out_id: String,
    /// `TOPIC/PARTITION` -> partition offsets whose every attributed
    /// record is written here (see [`super::custody`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub coverage: BTreeMap<String, RangeSet>,
}

/// `OUT`: the output directory and its lock.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    lock: File,
}

/// The index, held under the exclusive lock until dropped.
pub struct Locked<'a> {
    store: &'a Store,
    pub index: Index,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.store.lock.as_raw_fd(), libc::LOCK_UN) };
    }
}

pub fn unattributed_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Relative path of an `_unattributed` partition file.
pub fn unattributed_path(topic: &str, partition: i32) -> String {
    format!(
        "{UNATTRIBUTED_DIR}/{}/partition-{partition}.log",
        naming::component(topic.as_bytes())
    )
}

impl Store {
    /// Open (creating) OUT and its state directory.
    pub fn open(root: &Path) -> Result<Store, IndexError> {
        let state = root.join(STATE_DIR);
        std::fs::create_dir_all(&state).map_err(io_err(&state))?;
        let lock_path = state.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        Ok(Store {
            root: root.to_path_buf(),
            lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Say that a collector runs on OUT until the returned file is
    /// closed; true when it is the only one (it then settles what a
    /// crashed run left: see `custody::settle_after_crash`).
    pub fn running(&self) -> Result<(File, bool), IndexError> {
        let path = self.root.join(STATE_DIR).join(RUNNING_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // SAFETY: flock on a descriptor we own.
        let alone = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        // SAFETY: as above; converts an exclusive lock to a shared one.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) } != 0 {
            return Err(io_err(&path)(std::io::Error::last_os_error()));
        }
        Ok((f, alone))
    }

    /// Whether a collector runs on `root` now.
    pub fn is_running(root: &Path) -> bool {
        let path = root.join(STATE_DIR).join(RUNNING_FILE);
        let Ok(f) = File::open(&path) else {
            return false;
        };
        // SAFETY: flock on a descriptor we own; released when `f` closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }

    /// This OUT's id, made and saved the first time.
    pub fn out_id(&self) -> Result<String, IndexError> {
        let mut l = self.locked()?;
        if l.index.out_id.is_empty() {
            l.index.out_id = format!(
                "{}:{}#{}",
                crate::config::host_name(),
                self.root.display(),
                logferry_tail::GenerationId::new()
            );
            l.save()?;
        }
        Ok(l.index.out_id.clone())
    }

    pub fn index_path(root: &Path) -> PathBuf {
        root.join(STATE_DIR).join(INDEX_FILE)
    }

    /// Read the index without the lock (for `status`): the file is only
    /// ever replaced whole, so what is read is one consistent version.
    pub fn read(root: &Path) -> Result<Index, IndexError> {
        let path = Self::index_path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| IndexError::Corrupt {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                version: INDEX_VERSION,
                ..Index::default()
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Take the lock, load the index and finish renames a crash left.
    pub fn locked(&self) -> Result<Locked<'_>, IndexError> {
        // SAFETY: flock on a descriptor we own; blocks until granted.
        if unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(&self.root.join(STATE_DIR).join(LOCK_FILE))(
                std::io::Error::last_os_error(),
            ));
        }
        let mut locked = Locked {
            store: self,
            index: Index::default(),
        };
        locked.index = Self::read(&self.root)?;
        if !locked.index.pending_renames.is_empty() {
            locked.finish_renames()?;
            locked.save()?;
        }
        Ok(locked)
    }
}

impl Locked<'_> {
    /// Write the index atomically: temp file, fsync, rename, dir fsync.
    pub fn save(&mut self) -> Result<(), IndexError> {
        self.index.version = INDEX_VERSION;
        let path = Store::index_path(&self.store.root);
        let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
        let bytes = serde_json::to_vec(&self.index).map_err(|source| IndexError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&path)(e)
        })
    }

    /// The output of `key`, registering the generation if it is new.
    /// `record_ms` is the producer timestamp of the record that brought
    /// it. The newest generation of a path holds the live name
    /// `HOST/<source path>`; older ones are `<name>.<seconds>-<generation>`
    /// (names that sort by time). "Newest" goes by the first record's
    /// timestamp, not by the order the collector meets generations in: a
    /// backlog spread over partitions can deliver the newer generation
    /// first, and the older one must not then take the live name. So a new
    /// generation older than the live holder gets its older name directly;
    /// otherwise it takes the live name and the holder is renamed. Saved
    /// before returning, so an output file never exists without its index
    /// entry.
    pub fn register(
        &mut self,
        key: &GenKey,
        source_path: &[u8],
        now: u64,
        record_ms: u64,
    ) -> Result<GenEntry, IndexError> {
        let id = key.id();
        if let Some(e) = self.index.generations.get(&id) {
            return Ok(e.clone());
        }
        let live = live_path(&key.host, source_path);
        let generation = key.lineage.to_string();
        let output = match self
            .index
            .generations
            .values_mut()
            .find(|e| e.output == live)
        {
            // Equal times go to the later arrival, as before times were kept.
            Some(holder) if holder.first_record_ms() > record_ms => {
                older_name(&live, record_ms, &generation)
            }
            Some(holder) => {
                let to = older_name(&live, holder.first_record_ms(), &holder.generation);
                self.index.pending_renames.push((live.clone(), to.clone()));
                holder.output = to;
                live
            }
            None => live,
        };
        let entry = GenEntry {
            host: key.host.clone(),
            generation,
            source_path: String::from_utf8_lossy(source_path).into_owned(),
            output,
            first_seen: now,
            first_record_ms: Some(record_ms),
            last_write: now,
            completeness: Completeness::default(),
            archived: None,
            custody: None,
        };
        self.index.generations.insert(id.clone(), entry.clone());
        self.save()?;
        if self.index.pending_renames.is_empty() {
            return Ok(entry);
        }
        self.finish_renames()?;
        self.save()?;
        // A refused rename gave this generation another name.
        Ok(self.index.generations.get(&id).cloned().unwrap_or(entry))
    }

    /// Do the renames recorded as pending: each only when its source
    /// exists and its target does not, so doing one twice is harmless.
    /// A target name already taken (by another source's output or its
    /// directories) or refused is not a reason to stop: the holder keeps
    /// the live name and the generation that was to take it gets its
    /// older name instead.
    fn finish_renames(&mut self) -> Result<(), IndexError> {
        let root = self.store.root.clone();
        for (from_rel, to_rel) in std::mem::take(&mut self.index.pending_renames) {
            let (from, to) = (root.join(&from_rel), root.join(&to_rel));
            if !from.exists() {
                continue;
            }
            let refused = if to.symlink_metadata().is_ok() {
                Some(format!("{} already exists", to.display()))
            } else {
                match std::fs::rename(&from, &to) {
                    Ok(()) => None,
                    Err(e) if Fault::of(&e) == Fault::Record => Some(e.to_string()),
                    Err(e) => return Err(io_err(&from)(e)),
                }
            };
            match refused {
                None => sync_dir(to.parent().unwrap_or(&root)).map_err(io_err(&to))?,
                Some(why) => self.keep_live_name(&from_rel, &to_rel, &why),
            }
        }
        Ok(())
    }

    /// A rename of the live holder `live` to `older` was refused: undo it
    /// in the index. The holder (now recorded under `older`) gets `live`
    /// back; the generation registered under `live` is renamed instead.
    fn keep_live_name(&mut self, live: &str, older: &str, why: &str) {
        let mut newcomer = None;
        for e in self.index.generations.values_mut() {
            if e.output == older {
                e.output = live.to_string();
            } else if e.output == live {
                newcomer = Some(e);
            }
        }
        if let Some(e) = newcomer {
            e.output = older_name(live, e.first_record_ms(), &e.generation);
            tracing::error!(
                host = %e.host,
                generation = %e.generation,
                "cannot rename {live} to {older} ({why}); the generation there keeps the live name and the newer one is written to {}",
                e.output
            );
        }
    }

    /// Forget `key` when nothing of it was written (its output could not
    /// be created): a later record of it tries again, and nothing in the
    /// index points at a file that does not exist.
    pub fn unregister_unwritten(&mut self, key: &GenKey) -> Result<(), IndexError> {
        let id = key.id();
        let unwritten = self
            .index
            .generations
            .get(&id)
            .is_some_and(|e| e.archived.is_none() && e.completeness.end() == 0);
        if unwritten {
            self.index.generations.remove(&id);
            self.save()?;
        }
        Ok(())
    }
}

/// fsync a directory, making entries created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` and its missing parents under `root`, each made durable in
/// its parent.
pub fn create_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut d = dir;
    while let Some(parent) = d.parent() {
        sync_dir(parent)?;
        if parent == root || !parent.starts_with(root) {
            break;
        }
        d = parent;
    }
    Ok(())
}

/// `HOST/<source path>` relative to OUT, escaped (see [`naming`]): always
/// under OUT, never in `.logferry` or `_unattributed`, one name per source.
pub fn live_path(host: &str, source_path: &[u8]) -> String {
    naming::output_path(host.as_bytes(), source_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_paths_stay_inside_out() {
        assert_eq!(live_path("web1", b"/var/log/x.log"), "web1/var/log/x.log");
        assert_eq!(
            live_path("..", b"/../../etc/passwd"),
            "%2E%2E/%2E%2E/%2E%2E/etc/passwd"
        );
        assert_eq!(live_path(".logferry", b"a"), "%2Elogferry/%./a");
        assert_eq!(live_path("_unattributed", b"/a"), "%5Funattributed/a");
        assert_eq!(live_path("a/b", b""), "a%2Fb/%./%_");
    }

    #[test]
    fn a_new_generation_takes_the_live_name_and_the_old_one_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = GenKey {
            host: "h".into(),
            lineage: Lineage::Generation(GenerationId(1)),
        };
        let b = GenKey {
            host: "h".into(),
            lineage: Lineage::Generation(GenerationId(2)),
        };
        let mut l = store.locked().unwrap();
        // Collector clock 100 and 200; the records' own times 90.5 s and
        // 190 s name the old output.
        let first = l.register(&a, b"/x.log", 100, 90_500).unwrap();
        assert_eq!(first.output, "h/x.log");
        assert_eq!(first.first_record_ms, Some(90_500));
        std::fs::create_dir_all(dir.path().join("h")).unwrap();
        std::fs::write(dir.path().join("h/x.log"), "a\n").unwrap();
        assert_eq!(
            l.register(&b, b"/x.log", 200, 190_000).unwrap().output,
            "h/x.log"
        );
        drop(l);
        let old = dir.path().join("h/x.log.90-0000000000000001");
        assert_eq!(std::fs::read(old).unwrap(), b"a\n");
        let idx = Store::read(dir.path()).unwrap();
        assert_eq!(idx.generations.len(), 2);
        assert!(idx.pending_renames.is_empty());
        assert!(idx.generations["h/0000000000000001"].is_closed());
        assert!(!idx.generations["h/0000000000000002"].is_closed());
    }

    #[test]
    fn an_older_generation_met_after_a_newer_one_does_not_take_the_live_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = |g| GenKey {
            host: "h".into(),
            lineage: Lineage::Generation(GenerationId(g)),
        };
        let mut l = store.locked().unwrap();
        // A backlog: the newer generation (first record at 500 s) arrives
        // first, the older one (first record at 400 s) after it.
        assert_eq!(
            l.register(&key(2), b"/x.log", 1000, 500_000)
                .unwrap()
                .output,
            "h/x.log"
        );
        std::fs::create_dir_all(dir.path().join("h")).unwrap();
        std::fs::write(dir.path().join("h/x.log"), "new\n").unwrap();
        let older = l.register(&key(1), b"/x.log", 1001, 400_000).unwrap();
        assert_eq!(older.output, "h/x.log.400-0000000000000001");
        assert!(l.index.pending_renames.is_empty());
        // An even older one after that: also an older name, by its time.
        let oldest = l.register(&key(3), b"/x.log", 1002, 300_250).unwrap();
        assert_eq!(oldest.output, "h/x.log.300-0000000000000003");
        // A later one still takes the live name from the newest.
        assert_eq!(
            l.register(&key(4), b"/x.log", 1003, 600_000)
                .unwrap()
                .output,
            "h/x.log"
        );
        drop(l);
        assert_eq!(
            std::fs::read(dir.path().join("h/x.log.500-0000000000000002")).unwrap(),
            b"new\n"
        );
        let idx = Store::read(dir.path()).unwrap();
        let out = |g: &str| idx.generations[&format!("h/{g}")].output.clone();
        assert_eq!(out("0000000000000004"), "h/x.log");
        assert_eq!(out("0000000000000002"), "h/x.log.500-0000000000000002");
        assert_eq!(out("0000000000000001"), "h/x.log.400-0000000000000001");
        assert!(idx.generations.values().filter(|e| !e.is_closed()).count() == 1);
    }

    #[test]
    fn an_index_without_record_times_falls_back_to_first_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // An index entry as an older collector wrote it: no record time.
        let old = r#"{"version":1,"generations":{"h/0000000000000001":{"host":"h",
            "generation":"0000000000000001","source_path":"/x.log","output":"h/x.log",
            "first_seen":100,"last_write":100}}}"#;
        std::fs::write(Store::index_path(dir.path()), old).unwrap();
        let idx = Store::read(dir.path()).unwrap();
        let e = &idx.generations["h/0000000000000001"];
        assert_eq!((e.first_record_ms, e.first_record_ms()), (None, 100_000));
        let mut l = store.locked().unwrap();
        let key = |g| GenKey {
            host: "h".into(),
            lineage: Lineage::Generation(GenerationId(g)),
        };
        // Older than first_seen: an older name; newer: takes the live name
        // and the old entry gets the name it always would have.
        let e = l.register(&key(2), b"/x.log", 200, 99_000).unwrap();
        assert_eq!(e.output, "h/x.log.99-0000000000000002");
        let e = l.register(&key(3), b"/x.log", 200, 101_000).unwrap();
        assert_eq!(e.output, "h/x.log");
        assert_eq!(
            l.index.generations["h/0000000000000001"].output,
            "h/x.log.100-0000000000000001"
        );
    }

    #[test]
    fn a_rename_left_pending_by_a_crash_is_finished_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("live"), "old\n").unwrap();
        let mut l = store.locked().unwrap();
        l.index.pending_renames.push(("live".into(), "old".into()));
        l.save().unwrap();
        drop(l);
        let l = store.locked().unwrap();
        assert!(l.index.pending_renames.is_empty());
        assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"old\n");
        assert!(!dir.path().join("live").exists());
    }
}
