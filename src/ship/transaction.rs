//! Exactly-once mode: the lines read in an interval and the file positions
//! they advance are committed in one Kafka transaction, the positions as a
//! record in a compacted topic (see [`positions`](super::positions)).
//!
//! ```text
//! begin -> lines ... -> boundary: stop reading, every line acknowledged?
//!     yes -> positions record -> commit -> local checkpoint := positions -> begin
//!     no (a delivery failed, the commit failed) -> abort -> Tailer rebuilt
//!         from the local checkpoint (the last committed positions) -> begin
//! ```
//!
//! The local checkpoint only ever holds committed positions: it is a cache
//! of the positions topic, which is read back at start (read_committed) and
//! wins. A crash at any moment therefore re-reads exactly what no committed
//! transaction holds, and a read_committed consumer never sees a line twice.
//!
//! A fatal producer error (another process with the same transactional id
//! fenced this one, most often) ends the process: a new producer would not
//! know what the fenced one had sent.

use std::time::{Duration, Instant};

use logferry_tail::{Checkpointer, FileCheckpoint, GenerationId};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use super::positions;
use super::{open_tailer, ShipError, Shipper};
use crate::config::{ExactlyOnceSettings, ShipSettings};
use crate::shutdown::Shutdown;

/// librdkafka's transaction timeout: a transaction left open by a process
/// that died is aborted by the broker after this (a restart aborts it at
/// once). Records time out with it (`message.timeout.ms` may not exceed it),
/// failing their transaction, which is then aborted and read again.
pub const TRANSACTION_TIMEOUT_MS: &str = "60000";
/// How long one commit or abort call may wait (they are retried).
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// init_transactions at start.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// While the agent is behind, a transaction may last this many intervals.
/// Each boundary drains the pipeline (every line acknowledged before the
/// positions and the commit): measured on 3 brokers, 1 s transactions
/// cost a backlog 20-40 % of its throughput. Lines of a backlog are old
/// already; committing them every few seconds instead of every second
/// delays what is late anyway.
const BACKLOG_STRETCH: u32 = 10;
/// A stretched transaction stays within this share of the transaction
/// timeout, which aborts a transaction that outlives it.
const STRETCH_TIMEOUT_SHARE: u32 = 4;

/// An idle agent commits its unchanged positions once in this many
/// intervals (30 s by default): a producer learns it was fenced only from
/// a request, so without it an agent replaced by another with the same
/// transactional id would stay up, idle, until its next line.
const IDLE_COMMIT_INTERVALS: u32 = 30;

/// What a committed transaction held, to skip committing unchanged ones.
type Summary = Vec<(GenerationId, u64, u64, u64)>;

fn summary(entries: &[FileCheckpoint]) -> Summary {
    entries
        .iter()
        .map(|e| (e.generation, e.position, e.size, e.fingerprint.len))
        .collect()
}

/// The open transaction's bookkeeping.
pub(super) struct Transaction {
    pub(super) id: String,
    topic: String,
    partition: i32,
    interval: Duration,
    /// When the next boundary is due.
    pub(super) due: Instant,
    /// When the open transaction began, and how long it may last while
    /// the agent is behind.
    began: Instant,
    stretch: Duration,
    /// The Outbox's counters when it began: a failure since fails it; no
    /// line sent since (and no position moved) makes committing pointless.
    failures_at_begin: u64,
    sent_at_begin: u64,
    committed: Summary,
    /// When the last commit was (or the start).
    last_commit: Instant,
    /// Positions were read back from the topic at start.
    restored: bool,
}

/// The transactional id: configured, else `logferry-<host>-<hash8>`, the
/// hash of the canonical state directory, so that a restarted agent fences
/// the one it replaces and two agents on one host do not fence each other.
pub fn transactional_id(settings: &ShipSettings, eo: &ExactlyOnceSettings) -> String {
    if let Some(id) = &eo.transactional_id {
        return id.clone();
    }
    let dir = std::fs::canonicalize(&settings.checkpoint_dir)
        .unwrap_or_else(|_| settings.checkpoint_dir.clone());
    let hash = crc32fast::hash(dir.as_os_str().as_encoded_bytes());
    format!("logferry-{}-{hash:08x}", settings.host)
}

/// The producer properties exactly-once mode adds (before the user's, who
/// may override them).
pub fn producer_props(id: &str) -> Vec<(String, String)> {
    vec![
        ("transactional.id".into(), id.into()),
        (
            "transaction.timeout.ms".into(),
            TRANSACTION_TIMEOUT_MS.into(),
        ),
        ("message.timeout.ms".into(), TRANSACTION_TIMEOUT_MS.into()),
    ]
}

