//! Exactly-once positions in Kafka: the record that carries an agent's file
//! positions in the same transaction as the lines they advance, and reading
//! the last committed one back at start.
//!
//! The record's key is the agent's transactional id; its value is the
//! checkpoint file's own encoding (`Checkpointer::encode`), zstd-compressed;
//! the compressed-file watermark travels in a header. It goes to one
//! partition chosen from the key (CRC-32 modulo the partition count), so a
//! reader knows where to look without scanning the topic, which is
//! compacted: only the last record per agent is kept.
//!
//! Positions take about 64 bytes per followed file compressed, so past
//! some 8,000 files they would outgrow a record (the broker's
//! `max.message.bytes`, 1 MB by default). The compressed value is then cut
//! into parts of at most [`PART_BYTES`]: the first under the agent's key
//! (with the part count and the CRC-32 of the whole in headers), the others
//! under `KEY\0N`, all in the same transaction and partition, the first
//! written last. A reader joins the latest of each and checks the CRC.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use logferry_tail::{Checkpointer, FileCheckpoint};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The header that carries the compressed-file watermark.
pub const WATERMARK_HEADER: &str = "examined_until";
/// Headers of a value cut into parts: how many, and the CRC-32 of the
/// whole compressed value.
pub const PARTS_HEADER: &str = "parts";
pub const CRC_HEADER: &str = "crc32";
/// The largest part: well under the broker's default `max.message.bytes`
/// (1 MB) and librdkafka's `message.max.bytes`, with room for the key
/// and headers.
pub const PART_BYTES: usize = 512 * 1024;
/// zstd level: positions are small and written once a second.
const ZSTD_LEVEL: i32 = 3;
/// How long reading the positions back at start may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    #[error("the positions topic \"{topic}\" does not exist; exactly_once needs it (logferry never creates topics). Create it compacted, for example: kafka-topics.sh --bootstrap-server BROKERS --create --topic {topic} --partitions 1 --replication-factor 3 --config cleanup.policy=compact --config min.insync.replicas=2")]
    Missing { topic: String },
    #[error("cannot read the positions topic \"{topic}\": {error}")]
    Kafka { topic: String, error: KafkaError },
    #[error("reading the positions topic \"{topic}\" partition {partition} did not reach its end within {secs} s")]
    Timeout {
        topic: String,
        partition: i32,
        secs: u64,
    },
    #[error("the positions record in \"{topic}\" cannot be read: {reason}")]
    Corrupt { topic: String, reason: String },
}

/// The partition of `topic` (with `partitions` partitions) that holds the
/// positions of the agent `key`.
pub fn partition_for(key: &str, partitions: usize) -> i32 {
    (crc32fast::hash(key.as_bytes()) as usize % partitions.max(1)) as i32
}

/// The compressed value for `entries`: the checkpoint file's encoding,
/// zstd.
pub fn encode(entries: &[FileCheckpoint]) -> Vec<u8> {
    zstd::bulk::compress(&Checkpointer::encode(entries), ZSTD_LEVEL)
        .expect("compressing into memory cannot fail")
}

/// An encoded value cut into record-sized parts: `parts()[0]` goes under
/// the agent's key, part N under [`part_key`]`(key, N)`.
#[derive(Debug)]
pub struct Parts {
    value: Vec<u8>,
}

impl Parts {
    pub fn new(value: Vec<u8>) -> Parts {
        Parts { value }
    }

    pub fn parts(&self) -> Vec<&[u8]> {
        if self.value.is_empty() {
            return vec![&[]];
        }
        self.value.chunks(PART_BYTES).collect()
    }

    /// The CRC-32 of the whole value, which a reader checks after joining.
    pub fn crc(&self) -> u32 {
        crc32fast::hash(&self.value)
    }
}

/// The key of part `n` (from 1) of agent `key`'s positions. NUL cannot
/// appear in a transactional id, so no agent's key is another's part.
pub fn part_key(key: &str, n: usize) -> String {
    format!("{key}\0{n}")
}

/// The entries of a record value.
pub fn decode(topic: &str, value: &[u8]) -> Result<Vec<FileCheckpoint>, PositionsError> {
    let json = zstd::stream::decode_all(value).map_err(|e| corrupt(topic, e.to_string()))?;
    Checkpointer::decode(Path::new(topic), &json).map_err(|e| corrupt(topic, e.to_string()))
}

