//! `logferry ship`: discover -> follow -> frame -> encode -> produce -> ack
//! -> checkpoint, on one thread.
//!
//! One thread is enough and is the cheapest: reading and framing run at
//! GB/s, librdkafka does compression and network I/O on its own threads, and
//! delivery reports arrive on this thread when it polls, so the trackers and
//! checkpoints need no locking.
//!
//! # Invariants
//! - Per-file state is keyed by [`FileId`], never by path.
//! - A checkpoint names only positions whose every earlier line was acked.
//! - A record is never dropped: a failed delivery is retried (with backoff)
//!   and keeps its file's checkpoint from moving past it.
//! - In-flight records are bounded by `max_inflight_bytes`; at the bound,
//!   reading pauses and memory stays flat while Kafka is slow or down.

pub mod acks;
pub mod descriptors;
pub mod ledger;
pub mod notice;
pub mod partition;
pub mod produce;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logferry_tail::discover::Found;
use logferry_tail::{
    open_log, Anchor, CheckpointError, Checkpointer, Discovery, DiscoveryError, FileCheckpoint,
    FileId, FileWatcher, Fingerprint, GenerationId, Line, LineFramer, MultilineJoiner, Poll,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use crate::config::{Attribution, InputSettings, PartitionBy, ShipSettings, StartAt};
use crate::shutdown::Shutdown;
use crate::wire::{self as encode, encode_source, encode_source_key, source_tail, SOURCE_HEADER};
use acks::{AckTracker, SEQ_BITS};
use ledger::{Head, Ledger};
use produce::{client_config, record_cost, Delivery, ShipContext, ShipProducer};

/// One read per file per round; large reads keep syscalls per GB low.
const READ_BUF: usize = 1 << 20;
/// How long the loop sleeps in `poll` when no file had new data. Bounds the
/// added latency of an append.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Granularity of waiting for delivery reports.
const SERVICE_NAP: Duration = Duration::from_millis(1);
/// Events served per `service` at most, so that a flood of reports cannot
/// starve reading.
const MAX_EVENTS_PER_SERVICE: usize = 256;
/// Restored checkpoints of files not seen again are kept this long, so a file
/// that is briefly unreadable does not lose its position.
const RESTORED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A file that produced data this recently is polled on every round.
const HOT: Duration = Duration::from_secs(2);

/// With file-system notifications on, every creation, rename, deletion and
/// write prompts a scan or a read at once, so the periodic scan is only a
/// safety net and runs this many times less often. A scan lists every
/// directory and stats every file: with 10,000 files, scanning each 250 ms
/// took a quarter of logferry's CPU.
const NOTIFIED_SCAN_FACTOR: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("input {input}: {source}")]
    Discovery {
        input: usize,
        source: DiscoveryError,
    },
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("input {input}: key pattern {pattern:?} is not a valid regex: {reason}")]
    KeyPattern {
        input: usize,
        pattern: String,
        reason: String,
    },
    #[error("input {input}: multiline start pattern {pattern:?} is not a valid regex: {reason}")]
    Multiline {
        input: usize,
        pattern: String,
        reason: String,
    },
}

/// Counters reported at shutdown (and by tests).
#[derive(Debug, Default, Clone)]
pub struct ShipReport {
    pub lines_sent: u64,
    pub lines_acked: u64,
    pub bytes_acked: u64,
    pub delivery_failures: u64,
    pub checkpoint_failures: u64,
    /// Records still unacknowledged when the shutdown timeout expired; they
    /// are re-read from the checkpoint at the next start.
    pub unacked_at_exit: u64,
    /// Producers replaced after a fatal error.
    pub producer_restarts: u64,
    /// Generations that vanished with bytes never shipped, and those bytes.
    pub generations_lost: u64,
    pub bytes_lost: u64,
}

/// Everything logferry knows about one file identity.
struct Stream {
    input: usize,
    /// The life of the file being read: what records carry.
    generation: GenerationId,
    id: FileId,
    /// None once the file was drained and closed; the stream lives on
    /// until its last in-flight record is acked.
    watcher: Option<FileWatcher>,
    tracker: AckTracker,
    fingerprint: Fingerprint,
    /// Content proof at (or before) the acknowledged position, refreshed at
    /// each checkpoint.
    anchor: Anchor,
    /// How far into the file logferry has seen (read, or learnt its size):
    /// what is past the acknowledged position is known to exist.
    size_seen: u64,
    path: String,
    /// Found under a matching name by the latest scan. A stream that is not
    /// was rotated away or deleted: it is drained, then closed.
    present: bool,
    /// Host and path part of the source attribution, fixed per file.
    source_tail: Vec<u8>,
    /// Record key under `PartitionBy::File` or `Host`.
    key: Vec<u8>,
    /// The topic this file's lines go to (its input's template, rendered).
    topic: String,
    /// Modification time when opened: the order in which rotated files
    /// are drained.
    modified: std::time::SystemTime,
    /// Closed to stay within `max_open_files` while idle (holding the read
    /// position); reopened by identity when it grows. Distinct from a
    /// drained stream, whose watcher is gone for good.
    parked: Option<u64>,
    /// The latest scan saw the file's size differ from the read position:
    /// read it even though it is not hot.
    wake: bool,
    /// Joins continuation lines when the input is multiline.
    joiner: Option<MultilineJoiner>,
    /// When a read last returned data. Files active within [`HOT`] are
    /// polled every round; colder ones only when a scan wakes them, which
    /// keeps the cost of thousands of idle files at one stat per scan.
    last_data: Instant,
}

impl Stream {
    /// This stream's saved state (the anchor as last refreshed).
    fn checkpoint(&self, now: u64) -> FileCheckpoint {
        let read = self
            .watcher
            .as_ref()
            .map(FileWatcher::read_position)
            .or(self.parked)
            .unwrap_or(0);
        FileCheckpoint {
            generation: self.generation,
            id: self.id,
            fingerprint: self.fingerprint,
            anchor: self.anchor,
            position: self.tracker.position(),
            size: self.size_seen.max(read),
            path: self.path.clone(),
            updated: now,
        }
    }

    /// Move the anchor to the acknowledged position, where the file still
    /// holds it (one read at most; none when the position is where reading
    /// stopped).
    fn refresh_anchor(&mut self) {
        let position = self.tracker.position();
        if self.anchor.at == position {
            return;
        }
        if let Some(a) = self.watcher.as_mut().and_then(|w| w.anchor_at(position)) {
            self.anchor = a;
        }
    }
}

/// Whether a stream must be visited even without new data because time
/// alone completes something: an open multiline record (its timeout), or an
/// unterminated line under `partial_flush`.
fn waits_for_time(s: &Stream, inputs: &[InputSettings]) -> bool {
    s.joiner.as_ref().is_some_and(MultilineJoiner::is_open)
        || (inputs[s.input].partial_flush.is_some()
            && s.watcher.as_ref().is_some_and(|w| w.pending_bytes() > 0))
}

/// How a file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Under a name the include patterns match.
    Current,
    /// Only under a rotated name (`PATTERN.*`, `PATTERN-*`).
    Rotated,
}

/// Suffixes of rotated files that are compressed: never read as text; the
/// readable ones ([`logferry_tail::compressed`]) are searched for
/// generations with unread bytes.
const COMPRESSED: &[&str] = &["gz", "bz2", "xz", "zst", "zip", "lz4", "Z"];

/// Where reading a newly found file starts.
enum Start {
    /// A generation logferry already knows, from this offset.
    Known(FileCheckpoint),
    /// A new generation, from this offset.
    New(u64),
    /// A copy of a file being read that is still being written or whose
    /// original was not cut yet: not opened now, asked again next scan.
    Wait { copy_of: String },
}

