//! Records taken from a consumer's queue many at a time: librdkafka's
//! `rd_kafka_consume_batch_queue`, which rdkafka does not wrap. Used by
//! `logferry tail` and `logferry collect`.
//!
//! `BaseConsumer::poll` hands out one record per call, and each call takes
//! the queue's lock, reads the clock four times and allocates an event
//! wrapper; at a few hundred thousand records a second that was most of
//! `logferry tail`'s own CPU, and a large part of the collector's. One batch call serves up to
//! [`Batch::CAPACITY`] records for the price of one, and control records
//! (transaction markers) are skipped inside librdkafka, as with `poll`.
//!
//! What the consumer queue carries besides records is served by librdkafka
//! while it fills the batch: errors come back as records with an error
//! code ([`Record::error`]); log lines (errors only: the consumer's log
//! level) go to librdkafka's own printer on stderr rather than rdkafka's
//! `log` calls.
//!
//! A group consumer (the collector) cannot take records from the
//! consumer queue this way: rebalances arrive there as events, and the
//! batch call, finding no rebalance callback (rdkafka uses events), would
//! let the assignment go without the application hearing of it. So its
//! records go to a queue of their own ([`ConsumerQueue::records_of`]):
//! each assigned partition's queue is forwarded there
//! ([`Forwarder::forward`], from the rebalance callback), while
//! `BaseConsumer::poll` keeps serving the rebalances, statistics and
//! errors on the consumer queue.
//!
//! [`Consumed`] is what a record handler needs of a record, whether it
//! came in a batch or from `poll` (rdkafka's messages).
//!
//! The unsafe code is all here: [`ConsumerQueue`] owns the queue handle,
//! [`Batch`] owns the consumed messages, and both borrow the consumer, so
//! neither outlives the client whose memory they point into.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;

/// A queue records are taken from: the consumer's own, where the fetched
/// records of every assigned partition land by default, or one of the
/// application's ([`ConsumerQueue::records_of`]).
pub struct ConsumerQueue<'c> {
    queue: NonNull<rd::rd_kafka_queue_t>,
    _consumer: PhantomData<&'c ()>,
}

impl<'c> ConsumerQueue<'c> {
    /// The consumer queue (for a consumer given its partitions with
    /// `assign`: nothing but records and errors arrive there).
    pub fn of<C: ConsumerContext>(consumer: &'c BaseConsumer<C>) -> Option<ConsumerQueue<'c>> {
        // SAFETY: the client pointer is live for 'c; the returned handle
        // holds a reference of its own, released in Drop.
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        NonNull::new(queue).map(|queue| ConsumerQueue {
            queue,
            _consumer: PhantomData,
        })
    }

    /// A new, empty queue of `consumer`'s, for the records of the
    /// partitions a [`Forwarder`] of it forwards (a group consumer's).
    pub fn records_of<C: ConsumerContext>(
        consumer: &'c BaseConsumer<C>,
    ) -> Option<ConsumerQueue<'c>> {
        // SAFETY: as in `of`; the queue is the application's, destroyed
        // in Drop, before the client (which 'c outlives).
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        NonNull::new(queue).map(|queue| ConsumerQueue {
            queue,
            _consumer: PhantomData,
        })
    }

    /// What forwards partitions to this queue, for the rebalance
    /// callback. It must be let go (see [`Forwarder`]) before this queue
    /// is dropped.
    pub fn forwarder(&self) -> Forwarder {
        Forwarder { queue: self.queue }
    }

    /// Replace `batch`'s records with what the queue holds now, up to
    /// the batch's capacity, without waiting.
    pub fn take_ready(&self, batch: &mut Batch<'c>) {
        batch.clear();
        self.consume(batch, Duration::ZERO, Batch::CAPACITY);
    }

    /// Like [`ConsumerQueue::take_ready`], but when the queue is empty
    /// wait up to `wait` for the first record and return as soon as one
    /// comes (librdkafka's batch call alone would wait the whole time for
    /// a full batch, holding a trickle of lines back).
    pub fn take_waiting(&self, batch: &mut Batch<'c>, wait: Duration) {
        self.take_ready(batch);
        if batch.is_empty() {
            self.consume(batch, wait, 1);
            if !batch.is_empty() {
                self.consume(batch, Duration::ZERO, Batch::CAPACITY - 1);
            }
        }
    }

    /// Append up to `max` records, waiting up to `timeout` for them.
    fn consume(&self, batch: &mut Batch<'c>, timeout: Duration, max: usize) {
        let max = max.min(batch.msgs.capacity() - batch.msgs.len());
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let start = batch.msgs.len();
        // SAFETY: the queue handle is live (owned by self); the spare
        // capacity holds `max` pointers, and librdkafka writes at most
        // `max`, returning how many (or -1 on error, when it wrote none).
        // The written pointers are owned messages, destroyed in
        // Batch::clear.
        unsafe {
            let spare = batch.msgs.as_mut_ptr().add(start);
            let n = rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), timeout_ms, spare, max);
            batch
                .msgs
                .set_len(start + usize::try_from(n).unwrap_or(0).min(max));
        }
    }
}