fn corrupt(topic: &str, reason: String) -> PositionsError {
    PositionsError::Corrupt {
        topic: topic.to_string(),
        reason,
    }
}

/// Whether a librdkafka property is about reaching and authenticating to
/// the brokers, which a consumer needs as much as the producer.
fn is_connection_property(key: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "security.",
        "sasl.",
        "ssl.",
        "ssl_",
        "socket.",
        "broker.",
        "reconnect.",
        "api.version",
        "client.dns.lookup",
        "metadata.",
        "topic.metadata.",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The number of partitions of `topic`, or `Missing`.
pub fn partitions(
    client: &rdkafka::client::Client<impl rdkafka::client::ClientContext>,
    topic: &str,
) -> Result<usize, PositionsError> {
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(|error| PositionsError::Kafka {
            topic: topic.to_string(),
            error,
        })?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(PositionsError::Missing {
            topic: topic.to_string(),
        }),
    }
}

/// Committed positions: the entries and the compressed-file watermark.
pub type Committed = (Vec<FileCheckpoint>, Option<u64>);

/// The last committed positions of agent `key` (entries and watermark), or
/// None when it never committed any. Read with `read_committed` from the
/// partition's beginning to its last stable offset; call it after the
/// producer's `init_transactions`, which ends a transaction the previous
/// process left open, so the last stable offset is not held back by it.
pub fn read_committed(
    brokers: &str,
    props: &[(String, String)],
    topic: &str,
    partition: i32,
    key: &str,
) -> Result<Option<Committed>, PositionsError> {
    let kafka = |error| PositionsError::Kafka {
        topic: topic.to_string(),
        error,
    };
    let mut cfg = ClientConfig::new();
    // The user's connection and security properties, not the producer's
    // own (the consumer would warn about each).
    for (k, v) in props.iter().filter(|(k, _)| is_connection_property(k)) {
        cfg.set(k, v);
    }
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", "logferry-positions-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("client.id", "logferry-positions")
        .set_log_level(RDKafkaLogLevel::Error);
    let consumer: BaseConsumer = cfg.create().map_err(kafka)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .map_err(kafka)?;
    if high <= low {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(kafka)?;
    consumer.assign(&tpl).map_err(kafka)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut last: Option<Head> = None;
    let mut parts = HashMap::new();
    let part_prefix = part_key(key, 0);
    let part_prefix = &part_prefix.as_bytes()[..part_prefix.len() - 1];
    loop {
        if Instant::now() >= deadline {
            return Err(PositionsError::Timeout {
                topic: topic.to_string(),
                partition,
                secs: READ_TIMEOUT.as_secs(),
            });
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(kafka(e)),
            Some(Ok(m)) => {
                let Some(k) = m.key() else { continue };
                if let Some(n) = k.strip_prefix(part_prefix) {
                    let n = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok());
                    if let (Some(n), Some(value)) = (n, m.payload()) {
                        parts.insert(n, value.to_vec());
                    }
                    continue;
                }
                if k != key.as_bytes() {
                    continue;
                }
                let Some(value) = m.payload() else {
                    // A tombstone: positions deleted by the operator.
                    last = None;
                    continue;
                };
                let header = |name: &str| -> Option<u64> {
                    m.headers().and_then(|hs| {
                        hs.iter()
                            .find(|h| h.key == name)
                            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                    })
                };
                last = Some(Head {
                    value: value.to_vec(),
                    mark: header(WATERMARK_HEADER),
                    parts: header(PARTS_HEADER).unwrap_or(1) as usize,
                    crc: header(CRC_HEADER),
                });
            }
        }
    }
    match last {
        None => Ok(None),
        Some(head) => {
            let mark = head.mark;
            let value = head.join(topic, parts)?;
            Ok(Some((decode(topic, &value)?, mark)))
        }
    }
}

/// The first part of the last committed positions, as read.
struct Head {
    value: Vec<u8>,
    mark: Option<u64>,
    parts: usize,
    crc: Option<u64>,
}

