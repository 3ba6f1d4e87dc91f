//! Offset-addressed output files. Each source generation has one output
//! file; a line is written with `pwrite` at its source byte offset followed
//! by its newline, so a record consumed twice (a crash before a commit, a
//! rebalance, a duplicate from the agent) writes the same bytes to the same
//! place, and a generation read to its end is byte-identical to its source.
//!
//! Lines that follow each other in the source are gathered into one run
//! and written with one `pwrite`: within a partition one file's lines
//! arrive in file order, so this turns a syscall per line into one per
//! batch.
//!
//! Records without source attribution are appended to
//! `_unattributed/TOPIC/partition-N.log` in partition-offset order; an
//! append is not idempotent, so the index keeps the partition offset and
//! file length written, a record below it is skipped, and bytes past it
//! (written but not saved before a crash) are cut off before appending.
//!
//! A line whose output cannot be created where its attribution points
//! (the name clashes with another source's output or directories, or the
//! whole path is too long: see [`super::fault`]) is not written either,
//! and the caller keeps it in `_unattributed`; only errors of OUT itself
//! are returned as errors.
//!
//! A line whose offset lies more than `max_hole` past the end of what its
//! generation's output holds is not written: a corrupt or hostile offset
//! (2^60) would make a giant sparse file, or an EFBIG that stops the
//! collector. The caller keeps such a record in `_unattributed`.
//!
//! Nothing is durable until [`Writer::sync`]: it writes pending runs,
//! fsyncs every file touched, then merges what was written into the index.
//! Only after it returns may the records' offsets be committed.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use super::completeness::RangeSet;
use super::fault::Fault;
use super::index::{
    create_dirs, io_err, unattributed_key, unattributed_path, AppendPos, GenKey, IndexError, Store,
};
use super::observe::{FsyncStats, HoleSummary};
use super::spread::Partitions;
use crate::config::collect::DEFAULT_MAX_HOLE;
use outputs::Outputs;

mod outputs;

/// A run is written out once it reaches this size.
const MAX_RUN: usize = 1 << 20;
/// Output files kept open between syncs; more are closed after a sync
/// (which also forgets the partitions their generations came from).
const MAX_OPEN: usize = 1024;
/// A line at least this long (a pack of lines, typically) is written from
/// the record itself, behind what the run holds, in one `pwritev`: copying
/// it into the run first was 7 % of the collector's CPU on a topic of
/// 64 KiB packs (`perf`, docs/BENCHMARKS.md).
const DIRECT_WRITE: usize = 16 << 10;
/// No line may end past this: `pwrite` takes a signed offset.
const MAX_FILE_END: u64 = i64::MAX as u64;

/// One generation's output file and what was written to it since the last
/// sync.
struct OutFile {
    /// None for an archived output (compressed or gone: never written).
    file: Option<File>,
    /// Bytes waiting to be written at `run_start`.
    run: Vec<u8>,
    run_start: u64,
    written: RangeSet,
    /// Ends of lines the agent cut (see completeness).
    excused: Vec<u64>,
    dirty: bool,
    /// Set when housekeeping compressed or deleted the output: what it
    /// held. A record inside it is a duplicate; one outside it arrived too
    /// late and is counted, never written into a compressed file.
    archived: Option<RangeSet>,
    /// End of what the output holds as far as this writer knows: the
    /// index's when opened (or last looked at) and every line since. A
    /// line may open a hole of at most `max_hole` past it.
    end: u64,
    /// Whether `end` was read from the index since the last sync: a line
    /// that looks too far is checked against the index once per sync, as
    /// collectors sharing OUT may have written further meanwhile.
    end_checked: bool,
    /// The partitions this generation's lines came from in this session.
    partitions: Partitions,
}

/// One `_unattributed` partition file.
struct Appender {
    file: File,
    pos: AppendPos,
    buf: Vec<u8>,
    dirty: bool,
}

