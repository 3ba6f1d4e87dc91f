//! The Kafka side of shipping: the [`Outbox`] turns lines into records
//! (value format, source attribution, partitioning key, static headers),
//! hands them to the producer, bounds what is in flight (per input, so a
//! stalled topic stalls only its input), retries what failed (never
//! dropping a record), learns size limits from the broker, replaces the
//! producer after a fatal error, and reports acknowledgements by
//! [`DeliveryTag`].

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logferry_tail::acks::SEQ_BITS;
use logferry_tail::{Line, LineSink, StreamInfo};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use super::inflight::stream_bounds;
use super::produce::{
    client_config, record_cost, Delivery, ErrorCounts, ErrorKind, Failure, ShipContext,
    ShipProducer,
};
pub use super::sending::InputCounts;
use super::sending::{Retry, Route, Sending, RETRY_BACKOFF_MAX, SERVICE_NAP};
use super::{positions, ShipError, ShipReport};
use crate::config::{Attribution, PartitionBy, ShipSettings};
use crate::wire::{self as encode, SOURCE_HEADER};

/// Events served per `service` at most, so that a flood of reports cannot
/// starve reading.
const MAX_EVENTS_PER_SERVICE: usize = 256;

/// Which line a delivery report is about: the stream's slot and the line's
/// sequence number in it, packed into librdkafka's per-message opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryTag {
    pub slot: usize,
    /// Cut to `SEQ_BITS` bits; the stream's tracker widens it back.
    pub seq: u64,
}

impl DeliveryTag {
    pub fn pack(self) -> usize {
        (self.slot << SEQ_BITS) | (self.seq as usize & ((1 << SEQ_BITS) - 1))
    }

    pub fn unpack(opaque: usize) -> Self {
        DeliveryTag {
            slot: opaque >> SEQ_BITS,
            seq: (opaque as u64) & ((1 << SEQ_BITS) - 1),
        }
    }
}

pub struct Outbox {
    settings: ShipSettings,
    /// The bootstrap list in use (for messages and producer replacement).
    bootstrap: String,
    /// What sending a record changes (borrowed apart from the producer).
    /// Declared before the producer, so that its topic handles are
    /// dropped while their client still lives.
    sending: Sending,
    producer: ShipProducer,
    /// Per stream slot, its route.
    routes: Vec<Option<Route>>,
    /// Per input, the topic of the route made last: a new route that
    /// renders the same name shares it (one copy, not one per file).
    last_topics: Vec<Option<Arc<str>>>,
    deliveries: Vec<Delivery>,
    /// (topic, error) pairs already logged, so an outage logs once, not per
    /// record.
    reported_failures: HashMap<(String, String), Instant>,
    /// Fault injection (tests): raise a fatal producer error after this many
    /// lines were sent.
    #[cfg(feature = "test-hooks")]
    fault_fatal_after: Option<u64>,
    /// Exactly-once mode: a failed record fails its transaction (which is
    /// aborted and read again) instead of being retried, and a fatal
    /// producer error ends the process instead of replacing the producer.
    exactly_once: bool,
    /// The fatal error that ended the producer, in exactly-once mode.
    fatal: Option<(RDKafkaErrorCode, String)>,
    /// Per input, what one of its streams may have in flight
    /// (`inflight::stream_bounds`).
    stream_bounds: Vec<Option<usize>>,
    /// A stream was held back by its own bound since this was last taken:
    /// acknowledgements, not file-system events, will let it go on.
    stream_held: Cell<bool>,
}

/// The opaque of the positions record: no stream's tag (a slot that large
/// is never handed out).
const POSITIONS_OPAQUE: usize = usize::MAX;

impl Outbox {
    pub fn new(settings: ShipSettings, bootstrap: &str) -> Result<Self, ShipError> {
        let producer: ShipProducer = client_config(bootstrap, &settings.kafka_props)
            .create_with_context(ShipContext::new(settings.attribution == Attribution::Key))
            .map_err(ShipError::Producer)?;
        let n_inputs = settings.inputs.len();
        Ok(Outbox {
            stream_bounds: stream_bounds(&settings),
            stream_held: Cell::new(false),
            bootstrap: bootstrap.to_string(),
            producer,
            routes: Vec::new(),
            last_topics: Vec::new(),
            sending: Sending::new(n_inputs),
            deliveries: Vec::new(),
            reported_failures: HashMap::new(),
            #[cfg(feature = "test-hooks")]
            fault_fatal_after: std::env::var("LOGFERRY_FAULT_FATAL_AFTER")
                .ok()
                .and_then(|v| v.parse().ok()),
            exactly_once: settings.exactly_once.is_some(),
            fatal: None,
            settings,
        })
    }

