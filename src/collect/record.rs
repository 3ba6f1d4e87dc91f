//! What one consumed record becomes: a line written at its source offset
//! in the output of its source generation, or a record appended to
//! `_unattributed` (no attribution, attribution that does not decode, an
//! offset more than `max_hole` past the end of its generation's output, or
//! an output that cannot be created where the attribution points), with
//! the counters that say which. No record stops the collector: only an
//! error of OUT itself is returned.
//!
//! Generic over [`Consumed`] so that unit tests drive it with owned
//! messages; the collect loop hands it records taken in batches (and the
//! odd one `poll` returns).
//!
//! Nothing is allocated per record: the attribution is read borrowed from
//! the key, and the generation key is built once per run of lines of one
//! generation ([`State::gen_key`]).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::index::{GenKey, IndexError, Lineage, Store};
use super::writer::{At, Origin, Placed};
use super::State;
use crate::consume::Consumed;
use crate::wire::attribution::KeyMemo;
use crate::wire::{Format, RecordSourceRef, SourceRef};

/// At most one log line per this long for records whose output cannot be
/// created (a hostile producer can send thousands a second).
const UNWRITABLE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Lets a log line through at most once per [`UNWRITABLE_LOG_EVERY`],
/// counting the ones held back.
#[derive(Debug, Default)]
pub(super) struct LogThrottle {
    last: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    /// Some(lines held back since the last one) when a line may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < UNWRITABLE_LOG_EVERY)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// The generation key of the last attributed record, kept while records
/// of the same generation follow: one allocation a run of lines, not one
/// a line. With it, the last key-form record key, so the next record of
/// the same file is recognised by comparing bytes (see [`KeyMemo`]).
#[derive(Debug, Default)]
pub(super) struct LastKey {
    key: Option<GenKey>,
    /// Bumped each time `key` changes: equal runs mean the same key, so
    /// the timeline compares this number, not the key, once a line.
    run: u64,
    memo: KeyMemo,
}

impl LastKey {
    /// The record's attribution, by the rules of
    /// [`RecordSourceRef::of_record`]: a key-form key that repeats the
    /// last one but for the offset is not decoded again.
    fn source<'m, M: Consumed>(&mut self, m: &'m M) -> RecordSourceRef<'m> {
        let key = m.key();
        if let Some(k) = key {
            if let Some(src) = self.memo.repeat(k) {
                return RecordSourceRef::Attributed(src);
            }
            if let Some(src) = self.memo.keep(k) {
                return RecordSourceRef::Attributed(src);
            }
        }
        RecordSourceRef::of_record(key, || m.lf_header())
    }

    /// The generation key of `host` and `lineage`, and its run number.
    fn get(&mut self, host: &str, lineage: Lineage) -> (&GenKey, u64) {
        let same = self
            .key
            .as_ref()
            .is_some_and(|k| k.lineage == lineage && k.host == host);
        if !same {
            self.key = Some(GenKey {
                host: host.to_string(),
                lineage,
            });
            self.run += 1;
        }
        (self.key.as_ref().expect("set above"), self.run)
    }
}

/// The line inside a record value: tail2kafka's `META::line` when the
/// collector was given META, the JSON envelope when the value is one that
/// names this very source and offset, else the value itself (raw).
pub(super) fn line_of<'a>(
    value: &'a [u8],
    src: &SourceRef<'_>,
    meta: Option<&[u8]>,
) -> Cow<'a, [u8]> {
    if let Some(meta) = meta {
        let f = Format::Tail2Kafka {
            meta: meta.to_vec(),
        };
        if let Some(l) = f.line_of(value) {
            return l;
        }
    }
    if value.starts_with(b"{\"line\":") && is_envelope_of(value, src) {
        if let Some(l) = (Format::Json { fields: Vec::new() }).line_of(value) {
            return Cow::Owned(l.into_owned());
        }
    }
    Cow::Borrowed(value)
}

/// A JSON envelope carries host and offset: a raw line that merely looks
/// like one does not match its own attribution.
fn is_envelope_of(value: &[u8], src: &SourceRef<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        host: Cow<'a, str>,
        offset: u64,
    }
    serde_json::from_slice::<Head<'_>>(value)
        .is_ok_and(|h| h.host == src.host && h.offset == src.offset)
}

/// The record's producer timestamp (CreateTime, set by the agent), Unix
/// ms; the collector's clock when the record has none.
fn record_ms<M: Consumed>(m: &M, now: u64) -> u64 {
    m.timestamp_ms()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(now.saturating_mul(1000))
}

