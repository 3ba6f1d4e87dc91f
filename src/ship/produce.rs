//! The Kafka side of shipping: producer settings with logferry's durable
//! defaults, and the producer context that collects delivery reports.
//!
//! Delivery reports are only *collected* here (under an uncontended lock,
//! since librdkafka calls back on the thread that polls, which is the
//! shipping thread); the shipping loop applies them to its [`AckTracker`]s
//! in one place.
//!
//! [`AckTracker`]: crate::ship::acks::AckTracker

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;

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
    /// Boxed: reports queue up by the thousand between services, and
    /// nearly all are acks, which need not be the size of a failure.
    Failed {
        opaque: usize,
        cost: usize,
        failure: Box<Failure>,
    },
}

/// What a failed delivery hands back.
#[derive(Debug)]
pub struct Failure {
    pub error: KafkaError,
    pub topic: String,
    /// The record, copied so it can be sent again: a failed line is
    /// retried, never dropped.
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What one record counts against the in-flight bound: its bytes plus a
/// fixed allowance for librdkafka's per-message bookkeeping, so that many
/// tiny lines are bounded as well as a few large ones.
pub fn record_cost(key_len: usize, payload_len: usize) -> usize {
    key_len + payload_len + 160
}

/// What went wrong, coarsely, for the `kind` label of error counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Transport,
    AllBrokersDown,
    Timeout,
    UnknownTopic,
    TooLarge,
    Auth,
    NotEnoughReplicas,
    QueueFull,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Transport,
        ErrorKind::AllBrokersDown,
        ErrorKind::Timeout,
        ErrorKind::UnknownTopic,
        ErrorKind::TooLarge,
        ErrorKind::Auth,
        ErrorKind::NotEnoughReplicas,
        ErrorKind::QueueFull,
        ErrorKind::Other,
    ];

    pub fn of(error: &KafkaError) -> Self {
        use RDKafkaErrorCode as C;
        match error.rdkafka_error_code() {
            Some(C::BrokerTransportFailure | C::NetworkException | C::Resolve) => {
                ErrorKind::Transport
            }
            Some(C::AllBrokersDown) => ErrorKind::AllBrokersDown,
            Some(C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut) => {
                ErrorKind::Timeout
            }
            Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition) => {
                ErrorKind::UnknownTopic
            }
            Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => ErrorKind::TooLarge,
            Some(
                C::Authentication
                | C::SaslAuthenticationFailed
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SSL,
            ) => ErrorKind::Auth,
            Some(C::NotEnoughReplicas | C::NotEnoughReplicasAfterAppend) => {
                ErrorKind::NotEnoughReplicas
            }
            Some(C::QueueFull) => ErrorKind::QueueFull,
            _ => ErrorKind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transport => "transport",
            ErrorKind::AllBrokersDown => "all_brokers_down",
            ErrorKind::Timeout => "timeout",
            ErrorKind::UnknownTopic => "unknown_topic",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Auth => "auth",
            ErrorKind::NotEnoughReplicas => "not_enough_replicas",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Other => "other",
        }
    }
}

/// Errors counted per [`ErrorKind`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        self.0[kind as usize] += 1;
    }

    /// (kind name, count) for every kind.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|k| (k.name(), self.0[*k as usize]))
            .collect()
    }
}

/// One broker's connection, from librdkafka's statistics.
#[derive(Debug, Clone)]
pub struct BrokerStats {
    pub name: String,
    pub state: String,
    /// Request round trip, median and 99th percentile, in microseconds.
    pub rtt_p50_us: Option<i64>,
    pub rtt_p99_us: Option<i64>,
}

#[derive(Default)]
pub struct ShipContext {
    /// Client-level errors (connections), per kind: with every broker
    /// unreachable, records wait without failing, and these are what move.
    client_errors: [AtomicU64; ErrorKind::ALL.len()],
    /// The brokers as of librdkafka's latest statistics (when enabled).
    brokers: Mutex<Vec<BrokerStats>>,
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

    /// Client-level errors so far, per kind.
    pub fn client_errors(&self) -> ErrorCounts {
        let mut c = ErrorCounts::default();
        for k in ErrorKind::ALL {
            c.0[k as usize] = self.client_errors[k as usize].load(Ordering::Relaxed);
        }
        c
    }

    /// The brokers as of the latest statistics.
    pub fn brokers(&self) -> Vec<BrokerStats> {
        self.brokers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

    fn stats(&self, statistics: Statistics) {
        // Brokers learnt from metadata; the bootstrap entries (node id -1)
        // only while none is known, so "nothing reachable" still shows.
        let learnt = statistics.brokers.values().any(|b| b.nodeid >= 0);
        let mut brokers: Vec<BrokerStats> = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 || !learnt)
            .map(|b| BrokerStats {
                name: b.name.clone(),
                state: b.state.clone(),
                rtt_p50_us: b.rtt.as_ref().filter(|w| w.cnt > 0).map(|w| w.p50),
                rtt_p99_us: b.rtt.as_ref().filter(|w| w.cnt > 0).map(|w| w.p99),
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        *self.brokers.lock().unwrap_or_else(|p| p.into_inner()) = brokers;
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client_errors[ErrorKind::of(&error) as usize].fetch_add(1, Ordering::Relaxed);
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
                failure: Box::new(Failure {
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
                }),
            },
        };
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(report);
    }
}
