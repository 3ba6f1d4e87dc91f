//! The time index beside the archive: when each line was read by its agent
//! (the record timestamp), per source generation, so that `logferry merge`
//! can interleave hosts by read time and seek to `--since` without reading
//! the archive from the start. It lives under `OUT/.logferry/timeline/`,
//! never inside `OUT/HOST/`, which holds only the rebuilt files.
//!
//! One file per generation, appended to at every sync of the collector
//! (after the outputs are fsynced, before offsets are committed), one *run*
//! per sync: the lines written since, sorted by offset.
//!
//! ```text
//! file = "LFTIME01" run*
//! run  = [u32 payload_len][u32 count][u64 min_offset][u64 max_offset]
//!        [i64 min_ms][i64 max_ms][u32 crc32(payload)] payload     (LE)
//! payload = count x ([varint offset - previous offset][zigzag varint ms - previous ms])
//! ```
//!
//! About 3 bytes a line (offsets grow by a line's length, times by a few
//! ms). Runs of one file mostly follow each other in offset order; lines of
//! one generation spread over partitions arrive out of order, so runs may
//! overlap, and a reader merges them (see [`TimeCursor`]). A record
//! consumed twice (crash, rebalance) adds its entry twice; readers keep
//! one. A run torn by a crash fails its length or checksum: readers stop
//! before it, and the next writer cuts it off before appending (its lines
//! were not committed, so they come again).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::index::{io_err, GenKey, IndexError, STATE_DIR};

pub const TIMELINE_DIR: &str = "timeline";
const MAGIC: &[u8; 8] = b"LFTIME01";
const HEADER: usize = 4 + 4 + 8 + 8 + 8 + 8 + 4;

/// The timeline file of the generation with index id `id` (`HOST/GEN`).
/// Bytes other than `[A-Za-z0-9._-]` are %-escaped, so distinct ids never
/// share a file. A name that would pass the file system's limit (a host
/// of hundreds of bytes, from any producer) keeps its first bytes and
/// ends with a hash of the whole id: one record can never make the
/// timeline, and so the collector, fail.
pub fn path_of(root: &Path, id: &str) -> PathBuf {
    const KEEP: usize = 160;
    let mut name = String::with_capacity(id.len() + 3);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > KEEP {
        // FNV-1a: stable across builds (the file name must not change).
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut cut = KEEP;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str(&format!("~{hash:016x}"));
    }
    name.push_str(".tl");
    root.join(STATE_DIR).join(TIMELINE_DIR).join(name)
}

/// The run being noted: its number, its key and its (offset, ms) entries.
type CurrentRun = (u64, GenKey, Vec<(u64, i64)>);

/// The collector's side: entries noted per record, appended at each sync.
#[derive(Debug, Default)]
pub struct Timeline {
    pending: foldhash::HashMap<GenKey, Vec<(u64, i64)>>,
    /// The generation whose lines are being noted now and their entries:
    /// lines of one generation come in runs (a partition carries one
    /// file's lines in order), so `pending` is looked up once a run, not
    /// once a line. Its run number (from the caller) stands for the key
    /// in the comparison made once a line.
    current: Option<CurrentRun>,
    /// Files checked for a torn last run by this process.
    checked: HashSet<String>,
}

impl Timeline {
    /// A line of `key` at `offset` was written; its record says it was
    /// read at `time_ms`. `run` is the key's run number: the same number
    /// is only ever given with the same key.
    pub fn note(&mut self, key: &GenKey, run: u64, offset: u64, time_ms: u64) {
        let ms = i64::try_from(time_ms).unwrap_or(i64::MAX);
        match &mut self.current {
            Some((r, _, entries)) if *r == run => entries.push((offset, ms)),
            _ => {
                self.end_run();
                let mut entries = self.pending.remove(key).unwrap_or_default();
                entries.push((offset, ms));
                self.current = Some((run, key.clone(), entries));
            }
        }
    }

    /// Put the current run's entries with the rest.
    fn end_run(&mut self) {
        if let Some((_, k, entries)) = self.current.take() {
            self.pending.insert(k, entries);
        }
    }

    /// Forget entries not appended yet (their records are consumed again).
    pub fn clear(&mut self) {
        self.current = None;
        self.pending.clear();
    }