impl Drop for ConsumerQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_consumer and is
        // released once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// Sends the records of assigned partitions to a queue of the
/// application's. Held by the consumer's context (for the rebalance
/// callback) only while that queue lives: whoever holds the
/// [`ConsumerQueue`] puts this in before consuming and takes it out
/// before dropping the queue, and the consumer (whose rebalance callback
/// uses it) outlives both.
pub struct Forwarder {
    queue: NonNull<rd::rd_kafka_queue_t>,
}

// SAFETY: a queue handle may be used from any thread (librdkafka locks
// the queue); the rebalance callback runs on the thread that polls.
unsafe impl Send for Forwarder {}

impl Forwarder {
    /// From now on, the records of `topic`/`partition` go to this
    /// forwarder's queue, those already fetched and waiting included.
    /// librdkafka keeps an application's forwarding when it starts
    /// fetching the partition, and drops it when it stops: call this on
    /// every assignment. False when the partition is unknown to the
    /// client (its records then stay on the consumer queue).
    pub fn forward<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> bool {
        let Ok(name) = std::ffi::CString::new(topic) else {
            return false;
        };
        // SAFETY: a live client and a NUL-terminated topic name; the
        // partition's handle is ours and released below.
        let part = unsafe {
            rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                name.as_ptr(),
                partition,
            )
        };
        if part.is_null() {
            return false;
        }
        // SAFETY: both handles are live (this forwarder's queue lives
        // while it is held, see the type's note).
        unsafe {
            rd::rd_kafka_queue_forward(part, self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(part);
        }
        true
    }
}

/// Consumed records, owned until the next take or drop.
pub struct Batch<'c> {
    /// Each a message librdkafka handed over, never null.
    msgs: Vec<*mut rd::rd_kafka_message_t>,
    _consumer: PhantomData<&'c ()>,
}

impl<'c> Batch<'c> {
    /// Enough to make the per-call cost vanish, small enough that a batch
    /// is printed (and Ctrl-C seen) within milliseconds.
    pub const CAPACITY: usize = 2048;

    pub fn new<C: ConsumerContext>(_consumer: &'c BaseConsumer<C>) -> Batch<'c> {
        Batch {
            msgs: Vec::with_capacity(Self::CAPACITY),
            _consumer: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The records in order. A topic's name is read (a C string, checked
    /// as UTF-8) once for a run of records of that topic, not once a
    /// record: a batch holds long runs of one topic.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        let mut last: Option<(*mut rd::rd_kafka_topic_t, &str)> = None;
        self.msgs.iter().map(move |&m| {
            // SAFETY: every pointer is a live message owned by this batch
            // until clear(), which needs &mut self.
            let m = unsafe { &*m };
            let topic = match last {
                Some((rkt, name)) if rkt == m.rkt => name,
                _ => {
                    // SAFETY: the message lives as long as the batch
                    // borrow, and its topic (which it holds a reference
                    // on) as long as the message.
                    let name = unsafe { topic_name(m) };
                    last = Some((m.rkt, name));
                    name
                }
            };
            Record { m, topic }
        })
    }

    fn clear(&mut self) {
        for m in self.msgs.drain(..) {
            // SAFETY: each message is destroyed once, and no Record
            // borrows it (they borrow self, and this takes &mut self).
            unsafe { rd::rd_kafka_message_destroy(m) }
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One consumed record, borrowed from its [`Batch`].
pub struct Record<'b> {
    m: &'b rd::rd_kafka_message_t,
    /// Its topic's name ("" when it has none or the name is not UTF-8).
    topic: &'b str,
}

/// The name of `m`'s topic ("" when it has none or it is not UTF-8).
///
/// # Safety
/// `m` is a live message for as long as the returned name is used.
unsafe fn topic_name(m: &rd::rd_kafka_message_t) -> &str {
    if m.rkt.is_null() {
        return "";
    }
    // SAFETY: the message holds a reference on its topic, whose name is a
    // NUL-terminated string living as long as the topic.
    unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(m.rkt)) }
        .to_str()
        .unwrap_or("")
}

impl<'b> Record<'b> {
    /// Set instead of a record: a consumer error librdkafka reports on
    /// the queue (a broker down, an offset out of range).
    pub fn error(&self) -> Option<KafkaError> {
        match self.m.err {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => None,
            e => Some(KafkaError::MessageConsumption(RDKafkaErrorCode::from(e))),
        }
    }

    pub fn key(&self) -> Option<&'b [u8]> {
        // SAFETY: librdkafka keeps key/key_len valid for the message's life.
        unsafe { bytes(self.m.key, self.m.key_len) }
    }

    pub fn payload(&self) -> Option<&'b [u8]> {
        // SAFETY: as for the key.
        unsafe { bytes(self.m.payload, self.m.len) }
    }