/// The error a fatal producer error becomes.
pub(super) fn fatal(id: &str, code: RDKafkaErrorCode, reason: &str) -> ShipError {
    let fenced = matches!(
        code,
        RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
    ) || reason.to_ascii_lowercase().contains("fenced");
    if fenced {
        ShipError::Fenced {
            id: id.to_string(),
            reason: reason.to_string(),
        }
    } else {
        ShipError::TransactionFatal {
            id: id.to_string(),
            reason: format!("{code}: {reason}"),
        }
    }
}

/// How a transactional call failed.
enum CallError {
    /// The producer is finished (fenced...).
    Fatal(ShipError),
    /// The transaction must be aborted.
    Abort(String),
    /// Try the same call again.
    Retry(String),
}

fn classify(id: &str, e: KafkaError) -> CallError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => {
            CallError::Fatal(fatal(id, t.code(), &t.to_string()))
        }
        KafkaError::Transaction(t) if t.txn_requires_abort() => CallError::Abort(e.to_string()),
        KafkaError::Transaction(t) if t.is_retriable() => CallError::Retry(e.to_string()),
        // commit_transaction's flush timed out: commit again.
        KafkaError::Flush(_) => CallError::Retry(e.to_string()),
        _ => CallError::Abort(e.to_string()),
    }
}

impl Transaction {
    /// Start exactly-once shipping: claim the transactional id (fencing a
    /// previous process with it and ending its open transaction), then
    /// make the local checkpoint the last committed positions. Before the
    /// Tailer loads it.
    pub(super) fn start(
        settings: &ShipSettings,
        eo: &ExactlyOnceSettings,
        id: String,
        outbox: &super::outbox::Outbox,
        checkpointer: &Checkpointer,
    ) -> Result<Self, ShipError> {
        let producer = outbox.producer();
        let partitions = positions::partitions(producer.client(), &eo.positions_topic)?;
        let partition = positions::partition_for(&id, partitions);
        producer
            .init_transactions(INIT_TIMEOUT)
            .map_err(|e| match classify(&id, e) {
                CallError::Fatal(f) => f,
                CallError::Abort(r) | CallError::Retry(r) => ShipError::TransactionFatal {
                    id: id.clone(),
                    reason: format!("cannot initialise transactions: {r}"),
                },
            })?;
        let committed = positions::read_committed(
            outbox.bootstrap(),
            &settings.kafka_props,
            &eo.positions_topic,
            partition,
            &id,
        )?;
        let mut last = Summary::new();
        let restored = committed.is_some();
        match committed {
            Some((entries, mark)) => {
                tracing::info!(files = entries.len(), topic = %eo.positions_topic, transactional_id = %id, "positions read back (read_committed); they replace the local checkpoint");
                checkpointer.save_with_watermark(&entries, mark)?;
                last = summary(&entries);
            }
            None => {
                tracing::info!(topic = %eo.positions_topic, transactional_id = %id, "no committed positions yet; starting from the local checkpoint");
            }
        }
        producer
            .begin_transaction()
            .map_err(|e| match classify(&id, e) {
                CallError::Fatal(f) => f,
                CallError::Abort(r) | CallError::Retry(r) => ShipError::TransactionFatal {
                    id: id.clone(),
                    reason: r,
                },
            })?;
        let report = outbox.report();
        let now = Instant::now();
        Ok(Transaction {
            id,
            topic: eo.positions_topic.clone(),
            partition,
            interval: eo.transaction_interval,
            due: now + eo.transaction_interval,
            began: now,
            stretch: stretch(eo.transaction_interval, &settings.kafka_props),
            failures_at_begin: report.delivery_failures,
            sent_at_begin: report.lines_sent,
            committed: last,
            last_commit: now,
            restored,
        })
    }

    /// Whether positions were read back from the topic at start.
    pub(super) fn restored(&self) -> bool {
        self.restored
    }

    /// At a due boundary with `unread` bytes waiting and `pipeline` bytes
    /// allowed in flight: keep the transaction open another interval if
    /// the agent is behind (a pipeline's worth or more unread) and the
    /// transaction may still grow. Returns whether it was stretched.
    pub(super) fn stretch_if_behind(&mut self, now: Instant, unread: u64, pipeline: u64) -> bool {
        let until = self.began + self.stretch;
        if unread < pipeline.max(1) || now >= until {
            return false;
        }
        self.due = (now + self.interval).min(until);
        true
    }
}

