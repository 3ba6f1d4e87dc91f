//! The [`Tailer`]: everything between a set of globs and complete lines.
//!
//! It finds files (current and rotated names, compressed rotations),
//! decides which generation each one is (by content: see
//! [`ledger`](crate::ledger)), follows them through rotation and
//! truncation, keeps at most `max_open_files` descriptors, and hands out
//! complete lines tagged with a stream slot and a sequence number. It takes
//! acknowledgements back by that tag, and reports positions for
//! checkpoints: a position moves only past lines that were acknowledged.
//! It knows nothing of Kafka: whoever consumes the lines implements
//! [`LineSink`].
//!
//! # Layout
//! - `mod.rs`: the type, its settings, scan scheduling, acks, checkpoints.
//! - `stream.rs`: one followed file generation.
//! - `start.rs`: what a newly found file is (which generation, from where).
//! - `budget.rs`: parking idle files under the descriptor budget.
//! - `round.rs`: one read round over the files that have data.
//! - `status.rs`: read-only views of the files and counters, for metrics.

mod backfill;
mod budget;
mod cut;
mod event;
mod input_parts;
mod notified;
mod path_index;
mod reconfigure;
use input_parts::InputParts;
mod rotated_globs;
pub use reconfigure::ReconfigureError;
mod round;
mod start;
mod status;
mod stream;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::acks::{AckTracker, SEQ_BITS};
use crate::checkpoint::FileCheckpoint;
use crate::discover::{Discovery, DiscoveryError};
use crate::frame::{Line, LineFramer, LongLinePolicy};
use crate::identity::{FileId, GenerationId};
use crate::ledger::Ledger;
use crate::multiline::MultilineJoiner;
use crate::notice::FsNotices;
pub use backfill::BackfillProgress;
use budget::Descriptors;
pub(crate) use cut::CutInFlight;
pub use event::{EventLog, TailEvent};
use path_index::PathIndex;
pub use status::{FileStatus, TailCounters};
use stream::{Life, Stream};

/// Where a file without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At its current end, like `tail -n0 -F` (files present at start only;
    /// files that appear later are always read from their beginning).
    End,
    Beginning,
}

/// One input: a set of globs and how its files are framed.
#[derive(Debug, Clone)]
pub struct TailInput {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub start_at: StartAt,
    pub max_line_bytes: usize,
    pub long_lines: LongLinePolicy,
    pub strip_cr: bool,
    /// Whole lines read together go out as one record of up to this many
    /// bytes (0: a record a line). Not with `multiline` (ignored there).
    pub pack_bytes: usize,
    /// Ship an unterminated last line after the file was idle this long.
    pub partial_flush: Option<Duration>,
    /// Joins continuation lines into records (a prototype, cloned per file).
    pub multiline: Option<MultilineJoiner>,
    /// Where this input's rotated files go besides `PATTERN.*` and
    /// `PATTERN-*` (absolute globs; compressed or not, told by content).
    pub rotated: Vec<String>,
    /// Ship the rotated files found at start that no known generation
    /// leads to (history otherwise), oldest first.
    pub backfill: bool,
}

#[derive(Debug, Clone)]
pub struct TailSettings {
    pub inputs: Vec<TailInput>,
    /// Time between scans (8 times that while notifications work).
    pub scan_interval: Duration,
    /// How long a rotated-away or deleted file is kept open after its last
    /// data, for a writer that has not reopened yet.
    pub rotate_grace: Duration,
    pub max_open_files: usize,
    /// How long a generation whose bytes must be found elsewhere is looked
    /// for before it is declared lost.
    pub unfinished_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TailerError {
    #[error("input {input}: {source}")]
    Discovery {
        input: usize,
        source: DiscoveryError,
    },
}

/// The stream a line came from.
#[derive(Debug, Clone, Copy)]
pub struct StreamInfo<'a> {
    /// The slot: the tag acknowledgements come back with.
    pub slot: usize,
    /// Unique per stream opened, so a sink can tell a reused slot apart.
    pub serial: u64,
    pub input: usize,
    pub generation: GenerationId,
    pub id: FileId,
    /// Where the file was when it was opened.
    pub opened_path: &'a str,
    /// Where it is now.
    pub path: &'a str,
}