    pub fn topic(&self) -> &'b str {
        self.topic
    }

    pub fn partition(&self) -> i32 {
        self.m.partition
    }

    pub fn offset(&self) -> i64 {
        self.m.offset
    }

    /// The record timestamp (Unix ms), when it has one.
    pub fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message and a valid out pointer.
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.m, &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ms >= 0)
            .then_some(ms)
    }

    /// The value of the last header called `name` (`Some(&[])` for one
    /// without a value), parsing the headers only when asked.
    pub fn header(&self, name: &CStr) -> Option<&'b [u8]> {
        let mut hdrs = std::ptr::null_mut();
        // SAFETY: a live message and a valid out pointer; the headers
        // belong to the message.
        let err = unsafe { rd::rd_kafka_message_headers(self.m, &mut hdrs) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
            return None;
        }
        let mut value = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: hdrs is the message's header list, name a C string.
        let err =
            unsafe { rd::rd_kafka_header_get_last(hdrs, name.as_ptr(), &mut value, &mut size) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        // SAFETY: the value lives in the message's headers.
        Some(unsafe { bytes(value.cast_mut(), size) }.unwrap_or_default())
    }
}

/// What a record handler reads of a consumed record, whether it came in a
/// [`Batch`] or as one of rdkafka's messages.
pub trait Consumed {
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    /// The record timestamp (Unix ms), when it has one.
    fn timestamp_ms(&self) -> Option<i64>;
    /// The value of the `lf` header (the header-form attribution), asked
    /// only when the key does not settle it (headers are parsed on
    /// request).
    fn lf_header(&self) -> Option<&[u8]>;
}

impl<M: Message> Consumed for M {
    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }
    fn payload(&self) -> Option<&[u8]> {
        Message::payload(self)
    }
    fn topic(&self) -> &str {
        Message::topic(self)
    }
    fn partition(&self) -> i32 {
        Message::partition(self)
    }
    fn offset(&self) -> i64 {
        Message::offset(self)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp().to_millis()
    }
    fn lf_header(&self) -> Option<&[u8]> {
        self.headers()?
            .iter()
            .find(|h| h.key == crate::wire::SOURCE_HEADER)
            .map(|h| h.value.unwrap_or_default())
    }
}

impl Consumed for Record<'_> {
    fn key(&self) -> Option<&[u8]> {
        Record::key(self)
    }
    fn payload(&self) -> Option<&[u8]> {
        Record::payload(self)
    }
    fn topic(&self) -> &str {
        Record::topic(self)
    }
    fn partition(&self) -> i32 {
        Record::partition(self)
    }
    fn offset(&self) -> i64 {
        Record::offset(self)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        Record::timestamp_ms(self)
    }
    fn lf_header(&self) -> Option<&[u8]> {
        self.header(c"lf")
    }
}

/// # Safety
/// `ptr` null, or valid for `len` bytes for `'a`.
unsafe fn bytes<'a>(ptr: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        None
    } else {
        Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    use std::time::Instant;

    /// Records written to a mock cluster come back whole through the
    /// batch wrapper: key, value, headers (one without a value), topic,
    /// partition, offset and timestamp; and a waiting take returns as soon
    /// as there is something, not when its wait is over.
    #[test]
    fn records_come_back_whole_and_waiting_ends_at_the_first() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("batch", 1, 1).expect("topic");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "batch-test")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("batch", 0, Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let queue = ConsumerQueue::of(&consumer).expect("consumer queue");
        let mut batch = Batch::new(&consumer);
        queue.take_ready(&mut batch);
        assert!(batch.is_empty());

        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "lf",
                value: Some(&b"first"[..]),
            })
            .insert(Header {
                key: "lf",
                value: Some(&b"last"[..]),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        producer
            .send(
                BaseRecord::to("batch")
                    .key(&b"k\x00ey"[..])
                    .payload(&b"line one"[..])
                    .timestamp(1_764_064_800_250)
                    .headers(headers),
            )
            .expect("queued");
        producer
            .send(BaseRecord::<[u8], [u8]>::to("batch"))
            .expect("queued");
        producer.flush(Duration::from_secs(10)).expect("flushed");

        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(Instant::now() < deadline, "records not consumed");
            let asked = Instant::now();
            queue.take_waiting(&mut batch, Duration::from_secs(5));
            if !batch.is_empty() {
                assert!(
                    asked.elapsed() < Duration::from_secs(4),
                    "waited for a full batch"
                );
            }
            for r in batch.iter() {
                assert!(r.error().is_none(), "{:?}", r.error());
                got.push((
                    r.key().map(<[u8]>::to_vec),
                    r.payload().map(<[u8]>::to_vec),
                    r.header(c"lf").map(<[u8]>::to_vec),
                    r.header(c"empty").map(<[u8]>::to_vec),
                    r.header(c"none").is_some(),
                    (r.topic().to_string(), r.partition(), r.offset()),
                    r.timestamp_ms(),
                ));
            }
        }
        assert_eq!(
            got[0],
            (
                Some(b"k\x00ey".to_vec()),
                Some(b"line one".to_vec()),
                Some(b"last".to_vec()),
                Some(Vec::new()),
                false,
                ("batch".to_string(), 0, 0),
                Some(1_764_064_800_250),
            )
        );
        assert_eq!((&got[1].0, &got[1].1, &got[1].2), (&None, &None, &None));
        assert_eq!(got[1].5 .2, 1);
    }
}
