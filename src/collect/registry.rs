//! The registry: the index the collectors of a group share through Kafka,
//! in a compacted topic (`index_topic`, default `logferry-collect-index`).
//! One record per source generation, keyed `HOST/GENERATION`, says where
//! its records are (topic, partition, offset of its first record) and
//! which output directory holds it whole now (`holder`).
//!
//! Why in Kafka: collectors on separate hosts share no disk, and the
//! member that takes a partition over must find the first offset of every
//! generation it did not start, to rebuild it from there (see
//! [`super::custody`]). The rule that makes the lookup sound: a member
//! publishes a generation's first offset, and waits for Kafka to
//! acknowledge it, before it commits any offset past that record
//! ([`Registry::flush`] runs before every commit). So the next owner,
//! which starts at the committed offset and reads the registry to its end
//! first ([`Registry::catch_up`], at every assignment), either finds the
//! entry or meets the generation's first record itself.
//!
//! Every member reads every entry (a few dozen bytes each: about 50 MB
//! for a million generations), and learns from them when another member
//! took over a generation it holds a copy of ([`Registry::take_claims`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::collect::CollectSettings;

/// How long the start-up check and each catch-up may take.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for the registry's acknowledgements before a commit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the collectors' index topic \"{topic}\" does not exist: create it (e.g. kafka-topics.sh --create --topic {topic} --config cleanup.policy=compact --replication-factor 3), name another with index_topic / --index-topic, or turn it off with --no-index-topic (then collectors on separate hosts cannot rebuild generations they did not start)")]
    Missing { topic: String },
    #[error("the collectors' index topic \"{topic}\": {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("the collectors' index topic \"{topic}\": not read to its end within {secs} s")]
    Slow { topic: String, secs: u64 },
}

/// Where one generation's records are, and who holds it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    /// Offset of the generation's first record in that partition.
    pub first: i64,
    /// Id of the output directory that holds it whole now (see
    /// `index::Index::out_id`).
    pub holder: String,
}

/// Counts deliveries that failed, so a flush can tell "all acknowledged"
/// from "nothing left queued".
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!("publishing to the collectors' index failed (published again before the next commit): {e}");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct Registry {
    topic: String,
    /// This output directory's id: claims by others are what matter.
    me: String,
    consumer: BaseConsumer,
    /// Served from the collector's loop ([`Registry::poll`], `flush`), not
    /// by a thread of its own: rdkafka's `ThreadedProducer` polls in a
    /// loop whose last millisecond of each wait is a zero timeout, spun
    /// (about 1 % of a core with nothing to do).
    producer: BaseProducer<Deliveries>,
    /// `HOST/GENERATION` -> placement, as read from the topic (and as
    /// published by this member, before it reads its own records back).
    entries: HashMap<String, Placement>,
    /// Generations another output directory claimed since the last
    /// [`Registry::take_claims`].
    claims: Vec<String>,
    /// Published and not yet known to be acknowledged.
    unflushed: Vec<(String, Placement)>,
    /// Failed deliveries seen so far.
    failed: u64,
}

impl Registry {
    /// Connect, check that the topic exists, and read it to its end.
    pub fn open(settings: &CollectSettings, topic: &str, me: &str) -> Result<Self, RegistryError> {
        let err = |source| RegistryError::Kafka {
            topic: topic.to_string(),
            source,
        };
        let mut ccfg = ClientConfig::new();
        let mut pcfg = ClientConfig::new();
        pcfg.set("bootstrap.servers", &settings.brokers);
        for (k, v) in settings.consumer_props() {
            ccfg.set(k, v);
        }
        for (k, v) in &settings.kafka_props {
            // Security settings and the like apply to both clients;
            // consumer-only ones would only draw librdkafka's warnings.
            if !k.starts_with("auto.") && !k.starts_with("fetch.") && !k.starts_with("group.") {
                pcfg.set(k, v);
            }
        }
        ccfg.set("enable.auto.offset.store", "false");
        // Entries are small: no need for librdkafka's 64 MiB prefetch.
        ccfg.set("queued.max.messages.kbytes", "1024");
        pcfg.set("acks", "all").set("enable.idempotence", "true");
        pcfg.set("linger.ms", "5");
        let consumer: BaseConsumer = ccfg.create().map_err(err)?;
        let producer: BaseProducer<Deliveries> = pcfg
            .create_with_context(Deliveries::default())
            .map_err(err)?;
        let md = consumer
            .fetch_metadata(Some(topic), CATCH_UP_TIMEOUT)
            .map_err(err)?;
        let partitions = match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions().len(),
            _ => {
                return Err(RegistryError::Missing {
                    topic: topic.to_string(),
                })
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(err)?;
        }
        consumer.assign(&tpl).map_err(err)?;
        let mut reg = Registry {
            topic: topic.to_string(),
            me: me.to_string(),
            consumer,
            producer,
            entries: HashMap::new(),
            claims: Vec::new(),
            unflushed: Vec::new(),
            failed: 0,
        };
        reg.catch_up()?;
        tracing::info!(
            topic,
            generations = reg.entries.len(),
            "collectors' index read"
        );
        Ok(reg)
    }

