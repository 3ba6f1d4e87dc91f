//! `logferry ship`: the loop that joins the file side and the Kafka side.
//!
//! ```text
//! Tailer (logferry-tail): discover -> identify -> follow -> frame
//!     | lines, tagged (slot, seq)
//! Outbox: encode -> produce -> retry --acks (slot, seq)--> Tailer
//!     | positions (every earlier line acknowledged)
//! Checkpointer
//! ```
//!
//! One thread is enough and is the cheapest: reading and framing run at
//! GB/s, librdkafka does compression and network I/O on its own threads, and
//! delivery reports arrive on this thread when it polls, so the trackers and
//! checkpoints need no locking.
//!
//! # Invariants
//! - Per-file state is keyed by generation, never by path (see the
//!   `logferry-tail` crate).
//! - A checkpoint names only positions whose every earlier line was acked.
//! - A record is never dropped: a failed delivery is retried (with backoff)
//!   and keeps its file's checkpoint from moving past it.
//! - In-flight records are bounded by `max_inflight_bytes`; at the bound,
//!   reading pauses and memory stays flat while Kafka is slow or down.

mod backfill;
pub mod descriptors;
mod inflight;
mod observe;
pub mod outbox;
pub mod partition;
pub mod positions;
pub mod produce;
mod reload;
mod sending;
pub mod throttle;
mod topic_handles;
pub mod transaction;

use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_tail::{
    CheckpointError, Checkpointer, FileCheckpoint, LongLinePolicy, MultilineJoiner, ScanOutcome,
    TailInput, TailSettings, Tailer, TailerError,
};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use crate::config::ShipSettings;
use crate::metrics::ShipExposition;
use crate::shutdown::Shutdown;
use observe::{CheckpointState, Observer};
use outbox::Outbox;
use throttle::{Throttle, Throttled};
use transaction::Transaction;

/// One read per file per round; large reads keep syscalls per GB low.
const READ_BUF: usize = 1 << 20;
/// How long the loop sleeps when nothing waits on time but file-system
/// events (`Tailer::quiet`) and nothing is in flight: a write still wakes
/// it at once. At `IDLE_WAIT` an idle agent woke 100 times a second (about
/// 0.5 % of a core).
const QUIET_WAIT: Duration = Duration::from_millis(100);
/// How long the loop sleeps when no file had new data. Bounds the added
/// latency of an append.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// librdkafka statistics period when metrics are on.
const STATS_INTERVAL_MS: &str = "1000";
/// How long a vanished file is looked for before it is declared lost.
const UNFINISHED_TTL: Duration = Duration::from_secs(60);
/// For this long after a start, checkpoints are written more often: the
/// first acks after a start are saved soon, and a crash loop (killed every
/// second, say, while it catches up on a backlog) re-sends little instead
/// of everything since it started.
const START_FAST_CHECKPOINTS: Duration = Duration::from_secs(3);
/// How often then, at the most: every 100 ms, or 20 times what a checkpoint
/// costs, whichever is longer (with 10,000 files a checkpoint costs tens of
/// milliseconds, and writing one every 100 ms was a tenth of the CPU).
const START_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
const START_CHECKPOINT_COST_FACTOR: u32 = 20;
/// Least time between two checkpoints written for new generations
/// (write-ahead): a rotation storm or thousands of new files share writes.
const WRITE_AHEAD_SPACING: Duration = Duration::from_millis(20);
/// A checkpoint names every file followed: with 200,000 files one cost
/// several tenths of a second, and written every second (or every 20 ms
/// while new files waited for their write-ahead) checkpoints took most of
/// the time. The next periodic one waits at least this many times what the
/// last one cost, so they stay below a tenth of the time whatever the
/// number of files, and a write-ahead one `WRITE_AHEAD_COST_FACTOR` times
/// (new files wait that long for their first lines, and share the write).
/// With a few thousand files a checkpoint costs milliseconds and the
/// configured interval rules.
const CHECKPOINT_COST_FACTOR: u32 = 10;
/// How often free heap memory is handed back to the system (see
/// [`give_back_free_memory`]).
const TRIM_INTERVAL: Duration = Duration::from_secs(10);
const WRITE_AHEAD_COST_FACTOR: u32 = 3;

