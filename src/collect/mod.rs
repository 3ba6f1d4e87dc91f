//! `logferry collect`: the central half. A consumer in a consumer group
//! (manual commits only, cooperative-sticky assignment) writes every
//! attributed record at its source byte offset in the output file of its
//! source generation, and commits a record's offset only after the file it
//! went to, and the index saying so, were fsynced.
//!
//! Why this gives exactly once on disk: a record consumed again after a
//! crash, a rebalance or a duplicate from the agent is written again at the
//! same offset with the same bytes (see [`writer`]); `_unattributed` files,
//! which are appended to, skip records below the position the index saved.
//! On revoke, outputs are fsynced and offsets committed before the
//! partitions are let go. An error of OUT itself (a full disk, EIO, a
//! read-only file system: see [`fault`]) stops consuming without
//! committing; the consumer is closed, the collector waits until OUT is
//! writable and rejoins from the last commit. No record stops it: one
//! whose attribution names an output that cannot be created goes to
//! `_unattributed`, counted, like records without attribution.
//!
//! # Layout
//!
//! - [`naming`]: host and source path -> output file name, one way,
//!   reversibly, always under OUT.
//! - [`fault`]: whether an I/O error is OUT's (stop) or one record's.
//! - [`record`]: what one record becomes (a line at its offset, or an
//!   `_unattributed` append), and the counters saying which.
//! - [`writer`]: offset-addressed output files and `_unattributed` appends.
//! - [`completeness`]: written ranges, "complete up to", holes and gaps.
//! - [`index`]: the state in `OUT/.logferry/` (generation -> output,
//!   completeness), shared by collectors through a lock, saved atomically.
//! - [`status`]: `logferry collect status`, the proof that nothing is lost.
//! - [`archive`]: compression and retention of closed generations.
//! - [`timeline`]: when each line was read, per generation, beside the
//!   archive (for `logferry merge`).
//! - [`observe`]: what `/metrics` and `/health` show, filled from the loop
//!   a few times a second.
//! - [`spread`]: generations arriving on several partitions while other
//!   members of the group hold the rest (warned once, counted).
//! - [`custody`]: what this OUT holds of each generation kept in one
//!   partition, and the rules by which collectors on separate hosts hold
//!   every generation whole; [`registry`]: the index they share through
//!   Kafka (a generation's partition, first offset and holder);
//!   [`rebuild`]: reading a partition back for generations this OUT did
//!   not start; `takeover`: the loop's side of all three.
//! - [`reload`]: the configuration file re-read on SIGHUP (a new session
//!   with the new settings).

pub mod archive;
pub mod completeness;
pub mod custody;
pub mod fault;
pub mod index;
pub mod naming;
pub mod observe;
pub mod rebuild;
mod record;
pub mod registry;
pub mod reload;
pub mod spread;
pub mod status;
mod takeover;
pub mod timeline;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, Statistics, TopicPartitionList};

use crate::config::collect::CollectSettings;
use crate::consume::{Batch, ConsumerQueue, Forwarder};
use crate::shutdown::Shutdown;
use index::{IndexError, Store};
use observe::{CollectExposition, Observer, PartitionLag, SessionFigures, TopicCounts};
use spread::{Hold, SpreadWatch};
use writer::Writer;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot create the Kafka consumer: {0}")]
    Consumer(KafkaError),
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("output directory: {0}")]
    Store(#[from] IndexError),
    // Transparent: its message is the whole story (with `{0}` and a
    // source, `{e:#}` printed it twice).
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("cannot create a queue for the consumer's records")]
    NoQueue,
}

/// Counters, logged at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub records: u64,
    /// Written at their source offset.
    pub attributed: u64,
    /// Appended to `_unattributed`.
    pub unattributed: u64,
    /// Attribution present but undecodable (also in `unattributed`).
    pub corrupt: u64,
    /// Attributed, but more than `max_hole` past the end of their
    /// generation's output (also in `unattributed`).
    pub beyond_max_hole: u64,
    /// Attributed, but their output cannot be created where the
    /// attribution points (also in `unattributed`).
    pub unwritable: u64,
    /// Generations other members of the group write parts of (see
    /// [`spread`]).
    pub split_generations: u64,
    pub commits: u64,
}

