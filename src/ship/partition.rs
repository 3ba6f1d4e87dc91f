//! The partitioner used when attribution travels in the record key.
//!
//! librdkafka would hash the whole key, and the key form changes with every
//! line (it carries the offset), which would scatter each file over every
//! partition and break batching. So logferry installs its own partitioner,
//! which reads the partitioning key carried at the front of the key form:
//!
//! - a non-empty partitioning key is hashed exactly as librdkafka's default
//!   (`consistent_random`: CRC-32 of the key, modulo the partition count),
//!   so a request id lands in the same partition whether attribution is in
//!   the key or in a header, and agents of either kind agree;
//! - an empty one (`partition_by = "none"`) gets a sticky partition, as
//!   librdkafka gives keyless records: one partition per topic for a short
//!   window, so batches fill, then another.
//!
//! The default, `partition_by = "generation"`, is a non-empty key (host
//! and generation: `wire::generation_partition_key`), so each generation
//! keeps to one partition and its lines stay in file order there.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rdkafka::producer::Partitioner;

use crate::wire::partition_key_of;

/// How long a keyless topic sticks to one partition: librdkafka's default
/// for `sticky.partitioning.linger.ms`.
const STICKY_WINDOW_MS: u128 = 10;

pub struct SourcePartitioner {
    /// Random per process, so a fleet of agents does not stick to the same
    /// partition in the same window.
    seed: std::collections::hash_map::RandomState,
    start: Instant,
    /// The current window's choice per topic (by topic hash; a collision
    /// only costs a new choice): `window << 32 | tag << 16 | partition`.
    /// Asking librdkafka whether a partition has a leader takes locks that
    /// its broker threads also take; once per window is enough.
    chosen: [AtomicU64; CHOICE_SLOTS],
}

const CHOICE_SLOTS: usize = 64;

impl Default for SourcePartitioner {
    fn default() -> Self {
        SourcePartitioner {
            seed: std::collections::hash_map::RandomState::new(),
            start: Instant::now(),
            chosen: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }
}

impl SourcePartitioner {
    /// The partition librdkafka's default partitioner gives a non-empty key.
    pub fn consistent(key: &[u8], partition_cnt: i32) -> i32 {
        let cnt = partition_cnt.max(1) as u32;
        (crc32fast::hash(key) % cnt) as i32
    }

    fn sticky(
        &self,
        topic: &str,
        window: u128,
        partition_cnt: i32,
        available: impl Fn(i32) -> bool,
    ) -> i32 {
        let cnt = partition_cnt.clamp(1, 0xffff) as u64;
        let h = self.seed.hash_one(topic);
        let slot = &self.chosen[(h % CHOICE_SLOTS as u64) as usize];
        let (window, tag) = (window as u64 & 0xffff_ffff, h >> 48);
        let cur = slot.load(Ordering::Relaxed);
        if cur >> 32 == window && (cur >> 16) & 0xffff == tag && (cur & 0xffff) < cnt {
            return (cur & 0xffff) as i32;
        }
        let first = self.seed.hash_one((h, window)) % cnt;
        // Prefer a partition with a leader; if none has one, librdkafka
        // queues the record on the first choice until one appears.
        let p = (0..cnt)
            .map(|i| (first + i) % cnt)
            .find(|&p| available(p as i32))
            .unwrap_or(first);
        slot.store(window << 32 | tag << 16 | p, Ordering::Relaxed);
        p as i32
    }
}

impl Partitioner for SourcePartitioner {
    fn partition(
        &self,
        topic_name: &str,
        key: Option<&[u8]>,
        partition_cnt: i32,
        is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        match key.map(|k| partition_key_of(k).unwrap_or(k)) {
            Some(pkey) if !pkey.is_empty() => Self::consistent(pkey, partition_cnt),
            _ => {
                let window = self.start.elapsed().as_millis() / STICKY_WINDOW_MS;
                self.sticky(topic_name, window, partition_cnt, is_partition_available)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_source_key, source_tail};
    use logferry_tail::FileId;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;
    use std::time::Duration;

    fn key_form(pkey: &[u8], offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_source_key(
            &mut out,
            pkey,
            logferry_tail::GenerationId(7),
            FileId { dev: 1, ino: 2 },
            offset,
            false,
            &source_tail("h", b"/p"),
        );
        out
    }

    #[test]
    fn keyed_records_follow_the_partitioning_key_not_the_offset() {
        let p = SourcePartitioner::default();
        for pkey in [&b"req-1"[..], b"req-2", b"web1\x00\x01"] {
            let want = SourcePartitioner::consistent(pkey, 12);
            for offset in [0, 1, 999, u64::MAX] {
                assert_eq!(
                    p.partition("t", Some(&key_form(pkey, offset)), 12, |_| true),
                    want
                );
            }
        }
    }

    #[test]
    fn keyless_records_stick_within_a_window_and_skip_unavailable_partitions() {
        let p = SourcePartitioner::default();
        let a = p.sticky("t", 7, 6, |_| true);
        assert_eq!(a, p.sticky("t", 7, 6, |_| true));
        assert!((0..6).contains(&a));
        // A new choice skips partitions without a leader, and is kept for
        // the window without asking librdkafka again.
        let q = SourcePartitioner::default();
        assert_eq!(q.sticky("t", 7, 6, |x| x == 3), 3);
        assert_eq!(q.sticky("t", 7, 6, |_| panic!("asked again")), 3);
        // Over many windows, every partition gets a turn.
        let seen: std::collections::HashSet<i32> =
            (0..200).map(|w| p.sticky("t", w, 6, |_| true)).collect();
        assert_eq!(seen.len(), 6);
        // The whole-record path: an empty partitioning key is keyless.
        let now = p.partition("t", Some(&key_form(b"", 5)), 6, |_| true);
        assert!((0..6).contains(&now));
    }

    /// The partition of a non-empty key must equal what librdkafka's
    /// default partitioner picks for the same key as a plain record key:
    /// agents with attribution in a header and in the key then agree.
    #[test]
    fn consistent_matches_librdkafkas_default_partitioner() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("parts", 7, 1).expect("topic");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        let keys: Vec<String> = (0..50).map(|i| format!("request-{i}")).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Wait for the topic's metadata so partitions are assigned at once.
        while producer
            .client()
            .fetch_metadata(Some("parts"), Duration::from_secs(1))
            .map_or(true, |m| m.topics()[0].partitions().len() != 7)
        {
            assert!(Instant::now() < deadline, "mock topic metadata");
        }
        for k in &keys {
            producer
                .send(BaseRecord::<str, str>::to("parts").key(k).payload(k))
                .expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "check")
            .create()
            .expect("consumer");
        use rdkafka::consumer::Consumer;
        use rdkafka::Message;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..7 {
            tpl.add_partition_offset("parts", p, rdkafka::Offset::Beginning)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        let mut seen = 0;
        while seen < keys.len() {
            assert!(
                Instant::now() < deadline,
                "read back {seen} of {}",
                keys.len()
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let k = m.key().expect("key");
                assert_eq!(
                    m.partition(),
                    SourcePartitioner::consistent(k, 7),
                    "key {}",
                    String::from_utf8_lossy(k)
                );
                seen += 1;
            }
        }
    }
}
