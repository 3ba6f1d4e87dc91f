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

/// The record value for `entries`: the checkpoint file's encoding, zstd.
pub fn encode(entries: &[FileCheckpoint]) -> Vec<u8> {
    zstd::bulk::compress(&Checkpointer::encode(entries), ZSTD_LEVEL)
        .expect("compressing into memory cannot fail")
}

/// The entries of a record value.
pub fn decode(topic: &str, value: &[u8]) -> Result<Vec<FileCheckpoint>, PositionsError> {
    let corrupt = |reason: String| PositionsError::Corrupt {
        topic: topic.to_string(),
        reason,
    };
    let json = zstd::stream::decode_all(value).map_err(|e| corrupt(e.to_string()))?;
    Checkpointer::decode(Path::new(topic), &json).map_err(|e| corrupt(e.to_string()))
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
    let mut last: Option<(Vec<u8>, Option<u64>)> = None;
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
                if m.key() != Some(key.as_bytes()) {
                    continue;
                }
                let Some(value) = m.payload() else {
                    // A tombstone: positions deleted by the operator.
                    last = None;
                    continue;
                };
                let mark = m.headers().and_then(|hs| {
                    hs.iter()
                        .find(|h| h.key == WATERMARK_HEADER)
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                });
                last = Some((value.to_vec(), mark));
            }
        }
    }
    match last {
        None => Ok(None),
        Some((value, mark)) => Ok(Some((decode(topic, &value)?, mark))),
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
}