/// Where a line goes: its source path (for a new generation's name), its
/// byte offset, and whether the agent cut it (long-line policy: then no
/// newline follows it in the source).
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub source_path: &'a [u8],
    pub offset: u64,
    pub truncated: bool,
}

/// Where the record came from: its topic and partition (which partitions
/// a generation arrives on: see [`super::spread`]), its producer
/// timestamp in Unix ms (which orders the generations of one path: see
/// [`super::index::Locked::register`]), and the run of records of its
/// generation it is in.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub time_ms: u64,
    /// The caller's number for the run of lines of one generation this
    /// line is in (one number is only ever given with one generation
    /// key): the output is looked up by key once a run, not once a line.
    /// None: a line outside any run, looked up by key.
    pub run: Option<u64>,
}

/// What became of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Written at its offset (or, for an archived generation, found
    /// already held or counted as late).
    Written,
    /// Written, the first line since the generation's output was opened
    /// (in this session, or again after it was closed): its custody is
    /// decided now (see [`super::custody`]).
    Opened,
    /// Written, and its generation came from a partition it had not come
    /// from before in this session, on two or more by now: see
    /// [`Writer::partitions`].
    WrittenNewPartition,
    /// Not written: the offset lies more than `max_hole` past `end`, the
    /// end of what the output holds (or the line would end past what a
    /// file can hold). The caller keeps the record elsewhere.
    TooFar { end: u64 },
    /// Not written: the generation's output cannot be created where its
    /// attribution points (`why` names the file and the error). The
    /// caller keeps the record elsewhere.
    Unwritable { why: String },
}

/// A hole open longer than the gap timeout, for the log.
#[derive(Debug, Clone)]
pub struct Gap {
    pub output: String,
    pub host: String,
    pub generation: String,
    pub source_path: String,
    pub start: u64,
    pub end: u64,
    pub age_secs: u64,
}

pub struct Writer {
    /// Largest hole a line may open past the end of its output.
    max_hole: u64,
    /// Looked up by key once a run of lines (keyed with foldhash, since
    /// SipHash of the key was a sixth of the collector's own
    /// instructions), by run number for the rest of the run. Its seed is
    /// random per process, as std's; foldhash resists hash flooding less
    /// than SipHash, but a producer making many generations costs the
    /// collector an output file (and an index entry) each anyway.
    outputs: Outputs<OutFile>,
    /// Generations not in the index whose lines came too far out to
    /// register them, until the next sync: a stream of such lines then
    /// costs a set lookup each, not a read of the index.
    unknown_far: foldhash::HashSet<GenKey>,
    /// Generations whose output could not be created, with why, until
    /// the next sync: their next lines cost a lookup, not a try each.
    unwritable: foldhash::HashMap<GenKey, String>,
    appenders: HashMap<(String, i32), Appender>,
    /// Gaps already logged (output, hole start), so each is said once.
    reported: HashSet<(String, u64)>,
    /// Records below an `_unattributed` file's saved position, skipped.
    pub skipped_unattributed: u64,
    /// Lines for generations already compressed or deleted that they did
    /// not hold: not written.
    pub late_lines: u64,
    /// Bytes handed to output files (lines and newlines), for metrics.
    pub bytes_written: u64,
    /// Latency of every fsync of an output file.
    pub fsync: FsyncStats,
    /// Open holes over the whole index, as of the last sync that wrote.
    pub holes: Option<HoleSummary>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HOLE)
    }
}

impl Writer {
    pub fn new(max_hole: u64) -> Self {
        Writer {
            max_hole,
            outputs: Default::default(),
            unknown_far: Default::default(),
            unwritable: Default::default(),
            appenders: HashMap::new(),
            reported: HashSet::new(),
            skipped_unattributed: 0,
            late_lines: 0,
            bytes_written: 0,
            fsync: FsyncStats::default(),
            holes: None,
        }
    }

    pub fn max_hole(&self) -> u64 {
        self.max_hole
    }

