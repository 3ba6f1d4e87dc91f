//! Kafka side of the benchmark: topics, landed-record counts, read-back.
//!
//! Topics are created with `message.timestamp.type=LogAppendTime`: the
//! broker stamps every batch when its leader appends it, so the read-back can
//! run after the tool stopped (not competing for the two cores during the
//! measurement) and still know when each line landed. Latency is that stamp
//! minus the write time in the line; the stamp has millisecond resolution,
//! and on a replicated topic it is the leader's append, a little before the
//! acks=all acknowledgement.

use crate::line::parse_marker;
use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating Kafka admin client")
}

/// Creates `topic` (replication = min(3, nodes), min.insync = RF-1 or 1,
/// as `scripts/kafka topic` does) and waits until its metadata is visible.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32, nodes: i32) -> Result<()> {
    create_topic_with(brokers, topic, partitions, nodes, &[])
}

/// [`create_topic`] with extra topic configuration (e.g. a compacted
/// positions topic for logferry's exactly_once mode).
pub fn create_topic_with(
    brokers: &str,
    topic: &str,
    partitions: i32,
    nodes: i32,
    config: &[(&str, &str)],
) -> Result<()> {
    let rf = nodes.clamp(1, 3);
    let isr = if rf >= 3 { 2 } else { 1 }.to_string();
    let admin = admin(brokers)?;
    let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf))
        .set("message.timestamp.type", "LogAppendTime")
        .set("min.insync.replicas", &isr);
    for (k, v) in config {
        nt = nt.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(TIMEOUT))
        .request_timeout(Some(TIMEOUT));
    let res =
        futures_executor::block_on(admin.create_topics([&nt], &opts)).context("create_topics")?;
    for r in res {
        if let Err((t, code)) = r {
            bail!("creating topic {t}: {code}");
        }
    }
    // Wait for every partition to have a leader, else the first produce
    // attempts would measure metadata propagation.
    let c = consumer(brokers)?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().first() {
                if t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
                {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leaders after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Deletes a topic (to keep the benchmark's disk use bounded). Best effort.
pub fn delete_topic(brokers: &str, topic: &str) {
    if let Ok(admin) = admin(brokers) {
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let _ = futures_executor::block_on(admin.delete_topics(&[topic], &opts));
    }
}

/// Number of partitions of an existing topic.
pub fn partition_count(brokers: &str, topic: &str) -> Result<i32> {
    let md = consumer(brokers)?
        .fetch_metadata(Some(topic), TIMEOUT)
        .context("fetching metadata")?;
    match md.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().len() as i32)
        }
        _ => bail!("topic {topic} not found"),
    }
}

fn consumer(brokers: &str) -> Result<BaseConsumer> {
    consumer_config(brokers)
        .create()
        .context("creating Kafka consumer")
}

/// librdkafka's default isolation.level, read_committed, is kept: records
/// of aborted transactions (logferry's exactly_once) are not counted.
fn consumer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", "lfbench-readback")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Large fetches: the read-back of a 2 GB topic should be quick.
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "16777216")
        .set("queued.max.messages.kbytes", "262144");
    c
}

/// Counts records in a topic from its high watermarks (records landed,
/// duplicates included: an idempotent, non-transactional producer leaves no
/// gaps in offsets).
pub struct Counter {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl Counter {
    pub fn new(brokers: &str, topic: &str, partitions: i32) -> Result<Self> {
        Ok(Counter {
            consumer: consumer(brokers)?,
            topic: topic.to_string(),
            partitions,
        })
    }

    pub fn high_watermarks(&self) -> Result<Vec<i64>> {
        (0..self.partitions)
            .map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                    .map(|(_, hi)| hi)
                    .with_context(|| format!("watermarks of {}/{p}", self.topic))
            })
            .collect()
    }

    pub fn landed(&self) -> Result<i64> {
        Ok(self.high_watermarks()?.iter().sum())
    }
}

/// Latencies in 1 ms buckets up to 10 minutes; anything beyond lands in the
/// last bucket (and is reported as ">= 600000").
pub const LAT_BUCKETS: usize = 600_001;

/// What the read-back found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadBack {
    pub records: u64,
    /// Lines in the records (more than records where a record holds
    /// several, split at newlines).
    pub lines: u64,
    /// Sum of record value lengths plus one per record (the newline the
    /// shipper strips), comparable to the bytes written.
    pub bytes: u64,
    pub unparsed: u64,
    /// Expected lines never seen.
    pub missing: u64,
    /// Extra copies of lines seen more than once.
    pub duplicates: u64,
    /// Records whose marker names a line that was never written.
    pub unexpected: u64,
    pub first_append_ms: i64,
    pub last_append_ms: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Records without a LogAppendTime stamp (should be none).
    pub no_timestamp: u64,
}