/// What the loop and the rebalance callback share.
struct State {
    writer: Writer,
    /// Next offset per topic and partition, of records written but not
    /// yet synced. Looked up once a record: foldhash, not SipHash (see
    /// [`Writer`]'s outputs).
    pending: foldhash::HashMap<String, foldhash::HashMap<i32, i64>>,
    /// Synced but not yet committed (a commit failed).
    synced: HashMap<(String, i32), i64>,
    /// After a storage failure: let partitions go without committing.
    abandon: bool,
    /// A storage failure to report (set by the rebalance callback).
    failure: Option<IndexError>,
    counters: Counters,
    /// Per topic, for metrics (looked up once a record, as `pending`).
    topics: foldhash::HashMap<String, TopicCounts>,
    /// Records consumed and not committed yet (the health rule's
    /// "records wait").
    waiting: u64,
    /// This session's assignment and the generations other members write
    /// parts of.
    spread: SpreadWatch,
    /// Rate limit of the "output cannot be created" warning.
    unwritable_log: record::LogThrottle,
    /// The last attributed record's generation.
    last_key: record::LastKey,
    /// Read times of the lines written since the last sync.
    timeline: timeline::Timeline,
    /// The index shared with the other members; None when turned off.
    registry: Option<registry::Registry>,
    /// This OUT's id in it.
    me: String,
    tracker: custody::Tracker,
    rebuilds: rebuild::Rebuilds,
}

impl State {
    /// A session's state without a shared index (see [`State::shared`]).
    fn new(max_hole: u64) -> Self {
        State {
            registry: None,
            me: String::new(),
            tracker: custody::Tracker::default(),
            rebuilds: rebuild::Rebuilds::default(),
            writer: Writer::new(max_hole),
            pending: Default::default(),
            synced: HashMap::new(),
            abandon: false,
            failure: None,
            counters: Counters::default(),
            topics: Default::default(),
            waiting: 0,
            spread: SpreadWatch::default(),
            unwritable_log: record::LogThrottle::default(),
            last_key: record::LastKey::default(),
            timeline: timeline::Timeline::default(),
        }
    }

    /// With the index shared with the other members (`registry`), as
    /// output directory `me`.
    fn shared(settings: &CollectSettings, registry: Option<registry::Registry>, me: &str) -> Self {
        State {
            registry,
            me: me.to_string(),
            rebuilds: rebuild::Rebuilds::new(settings),
            ..State::new(settings.max_hole)
        }
    }

    /// A new assignment: generations already seen on several partitions
    /// are looked at again, since holding all partitions before says
    /// nothing once another member took some.
    fn set_holds(&mut self, holds: HashMap<String, Hold>) {
        self.spread.set_holds(holds);
        for (key, partitions) in self.writer.spread() {
            self.spread.check(key, partitions);
        }
    }

    /// Nothing left to commit: no record waits any more.
    fn settle(&mut self) {
        if self.synced.is_empty() && self.pending.values().all(HashMap::is_empty) {
            self.waiting = 0;
        }
    }

    fn figures(&self, lag: Vec<PartitionLag>) -> SessionFigures {
        SessionFigures {
            topics: self.topics.iter().map(|(t, c)| (t.clone(), *c)).collect(),
            bytes_written: self.writer.bytes_written,
            fsync: self.writer.fsync.clone(),
            commits: self.counters.commits,
            waiting: self.waiting,
            holes: self.writer.holes,
            beyond_max_hole: self.counters.beyond_max_hole,
            unwritable: self.counters.unwritable,
            corrupt: self.counters.corrupt,
            split_generations: self.spread.split_generations,
            lag,
        }
    }
}

struct CollectContext {
    store: Arc<Store>,
    state: Mutex<State>,
    gap_timeout_secs: u64,
    /// Consumer lag of the assigned partitions, from the latest statistics
    /// (only with metrics on: statistics are off otherwise).
    lag: Mutex<Vec<PartitionLag>>,
    /// Sends assigned partitions' records to the loop's batch queue,
    /// while it lives (see [`Forwarding`]).
    forwarder: Mutex<Option<Forwarder>>,
}

