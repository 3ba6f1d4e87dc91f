//! Turning one framed line into one record and handing it to the producer:
//! the per-record state the [`Outbox`](super::outbox::Outbox) keeps
//! (scratch buffers, learned size caps, what is in flight, the retry queue,
//! counters) and the one place a record is built.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_tail::{GenerationId, Line, StreamInfo};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::inflight::InFlight;
use super::outbox::DeliveryTag;
use super::produce::{record_cost, ErrorCounts, ErrorKind, ShipProducer};
use super::topic_handles::TopicHandles;
use super::ShipReport;
use crate::config::{Attribution, PartitionBy, ShipSettings};
use crate::wire::{
    self as encode, encode_source, encode_source_key, put_source_tail, SOURCE_HEADER,
};

/// Granularity of waiting for librdkafka's queue to drain.
pub(super) const SERVICE_NAP: Duration = Duration::from_millis(1);
/// A record that could not be delivered is sent again after this, then
/// after twice as long each time, up to `RETRY_BACKOFF_MAX`.
const FIRST_RETRY_BACKOFF: Duration = Duration::from_millis(500);
pub(super) const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A record whose delivery failed, waiting to be sent again.
pub(super) struct Retry {
    pub(super) due: Instant,
    pub(super) backoff: Duration,
    pub(super) opaque: usize,
    pub(super) topic: String,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    pub(super) headers: Vec<(String, Vec<u8>)>,
}

impl Retry {
    /// The one way a retry is made: due after the first backoff.
    pub(super) fn new(
        opaque: usize,
        topic: String,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Self {
        Retry {
            due: Instant::now() + FIRST_RETRY_BACKOFF,
            backoff: FIRST_RETRY_BACKOFF,
            opaque,
            topic,
            key,
            payload,
            headers,
        }
    }
}

/// Where one stream's records go, fixed when its first line is sent.
pub(super) struct Route {
    /// The stream it was made for (slots are reused).
    pub(super) serial: u64,
    pub(super) input: usize,
    /// The topic (its input's template, rendered for the file); shared
    /// by the routes that render to the same name.
    pub(super) topic: Arc<str>,
    /// Record key under `PartitionBy::Generation`, `File` or `Host`.
    pub(super) key: Vec<u8>,
    /// The generation `key` was made for: a file cut in place goes on in
    /// the same stream as a new generation, which needs a new key.
    pub(super) key_generation: GenerationId,
}

/// One input's line counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct InputCounts {
    pub lines_read: u64,
    pub lines_acked: u64,
    pub bytes_acked: u64,
}

/// The state that sending a record changes: a field of the Outbox, so that
/// sending borrows it apart from the producer, the routes and the settings.
pub(super) struct Sending {
    pub(super) inflight: InFlight,
    pub(super) retries: VecDeque<Retry>,
    /// Per topic: the largest record value the brokers accepted, learned from
    /// size rejections; longer lines are cut to it before sending.
    pub(super) size_caps: HashMap<String, usize>,
    payload_scratch: Vec<u8>,
    /// The encoded source: the key form or the `lf` header value.
    source_scratch: Vec<u8>,
    /// Host and path part of the source, encoded per record rather than
    /// kept per file: with 200,000 files followed, a copy each was 90 bytes
    /// a file.
    tail_scratch: Vec<u8>,
    /// When the current batch of lines was read (the JSON format's
    /// `read_at_ms`).
    pub(super) read_at_ms: u64,
    pub(super) report: ShipReport,
    /// Per input: lines read, acknowledged (for metrics; an add per line).
    pub(super) counts: Vec<InputCounts>,
    /// Failed deliveries and refused records, per kind.
    pub(super) delivery_errors: ErrorCounts,
    /// The producer's topic handles (released before it is replaced).
    pub(super) topics: TopicHandles,
}

impl Sending {
    pub(super) fn new(inputs: usize) -> Self {
        Sending {
            inflight: InFlight::new(inputs),
            retries: VecDeque::new(),
            size_caps: HashMap::new(),
            payload_scratch: Vec::new(),
            source_scratch: Vec::new(),
            tail_scratch: Vec::new(),
            read_at_ms: 0,
            report: ShipReport::default(),
            counts: vec![InputCounts::default(); inputs],
            delivery_errors: ErrorCounts::default(),
            topics: TopicHandles::default(),
        }
    }

    /// The inputs were replaced (a reload, with nothing in flight):
    /// `kept[i]` is the old index of the new input `i`, whose counts stay.
    pub(super) fn remap_inputs(&mut self, kept: &[Option<usize>]) {
        debug_assert_eq!(self.inflight.total(), 0);
        self.inflight = InFlight::new(kept.len());
        self.counts = kept
            .iter()
            .map(|k| k.map_or_else(InputCounts::default, |old| self.counts[old]))
            .collect();
    }