/// Write one record where it belongs and remember its offset.
pub(super) fn handle<M: Consumed>(
    st: &mut State,
    store: &Store,
    m: &M,
    meta: Option<&[u8]>,
    now: u64,
) -> Result<(), IndexError> {
    let mut run = PartitionRun::default();
    let handled = run.handle(st, store, m, meta, now);
    run.end(st);
    handled
}

/// Consecutive records of one topic and partition, as a batch hands them
/// out (a fetch is a partition's records in offset order): their pending
/// offset and their topic's counts are noted once a run, at its end
/// ([`PartitionRun::end`]), not looked up once a record. Nothing reads
/// either while a batch is being handled (the state is locked for it).
#[derive(Debug, Default)]
pub(super) struct PartitionRun {
    /// The run's topic and partition; None before the first record.
    at: Option<(String, i32)>,
    /// Offset after the run's last record.
    next: i64,
    attributed: u64,
    unattributed: u64,
}

impl PartitionRun {
    /// Write one record where it belongs; its offset is remembered at the
    /// end of the run.
    pub(super) fn handle<M: Consumed>(
        &mut self,
        st: &mut State,
        store: &Store,
        m: &M,
        meta: Option<&[u8]>,
        now: u64,
    ) -> Result<(), IndexError> {
        let same = self
            .at
            .as_ref()
            .is_some_and(|(t, p)| *p == m.partition() && t == m.topic());
        if !same {
            self.end(st);
            note_offset(st, m);
            self.at = Some((m.topic().to_string(), m.partition()));
        }
        self.next = m.offset() + 1;
        let attributed = place(st, store, m, meta, now)?;
        self.attributed += u64::from(attributed);
        self.unattributed += u64::from(!attributed);
        Ok(())
    }

    /// Note the run's next offset as pending and count its records under
    /// their topic.
    pub(super) fn end(&mut self, st: &mut State) {
        let Some((topic, partition)) = self.at.take() else {
            return;
        };
        if let Some(parts) = st.pending.get_mut(&topic) {
            parts.insert(partition, self.next);
        }
        let counts = st.topics.entry(topic).or_default();
        counts.attributed += std::mem::take(&mut self.attributed);
        counts.unattributed += std::mem::take(&mut self.unattributed);
    }
}

/// Write one record where it belongs: true when it went to its
/// generation's output (attributed), false when to `_unattributed`.
fn place<M: Consumed>(
    st: &mut State,
    store: &Store,
    m: &M,
    meta: Option<&[u8]>,
    now: u64,
) -> Result<bool, IndexError> {
    st.counters.records += 1;
    st.waiting += 1;
    let value = m.payload().unwrap_or_default();
    let attributed = match st.last_key.source(m) {
        RecordSourceRef::Attributed(src) => {
            let line = line_of(value, &src, meta);
            let lineage = src
                .generation
                .map_or(Lineage::Inode(src.id), Lineage::Generation);
            let (key, run) = st.last_key.get(src.host, lineage);
            let at = At {
                source_path: src.path,
                offset: src.offset,
                truncated: src.truncated,
            };
            let from = Origin {
                topic: m.topic(),
                partition: m.partition(),
                time_ms: record_ms(m, now),
                run: Some(run),
            };
            let placed = st.writer.write_line(store, key, at, from, &line, now)?;
            // Only lines written to their generation's file have a place
            // in its timeline (one kept in _unattributed has none).
            if matches!(
                placed,
                Placed::Written | Placed::Opened | Placed::WrittenNewPartition
            ) {
                st.timeline.note(key, run, src.offset, from.time_ms);
            }
            match placed {
                Placed::Written => true,
                Placed::Opened => {
                    let key = key.clone();
                    let pkey = super::takeover::partition_key_of(m, src.partition_key);
                    let met = (m.topic(), m.partition(), m.offset());
                    super::takeover::meet(st, store, &key, met, pkey)?;
                    true
                }
                Placed::WrittenNewPartition => {
                    // Rare: only when a generation moves to a partition it
                    // has not come from before.
                    if let Some(p) = st.writer.partitions(key) {
                        st.spread.check(key, p);
                    }
                    true
                }
                Placed::TooFar { end } => {
                    if st.counters.beyond_max_hole == 0 {
                        tracing::warn!(
                            host = %key.host,
                            generation = %key.lineage,
                            source = %String::from_utf8_lossy(src.path),
                            offset = src.offset,
                            max_hole = st.writer.max_hole(),
                            "line at offset {} lies more than max_hole ({} bytes) past the end of its output (byte {end}); record kept in _unattributed, not written (said once; counted in logferry_collect_beyond_max_hole_total; raise max_hole if the source really skips that far)",
                            src.offset,
                            st.writer.max_hole()
                        );
                    }
                    st.counters.beyond_max_hole += 1;
                    st.counters.unattributed += 1;
                    st.writer.write_unattributed(
                        store,
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        value,
                    )?;
                    false
                }
                Placed::Unwritable { why } => {
                    if let Some(held_back) = st.unwritable_log.allow(Instant::now()) {
                        tracing::warn!(
                            host = %key.host,
                            generation = %key.lineage,
                            source = %String::from_utf8_lossy(src.path),
                            topic = m.topic(),
                            partition = m.partition(),
                            offset = m.offset(),
                            "output cannot be created where the source attribution points ({why}); record kept in _unattributed (counted in logferry_collect_unwritable_total; at most one such line a minute, {held_back} not logged since the last)"
                        );
                    }
                    st.counters.unwritable += 1;
                    st.counters.unattributed += 1;
                    st.writer.write_unattributed(
                        store,
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        value,
                    )?;
                    false
                }
            }
        }
        RecordSourceRef::Unattributed => {
            st.counters.unattributed += 1;
            st.writer
                .write_unattributed(store, m.topic(), m.partition(), m.offset(), value)?;
            false
        }
        RecordSourceRef::Corrupt(e) => {
            if st.counters.corrupt == 0 {
                tracing::warn!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "source attribution does not decode ({e}); record kept in _unattributed (said once, counted)"
                );
            }
            st.counters.corrupt += 1;
            st.counters.unattributed += 1;
            st.writer
                .write_unattributed(store, m.topic(), m.partition(), m.offset(), value)?;
            false
        }
    };
    st.counters.attributed += u64::from(attributed);
    Ok(attributed)
}