/// While held, partitions assigned to the consumer send their records to
/// the loop's batch queue; dropped before that queue is.
struct Forwarding<'a> {
    ctx: &'a CollectContext,
}

impl<'a> Forwarding<'a> {
    fn start(ctx: &'a CollectContext, queue: &ConsumerQueue<'_>) -> Self {
        *ctx.forwarder.lock().unwrap_or_else(|p| p.into_inner()) = Some(queue.forwarder());
        Forwarding { ctx }
    }
}

impl Drop for Forwarding<'_> {
    fn drop(&mut self) {
        self.ctx
            .forwarder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl CollectContext {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-updated in a way
        // that matters more than stopping: take it as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lag(&self) -> Vec<PartitionLag> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Lag of each assigned partition: high watermark minus the committed
/// offset. With nothing committed yet, every retained record is ahead
/// (`auto.offset.reset` is earliest), so the lag is high minus low.
fn partition_lags(stats: &Statistics) -> Vec<PartitionLag> {
    let mut out = Vec::new();
    for (topic, t) in &stats.topics {
        for p in t.partitions.values() {
            // -1 is librdkafka's internal "unassigned" partition.
            if p.partition < 0 || !p.desired || p.hi_offset < 0 {
                continue;
            }
            let lag = if p.consumer_lag >= 0 {
                p.consumer_lag
            } else if p.committed_offset < 0 && p.lo_offset >= 0 {
                p.hi_offset - p.lo_offset
            } else {
                continue;
            };
            out.push(PartitionLag {
                topic: topic.clone(),
                partition: p.partition,
                lag,
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

impl ClientContext for CollectContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{fac}: {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn stats(&self, statistics: Statistics) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = partition_lags(&statistics);
    }
}

impl ConsumerContext for CollectContext {
    /// Before partitions are let go, what was written from them is made
    /// durable and committed, so their next owner starts right after it.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            if let Rebalance::Assign(tpl) = rebalance {
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
                // Before the assignment starts fetching: every record of
                // these partitions goes to the loop's batch queue.
                if let Some(f) = &*self.forwarder.lock().unwrap_or_else(|p| p.into_inner()) {
                    for e in tpl.elements() {
                        if !f.forward(consumer, e.topic(), e.partition()) {
                            tracing::debug!(
                                topic = e.topic(),
                                partition = e.partition(),
                                "partition not forwarded; its records come through poll"
                            );
                        }
                    }
                }
                // Every entry acknowledged before the previous owner's
                // last commit is known before a record is handled.
                if let Some(Err(e)) = self.state().registry.as_mut().map(|r| r.catch_up()) {
                    tracing::error!("{e}; a generation whose entry was not read yet is taken as starting at the first record seen of it");
                }
            }
            return;
        };
        let mut st = self.state();
        tracing::info!(partitions = %describe(tpl), "partitions revoked; syncing and committing first");
        if !st.abandon {
            if let Err(e) = checkpoint(&mut st, &self.store, consumer, self.gap_timeout_secs) {
                st.abandon = true;
                st.failure = Some(e);
            }
        }
        for e in tpl.elements() {
            takeover::revoke(&mut st, e.topic(), e.partition());
            if let Some(p) = st.pending.get_mut(e.topic()) {
                p.remove(&e.partition());
            }
            st.synced.remove(&(e.topic().to_string(), e.partition()));
        }
        if !st.abandon {
            // Mark the partitions' generations held (or unfinished).
            if let Err(e) = takeover::sync(&mut st, &self.store, now_secs(), self.gap_timeout_secs)
            {
                st.abandon = true;
                st.failure = Some(e);
            }
        }
        st.settle();
    }

    /// After partitions moved: what this collector now holds of each
    /// topic, for the spread warning. The topics' partition counts are
    /// fetched only when the assignment changed (once per rebalance, not
    /// per record).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Error(_)) {
            return;
        }
        let assignment = match consumer.assignment() {
            Ok(tpl) => tpl,
            Err(e) => {
                tracing::debug!("cannot read the assignment after a rebalance: {e}");
                return;
            }
        };
        let mut held: HashMap<String, usize> = HashMap::new();
        for e in assignment.elements() {
            *held.entry(e.topic().to_string()).or_default() += 1;
        }
        let unchanged = {
            let st = self.state();
            let known = st.spread.holds();
            known.len() == held.len()
                && held
                    .iter()
                    .all(|(t, n)| known.get(t).is_some_and(|h| h.held == *n))
        };
        if unchanged {
            return;
        }
        let mut holds = HashMap::new();
        for (topic, n) in held {
            match consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT) {
                Ok(md) => {
                    let total = md.topics().first().map_or(0, |t| t.partitions().len());
                    if total > 0 {
                        holds.insert(topic, Hold { held: n, total });
                    }
                }
                Err(e) => tracing::debug!(
                    topic,
                    "cannot fetch the partition count ({e}); generations spread over its partitions go unnoticed until the next rebalance"
                ),
            }
        }
        self.state().set_holds(holds);
    }
}

