//! The Kafka side of shipping: the [`Outbox`] turns lines into records
//! (value format, source attribution, partitioning key, static headers),
//! hands them to the producer, bounds what is in flight (per input, so a
//! stalled topic stalls only its input), retries what failed (never
//! dropping a record), learns size limits from the broker, replaces the
//! producer after a fatal error, and reports acknowledgements by
//! [`DeliveryTag`].

use std::collections::{HashMap, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logferry_tail::acks::SEQ_BITS;
use logferry_tail::{FileId, GenerationId, Line, LineSink, StreamInfo};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use super::produce::{
    client_config, record_cost, Delivery, ErrorCounts, ErrorKind, Failure, ShipContext,
    ShipProducer,
};
use super::{ShipError, ShipReport};
use crate::config::{Attribution, PartitionBy, ShipSettings};
use crate::wire::{self as encode, encode_source, encode_source_key, source_tail, SOURCE_HEADER};

/// Granularity of waiting for delivery reports.
const SERVICE_NAP: Duration = Duration::from_millis(1);
/// Events served per `service` at most, so that a flood of reports cannot
/// starve reading.
const MAX_EVENTS_PER_SERVICE: usize = 256;
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);

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

/// A record whose delivery failed, waiting to be sent again.
struct Retry {
    due: Instant,
    backoff: Duration,
    opaque: usize,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// Where one stream's records go, fixed when its first line is sent.
struct Route {
    /// The stream it was made for (slots are reused).
    serial: u64,
    input: usize,
    /// The topic (its input's template, rendered for the file).
    topic: String,
    /// Record key under `PartitionBy::Generation`, `File` or `Host`.
    key: Vec<u8>,
    /// The generation `key` was made for: a file cut in place goes on in
    /// the same stream as a new generation, which needs a new key.
    key_generation: GenerationId,
    /// Host and path part of the source attribution, fixed per file.
    source_tail: Vec<u8>,
}

pub struct Outbox {
    settings: ShipSettings,
    /// The bootstrap list in use (for messages and producer replacement).
    bootstrap: String,
    producer: ShipProducer,
    /// Per stream slot, its route.
    routes: Vec<Option<Route>>,
    inflight: usize,
    /// The same, per input: an input whose records cannot be delivered (its
    /// topic missing, say) may hold at most its share of the bound, so the
    /// other inputs keep flowing.
    input_inflight: Vec<usize>,
    retries: VecDeque<Retry>,
    deliveries: Vec<Delivery>,
    /// Per topic: the largest record value the brokers accepted, learned from
    /// size rejections; longer lines are cut to it before sending.
    size_caps: HashMap<String, usize>,
    /// (topic, error) pairs already logged, so an outage logs once, not per
    /// record.
    reported_failures: HashMap<(String, String), Instant>,
    /// Fault injection (tests): raise a fatal producer error after this many
    /// lines were sent.
    #[cfg(feature = "test-hooks")]
    fault_fatal_after: Option<u64>,
    payload_scratch: Vec<u8>,
    source_scratch: Vec<u8>,
    /// When the current batch of lines was read (the JSON format's
    /// `read_at_ms`).
    read_at_ms: u64,
    pub report: ShipReport,
    /// Per input: lines read, acknowledged (for metrics; an add per line).
    pub counts: Vec<InputCounts>,
    /// Failed deliveries and refused records, per kind.
    pub delivery_errors: ErrorCounts,
}

/// One input's line counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct InputCounts {
    pub lines_read: u64,
    pub lines_acked: u64,
    pub bytes_acked: u64,
}

impl Outbox {
    pub fn new(settings: ShipSettings, bootstrap: &str) -> Result<Self, ShipError> {
        let producer: ShipProducer = client_config(bootstrap, &settings.kafka_props)
            .create_with_context(ShipContext::new(settings.attribution == Attribution::Key))
            .map_err(ShipError::Producer)?;
        let n_inputs = settings.inputs.len();
        Ok(Outbox {
            settings,
            bootstrap: bootstrap.to_string(),
            producer,
            routes: Vec::new(),
            inflight: 0,
            input_inflight: vec![0; n_inputs],
            retries: VecDeque::new(),
            deliveries: Vec::new(),
            size_caps: HashMap::new(),
            reported_failures: HashMap::new(),
            #[cfg(feature = "test-hooks")]
            fault_fatal_after: std::env::var("LOGFERRY_FAULT_FATAL_AFTER")
                .ok()
                .and_then(|v| v.parse().ok()),
            payload_scratch: Vec::new(),
            source_scratch: Vec::new(),
            read_at_ms: 0,
            report: ShipReport::default(),
            counts: vec![InputCounts::default(); n_inputs],
            delivery_errors: ErrorCounts::default(),
        })
    }