    /// Append one sorted run per generation noted since the last flush and
    /// fsync each file. Collectors sharing OUT serialise on a lock of
    /// their own (not the index lock: appending needs no index).
    pub fn flush(&mut self, root: &Path) -> Result<(), IndexError> {
        self.end_run();
        if self.pending.is_empty() {
            return Ok(());
        }
        let dir = root.join(STATE_DIR).join(TIMELINE_DIR);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock on a descriptor we own; released when it closes.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(&lock_path)(std::io::Error::last_os_error()));
        }
        let mut created = false;
        let mut run = Vec::new();
        for (key, mut entries) in self.pending.drain() {
            let id = key.id();
            let path = path_of(root, &id);
            let existed = path.exists();
            let mut f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            if !existed {
                f.write_all(MAGIC).map_err(io_err(&path))?;
                created = true;
            } else if self.checked.insert(id) {
                cut_torn_tail(&f).map_err(io_err(&path))?;
            }
            entries.sort_unstable();
            entries.dedup();
            encode_run(&entries, &mut run);
            f.write_all(&run).map_err(io_err(&path))?;
            f.sync_data().map_err(io_err(&path))?;
        }
        if created {
            super::index::sync_dir(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `entries` sorted by offset, non-empty.
fn encode_run(entries: &[(u64, i64)], out: &mut Vec<u8>) {
    out.clear();
    out.resize(HEADER, 0);
    let (mut po, mut pt) = (0u64, 0i64);
    for &(o, t) in entries {
        put_varint(out, o - po);
        let d = t.wrapping_sub(pt);
        put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
        (po, pt) = (o, t);
    }
    let payload_len = (out.len() - HEADER) as u32;
    let crc = crc32fast::hash(&out[HEADER..]);
    let min_ms = entries.iter().map(|e| e.1).min().unwrap_or(0);
    let max_ms = entries.iter().map(|e| e.1).max().unwrap_or(0);
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(&payload_len.to_le_bytes());
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    h.extend_from_slice(&entries.first().map_or(0, |e| e.0).to_le_bytes());
    h.extend_from_slice(&entries.last().map_or(0, |e| e.0).to_le_bytes());
    h.extend_from_slice(&min_ms.to_le_bytes());
    h.extend_from_slice(&max_ms.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    out[..HEADER].copy_from_slice(&h);
}

/// One run's header, and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub payload_at: u64,
    pub payload_len: u32,
    pub count: u32,
    pub min_offset: u64,
    pub max_offset: u64,
    pub min_ms: i64,
    pub max_ms: i64,
    crc: u32,
}

fn parse_header(h: &[u8; HEADER], payload_at: u64) -> Run {
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    Run {
        payload_at,
        payload_len: u32_at(0),
        count: u32_at(4),
        min_offset: u64_at(8),
        max_offset: u64_at(16),
        min_ms: u64_at(24) as i64,
        max_ms: u64_at(32) as i64,
        crc: u32_at(40),
    }
}

/// Reads a timeline file's runs, from the start or from where a previous
/// scan stopped (`--follow` picks up runs appended since).
#[derive(Debug)]
pub struct RunScanner {
    file: File,
    /// Where the next run header is expected.
    pub next_at: u64,
}

impl RunScanner {
    /// None when the generation has no timeline (yet).
    pub fn open(path: &Path) -> std::io::Result<Option<RunScanner>> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut magic = [0u8; 8];
        match file.read_exact(&mut magic) {
            Ok(()) if &magic == MAGIC => {}
            Ok(()) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a logferry timeline", path.display()),
                ))
            }
            // Created, magic not written yet.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Some(RunScanner { file, next_at: 8 }))
    }

    /// The next complete run, if one is there (a torn or half-appended run
    /// is not: it is looked at again at the next call).
    pub fn next_run(&mut self) -> std::io::Result<Option<Run>> {
        let mut h = [0u8; HEADER];
        match self.file.read_exact_at(&mut h, self.next_at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let run = parse_header(&h, self.next_at + HEADER as u64);
        let len = self.file.metadata()?.len();
        if run.payload_at + u64::from(run.payload_len) > len {
            return Ok(None);
        }
        if self.read(&run).is_err() {
            return Ok(None);
        }
        self.next_at = run.payload_at + u64::from(run.payload_len);
        Ok(Some(run))
    }

    /// A run's entries, sorted by offset; an error when its checksum fails.
    pub fn read(&self, run: &Run) -> std::io::Result<Vec<(u64, i64)>> {
        let mut payload = vec![0u8; run.payload_len as usize];
        self.file.read_exact_at(&mut payload, run.payload_at)?;
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "timeline run does not decode",
            )
        };
        if crc32fast::hash(&payload) != run.crc {
            return Err(bad());
        }
        let mut out = Vec::with_capacity(run.count as usize);
        let (mut at, mut o, mut t) = (0usize, 0u64, 0i64);
        while at < payload.len() {
            o += get_varint(&payload, &mut at).ok_or_else(bad)?;
            let z = get_varint(&payload, &mut at).ok_or_else(bad)?;
            t = t.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            out.push((o, t));
        }
        Ok(out)
    }
}