/// Bound on the metadata request after a rebalance (it holds up the loop).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sync the outputs, then commit what they hold. A failed sync is returned
/// (nothing is committed); a failed commit is logged and retried at the
/// next checkpoint (the records are durable, so at worst they are
/// consumed and rewritten again).
fn checkpoint(
    st: &mut State,
    store: &Store,
    consumer: &BaseConsumer<CollectContext>,
    gap_timeout_secs: u64,
) -> Result<(), IndexError> {
    for (topic, parts) in &st.pending {
        for (&p, &next) in parts {
            st.tracker.advance(topic, p, next);
        }
    }
    let (gaps, may_commit) = takeover::sync(st, store, now_secs(), gap_timeout_secs)?;
    st.timeline.flush(store.root())?;
    for g in gaps {
        tracing::warn!(
            host = %g.host,
            generation = %g.generation,
            source = %g.source_path,
            output = %g.output,
            "gap: bytes {}..{} still missing after {} s",
            g.start,
            g.end,
            g.age_secs
        );
    }
    for (topic, parts) in st.pending.iter_mut() {
        for (p, o) in parts.drain() {
            st.synced.insert((topic.clone(), p), o);
        }
    }
    if st.synced.is_empty() || !may_commit {
        st.settle();
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    let mut capped = Vec::new();
    for ((t, p), o) in &st.synced {
        // A generation being rebuilt holds its partition's commits at its
        // first record here (see custody).
        let at = takeover::cap(st, t, *p, *o);
        if at < *o {
            capped.push((t.clone(), *p));
        }
        // Adding a partition with an offset only fails for an offset
        // librdkafka cannot represent, which a consumed record's is not.
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(at));
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            // Capped ones are committed further once the rebuild is done.
            st.synced.retain(|k, _| capped.contains(k));
            st.counters.commits += 1;
            st.settle();
        }
        Err(e) => tracing::warn!("committing offsets failed (retried at the next interval): {e}"),
    }
    Ok(())
}

/// How a consumer session ended.
enum Ended {
    Stopped(Counters),
    /// A reload: offsets committed, a session with these settings next.
    Reloaded(Box<CollectSettings>),
    /// Writing under OUT failed; nothing past the last sync was committed.
    StorageFailed(IndexError),
}