/// Remember the record's offset as pending (committed after the next
/// sync); the first of a partition since the last sync also tells custody
/// where this assignment started.
fn note_offset<M: Consumed>(st: &mut State, m: &M) {
    let next = m.offset() + 1;
    let first = match st.pending.get_mut(m.topic()) {
        Some(parts) => parts.insert(m.partition(), next).is_none(),
        None => {
            let mut parts = foldhash::HashMap::default();
            parts.insert(m.partition(), next);
            st.pending.insert(m.topic().to_string(), parts);
            true
        }
    };
    if first {
        st.tracker
            .note_partition(m.topic(), m.partition(), m.offset());
    }
}

#[cfg(test)]
mod hostile;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::index::live_path;
    use crate::collect::spread::Hold;
    use crate::wire::{encode_source_key, source_tail};
    use logferry_tail::{FileId, GenerationId};
    use rdkafka::message::{OwnedMessage, Timestamp};
    use std::collections::HashMap;

    const T: &str = "t";

    /// A record as an agent ships it (key-form attribution, raw line).
    fn record(
        gen: u64,
        offset: u64,
        line: &str,
        partition: i32,
        at: i64,
        time_ms: i64,
    ) -> OwnedMessage {
        let mut key = Vec::new();
        let tail = source_tail("h", b"/var/log/x.log");
        let id = FileId { dev: 1, ino: gen };
        encode_source_key(&mut key, b"", GenerationId(gen), id, offset, false, &tail);
        OwnedMessage::new(
            Some(line.as_bytes().to_vec()),
            Some(key),
            T.into(),
            Timestamp::CreateTime(time_ms),
            partition,
            at,
            None,
        )
    }

    fn plain(value: &str, partition: i32, at: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(value.as_bytes().to_vec()),
            None,
            T.into(),
            Timestamp::NotAvailable,
            partition,
            at,
            None,
        )
    }

    fn feed(st: &mut State, store: &Store, msgs: &[OwnedMessage]) {
        for m in msgs {
            handle(st, store, m, None, 1000).unwrap();
        }
        st.writer.sync(store, 1000, 300).unwrap();
    }

    /// A record as an agent with `attribution = "header"` ships it: the
    /// source in the `lf` header, a plain partition key (here the host).
    fn header_record(gen: u64, offset: u64, line: &str, at: i64) -> OwnedMessage {
        use rdkafka::message::{Header, OwnedHeaders};
        let mut value = Vec::new();
        let tail = source_tail("h", b"/var/log/x.log");
        let id = FileId { dev: 1, ino: gen };
        crate::wire::encode_source(&mut value, GenerationId(gen), id, offset, false, &tail);
        let headers = OwnedHeaders::new().insert(Header {
            key: crate::wire::SOURCE_HEADER,
            value: Some(&value),
        });
        OwnedMessage::new(
            Some(line.as_bytes().to_vec()),
            Some(b"h".to_vec()),
            T.into(),
            Timestamp::CreateTime(1),
            0,
            at,
            Some(headers),
        )
    }

    /// Whichever way a source came (a repeated key, a key kept, a header),
    /// the last key is its generation's, found as a full decode finds it,
    /// and one run number always stands for one key.
    #[test]
    fn the_last_key_follows_every_record_whatever_decoded_it() {
        let msgs = [
            record(1, 0, "a", 0, 0, 1),
            record(1, 2, "b", 0, 1, 1),
            record(2, 0, "c", 0, 2, 1),
            plain("d", 0, 3),
            record(2, 2, "e", 0, 4, 1),
            header_record(1, 4, "f", 5),
            record(2, 4, "g", 0, 6, 1),
            record(2, 6, "h", 0, 7, 1),
            header_record(2, 8, "i", 8),
            record(1, 6, "j", 0, 9, 1),
            record(1, 8, "k", 0, 10, 1),
        ];
        let mut last = LastKey::default();
        let mut runs: HashMap<u64, GenKey> = HashMap::new();
        for m in &msgs {
            let full = RecordSourceRef::of_record(m.key(), || Consumed::lf_header(m));
            let got = last.source(m);
            assert_eq!(got, full, "offset {}", m.offset());
            let RecordSourceRef::Attributed(src) = got else {
                continue;
            };
            let lineage = Lineage::Generation(src.generation.unwrap());
            let (key, run) = last.get(src.host, lineage);
            let want = GenKey {
                host: src.host.to_string(),
                lineage,
            };
            assert_eq!(key, &want, "offset {}", m.offset());
            assert_eq!(runs.entry(run).or_insert(want.clone()), &want);
        }
        assert!(runs.len() >= 5, "a run number per change of key: {runs:?}");
    }

    /// The key is looked at before the headers (cheaper); both forms must
    /// still land at their source offsets, and a plain key with a header is
    /// not taken for a record without attribution.
    #[test]
    fn key_form_and_header_form_records_rebuild_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        feed(
            &mut st,
            &store,
            &[
                header_record(1, 0, "first", 0),
                record(1, 6, "second", 0, 1, 1),
                header_record(1, 13, "third", 2),
            ],
        );
        let out = std::fs::read(dir.path().join("h/var/log/x.log")).unwrap();
        assert_eq!(out, b"first\nsecond\nthird\n");
        assert_eq!(st.counters.unattributed, 0);
        assert_eq!(st.counters.attributed, 3);
    }

    /// Lines of `DIRECT_WRITE` bytes and more (packs) are written from the
    /// record, behind the pending run; in order, after a hole, and filling
    /// one, the output is still the source byte for byte.
    #[test]
    fn long_lines_written_from_the_record_rebuild_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        let long = |c: char, n: usize| -> String {
            (0..n).map(|i| if i % 97 == 96 { ' ' } else { c }).collect()
        };
        let lines = [
            "short".to_string(),
            long('a', 20_000),
            long('b', 70_000),
            "between".to_string(),
            long('c', 16 * 1024),
            long('d', 16 * 1024 - 1),
            long('e', 33_333),
        ];
        let mut offsets = Vec::new();
        let mut source = Vec::new();
        for l in &lines {
            offsets.push(source.len() as u64);
            source.extend_from_slice(l.as_bytes());
            source.push(b'\n');
        }
        // The fourth line comes last: the fifth opens a hole it fills.
        let order = [0, 1, 2, 4, 5, 6, 3];
        let msgs: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(at, &i)| record(1, offsets[i], &lines[i], 0, at as i64, 1))
            .collect();
        feed(&mut st, &store, &msgs);
        let out = std::fs::read(dir.path().join("h/var/log/x.log")).unwrap();
        assert_eq!(out.len(), source.len());
        assert!(out == source, "output differs from the source");
    }

    fn gen_id(g: u64) -> String {
        format!("h/{}", GenerationId(g))
    }

    #[test]
    fn a_line_too_far_past_its_output_goes_to_unattributed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let max_hole = 1 << 20;
        let mut st = State::new(max_hole);
        let far = 1u64 << 60;
        feed(
            &mut st,
            &store,
            &[
                record(1, 0, "a", 0, 0, 1),
                record(1, far, "hostile", 0, 1, 1),
                plain("plain", 0, 2),
                // Exactly max_hole past the end (2): still a hole it may open.
                record(1, 2 + max_hole, "edge", 0, 3, 1),
                record(1, 3 + 2 * max_hole + 6, "beyond", 0, 4, 1),
                // Would end past what a file can hold: no overflow, no EFBIG.
                record(1, u64::MAX - 1, "max", 0, 5, 1),
                // A new generation starting too far is not even registered,
                // nor is the index read again for its next line.
                record(2, far, "new", 0, 6, 1),
                record(2, far + 4, "new2", 0, 7, 1),
                record(1, 2, "b", 0, 8, 1),
            ],
        );
        assert!(
            !Store::read(dir.path())
                .unwrap()
                .generations
                .contains_key(&gen_id(2)),
            "a generation seen only too far is not registered"
        );
        // After a sync, a line of it within reach registers it (produced
        // earlier than generation 1's: the live name stays with 1).
        feed(&mut st, &store, &[record(2, 0, "ok", 0, 9, 0)]);
        let out = dir.path().join(live_path("h", b"/var/log/x.log"));
        let written = std::fs::read(&out).unwrap();
        assert_eq!(
            written.len() as u64,
            2 + max_hole + 5,
            "no giant sparse file"
        );
        assert_eq!(&written[..4], b"a\nb\n");
        assert_eq!(&written[written.len() - 5..], b"edge\n");
        let un = dir.path().join("_unattributed/t/partition-0.log");
        assert_eq!(
            std::fs::read(un).unwrap(),
            b"hostile\nplain\nbeyond\nmax\nnew\nnew2\n",
            "in partition-offset order"
        );
        let c = st.counters;
        assert_eq!(
            (
                c.records,
                c.attributed,
                c.unattributed,
                c.beyond_max_hole,
                c.corrupt
            ),
            (10, 4, 6, 5, 0)
        );
        assert_eq!(st.topics[T].unattributed, 6);
        let idx = Store::read(dir.path()).unwrap();
        assert!(idx.generations.contains_key(&gen_id(1)));
        assert_eq!(
            idx.generations[&gen_id(2)].first_record_ms,
            Some(0),
            "registered by its first line within reach"
        );
        assert_eq!(
            idx.generations[&gen_id(1)].completeness.end(),
            2 + max_hole + 5
        );
    }

    #[test]
    fn the_end_includes_what_another_collector_sharing_out_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut a = State::new(1000);
        let mut b = State::new(1000);
        feed(&mut a, &store, &[record(1, 0, "a", 0, 0, 1)]);
        // The other member walks the same generation far ahead, in steps
        // each within max_hole.
        feed(
            &mut b,
            &store,
            &[
                record(1, 900, "x", 1, 0, 1),
                record(1, 1800, "y", 1, 1, 1),
                record(1, 2700, "z", 1, 2, 1),
            ],
        );
        // 3000 is far past what `a` wrote (2), not past the index (2702).
        feed(&mut a, &store, &[record(1, 3000, "w", 0, 1, 1)]);
        assert_eq!(a.counters.beyond_max_hole, 0);
        let out = std::fs::read(dir.path().join("h/var/log/x.log")).unwrap();
        assert_eq!(&out[3000..], b"w\n");
    }

    #[test]
    fn a_generation_arriving_on_several_partitions_is_counted_under_a_partial_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        st.spread
            .set_holds(HashMap::from([(T.to_string(), Hold { held: 2, total: 4 })]));
        feed(
            &mut st,
            &store,
            &[
                record(1, 0, "a", 0, 0, 1),
                record(2, 0, "only on 0", 0, 1, 1),
                record(1, 2, "b", 1, 0, 1),
                record(1, 4, "c", 0, 2, 1),
                record(1, 6, "d", 1, 1, 1),
            ],
        );
        assert_eq!(st.spread.split_generations, 1);
        let spread: Vec<_> = st
            .writer
            .spread()
            .map(|(k, p)| (k.clone(), p.list()))
            .collect();
        assert_eq!(spread.len(), 1);
        assert_eq!(spread[0].1, vec![0, 1]);
        // Holding every partition, the same records say nothing.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        st.spread
            .set_holds(HashMap::from([(T.to_string(), Hold { held: 4, total: 4 })]));
        feed(
            &mut st,
            &store,
            &[record(1, 0, "a", 0, 0, 1), record(1, 2, "b", 1, 0, 1)],
        );
        assert_eq!(st.spread.split_generations, 0);
    }

    #[test]
    fn the_live_name_goes_to_the_generation_with_the_newer_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        // A backlog: the newer generation (records at 500 s) is consumed
        // before the older one (records at 400 s).
        feed(
            &mut st,
            &store,
            &[
                record(2, 0, "new", 0, 0, 500_000),
                record(1, 0, "old", 1, 0, 400_000),
            ],
        );
        let live = dir.path().join("h/var/log/x.log");
        assert_eq!(std::fs::read(live).unwrap(), b"new\n");
        let old = dir
            .path()
            .join(format!("h/var/log/x.log.400-{}", GenerationId(1)));
        assert_eq!(std::fs::read(old).unwrap(), b"old\n");
    }

    /// Generation `g`'s output, as the index names it.
    fn output_of(dir: &std::path::Path, g: u64) -> Vec<u8> {
        let idx = Store::read(dir).unwrap();
        std::fs::read(dir.join(&idx.generations[&gen_id(g)].output)).unwrap()
    }

    /// The writer finds a run's output by its run number: two generations
    /// interleaved run by run, one of them renamed (the newer takes the
    /// live name) between its runs, each line still lands in its own file.
    #[test]
    fn generations_interleaved_run_by_run_land_in_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        feed(
            &mut st,
            &store,
            &[
                record(1, 0, "a", 0, 0, 400_000),
                record(1, 2, "b", 0, 1, 400_000),
                // Newer: takes the live name, 1's output is renamed.
                record(2, 0, "X", 1, 0, 500_000),
                record(1, 4, "c", 0, 2, 400_000),
                record(2, 2, "Y", 1, 1, 500_000),
                record(1, 6, "d", 0, 3, 400_000),
                record(1, 8, "e", 0, 4, 400_000),
                record(2, 4, "Z", 1, 2, 500_000),
            ],
        );
        assert_eq!(output_of(dir.path(), 1), b"a\nb\nc\nd\ne\n");
        assert_eq!(output_of(dir.path(), 2), b"X\nY\nZ\n");
        let live = std::fs::read(dir.path().join("h/var/log/x.log")).unwrap();
        assert_eq!(live, b"X\nY\nZ\n");
    }

    /// A handover closes outputs in the middle of a run: the run's next
    /// line must not go where its output used to be kept (now another
    /// generation's), and a closed generation's next line reopens it.
    #[test]
    fn a_run_continuing_after_outputs_were_closed_lands_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = State::new(1 << 30);
        feed(
            &mut st,
            &store,
            &[
                record(1, 0, "g1a", 0, 0, 100_000),
                record(2, 0, "g2a", 1, 0, 200_000),
                record(3, 0, "g3a", 1, 1, 300_000),
                record(2, 4, "g2b", 1, 2, 200_000),
            ],
        );
        // Partition 0 is handed over: 1's output closes, 2 and 3 stay.
        st.writer.forget_partition(T, 0);
        let key = GenKey::test_generation;
        assert!(st.writer.partitions(&key(1)).is_none(), "1 closed");
        assert!(st.writer.partitions(&key(2)).is_some(), "2 still open");
        feed(
            &mut st,
            &store,
            &[
                // Same run as 2's last line.
                record(2, 8, "g2c", 1, 3, 200_000),
                record(3, 4, "g3b", 1, 4, 300_000),
                record(1, 4, "g1b", 0, 1, 100_000),
                record(1, 8, "g1c", 0, 2, 100_000),
            ],
        );
        assert_eq!(output_of(dir.path(), 1), b"g1a\ng1b\ng1c\n");
        assert_eq!(output_of(dir.path(), 2), b"g2a\ng2b\ng2c\n");
        assert_eq!(output_of(dir.path(), 3), b"g3a\ng3b\n");
        // Closing everything (a reset) between two lines of one run too.
        st.writer.reset();
        feed(&mut st, &store, &[record(1, 12, "g1d", 0, 3, 100_000)]);
        assert_eq!(output_of(dir.path(), 1), b"g1a\ng1b\ng1c\ng1d\n");
    }
}