/// What decides whether a checkpoint changed (each entry's generation,
/// position, size and head length), hashed: kept as a list it was 32 bytes
/// per followed file. Should two different lists ever hash alike, that
/// checkpoint is not written and the next change writes it: positions only
/// move forward, so a crash in between re-sends lines, never loses any.
fn checkpoint_summary(entries: &[FileCheckpoint]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entries.len().hash(&mut h);
    for e in entries {
        (e.generation.0, e.position, e.size, e.fingerprint.len).hash(&mut h);
    }
    h.finish()
}

/// Allocations of 256 KiB and more get pages of their own, given back when
/// freed. glibc's default raises that bound to the largest block freed (up
/// to 32 MiB): each checkpoint's list of entries (168 bytes a file) then
/// came from the heap, among the files' long-lived state, and the heap kept
/// it. With 200,000 files this took the settled RSS from 250 to 206 MB.
fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Hand free heap pages back to the system. Records queued in librdkafka
/// and each checkpoint's entries (one per file followed) are freed in
/// thousands of small pieces that glibc keeps: with 50,000 files, 40 MB of
/// the agent's 120 MB resident were free memory after the first backlog. A
/// trim costs a walk of the free lists, milliseconds every few seconds.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heap; it
    // touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Tailer(#[from] TailerError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Positions(#[from] positions::PositionsError),
    #[error("fenced: another logferry with the same transactional.id \"{id}\" took over (two agents on the same positions?); stopping, nothing of this one's open transaction becomes visible ({reason})")]
    Fenced { id: String, reason: String },
    #[error("the transactional producer \"{id}\" hit a fatal error; stopping (a restart resumes from the committed positions): {reason}")]
    TransactionFatal { id: String, reason: String },
}

/// Counters reported at shutdown (and by tests).
#[derive(Debug, Default, Clone)]
pub struct ShipReport {
    pub lines_sent: u64,
    pub lines_acked: u64,
    pub bytes_acked: u64,
    pub delivery_failures: u64,
    /// Records sent again after a failed delivery (each attempt).
    pub retries: u64,
    pub checkpoint_writes: u64,
    pub checkpoint_failures: u64,
    /// Records still unacknowledged when the shutdown timeout expired; they
    /// are re-read from the checkpoint at the next start.
    pub unacked_at_exit: u64,
    /// Producers replaced after a fatal error.
    pub producer_restarts: u64,
    /// Exactly-once mode: transactions committed, and aborted (their
    /// lines read again).
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Generations that vanished with bytes never shipped, and those bytes.
    pub generations_lost: u64,
    pub bytes_lost: u64,
}

pub struct Shipper {
    settings: ShipSettings,
    tailer: Tailer,
    outbox: Outbox,
    checkpointer: Checkpointer,
    /// A hash of what the last saved checkpoint held, to skip writing an
    /// unchanged one (see [`checkpoint_summary`]).
    last_saved: Option<u64>,
    /// Since when checkpoints fail to be written, and the last error.
    checkpoint_failing: Option<(Instant, String)>,
    /// Fills the metrics snapshot, when metrics are on.
    observer: Option<Observer>,
    /// The read rate limits; None without any.
    throttle: Option<Throttle>,
    /// The loop's own counters (checkpoints, losses, what was left at
    /// exit); the Outbox keeps those of records.
    counters: LoopCounters,
    /// The open transaction, in exactly-once mode.
    txn: Option<Transaction>,
    /// Shows how far backfill got.
    backfill: backfill::BackfillReport,
    /// SIGHUP: where the configuration is re-read from, and a reload
    /// waiting for in-flight lines to settle.
    reload: reload::Reload,
}

/// What the shipping loop counts itself.
#[derive(Debug, Default, Clone, Copy)]
struct LoopCounters {
    checkpoint_writes: u64,
    checkpoint_failures: u64,
    unacked_at_exit: u64,
    generations_lost: u64,
    bytes_lost: u64,
    transactions_committed: u64,
    transactions_aborted: u64,
}

