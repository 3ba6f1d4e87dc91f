//! Append-to-visible latency: a read_committed consumer that follows a
//! topic while the tool ships, and notes for each line how long after its
//! write it was handed to the consumer.
//!
//! The read-back's latency (LogAppendTime minus write time) ends when the
//! leader appended the record; with a transactional producer (logferry's
//! exactly_once) a read_committed consumer sees the record only when its
//! transaction commits, up to a transaction interval later. This measures
//! what such a consumer sees, for every tool alike. It runs in lfbench's
//! process on the same cores, so it is meant for steady rates, not for a
//! backlog (where it would compete with the tool for CPU).

use crate::kafka::LAT_BUCKETS;
use crate::line::parse_marker;
use crate::now_us;
use anyhow::{anyhow, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Latencies of the lines a read_committed consumer saw.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    pub records: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// The following consumer, on its own thread.
pub struct VisibleWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    handle: JoinHandle<Result<Vec<u64>>>,
}

impl VisibleWatch {
    /// Start following `topic` from its beginning (a fresh topic).
    pub fn start(brokers: &str, topic: &str, partitions: i32) -> Result<VisibleWatch> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "lfbench-visible")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // A fetch waits at most this long for new data: the bound on
            // what the consumer itself adds to the latency.
            .set("fetch.wait.max.ms", "20")
            .create()
            .context("creating the visible-latency consumer")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| anyhow!("assign {topic}/{p}: {e}"))?;
        }
        c.assign(&tpl).context("assigning partitions")?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), seen.clone());
        let handle = std::thread::spawn(move || {
            let mut hist = vec![0u64; LAT_BUCKETS];
            while !s.load(Ordering::Relaxed) {
                let Some(m) = c.poll(Duration::from_millis(100)) else {
                    continue;
                };
                // Errors (a broker reconnecting) are librdkafka's to retry.
                let Ok(m) = m else { continue };
                let now = now_us();
                // A record may hold several lines (logferry's pack_bytes):
                // each is counted, split here at newlines, trusting no flag.
                let value = m.payload().unwrap_or_default();
                for line in value.split(|&b| b == b'\n') {
                    n.fetch_add(1, Ordering::Relaxed);
                    if let Some(mk) = parse_marker(line) {
                        let lat = (now.saturating_sub(mk.ts_us) / 1000) as usize;
                        hist[lat.min(LAT_BUCKETS - 1)] += 1;
                    }
                }
            }
            Ok(hist)
        });
        Ok(VisibleWatch { stop, seen, handle })
    }

    /// Wait until `records` were seen (or nothing new for `quiet`), then
    /// stop and summarise.
    pub fn finish(self, records: u64, quiet: Duration) -> Result<Visible> {
        let mut last = self.seen.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while last < records && since.elapsed() < quiet {
            std::thread::sleep(Duration::from_millis(100));
            let n = self.seen.load(Ordering::Relaxed);
            if n != last {
                (last, since) = (n, Instant::now());
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        let hist = self
            .handle
            .join()
            .map_err(|_| anyhow!("the visible-latency consumer panicked"))??;
        let total: u64 = hist.iter().sum();
        Ok(Visible {
            records: self.seen.load(Ordering::Relaxed),
            p50_ms: crate::kafka::percentile(&hist, total, 0.50),
            p99_ms: crate::kafka::percentile(&hist, total, 0.99),
            max_ms: hist.iter().rposition(|&n| n > 0).map(|i| i as f64),
        })
    }
}