/// Run the collector until `shutdown`, publishing figures to `exposition`
/// when metrics are on.
pub fn run(
    settings: &CollectSettings,
    shutdown: &Shutdown,
    exposition: Option<Arc<CollectExposition>>,
    reload: Option<&reload::CollectReload>,
) -> Result<Counters, CollectError> {
    let mut settings = std::borrow::Cow::Borrowed(settings);
    let store = Arc::new(Store::open(&settings.out)?);
    // Held until the collector returns: `status` tells from it whether
    // the custody marks are kept current.
    let (_running, alone) = store.running()?;
    if alone {
        let mut l = store.locked()?;
        custody::settle_after_crash(&mut l.index);
        l.save()?;
    }
    let me = store.out_id()?;
    let mut housekeeping = archive::Archive::new(settings.archive.clone());
    let mut observer = match exposition.clone() {
        Some(x) => {
            let index = store.locked()?;
            let holes =
                writer::hole_summary(&index.index, now_secs(), settings.gap_timeout.as_secs());
            drop(index);
            Some(Observer::new(x, holes))
        }
        None => None,
    };
    loop {
        let reload = reload.map(|r| (r, exposition.as_ref()));
        match session(
            &settings,
            &store,
            shutdown,
            &mut housekeeping,
            observer.as_mut(),
            &me,
            reload,
        )? {
            Ended::Stopped(c) => return Ok(c),
            Ended::Reloaded(new) => {
                if new.archive != settings.archive {
                    housekeeping = archive::Archive::new(new.archive.clone());
                }
                tracing::info!(
                    topics = ?new.topics,
                    brokers = %new.brokers,
                    "configuration reloaded: collecting with the new settings"
                );
                settings = std::borrow::Cow::Owned(*new);
            }
            Ended::StorageFailed(e) => {
                tracing::error!(
                    "cannot write under {}: {e}; consuming stopped and nothing committed past the last fsync; retrying until it is writable",
                    settings.out.display()
                );
                if let Some(o) = observer.as_mut() {
                    // /health answers 503 from this snapshot until the
                    // next session publishes.
                    let idle = SessionFigures::default();
                    o.publish(Instant::now(), &idle, Some((Instant::now(), e.to_string())));
                }
                if !wait_until_writable(&store, shutdown) {
                    return Ok(Counters::default());
                }
                tracing::info!(
                    "{} is writable again; resuming from the last commit",
                    settings.out.display()
                );
            }
        }
    }
}

/// Probe OUT every second until a write and fsync succeed; false when a
/// shutdown was asked for meanwhile.
fn wait_until_writable(store: &Store, shutdown: &Shutdown) -> bool {
    let probe = store.root().join(index::STATE_DIR).join("probe");
    let chunk = vec![0u8; 256 << 10];
    loop {
        if shutdown.is_requested() {
            return false;
        }
        let ok = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&probe)?;
            f.write_all(&chunk)?;
            f.sync_all()
        })();
        let _ = std::fs::remove_file(&probe);
        if ok.is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn create_consumer(
    settings: &CollectSettings,
    store: &Arc<Store>,
    me: &str,
) -> Result<BaseConsumer<CollectContext>, CollectError> {
    let registry = match &settings.index_topic {
        Some(topic) => Some(registry::Registry::open(settings, topic, me)?),
        None => None,
    };
    let mut cfg = ClientConfig::new();
    if settings.metrics.is_some() {
        // Consumer lag comes from librdkafka's statistics: once a second
        // is plenty for a scrape. A user's own setting (set below) wins.
        cfg.set("statistics.interval.ms", "1000");
    }
    for (k, v) in settings.consumer_props() {
        cfg.set(k, v);
    }
    let ctx = CollectContext {
        store: Arc::clone(store),
        state: Mutex::new(State::shared(settings, registry, me)),
        gap_timeout_secs: settings.gap_timeout.as_secs(),
        lag: Mutex::new(Vec::new()),
        forwarder: Mutex::new(None),
    };
    let consumer: BaseConsumer<CollectContext> = cfg
        .create_with_context(ctx)
        .map_err(CollectError::Consumer)?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| CollectError::Subscribe {
            topics: settings.topics.clone(),
            source,
        })?;
    Ok(consumer)
}