    /// Write `line` at `at.offset` in the output of `key`, unless that is
    /// more than `max_hole` past the end of what the output holds.
    pub fn write_line(
        &mut self,
        store: &Store,
        key: &GenKey,
        at: At<'_>,
        from: Origin<'_>,
        line: &[u8],
        now: u64,
    ) -> Result<Placed, IndexError> {
        let At {
            offset, truncated, ..
        } = at;
        let len = line.len() as u64 + u64::from(!truncated);
        // Where the line ends, when a file can hold it there.
        let line_end = offset.checked_add(len).filter(|&e| e <= MAX_FILE_END);
        // One lookup a run: the output is opened only when missing.
        let (out, opened) = match self.outputs.get_mut(key, from.run) {
            Some(out) => (out, false),
            None => {
                if let Err(placed) = self.open(store, key, at, from, now, line_end)? {
                    return Ok(placed);
                }
                let out = self.outputs.get_mut(key, from.run).expect("opened above");
                (out, true)
            }
        };
        if let Some(held) = &out.archived {
            let end = offset.saturating_add(len);
            if !held.covers(offset, end) {
                if self.late_lines == 0 {
                    tracing::error!(
                        host = %key.host,
                        generation = %key.lineage,
                        offset,
                        "line for a generation already archived arrived too late; not written (said once, counted)"
                    );
                }
                self.late_lines += 1;
            }
            return Ok(Placed::Written);
        }
        let max_hole = self.max_hole;
        let too_far = |end: u64| offset > end.saturating_add(max_hole);
        let line_end = match line_end {
            Some(e) if !too_far(out.end) => e,
            _ => {
                if !out.end_checked {
                    out.end = out.end.max(indexed_end(store, key)?);
                    out.end_checked = true;
                }
                match line_end {
                    Some(e) if !too_far(out.end) => e,
                    _ => return Ok(Placed::TooFar { end: out.end }),
                }
            }
        };
        let contiguous = !out.run.is_empty() && offset == out.run_start + out.run.len() as u64;
        if !contiguous || out.run.len() >= MAX_RUN {
            out.write_run().map_err(io_err(store.root()))?;
            out.run_start = offset;
        }
        if line.len() >= DIRECT_WRITE && out.file.is_some() {
            out.write_run_and(line).map_err(io_err(store.root()))?;
        } else {
            out.run.extend_from_slice(line);
        }
        let end = offset + line.len() as u64;
        if truncated {
            out.excused.push(end);
        } else {
            out.run.push(b'\n');
        }
        out.written.insert(offset, line_end);
        out.end = out.end.max(line_end);
        out.dirty = true;
        self.bytes_written += len;
        Ok(if out.partitions.note(from.topic, from.partition) {
            Placed::WrittenNewPartition
        } else if opened {
            Placed::Opened
        } else {
            Placed::Written
        })
    }

    /// Open `key`'s output for a line `at` its offset, ending at
    /// `line_end` (None: past what a file can hold), or say where the line
    /// goes instead. A new generation's output ends at 0. A line too far
    /// for it does not register it: a corrupt record would otherwise take
    /// the live name from the real file.
    fn open(
        &mut self,
        store: &Store,
        key: &GenKey,
        at: At<'_>,
        from: Origin<'_>,
        now: u64,
        line_end: Option<u64>,
    ) -> Result<Result<(), Placed>, IndexError> {
        let may_register = line_end.is_some() && at.offset <= self.max_hole;
        if !may_register && self.unknown_far.contains(key) {
            return Ok(Err(Placed::TooFar { end: 0 }));
        }
        if let Some(why) = self.unwritable.get(key) {
            return Ok(Err(Placed::Unwritable { why: why.clone() }));
        }
        match open_output(store, key, at.source_path, from, now, may_register)? {
            Opened::Out(out) => {
                self.outputs.insert(key.clone(), out);
                Ok(Ok(()))
            }
            Opened::TooFar => {
                self.unknown_far.insert(key.clone());
                Ok(Err(Placed::TooFar { end: 0 }))
            }
            Opened::Unwritable(e) => {
                let why = e.to_string();
                self.unwritable.insert(key.clone(), why.clone());
                Ok(Err(Placed::Unwritable { why }))
            }
        }
    }

