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
//! partitions are let go. A full disk (any I/O error under OUT) stops
//! consuming without committing; the consumer is closed, the collector
//! waits until OUT is writable and rejoins from the last commit.
//!
//! # Layout
//!
//! - [`writer`]: offset-addressed output files and `_unattributed` appends.
//! - [`completeness`]: written ranges, "complete up to", holes and gaps.
//! - [`index`]: the state in `OUT/.logferry/` (generation -> output,
//!   completeness), shared by collectors through a lock, saved atomically.
//! - [`status`]: `logferry collect status`, the proof that nothing is lost.
//! - [`archive`]: compression and retention of closed generations.
//! - [`observe`]: what `/metrics` and `/health` show, filled from the loop
//!   a few times a second.

pub mod archive;
pub mod completeness;
pub mod index;
pub mod observe;
pub mod status;
pub mod writer;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, Statistics, TopicPartitionList};

use crate::config::collect::CollectSettings;
use crate::shutdown::Shutdown;
use crate::wire::{decode_source, partition_key_of, Format, Source, SOURCE_HEADER};
use index::{GenKey, IndexError, Lineage, Store};
use observe::{CollectExposition, Observer, PartitionLag, SessionFigures, TopicCounts};
use writer::{At, Writer};

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
}

/// Counters, logged at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub records: u64,
    pub attributed: u64,
    pub unattributed: u64,
    /// Attribution present but undecodable (also in `unattributed`).
    pub corrupt: u64,
    pub commits: u64,
}

/// What the loop and the rebalance callback share.
struct State {
    writer: Writer,
    /// Next offset per topic and partition, of records written but not
    /// yet synced.
    pending: HashMap<String, HashMap<i32, i64>>,
    /// Synced but not yet committed (a commit failed).
    synced: HashMap<(String, i32), i64>,
    /// After a storage failure: let partitions go without committing.
    abandon: bool,
    /// A storage failure to report (set by the rebalance callback).
    failure: Option<IndexError>,
    counters: Counters,
    /// Per topic, for metrics.
    topics: HashMap<String, TopicCounts>,
    /// Records consumed and not committed yet (the health rule's
    /// "records wait").
    waiting: u64,
}

impl State {
    /// Nothing left to commit: no record waits any more.
    fn settle(&mut self) {
        if self.synced.is_empty() && self.pending.values().all(HashMap::is_empty) {
            self.waiting = 0;
        }
    }

    fn figures(&self, lag: Vec<PartitionLag>) -> SessionFigures {
        SessionFigures {
            topics: self.topics.clone(),
            bytes_written: self.writer.bytes_written,
            fsync: self.writer.fsync.clone(),
            commits: self.counters.commits,
            waiting: self.waiting,
            holes: self.writer.holes,
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
            st.writer.forget_partition(e.topic(), e.partition());
            if let Some(p) = st.pending.get_mut(e.topic()) {
                p.remove(&e.partition());
            }
            st.synced.remove(&(e.topic().to_string(), e.partition()));
        }
        st.settle();
    }
}

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
    let gaps = st.writer.sync(store, now_secs(), gap_timeout_secs)?;
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
    if st.synced.is_empty() {
        st.settle();
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in &st.synced {
        // Adding a partition with an offset only fails for an offset
        // librdkafka cannot represent, which a consumed record's is not.
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            st.synced.clear();
            st.counters.commits += 1;
            st.settle();
        }
        Err(e) => tracing::warn!("committing offsets failed (retried at the next interval): {e}"),
    }
    Ok(())
}

/// The record's source attribution: `Ok(None)` when it has none, `Err`
/// when it has one that does not decode.
fn attribution(m: &BorrowedMessage<'_>) -> Result<Option<Source>, crate::wire::SourceDecodeError> {
    if let Some(h) = m
        .headers()
        .and_then(|hs| hs.iter().find(|h| h.key == SOURCE_HEADER))
    {
        return decode_source(h.value.unwrap_or_default()).map(Some);
    }
    match m.key() {
        Some(k) if partition_key_of(k).is_some() => decode_source(k).map(Some),
        _ => Ok(None),
    }
}

/// The line inside a record value: tail2kafka's `META::line` when the
/// collector was given META, the JSON envelope when the value is one that
/// names this very source and offset, else the value itself (raw).
fn line_of<'a>(value: &'a [u8], src: &Source, meta: Option<&[u8]>) -> Cow<'a, [u8]> {
    if let Some(meta) = meta {
        let f = Format::Tail2Kafka {
            meta: meta.to_vec(),
        };
        if let Some(l) = f.line_of(value) {
            return l;
        }
    }
    if value.starts_with(b"{\"line\":") && is_envelope_of(value, src) {
        if let Some(l) = (Format::Json { fields: Vec::new() }).line_of(value) {
            return Cow::Owned(l.into_owned());
        }
    }
    Cow::Borrowed(value)
}

/// A JSON envelope carries host and offset: a raw line that merely looks
/// like one does not match its own attribution.
fn is_envelope_of(value: &[u8], src: &Source) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        host: Cow<'a, str>,
        offset: u64,
    }
    serde_json::from_slice::<Head<'_>>(value)
        .is_ok_and(|h| h.host == src.host && h.offset == src.offset)
}

