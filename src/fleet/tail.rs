//! `logferry tail`: the live topic as one view across the fleet, like
//! `tail -F` on every server at once.
//!
//! It assigns itself every partition of the topics (no consumer group
//! joined, no offset ever committed: nothing is left in the cluster) and
//! takes records from the consumer's queue a batch at a time
//! ([`super::batch`]). Per record it reads the source attribution first,
//! borrowed from the key, so records of other hosts and paths are dropped
//! before their value is looked at and without allocating; `--grep` then
//! runs on the line, and only a line that passes is formatted. Output is
//! gathered by the [`Printer`] and flushed whenever the queue runs dry and
//! at least every [`FLUSH_EVERY`], so a line shows within a fraction of a
//! second of its arrival even in a steady trickle.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::filter::Filter;
use super::print::{is_closed_pipe, Entry, Printer};
use super::record::{attribution, line_of};
use crate::consume::{Batch, ConsumerQueue, Record};
use crate::shutdown::Shutdown;
use crate::wire::Format;

/// Longest a printed line waits in the output buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Longest the loop waits for a record before looking at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long librdkafka waits before fetching again once its queue holds
/// `queued.min.messages` records of a partition. Its default, a second,
/// suits a consumer slower than the fetch; `tail` empties the queue far
/// faster than that, and reading a backlog sat idle for most of each
/// second (`--from beginning` ran at half its rate). `-X` overrides it.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Where reading starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    /// The first record at or after this time (Unix ms).
    Time(i64),
}

pub struct TailSettings {
    pub brokers: String,
    pub topics: Vec<String>,
    pub kafka_props: Vec<(String, String)>,
    pub start: StartAt,
    pub filter: Filter,
    /// Strip tail2kafka's `META::` prefix.
    pub metadata: Option<Format>,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot create the Kafka consumer: {0}")]
    Consumer(KafkaError),
    #[error("topic {topic:?}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {0:?} does not exist")]
    NoTopic(String),
    #[error("cannot find the offsets for --from: {0}")]
    Seek(KafkaError),
    #[error("the Kafka consumer has no queue to read")]
    NoQueue,
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

/// What a run saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct TailCounts {
    pub records: u64,
    pub printed: u64,
}

/// Print matching lines until `shutdown` (or the output is closed).
pub fn run<W: Write>(
    s: &TailSettings,
    shutdown: &Shutdown,
    out: &mut Printer<W>,
) -> Result<TailCounts, TailError> {
    let consumer = assigned_consumer(s)?;
    let queue = ConsumerQueue::of(&consumer).ok_or(TailError::NoQueue)?;
    let mut batch = Batch::new(&consumer);
    let mut counts = TailCounts::default();
    let mut unattributed = String::new();
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    while !shutdown.is_requested() {
        queue.take_ready(&mut batch);
        if batch.is_empty() {
            // Nothing at hand: show what is waiting before blocking.
            if unflushed {
                flush(out)?;
                unflushed = false;
                last_flush = Instant::now();
            }
            queue.take_waiting(&mut batch, POLL);
        }
        for r in batch.iter() {
            if let Some(e) = r.error() {
                tracing::warn!("consumer: {e}");
                continue;
            }
            counts.records += 1;
            match show(s, &r, out, &mut unattributed) {
                Ok(true) => {
                    counts.printed += 1;
                    unflushed = true;
                }
                Ok(false) => {}
                Err(e) if is_closed_pipe(&e) => return Ok(counts),
                Err(e) => return Err(TailError::Output(e)),
            }
        }
        if unflushed && last_flush.elapsed() >= FLUSH_EVERY {
            flush(out)?;
            unflushed = false;
            last_flush = Instant::now();
        }
    }
    flush(out)?;
    Ok(counts)
}

fn flush<W: Write>(out: &mut Printer<W>) -> Result<(), TailError> {
    match out.flush() {
        Err(e) if !is_closed_pipe(&e) => Err(TailError::Output(e)),
        _ => Ok(()),
    }
}