    /// The partitions `key`'s lines came from in this session (while its
    /// output is open).
    pub fn partitions(&self, key: &GenKey) -> Option<&Partitions> {
        self.outputs.get(key).map(|o| &o.partitions)
    }

    /// Every open generation whose lines came from two or more partitions.
    pub fn spread(&self) -> impl Iterator<Item = (&GenKey, &Partitions)> {
        self.outputs
            .iter()
            .filter(|(_, o)| o.partitions.len() >= 2)
            .map(|(k, o)| (k, &o.partitions))
    }

    /// Append a record without attribution, unless an earlier run of the
    /// collector already did (offset below the saved position).
    pub fn write_unattributed(
        &mut self,
        store: &Store,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &[u8],
    ) -> Result<(), IndexError> {
        let k = (topic.to_string(), partition);
        if !self.appenders.contains_key(&k) {
            let a = open_appender(store, topic, partition)?;
            self.appenders.insert(k.clone(), a);
        }
        let a = self.appenders.get_mut(&k).expect("inserted above");
        if offset < a.pos.next_offset {
            self.skipped_unattributed += 1;
            return Ok(());
        }
        a.buf.extend_from_slice(value);
        a.buf.push(b'\n');
        self.bytes_written += value.len() as u64 + 1;
        a.pos.next_offset = offset + 1;
        a.dirty = true;
        if a.buf.len() >= MAX_RUN {
            a.write_buf().map_err(io_err(store.root()))?;
        }
        Ok(())
    }

    /// Make everything written durable and record it in the index: write
    /// pending runs, fsync each file touched, merge into the index and save
    /// it. Returns the gaps older than `gap_timeout_secs` not reported yet.
    pub fn sync(
        &mut self,
        store: &Store,
        now: u64,
        gap_timeout_secs: u64,
    ) -> Result<Vec<Gap>, IndexError> {
        self.sync_with(store, now, gap_timeout_secs, None)
    }

    /// [`Writer::sync`], and `also` records more in the index in the same
    /// save (it runs after every output was fsynced, and makes the index
    /// be saved even when nothing was written).
    pub fn sync_with(
        &mut self,
        store: &Store,
        now: u64,
        gap_timeout_secs: u64,
        mut also: Option<&mut dyn FnMut(&mut super::index::Index)>,
    ) -> Result<Vec<Gap>, IndexError> {
        let root = store.root();
        // What others wrote since (other collectors sharing OUT) is looked
        // at again when needed.
        for out in self.outputs.values_mut() {
            out.end_checked = false;
        }
        self.unknown_far.clear();
        self.unwritable.clear();
        for out in self.outputs.values_mut().filter(|o| o.dirty) {
            out.write_run().map_err(io_err(root))?;
            if let Some(f) = &out.file {
                let t = Instant::now();
                f.sync_data().map_err(io_err(root))?;
                self.fsync.observe(t.elapsed());
            }
        }
        for a in self.appenders.values_mut().filter(|a| a.dirty) {
            a.write_buf().map_err(io_err(root))?;
            let t = Instant::now();
            a.file.sync_data().map_err(io_err(root))?;
            self.fsync.observe(t.elapsed());
        }
        if also.is_none()
            && !self.outputs.values().any(|o| o.dirty)
            && !self.appenders.values().any(|a| a.dirty)
        {
            return Ok(Vec::new());
        }
        let mut locked = store.locked()?;
        locked.index.gap_timeout_secs = gap_timeout_secs;
        if let Some(f) = also.as_mut() {
            f(&mut locked.index);
        }
        let mut touched = Vec::new();
        for (key, out) in self.outputs.iter_mut().filter(|(_, o)| o.dirty) {
            if let Some(e) = locked.index.generations.get_mut(&key.id()) {
                e.completeness.merge(&out.written, &out.excused, now);
                e.last_write = now;
                out.end = out.end.max(e.completeness.end());
                touched.push(key.id());
            }
        }
        for ((topic, partition), a) in self.appenders.iter().filter(|(_, a)| a.dirty) {
            locked
                .index
                .unattributed
                .insert(unattributed_key(topic, *partition), a.pos);
        }
        locked.save()?;
        let gaps = self.new_gaps(&locked.index, &touched, now, gap_timeout_secs);
        self.holes = Some(hole_summary(&locked.index, now, gap_timeout_secs));
        drop(locked);
        for out in self.outputs.values_mut() {
            out.written = RangeSet::new();
            out.excused.clear();
            out.dirty = false;
        }
        for a in self.appenders.values_mut() {
            a.dirty = false;
        }
        if self.outputs.len() > MAX_OPEN {
            // Everything is synced: closing loses nothing.
            self.outputs.clear();
        }
        Ok(gaps)
    }

