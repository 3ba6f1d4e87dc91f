//! The Kafka side of shipping: producer settings with logferry's durable
//! defaults, and the producer context that collects delivery reports.
//!
//! Delivery reports are only *collected* here (under an uncontended lock,
//! since librdkafka calls back on the thread that polls, which is the
//! shipping thread); the shipping loop applies them to its [`AckTracker`]s
//! in one place.
//!
//! [`AckTracker`]: crate::ship::acks::AckTracker

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::partition::SourcePartitioner;
use crate::config::DEFAULT_PRODUCER_PROPS;

/// Build the librdkafka configuration: defaults, then the user's
/// properties in order (the last setting of a key wins, as in kcat).
pub fn client_config(brokers: &str, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    cfg.set("client.id", "logferry");
    for (k, v) in DEFAULT_PRODUCER_PROPS {
        cfg.set(*k, *v);
    }
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg.set_log_level(RDKafkaLogLevel::Warning);
    cfg
}

/// The producer logferry ships with.
pub type ShipProducer = rdkafka::producer::BaseProducer<ShipContext, SourcePartitioner>;

/// One delivery report, reduced to what the shipping loop needs.
#[derive(Debug)]
pub enum Delivery {
    Acked {
        opaque: usize,
        cost: usize,
    },
    Failed {
        opaque: usize,
        cost: usize,
        error: KafkaError,
        topic: String,
        /// The record, copied so it can be sent again: a failed line is
        /// retried, never dropped.
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    },
}

/// What one record counts against the in-flight bound: its bytes plus a
/// fixed allowance for librdkafka's per-message bookkeeping, so that many
/// tiny lines are bounded as well as a few large ones.
pub fn record_cost(key_len: usize, payload_len: usize) -> usize {
    key_len + payload_len + 160
}

#[derive(Default)]
pub struct ShipContext {
    deliveries: Mutex<Vec<Delivery>>,
    /// When each distinct librdkafka message was last logged: a broker that
    /// is down or refuses a login repeats the same line many times a
    /// second, which would bury everything else.
    logged: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Installed when attribution travels in the record key.
    partitioner: Option<SourcePartitioner>,
}

impl ShipContext {
    /// A context whose producer partitions by the key form's partitioning
    /// key when `key_form` is set, and as librdkafka does otherwise.
    pub fn new(key_form: bool) -> Self {
        ShipContext {
            partitioner: key_form.then(SourcePartitioner::default),
            ..ShipContext::default()
        }
    }
}

/// The same librdkafka message is logged at most once in this period.
const REPEAT_QUIET: std::time::Duration = std::time::Duration::from_secs(30);

impl ShipContext {
    /// Whether `message` should be logged now (not logged in the last
    /// REPEAT_QUIET). Messages differing only in details after the first
    /// 100 characters count as the same.
    fn first_in_a_while(&self, message: &str) -> bool {
        let key: String = message.chars().take(100).collect();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match logged.get(&key) {
            Some(t) if now.duration_since(*t) < REPEAT_QUIET => false,
            _ => {
                if logged.len() > 1000 {
                    logged.clear();
                }
                logged.insert(key, now);
                true
            }
        }
    }
}

impl ShipContext {
    /// How many reports were collected and not yet taken.
    pub fn reports_waiting(&self) -> usize {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Take every report collected since the last call.
    pub fn take_deliveries(&self, into: &mut Vec<Delivery>) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *d, into);
    }
}

impl ClientContext for ShipContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32)
            && !self.first_in_a_while(log_message)
        {
            return;
        }
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

    fn error(&self, error: KafkaError, reason: &str) {
        // The same event usually arrives through `log` too; only say it
        // again when it has not been said recently. Connection trouble is
        // retried by librdkafka; say so plainly.
        if self.first_in_a_while(reason) {
            tracing::warn!(target: "librdkafka", "{error}: {reason} (retrying)");
        }
    }
}

impl ProducerContext<SourcePartitioner> for ShipContext {
    type DeliveryOpaque = usize;

    fn get_custom_partitioner(&self) -> Option<&SourcePartitioner> {
        self.partitioner.as_ref()
    }

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let report = match result {
            Ok(msg) => Delivery::Acked {
                opaque,
                cost: record_cost(msg.key_len(), msg.payload_len()),
            },
            Err((error, msg)) => Delivery::Failed {
                opaque,
                cost: record_cost(msg.key_len(), msg.payload_len()),
                error: error.clone(),
                topic: msg.topic().to_string(),
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().unwrap_or_default().to_vec(),
                headers: msg
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        };
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(report);
    }
}