/// Where lines go.
pub trait LineSink {
    /// How many more bytes the stream in `slot`, of `input`, may read now
    /// (what a bound on unacknowledged data leaves it); 0 pauses it.
    fn room(&self, input: usize, slot: usize) -> usize;
    /// One complete line (or multiline record) with its sequence number in
    /// its stream; its acknowledgement comes back as `Tailer::ack(slot, seq)`.
    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>);
}

/// What a scan found that the caller must act on.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Generations given up on, with bytes that were never shipped.
    pub lost: Vec<FileCheckpoint>,
    /// Slots whose stream ended (drained and fully acknowledged).
    pub retired: Vec<usize>,
}

/// How a file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Under a name the include patterns match.
    Current,
    /// Only under a rotated name (`PATTERN.*`, `PATTERN-*`).
    Rotated,
}

/// With file-system notifications on, every creation, rename, deletion and
/// write prompts a scan or a read at once, so the periodic scan is only a
/// safety net and runs this many times less often (10 s by default, as
/// Filebeat's `scan_frequency`). A scan lists every directory and stats
/// every file: with 10,000 files, scanning each 250 ms took a quarter of
/// the CPU, and every 2 s still a sixth (docs/BENCHMARKS.md). Directories
/// on network file systems do not count as notified (`FsNotices::active`).
const NOTIFIED_SCAN_FACTOR: u32 = 40;

/// While a scan lists directories, the file-system events queued are read
/// this often, so the kernel's queue does not overflow during it.
const KEEP_UP_EVERY: Duration = Duration::from_millis(5);

/// A file that produced data this recently is polled on every round when
/// notifications are off.
const HOT: Duration = Duration::from_secs(2);

/// Scans prompted by events are spaced at least this much, so a burst of
/// file creations costs a few scans, not one each.
const RESCAN_SPACING: Duration = Duration::from_millis(20);

/// A scan lists every directory and stats every file: with 200,000 files
/// one took most of a second, and run every 2 s (and at each burst of
/// events) scans left too little time to read. A periodic scan starts at
/// least this many times what the last one took after it began, and one
/// asked for by an event at least `RESCAN_COST_FACTOR` times, so scanning
/// takes at most an eighth (a quarter, while files keep being created) of
/// the time whatever the number of files. Below a few thousand files a scan
/// takes milliseconds and nothing changes.
const SCAN_COST_FACTOR: u32 = 8;
const RESCAN_COST_FACTOR: u32 = 4;

/// With notifications on and nothing created or renamed, compressed
/// rotated names are still listed every this many scans (a safety net).
const COMPRESSED_SCAN_EVERY: u64 = 8;

/// How often the checkpoint takes proofs of bytes seen but not shipped.
const SEEN_PERIOD: Duration = Duration::from_secs(10);

