//! Filling the metrics snapshot from the loop: a few times a second, from
//! the Tailer's file views and the Outbox's counters. Nothing here runs
//! per line.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_tail::Tailer;
use rdkafka::producer::Producer;

use super::outbox::Outbox;
use super::produce::BrokerStats;
use crate::metrics::{
    top_n, BrokerSnapshot, FileLag, HealthTracker, InputSnapshot, ShipExposition, ShipSnapshot,
};

/// How often the snapshot is refreshed: fresh enough for a 1 s scrape,
/// rare enough to cost nothing measurable (a pass over the streams).
pub(super) const PERIOD: Duration = Duration::from_millis(250);

pub(super) struct Observer {
    exposition: Arc<ShipExposition>,
    health: HealthTracker,
    top_files: usize,
    next: Instant,
}

/// What the loop knows about checkpoints, for the snapshot.
pub(super) struct CheckpointState<'a> {
    pub writes: u64,
    pub failures: u64,
    /// Exactly-once mode: transactions committed and aborted.
    pub transactions: (u64, u64),
    /// Since when writing fails, and the last error.
    pub failing: Option<(Instant, &'a str)>,
}

impl Observer {
    pub(super) fn new(exposition: Arc<ShipExposition>, top_files: usize) -> Self {
        let now = Instant::now();
        Observer {
            health: HealthTracker::new(exposition.max_stall(), now),
            exposition,
            top_files,
            next: now,
        }
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub(super) fn observe(
        &mut self,
        now: Instant,
        tailer: &Tailer,
        outbox: &Outbox,
        checkpoint: CheckpointState<'_>,
    ) {
        self.next = now + PERIOD;
        let mut inputs = vec![InputSnapshot::default(); tailer.inputs()];
        for (i, snap) in inputs.iter_mut().enumerate() {
            let c = outbox.counts()[i];
            snap.lines_read = c.lines_read;
            snap.lines_acked = c.lines_acked;
            snap.bytes_acked = c.bytes_acked;
            snap.inflight_bytes = outbox.input_inflight(i) as u64;
            let t = tailer.counters()[i];
            snap.rotations = t.rotations;
            snap.truncations = t.truncations;
        }
        let mut behind = Vec::new();
        for f in tailer.files() {
            let snap = &mut inputs[f.input];
            snap.files_followed += 1;
            snap.files_open += u64::from(f.open);
            snap.lag_bytes += f.lag();
            if let Some(t) = f.oldest_unacked {
                let age = now.saturating_duration_since(t).as_secs_f64();
                snap.oldest_unacked_seconds = snap.oldest_unacked_seconds.max(age);
            }
            if f.lag() > 0 {
                behind.push(f);
            }
        }
        let top_files = top_n(behind, self.top_files, |f| (f.lag(), Reverse(f.path)))
            .into_iter()
            .map(|f| FileLag {
                input: f.input,
                path: f.path.to_string(),
                lag_bytes: f.lag(),
            })
            .collect();
        let health = self.health.observe(
            now,
            outbox.report().lines_acked,
            tailer.unacked() as u64,
            checkpoint.failing,
        );
        let ctx = outbox.producer().context();
        self.exposition.publish(ShipSnapshot {
            inputs,
            delivery_errors: outbox.delivery_errors().named(),
            client_errors: ctx.client_errors().named(),
            retries: outbox.report().retries,
            checkpoint_writes: checkpoint.writes,
            checkpoint_failures: checkpoint.failures,
            transactions_committed: checkpoint.transactions.0,
            transactions_aborted: checkpoint.transactions.1,
            brokers: ctx.brokers().into_iter().map(broker).collect(),
            top_files,
            health,
            taken: now,
        });
    }
}

fn broker(b: BrokerStats) -> BrokerSnapshot {
    let seconds = |us: i64| us as f64 / 1e6;
    BrokerSnapshot {
        name: b.name,
        state: b.state,
        rtt_p50_seconds: b.rtt_p50_us.map(seconds),
        rtt_p99_seconds: b.rtt_p99_us.map(seconds),
    }
}