    /// Build the record of `line` (of `stream`, sequence `seq`, routed by
    /// `route`) and hand it to `producer`. A record librdkafka will not take
    /// is kept for a retry, never dropped; one over a size limit is cut to
    /// fit (and its source says so).
    pub(super) fn send(
        &mut self,
        producer: &ShipProducer,
        settings: &ShipSettings,
        route: &Route,
        stream: &StreamInfo<'_>,
        seq: u64,
        line: Line<'_>,
    ) {
        self.counts[stream.input].lines_read += 1;
        // Read by &str, and not at all until a broker refused a size: a
        // lookup keyed by an owned topic name cost an allocation and a
        // hash per line (a tenth of the backlog's CPU).
        let known_cap = match self.size_caps.is_empty() {
            true => usize::MAX,
            false => self
                .size_caps
                .get(&*route.topic)
                .copied()
                .unwrap_or(usize::MAX),
        };
        let mut size_cap = known_cap;
        let input = &settings.inputs[stream.input];
        let key = match &input.partition_by {
            PartitionBy::None => RecordKey::None,
            PartitionBy::Generation | PartitionBy::File | PartitionBy::Host => {
                RecordKey::Fixed(route.key.as_slice())
            }
            PartitionBy::Pattern(p) => RecordKey::Pattern(p.regex()),
        };
        let opaque = DeliveryTag {
            slot: stream.slot,
            seq,
        }
        .pack();
        let (generation, id) = (stream.generation, stream.id);
        if settings.attribution != Attribution::Off {
            put_source_tail(
                &mut self.tail_scratch,
                &settings.host,
                stream.opened_path.as_bytes(),
            );
        }
        let tail = self.tail_scratch.as_slice();
        let source = encode::LineSource {
            host: &settings.host,
            path: stream.path,
            generation,
            id,
            offset: line.start,
            read_at_ms: self.read_at_ms,
        };
        let full = input
            .format
            .payload(line.bytes, &source, &mut self.payload_scratch);
        let attribution = settings.attribution;
        let topic = &*route.topic;
        let mut counted = false;
        // Each pass builds the record afresh: a pass ends when librdkafka
        // takes the record, or when it must be cut to fit (then the source
        // says so) or waited for.
        loop {
            let payload = &full[..full.len().min(size_cap)];
            let truncated = line.truncated || payload.len() < full.len();
            let partition_key = key.for_line(line.bytes);
            let mut rec = BaseRecord::with_opaque_to(topic, opaque).payload(payload);
            match attribution {
                Attribution::Key => encode_source_key(
                    &mut self.source_scratch,
                    partition_key.unwrap_or_default(),
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Header => encode_source(
                    &mut self.source_scratch,
                    generation,
                    id,
                    line.start,
                    truncated,
                    tail,
                ),
                Attribution::Off => {}
            }
            let encoded = self.source_scratch.as_slice();
            let source_header = attribution == Attribution::Header;
            if attribution == Attribution::Key {
                rec = rec.key(encoded);
            } else if let Some(k) = partition_key {
                rec = rec.key(k);
            }
            if source_header || !input.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(input.headers.len() + 1);
                if source_header {
                    headers = headers.insert(Header {
                        key: SOURCE_HEADER,
                        value: Some(encoded),
                    });
                }
                for (name, value) in &input.headers {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
                rec = rec.headers(headers);
            }
            if !counted {
                let cost = record_cost(rec.key.map_or(0, <[u8]>::len), payload.len());
                self.inflight.add(stream.input, cost);
                self.report.lines_sent += 1;
                counted = true;
            }
            match self.topics.send(producer, rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's own queue is full: let it drain
                    // (served without rdkafka's spinning timed poll).
                    producer.poll(Duration::ZERO);
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
                    size_cap = size_cap.min(keep);
                    self.inflight.settle(Some(stream.input), len - keep);
                    tracing::warn!(
                        topic,
                        bytes = keep,
                        "record over the client's message.max.bytes; shipping it truncated"
                    );
                }
                Err((error, back)) => {
                    // Rejected before queueing (unknown topic, size limit):
                    // keep it and retry later; never drop it.
                    tracing::error!(topic, %error, "record not accepted by the producer; kept for retry");
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
                    self.retries.push_back(Retry::new(
                        opaque,
                        topic.to_string(),
                        back.key.map(<[u8]>::to_vec),
                        back.payload.map(<[u8]>::to_vec).unwrap_or_default(),
                        headers,
                    ));
                    break;
                }
            }
        }
        if size_cap != known_cap {
            self.size_caps.insert(route.topic.to_string(), size_cap);
        }
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