    /// A producer for `settings` if they need one other than the running
    /// one (brokers, properties or attribution changed); None if not.
    pub fn producer_for(
        &self,
        settings: &ShipSettings,
        bootstrap: &str,
    ) -> Result<Option<ShipProducer>, ShipError> {
        let same = bootstrap == self.bootstrap
            && settings.kafka_props == self.settings.kafka_props
            && settings.attribution == self.settings.attribution;
        if same {
            return Ok(None);
        }
        client_config(bootstrap, &settings.kafka_props)
            .create_with_context(ShipContext::new(settings.attribution == Attribution::Key))
            .map(Some)
            .map_err(ShipError::Producer)
    }

    /// Take `settings` (a reload), with nothing in flight: `kept[i]` is the
    /// old index of the new input `i`; `producer` replaces the running one
    /// (from [`producer_for`](Self::producer_for)), which is flushed first.
    pub fn reconfigure(
        &mut self,
        settings: ShipSettings,
        bootstrap: &str,
        kept: &[Option<usize>],
        producer: Option<ShipProducer>,
    ) {
        if let Some(producer) = producer {
            // Nothing is in flight; a flush still settles anything librdkafka
            // holds (the old producer is dropped after, which would purge).
            let _ = self.producer.flush(Duration::from_secs(5));
            self.serve_queued_events();
            self.sending.topics.release();
            self.producer = producer;
            self.bootstrap = bootstrap.to_string();
        }
        self.sending.remap_inputs(kept);
        // Routes hold topics and keys of the old settings.
        self.routes.clear();
        self.last_topics.clear();
        self.stream_bounds = stream_bounds(&settings);
        self.settings = settings;
    }

    /// The fatal error that ended the producer (exactly-once mode only;
    /// otherwise the producer is replaced).
    pub fn fatal(&self) -> Option<&(RDKafkaErrorCode, String)> {
        self.fatal.as_ref()
    }

    /// Send the positions record of the open transaction, to `partition`.
    pub fn send_positions(
        &mut self,
        topic: &str,
        partition: i32,
        key: &str,
        value: &positions::Parts,
        watermark: u64,
    ) -> Result<(), KafkaError> {
        let parts = value.parts();
        // Parts 1.. first, the one under the agent's key last: a reader
        // that finds the first finds the others before it.
        for (n, part) in parts.iter().enumerate().skip(1) {
            let part_key = positions::part_key(key, n);
            let rec = BaseRecord::with_opaque_to(topic, POSITIONS_OPAQUE)
                .partition(partition)
                .key(&part_key)
                .payload(*part);
            self.producer.send(rec).map_err(|(e, _)| e)?;
        }
        let (mark, count, crc) = (
            watermark.to_string(),
            parts.len().to_string(),
            value.crc().to_string(),
        );
        let mut headers = OwnedHeaders::new_with_capacity(3).insert(Header {
            key: positions::WATERMARK_HEADER,
            value: Some(mark.as_bytes()),
        });
        if parts.len() > 1 {
            headers = headers
                .insert(Header {
                    key: positions::PARTS_HEADER,
                    value: Some(count.as_bytes()),
                })
                .insert(Header {
                    key: positions::CRC_HEADER,
                    value: Some(crc.as_bytes()),
                });
        }
        let rec = BaseRecord::with_opaque_to(topic, POSITIONS_OPAQUE)
            .partition(partition)
            .key(key)
            .payload(parts[0])
            .headers(headers);
        self.producer.send(rec).map_err(|(e, _)| e)
    }

