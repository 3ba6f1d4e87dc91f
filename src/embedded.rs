//! The embedded quick start: librdkafka's in-process mock cluster, so that
//! logferry can be tried with nothing else installed. It keeps records in
//! memory only and is labelled as such wherever it is used; it is never a
//! place to ship real logs, and never the only evidence in a test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub const LABEL: &str = "embedded broker (in-process, in memory: for trying logferry out only)";

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Start a one-broker mock cluster with `topics` (one partition each).
    pub fn start(topics: &[&str]) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1)?;
        for t in topics {
            cluster.create_topic(t, 1, 1)?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// Reads a topic of the embedded broker from the beginning on a thread of
/// its own and prints each record to stdout, so the user sees what arrived.
pub struct Printer {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Printer {
    pub fn start(bootstrap: &str, topic: &str) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "logferry-embedded-printer")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (Arc::clone(&stop), Arc::clone(&received));
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let n = r.fetch_add(1, Ordering::Relaxed) + 1;
                        let text = String::from_utf8_lossy(m.payload().unwrap_or_default());
                        println!(
                            "[embedded broker] received #{n} (partition {}, offset {}): {text}",
                            m.partition(),
                            m.offset()
                        );
                    }
                    Some(Err(e)) => eprintln!("[embedded broker] consumer error: {e}"),
                    None => {}
                }
            }
        });
        Ok(Printer {
            stop,
            received,
            handle: Some(handle),
        })
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