/// librdkafka's own default for `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room left in a record for its key (the source attribution, with host and
/// path) and librdkafka's per-record overhead.
const RECORD_RESERVE: usize = 16 << 10;

/// The longest piece a split line may be cut into so that its record fits
/// the producer's `message.max.bytes`: a piece over it would be refused and
/// could only be cut short, losing bytes. A JSON value can grow past the
/// line (escapes, base64), so its pieces get half the room.
fn split_piece_limit(settings: &ShipSettings, input: &crate::config::InputSettings) -> usize {
    let max_message = settings
        .kafka_props
        .iter()
        .rev()
        .find(|(k, _)| k == "message.max.bytes")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    let room = max_message.saturating_sub(RECORD_RESERVE);
    let room = match &input.format {
        crate::wire::Format::Raw => room,
        crate::wire::Format::Tail2Kafka { meta } => room.saturating_sub(meta.len() + 2),
        crate::wire::Format::Json { .. } => room / 2,
    };
    room.max(1)
}

/// The settings as the shipper runs them (at start and on reload): the
/// producer's statistics on when metrics are, and the transactional
/// properties in exactly-once mode, before the user's own (which win).
fn effective(mut settings: ShipSettings) -> ShipSettings {
    if settings.metrics.is_some()
        && !settings
            .kafka_props
            .iter()
            .any(|(k, _)| k == "statistics.interval.ms")
    {
        // Broker state and latency come from librdkafka's statistics;
        // once a second is plenty for a scrape and costs one small JSON
        // parse. A user's own setting (later in the list) wins.
        settings.kafka_props.insert(
            0,
            ("statistics.interval.ms".into(), STATS_INTERVAL_MS.into()),
        );
    }
    if let Some(eo) = &settings.exactly_once {
        let id = transaction::transactional_id(&settings, eo);
        let mut props = transaction::producer_props(&id);
        props.append(&mut settings.kafka_props);
        settings.kafka_props = props;
    }
    settings
}

/// The file side's settings, from the validated ones.
fn tail_settings(settings: &ShipSettings) -> TailSettings {
    let mut inputs = Vec::new();
    for input in &settings.inputs {
        let multiline = input
            .multiline
            .as_ref()
            .map(|m| MultilineJoiner::new(m.start.regex().clone(), m.timeout, m.max_bytes));
        inputs.push(TailInput {
            include: input.include.clone(),
            exclude: input.exclude.clone(),
            start_at: input.start_at,
            max_line_bytes: match input.long_lines {
                LongLinePolicy::Split => {
                    input.max_line_bytes.min(split_piece_limit(settings, input))
                }
                LongLinePolicy::Truncate => input.max_line_bytes,
            },
            long_lines: input.long_lines,
            strip_cr: input.strip_cr,
            pack_bytes: input.pack_bytes,
            partial_flush: input.partial_flush,
            multiline,
            rotated: input.rotated.clone(),
            backfill: input.backfill,
        });
    }
    TailSettings {
        inputs,
        scan_interval: settings.scan_interval,
        rotate_grace: settings.rotate_grace,
        max_open_files: descriptors::fit_open_files(settings.max_open_files),
        unfinished_ttl: unfinished_ttl(),
    }
}

/// How long a vanished file is looked for before it is declared lost.
#[cfg(not(feature = "test-hooks"))]
fn unfinished_ttl() -> Duration {
    UNFINISHED_TTL
}