    /// Read the topic up to the high watermarks it has now: every entry
    /// acknowledged before this call is known after it.
    pub fn catch_up(&mut self) -> Result<(), RegistryError> {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let topic = self.topic.clone();
        let err = |source| RegistryError::Kafka {
            topic: topic.clone(),
            source,
        };
        let assigned = self.consumer.assignment().map_err(err)?;
        let mut marks = Vec::new();
        for e in assigned.elements() {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, e.partition(), CATCH_UP_TIMEOUT)
                .map_err(err)?;
            marks.push((e.partition(), high));
        }
        loop {
            let positions = self.consumer.position().map_err(err)?;
            let behind = marks.iter().any(|&(p, high)| {
                high > 0
                    && positions
                        .find_partition(&self.topic, p)
                        .is_none_or(|e| match e.offset() {
                            Offset::Offset(o) => o < high,
                            _ => true,
                        })
            });
            if !behind {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(RegistryError::Slow {
                    topic: self.topic.clone(),
                    secs: CATCH_UP_TIMEOUT.as_secs(),
                });
            }
            self.read(Duration::from_millis(100));
        }
    }

    /// Read what arrived, and serve the delivery reports of what was
    /// published, without waiting.
    pub fn poll(&mut self) {
        self.producer.poll(Duration::ZERO);
        self.read(Duration::ZERO);
    }

    fn read(&mut self, first_wait: Duration) {
        let mut wait = first_wait;
        for _ in 0..10_000 {
            match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    let (Some(k), Some(v)) = (m.key(), m.payload()) else {
                        continue;
                    };
                    let (Ok(key), Ok(p)) = (
                        std::str::from_utf8(k),
                        serde_json::from_slice::<Placement>(v),
                    ) else {
                        tracing::debug!(
                            offset = m.offset(),
                            "index topic: a record that is not a placement, skipped"
                        );
                        continue;
                    };
                    if p.holder != self.me {
                        self.claims.push(key.to_string());
                    }
                    self.entries.insert(key.to_string(), p);
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, "reading the collectors' index: {e}");
                    return;
                }
                None => return,
            }
            wait = Duration::ZERO;
        }
    }

    pub fn lookup(&self, key: &str) -> Option<&Placement> {
        self.entries.get(key)
    }

    /// Say where `key`'s records are and that this output directory holds
    /// it whole. Acknowledged by [`Registry::flush`].
    pub fn publish(&mut self, key: &str, placement: Placement) {
        self.send(key, &placement);
        self.entries.insert(key.to_string(), placement.clone());
        self.unflushed.push((key.to_string(), placement));
    }

    fn send(&self, key: &str, placement: &Placement) {
        let Ok(value) = serde_json::to_vec(placement) else {
            return;
        };
        let mut record = BaseRecord::to(&self.topic).key(key).payload(&value);
        // The queue is far larger than the few records a sync publishes;
        // when it is full, wait for room rather than drop one.
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    self.producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Wait until everything published is acknowledged (before offsets
    /// are committed past the records it describes).
    pub fn flush(&mut self) -> Result<(), RegistryError> {
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let flushed = self.wait_acknowledged();
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        let result = match flushed {
            Err(source) => Err(source),
            Ok(()) if failed != self.failed => Err(KafkaError::Flush(
                rdkafka::types::RDKafkaErrorCode::MessageTimedOut,
            )),
            Ok(()) => Ok(()),
        };
        self.failed = failed;
        match result {
            Ok(()) => {
                self.unflushed.clear();
                Ok(())
            }
            Err(source) => {
                // Which ones failed is not known: send them all again
                // (last writer wins per key, and they say the same).
                for (k, p) in &self.unflushed {
                    self.send(k, p);
                }
                Err(RegistryError::Kafka {
                    topic: self.topic.clone(),
                    source,
                })
            }
        }
    }

    /// Serve delivery reports until nothing published is unanswered.
    /// Not rdkafka's `flush`: it waits a whole 100 ms poll whenever
    /// anything is still out, at every sync that published.
    fn wait_acknowledged(&self) -> Result<(), KafkaError> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            // One report event a call; a few serve what came together.
            for _ in 0..16 {
                self.producer.poll(Duration::ZERO);
            }
            if self.producer.in_flight_count() == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Generations another output directory claimed since the last call.
    pub fn take_claims(&mut self) -> Vec<String> {
        let mut claims = std::mem::take(&mut self.claims);
        // Only the latest word counts: a claim since given back is none.
        claims.retain(|k| self.entries.get(k).is_some_and(|p| p.holder != self.me));
        claims.sort();
        claims.dedup();
        claims
    }
}