/// Resting checkpoints of files not seen again are kept this long, so a file
/// that is briefly unreadable does not lose its position.
const RESTED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Tailer {
    settings: TailSettings,
    discoveries: Vec<Discovery>,
    /// Per input: the rotated names of its include patterns (`PATTERN.*`,
    /// `PATTERN-*`, minus names that say compressed), watched to finish
    /// files already being read and to catch files rotated before a scan
    /// saw them under their current name; split by content, since a name
    /// that says nothing may hold a compressed file.
    rotated: Vec<rotated_globs::RotatedGlobs>,
    /// Per input: files under those names whose content is compressed
    /// (listed by the last scan of rotated names), for the next scan of
    /// compressed names.
    rotated_compressed: Vec<Vec<crate::discover::Found>>,
    /// Per input: compressed rotated names, searched for unfinished
    /// generations.
    compressed: Vec<Discovery>,
    /// Per input: its `rotated` globs, if any (plain files join the rotated
    /// names, compressed ones the compressed names).
    own_rotated: Vec<Option<rotated_globs::RotatedGlobs>>,
    /// Files shipped by backfill: identity -> (bytes on disk, bytes read),
    /// for progress.
    backfill: backfill::Progress,
    framers: Vec<LineFramer>,
    /// Slab of streams; the slot index is the tag of their lines.
    streams: Vec<Option<Box<Stream>>>,
    free_slots: Vec<usize>,
    next_serial: u64,
    by_id: HashMap<FileId, usize>,
    /// Last known path of each stream, to route notifications.
    by_path: PathIndex,
    /// Generations not being read: checkpointed ones whose file has not
    /// been found (again) yet, and unfinished ones to be found by content.
    ledger: Ledger,
    /// Inodes of resting generations the first scan found; the others are
    /// looked for by content (renamed, compressed).
    seen_at_start: HashSet<FileId>,
    /// Where this scan found each file under a rotated name: a generation
    /// whose own file is among them, still holding it, is that file, not a
    /// copy elsewhere that merely starts alike.
    rotated_listing: HashMap<FileId, PathBuf>,
    first_scan_done: bool,
    /// No checkpoint existed at start: the configured start position applies
    /// to files found now. With a checkpoint, a file found at start is new
    /// since the last run and is read from its beginning.
    fresh_start: bool,
    /// Set when a read found a file cut in place: its copy is looked for at
    /// once.
    cut_seen: bool,
    /// Files under rotated names that look like copies still being written:
    /// not opened yet, and said so once each.
    copies_in_progress: HashSet<FileId>,
    /// Slots a read round visits among current files when notifications
    /// are on: those woken (by an event, a scan or a restart) and those
    /// holding an open record. A round then costs what is active, not what
    /// is followed. May hold duplicates and stale slots; each round sorts
    /// and filters it.
    ready: Vec<usize>,
    /// Rounds ran without notifications (polling every slot) and `ready`
    /// was not kept: rebuild it from every slot when they come back.
    ready_stale: bool,
    /// Slots of streams not under a current name (rotated away or deleted),
    /// drained before current files. Rebuilt after a scan changed them.
    absent: Vec<usize>,
    absent_stale: bool,
    /// Descriptors held by streams, against `max_open_files`.
    descriptors: Descriptors,
    /// What happened to files, for whoever asks ([`Tailer::record_events`]).
    events: EventLog,
    notices: FsNotices,
    /// Open failures already logged.
    open_errors: HashSet<(PathBuf, std::io::ErrorKind)>,
    next_scan: Instant,
    last_scan: Instant,
    /// How long the last scan took (see [`SCAN_COST_FACTOR`]).
    scan_cost: Duration,
    /// An event asked for a scan that has not run yet. Kept across rounds:
    /// a rotation's events come in a burst (rename, create, write), and a
    /// request arriving within the spacing of the scan before it must not
    /// be dropped, or the new file waits for the periodic scan.
    rescan: bool,
    /// Per input: rotations and truncations seen (for metrics).
    counters: Vec<TailCounters>,
    /// When the proofs of bytes seen but not shipped are taken next.
    next_seen: Instant,
    /// A stream waits for its generation's head to be in a written
    /// checkpoint before its lines are handed out (write-ahead).
    save_wanted: bool,
    /// Generations cut (or found cut) while lines of theirs were still in
    /// flight: until those are acknowledged, the checkpoint keeps them at
    /// the position acknowledged at the cut, not where reading had got to,
    /// so a crash before the acks re-reads those lines from the copy.
    cut_in_flight: Vec<CutInFlight>,
    /// Compressed rotated files modified after this are examined once each
    /// (see `scan_compressed`): the time of the last checkpoint written
    /// before this start, or the start itself without one.
    examine_after: SystemTime,
    /// Compressed files examined (identity, length, modification time).
    examined: HashSet<(FileId, u64, Option<SystemTime>)>,
    /// When the running scan began: once a scan has a verdict on every
    /// compressed file newer than `examine_after`, this becomes the new
    /// `examine_after` (a file compressed later was either seen plain by
    /// that scan, or is newer).
    scan_began: SystemTime,
    /// Scans run (for the periodic listing of compressed names).
    scans: u64,
    /// The last listing gave every compressed file newer than the
    /// watermark a verdict.
    compressed_judged: bool,
    /// Inputs already warned that their writer may rotate out of sight.
    rotation_warned: HashSet<usize>,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tailer {
    /// Follow `settings.inputs`, resuming the generations in `saved`.
    /// `fresh_start`: no checkpoint existed, so the configured start
    /// position applies to the files found by the first scan.
    pub fn new(
        settings: TailSettings,
        saved: Vec<FileCheckpoint>,
        fresh_start: bool,
    ) -> Result<Self, TailerError> {
        let mut discoveries = Vec::new();
        let mut rotated = Vec::new();
        let mut compressed = Vec::new();
        let mut own_rotated = Vec::new();
        let mut framers = Vec::new();
        for (i, input) in settings.inputs.iter().enumerate() {
            let parts = InputParts::build(i, input)?;
            discoveries.push(parts.current);
            rotated.push(parts.rotated);
            compressed.push(parts.compressed);
            own_rotated.push(parts.own_rotated);
            framers.push(parts.framer);
        }
        let mut watch_dirs: Vec<(PathBuf, bool)> =
            discoveries.iter().flat_map(Discovery::watch_dirs).collect();
        watch_dirs.extend(
            own_rotated
                .iter()
                .flatten()
                .flat_map(rotated_globs::RotatedGlobs::watch_dirs),
        );
        watch_dirs.sort();
        watch_dirs.dedup();
        // Entries of files being read were refreshed at every checkpoint
        // written: the newest says when the last one was (to the second,
        // hence the margin). Without a checkpoint, this start.
        let examine_after = saved
            .iter()
            .map(|cp| cp.updated)
            .max()
            .filter(|_| !fresh_start)
            .map_or_else(SystemTime::now, |t| {
                UNIX_EPOCH + Duration::from_secs(t.saturating_sub(1))
            });
        let ledger = Ledger::new(saved, settings.unfinished_ttl);
        let settings_inputs = settings.inputs.len();
        let descriptors = Descriptors::new(settings.max_open_files);
        let now = Instant::now();
        Ok(Tailer {
            settings,
            discoveries,
            rotated,
            rotated_compressed: (0..settings_inputs).map(|_| Vec::new()).collect(),
            compressed,
            own_rotated,
            backfill: backfill::Progress::default(),
            framers,
            streams: Vec::new(),
            free_slots: Vec::new(),
            next_serial: 0,
            by_id: HashMap::new(),
            by_path: PathIndex::default(),
            ledger,
            seen_at_start: HashSet::new(),
            rotated_listing: HashMap::new(),
            first_scan_done: false,
            fresh_start,
            cut_seen: false,
            copies_in_progress: HashSet::new(),
            ready: Vec::new(),
            ready_stale: true,
            absent: Vec::new(),
            absent_stale: true,
            descriptors,
            events: EventLog::default(),
            notices: FsNotices::new(watch_dirs),
            open_errors: HashSet::new(),
            next_scan: now,
            last_scan: now,
            scan_cost: Duration::ZERO,
            rescan: false,
            counters: vec![TailCounters::default(); settings_inputs],
            next_seen: now,
            save_wanted: false,
            cut_in_flight: Vec::new(),
            examine_after,
            examined: HashSet::new(),
            scan_began: SystemTime::now(),
            scans: 0,
            compressed_judged: false,
            rotation_warned: HashSet::new(),
        })
    }

    /// Keep [`TailEvent`]s from now on, to be taken with
    /// [`Tailer::take_events`].
    pub fn record_events(&mut self) {
        self.events.record();
    }

    /// What happened since the last call (empty unless recording).
    pub fn take_events(&mut self) -> Vec<TailEvent> {
        self.events.take()
    }

    /// Compressed rotated files modified after `t` are examined for
    /// generations born while logferry was not looking: the time the last
    /// checkpoint was written (its file's modification time), which is
    /// exact where the entries' own times are only to the second and a
    /// checkpoint may hold none.
    pub fn examine_compressed_since(&mut self, t: SystemTime) {
        self.examine_after = t;
    }

    /// Every compressed rotated file modified after this was not examined
    /// yet: what the next start passes to
    /// [`examine_compressed_since`](Self::examine_compressed_since) (kept in
    /// the checkpoint, as nanoseconds since the epoch). logrotate gives a
    /// compressed file its source's modification time, so a start cannot
    /// use the time of the last checkpoint instead: a file rotated and
    /// compressed during a short run that examined nothing would be older.
    pub fn examined_until(&self) -> u64 {
        self.examine_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// Time between periodic scans.
    fn scan_period(&self) -> Duration {
        if self.notices.active() {
            self.settings.scan_interval * NOTIFIED_SCAN_FACTOR
        } else {
            self.settings.scan_interval
        }
    }

    /// Find files; open new generations, mark which known ones still have a
    /// matching name, retire finished ones.
    pub fn scan(&mut self, busy: &dyn Fn(usize) -> bool) -> ScanOutcome {
        let now = Instant::now();
        self.scan_began = SystemTime::now();
        self.last_scan = now;
        // A file was created, renamed or deleted (not merely written):
        // compressed rotations may have appeared.
        let files_changed = self.rescan || !self.notices.active();
        self.rescan = false;
        self.next_scan = now + self.scan_period();
        self.notices.retry_missing();
        for s in self.streams.iter_mut().flatten() {
            s.present = false;
        }
        self.rotated_listing.clear();
        for input in 0..self.discoveries.len() {
            // Rotated names first: at start they are recorded as history
            // before the current file's start position is taken, so a
            // rotation racing the first scan is seen as new, not as history.
            self.scan_rotated(input);
            let known = self.by_id.len();
            let notices = &mut self.notices;
            let mut kept_up = Instant::now();
            let found = self.discoveries[input].scan_with(&mut || {
                if kept_up.elapsed() >= KEEP_UP_EVERY {
                    notices.keep_up();
                    kept_up = Instant::now();
                }
            });
            for found in found {
                self.consider(input, Role::Current, found);
            }
            // A new current file means a rotation happened; if it happened
            // while this scan ran, the file it replaced was renamed after
            // the rotated names were listed. List them again so that file
            // is found now and drained before the new one is read.
            if self.by_id.len() > known && self.first_scan_done {
                self.scan_rotated(input);
            }
        }
        if !self.first_scan_done {
            // Checkpointed files the first scan did not find were renamed
            // out of sight, compressed or deleted while logferry was down;
            // except those under a name no input follows any more (their
            // input was removed): they are not looked for, and their
            // positions rest (an input added back resumes there).
            let mut seen = std::mem::take(&mut self.seen_at_start);
            seen.extend(self.unfollowed_resting());
            self.ledger.unfinish_unseen(&seen);
        }
        self.first_scan_done = true;
        // Listing the compressed names costs a directory read per scan;
        // with notifications on, only when files came or went, while
        // generations are looked for or not every compressed file was
        // judged yet, and every few scans as a safety net.
        self.scans += 1;
        if files_changed
            || self.ledger.has_unfinished()
            || !self.compressed_judged
            || self.scans % COMPRESSED_SCAN_EVERY == 0
        {
            self.scan_compressed();
        }
        self.absent_stale = true;
        // Once per scan is often enough to let go of finished files, and
        // keeps the per-round work independent of how many files there are.
        let retired = self.retire_finished(busy);
        self.rebalance_open_files();
        self.scan_cost = now.elapsed();
        self.next_scan = now + self.scan_period().max(self.scan_cost * SCAN_COST_FACTOR);
        ScanOutcome {
            lost: self.expire_lost(),
            retired,
        }
    }

    /// Unfinished generations not found in time: what they held past the
    /// acknowledged position is lost. Said loudly, with the byte count.
    fn expire_lost(&mut self) -> Vec<FileCheckpoint> {
        let mut lost = Vec::new();
        for cp in self.ledger.expire(Instant::now()) {
            let bytes = cp.size.saturating_sub(cp.position);
            if let Some(other) = self.shipped_as(&cp).filter(|_| bytes > 0) {
                // Its file was taken for a new generation before it was
                // known to be a copy (its original found cut only later):
                // the bytes are shipped, under that generation.
                tracing::info!(path = %cp.path, generation = %cp.generation, as_generation = %other, "a file being read holds this generation's content: its lines are shipped as that generation");
                continue;
            }
            if bytes > 0 {
                tracing::error!(path = %cp.path, generation = %cp.generation, offset = cp.position, bytes, "file vanished with bytes never shipped (deleted, or compressed in a form logferry cannot read, before it was read to the end): these bytes are lost");
                self.warn_unwatched_rotation(&cp);
                self.events.push(TailEvent::Lost {
                    generation: cp.generation,
                    offset: cp.position,
                    bytes: Some(bytes),
                });
                lost.push(cp);
            } else if !cp.read_to_end && cp.fingerprint.len > 0 {
                // Being read when logferry last looked, and never found
                // again: whatever was written to it after that is lost, and
                // how much cannot be known. Said, not let go in silence.
                tracing::error!(path = %cp.path, generation = %cp.generation, offset = cp.position, "file vanished while logferry was not reading it (deleted, or compressed in a form logferry cannot read): lines written to it after offset {} and before it vanished, if any, are lost (how many cannot be known)", cp.position);
                self.warn_unwatched_rotation(&cp);
                self.events.push(TailEvent::Lost {
                    generation: cp.generation,
                    offset: cp.position,
                    bytes: None,
                });
                lost.push(cp);
            } else {
                tracing::debug!(path = %cp.path, generation = %cp.generation, "finished file no longer on disk");
            }
        }
        lost
    }

    /// The generation of a file being read (open or parked) that holds
    /// `cp`'s content: a copy of it taken for a new generation, whose lines
    /// are all handed out under that generation.
    fn shipped_as(&self, cp: &FileCheckpoint) -> Option<GenerationId> {
        self.streams.iter().flatten().find_map(|s| {
            if s.generation == cp.generation || s.is_closed_for_good() {
                return None;
            }
            if s.watcher()
                .is_some_and(crate::follow::FileWatcher::is_compressed)
            {
                return None;
            }
            let file = crate::follow::open_log(std::path::Path::new(&*s.path)).ok()?;
            let meta = file.metadata().ok()?;
            let head = crate::identify::Head::read(&file).ok()?;
            (FileId::of(&meta) == s.id
                && meta.len() >= cp.size
                && crate::identify::continues(cp, &head, &mut { &file }, meta.len()))
            .then_some(s.generation)
        })
    }

    /// Mark line `seq` (as handed to [`LineSink::line`], possibly cut to
    /// [`SEQ_BITS`] bits) of the stream in `slot` acknowledged.
    pub fn ack(&mut self, slot: usize, seq: u64) {
        if let Some(Some(stream)) = self.streams.get_mut(slot) {
            let seq = stream.tracker.widen(seq & ((1 << SEQ_BITS) - 1));
            stream.tracker.ack(seq);
        }
    }

    /// Lines handed out and not acknowledged yet.
    pub fn unacked(&self) -> usize {
        self.streams
            .iter()
            .flatten()
            .map(|s| s.tracker.in_flight())
            .sum()
    }

    /// Whether some input has no file yet (said once at start).
    pub fn report_missing_inputs(&self) {
        for (i, input) in self.settings.inputs.iter().enumerate() {
            if !self.streams.iter().flatten().any(|s| s.input == i) {
                tracing::info!(include = ?input.include, "no matching file yet; waiting for one to appear");
            }
        }
    }

    /// Forget every line handed out and not acknowledged: they are handed
    /// out again from each stream's acknowledged position (after the
    /// consumer of lines lost them, e.g. a producer replaced after a fatal
    /// error).
    pub fn rewind_to_acked(&mut self) {
        for slot in 0..self.streams.len() {
            let Some(s) = self.streams[slot].as_mut() else {
                continue;
            };
            let position = s.tracker.position();
            s.tracker = AckTracker::new(position);
            if let Some(j) = s.joiner.as_mut() {
                j.reset();
            }
            match &mut s.life {
                Life::Open(w) => w.rewind(position),
                Life::Parked { at, .. } => {
                    *at = position;
                    s.wake = true;
                    self.ready.push(slot);
                }
                Life::Drained { .. } | Life::Failed => {
                    // Already closed: hand it back to discovery, which
                    // reopens it by identity from the acked position.
                    let s = self.streams[slot].take().expect("checked above");
                    self.by_id.remove(&s.id);
                    self.free_slots.push(slot);
                    self.ledger.rest(s.checkpoint(now_unix()));
                }
            }
        }
    }

    /// Some generation waits to be written to the checkpoint before its
    /// lines are handed out: write one soon (see [`Tailer::saved`]).
    pub fn wants_save(&self) -> bool {
        self.save_wanted
    }

    /// The entries last returned by [`Tailer::checkpoint_entries`] were
    /// written (or could not be, and shipping goes on without the
    /// write-ahead guarantee rather than stall: the failure is the
    /// caller's to report): generations in them may hand out lines.
    pub fn saved(&mut self) {
        for s in self.streams.iter_mut().flatten() {
            s.durable_head = s.durable_head.max(s.saving_head);
        }
        self.save_wanted = false;
    }

    /// What to save: every stream's acknowledged position (anchors moved
    /// there) and the generations not being read.
    pub fn checkpoint_entries(&mut self) -> Vec<FileCheckpoint> {
        let now = now_unix();
        // Proofs of bytes seen but not shipped cost a stat and a read per
        // lagging file: every SEEN_PERIOD, and at every stop (`note_sizes`).
        let seen_due = Instant::now() >= self.next_seen;
        if seen_due {
            self.next_seen = Instant::now() + SEEN_PERIOD;
        }
        for s in self.streams.iter_mut().flatten() {
            s.refresh_anchor();
            s.widen_head();
            // A generation acknowledged no further than its head is known
            // by the head alone, which files sharing a header all have:
            // the proof of what it holds past that tells it from them,
            // whatever it costs (few files, and only until their first
            // acknowledgements past the head).
            if seen_due || s.tracker.position() < s.fingerprint.len.max(1) {
                s.note_seen();
            }
            s.saving_head = s.fingerprint.len;
        }
        self.ledger.forget_older_than(now, RESTED_TTL);
        // Generations not being read first, then the streams: loaded in this
        // order, a stream's entry takes its inode over from an older
        // generation that had it.
        let mut entries = self.ledger.entries();
        let mut live: Vec<FileCheckpoint> = self
            .streams
            .iter()
            .flatten()
            .map(|s| s.checkpoint(now))
            .collect();
        live.sort_unstable_by_key(|e| (e.id, e.generation));
        entries.extend(live);
        self.hold_back_cut_in_flight(&mut entries);
        entries
    }

    /// Take each open file's size now, so that if it vanishes before the
    /// next start the bytes past its acknowledged position are a known loss.
    pub fn note_sizes(&mut self) {
        for s in self.streams.iter_mut().flatten() {
            if let Some(size) = s.watcher().and_then(|w| w.size().ok()) {
                s.size_seen = s.size_seen.max(size);
            }
            s.note_seen();
        }
    }

    /// Drop streams whose file is closed and whose lines are all acked,
    /// keeping their final position in case the file is found again.
    fn retire_finished(&mut self, busy: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut retired = Vec::new();
        for slot in 0..self.streams.len() {
            // Drained and closed, or parked under a name no longer current
            // with nothing new: done once its last line is acked.
            let done = matches!(&self.streams[slot], Some(s) if
                (s.is_closed_for_good() || (s.parked_at().is_some() && !s.present && !s.wake))
                && s.tracker.in_flight() == 0)
                && !busy(slot);
            if !done {
                continue;
            }
            let mut s = self.streams[slot].take().expect("checked above");
            self.by_id.remove(&s.id);
            self.by_path.remove_if(std::path::Path::new(&*s.path), slot);
            self.free_slots.push(slot);
            retired.push(slot);
            s.refresh_anchor();
            s.widen_head();
            s.note_seen();
            let cp = s.checkpoint(now_unix());
            // Closed under the descriptor budget and renamed away before
            // it was read to the end, or gone while closed (it may have
            // grown, or been cut and copied, since it was last seen): find
            // it by content.
            let gone = || !s.id.is_at(std::path::Path::new(&*s.path));
            self.events.push(TailEvent::Retired {
                generation: s.generation,
            });
            let drained = matches!(s.life, Life::Drained { .. });
            if s.parked_at().is_some() && (cp.size > cp.position || gone()) {
                self.ledger.unfinish(cp);
            } else if drained && cp.size > cp.position {
                // Read to the end of its file, yet more of the generation
                // was seen: the file was a copy ending before those bytes
                // (copytruncate's copy lacks what the writer appended
                // before the cut), or a file that only starts alike (a
                // shared header) taken for it. The rest is looked for
                // elsewhere, and said lost if not found: never let go in
                // silence (crash model seed 823125805).
                tracing::warn!(path = %cp.path, generation = %cp.generation, offset = cp.position, seen = cp.size, "file read to its end before bytes this generation was seen to hold: looking for them elsewhere");
                self.ledger.unfinish(cp);
            } else {
                self.ledger.rest(cp);
            }
        }
        retired
    }
}