/// How long a transaction may last while the agent is behind:
/// BACKLOG_STRETCH intervals, within a share of `transaction.timeout.ms`
/// (the last one set wins, as in librdkafka), never below one interval.
fn stretch(interval: Duration, props: &[(String, String)]) -> Duration {
    let timeout_ms = props
        .iter()
        .rev()
        .find(|(k, _)| k == "transaction.timeout.ms")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| TRANSACTION_TIMEOUT_MS.parse().unwrap_or(60_000));
    let cap = Duration::from_millis(timeout_ms) / STRETCH_TIMEOUT_SHARE;
    (interval * BACKLOG_STRETCH).min(cap).max(interval)
}

impl Shipper {
    fn txn(&mut self) -> &mut Transaction {
        self.txn.as_mut().expect("exactly-once mode")
    }

    /// Whether a record of the open transaction failed.
    pub(super) fn transaction_failed(&self) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|t| self.outbox.report().delivery_failures != t.failures_at_begin)
    }

    /// A transaction's interval is up: commit it, unless the agent is
    /// behind and the transaction may stretch (see BACKLOG_STRETCH).
    pub(super) fn interval_up(
        &mut self,
        now: Instant,
        shutdown: &Shutdown,
    ) -> Result<(), ShipError> {
        let unread: u64 = self.tailer.files().map(|f| f.unread()).sum();
        let pipeline = self.settings.max_inflight_bytes as u64;
        if self.txn().stretch_if_behind(now, unread, pipeline) {
            return Ok(());
        }
        self.boundary(shutdown)
    }

    /// A transaction boundary: commit what was read with the positions it
    /// advances, or abort and read it again. Reading stops meanwhile.
    /// During a shutdown it gives up at `shutdown_timeout` (the open
    /// transaction is then aborted by the next start or by the broker).
    pub(super) fn boundary(&mut self, shutdown: &Shutdown) -> Result<(), ShipError> {
        let mut deadline = None;
        let mut past_deadline = |shutdown: &Shutdown, timeout: Duration| {
            if deadline.is_none() && shutdown.is_requested() {
                deadline = Some(Instant::now() + timeout);
            }
            deadline.is_some_and(|d| Instant::now() >= d)
        };
        let timeout = self.settings.shutdown_timeout;
        // Every line handed out acknowledged, or one failed.
        while self.tailer.unacked() > 0 && !self.transaction_failed() {
            self.service(Duration::from_millis(10))?;
            if past_deadline(shutdown, timeout) {
                return Ok(());
            }
        }
        if self.transaction_failed() {
            return self.abort(shutdown, "a record of the transaction was not delivered");
        }
        let entries = self.tailer.checkpoint_entries();
        let sum = summary(&entries);
        let txn = self.txn();
        let idle_proof_due = txn.last_commit.elapsed() >= txn.interval * IDLE_COMMIT_INTERVALS;
        if sum == txn.committed
            && self.outbox.report().lines_sent == self.txn().sent_at_begin
            && !idle_proof_due
        {
            // Nothing to commit: the transaction stays open (and empty).
            self.tailer.saved();
            let t = self.txn();
            t.began = Instant::now();
            t.due = t.began + t.interval;
            return Ok(());
        }
        let value = positions::Parts::new(positions::encode(&entries));
        let mark = self.tailer.examined_until();
        let (topic, partition, id) = {
            let t = self.txn();
            (t.topic.clone(), t.partition, t.id.clone())
        };
        if let Err(e) = self
            .outbox
            .send_positions(&topic, partition, &id, &value, mark)
        {
            return self.abort(shutdown, &format!("the positions record was refused: {e}"));
        }
        loop {
            match self.outbox.producer().commit_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) => match classify(&id, e) {
                    CallError::Fatal(f) => return Err(f),
                    CallError::Abort(reason) => return self.abort(shutdown, &reason),
                    CallError::Retry(reason) => {
                        tracing::warn!(%reason, "transaction commit not confirmed yet; retrying");
                        if past_deadline(shutdown, timeout) {
                            return Ok(());
                        }
                    }
                },
            }
        }
        // Committed: the lines are visible to read_committed consumers and
        // the positions are the truth; the local file caches them.
        self.tailer.saved();
        self.service(Duration::ZERO)?;
        self.save_local(&entries, mark);
        self.counters.transactions_committed += 1;
        let t = self.txn();
        t.committed = sum;
        t.last_commit = Instant::now();
        self.begin()
    }

    /// Write committed positions to the local checkpoint (a cache: a failed
    /// write is reported, and the next start reads the positions topic).
    fn save_local(&mut self, entries: &[FileCheckpoint], mark: u64) {
        match self.checkpointer.save_with_watermark(entries, Some(mark)) {
            Ok(()) => {
                self.counters.checkpoint_writes += 1;
                self.checkpoint_failing = None;
            }
            Err(e) => {
                self.counters.checkpoint_failures += 1;
                let since = self
                    .checkpoint_failing
                    .as_ref()
                    .map_or_else(Instant::now, |f| f.0);
                self.checkpoint_failing = Some((since, e.to_string()));
                tracing::error!(error = %e, "local checkpoint not saved (the positions are committed in Kafka)");
            }
        }
    }

    fn begin(&mut self) -> Result<(), ShipError> {
        let id = self.txn().id.clone();
        if let Err(e) = self.outbox.producer().begin_transaction() {
            return Err(match classify(&id, e) {
                CallError::Fatal(f) => f,
                CallError::Abort(r) | CallError::Retry(r) => ShipError::TransactionFatal {
                    id,
                    reason: format!("cannot begin a transaction: {r}"),
                },
            });
        }
        let (failures, sent) = (
            self.outbox.report().delivery_failures,
            self.outbox.report().lines_sent,
        );
        let t = self.txn();
        t.failures_at_begin = failures;
        t.sent_at_begin = sent;
        t.began = Instant::now();
        t.due = t.began + t.interval;
        Ok(())
    }

    /// Abort the open transaction and read its lines again: the Tailer is
    /// rebuilt from the local checkpoint, which holds the last committed
    /// positions.
    fn abort(&mut self, shutdown: &Shutdown, why: &str) -> Result<(), ShipError> {
        let id = self.txn().id.clone();
        tracing::warn!(
            reason = why,
            "aborting the transaction; its lines are read again from the last committed positions"
        );
        loop {
            match self.outbox.producer().abort_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) => match classify(&id, e) {
                    CallError::Fatal(f) => return Err(f),
                    CallError::Abort(reason) | CallError::Retry(reason) => {
                        tracing::warn!(%reason, "transaction abort not confirmed yet; retrying");
                        if shutdown.is_requested() {
                            // The next start (or the broker's transaction
                            // timeout) ends it.
                            return Ok(());
                        }
                    }
                },
            }
        }
        self.counters.transactions_aborted += 1;
        self.outbox.forget_aborted();
        self.tailer = open_tailer(&self.settings, &self.checkpointer, false)?;
        self.scan();
        self.begin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(timeout_ms: Option<&str>) -> Vec<(String, String)> {
        let mut p = producer_props("agent");
        if let Some(t) = timeout_ms {
            p.push(("transaction.timeout.ms".into(), t.into()));
        }
        p
    }

    fn txn(interval: Duration, stretch: Duration, began: Instant) -> Transaction {
        Transaction {
            id: "agent".into(),
            topic: "pos".into(),
            partition: 0,
            interval,
            due: began + interval,
            began,
            stretch,
            failures_at_begin: 0,
            sent_at_begin: 0,
            committed: Summary::new(),
            last_commit: began,
            restored: false,
        }
    }

    #[test]
    fn a_backlog_transaction_lasts_ten_intervals_within_a_quarter_of_the_timeout() {
        let s = Duration::from_secs;
        assert_eq!(stretch(s(1), &props(None)), s(10));
        // The user's transaction.timeout.ms (the last one set) caps it.
        assert_eq!(stretch(s(1), &props(Some("20000"))), s(5));
        // Never below one interval, whatever the timeout.
        assert_eq!(stretch(s(30), &props(Some("20000"))), s(30));
        assert_eq!(
            stretch(Duration::from_millis(250), &props(None)),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn a_transaction_stretches_only_while_a_pipeline_is_unread_and_up_to_its_limit() {
        let began = Instant::now();
        let (interval, limit) = (Duration::from_secs(1), Duration::from_secs(3));
        let mut t = txn(interval, limit, began);
        let pipeline = 8 << 20;
        // Caught up (less than a pipeline unread): commit at the interval.
        assert!(!t.stretch_if_behind(began + interval, pipeline - 1, pipeline));
        // Behind: another interval.
        assert!(t.stretch_if_behind(began + interval, pipeline, pipeline));
        assert_eq!(t.due, began + 2 * interval);
        // The next interval ends at the limit, and there it commits.
        let late = began + Duration::from_millis(2500);
        assert!(t.stretch_if_behind(late, pipeline * 10, pipeline));
        assert_eq!(t.due, began + limit);
        assert!(!t.stretch_if_behind(began + limit, pipeline * 10, pipeline));
    }
}