/// Reads the whole topic back and checks it against `expected[file] = lines`.
/// Lines a rotation scenario wrote are `0..expected[file]` per file index.
pub fn read_back(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expected: &[u64],
) -> Result<ReadBack> {
    let counter = Counter::new(brokers, topic, partitions)?;
    let highs = counter.high_watermarks()?;
    // Partition EOF ends a partition too: a transactional producer's
    // commit markers take offsets (the last one the high watermark's) that
    // no consumer is given, so the offsets seen never reach it.
    let c: BaseConsumer = consumer_config(brokers)
        .set("enable.partition.eof", "true")
        .create()
        .context("creating Kafka consumer")?;
    let c = &c;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| anyhow!("assign {topic}/{p}: {e}"))?;
    }
    c.assign(&tpl).context("assigning partitions")?;

    // Seen-count per line; u8 saturates, which is plenty to count duplicates.
    let mut seen: Vec<Vec<u8>> = expected.iter().map(|&n| vec![0u8; n as usize]).collect();
    let mut hist = vec![0u64; LAT_BUCKETS];
    let mut rb = ReadBack {
        first_append_ms: i64::MAX,
        last_append_ms: i64::MIN,
        ..Default::default()
    };
    let mut next: Vec<i64> = vec![0; partitions as usize];
    let mut eof = vec![false; partitions as usize];
    let done = |next: &[i64], eof: &[bool]| {
        next.iter()
            .zip(&highs)
            .zip(eof)
            .all(|((n, h), e)| n >= h || *e)
    };
    let mut last_progress = Instant::now();
    while !done(&next, &eof) {
        if last_progress.elapsed() > TIMEOUT {
            bail!("read-back of {topic} stalled: at offsets {next:?} of {highs:?}");
        }
        let msg = match c.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(e) = eof.get_mut(p as usize) {
                    *e = true;
                }
                continue;
            }
            Some(m) => m.with_context(|| format!("reading {topic}"))?,
        };
        last_progress = Instant::now();
        let p = msg.partition() as usize;
        if p < next.len() {
            next[p] = next[p].max(msg.offset() + 1);
        }
        let value = msg.payload().unwrap_or_default();
        rb.records += 1;
        rb.bytes += value.len() as u64 + 1;
        let append_ms = match msg.timestamp() {
            Timestamp::LogAppendTime(ms) => Some(ms),
            _ => {
                rb.no_timestamp += 1;
                None
            }
        };
        if let Some(ms) = append_ms {
            rb.first_append_ms = rb.first_append_ms.min(ms);
            rb.last_append_ms = rb.last_append_ms.max(ms);
        }
        // A record may hold several lines (logferry's pack_bytes): each
        // is counted on its own, split here at newlines, trusting no flag.
        for line in value.split(|&b| b == b'\n') {
            rb.lines += 1;
            let Some(m) = parse_marker(line) else {
                rb.unparsed += 1;
                continue;
            };
            match seen
                .get_mut(m.file as usize)
                .and_then(|v| v.get_mut(m.seq as usize))
            {
                Some(n) => *n = n.saturating_add(1),
                None => rb.unexpected += 1,
            }
            if let Some(ms) = append_ms {
                // Write time in µs vs append time in ms: floor both to ms.
                let lat = (ms - (m.ts_us / 1000) as i64).max(0) as usize;
                hist[lat.min(LAT_BUCKETS - 1)] += 1;
            }
        }
    }
    for v in &seen {
        for &n in v {
            match n {
                0 => rb.missing += 1,
                n => rb.duplicates += u64::from(n - 1),
            }
        }
    }
    let total: u64 = hist.iter().sum();
    if total > 0 {
        rb.p50_ms = percentile(&hist, total, 0.50);
        rb.p99_ms = percentile(&hist, total, 0.99);
        rb.max_ms = hist.iter().rposition(|&n| n > 0).map(|i| i as f64);
    }
    if rb.records == 0 {
        rb.first_append_ms = 0;
        rb.last_append_ms = 0;
    }
    Ok(rb)
}

pub fn percentile(hist: &[u64], total: u64, q: f64) -> Option<f64> {
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (i, &n) in hist.iter().enumerate() {
        acc += n;
        if acc >= rank {
            return Some(i as f64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_from_histogram() {
        let mut h = vec![0u64; 100];
        h[1] = 50;
        h[10] = 49;
        h[90] = 1;
        assert_eq!(percentile(&h, 100, 0.5), Some(1.0));
        assert_eq!(percentile(&h, 100, 0.99), Some(10.0));
        assert_eq!(percentile(&h, 100, 1.0), Some(90.0));
    }
}