/// Cut a torn last run (a crash mid-append) so the next run starts at a
/// header boundary.
fn cut_torn_tail(f: &File) -> std::io::Result<()> {
    let mut scan = RunScanner {
        file: f.try_clone()?,
        next_at: MAGIC.len() as u64,
    };
    while scan.next_run()?.is_some() {}
    if f.metadata()?.len() > scan.next_at {
        f.set_len(scan.next_at)?;
        f.sync_all()?;
    }
    let mut f = f;
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

/// Every timeline entry of one generation in offset order, merged over
/// its runs with memory bounded by how far runs overlap, not by the file:
/// a first pass keeps only each run's header (and the lowest offset of
/// every later run), the second decodes a run only once a line at or past
/// that lowest offset is asked for.
#[derive(Debug)]
pub struct TimeCursor {
    scanner: RunScanner,
    runs: Vec<Run>,
    /// suffix_min[i]: lowest offset in runs[i..].
    suffix_min: Vec<u64>,
    next_run: usize,
    /// Entries decoded and not yet passed.
    ahead: BTreeMap<u64, i64>,
    /// Entries below this are never needed (`--since` seek).
    floor: u64,
}

impl TimeCursor {
    pub fn new(scanner: RunScanner) -> std::io::Result<TimeCursor> {
        let mut scanner = scanner;
        let mut runs = Vec::new();
        while let Some(r) = scanner.next_run()? {
            runs.push(r);
        }
        let mut suffix_min = vec![u64::MAX; runs.len()];
        let mut m = u64::MAX;
        for (i, r) in runs.iter().enumerate().rev() {
            m = m.min(r.min_offset);
            suffix_min[i] = m;
        }
        Ok(TimeCursor {
            scanner,
            runs,
            suffix_min,
            next_run: 0,
            ahead: BTreeMap::new(),
            floor: 0,
        })
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Lowest offset of a line read at or after `ms` (None: there is none).
    pub fn first_offset_since(&self, ms: i64) -> Option<u64> {
        self.runs
            .iter()
            .filter(|r| r.max_ms >= ms)
            .map(|r| r.min_offset)
            .min()
    }

    /// Highest offset of a line read before `ms` (None: there is none).
    pub fn last_offset_before(&self, ms: i64) -> Option<u64> {
        self.runs
            .iter()
            .filter(|r| r.min_ms < ms)
            .map(|r| r.max_offset)
            .max()
    }

    /// Earliest read time in the file.
    pub fn min_ms(&self) -> Option<i64> {
        self.runs.iter().map(|r| r.min_ms).min()
    }

    /// Entries below `offset` will not be asked for.
    pub fn skip_below(&mut self, offset: u64) {
        self.floor = offset;
    }

    /// When the line starting at `offset` was read, if the timeline says.
    /// Offsets must be asked in increasing order.
    pub fn time_of(&mut self, offset: u64) -> std::io::Result<Option<i64>> {
        while self.next_run < self.runs.len() && self.suffix_min[self.next_run] <= offset {
            let r = self.runs[self.next_run];
            self.next_run += 1;
            if r.max_offset < self.floor.max(offset) {
                continue;
            }
            for (o, t) in self.scanner.read(&r)? {
                if o >= offset {
                    // A duplicate keeps its first time.
                    self.ahead.entry(o).or_insert(t);
                }
            }
        }
        while let Some((&o, _)) = self.ahead.first_key_value() {
            if o >= offset {
                break;
            }
            self.ahead.pop_first();
        }
        Ok(self.ahead.get(&offset).copied())
    }

    /// Runs appended since (for `--follow`): their entries join those
    /// ahead.
    pub fn catch_up(&mut self) -> std::io::Result<()> {
        while let Some(r) = self.scanner.next_run()? {
            for (o, t) in self.scanner.read(&r)? {
                if o >= self.floor {
                    self.ahead.entry(o).or_insert(t);
                }
            }
        }
        Ok(())
    }

    /// Everything decoded so far goes into `ahead` and later runs are
    /// read by [`catch_up`](Self::catch_up) (follow mode: no suffix view).
    pub fn into_following(mut self, from: u64) -> std::io::Result<TimeCursor> {
        self.floor = from;
        while self.next_run < self.runs.len() {
            let r = self.runs[self.next_run];
            self.next_run += 1;
            if r.max_offset < from {
                continue;
            }
            for (o, t) in self.scanner.read(&r)? {
                if o >= from {
                    self.ahead.entry(o).or_insert(t);
                }
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile host hundreds of bytes long still makes a file name the
    /// file system takes, and distinct ids still make distinct names.
    #[test]
    fn long_ids_make_short_distinct_names() {
        let root = Path::new("/out");
        let a = format!("{}/00000000000000ff", "h\u{0}/..".repeat(100));
        let b = format!("{}/00000000000000fe", "h\u{0}/..".repeat(100));
        let (pa, pb) = (path_of(root, &a), path_of(root, &b));
        for p in [&pa, &pb] {
            let name = p.file_name().unwrap().len();
            assert!(name <= 255, "{name} bytes");
            assert_eq!(p.parent().unwrap(), root.join(STATE_DIR).join(TIMELINE_DIR));
        }
        assert_ne!(pa, pb);
        assert_eq!(
            path_of(root, "web-1/00000000000000ff"),
            root.join(STATE_DIR)
                .join(TIMELINE_DIR)
                .join("web-1%2F00000000000000ff.tl")
        );
    }
    use crate::collect::index::Lineage;
    use logferry_tail::GenerationId;

    fn key(g: u64) -> GenKey {
        GenKey {
            host: "web/1".into(),
            lineage: Lineage::Generation(GenerationId(g)),
        }
    }

    fn cursor(root: &Path, g: u64) -> TimeCursor {
        let s = RunScanner::open(&path_of(root, &key(g).id()))
            .unwrap()
            .unwrap();
        TimeCursor::new(s).unwrap()
    }

    #[test]
    fn overlapping_runs_merge_in_offset_order_and_duplicates_keep_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Timeline::default();
        for (o, ms) in [(0, 100), (20, 120), (10, 110)] {
            t.note(&key(1), 1, o, ms);
        }
        t.flush(dir.path()).unwrap();
        // A later run reaching back (another partition's lines), with a
        // duplicate of 10.
        for (o, ms) in [(30, 130), (5, 105), (10, 110)] {
            t.note(&key(1), 1, o, ms);
        }
        t.flush(dir.path()).unwrap();
        let mut c = cursor(dir.path(), 1);
        assert_eq!(c.runs().len(), 2);
        assert_eq!(
            c.first_offset_since(121),
            Some(5),
            "the second run holds 130"
        );
        assert_eq!(c.last_offset_before(101), Some(20));
        let got: Vec<_> = [0, 5, 10, 15, 20, 30]
            .iter()
            .map(|&o| c.time_of(o).unwrap())
            .collect();
        assert_eq!(
            got,
            [Some(100), Some(105), Some(110), None, Some(120), Some(130)]
        );
        assert!(path_of(dir.path(), "web/1/x").ends_with("web%2F1%2Fx.tl"));
    }

    #[test]
    fn a_torn_run_is_ignored_by_readers_and_cut_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Timeline::default();
        t.note(&key(2), 2, 0, 1);
        t.flush(dir.path()).unwrap();
        let p = path_of(dir.path(), &key(2).id());
        let whole = std::fs::metadata(&p).unwrap().len();
        // A crash half way through appending the next run.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(cursor(dir.path(), 2).runs().len(), 1);
        let mut t = Timeline::default();
        t.note(&key(2), 2, 7, 2);
        t.flush(dir.path()).unwrap();
        let mut c = cursor(dir.path(), 2);
        assert_eq!(c.runs().len(), 2);
        assert_eq!(c.time_of(7).unwrap(), Some(2));
        assert!(std::fs::metadata(&p).unwrap().len() > whole);
    }

    #[test]
    fn about_three_bytes_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Timeline::default();
        for i in 0..10_000u64 {
            t.note(&key(3), 3, i * 150, 1_764_064_800_000 + i / 10);
        }
        t.flush(dir.path()).unwrap();
        let len = std::fs::metadata(path_of(dir.path(), &key(3).id()))
            .unwrap()
            .len();
        assert!(len < 10_000 * 3 + 100, "{len} bytes");
    }
}