    /// After a transaction was aborted: its records are gone (librdkafka
    /// purged what it held; their reports are served and dropped here), so
    /// nothing is in flight or waiting for a retry, and the streams the
    /// routes were made for are replaced by a new Tailer's.
    pub fn forget_aborted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        self.serve_queued_events();
        let mut dropped = std::mem::take(&mut self.deliveries);
        self.producer.context().take_deliveries(&mut dropped);
        dropped.clear();
        self.deliveries = dropped;
        self.sending.forget_in_flight();
        self.routes.clear();
    }

    pub fn producer(&self) -> &ShipProducer {
        &self.producer
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Bytes of records not acknowledged yet.
    pub fn inflight(&self) -> usize {
        self.sending.inflight.total()
    }

    /// Whether a stream was held back by its own in-flight bound since the
    /// last call: the caller waits for acknowledgements then.
    pub fn take_stream_held(&self) -> bool {
        self.stream_held.replace(false)
    }

    /// Bytes of `input`'s records not acknowledged yet.
    pub fn input_inflight(&self, input: usize) -> usize {
        self.sending.inflight.of(input)
    }

    /// Counters of what was sent, acknowledged, failed and retried.
    pub fn report(&self) -> &ShipReport {
        &self.sending.report
    }

    /// Per input: lines read and acknowledged.
    pub fn counts(&self) -> &[InputCounts] {
        &self.sending.counts
    }

    /// Failed deliveries and refused records, per kind.
    pub fn delivery_errors(&self) -> &ErrorCounts {
        &self.sending.delivery_errors
    }

    /// Whether records of the stream in `slot` wait for a retry.
    pub fn holds(&self, slot: usize) -> bool {
        self.sending
            .retries
            .iter()
            .any(|r| DeliveryTag::unpack(r.opaque).slot == slot)
    }

    /// Whether any record waits for a retry.
    pub fn has_retries(&self) -> bool {
        !self.sending.retries.is_empty()
    }

    /// The stream in `slot` ended: forget its route.
    pub fn forget(&mut self, slot: usize) {
        if let Some(r) = self.routes.get_mut(slot) {
            *r = None;
        }
    }

    /// The input of the stream in `slot`, while its route is known.
    fn input_of(&self, slot: usize) -> Option<usize> {
        match self.routes.get(slot) {
            Some(Some(route)) => Some(route.input),
            _ => None,
        }
    }

    /// Lines read from now on carry this time as their read time.
    pub fn stamp_read_time(&mut self) {
        self.sending.read_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
    }

    fn route(&mut self, s: &StreamInfo<'_>) {
        if self.routes.len() <= s.slot {
            self.routes.resize_with(s.slot + 1, || None);
        }
        let host = &self.settings.host;
        let input = &self.settings.inputs[s.input];
        let by_generation = matches!(input.partition_by, PartitionBy::Generation);
        if let Some(r) = self.routes[s.slot]
            .as_mut()
            .filter(|r| r.serial == s.serial)
        {
            if by_generation && r.key_generation != s.generation {
                r.key = encode::generation_partition_key(host, s.generation);
                r.key_generation = s.generation;
            }
            return;
        }
        let path = Path::new(s.opened_path);
        if self.last_topics.len() <= s.input {
            self.last_topics.resize_with(s.input + 1, || None);
        }
        let rendered = input.topic_for(host, path);
        let topic = match &self.last_topics[s.input] {
            Some(last) if **last == *rendered => Arc::clone(last),
            _ => {
                let topic: Arc<str> = rendered.into();
                self.last_topics[s.input] = Some(Arc::clone(&topic));
                topic
            }
        };
        self.routes[s.slot] = Some(Route {
            serial: s.serial,
            input: s.input,
            topic,
            key: match input.partition_by {
                PartitionBy::Generation => encode::generation_partition_key(host, s.generation),
                PartitionBy::Host => host.clone().into_bytes(),
                _ => format!("{host}:{}", s.id).into_bytes(),
            },
            key_generation: s.generation,
        });
    }

    /// Apply delivery reports, waiting up to `timeout` for the first.
    ///
    /// rdkafka's `poll(timeout)` does not return when a report arrives: it
    /// keeps serving until the deadline (spinning on zero-timeout polls in
    /// its last millisecond). Waiting there for acks stalled reading for the
    /// whole timeout at the in-flight bound. So events are served with
    /// non-blocking polls, and the wait is short naps that end as soon as a
    /// report has come.
    /// Serve delivery reports, waiting up to `timeout` for the first; each
    /// acknowledged line is handed to `acked(slot, seq)`. True when the
    /// producer had to be replaced: every line not acknowledged yet must be
    /// handed out again.
    pub fn service(&mut self, timeout: Duration, acked: &mut dyn FnMut(usize, u64)) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.serve_queued_events() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(SERVICE_NAP.min(deadline - now));
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            if self.exactly_once {
                // A new producer would be a new epoch of the same
                // transactional id, committing nothing of the old one's
                // open transaction: the caller stops instead.
                self.fatal = Some((code, reason));
                return false;
            }
            self.recreate_producer(code, &reason);
            return true;
        }
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.producer.context().take_deliveries(&mut deliveries);
        let mut largest_failed: HashMap<String, usize> = HashMap::new();
        for d in &deliveries {
            if let Delivery::Failed { failure, .. } = d {
                if is_size_error(&failure.error) {
                    let l = largest_failed.entry(failure.topic.clone()).or_insert(0);
                    *l = (*l).max(failure.payload.len());
                }
            }
        }
        for d in deliveries.drain(..) {
            match d {
                Delivery::Acked { opaque, .. } if opaque == POSITIONS_OPAQUE => {}
                Delivery::Failed {
                    opaque, failure, ..
                } if opaque == POSITIONS_OPAQUE => {
                    self.sending.report.delivery_failures += 1;
                    self.sending
                        .delivery_errors
                        .add(ErrorKind::of(&failure.error));
                    self.log_failure(&failure.topic, &failure.error);
                }
                Delivery::Acked { opaque, cost } => {
                    let sending = &mut self.sending;
                    sending.report.lines_acked += 1;
                    let bytes = cost.saturating_sub(record_cost(0, 0)) as u64;
                    sending.report.bytes_acked += bytes;
                    let tag = DeliveryTag::unpack(opaque);
                    let input = self.input_of(tag.slot);
                    self.sending.inflight.settle(input, tag.slot, cost);
                    if let Some(input) = input {
                        let counts = &mut self.sending.counts[input];
                        counts.lines_acked += 1;
                        counts.bytes_acked += bytes;
                    }
                    if self.sending.acked_whole(opaque) {
                        acked(tag.slot, tag.seq);
                    }
                }
                Delivery::Failed {
                    opaque,
                    cost: _,
                    failure,
                } => {
                    let Failure {
                        error,
                        topic,
                        mut key,
                        mut payload,
                        mut headers,
                    } = *failure;
                    self.sending.report.delivery_failures += 1;
                    self.sending.delivery_errors.add(ErrorKind::of(&error));
                    if is_size_error(&error) {
                        // The broker's limit is below this record. Every
                        // record of the rejected batch reports the error, so
                        // only the largest is taken to be the culprit: the
                        // topic's cap drops below it, and only records over
                        // the cap are cut (flagged truncated), never dropped.
                        let cap = self
                            .sending
                            .size_caps
                            .entry(topic.clone())
                            .or_insert(usize::MAX);
                        let largest = largest_failed.get(&topic).copied().unwrap_or(payload.len());
                        *cap = (*cap).min(largest * 3 / 4).max(1);
                        let cap = *cap;
                        let input = self.input_of(DeliveryTag::unpack(opaque).slot);
                        let packs = input.is_some_and(|i| self.settings.inputs[i].pack_bytes > 0);
                        if packs && payload.len() > cap && memchr::memchr(b'\n', &payload).is_some()
                        {
                            self.log_failure(&topic, &error);
                            if !self.exactly_once {
                                self.sending.retry_in_parts(
                                    self.settings.attribution,
                                    opaque,
                                    topic,
                                    key,
                                    &payload,
                                    headers,
                                    cap,
                                );
                            }
                            continue;
                        }
                        if payload.len() > cap {
                            let slot = DeliveryTag::unpack(opaque).slot;
                            let input = self.input_of(slot);
                            self.sending
                                .inflight
                                .shrink(input, slot, payload.len() - cap);
                            payload.truncate(cap);
                            mark_truncated(self.settings.attribution, key.as_mut(), &mut headers);
                            tracing::warn!(topic = %topic, bytes = cap, "record over the broker's size limit; shipping it truncated");
                        }
                    }
                    self.log_failure(&topic, &error);
                    if self.exactly_once {
                        // Its transaction is aborted at the next boundary
                        // and its line read again (cut to the size cap just
                        // learned, if that was the trouble): no retry inside
                        // a transaction that can no longer commit.
                        continue;
                    }
                    self.sending
                        .retries
                        .push_back(Retry::new(opaque, topic, key, payload, headers));
                }
            }
        }
        self.deliveries = deliveries;
        false
    }

    /// A fatal producer error (the idempotent producer lost its sequence
    /// state, for example) ends that producer for good. Replace it and send
    /// again everything after each file's acknowledged position: records
    /// the old producer held are discarded with it, so nothing is lost and
    /// at most the unacknowledged tail is duplicated.
    fn recreate_producer(&mut self, code: RDKafkaErrorCode, reason: &str) {
        tracing::error!(%code, reason, "the Kafka producer hit a fatal error; replacing it and resending from the last acknowledged positions");
        let producer = loop {
            match client_config(&self.bootstrap, &self.settings.kafka_props).create_with_context(
                ShipContext::new(self.settings.attribution == Attribution::Key),
            ) {
                Ok(p) => break p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a new producer; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        // Dropping the old producer purges what it still held; its delivery
        // reports die with its context, so no stale ack reaches a tracker.
        self.sending.topics.release();
        drop(std::mem::replace(&mut self.producer, producer));
        self.sending.report.producer_restarts += 1;
        self.sending.forget_in_flight();
    }

    /// Fault injection for the fatal-error test: once this many lines were
    /// sent, ask librdkafka to raise a fatal error (as a broker would by
    /// fencing the idempotent producer). Set by LOGFERRY_FAULT_FATAL_AFTER,
    /// read only by a build with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub fn inject_fatal_error(&mut self) {
        let Some(after) = self.fault_fatal_after else {
            return;
        };
        if self.sending.report.lines_sent >= after {
            self.fault_fatal_after = None;
            tracing::warn!(after, "fault injection: raising a fatal producer error");
            // SAFETY: the handle is live; the reason is a valid C string.
            unsafe {
                rdkafka::bindings::rd_kafka_test_fatal_error(
                    self.producer.client().native_ptr(),
                    rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                    c"logferry fault injection".as_ptr(),
                );
            }
        }
    }

    fn log_failure(&mut self, topic: &str, error: &KafkaError) {
        let k = (topic.to_string(), error.to_string());
        let now = Instant::now();
        let due = self
            .reported_failures
            .get(&k)
            .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(60));
        if due {
            tracing::error!(topic, %error, "delivery failed; the record is kept and retried (its file's checkpoint waits for it)");
            self.reported_failures.insert(k, now);
        }
    }

    pub fn send_due_retries(&mut self, all: bool) {
        if self.exactly_once {
            // A failed record fails its transaction, which is aborted and
            // read again: it is never sent again inside it.
            return;
        }
        let now = Instant::now();
        let n = self.sending.retries.len();
        for _ in 0..n {
            let Some(mut r) = self.sending.retries.pop_front() else {
                break;
            };
            if !all && r.due > now {
                self.sending.retries.push_back(r);
                continue;
            }
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut rec = BaseRecord::with_opaque_to(&r.topic, r.opaque)
                .payload(&r.payload)
                .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k);
            }
            self.sending.report.retries += 1;
            if let Err((e, _)) = self.producer.send(rec) {
                self.sending.delivery_errors.add(ErrorKind::of(&e));
                self.log_failure(&r.topic.clone(), &e);
                r.backoff = (r.backoff * 2).min(RETRY_BACKOFF_MAX);
                r.due = now + r.backoff;
                self.sending.retries.push_back(r);
            }
        }
    }

    /// Serve what librdkafka has queued (one non-blocking poll serves one
    /// event, e.g. the delivery reports of one produce response); whether
    /// any delivery report came.
    fn serve_queued_events(&self) -> bool {
        let ctx = self.producer.context();
        let start = ctx.reports_waiting();
        for _ in 0..MAX_EVENTS_PER_SERVICE {
            let before = ctx.reports_waiting();
            self.producer.poll(Duration::ZERO);
            if ctx.reports_waiting() == before {
                break;
            }
        }
        ctx.reports_waiting() != start
    }
}