/// A record whose delivery failed, waiting to be sent again.
struct Retry {
    due: Instant,
    backoff: Duration,
    opaque: usize,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

pub struct Shipper {
    settings: ShipSettings,
    /// Per input: a fresh joiner for each of its files, when multiline.
    joiners: Vec<Option<MultilineJoiner>>,
    /// Per input: the key pattern under `PartitionBy::Pattern`.
    key_patterns: Vec<Option<regex::bytes::Regex>>,
    /// The bootstrap list in use (for messages).
    bootstrap: String,
    producer: ShipProducer,
    discoveries: Vec<Discovery>,
    framers: Vec<LineFramer>,
    /// Slab of streams; the slot index travels in each record's opaque.
    streams: Vec<Option<Stream>>,
    free_slots: Vec<usize>,
    by_id: HashMap<FileId, usize>,
    checkpointer: Checkpointer,
    /// Generations not being read: checkpointed ones whose file has not
    /// been found (again) yet, and unfinished ones to be found by content.
    ledger: Ledger,
    /// Inodes of resting generations the first scan found; the others are
    /// looked for by content (renamed, compressed).
    seen_at_start: HashSet<FileId>,
    last_saved: Vec<(GenerationId, u64, u64)>,
    inflight: usize,
    /// The same, per input: an input whose records cannot be delivered (its
    /// topic missing, say) may hold at most its share of the bound, so the
    /// other inputs keep flowing.
    input_inflight: Vec<usize>,
    retries: VecDeque<Retry>,
    deliveries: Vec<Delivery>,
    first_scan_done: bool,
    /// No checkpoint existed at start: the configured start position applies
    /// to files found now. With a checkpoint, a file found at start is new
    /// since the last run and is read from its beginning.
    fresh_start: bool,
    /// Per input: the rotated names of its include patterns
    /// (`PATTERN.*`, `PATTERN-*`, not compressed), watched only to finish
    /// files already being read and to catch files rotated before a scan
    /// saw them under their current name.
    rotated: Vec<Discovery>,
    /// Per input: compressed rotated names (`PATTERN.*.gz`, `PATTERN-*.gz`),
    /// searched for unfinished generations.
    compressed: Vec<Discovery>,
    /// Set when a read found a file cut in place: its copy is looked for at
    /// once.
    cut_seen: bool,
    /// Files under rotated names that look like copies still being written:
    /// not opened yet, and said so once each.
    copies_in_progress: HashSet<FileId>,
    /// Slots a read round visits among current files when notifications
    /// are on: those woken (by an event, a scan or a restart) and those
    /// holding an open multiline record. A round then costs what is active,
    /// not what is followed; with 10,000 files, walking every slot on every
    /// round cost more than the reading. May hold duplicates and slots that
    /// no longer qualify; each round sorts and filters it.
    ready: Vec<usize>,
    /// Rounds ran without notifications (polling every slot) and `ready`
    /// was not kept: rebuild it from every slot when they come back.
    ready_stale: bool,
    /// Slots of streams not under a current name (rotated away or deleted),
    /// drained before current files. Rebuilt after a scan changed them.
    absent: Vec<usize>,
    absent_stale: bool,
    /// Streams whose file is open now.
    open_files: usize,
    /// inotify events: wake a file at once, or scan at once.
    notices: notice::FsNotices,
    /// Last known path of each stream, to route notifications.
    by_path: HashMap<PathBuf, usize>,
    /// Open failures already logged.
    open_errors: std::collections::HashSet<(PathBuf, std::io::ErrorKind)>,
    /// Fault injection (tests): raise a fatal producer error after this many
    /// lines were sent.
    fault_fatal_after: Option<u64>,
    /// Per topic: the largest record value the brokers accepted, learned from
    /// size rejections; longer lines are cut to it before sending.
    size_caps: HashMap<String, usize>,
    /// (topic, error) pairs already logged, so an outage logs once, not per
    /// record.
    reported_failures: HashMap<(String, String), Instant>,
    payload_scratch: Vec<u8>,
    source_scratch: Vec<u8>,
    report: ShipReport,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Shipper {
    /// Validate inputs, load checkpoints and create the producer. Nothing is
    /// read until [`run`](Self::run).
    pub fn new(mut settings: ShipSettings, bootstrap: &str) -> Result<Self, ShipError> {
        settings.max_open_files = descriptors::fit_open_files(settings.max_open_files);
        let mut discoveries = Vec::new();
        let mut rotated = Vec::new();
        let mut compressed = Vec::new();
        let mut framers = Vec::new();
        let rotated_names = |patterns: &[String]| -> Vec<String> {
            patterns
                .iter()
                .flat_map(|p| [format!("{p}.*"), format!("{p}-*")])
                .collect()
        };
        for (i, input) in settings.inputs.iter().enumerate() {
            discoveries.push(
                Discovery::new(&input.include, &input.exclude)
                    .map_err(|source| ShipError::Discovery { input: i, source })?,
            );
            // Exclude means exclude: an excluded file's rotated names are
            // excluded too.
            let mut excluded = input.exclude.clone();
            excluded.extend(rotated_names(&input.exclude));
            let mut rotated_exclude = excluded.clone();
            for p in &input.include {
                rotated_exclude.extend(COMPRESSED.iter().map(|c| format!("{p}*.{c}")));
            }
            rotated.push(
                Discovery::new(&rotated_names(&input.include), &rotated_exclude)
                    .map_err(|source| ShipError::Discovery { input: i, source })?,
            );
            let compressed_include: Vec<String> = rotated_names(&input.include)
                .iter()
                .flat_map(|p| {
                    logferry_tail::compressed::READABLE_SUFFIXES
                        .iter()
                        .map(move |c| format!("{p}.{c}"))
                })
                .collect();
            compressed.push(
                Discovery::new(&compressed_include, &excluded)
                    .map_err(|source| ShipError::Discovery { input: i, source })?,
            );
            framers.push(LineFramer::new(
                0,
                input.max_line_bytes,
                input.long_lines,
                input.strip_cr,
            ));
        }
        let mut joiners = Vec::new();
        for (i, input) in settings.inputs.iter().enumerate() {
            joiners.push(match &input.multiline {
                None => None,
                Some(m) => {
                    let start =
                        regex::bytes::Regex::new(&m.start).map_err(|e| ShipError::Multiline {
                            input: i,
                            pattern: m.start.clone(),
                            reason: e.to_string(),
                        })?;
                    Some(MultilineJoiner::new(start, m.timeout, m.max_bytes))
                }
            });
        }
        let mut watch_dirs: Vec<(PathBuf, bool)> =
            discoveries.iter().flat_map(Discovery::watch_dirs).collect();
        watch_dirs.sort();
        watch_dirs.dedup();
        let n_inputs = settings.inputs.len();
        let mut key_patterns = Vec::new();
        for (i, input) in settings.inputs.iter().enumerate() {
            key_patterns.push(match &input.partition_by {
                PartitionBy::Pattern(p) => {
                    Some(
                        regex::bytes::Regex::new(p).map_err(|e| ShipError::KeyPattern {
                            input: i,
                            pattern: p.clone(),
                            reason: e.to_string(),
                        })?,
                    )
                }
                _ => None,
            });
        }
        let checkpointer = Checkpointer::new(&settings.checkpoint_dir)?;
        let fresh_start = !checkpointer.path().exists();
        let saved = checkpointer.load()?;
        if !saved.is_empty() {
            tracing::info!(files = saved.len(), path = %checkpointer.path().display(), "loaded checkpoints");
        }
        // Tests shorten how long a vanished file is looked for before it is
        // declared lost.
        let unfinished_ttl = std::env::var("LOGFERRY_UNFINISHED_TTL_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(ledger::UNFINISHED_TTL, Duration::from_secs);
        let ledger = Ledger::new(saved, unfinished_ttl);
        let producer: ShipProducer = client_config(bootstrap, &settings.kafka_props)
            .create_with_context(ShipContext::new(settings.attribution == Attribution::Key))
            .map_err(ShipError::Producer)?;
        Ok(Shipper {
            settings,
            joiners,
            key_patterns,
            bootstrap: bootstrap.to_string(),
            producer,
            discoveries,
            framers,
            streams: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            checkpointer,
            ledger,
            seen_at_start: HashSet::new(),
            last_saved: Vec::new(),
            inflight: 0,
            input_inflight: vec![0; n_inputs],
            retries: VecDeque::new(),
            deliveries: Vec::new(),
            first_scan_done: false,
            fresh_start,
            rotated,
            compressed,
            cut_seen: false,
            copies_in_progress: HashSet::new(),
            ready: Vec::new(),
            ready_stale: true,
            absent: Vec::new(),
            absent_stale: true,
            reported_failures: HashMap::new(),
            size_caps: HashMap::new(),
            open_files: 0,
            notices: notice::FsNotices::new(watch_dirs),
            by_path: HashMap::new(),
            open_errors: Default::default(),
            fault_fatal_after: std::env::var("LOGFERRY_FAULT_FATAL_AFTER")
                .ok()
                .and_then(|v| v.parse().ok()),
            payload_scratch: Vec::new(),
            source_scratch: Vec::new(),
            report: ShipReport::default(),
        })
    }

    /// Ship until `shutdown` is requested, then drain and checkpoint.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<ShipReport, ShipError> {
        let mut buf = vec![0u8; READ_BUF];
        self.scan();
        // The first checkpoint is written at once: from now on a restart is
        // not a fresh start, so files that appear while logferry is down
        // are read from their beginning, not treated as history.
        self.checkpoint();
        self.report_missing_inputs();
        self.check_cluster();
        let mut next_scan = Instant::now() + self.scan_period();
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
        let mut last_scan = Instant::now();
        // An event asked for a scan that has not run yet. Kept across
        // rounds: a rotation's events come in a burst (rename, create,
        // write), and a request arriving within the spacing of the scan
        // before it must not be dropped, or the new file waits for the
        // periodic scan (seconds with notifications on).
        let mut rescan = false;
        while !shutdown.is_requested() {
            let now = Instant::now();
            let notices = self.notices.drain();
            rescan |= notices.rescan;
            for path in notices.modified {
                let slot = self.by_path.get(&path).copied();
                match slot.and_then(|slot| self.streams[slot].as_mut().map(|s| (slot, s))) {
                    Some((slot, s)) => {
                        s.wake = true;
                        self.ready.push(slot);
                    }
                    None => rescan = true,
                }
            }
            // Scans prompted by events are spaced a little, so a burst of
            // file creations costs a few scans, not one each.
            if now >= next_scan
                || (rescan && now.duration_since(last_scan) >= Duration::from_millis(20))
            {
                self.scan();
                last_scan = now;
                rescan = false;
                next_scan = now + self.scan_period();
            }
            let read = self.read_round(&mut buf);
            self.inject_fatal_error();
            self.service(Duration::ZERO);
            self.send_due_retries(false);
            if self.inflight >= self.settings.max_inflight_bytes {
                // Backpressure: wait for acks instead of reading more.
                self.service(Duration::from_millis(50));
            } else if read == 0 {
                // Idle: sleep on file-system events, not in librdkafka's
                // poll. rdkafka's `poll(timeout)` keeps polling until the
                // deadline and spins on zero-timeout polls for its last
                // millisecond, which at low rates cost more CPU than the
                // shipping itself (40 % of it in clock_gettime). Delivery
                // reports wait at most IDLE_WAIT.
                self.notices.wait(IDLE_WAIT);
                self.service(Duration::ZERO);
            }
            if now >= next_checkpoint {
                self.checkpoint();
                next_checkpoint = now + self.settings.checkpoint_interval;
            }
        }
        Ok(self.drain())
    }

    /// Time between periodic scans.
    fn scan_period(&self) -> Duration {
        if self.notices.active() {
            self.settings.scan_interval * NOTIFIED_SCAN_FACTOR
        } else {
            self.settings.scan_interval
        }
    }

    /// Apply delivery reports, waiting up to `timeout` for the first.
    ///
    /// rdkafka's `poll(timeout)` does not return when a report arrives: it
    /// keeps serving until the deadline (spinning on zero-timeout polls in
    /// its last millisecond). Waiting there for acks stalled reading for the
    /// whole timeout at the in-flight bound. So events are served with
    /// non-blocking polls, and the wait is short naps that end as soon as a
    /// report has come.
    fn service(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.serve_queued_events() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(SERVICE_NAP.min(deadline - now));
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            self.recreate_producer(code, &reason);
            return;
        }
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.producer.context().take_deliveries(&mut deliveries);
        let mut largest_failed: HashMap<String, usize> = HashMap::new();
        for d in &deliveries {
            if let Delivery::Failed {
                error,
                topic,
                payload,
                ..
            } = d
            {
                if is_size_error(error) {
                    let l = largest_failed.entry(topic.clone()).or_insert(0);
                    *l = (*l).max(payload.len());
                }
            }
        }
        for d in deliveries.drain(..) {
            match d {
                Delivery::Acked { opaque, cost } => {
                    self.inflight = self.inflight.saturating_sub(cost);
                    self.report.lines_acked += 1;
                    self.report.bytes_acked += cost.saturating_sub(record_cost(0, 0)) as u64;
                    let slot = opaque >> SEQ_BITS;
                    if let Some(Some(stream)) = self.streams.get_mut(slot) {
                        let share = &mut self.input_inflight[stream.input];
                        *share = share.saturating_sub(cost);
                        let seq = stream
                            .tracker
                            .widen((opaque as u64) & ((1 << SEQ_BITS) - 1));
                        stream.tracker.ack(seq);
                    }
                }
                Delivery::Failed {
                    opaque,
                    cost: _,
                    error,
                    topic,
                    mut key,
                    mut payload,
                    mut headers,
                } => {
                    self.report.delivery_failures += 1;
                    if is_size_error(&error) {
                        // The broker's limit is below this record. Every
                        // record of the rejected batch reports the error, so
                        // only the largest is taken to be the culprit: the
                        // topic's cap drops below it, and only records over
                        // the cap are cut (flagged truncated), never dropped.
                        let cap = self.size_caps.entry(topic.clone()).or_insert(usize::MAX);
                        let largest = largest_failed.get(&topic).copied().unwrap_or(payload.len());
                        *cap = (*cap).min(largest * 3 / 4).max(1);
                        let cap = *cap;
                        if payload.len() > cap {
                            self.inflight = self.inflight.saturating_sub(payload.len() - cap);
                            if let Some(Some(s)) = self.streams.get(opaque >> SEQ_BITS) {
                                let share = &mut self.input_inflight[s.input];
                                *share = share.saturating_sub(payload.len() - cap);
                            }
                            payload.truncate(cap);
                            mark_truncated(self.settings.attribution, key.as_mut(), &mut headers);
                            tracing::warn!(topic = %topic, bytes = cap, "record over the broker's size limit; shipping it truncated");
                        }
                    }
                    self.log_failure(&topic, &error);
                    self.retries.push_back(Retry {
                        due: Instant::now() + Duration::from_millis(500),
                        backoff: Duration::from_millis(500),
                        opaque,
                        topic,
                        key,
                        payload,
                        headers,
                    });
                }
            }
        }
        self.deliveries = deliveries;
    }