/// Print one record if the filter wants it; whether it was printed.
/// `unattributed` is room for the `TOPIC/PARTITION` shown instead of a
/// path for records without attribution.
fn show<W: Write>(
    s: &TailSettings,
    r: &Record<'_>,
    out: &mut Printer<W>,
    unattributed: &mut String,
) -> std::io::Result<bool> {
    let src = match attribution(r) {
        Ok(src) => src,
        Err(e) => {
            tracing::debug!(
                topic = r.topic(),
                partition = r.partition(),
                offset = r.offset(),
                "source attribution does not decode: {e}"
            );
            None
        }
    };
    let (host, path): (&str, &[u8]) = match &src {
        Some(src) => {
            if !s.filter.wants_source(src.host, src.path) {
                return Ok(false);
            }
            (src.host, src.path)
        }
        // Records without attribution name their topic and partition.
        None if s.filter.needs_source() => return Ok(false),
        None => {
            use std::fmt::Write;
            unattributed.clear();
            let _ = write!(unattributed, "{}/{}", r.topic(), r.partition());
            ("-", unattributed.as_bytes())
        }
    };
    let value = line_of(
        r.payload().unwrap_or_default(),
        src.as_ref(),
        s.metadata.as_ref(),
    );
    // Text shows none of these; JSON pays for them.
    let details = out.wants_details();
    let generation = src
        .as_ref()
        .and_then(|s| s.generation)
        .filter(|_| details)
        .map(|g| g.to_string());
    // A pack (`pack_bytes`) is shown line by line, each at its own offset
    // and through the filter on its own.
    let packed = src.as_ref().is_some_and(|s| s.packed);
    let mut offset = src.as_ref().map(|s| s.offset);
    let mut printed = false;
    let lines: Box<dyn Iterator<Item = &[u8]>> = match packed {
        true => Box::new(value.split(|&b| b == b'\n')),
        false => Box::new(std::iter::once(&value[..])),
    };
    for line in lines {
        let at = offset;
        offset = offset.map(|o| o + line.len() as u64 + 1);
        if !s.filter.wants_line(line) {
            continue;
        }
        out.print(&Entry {
            host,
            path,
            generation: generation.as_deref(),
            offset: at,
            timestamp_ms: r.timestamp_ms().filter(|_| details),
            line,
        })?;
        printed = true;
    }
    Ok(printed)
}

/// A consumer holding every partition of the topics, positioned at
/// `s.start`. `group.id` is set only because librdkafka wants one for a
/// consumer; with `assign` and no commits the group is never joined.
fn assigned_consumer(s: &TailSettings) -> Result<BaseConsumer, TailError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.brokers)
        .set("group.id", format!("logferry-tail-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Records of aborted transactions (exactly_once agents) are never
        // shown (librdkafka's default, said here because exactly_once
        // depends on it); --read-uncommitted or -X overrides it.
        .set("isolation.level", "read_committed");
    cfg.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    for (k, v) in &s.kafka_props {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().map_err(TailError::Consumer)?;
    let mut tpl = TopicPartitionList::new();
    for topic in &s.topics {
        let md = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|source| TailError::Metadata {
                topic: topic.clone(),
                source,
            })?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| TailError::NoTopic(topic.clone()))?;
        let offset = match s.start {
            StartAt::Beginning => Offset::Beginning,
            StartAt::End => Offset::End,
            // offsets_for_times takes the time in the offset field.
            StartAt::Time(ms) => Offset::Offset(ms),
        };
        for p in t.partitions() {
            let _ = tpl.add_partition_offset(topic, p.id(), offset);
        }
    }
    if let StartAt::Time(_) = s.start {
        tpl = consumer
            .offsets_for_times(tpl, METADATA_TIMEOUT)
            .map_err(TailError::Seek)?;
        // A partition with nothing that recent answers -1: start at its end.
        let past: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .filter(|e| !matches!(e.offset(), Offset::Offset(o) if o >= 0))
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for (t, p) in past {
            let _ = tpl.set_partition_offset(&t, p, Offset::End);
        }
    }
    consumer.assign(&tpl).map_err(TailError::Consumer)?;
    tracing::info!(topics = ?s.topics, partitions = tpl.count(), "tailing");
    Ok(consumer)
}