impl LineSink for Outbox {
    fn room(&self, input: usize, slot: usize) -> usize {
        let share = self.settings.max_inflight_bytes / self.settings.inputs.len().max(1);
        let room = share.saturating_sub(self.sending.inflight.of(input));
        match self.stream_bounds.get(input).copied().flatten() {
            Some(bound) => {
                let own = bound.saturating_sub(self.sending.inflight.bytes_of_slot(slot));
                if own == 0 && room > 0 {
                    self.stream_held.set(true);
                }
                room.min(own)
            }
            None => room,
        }
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        self.route(stream);
        let route = self.routes[stream.slot].as_ref().expect("routed above");
        self.sending
            .send(&self.producer, &self.settings, route, stream, seq, line);
    }
}

fn is_size_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// Set the truncated flag in a copied record's source, wherever the
/// attribution put it (a plain key is never touched).
fn mark_truncated(
    attribution: Attribution,
    key: Option<&mut Vec<u8>>,
    headers: &mut [(String, Vec<u8>)],
) {
    match (attribution, key) {
        (Attribution::Key, Some(k)) => encode::mark_truncated(k),
        (Attribution::Header, _) => {
            for (k, v) in headers {
                if k == SOURCE_HEADER {
                    encode::mark_truncated(v);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_tail::{FileId, GenerationId};
    use rdkafka::mocking::MockCluster;

    fn settings(bootstrap: &str, partition_by: &str) -> ShipSettings {
        let text = format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\n[checkpoint]\ndirectory = \"/var/lib/lf\"\n\
             [[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\npartition_by = \"{partition_by}\"\n"
        );
        crate::config::parse(&text, Path::new("/etc/lf.toml"))
            .expect("valid")
            .settings
    }

    fn stream(slot: usize) -> StreamInfo<'static> {
        StreamInfo {
            slot,
            serial: slot as u64,
            input: 0,
            generation: GenerationId::new(),
            id: FileId {
                dev: 1,
                ino: slot as u64,
            },
            opened_path: "/a",
            path: "/a",
        }
    }

    /// Hands out lines of 100,000 bytes from the stream in `slot` until it
    /// has no room left (or `limit` lines); how many went.
    fn fill(outbox: &mut Outbox, slot: usize, limit: u64) -> u64 {
        let bytes = vec![b'x'; 100_000];
        let mut seq = 0;
        while seq < limit && outbox.room(0, slot) > 0 {
            let start = seq * 100_001;
            let line = Line {
                bytes: &bytes,
                start,
                end: start + 100_001,
                truncated: false,
            };
            outbox.line(&stream(slot), seq, line);
            seq += 1;
        }
        seq
    }

    #[test]
    fn a_file_bound_to_one_partition_holds_two_batches_in_flight() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let mut outbox =
            Outbox::new(settings(&bootstrap, "generation"), &bootstrap).expect("outbox");
        // Twice batch.size (1,000,000) of keys and values: 19 lines of
        // 100,000 bytes and their keys stay under it, the 20th passes it.
        assert_eq!(fill(&mut outbox, 0, 1000), 20);
        assert!(outbox.take_stream_held(), "held by its own bound");
        assert!(!outbox.take_stream_held(), "said once");
        assert!(outbox.inflight() < ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES / 3);
        // Another file of the same input is not held by this one's bound.
        assert!(outbox.room(0, 1) > 0);
        assert_eq!(fill(&mut outbox, 1, 5), 5);
    }

    #[test]
    fn a_file_spread_over_partitions_has_only_its_input_share() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 3, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let mut outbox = Outbox::new(settings(&bootstrap, "none"), &bootstrap).expect("outbox");
        let sent = fill(&mut outbox, 0, 1000);
        assert!(sent > 80, "{sent} lines: more than 8 MiB");
        assert!(!outbox.take_stream_held());
        assert!(outbox.inflight() >= ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES);
    }
}