    pub fn producer(&self) -> &ShipProducer {
        &self.producer
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Bytes of records not acknowledged yet.
    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// Bytes of `input`'s records not acknowledged yet.
    pub fn input_inflight(&self, input: usize) -> usize {
        self.input_inflight.get(input).copied().unwrap_or(0)
    }

    /// Whether records of the stream in `slot` wait for a retry.
    pub fn holds(&self, slot: usize) -> bool {
        self.retries
            .iter()
            .any(|r| DeliveryTag::unpack(r.opaque).slot == slot)
    }

    /// The stream in `slot` ended: forget its route.
    pub fn forget(&mut self, slot: usize) {
        if let Some(r) = self.routes.get_mut(slot) {
            *r = None;
        }
    }

    /// Lines read from now on carry this time as their read time.
    pub fn stamp_read_time(&mut self) {
        self.read_at_ms = SystemTime::now()
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
        self.routes[s.slot] = Some(Route {
            serial: s.serial,
            input: s.input,
            topic: input.topic_for(host, path),
            key: match input.partition_by {
                PartitionBy::Generation => encode::generation_partition_key(host, s.generation),
                PartitionBy::Host => host.clone().into_bytes(),
                _ => format!("{host}:{}", s.id).into_bytes(),
            },
            key_generation: s.generation,
            source_tail: source_tail(host, path.as_os_str().as_bytes()),
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
                Delivery::Acked { opaque, cost } => {
                    self.inflight = self.inflight.saturating_sub(cost);
                    self.report.lines_acked += 1;
                    let bytes = cost.saturating_sub(record_cost(0, 0)) as u64;
                    self.report.bytes_acked += bytes;
                    let tag = DeliveryTag::unpack(opaque);
                    if let Some(Some(route)) = self.routes.get(tag.slot) {
                        let share = &mut self.input_inflight[route.input];
                        *share = share.saturating_sub(cost);
                        let counts = &mut self.counts[route.input];
                        counts.lines_acked += 1;
                        counts.bytes_acked += bytes;
                    }
                    acked(tag.slot, tag.seq);
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
                    self.report.delivery_failures += 1;
                    self.delivery_errors.add(ErrorKind::of(&error));
                    if is_size_error(&error) {
                        // The broker's limit is below this record. Every
                        // record of the rejected batch reports the error, so
                        // only the largest is taken to be the culprit: the
                        // topic's cap drops below it, and only records over
                        // the cap are cut (flagged truncated), never dropped.
                        let cap = self.size_caps.entry(topic.clone()).or_insert(usize::MAX);
                        let largest = largest_failed.get(&topic).copied().unwrap_or(payload.len());
                        *cap = (*cap).min(largest * 3 / 4).max(1);
                        let cap = *cap;
                        if payload.len() > cap {
                            self.inflight = self.inflight.saturating_sub(payload.len() - cap);
                            if let Some(Some(route)) =
                                self.routes.get(DeliveryTag::unpack(opaque).slot)
                            {
                                let share = &mut self.input_inflight[route.input];
                                *share = share.saturating_sub(payload.len() - cap);
                            }
                            payload.truncate(cap);
                            mark_truncated(self.settings.attribution, key.as_mut(), &mut headers);
                            tracing::warn!(topic = %topic, bytes = cap, "record over the broker's size limit; shipping it truncated");
                        }
                    }
                    self.log_failure(&topic, &error);
                    self.retries.push_back(Retry {
                        due: Instant::now() + Duration::from_millis(500),
                        backoff: Duration::from_millis(500),
                        opaque,
                        topic,
                        key,
                        payload,
                        headers,
                    });
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
        drop(std::mem::replace(&mut self.producer, producer));
        self.report.producer_restarts += 1;
        self.retries.clear();
        self.inflight = 0;
        self.input_inflight.iter_mut().for_each(|c| *c = 0);
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
        if self.report.lines_sent >= after {
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
        let now = Instant::now();
        let n = self.retries.len();
        for _ in 0..n {
            let Some(mut r) = self.retries.pop_front() else {
                break;
            };
            if !all && r.due > now {
                self.retries.push_back(r);
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
            self.report.retries += 1;
            if let Err((e, _)) = self.producer.send(rec) {
                self.delivery_errors.add(ErrorKind::of(&e));
                self.log_failure(&r.topic.clone(), &e);
                r.backoff = (r.backoff * 2).min(RETRY_BACKOFF_MAX);
                r.due = now + r.backoff;
                self.retries.push_back(r);
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
    fn room(&self, input: usize) -> usize {
        let share = self.settings.max_inflight_bytes / self.settings.inputs.len().max(1);
        share.saturating_sub(self.input_inflight[input])
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        self.route(stream);
        let Outbox {
            settings,
            producer,
            routes,
            inflight,
            input_inflight,
            retries,
            size_caps,
            payload_scratch,
            source_scratch,
            read_at_ms,
            report,
            counts,
            delivery_errors,
            ..
        } = self;
        counts[stream.input].lines_read += 1;
        let route = routes[stream.slot].as_ref().expect("routed above");
        // Read by &str, and not at all until a broker refused a size: a
        // lookup keyed by an owned topic name cost an allocation and a
        // hash per line (a tenth of the backlog's CPU).
        let known_cap = match size_caps.is_empty() {
            true => usize::MAX,
            false => size_caps
                .get(route.topic.as_str())
                .copied()
                .unwrap_or(usize::MAX),
        };
        let mut size_cap = known_cap;
        let input = &settings.inputs[stream.input];
        let mut builder = RecordBuilder {
            producer,
            topic: &route.topic,
            format: &input.format,
            host: &settings.host,
            path: stream.path,
            read_at_ms: *read_at_ms,
            key: match &input.partition_by {
                PartitionBy::None => RecordKey::None,
                PartitionBy::Generation | PartitionBy::File | PartitionBy::Host => {
                    RecordKey::Fixed(route.key.as_slice())
                }
                PartitionBy::Pattern(p) => RecordKey::Pattern(p.regex()),
            },
            source: (stream.generation, stream.id, route.source_tail.as_slice()),
            attribution: settings.attribution,
            static_headers: &input.headers,
            tag: DeliveryTag {
                slot: stream.slot,
                seq,
            },
            inflight,
            input_inflight: &mut input_inflight[stream.input],
            retries,
            payload_scratch,
            source_scratch,
            report,
            delivery_errors,
            size_cap: &mut size_cap,
        };
        builder.send(line);
        if size_cap != known_cap {
            size_caps.insert(route.topic.clone(), size_cap);
        }
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

/// How one record's key is found.
enum RecordKey<'a> {
    None,
    Fixed(&'a [u8]),
    Pattern(&'a regex::bytes::Regex),
}

impl RecordKey<'_> {
    fn for_line<'l>(&'l self, line: &'l [u8]) -> Option<&'l [u8]> {
        match self {
            RecordKey::None => None,
            RecordKey::Fixed(k) => Some(k),
            RecordKey::Pattern(re) => {
                let caps = re.captures(line)?;
                caps.name("key")
                    .or_else(|| caps.get(1))
                    .map(|m| &line[m.range()])
            }
        }
    }
}

/// Everything needed to turn one framed line into a record, borrowed from
/// the [`Outbox`] for one line.
struct RecordBuilder<'a> {
    producer: &'a ShipProducer,
    topic: &'a str,
    format: &'a encode::Format,
    host: &'a str,
    path: &'a str,
    read_at_ms: u64,
    key: RecordKey<'a>,
    /// The file's generation and identity, and the host-and-path part of
    /// its source.
    source: (GenerationId, FileId, &'a [u8]),
    attribution: Attribution,
    /// The input's static headers.
    static_headers: &'a [(String, String)],
    /// Where the acknowledgement goes back to.
    tag: DeliveryTag,
    inflight: &'a mut usize,
    /// This input's part of `inflight`.
    input_inflight: &'a mut usize,
    retries: &'a mut VecDeque<Retry>,
    payload_scratch: &'a mut Vec<u8>,
    /// The encoded source: the key form or the `lf` header value.
    source_scratch: &'a mut Vec<u8>,
    report: &'a mut ShipReport,
    delivery_errors: &'a mut ErrorCounts,
    /// Learned size limit of this topic, if any.
    size_cap: &'a mut usize,
}

impl RecordBuilder<'_> {
    fn send(&mut self, line: Line<'_>) {
        let opaque = self.tag.pack();
        let (generation, id, tail) = self.source;
        let source = encode::LineSource {
            host: self.host,
            path: self.path,
            generation,
            id,
            offset: line.start,
            read_at_ms: self.read_at_ms,
        };
        let full = self
            .format
            .payload(line.bytes, &source, self.payload_scratch);
        let mut counted = false;
        // Each pass builds the record afresh: a pass ends when librdkafka
        // takes the record, or when it must be cut to fit (then the source
        // says so) or waited for.
        loop {
            let payload = &full[..full.len().min(*self.size_cap)];
            let truncated = line.truncated || payload.len() < full.len();
            let partition_key = self.key.for_line(line.bytes);
            let mut rec = BaseRecord::with_opaque_to(self.topic, opaque).payload(payload);
            match self.attribution {
                Attribution::Key => encode_source_key(
                    self.source_scratch,
                    partition_key.unwrap_or_default(),
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Header => encode_source(
                    self.source_scratch,
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Off => {}
            }
            let encoded = self.source_scratch.as_slice();
            let source_header = self.attribution == Attribution::Header;
            if self.attribution == Attribution::Key {
                rec = rec.key(encoded);
            } else if let Some(k) = partition_key {
                rec = rec.key(k);
            }
            if source_header || !self.static_headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(self.static_headers.len() + 1);
                if source_header {
                    headers = headers.insert(Header {
                        key: SOURCE_HEADER,
                        value: Some(encoded),
                    });
                }
                for (name, value) in self.static_headers {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
                rec = rec.headers(headers);
            }
            if !counted {
                let cost = record_cost(rec.key.map_or(0, <[u8]>::len), payload.len());
                *self.inflight += cost;
                *self.input_inflight += cost;
                self.report.lines_sent += 1;
                counted = true;
            }
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's own queue is full: let it drain
                    // (served without rdkafka's spinning timed poll).
                    self.producer.poll(Duration::ZERO);
                    std::thread::sleep(SERVICE_NAP);
                }
                Err((
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                    back,
                )) if back.payload.is_some_and(|p| p.len() > 1) => {
                    // Over the client's message.max.bytes: cut to fit, flag
                    // it, and send again at once.
                    let len = back.payload.map_or(0, <[u8]>::len);
                    let keep = len * 3 / 4;
                    *self.size_cap = (*self.size_cap).min(keep);
                    *self.inflight = self.inflight.saturating_sub(len - keep);
                    *self.input_inflight = self.input_inflight.saturating_sub(len - keep);
                    tracing::warn!(topic = %self.topic, bytes = keep, "record over the client's message.max.bytes; shipping it truncated");
                }
                Err((error, back)) => {
                    // Rejected before queueing (unknown topic, size limit):
                    // keep it and retry later; never drop it.
                    tracing::error!(topic = %self.topic, %error, "record not accepted by the producer; kept for retry");
                    self.report.delivery_failures += 1;
                    self.delivery_errors.add(ErrorKind::of(&error));
                    let headers = back
                        .headers
                        .as_ref()
                        .map(|hs| {
                            use rdkafka::message::Headers;
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    self.retries.push_back(Retry {
                        due: Instant::now() + Duration::from_secs(1),
                        backoff: Duration::from_secs(1),
                        opaque,
                        topic: self.topic.to_string(),
                        key: back.key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec).unwrap_or_default(),
                        headers,
                    });
                    return;
                }
            }
        }
    }
}