/// Write one record where it belongs and remember its offset.
fn handle(
    st: &mut State,
    store: &Store,
    m: &BorrowedMessage<'_>,
    meta: Option<&[u8]>,
    now: u64,
) -> Result<(), IndexError> {
    st.counters.records += 1;
    st.waiting += 1;
    let value = m.payload().unwrap_or_default();
    let attributed = match attribution(m) {
        Ok(Some(src)) => {
            st.counters.attributed += 1;
            let line = line_of(value, &src, meta);
            let lineage = src
                .generation
                .map_or(Lineage::Inode(src.id), Lineage::Generation);
            let at = At {
                source_path: &src.path,
                offset: src.offset,
                truncated: src.truncated,
            };
            let key = GenKey {
                host: src.host.clone(),
                lineage,
            };
            st.writer.write_line(store, key, at, &line, now)?;
            true
        }
        Ok(None) => {
            st.counters.unattributed += 1;
            st.writer
                .write_unattributed(store, m.topic(), m.partition(), m.offset(), value)?;
            false
        }
        Err(e) => {
            if st.counters.corrupt == 0 {
                tracing::warn!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "source attribution does not decode ({e}); record kept in _unattributed (said once, counted)"
                );
            }
            st.counters.corrupt += 1;
            st.counters.unattributed += 1;
            st.writer
                .write_unattributed(store, m.topic(), m.partition(), m.offset(), value)?;
            false
        }
    };
    // Looked up by &str: no allocation per record once the topic is known.
    let counts = match st.topics.get_mut(m.topic()) {
        Some(c) => c,
        None => st.topics.entry(m.topic().to_string()).or_default(),
    };
    if attributed {
        counts.attributed += 1;
    } else {
        counts.unattributed += 1;
    }
    let next = m.offset() + 1;
    match st.pending.get_mut(m.topic()) {
        Some(parts) => {
            parts.insert(m.partition(), next);
        }
        None => {
            st.pending.insert(
                m.topic().to_string(),
                HashMap::from([(m.partition(), next)]),
            );
        }
    }
    Ok(())
}

/// How a consumer session ended.
enum Ended {
    Stopped(Counters),
    /// Writing under OUT failed; nothing past the last sync was committed.
    StorageFailed(IndexError),
}

/// Run the collector until `shutdown`, publishing figures to `exposition`
/// when metrics are on.
pub fn run(
    settings: &CollectSettings,
    shutdown: &Shutdown,
    exposition: Option<Arc<CollectExposition>>,
) -> Result<Counters, CollectError> {
    let store = Arc::new(Store::open(&settings.out)?);
    let mut housekeeping = archive::Archive::new(settings.archive.clone());
    let mut observer = match exposition {
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
        match session(
            settings,
            &store,
            shutdown,
            &mut housekeeping,
            observer.as_mut(),
        )? {
            Ended::Stopped(c) => return Ok(c),
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
) -> Result<BaseConsumer<CollectContext>, CollectError> {
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
        state: Mutex::new(State {
            writer: Writer::new(),
            pending: HashMap::new(),
            synced: HashMap::new(),
            abandon: false,
            failure: None,
            counters: Counters::default(),
            topics: HashMap::new(),
            waiting: 0,
        }),
        gap_timeout_secs: settings.gap_timeout.as_secs(),
        lag: Mutex::new(Vec::new()),
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
) -> Result<Ended, CollectError> {
    let consumer = create_consumer(settings, store)?;
    let meta = settings.metadata.as_deref();
    let gap = settings.gap_timeout.as_secs();
    let mut next_commit = Instant::now() + settings.commit_interval;
    let mut now = now_secs();
    let failure = loop {
        if shutdown.is_requested() {
            let mut st = consumer.context().state();
            match checkpoint(&mut st, store, &consumer, gap) {
                Ok(()) => break None,
                Err(e) => break Some(e),
            }
        }
        let wait = next_commit.saturating_duration_since(Instant::now());
        let polled = consumer.poll(wait.min(Duration::from_millis(100)));
        let mut st = consumer.context().state();
        if let Some(e) = st.failure.take() {
            break Some(e);
        }
        match polled {
            Some(Ok(m)) => {
                if let Err(e) = handle(&mut st, store, &m, meta, now) {
                    break Some(e);
                }
            }
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        let clock = Instant::now();
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
            st.pending.clear();
        }
        if let Some(o) = observer {
            o.end_session(&st.figures(Vec::new()));
        }
        st.counters
    };
    drop(consumer);
    Ok(match failure {
        None => {
            tracing::info!(
                records = counters.records,
                attributed = counters.attributed,
                unattributed = counters.unattributed,
                corrupt = counters.corrupt,
                "collector stopped: outputs fsynced, offsets committed"
            );
            Ended::Stopped(counters)
        }
        Some(e) if e.io().is_some() => Ended::StorageFailed(e),
        Some(e) => return Err(CollectError::Store(e)),
    })
}