    fn new_gaps(
        &mut self,
        index: &super::index::Index,
        touched: &[String],
        now: u64,
        gap_timeout_secs: u64,
    ) -> Vec<Gap> {
        let mut gaps = Vec::new();
        for id in touched {
            let Some(e) = index.generations.get(id) else {
                continue;
            };
            for h in e.completeness.holes(now) {
                if h.age_secs >= gap_timeout_secs
                    && self.reported.insert((e.output.clone(), h.start))
                {
                    gaps.push(Gap {
                        output: e.output.clone(),
                        host: e.host.clone(),
                        generation: e.generation.clone(),
                        source_path: e.source_path.clone(),
                        start: h.start,
                        end: h.end,
                        age_secs: h.age_secs,
                    });
                }
            }
        }
        gaps
    }

    /// Forget `_unattributed` state for partitions no longer assigned (call
    /// after a sync): whoever gets them next reloads it from the index.
    /// Outputs whose lines came from the partition are closed, so that if
    /// it comes back, their custody is decided again.
    pub fn forget_partition(&mut self, topic: &str, partition: i32) {
        self.appenders.remove(&(topic.to_string(), partition));
        self.outputs.retain(|_, o| {
            o.dirty || !(o.partitions.topic() == topic && o.partitions.list().contains(&partition))
        });
    }

    /// Drop everything not synced (after a failed write or sync: those
    /// records are consumed again from the last commit).
    pub fn reset(&mut self) {
        self.outputs.clear();
        self.unknown_far.clear();
        self.unwritable.clear();
        self.appenders.clear();
    }
}

/// Open holes over every generation in the index (other collectors'
/// included: they share it). A pass over the index once per sync that
/// wrote something, so at most once per commit interval.
pub fn hole_summary(index: &super::index::Index, now: u64, gap_timeout_secs: u64) -> HoleSummary {
    let mut s = HoleSummary {
        generations: index.generations.len() as u64,
        ..HoleSummary::default()
    };
    for e in index.generations.values() {
        for h in e.completeness.holes(now) {
            s.holes += 1;
            s.gaps += u64::from(h.age_secs >= gap_timeout_secs);
            let since = now.saturating_sub(h.age_secs);
            s.oldest_since = Some(s.oldest_since.map_or(since, |o| o.min(since)));
        }
    }
    s
}

impl OutFile {
    fn write_run(&mut self) -> std::io::Result<()> {
        if let (false, Some(f)) = (self.run.is_empty(), &self.file) {
            f.write_all_at(&self.run, self.run_start)?;
            self.run.clear();
        }
        Ok(())
    }

    /// Write the run and then `line`, which follows it, without copying
    /// `line`; the run is then empty and starts where `line` ends.
    fn write_run_and(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            write_all_vectored_at(f, [&self.run, line], self.run_start)?;
            self.run_start += (self.run.len() + line.len()) as u64;
            self.run.clear();
        }
        Ok(())
    }
}

