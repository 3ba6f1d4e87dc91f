//! Turning one framed line into one record and handing it to the producer:
//! the per-record state the [`Outbox`](super::outbox::Outbox) keeps
//! (scratch buffers, learned size caps, what is in flight, the retry queue,
//! counters) and the one place a record is built.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_tail::{GenerationId, Line, LineFramer, LongLinePolicy, StreamInfo};
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
    self as encode, encode_source, encode_source_key, mark_packed, put_source_tail, SOURCE_HEADER,
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
    /// Packs that went out as several records (a topic's size limit was
    /// below them), by delivery tag: how many of their records are still
    /// unacknowledged. A tag not here stands for one record.
    pub(super) split_packs: HashMap<usize, usize>,
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
            split_packs: HashMap::new(),
        }
    }

    /// Nothing sent is in flight any more (the producer was replaced, or
    /// its transaction aborted): no retries, no counts, no split packs.
    pub(super) fn forget_in_flight(&mut self) {
        self.retries.clear();
        self.inflight.clear();
        self.split_packs.clear();
    }

    /// One record of the tag `opaque` was acknowledged: whether its line
    /// is now acknowledged whole (the last record of a split pack, or a
    /// record that was never split).
    pub(super) fn acked_whole(&mut self, opaque: usize) -> bool {
        // Nearly always empty: no hash a record for the rare split pack.
        if self.split_packs.is_empty() {
            return true;
        }
        let Some(left) = self.split_packs.get_mut(&opaque) else {
            return true;
        };
        *left -= 1;
        if *left > 0 {
            return false;
        }
        self.split_packs.remove(&opaque);
        true
    }

    /// A record of the tag `opaque` now goes as `parts` records.
    pub(super) fn note_split(&mut self, opaque: usize, parts: usize) {
        let left = self.split_packs.entry(opaque).or_insert(1);
        *left += parts.saturating_sub(1);
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
        // Several whole lines (`pack_bytes`): flagged so that readers
        // showing lines one by one split it, and never cut (see below).
        let packed = input.pack_bytes > 0 && memchr::memchr(b'\n', line.bytes).is_some();
        if packed && line.bytes.len() > known_cap {
            self.counts[stream.input].lines_read -= 1;
            self.send_in_parts(producer, settings, route, stream, seq, line, known_cap);
            return;
        }
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
            if packed && attribution != Attribution::Off {
                mark_packed(&mut self.source_scratch);
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
                self.inflight.add(stream.input, stream.slot, cost);
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
                    if packed {
                        // A pack is never cut: its lines go in records
                        // under the cap, sent as one line's.
                        let cost = record_cost(back.key.map_or(0, <[u8]>::len), len);
                        self.inflight.settle(Some(stream.input), stream.slot, cost);
                        self.report.lines_sent -= 1;
                        self.counts[stream.input].lines_read -= 1;
                        self.size_caps.insert(route.topic.to_string(), size_cap);
                        self.send_in_parts(producer, settings, route, stream, seq, line, size_cap);
                        return;
                    }
                    self.inflight
                        .shrink(Some(stream.input), stream.slot, len - keep);
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

impl Sending {
    /// Send the pack `line` as records of at most `cap` bytes, each whole
    /// lines (a line over `cap` alone is cut, as any line over a topic's
    /// limit is), all under its tag: its line is acknowledged once every
    /// one of them is.
    #[allow(clippy::too_many_arguments)]
    fn send_in_parts(
        &mut self,
        producer: &ShipProducer,
        settings: &ShipSettings,
        route: &Route,
        stream: &StreamInfo<'_>,
        seq: u64,
        line: Line<'_>,
        cap: usize,
    ) {
        let parts = parts_under(line.bytes, line.start, cap);
        let opaque = DeliveryTag {
            slot: stream.slot,
            seq,
        }
        .pack();
        self.note_split(opaque, parts.len());
        tracing::warn!(
            topic = &*route.topic,
            bytes = line.bytes.len(),
            cap,
            "a pack of lines is over the topic's size limit; sending its lines in {} records (lower pack_bytes)",
            parts.len()
        );
        for (bytes, start, truncated) in &parts {
            let part = Line {
                bytes,
                start: *start,
                end: *start + bytes.len() as u64,
                truncated: *truncated || line.truncated,
            };
            self.send(producer, settings, route, stream, seq, part);
        }
    }

    /// A pack the broker refused as too large goes back in the retry queue
    /// as records of whole lines under `cap`, each attributed to its own
    /// first line, all under the pack's tag (never cut: that would drop
    /// lines).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn retry_in_parts(
        &mut self,
        attribution: Attribution,
        opaque: usize,
        topic: String,
        key: Option<Vec<u8>>,
        payload: &[u8],
        headers: Vec<(String, Vec<u8>)>,
        cap: usize,
    ) {
        let source_of = |bytes: &[u8]| crate::wire::decode_source(bytes).ok();
        let source = match attribution {
            Attribution::Key => key.as_deref().and_then(source_of),
            Attribution::Header => headers
                .iter()
                .find(|(k, _)| k == SOURCE_HEADER)
                .and_then(|(_, v)| source_of(v)),
            Attribution::Off => None,
        };
        let parts = parts_under(payload, 0, cap);
        self.note_split(opaque, parts.len());
        tracing::warn!(%topic, bytes = payload.len(), cap, "a pack of lines is over the broker's size limit; sending its lines again in {} records (lower pack_bytes)", parts.len());
        for (bytes, at, truncated) in parts {
            let mut key = key.clone();
            let mut headers = headers.clone();
            if let Some(src) = &source {
                let tail = crate::wire::source_tail(&src.host, &src.path);
                let generation = src.generation.unwrap_or(GenerationId(0));
                let offset = src.offset + at;
                let encoded = &mut self.source_scratch;
                match attribution {
                    Attribution::Key => encode_source_key(
                        encoded,
                        &src.partition_key,
                        generation,
                        src.id,
                        offset,
                        truncated,
                        &tail,
                    ),
                    _ => encode_source(encoded, generation, src.id, offset, truncated, &tail),
                }
                if memchr::memchr(b'\n', &bytes).is_some() {
                    mark_packed(encoded);
                }
                match attribution {
                    Attribution::Key => key = Some(encoded.clone()),
                    _ => headers
                        .iter_mut()
                        .filter(|(k, _)| k == SOURCE_HEADER)
                        .for_each(|(_, v)| v.clone_from(encoded)),
                }
            }
            self.retries
                .push_back(Retry::new(opaque, topic.clone(), key, bytes, headers));
        }
    }
}

/// The pack `bytes` (whose first byte is at offset `start`) cut into
/// packs of whole lines of at most `cap` bytes: (bytes, offset, truncated)
/// each; a line over `cap` alone is cut to it, as any line over a record
/// limit is.
fn parts_under(bytes: &[u8], start: u64, cap: usize) -> Vec<(Vec<u8>, u64, bool)> {
    let mut parts = Vec::new();
    let mut framer = LineFramer::new(start, cap, LongLinePolicy::Truncate, false).packing(cap);
    let mut keep = |l: Line<'_>| parts.push((l.bytes.to_vec(), l.start, l.truncated));
    framer.push(bytes, &mut keep);
    framer.flush_partial(&mut keep);
    parts
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_is_cut_into_whole_lines_under_the_cap() {
        let parts = parts_under(b"aa\nbbbb\ncc\ndddddddd\ne", 100, 5);
        let got: Vec<(&[u8], u64, bool)> = parts
            .iter()
            .map(|(b, at, t)| (b.as_slice(), *at, *t))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"aa"[..], 100, false),
                (&b"bbbb"[..], 103, false),
                (&b"cc"[..], 108, false),
                // Over the cap alone: cut, and said so.
                (&b"ddddd"[..], 111, true),
                (&b"e"[..], 120, false),
            ]
        );
    }

    #[test]
    fn a_split_pack_is_acknowledged_by_its_last_record() {
        let mut s = Sending::new(1);
        assert!(s.acked_whole(9), "a tag never split is one record");
        s.note_split(7, 3);
        assert!(!s.acked_whole(7));
        assert!(!s.acked_whole(7));
        // The one left is split again in two: two left.
        s.note_split(7, 2);
        assert!(!s.acked_whole(7));
        assert!(s.acked_whole(7));
        assert!(s.acked_whole(7), "forgotten once whole");
        s.note_split(5, 2);
        s.forget_in_flight();
        assert!(
            s.acked_whole(5),
            "nothing kept after a producer is replaced"
        );
    }
}