/// How long a vanished file is looked for before it is declared lost: tests
/// shorten it with LOGFERRY_UNFINISHED_TTL_SECS (unvalidated, so only a
/// build with the `test-hooks` feature reads it).
#[cfg(feature = "test-hooks")]
fn unfinished_ttl() -> Duration {
    std::env::var("LOGFERRY_UNFINISHED_TTL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(UNFINISHED_TTL, Duration::from_secs)
}

/// The Tailer, from the local checkpoint (at start, and in exactly-once
/// mode after an abort, when it holds the last committed positions).
/// `fresh_start`: logferry never ran on this state directory (files
/// rotated before it are history).
fn open_tailer(
    settings: &ShipSettings,
    checkpointer: &Checkpointer,
    fresh_start: bool,
) -> Result<Tailer, ShipError> {
    let (saved, examined_until) = checkpointer.load_with_watermark()?;
    if !saved.is_empty() {
        tracing::info!(files = saved.len(), path = %checkpointer.path().display(), "loaded checkpoints");
    }
    // Compressed files modified after the watermark are examined for
    // generations born while logferry was not looking; a checkpoint
    // from before the watermark existed: its own modification time.
    let saved_at = match examined_until {
        Some(ns) => Ok(std::time::UNIX_EPOCH + Duration::from_nanos(ns)),
        None => std::fs::metadata(checkpointer.path()).and_then(|m| m.modified()),
    };
    let mut tailer = Tailer::new(tail_settings(settings), saved, fresh_start)?;
    match saved_at {
        Ok(t) if !fresh_start => tailer.examine_compressed_since(t),
        _ => {}
    }
    if fresh_start {
        // Say at once that logferry has started here: killed before its
        // first checkpoint, the next start is not a first start, and
        // the files rotated in between (the one current now among
        // them) are shipped rather than taken for history. (In
        // exactly-once mode too: no positions is what was committed.)
        if let Err(e) = checkpointer.save_with_watermark(&[], Some(tailer.examined_until())) {
            tracing::error!(error = %e, "checkpoint not saved; retrying at the next interval");
        }
    }
    Ok(tailer)
}

impl Shipper {
    /// Load checkpoints and create the producer. Nothing is read until
    /// [`run`](Self::run).
    pub fn new(settings: ShipSettings, bootstrap: &str) -> Result<Self, ShipError> {
        let settings = effective(settings);
        let eo = settings.exactly_once.clone();
        let id = eo
            .as_ref()
            .map(|eo| transaction::transactional_id(&settings, eo));
        let checkpointer = Checkpointer::new(&settings.checkpoint_dir)?;
        let mut fresh_start = !checkpointer.path().exists();
        if fresh_start && eo.is_some() {
            // Claiming the transactional id and reading the positions back
            // takes a while; killed meanwhile, the next start must not be a
            // first start, or a file rotated in between would be taken for
            // history. No positions is what is committed so far.
            if let Err(e) = checkpointer.save_with_watermark(&[], None) {
                tracing::error!(error = %e, "checkpoint not saved; retrying at the next interval");
            }
        }
        let outbox = Outbox::new(settings.clone(), bootstrap)?;
        let per_input: Vec<Option<u64>> = settings
            .inputs
            .iter()
            .map(|i| i.max_bytes_per_sec)
            .collect();
        let throttle = Throttle::new(settings.max_bytes_per_sec, &per_input, Instant::now());
        // Exactly once: the committed positions become the local checkpoint
        // before the Tailer loads it.
        let txn = match (&eo, id) {
            (Some(eo), Some(id)) => Some(Transaction::start(
                &settings,
                eo,
                id,
                &outbox,
                &checkpointer,
            )?),
            _ => None,
        };
        if txn.as_ref().is_some_and(Transaction::restored) {
            fresh_start = false;
        }
        let tailer = open_tailer(&settings, &checkpointer, fresh_start)?;
        Ok(Shipper {
            settings,
            tailer,
            outbox,
            checkpointer,
            last_saved: None,
            checkpoint_failing: None,
            observer: None,
            throttle,
            counters: LoopCounters::default(),
            txn,
            backfill: backfill::BackfillReport::new(),
            reload: reload::Reload::default(),
        })
    }

    /// Publish figures to `exposition` while running (a few times a
    /// second), with the per-file view bounded to `top_files` files.
    pub fn with_metrics(mut self, exposition: Arc<ShipExposition>, top_files: usize) -> Self {
        self.reload.exposition = Some(Arc::clone(&exposition));
        self.observer = Some(Observer::new(exposition, top_files));
        self
    }

    fn observe(&mut self, now: Instant) {
        let Some(observer) = self.observer.as_mut().filter(|o| o.due(now)) else {
            return;
        };
        observer.observe(
            now,
            &self.tailer,
            &self.outbox,
            CheckpointState {
                writes: self.counters.checkpoint_writes,
                failures: self.counters.checkpoint_failures,
                transactions: (
                    self.counters.transactions_committed,
                    self.counters.transactions_aborted,
                ),
                failing: self
                    .checkpoint_failing
                    .as_ref()
                    .map(|(t, e)| (*t, e.as_str())),
            },
        );
    }

    /// Bytes written to followed files and not acknowledged (the stop
    /// line's "lag left").
    pub fn lag_bytes(&self) -> u64 {
        self.tailer.files().map(|f| f.lag()).sum()
    }

    /// Ship until `shutdown` is requested, then drain and checkpoint.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<ShipReport, ShipError> {
        let mut buf = vec![0u8; READ_BUF];
        self.scan();
        // The first checkpoint is written at once: from now on a restart is
        // not a fresh start, so files that appear while logferry is down
        // are read from their beginning, not treated as history.
        match self.txn {
            Some(_) => self.boundary(shutdown)?,
            None => self.checkpoint(),
        }
        self.tailer.report_missing_inputs();
        self.check_cluster();
        let started = Instant::now();
        let fast_until = started + START_FAST_CHECKPOINTS;
        let mut next_checkpoint = started
            + self
                .settings
                .checkpoint_interval
                .min(START_CHECKPOINT_INTERVAL);
        let mut next_write_ahead = started;
        let mut next_trim = started + TRIM_INTERVAL;
        map_large_allocations();
        while !shutdown.is_requested() {
            let now = Instant::now();
            self.poll_reload();
            let outbox = &self.outbox;
            let outcome = self.tailer.tick(&|slot| outbox.holds(slot));
            self.after_scan(outcome);
            self.outbox.stamp_read_time();
            let read = match self.throttle.as_mut() {
                // A reload waits for every line handed out to be
                // acknowledged: nothing more is read meanwhile.
                _ if self.reload.pending.is_some() => 0,
                Some(throttle) => {
                    throttle.refill(Instant::now());
                    let mut sink = Throttled {
                        sink: &mut self.outbox,
                        throttle,
                    };
                    self.tailer.read_round(&mut buf, &mut sink)
                }
                None => self.tailer.read_round(&mut buf, &mut self.outbox),
            };
            #[cfg(feature = "test-hooks")]
            self.outbox.inject_fatal_error();
            self.service(Duration::ZERO)?;
            self.outbox.send_due_retries(false);
            let stream_held = self.outbox.take_stream_held();
            if self.outbox.inflight() >= self.settings.max_inflight_bytes {
                // Backpressure: wait for acks instead of reading more.
                self.service(Duration::from_millis(50))?;
            } else if read == 0 && stream_held {
                // A file at its own bound (`inflight::stream_bounds`) goes
                // on when its partition's request is acknowledged: wait
                // for that, not for a file-system event.
                self.service(IDLE_WAIT)?;
            } else if read == 0 {
                match self.throttle.as_ref().and_then(Throttle::held_for) {
                    // Held back by the rate limit: sleep until a bucket
                    // holds a read's worth. Waiting on file-system events
                    // instead would wake at every write of a busy file
                    // only to find no room.
                    Some(wait) => std::thread::sleep(wait.min(IDLE_WAIT)),
                    // Idle: sleep on file-system events, not in
                    // librdkafka's poll. rdkafka's `poll(timeout)` keeps
                    // polling until the deadline and spins on zero-timeout
                    // polls for its last millisecond, which at low rates
                    // cost more CPU than the shipping itself (40 % of it
                    // in clock_gettime). Delivery reports wait at most
                    // IDLE_WAIT.
                    None => {
                        let quiet = self.outbox.inflight() == 0 && self.tailer.quiet();
                        let wait = if quiet {
                            QUIET_WAIT.min(self.tailer.until_scan())
                        } else {
                            IDLE_WAIT
                        };
                        self.tailer.wait(wait)
                    }
                }
                self.service(Duration::ZERO)?;
            }
            if let Some(due) = self.txn.as_ref().map(|t| t.due) {
                // Exactly once: positions are committed with the lines, at
                // each boundary; a new generation's head is committed
                // before its first line is handed out (write-ahead), and a
                // failed record aborts its transaction at once.
                let write_ahead = self.tailer.wants_save() && now >= next_write_ahead;
                if write_ahead || self.transaction_failed() {
                    self.boundary(shutdown)?;
                    next_write_ahead = Instant::now() + WRITE_AHEAD_SPACING;
                } else if now >= due {
                    self.interval_up(now, shutdown)?;
                }
            } else if now >= next_checkpoint {
                let began = Instant::now();
                self.checkpoint();
                let cost = began.elapsed();
                let interval = if now < fast_until {
                    (cost * START_CHECKPOINT_COST_FACTOR)
                        .max(START_CHECKPOINT_INTERVAL)
                        .min(self.settings.checkpoint_interval)
                } else {
                    self.settings
                        .checkpoint_interval
                        .max(cost * CHECKPOINT_COST_FACTOR)
                };
                next_checkpoint = now + interval;
                next_write_ahead = next_write_ahead.max(now + cost * WRITE_AHEAD_COST_FACTOR);
                if now >= next_trim {
                    give_back_free_memory();
                    next_trim = now + TRIM_INTERVAL;
                }
            } else if self.tailer.wants_save() && now >= next_write_ahead {
                // A new generation waits to be in the checkpoint before
                // its first line is shipped (write-ahead); a burst of new
                // files shares one write.
                let began = Instant::now();
                self.checkpoint();
                next_write_ahead =
                    now + WRITE_AHEAD_SPACING.max(began.elapsed() * WRITE_AHEAD_COST_FACTOR);
            }
            self.apply_reload(shutdown)?;
            self.observe(now);
            if self.backfill.due(now) {
                self.backfill.update(self.tailer.backfill_progress(), now);
            }
        }
        self.drain(shutdown)
    }

    fn scan(&mut self) {
        let outbox = &self.outbox;
        let outcome = self.tailer.scan(&|slot| outbox.holds(slot));
        self.after_scan(outcome);
    }

    /// Let go of the routes of ended streams; record losses.
    fn after_scan(&mut self, outcome: ScanOutcome) {
        for slot in outcome.retired {
            self.outbox.forget(slot);
        }
        for cp in outcome.lost {
            self.record_loss(&cp);
        }
    }

    fn record_loss(&mut self, cp: &FileCheckpoint) {
        let bytes = cp.size.saturating_sub(cp.position);
        self.counters.generations_lost += 1;
        self.counters.bytes_lost += bytes;
        let loss = logferry_tail::Loss {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            host: self.settings.host.clone(),
            path: cp.path.clone(),
            generation: cp.generation,
            offset: cp.position,
            bytes,
            unknown_size: bytes == 0,
        };
        if let Err(e) = self.checkpointer.record_loss(&loss) {
            tracing::error!(error = %e, "loss not recorded");
        }
    }

    /// Serve delivery reports (acks go to the tailer); if the producer had
    /// to be replaced, every unacknowledged line is read again. In
    /// exactly-once mode a fatal producer error ends shipping.
    fn service(&mut self, timeout: Duration) -> Result<(), ShipError> {
        let tailer = &mut self.tailer;
        let replaced = self
            .outbox
            .service(timeout, &mut |slot, seq| tailer.ack(slot, seq));
        if replaced {
            self.tailer.rewind_to_acked();
        }
        if let (Some((code, reason)), Some(t)) = (self.outbox.fatal(), self.txn.as_ref()) {
            return Err(transaction::fatal(&t.id, *code, reason));
        }
        Ok(())
    }

    /// Say early, and plainly, if the brokers cannot be reached or a topic is
    /// missing. Neither is fatal: lines wait (bounded) and ship once fixed.
    fn check_cluster(&self) {
        for input in &self.settings.inputs {
            // A template over the file (`{file_name}`...) names a topic per
            // file: it is looked up as records go, not here.
            if input.topic_depends_on_file() {
                continue;
            }
            let topic = input.topic_for(&self.settings.host, std::path::Path::new(""));
            match self
                .outbox
                .producer()
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
            {
                Err(e) => tracing::warn!(
                    brokers = %self.outbox.bootstrap(),
                    error = %e,
                    "cannot reach the Kafka brokers yet; lines are kept and shipped once they answer"
                ),
                Ok(md) => {
                    let missing = md
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
                    if missing {
                        tracing::error!(
                            topic = %topic,
                            "topic does not exist on the cluster (logferry never creates topics); lines wait until it is created"
                        );
                    }
                }
            }
        }
    }

    /// Persist acked positions if any moved.
    fn checkpoint(&mut self) {
        let entries = self.tailer.checkpoint_entries();
        let summary = Some(checkpoint_summary(&entries));
        if summary == self.last_saved && self.checkpointer.path().exists() {
            self.tailer.saved();
            return;
        }
        let examined = Some(self.tailer.examined_until());
        let tailer = &mut self.tailer;
        let result = self
            .checkpointer
            .save_with_watermark_and(&entries, examined, &mut || tailer.keep_up());
        // Written or not, generations waiting for it may go on: a state
        // directory that cannot be written (disk full) must not stop
        // shipping; the failure is an ERROR, a metric and /health.
        self.tailer.saved();
        match result {
            Ok(()) => {
                self.last_saved = summary;
                self.counters.checkpoint_writes += 1;
                self.checkpoint_failing = None;
            }
            Err(e) => {
                self.counters.checkpoint_failures += 1;
                let since = self
                    .checkpoint_failing
                    .as_ref()
                    .map_or_else(Instant::now, |f| f.0);
                self.checkpoint_failing = Some((since, e.to_string()));
                tracing::error!(error = %e, "checkpoint not saved; retrying at the next interval");
            }
        }
    }

    /// Stop reading, wait (bounded) for in-flight records, checkpoint.
    fn drain(mut self, shutdown: &Shutdown) -> Result<ShipReport, ShipError> {
        self.tailer.note_sizes();
        if self.txn.is_some() {
            // The last commit (bounded by shutdown_timeout); what it could
            // not commit is aborted, and read again at the next start.
            self.boundary(shutdown)?;
            if self.tailer.unacked() > 0 {
                let _ = self
                    .outbox
                    .producer()
                    .abort_transaction(Duration::from_secs(5));
            }
        } else {
            let deadline = Instant::now() + self.settings.shutdown_timeout;
            self.outbox.send_due_retries(true);
            while self.tailer.unacked() > 0 && Instant::now() < deadline {
                self.service(Duration::from_millis(20))?;
                self.outbox.send_due_retries(false);
                self.observe(Instant::now());
            }
            self.checkpoint();
        }
        let left = self.tailer.unacked();
        self.counters.unacked_at_exit = left as u64;
        if left > 0 {
            tracing::warn!(
                records = left,
                "records not acknowledged before the shutdown timeout; they are re-read from the checkpoint at the next start"
            );
        }
        tracing::info!(
            lines = self.outbox.report().lines_acked,
            bytes = self.outbox.report().bytes_acked,
            lag_bytes = self.lag_bytes(),
            unacked = left,
            "shipped and acknowledged; stopped"
        );
        Ok(self.report())
    }

    /// The Outbox's counters and the loop's, together.
    fn report(&self) -> ShipReport {
        let c = self.counters;
        ShipReport {
            checkpoint_writes: c.checkpoint_writes,
            checkpoint_failures: c.checkpoint_failures,
            unacked_at_exit: c.unacked_at_exit,
            generations_lost: c.generations_lost,
            bytes_lost: c.bytes_lost,
            transactions_committed: c.transactions_committed,
            transactions_aborted: c.transactions_aborted,
            ..self.outbox.report().clone()
        }
    }
}