/// `write_all_at` of two buffers, one after the other, with `pwritev`
/// (std's vectored positional write is not stable).
fn write_all_vectored_at(file: &File, mut parts: [&[u8]; 2], mut at: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while parts.iter().any(|p| !p.is_empty()) {
        let iov = parts.map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        });
        let offset = libc::off_t::try_from(at)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: both iovecs point into live slices of their stated
        // lengths, which the kernel only reads.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), 2, offset) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        at += n as u64;
        for p in parts.iter_mut() {
            let k = n.min(p.len());
            *p = &p[k..];
            n -= k;
        }
    }
    Ok(())
}

impl Appender {
    fn write_buf(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let at = self.pos.len;
            self.file.write_all_at(&self.buf, at)?;
            self.pos.len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

fn open_file(root: &Path, rel: &str) -> Result<File, IndexError> {
    let path = root.join(rel);
    let parent = path.parent().unwrap_or(root);
    create_dirs(root, parent).map_err(io_err(parent))?;
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    if !existed {
        super::index::sync_dir(parent).map_err(io_err(parent))?;
    }
    Ok(file)
}

/// End of what the index says `key`'s output holds (0 when unknown).
fn indexed_end(store: &Store, key: &GenKey) -> Result<u64, IndexError> {
    let locked = store.locked()?;
    Ok(locked
        .index
        .generations
        .get(&key.id())
        .map_or(0, |e| e.completeness.end()))
}

/// What opening a generation's output gave.
enum Opened {
    Out(OutFile),
    /// New and not `may_register`: not registered.
    TooFar,
    /// The output cannot be created under its name (a [`Fault::Record`]);
    /// a new generation is not left registered.
    Unwritable(IndexError),
}

/// Open the output of a generation, registering it when new and
/// `may_register`. Opened under the index lock: another collector may be
/// renaming outputs.
fn open_output(
    store: &Store,
    key: &GenKey,
    source_path: &[u8],
    from: Origin<'_>,
    now: u64,
    may_register: bool,
) -> Result<Opened, IndexError> {
    let mut locked = store.locked()?;
    if !may_register && !locked.index.generations.contains_key(&key.id()) {
        return Ok(Opened::TooFar);
    }
    let entry = locked.register(key, source_path, now, from.time_ms)?;
    let archived = entry
        .archived
        .is_some()
        .then(|| entry.completeness.written.clone());
    let file = match archived {
        Some(_) => None,
        None => match open_file(store.root(), &entry.output) {
            Ok(f) => Some(f),
            Err(e) if e.fault() == Fault::Record => {
                locked.unregister_unwritten(key)?;
                return Ok(Opened::Unwritable(e));
            }
            Err(e) => return Err(e),
        },
    };
    drop(locked);
    Ok(Opened::Out(OutFile {
        archived,
        file,
        run: Vec::new(),
        run_start: 0,
        written: RangeSet::new(),
        excused: Vec::new(),
        dirty: false,
        end: entry.completeness.end(),
        end_checked: true,
        partitions: Partitions::new(from.topic),
    }))
}

/// Open an `_unattributed` file at its saved position, cutting off bytes a
/// crashed run wrote past it.
fn open_appender(store: &Store, topic: &str, partition: i32) -> Result<Appender, IndexError> {
    let locked = store.locked()?;
    let mut pos = locked
        .index
        .unattributed
        .get(&unattributed_key(topic, partition))
        .copied()
        .unwrap_or(AppendPos {
            next_offset: 0,
            len: 0,
        });
    let rel = unattributed_path(topic, partition);
    let file = open_file(store.root(), &rel)?;
    let path = store.root().join(&rel);
    let actual = file.metadata().map_err(io_err(&path))?.len();
    if actual > pos.len {
        file.set_len(pos.len).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
    } else if actual < pos.len {
        // Saved bytes missing: someone cut the file. Append after what is
        // there rather than leave a hole of zeros.
        tracing::error!(
            file = %path.display(),
            expected = pos.len,
            actual,
            "unattributed file is shorter than recorded; appending at its end"
        );
        pos.len = actual;
    }
    drop(locked);
    Ok(Appender {
        file,
        pos,
        buf: Vec::new(),
        dirty: false,
    })
}