impl Head {
    /// The whole value: this part and the latest of parts 1.. after it
    /// (written in the same transaction), checked against the CRC.
    fn join(
        self,
        topic: &str,
        mut rest: HashMap<usize, Vec<u8>>,
    ) -> Result<Vec<u8>, PositionsError> {
        let mut value = self.value;
        for n in 1..self.parts {
            let part = rest
                .remove(&n)
                .ok_or_else(|| corrupt(topic, format!("part {n} of {} is missing", self.parts)))?;
            value.extend_from_slice(&part);
        }
        match self.crc {
            Some(crc) if u64::from(crc32fast::hash(&value)) != crc => Err(corrupt(
                topic,
                format!("the {} parts joined do not match their CRC-32", self.parts),
            )),
            _ => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_in_range() {
        assert_eq!(partition_for("logferry-a-1", 1), 0);
        let p = partition_for("logferry-host-0123abcd", 6);
        assert!((0..6).contains(&p));
        assert_eq!(p, partition_for("logferry-host-0123abcd", 6));
    }

    #[test]
    fn a_record_value_decodes_to_the_entries_it_was_made_from() {
        let cp = Checkpointer::encode(&[]);
        assert!(!cp.is_empty());
        let v = encode(&[]);
        assert_eq!(decode("t", &v).unwrap(), Vec::<FileCheckpoint>::new());
        assert!(decode("t", b"not zstd").is_err());
    }

    /// Realistic entries of `n` followed files: random hashes (what
    /// compresses least), paths in a few hundred directories.
    pub(crate) fn entries(n: usize) -> Vec<FileCheckpoint> {
        use logferry_tail::{Anchor, FileId, Fingerprint, GenerationId};
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| FileCheckpoint {
                generation: GenerationId(rnd()),
                id: FileId {
                    dev: 2049,
                    ino: 1_000_000 + i as u64,
                },
                fingerprint: Fingerprint {
                    len: 256,
                    hash: rnd(),
                },
                anchor: Anchor {
                    at: 40_000 + rnd() % 1_000_000,
                    len: 256,
                    hash: rnd(),
                },
                position: 40_256 + rnd() % 1_000_000,
                size: 1_100_000,
                path: format!("/var/log/app/site-{}/worker-{}.log", i / 50, i % 50),
                updated: 1_796_000_000 + rnd() % 100,
                born: Some(1_796_000_000_000_000_000 + rnd() % 1_000_000_000),
                unfinished: false,
                seen: None,
                read_to_end: false,
            })
            .collect()
    }

    #[test]
    fn positions_of_many_files_are_cut_into_parts_and_joined_back() {
        let many = entries(100_000);
        let parts = Parts::new(encode(&many));
        let cut = parts.parts();
        // About 64 bytes a file: 6.4 MB in 13 parts.
        assert!(cut.len() > 5, "{} parts", cut.len());
        assert!(cut.iter().all(|p| p.len() <= PART_BYTES));
        let head = Head {
            value: cut[0].to_vec(),
            mark: Some(7),
            parts: cut.len(),
            crc: Some(u64::from(parts.crc())),
        };
        let rest: HashMap<usize, Vec<u8>> = cut
            .iter()
            .enumerate()
            .skip(1)
            .map(|(n, p)| (n, p.to_vec()))
            .collect();
        let joined = head.join("t", rest.clone()).unwrap();
        assert_eq!(decode("t", &joined).unwrap(), many);
        // A part missing or from another commit is an error, not positions.
        let head = || Head {
            value: cut[0].to_vec(),
            mark: None,
            parts: cut.len(),
            crc: Some(u64::from(parts.crc())),
        };
        let mut missing = rest.clone();
        missing.remove(&3);
        assert!(head().join("t", missing).is_err());
        let mut stale = rest;
        stale.insert(2, cut[1].to_vec());
        assert!(head().join("t", stale).is_err());
    }

    #[test]
    fn one_part_positions_need_no_part_headers() {
        let parts = Parts::new(encode(&entries(10)));
        assert_eq!(parts.parts().len(), 1);
        let head = Head {
            value: parts.parts()[0].to_vec(),
            mark: None,
            parts: 1,
            crc: None,
        };
        assert_eq!(
            decode("t", &head.join("t", HashMap::new()).unwrap()).unwrap(),
            entries(10)
        );
    }
}
