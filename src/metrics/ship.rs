//! What `logferry ship` exports: a snapshot the shipping loop fills a few
//! times a second, turned into metric families at scrape time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::family::{counters, gauges, labels, Labels};
use super::{Exposition, Registry};

/// One input's figures (the `input` label is its index in the
/// configuration, from 0).
#[derive(Debug, Default, Clone)]
pub struct InputSnapshot {
    pub lines_read: u64,
    pub lines_acked: u64,
    pub bytes_acked: u64,
    /// Bytes written to followed files past their acknowledged position.
    pub lag_bytes: u64,
    /// Age of the oldest line read and not acknowledged (0 when none).
    pub oldest_unacked_seconds: f64,
    pub files_followed: u64,
    pub files_open: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub inflight_bytes: u64,
}

/// One broker, from librdkafka's statistics.
#[derive(Debug, Clone)]
pub struct BrokerSnapshot {
    /// librdkafka's name for it (`host:port/id`).
    pub name: String,
    /// librdkafka's connection state (`UP`, `DOWN`, `CONNECT`, ...).
    pub state: String,
    /// Round-trip time of requests (a producer's are produce requests),
    /// median and 99th percentile over the last statistics window.
    pub rtt_p50_seconds: Option<f64>,
    pub rtt_p99_seconds: Option<f64>,
}