fn session(
    settings: &CollectSettings,
    store: &Arc<Store>,
    shutdown: &Shutdown,
    housekeeping: &mut archive::Archive,
    mut observer: Option<&mut Observer>,
    me: &str,
    reload: Option<(&reload::CollectReload, Option<&Arc<CollectExposition>>)>,
) -> Result<Ended, CollectError> {
    let consumer = create_consumer(settings, store, me)?;
    let queue = ConsumerQueue::records_of(&consumer).ok_or(CollectError::NoQueue)?;
    let forwarding = Forwarding::start(consumer.context(), &queue);
    let mut batch = Batch::new(&consumer);
    let meta = settings.metadata.as_deref();
    let gap = settings.gap_timeout.as_secs();
    let mut next_commit = Instant::now() + settings.commit_interval;
    let mut now = now_secs();
    // Read once per batch, after it was taken.
    let mut clock = Instant::now();
    let mut clock_step = clock;
    let mut rebuilding = false;
    let mut reloaded = None;
    let failure = loop {
        if let Some((r, x)) = reload {
            // The end of this session, as for a shutdown, then a new one.
            reloaded = r.poll(settings, x);
        }
        if shutdown.is_requested() || reloaded.is_some() {
            let mut st = consumer.context().state();
            match checkpoint(&mut st, store, &consumer, gap) {
                Ok(()) => break None,
                Err(e) => break Some(e),
            }
        }
        // Rebalances, statistics and consumer errors are served here (the
        // callbacks take the state's lock, so not while it is held); a
        // record comes this way only if it was fetched before its
        // partition was forwarded.
        let polled = consumer.poll(Duration::ZERO);
        let wait = next_commit.saturating_duration_since(clock);
        // While partitions are read back, takes wait little, so the steps
        // go on when the topic is quiet.
        let most = if rebuilding {
            rebuild::STEP_TIME
        } else {
            Duration::from_millis(100)
        };
        if polled.is_none() {
            queue.take_waiting(&mut batch, wait.min(most));
        } else {
            queue.take_ready(&mut batch);
        }
        let mut st = consumer.context().state();
        if let Some(e) = st.failure.take() {
            break Some(e);
        }
        match polled {
            Some(Ok(m)) => {
                if let Err(e) = record::handle(&mut st, store, &m, meta, now) {
                    break Some(e);
                }
            }
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        let mut run = record::PartitionRun::default();
        let handled = batch.iter().try_for_each(|r| match r.error() {
            Some(e) => {
                tracing::warn!("consumer: {e}");
                Ok(())
            }
            None => run.handle(&mut st, store, &r, meta, now),
        });
        run.end(&mut st);
        if let Err(e) = handled {
            break Some(e);
        }
        clock = Instant::now();
        if clock_step <= clock {
            // At most one read-back step per STEP_TIME: the group
            // consumer keeps about half the loop.
            if let Err(e) = takeover::step(&mut st, store, meta, now) {
                break Some(e);
            }
            clock_step = Instant::now() + rebuild::STEP_TIME;
            rebuilding = !st.rebuilds.is_idle();
        }
        if let Some(o) = observer.as_deref_mut().filter(|o| o.due(clock)) {
            o.publish(clock, &st.figures(consumer.context().lag()), None);
        }
        if clock >= next_commit {
            now = now_secs();
            if let Err(e) = checkpoint(&mut st, store, &consumer, gap) {
                break Some(e);
            }
            next_commit = Instant::now() + settings.commit_interval;
            drop(st);
            if let Err(e) = housekeeping.tick(store) {
                break Some(e);
            }
        }
    };
    let counters = {
        let mut st = consumer.context().state();
        if failure.is_some() {
            // Let go without committing: the records since the last
            // commit are consumed again, by this or another member.
            st.abandon = true;
            st.writer.reset();
            st.timeline.clear();
            st.pending.clear();
        }
        if let Some(o) = observer {
            o.end_session(&st.figures(Vec::new()));
        }
        Counters {
            split_generations: st.spread.split_generations,
            ..st.counters
        }
    };
    // The queue goes before the consumer it belongs to, and the
    // rebalance callback forgets it first.
    drop(batch);
    drop(forwarding);
    drop(queue);
    drop(consumer);
    Ok(match failure {
        None if reloaded.is_some() => Ended::Reloaded(Box::new(reloaded.expect("checked"))),
        None => {
            tracing::info!(
                records = counters.records,
                attributed = counters.attributed,
                unattributed = counters.unattributed,
                corrupt = counters.corrupt,
                beyond_max_hole = counters.beyond_max_hole,
                unwritable = counters.unwritable,
                split_generations = counters.split_generations,
                "collector stopped: outputs fsynced, offsets committed"
            );
            Ended::Stopped(counters)
        }
        // An error a record's name caused never gets here (the writer
        // keeps such records in _unattributed); anything else under OUT
        // waits until OUT is writable.
        Some(e) if e.io().is_some() => Ended::StorageFailed(e),
        Some(e) => return Err(CollectError::Store(e)),
    })
}