    /// A fatal producer error (the idempotent producer lost its sequence
    /// state, for example) ends that producer for good. Replace it and send
    /// again everything after each file's acknowledged position: records
    /// the old producer held are discarded with it, so nothing is lost and
    /// at most the unacknowledged tail is duplicated.
    fn recreate_producer(&mut self, code: RDKafkaErrorCode, reason: &str) {
        tracing::error!(%code, reason, "the Kafka producer hit a fatal error; replacing it and resending from the last acknowledged positions");
        let producer = loop {
            match client_config(&self.bootstrap, &self.settings.kafka_props).create_with_context(
                ShipContext::new(self.settings.attribution == Attribution::Key),
            ) {
                Ok(p) => break p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a new producer; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        // Dropping the old producer purges what it still held; its delivery
        // reports die with its context, so no stale ack reaches a tracker.
        drop(std::mem::replace(&mut self.producer, producer));
        self.report.producer_restarts += 1;
        self.retries.clear();
        self.inflight = 0;
        self.input_inflight.iter_mut().for_each(|c| *c = 0);
        for slot in 0..self.streams.len() {
            let Some(s) = self.streams[slot].as_mut() else {
                continue;
            };
            let position = s.tracker.position();
            s.tracker = AckTracker::new(position);
            if let Some(j) = s.joiner.as_mut() {
                j.reset();
            }
            match s.watcher.as_mut() {
                Some(w) => w.rewind(position),
                None if s.parked.is_some() => {
                    s.parked = Some(position);
                    s.wake = true;
                    self.ready.push(slot);
                }
                None => {
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

    /// Fault injection for the fatal-error test: once this many lines were
    /// sent, ask librdkafka to raise a fatal error (as a broker would by
    /// fencing the idempotent producer). Set by LOGFERRY_FAULT_FATAL_AFTER.
    fn inject_fatal_error(&mut self) {
        let Some(after) = self.fault_fatal_after else {
            return;
        };
        if self.report.lines_sent >= after {
            self.fault_fatal_after = None;
            tracing::warn!(after, "fault injection: raising a fatal producer error");
            // SAFETY: the handle is live; the reason is a valid C string.
            unsafe {
                rdkafka::bindings::rd_kafka_test_fatal_error(
                    self.producer.client().native_ptr(),
                    rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                    c"logferry fault injection".as_ptr(),
                );
            }
        }
    }

    fn log_failure(&mut self, topic: &str, error: &KafkaError) {
        let k = (topic.to_string(), error.to_string());
        let now = Instant::now();
        let due = self
            .reported_failures
            .get(&k)
            .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(60));
        if due {
            tracing::error!(topic, %error, "delivery failed; the record is kept and retried (its file's checkpoint waits for it)");
            self.reported_failures.insert(k, now);
        }
    }

    fn send_due_retries(&mut self, all: bool) {
        let now = Instant::now();
        let n = self.retries.len();
        for _ in 0..n {
            let Some(mut r) = self.retries.pop_front() else {
                break;
            };
            if !all && r.due > now {
                self.retries.push_back(r);
                continue;
            }
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut rec = BaseRecord::with_opaque_to(&r.topic, r.opaque)
                .payload(&r.payload)
                .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k);
            }
            if let Err((e, _)) = self.producer.send(rec) {
                self.log_failure(&r.topic.clone(), &e);
                r.backoff = (r.backoff * 2).min(RETRY_BACKOFF_MAX);
                r.due = now + r.backoff;
                self.retries.push_back(r);
            }
        }
    }

    /// Find files; open new identities, mark which known ones still have a
    /// matching name.
    fn scan(&mut self) {
        self.notices.retry_missing();
        for s in self.streams.iter_mut().flatten() {
            s.present = false;
        }
        for input in 0..self.discoveries.len() {
            // Rotated names first: at start they are recorded as history
            // before the current file's start position is taken, so a
            // rotation racing the first scan is seen as new, not as history.
            self.scan_rotated(input);
            let known = self.by_id.len();
            for found in self.discoveries[input].scan() {
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
            // out of sight, compressed or deleted while logferry was down.
            self.ledger
                .unfinish_unseen(&std::mem::take(&mut self.seen_at_start));
        }
        self.first_scan_done = true;
        self.scan_compressed();
        self.report_lost_generations();
        self.absent_stale = true;
        // Once per scan is often enough to let go of finished files, and
        // keeps the per-round work independent of how many files there are.
        self.retire_finished();
        self.rebalance_open_files();
    }

    /// Look for unfinished generations in compressed rotated files.
    fn scan_compressed(&mut self) {
        if !self.ledger.has_unfinished() {
            return;
        }
        for input in 0..self.compressed.len() {
            for found in self.compressed[input].scan() {
                if self.by_id.contains_key(&found.id) {
                    continue;
                }
                let Some(cp) = self
                    .ledger
                    .take_from_compressed(&found.path, found.id, &found.meta)
                else {
                    continue;
                };
                tracing::info!(path = %found.path.display(), generation = %cp.generation, offset = cp.position, was = %cp.path, "unfinished file found compressed; shipping the rest from it");
                let watcher = match FileWatcher::compressed(
                    &found.path,
                    found.id,
                    cp.position,
                    &self.framers[input],
                ) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(path = %found.path.display(), error = %e, "cannot read compressed file");
                        self.ledger.unfinish(cp);
                        continue;
                    }
                };
                self.add_stream(
                    input,
                    Role::Rotated,
                    &found.path,
                    found.id,
                    watcher,
                    Some(cp),
                );
            }
        }
    }

    /// Unfinished generations not found in time: what they held past the
    /// acknowledged position is lost. Said loudly, with the byte count.
    fn report_lost_generations(&mut self) {
        for cp in self.ledger.expire(Instant::now()) {
            let lost = cp.size.saturating_sub(cp.position);
            if lost > 0 {
                self.report.generations_lost += 1;
                self.report.bytes_lost += lost;
                let loss = logferry_tail::Loss {
                    time: now_unix(),
                    host: self.settings.host.clone(),
                    path: cp.path.clone(),
                    generation: cp.generation,
                    offset: cp.position,
                    bytes: lost,
                };
                if let Err(e) = self.checkpointer.record_loss(&loss) {
                    tracing::error!(error = %e, "loss not recorded");
                }
                tracing::error!(path = %cp.path, generation = %cp.generation, offset = cp.position, bytes = lost, "file vanished with bytes never shipped (deleted, or compressed in a form logferry cannot read, before it was read to the end): these bytes are lost");
            } else {
                tracing::debug!(path = %cp.path, generation = %cp.generation, "finished file no longer on disk");
            }
        }
    }

    fn scan_rotated(&mut self, input: usize) {
        for found in self.rotated[input].scan() {
            // A name both patterns match (`/dir/*` also matches `/dir/*.*`)
            // is a current file.
            if !self.discoveries[input].matches(&found.path) {
                self.consider(input, Role::Rotated, found);
            }
        }
    }

    fn consider(&mut self, input: usize, role: Role, found: Found) {
        if let Some(&slot) = self.by_id.get(&found.id) {
            let s = self.streams[slot]
                .as_mut()
                .expect("by_id points at a live slot");
            if role == Role::Current {
                s.present = true;
            }
            let at = s
                .watcher
                .as_ref()
                .map(FileWatcher::read_position)
                .or(s.parked);
            if at.is_some_and(|at| at != found.meta.len()) {
                s.wake = true;
                self.ready.push(slot);
            }
            let path = found.path.to_string_lossy();
            if s.path != path && (role == Role::Current || !s.present) {
                tracing::info!(from = %s.path, to = %path, "file renamed; following it by identity");
                s.path = path.into_owned();
                if let Some(w) = s.watcher.as_mut() {
                    w.set_path(&found.path);
                }
                self.by_path.insert(found.path.clone(), slot);
            }
            return;
        }
        // A file we finished (or saw at start under a rotated name) is only
        // reopened when it grew past what was shipped.
        let mut known = false;
        if let Some(cp) = self.ledger.resting(&found.id) {
            known = true;
            // Seen again: keep its entry from expiring.
            cp.updated = now_unix();
            if !self.first_scan_done {
                self.seen_at_start.insert(found.id);
            }
            if role == Role::Rotated && found.meta.len() == cp.position {
                return;
            }
        }
        if role == Role::Rotated && !self.first_scan_done && self.fresh_start && !known {
            // Rotated files present at start are history, not to be shipped;
            // remember them so that only their growth is read later.
            if let Ok(file) = open_log(&found.path) {
                let size = found.meta.len();
                let anchor = Anchor::read(&mut &file, size).ok().flatten();
                if let (Ok(fingerprint), Some(anchor)) = (Fingerprint::read(&file, size), anchor) {
                    self.ledger.rest(FileCheckpoint {
                        generation: GenerationId::new(),
                        id: found.id,
                        fingerprint,
                        anchor,
                        position: size,
                        size,
                        path: found.path.to_string_lossy().into_owned(),
                        updated: now_unix(),
                    });
                }
            }
            return;
        }
        self.open_stream(input, role, &found.path, found.id);
    }

    /// Where reading a newly found identity starts, and as which generation.
    ///
    /// Inodes are reused and files share headers, so a file is taken for a
    /// known generation only when its content proves it: the same head and
    /// the same bytes before the saved position ([`ledger::continues`]).
    fn start_of(
        &mut self,
        input: usize,
        role: Role,
        file: &File,
        path: &Path,
        id: FileId,
    ) -> Start {
        let Ok(meta) = file.metadata() else {
            return Start::New(0);
        };
        let size = meta.len();
        let Ok(head) = Head::read(file) else {
            return Start::New(0);
        };
        match self.ledger.resume(&id, &head, file, size) {
            Ok(Some(cp)) => {
                tracing::info!(path = %path.display(), generation = %cp.generation, offset = cp.position, "resuming from checkpoint");
                return Start::Known(cp);
            }
            Ok(None) => {}
            Err(old) => {
                tracing::info!(path = %path.display(), was = %old.path, "inode reused by another file (content differs from its checkpoint): a new file; the old one is looked for under rotated and compressed names");
            }
        }
        // A file of this input being read whose copy this is (copytruncate
        // copies, then cuts): wait until the original is found cut, then
        // the copy continues the original's generation from where it was
        // read to. Opening it before would read twice what the original
        // still serves. A file under a rotated name that holds a prefix of
        // one being read (empty included: cp creates the copy empty, then
        // fills it) is a copy being written and waits too. Under a current
        // name, a prefix is a new file that starts with the same header,
        // and an empty file is no copy of anything.
        if let Some(of) = self.copy_of_live(input, role, file, size) {
            return Start::Wait { copy_of: of };
        }
        if let Some(cp) = self.ledger.take_continued(&head, file, size) {
            tracing::info!(path = %path.display(), generation = %cp.generation, offset = cp.position, was = %cp.path, "file continues one already read (a copy, or renamed while logferry was stopped): reading only the part not yet read");
            return Start::Known(cp);
        }
        let at_start = !self.first_scan_done && self.fresh_start;
        Start::New(match (role, self.settings.inputs[input].start_at) {
            (Role::Current, StartAt::End) if at_start => size,
            _ => 0,
        })
    }

    /// The path of a file of `input` being read whose content `file`
    /// repeats: all of it up to where it was read (a complete copy), or, for
    /// a file under a rotated name, all of `file` (a copy being written).
    fn copy_of_live(&mut self, input: usize, role: Role, file: &File, size: u64) -> Option<String> {
        // Only files under current names are copied by copytruncate; an
        // empty file would otherwise "repeat" every rotated file still
        // draining and wait for nothing.
        // (`present` is being recomputed during a scan, so the path says
        // which files are current.)
        let current = &self.discoveries[input];
        for s in self.streams.iter_mut().flatten() {
            if s.input != input || !current.matches(Path::new(&s.path)) {
                continue;
            }
            let Some(w) = s.watcher.as_mut() else {
                continue;
            };
            let pos = w.read_position();
            if pos == 0 || w.is_compressed() {
                continue;
            }
            let whole_copy = size >= pos && w.same_content_until(file, pos);
            let partial_copy =
                role == Role::Rotated && size < pos && w.same_content_until(file, size);
            if whole_copy || partial_copy {
                return Some(s.path.clone());
            }
        }
        None
    }

    fn open_stream(&mut self, input: usize, role: Role, path: &Path, id: FileId) {
        let file = match open_log(path) {
            Ok(f) => f,
            Err(e) => {
                // Logged once per path and kind of error; retried each scan.
                if self.open_errors.insert((path.to_path_buf(), e.kind())) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open; retrying on every scan");
                }
                return;
            }
        };
        match file.metadata() {
            Ok(m) if FileId::of(&m) == id => {}
            _ => return, // Replaced between scan and open; the next scan sees the new one.
        }
        let (position, known) = match self.start_of(input, role, &file, path, id) {
            Start::Known(cp) => (cp.position, Some(cp)),
            Start::New(at) => (at, None),
            Start::Wait { copy_of } => {
                if self.copies_in_progress.insert(id) {
                    tracing::info!(path = %path.display(), copy_of = %copy_of, "file looks like a copy still being written, or a copy whose original is not cut yet (copytruncate); it is read once the original is found cut");
                }
                return;
            }
        };
        self.copies_in_progress.remove(&id);
        let watcher = match FileWatcher::new(path, file, position, &self.framers[input]) {
            Ok(w) => w,
            Err(e) => {
                if let Some(cp) = known {
                    self.ledger.rest(cp);
                }
                tracing::warn!(path = %path.display(), error = %e, "cannot follow; retrying on the next scan");
                return;
            }
        };
        self.add_stream(input, role, path, id, watcher, known);
    }

    /// Start following `watcher` as generation `known` (or a new one).
    fn add_stream(
        &mut self,
        input: usize,
        role: Role,
        path: &Path,
        id: FileId,
        mut watcher: FileWatcher,
        known: Option<FileCheckpoint>,
    ) {
        let position = watcher.read_position();
        let generation = known
            .as_ref()
            .map_or_else(GenerationId::new, |cp| cp.generation);
        let anchor = match &known {
            Some(cp) if cp.anchor.at <= position => cp.anchor,
            _ => watcher.anchor_at(position).unwrap_or_default(),
        };
        let size_seen = known.as_ref().map_or(position, |cp| cp.size.max(position));
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(UNIX_EPOCH);
        tracing::info!(path = %path.display(), id = %id, generation = %generation, offset = position, "following");
        let host = &self.settings.host;
        let stream = Stream {
            input,
            generation,
            id,
            tracker: AckTracker::new(position),
            fingerprint: watcher.fingerprint(),
            anchor,
            size_seen,
            path: path.to_string_lossy().into_owned(),
            present: role == Role::Current,
            source_tail: source_tail(host, path.as_os_str().as_bytes()),
            key: match self.settings.inputs[input].partition_by {
                PartitionBy::Host => host.clone().into_bytes(),
                _ => format!("{host}:{id}").into_bytes(),
            },
            topic: render_topic(&self.settings.inputs[input].topic, host, path),
            modified,
            parked: None,
            joiner: self.joiners[input].clone(),
            wake: true,
            last_data: Instant::now(),
            watcher: Some(watcher),
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.streams[slot] = Some(stream);
                slot
            }
            None => {
                self.streams.push(Some(stream));
                self.streams.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        self.by_path.insert(path.to_path_buf(), slot);
        self.ready.push(slot);
        self.absent_stale = true;
        self.open_files += 1;
        if self.open_files > self.settings.max_open_files {
            self.park(slot);
        }
    }

    /// Close a stream's file to free a descriptor, keeping its state.
    fn park(&mut self, slot: usize) {
        let Some(s) = self.streams[slot].as_mut() else {
            return;
        };
        if let Some(w) = s.watcher.take() {
            s.parked = Some(w.read_position());
            self.open_files -= 1;
        }
    }

    /// Reopen a parked stream by identity. False if the file behind its
    /// path is no longer that identity (the next scan finds it elsewhere).
    fn unpark(&mut self, slot: usize, path: &Path) -> bool {
        let Some(s) = self.streams[slot].as_mut() else {
            return false;
        };
        let Some(position) = s.parked else {
            return false;
        };
        let Ok(file) = open_log(path) else {
            return false;
        };
        if file.metadata().map(|m| FileId::of(&m)).ok() != Some(s.id) {
            return false;
        }
        match FileWatcher::new(path, file, position, &self.framers[s.input]) {
            Ok(w) => {
                if w.read_position() != position {
                    // Shorter than where we were: truncated while closed.
                    tracing::warn!(path = %path.display(), offset = position, "file truncated while closed; reading it again from offset 0");
                    s.tracker.truncated();
                }
                s.watcher = Some(w);
                s.parked = None;
                self.open_files += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Keep at most `max_open_files` open: park idle files (least recently
    /// active first) so that parked files with new data can be reopened.
    fn rebalance_open_files(&mut self) {
        let budget = self.settings.max_open_files;
        let waiting: Vec<usize> = (0..self.streams.len())
            .filter(|&i| matches!(&self.streams[i], Some(s) if s.parked.is_some() && s.wake))
            .collect();
        let free = budget.saturating_sub(self.open_files);
        let need = waiting.len().saturating_sub(free);
        if need > 0 {
            let mut idle: Vec<(Instant, usize)> = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    let w = s.watcher.as_ref()?;
                    // At EOF with nothing half-read: closing it loses
                    // nothing, and the least recently active go first. Busy
                    // files are not exempt, or thousands of files writing
                    // a line a second would starve the ones waiting.
                    let parkable = s.present
                        && !s.wake
                        && w.pending_bytes() == 0
                        && !s.joiner.as_ref().is_some_and(MultilineJoiner::is_open);
                    parkable.then_some((s.last_data, i))
                })
                .collect();
            idle.sort_unstable();
            for (_, slot) in idle.into_iter().take(need) {
                self.park(slot);
            }
        }
        for slot in waiting {
            if self.open_files >= budget {
                break;
            }
            let path = PathBuf::from(&self.streams[slot].as_ref().expect("listed above").path);
            self.unpark(slot, &path);
        }
    }

    fn report_missing_inputs(&self) {
        for (i, input) in self.settings.inputs.iter().enumerate() {
            let any = self.streams.iter().flatten().any(|s| s.input == i);
            if !any {
                tracing::info!(include = ?input.include, "no matching file yet; waiting for one to appear");
            }
        }
    }

    /// Say early, and plainly, if the brokers cannot be reached or a topic is
    /// missing. Neither is fatal: lines wait (bounded) and ship once fixed.
    fn check_cluster(&self) {
        for input in &self.settings.inputs {
            match self
                .producer
                .client()
                .fetch_metadata(Some(&input.topic), Duration::from_secs(5))
            {
                Err(e) => tracing::warn!(
                    brokers = %self.bootstrap,
                    error = %e,
                    "cannot reach the Kafka brokers yet; lines are kept and shipped once they answer"
                ),
                Ok(md) => {
                    let missing = md
                        .topics()
                        .iter()
                        .find(|t| t.name() == input.topic)
                        .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
                    if missing {
                        tracing::error!(
                            topic = %input.topic,
                            "topic does not exist on the cluster (logferry never creates topics); lines wait until it is created"
                        );
                    }
                }
            }
        }
    }

    /// Read one buffer from every open file that has data. Returns bytes
    /// read. Files rotated away are served first so that their last lines
    /// go out before the new file's first ones.
    fn read_round(&mut self, buf: &mut [u8]) -> usize {
        let mut total = 0;
        // Files no longer under a current name go first, oldest first, and
        // only one of them per input and round: an input's files are then
        // shipped in the order they were written, and its current file
        // waits until the rotated ones are drained.
        if self.absent_stale {
            self.absent = (0..self.streams.len())
                .filter(|&slot| matches!(&self.streams[slot], Some(s) if !s.present))
                .collect();
            self.absent_stale = false;
        }
        let mut rotated: Vec<(std::time::SystemTime, usize)> = self
            .absent
            .iter()
            .filter_map(|&slot| {
                let s = self.streams[slot].as_ref()?;
                (!s.present && s.watcher.is_some()).then_some((s.modified, slot))
            })
            .collect();
        rotated.sort_unstable();
        let mut draining = vec![false; self.settings.inputs.len()];
        // With notifications on, a write wakes its file, so only woken
        // files are read; without, recently active files are polled.
        let hot = if self.notices.active() {
            Duration::ZERO
        } else {
            HOT
        };
        // Parked (closed under the open-file budget) current files that
        // grew are read too: opened for the read and closed again, so that
        // thousands of busy files share the budget without waiting turns.
        let inputs = &self.settings.inputs;
        let due = |s: &Stream| {
            s.present
                && ((s.watcher.is_some()
                    && (s.wake || s.last_data.elapsed() < hot || waits_for_time(s, inputs)))
                    || (s.parked.is_some() && s.wake))
        };
        let indexed = self.notices.active();
        let current: Vec<usize> = if indexed {
            if self.ready_stale {
                self.ready = (0..self.streams.len()).collect();
                self.ready_stale = false;
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.sort_unstable();
            ready.dedup();
            ready.retain(|&slot| self.streams[slot].as_ref().is_some_and(due));
            ready
        } else {
            self.ready.clear();
            self.ready_stale = true;
            (0..self.streams.len())
                .filter(|&slot| self.streams[slot].as_ref().is_some_and(due))
                .collect()
        };
        let share = self.settings.max_inflight_bytes / self.settings.inputs.len().max(1);
        let order: Vec<usize> = rotated
            .into_iter()
            .map(|(_, slot)| slot)
            .chain(current.iter().copied())
            .collect();
        for slot in order {
            let Some(stream) = self.streams[slot].as_ref() else {
                continue;
            };
            let (input, present) = (stream.input, stream.present);
            let parked = stream.parked.is_some();
            if draining[input]
                || (stream.watcher.is_none() && !parked)
                || self.input_inflight[input] >= share
            {
                continue;
            }
            if parked {
                let path = PathBuf::from(&stream.path);
                if !self.unpark(slot, &path) {
                    continue; // Renamed or gone: the next scan finds out.
                }
            }
            // Read no more than fits in this input's share (at least 64 KiB,
            // so lines of any size make progress): the bound is overshot by
            // at most one small read.
            let room = (share - self.input_inflight[input]).clamp(64 << 10, buf.len());
            self.cut_seen = false;
            let n = self.read_stream(slot, &mut buf[..room]);
            if self.cut_seen {
                // Cut in place (copytruncate): the lines not yet read are in
                // the copy, under a rotated name. Find it now and let it be
                // drained before the new content, which is written after
                // them; otherwise a quick write after the cut would be
                // shipped first.
                self.scan_rotated(input);
                draining[input] = true;
            }
            if let Some(s) = self.streams[slot].as_mut() {
                if n > 0 {
                    s.last_data = Instant::now();
                }
                // Read to the end: a later write wakes it again (an event,
                // or a scan seeing the size differ from the position).
                if n == 0 || s.watcher.as_ref().is_some_and(FileWatcher::at_end) {
                    s.wake = false;
                }
            }
            if !present && n > 0 {
                draining[input] = true;
            }
            if parked {
                // A short read reached the end of the file: nothing more to
                // read until it grows again (saves reopening it to learn so).
                if n < room {
                    if let Some(s) = self.streams[slot].as_mut() {
                        s.wake = false;
                    }
                }
                // Close it again unless a line or record is half done.
                let idle = matches!(&self.streams[slot], Some(s) if s.watcher.as_ref().is_some_and(|w| w.pending_bytes() == 0)
                    && !s.joiner.as_ref().is_some_and(MultilineJoiner::is_open));
                if idle && self.open_files > self.settings.max_open_files.saturating_sub(1) {
                    self.park(slot);
                }
            }
            total += n;
        }
        if indexed {
            // Still woken (more to read, or skipped this round) or holding
            // an open record: visit again next round.
            for slot in current {
                if self.streams[slot].as_ref().is_some_and(|s| {
                    s.present && (s.wake || waits_for_time(s, &self.settings.inputs))
                }) {
                    self.ready.push(slot);
                }
            }
        }
        total
    }

    fn read_stream(&mut self, slot: usize, buf: &mut [u8]) -> usize {
        let Shipper {
            settings,
            producer,
            streams,
            inflight,
            retries,
            payload_scratch,
            source_scratch,
            report,
            ledger,
            cut_seen,
            size_caps,
            open_files,
            key_patterns,
            input_inflight,
            ..
        } = self;
        let stream = streams[slot].as_mut().expect("slot checked by caller");
        let input = &settings.inputs[stream.input];
        let Stream {
            watcher,
            tracker,
            source_tail,
            key,
            id,
            generation,
            joiner,
            topic,
            path,
            input: stream_input,
            ..
        } = stream;
        let stream_input = *stream_input;
        let w = watcher.as_mut().expect("watcher checked by caller");
        let mut sink = Sink {
            producer,
            topic,
            format: &input.format,
            host: &settings.host,
            path,
            read_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            key: match &input.partition_by {
                PartitionBy::None => RecordKey::None,
                PartitionBy::File | PartitionBy::Host => RecordKey::Fixed(key.as_slice()),
                PartitionBy::Pattern(_) => match &key_patterns[stream_input] {
                    Some(re) => RecordKey::Pattern(re),
                    None => RecordKey::None,
                },
            },
            source: (*generation, *id, source_tail.as_slice()),
            attribution: settings.attribution,
            static_headers: &input.headers,
            slot,
            tracker,
            inflight,
            input_inflight: &mut input_inflight[stream_input],
            retries,
            payload_scratch,
            source_scratch,
            report,
            size_cap: size_caps.entry(topic.clone()).or_insert(usize::MAX),
        };
        // Lines go through the joiner when the input is multiline.
        let mut deliver = |line: Line<'_>, sink: &mut Sink<'_>| match joiner.as_mut() {
            Some(j) => j.push(line, |rec| sink.send(rec)),
            None => sink.send(line),
        };
        let outcome = w.read(buf, |line| deliver(line, &mut sink));
        match outcome {
            Ok(Poll::Read(n)) => {
                stream.fingerprint = w.fingerprint();
                n
            }
            Ok(Poll::Truncated { at }) => {
                // The old content's last record is complete: ship it.
                if let Some(j) = joiner.as_mut() {
                    j.flush(|rec| sink.send(rec));
                }
                // The generation read so far continues in its copy (if
                // copytruncate made one): look for it by content, from
                // where reading had got to. This file is a new generation.
                let old = stream.generation;
                *cut_seen = true;
                ledger.unfinish(FileCheckpoint {
                    generation: old,
                    id: stream.id,
                    fingerprint: stream.fingerprint,
                    anchor: w.take_cut_anchor().unwrap_or(Anchor {
                        at,
                        ..stream.anchor
                    }),
                    position: at,
                    size: stream.size_seen.max(at),
                    path: stream.path.clone(),
                    updated: now_unix(),
                });
                stream.generation = GenerationId::new();
                stream.size_seen = 0;
                stream.anchor = Anchor::default();
                tracing::warn!(path = %stream.path, offset = at, was = %old, generation = %stream.generation, "file truncated (copytruncate or rewritten): a new generation, read from offset 0; the old one continues in its copy if there is one");
                stream.tracker.truncated();
                stream.fingerprint = w.fingerprint();
                1 // Progress: read again at once.
            }
            Ok(Poll::Eof) => {
                let idle = w.idle_for();
                let flush_after = input.partial_flush;
                let gone = !stream.present && idle >= settings.rotate_grace;
                if w.pending_bytes() > 0 && (gone || flush_after.is_some_and(|d| idle >= d)) {
                    // An unterminated last line that will never (or not soon)
                    // be completed is shipped as it is.
                    w.flush_partial(|line| deliver(line, &mut sink));
                }
                if let Some(j) = joiner.as_mut() {
                    if gone {
                        j.flush(|rec| sink.send(rec));
                    } else {
                        j.flush_if_idle(|rec| sink.send(rec));
                    }
                }
                if gone {
                    tracing::info!(path = %stream.path, id = %stream.id, "rotated-away or deleted file drained; closing it");
                    *watcher = None;
                    *open_files -= 1;
                }
                0
            }
            Err(e) => {
                tracing::warn!(error = %e, "read failed; closing the file, it is reopened on the next scan");
                *watcher = None;
                *open_files -= 1;
                0
            }
        }
    }

    /// Drop streams whose file is closed and whose records are all acked,
    /// keeping their final position in case the file is found again.
    fn retire_finished(&mut self) {
        for slot in 0..self.streams.len() {
            // Drained and closed, or parked under a name no longer current
            // with nothing new: done once its last record is acked.
            let done = matches!(&self.streams[slot], Some(s) if s.watcher.is_none()
                && (s.parked.is_none() || (!s.present && !s.wake))
                && s.tracker.in_flight() == 0
                && !self.retries.iter().any(|r| r.opaque >> SEQ_BITS == slot));
            if !done {
                continue;
            }
            let mut s = self.streams[slot].take().expect("checked above");
            self.by_id.remove(&s.id);
            if self.by_path.get(Path::new(&s.path)) == Some(&slot) {
                self.by_path.remove(Path::new(&s.path));
            }
            self.free_slots.push(slot);
            s.refresh_anchor();
            let cp = s.checkpoint(now_unix());
            if s.watcher.is_none() && s.parked.is_some() && cp.size > cp.position {
                // Closed under the descriptor budget and renamed away
                // before it was read to the end: find it by content.
                self.ledger.unfinish(cp);
            } else {
                self.ledger.rest(cp);
            }
        }
    }

    /// Persist acked positions if any moved.
    fn checkpoint(&mut self) {
        let now = now_unix();
        for s in self.streams.iter_mut().flatten() {
            s.refresh_anchor();
        }
        let mut entries: Vec<FileCheckpoint> = self
            .streams
            .iter()
            .flatten()
            .map(|s| s.checkpoint(now))
            .collect();
        self.ledger.forget_older_than(now, RESTORED_TTL);
        entries.extend(self.ledger.entries().cloned());
        entries.sort_by_key(|e| (e.id, e.generation));
        let summary: Vec<(GenerationId, u64, u64)> = entries
            .iter()
            .map(|e| (e.generation, e.position, e.size))
            .collect();
        if summary == self.last_saved && self.checkpointer.path().exists() {
            return;
        }
        match self.checkpointer.save(&entries) {
            Ok(()) => self.last_saved = summary,
            Err(e) => {
                self.report.checkpoint_failures += 1;
                tracing::error!(error = %e, "checkpoint not saved; retrying at the next interval");
            }
        }
    }

    /// Serve what librdkafka has queued (one non-blocking poll serves one
    /// event, e.g. the delivery reports of one produce response); whether
    /// any delivery report came.
    fn serve_queued_events(&self) -> bool {
        let ctx = self.producer.context();
        let start = ctx.reports_waiting();
        for _ in 0..MAX_EVENTS_PER_SERVICE {
            let before = ctx.reports_waiting();
            self.producer.poll(Duration::ZERO);
            if ctx.reports_waiting() == before {
                break;
            }
        }
        ctx.reports_waiting() != start
    }

    fn unacked(&self) -> usize {
        self.streams
            .iter()
            .flatten()
            .map(|s| s.tracker.in_flight())
            .sum()
    }

    /// Stop reading, wait (bounded) for in-flight records, checkpoint.
    fn drain(mut self) -> ShipReport {
        // What each file holds now: if one vanishes before the next start,
        // the bytes past its acknowledged position are a known loss.
        for s in self.streams.iter_mut().flatten() {
            if let Some(size) = s.watcher.as_ref().and_then(|w| w.size().ok()) {
                s.size_seen = s.size_seen.max(size);
            }
        }
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        self.send_due_retries(true);
        while self.unacked() > 0 && Instant::now() < deadline {
            self.service(Duration::from_millis(20));
            self.send_due_retries(false);
        }
        self.checkpoint();
        let left = self.unacked();
        self.report.unacked_at_exit = left as u64;
        if left > 0 {
            tracing::warn!(
                records = left,
                "records not acknowledged before the shutdown timeout; they are re-read from the checkpoint at the next start"
            );
        }
        tracing::info!(
            lines = self.report.lines_acked,
            bytes = self.report.bytes_acked,
            "shipped and acknowledged; stopped"
        );
        self.report.clone()
    }
}

fn is_size_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// Set the truncated flag in a copied record's source, wherever the
/// attribution put it (a plain key is never touched).
fn mark_truncated(
    attribution: Attribution,
    key: Option<&mut Vec<u8>>,
    headers: &mut [(String, Vec<u8>)],
) {
    match (attribution, key) {
        (Attribution::Key, Some(k)) => encode::mark_truncated(k),
        (Attribution::Header, _) => {
            for (k, v) in headers {
                if k == SOURCE_HEADER {
                    encode::mark_truncated(v);
                }
            }
        }
        _ => {}
    }
}

/// How one record's key is found.
enum RecordKey<'a> {
    None,
    Fixed(&'a [u8]),
    Pattern(&'a regex::bytes::Regex),
}

impl RecordKey<'_> {
    fn for_line<'l>(&'l self, line: &'l [u8]) -> Option<&'l [u8]> {
        match self {
            RecordKey::None => None,
            RecordKey::Fixed(k) => Some(k),
            RecordKey::Pattern(re) => {
                let caps = re.captures(line)?;
                caps.name("key")
                    .or_else(|| caps.get(1))
                    .map(|m| &line[m.range()])
            }
        }
    }
}

/// Render a topic template for one file: `{host}`, `{file_name}`,
/// `{file_stem}`, `{dir}`. Characters a topic name cannot hold become `_`.
pub fn render_topic(template: &str, host: &str, path: &Path) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let rendered = template
        .replace("{host}", host)
        .replace("{file_name}", &name)
        .replace("{file_stem}", &stem)
        .replace("{dir}", &dir);
    rendered
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Everything needed to turn one framed line into a record, borrowed from
/// the [`Shipper`] for the duration of one read.
struct Sink<'a> {
    producer: &'a ShipProducer,
    topic: &'a str,
    format: &'a encode::Format,
    host: &'a str,
    path: &'a str,
    read_at_ms: u64,
    key: RecordKey<'a>,
    /// The file's generation and identity, and the host-and-path part of
    /// its source.
    source: (GenerationId, FileId, &'a [u8]),
    attribution: Attribution,
    /// The input's static headers.
    static_headers: &'a [(String, String)],
    slot: usize,
    tracker: &'a mut AckTracker,
    inflight: &'a mut usize,
    /// This input's part of `inflight`.
    input_inflight: &'a mut usize,
    retries: &'a mut VecDeque<Retry>,
    payload_scratch: &'a mut Vec<u8>,
    /// The encoded source: the key form or the `lf` header value.
    source_scratch: &'a mut Vec<u8>,
    report: &'a mut ShipReport,
    /// Learned size limit of this topic, if any.
    size_cap: &'a mut usize,
}

impl Sink<'_> {
    fn send(&mut self, line: Line<'_>) {
        let seq = self.tracker.sent(line.end);
        let opaque = (self.slot << SEQ_BITS) | (seq as usize & ((1 << SEQ_BITS) - 1));
        let (generation, id, tail) = self.source;
        let source = encode::LineSource {
            host: self.host,
            path: self.path,
            generation,
            id,
            offset: line.start,
            read_at_ms: self.read_at_ms,
        };
        let full = self
            .format
            .payload(line.bytes, &source, self.payload_scratch);
        let mut counted = false;
        // Each pass builds the record afresh: a pass ends when librdkafka
        // takes the record, or when it must be cut to fit (then the source
        // says so) or waited for.
        loop {
            let payload = &full[..full.len().min(*self.size_cap)];
            let truncated = line.truncated || payload.len() < full.len();
            let partition_key = self.key.for_line(line.bytes);
            let mut rec = BaseRecord::with_opaque_to(self.topic, opaque).payload(payload);
            match self.attribution {
                Attribution::Key => encode_source_key(
                    self.source_scratch,
                    partition_key.unwrap_or_default(),
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Header => encode_source(
                    self.source_scratch,
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Off => {}
            }
            let encoded = self.source_scratch.as_slice();
            let source_header = self.attribution == Attribution::Header;
            if self.attribution == Attribution::Key {
                rec = rec.key(encoded);
            } else if let Some(k) = partition_key {
                rec = rec.key(k);
            }
            if source_header || !self.static_headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(self.static_headers.len() + 1);
                if source_header {
                    headers = headers.insert(Header {
                        key: SOURCE_HEADER,
                        value: Some(encoded),
                    });
                }
                for (name, value) in self.static_headers {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
                rec = rec.headers(headers);
            }
            if !counted {
                let cost = record_cost(rec.key.map_or(0, <[u8]>::len), payload.len());
                *self.inflight += cost;
                *self.input_inflight += cost;
                self.report.lines_sent += 1;
                counted = true;
            }
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's own queue is full: let it drain
                    // (served without rdkafka's spinning timed poll).
                    self.producer.poll(Duration::ZERO);
                    std::thread::sleep(SERVICE_NAP);
                }
                Err((
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                    back,
                )) if back.payload.is_some_and(|p| p.len() > 1) => {
                    // Over the client's message.max.bytes: cut to fit, flag
                    // it, and send again at once.
                    let len = back.payload.map_or(0, <[u8]>::len);
                    let keep = len * 3 / 4;
                    *self.size_cap = (*self.size_cap).min(keep);
                    *self.inflight = self.inflight.saturating_sub(len - keep);
                    *self.input_inflight = self.input_inflight.saturating_sub(len - keep);
                    tracing::warn!(topic = %self.topic, bytes = keep, "record over the client's message.max.bytes; shipping it truncated");
                }
                Err((error, back)) => {
                    // Rejected before queueing (unknown topic, size limit):
                    // keep it and retry later; never drop it.
                    tracing::error!(topic = %self.topic, %error, "record not accepted by the producer; kept for retry");
                    self.report.delivery_failures += 1;
                    let headers = back
                        .headers
                        .as_ref()
                        .map(|hs| {
                            use rdkafka::message::Headers;
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    self.retries.push_back(Retry {
                        due: Instant::now() + Duration::from_secs(1),
                        backoff: Duration::from_secs(1),
                        opaque,
                        topic: self.topic.to_string(),
                        key: back.key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec).unwrap_or_default(),
                        headers,
                    });
                    return;
                }
            }
        }
    }
}