/// One file of the per-file view.
#[derive(Debug, Clone)]
pub struct FileLag {
    pub input: usize,
    pub path: String,
    pub lag_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ShipSnapshot {
    pub inputs: Vec<InputSnapshot>,
    /// Per kind: records whose delivery failed (retried, never dropped).
    pub delivery_errors: Vec<(&'static str, u64)>,
    /// Per kind: errors the Kafka client reported for its connections
    /// (brokers down, refused logins), which stall records without
    /// failing them.
    pub client_errors: Vec<(&'static str, u64)>,
    pub retries: u64,
    pub checkpoint_writes: u64,
    pub checkpoint_failures: u64,
    /// Exactly-once mode (both 0 otherwise).
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    pub brokers: Vec<BrokerSnapshot>,
    /// The files furthest behind, largest lag first.
    pub top_files: Vec<FileLag>,
    pub health: Result<(), String>,
    /// When the loop filled it.
    pub taken: Instant,
}

/// `ship`'s [`Exposition`]: the latest snapshot, replaced by the loop.
#[derive(Debug)]
pub struct ShipExposition {
    snapshot: Mutex<Option<ShipSnapshot>>,
    max_stall: Duration,
    started: Instant,
    /// Reloads applied and refused (updated by the loop directly).
    pub reloads: super::ReloadStatus,
}

impl ShipExposition {
    pub fn new(max_stall: Duration) -> Self {
        ShipExposition {
            snapshot: Mutex::new(None),
            max_stall,
            started: Instant::now(),
            reloads: super::ReloadStatus::default(),
        }
    }

    pub fn max_stall(&self) -> Duration {
        self.max_stall
    }

    /// Publish the loop's latest figures.
    pub fn publish(&self, snapshot: ShipSnapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }

    fn latest(&self) -> Option<ShipSnapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn by_input<T>(s: &ShipSnapshot, f: impl Fn(&InputSnapshot) -> T) -> Vec<(Labels, T)> {
    s.inputs
        .iter()
        .enumerate()
        .map(|(i, x)| (labels([("input", i.to_string())]), f(x)))
        .collect()
}

fn by_kind(rows: &[(&'static str, u64)]) -> Vec<(Labels, u64)> {
    rows.iter()
        .map(|(k, v)| (labels([("kind", (*k).to_string())]), *v))
        .collect()
}

impl Exposition for ShipExposition {
    fn register(&self, r: &mut Registry) {
        self.reloads.register(r);
        let Some(s) = self.latest() else { return };
        counters(
            r,
            "logferry_lines_read",
            "Lines (or multiline records) read and handed to Kafka",
            by_input(&s, |i| i.lines_read),
        );
        counters(
            r,
            "logferry_lines_acked",
            "Lines acknowledged by Kafka",
            by_input(&s, |i| i.lines_acked),
        );
        counters(
            r,
            "logferry_bytes_acked",
            "Record bytes (value and key) acknowledged by Kafka",
            by_input(&s, |i| i.bytes_acked),
        );
        gauges(
            r,
            "logferry_lag_bytes",
            "Bytes written to followed files past their acknowledged position",
            by_input(&s, |i| i.lag_bytes as f64),
        );
        gauges(
            r,
            "logferry_oldest_unacked_seconds",
            "Age of the oldest line read and not yet acknowledged (0 when none)",
            by_input(&s, |i| i.oldest_unacked_seconds),
        );
        gauges(
            r,
            "logferry_files_followed",
            "File generations being followed",
            by_input(&s, |i| i.files_followed as f64),
        );
        gauges(
            r,
            "logferry_files_open",
            "Followed files holding an open descriptor",
            by_input(&s, |i| i.files_open as f64),
        );
        counters(
            r,
            "logferry_rotations",
            "Files that left their name (rotated away or deleted), read to the end and closed",
            by_input(&s, |i| i.rotations),
        );
        counters(
            r,
            "logferry_truncations",
            "Files found cut in place (copytruncate or rewritten)",
            by_input(&s, |i| i.truncations),
        );
        gauges(
            r,
            "logferry_inflight_bytes",
            "Cost of records sent and not yet acknowledged (the bound is max_inflight_bytes)",
            by_input(&s, |i| i.inflight_bytes as f64),
        );
        counters(
            r,
            "logferry_delivery_errors",
            "Records whose delivery failed, by kind; each is retried, never dropped",
            by_kind(&s.delivery_errors),
        );
        counters(
            r,
            "logferry_client_errors",
            "Errors the Kafka client reported for its connections, by kind (records wait meanwhile)",
            by_kind(&s.client_errors),
        );
        counters(
            r,
            "logferry_retries",
            "Records sent again after a failed delivery",
            [(Labels::new(), s.retries)],
        );
        counters(
            r,
            "logferry_checkpoint_writes",
            "Checkpoints written",
            [(Labels::new(), s.checkpoint_writes)],
        );
        counters(
            r,
            "logferry_checkpoint_failures",
            "Checkpoint writes that failed (the previous checkpoint stays)",
            [(Labels::new(), s.checkpoint_failures)],
        );
        counters(
            r,
            "logferry_transactions_committed",
            "Exactly-once mode: transactions committed (lines and positions together)",
            [(Labels::new(), s.transactions_committed)],
        );
        counters(
            r,
            "logferry_transactions_aborted",
            "Exactly-once mode: transactions aborted (their lines are read again)",
            [(Labels::new(), s.transactions_aborted)],
        );
        gauges(
            r,
            "logferry_broker_up",
            "1 when the connection to the broker is up (librdkafka statistics)",
            s.brokers.iter().map(|b| {
                (
                    labels([("broker", b.name.clone())]),
                    f64::from(u8::from(b.state == "UP")),
                )
            }),
        );
        gauges(
            r,
            "logferry_produce_latency_seconds",
            "Request round-trip time to the broker (produce requests), by quantile over the last statistics window",
            s.brokers.iter().flat_map(|b| {
                [("0.5", b.rtt_p50_seconds), ("0.99", b.rtt_p99_seconds)]
                    .into_iter()
                    .filter_map(|(q, v)| {
                        Some((
                            labels([("broker", b.name.clone()), ("quantile", q.to_string())]),
                            v?,
                        ))
                    })
            }),
        );
        gauges(
            r,
            "logferry_file_lag_bytes",
            "The files furthest behind (at most [metrics] top_files): bytes past the acknowledged position",
            s.top_files.iter().map(|f| {
                (
                    labels([("input", f.input.to_string()), ("path", f.path.clone())]),
                    f.lag_bytes as f64,
                )
            }),
        );
        gauges(
            r,
            "logferry_up_seconds",
            "Seconds since logferry started",
            [(Labels::new(), self.started.elapsed().as_secs_f64())],
        );
    }

    fn health(&self) -> Result<(), String> {
        let Some(s) = self.latest() else {
            return Ok(()); // Starting: nothing has had time to stall.
        };
        // The loop itself stuck (no snapshot for long) is a stall too.
        let age = s.taken.elapsed();
        if age >= self.max_stall.max(Duration::from_secs(5)) {
            return Err(format!(
                "the shipping loop has not reported for {} s",
                age.as_secs()
            ));
        }
        s.health
    }
}
