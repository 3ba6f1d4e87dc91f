//! exactly_once tests' shared pieces: the positions topic as an operator
//! creates it, a configuration with exactly_once on, and a read_committed
//! consumer of this file's own that counts every numbered line.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::*;

pub const HOST: &str = "eohost";

/// The positions topic, as an operator creates it: compacted.
pub fn create_positions_topic(brokers: &str, name: &str) {
    create_topic_with(brokers, name, 1, &[("cleanup.policy", "compact")]);
}

/// A configuration with exactly_once on, the given positions topic and
/// transaction interval (and transactional id, if any).
pub fn eo_config(
    dir: &Path,
    brokers: &str,
    topic: &str,
    include: &str,
    positions: &str,
    extra_kafka: &str,
) -> PathBuf {
    let path = config_toml(dir, brokers, HOST, topic, include, "", "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[kafka.properties]",
        &format!(
            "exactly_once = true\npositions_topic = \"{positions}\"\ntransaction_interval = \"300ms\"\n{extra_kafka}\n[kafka.properties]"
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// What a read_committed consumer saw of a topic.
pub struct Seen {
    /// Per line number, how many records carried it.
    pub lines: HashMap<usize, usize>,
    /// (generation, offset) of every attributed record.
    pub sources: Vec<(u64, u64)>,
    pub records: usize,
}

impl Seen {
    pub fn missing(&self, total: usize) -> usize {
        (0..total).filter(|n| !self.lines.contains_key(n)).count()
    }

    pub fn duplicated(&self) -> usize {
        self.lines.values().map(|c| c - 1).sum()
    }
}

/// A read_committed consumer of a whole topic, from its beginning.
pub struct CommittedReader {
    consumer: BaseConsumer,
    pub seen: Seen,
}

impl CommittedReader {
    pub fn new(brokers: &str, topic: &str) -> CommittedReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("eo-reader-{topic}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        CommittedReader {
            consumer,
            seen: Seen {
                lines: HashMap::new(),
                sources: Vec::new(),
                records: 0,
            },
        }
    }

    /// One poll; whether a record came.
    pub fn poll_once(&mut self, timeout: Duration) -> bool {
        match self.consumer.poll(timeout) {
            Some(Ok(m)) => {
                let seen = &mut self.seen;
                seen.records += 1;
                let payload = m.payload().unwrap_or_default();
                *seen.lines.entry(line_no(payload)).or_default() += 1;
                let rec = Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    headers: m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let src = rec.source().expect("every record is attributed");
                seen.sources
                    .push((src.generation.expect("generation").0, src.offset));
                true
            }
            Some(Err(e)) => {
                eprintln!("reader: {e}");
                false
            }
            None => false,
        }
    }

    /// Read until `n` distinct lines were seen or the deadline; whether
    /// they were.
    pub fn read_until(&mut self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.seen.lines.len() < n && Instant::now() < deadline {
            self.poll_once(Duration::from_millis(200));
        }
        self.seen.lines.len() >= n
    }

    /// Read until `total` distinct lines were seen and then nothing more
    /// came for a while (a duplicate would arrive after the last line), or
    /// the deadline.
    pub fn finish(mut self, total: usize, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            if self.seen.lines.len() >= total && quiet_since.elapsed() > Duration::from_secs(3) {
                break;
            }
            if self.poll_once(Duration::from_millis(200)) {
                quiet_since = Instant::now();
            }
        }
        self.seen
    }
}

/// Read `topic` with isolation.level=read_committed until `total` distinct
/// lines were seen and then nothing more came for a while, or the deadline.
pub fn read_committed(brokers: &str, topic: &str, total: usize, timeout: Duration) -> Seen {
    CommittedReader::new(brokers, topic).finish(total, timeout)
}

/// Every line once, and one record per (generation, offset).
pub fn assert_exactly_once(seen: &Seen, total: usize, what: &str) {
    let missing = seen.missing(total);
    if missing > 0 {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for n in (0..total).filter(|n| !seen.lines.contains_key(n)) {
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == n => r.1 = n,
                _ => ranges.push((n, n)),
            }
        }
        eprintln!("{what}: missing line ranges {ranges:?}");
    }
    let duplicated = seen.duplicated();
    eprintln!(
        "{what}: {total} lines written, {} records read_committed, {missing} missing, {duplicated} duplicated",
        seen.records
    );
    assert_eq!(missing, 0, "{what}: lines missing");
    assert_eq!(duplicated, 0, "{what}: lines duplicated");
    let distinct: HashSet<_> = seen.sources.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.sources.len(),
        "{what}: two records with the same (generation, offset)"
    );
}
