//! Records handed to librdkafka by topic handle instead of topic name.
//!
//! rdkafka's `BaseProducer::send` names the topic of every record by a C
//! string: each record paid an allocation, a NUL scan and a free for that
//! string, and librdkafka a locked lookup of the topic by name (about 500
//! instructions a record, 8 % of a backlog's: `bench/ship-callgrind`). A
//! topic handle, taken once per topic and kept for the producer's life,
//! names it by pointer. Everything else is what `BaseProducer::send` does:
//! the payload and key copied, the delivery opaque, the configured
//! partitioner (a handle made with no topic configuration takes the
//! producer's default one, as a record named by topic does).
//!
//! A handle belongs to one client and must be destroyed while that client
//! lives, so the handles are [`released`](TopicHandles::release) before a
//! producer is replaced, and the [`Outbox`](super::outbox::Outbox) drops
//! them before its producer (field order).

use std::ffi::CString;
use std::ptr::{self, NonNull};

use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_vtype_t::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::util::IntoOpaque;

use super::produce::ShipProducer;

/// The record `send` gives back when librdkafka refused it.
type Refused<'a, K, P> = (KafkaError, BaseRecord<'a, K, P, usize>);

#[derive(Default)]
pub(super) struct TopicHandles {
    /// The client the handles belong to.
    client: Option<NonNull<rdsys::rd_kafka_t>>,
    handles: foldhash::HashMap<String, NonNull<rdsys::rd_kafka_topic_t>>,
    /// The topic of the last record and its handle: consecutive records
    /// mostly go to one topic, and comparing the name costs less than
    /// hashing it (a SipHash lookup was 260 instructions a record).
    last: Option<(String, NonNull<rdsys::rd_kafka_topic_t>)>,
}

impl TopicHandles {
    /// Hand `rec` to `producer`, as `BaseProducer::send` does: on a refusal
    /// the record comes back with the error, and nothing was queued.
    /// Records with headers go through `BaseProducer::send` (rdkafka does
    /// not lend their native form).
    // The refusal carries the record back, as `BaseProducer::send`'s does,
    // so the two are interchangeable at the call site; it is the rare path.
    #[allow(clippy::result_large_err)]
    pub(super) fn send<'a, K, P>(
        &mut self,
        producer: &ShipProducer,
        rec: BaseRecord<'a, K, P, usize>,
    ) -> Result<(), Refused<'a, K, P>>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        if rec.headers.is_some() {
            return producer.send(rec);
        }
        let rk = producer.client().native_ptr();
        let rkt = match self.handle(rk, rec.topic) {
            Ok(rkt) => rkt,
            Err(e) => return Err((e, rec)),
        };
        let (payload, payload_len) = bytes(rec.payload);
        let (key, key_len) = bytes(rec.key);
        // SAFETY: `rk` is the live client of `producer`, and `rkt` a handle
        // of it (`handle` checked the client); payload and key outlive the
        // call and are copied (F_COPY); the argument list is the one
        // rdkafka's own `send` passes, with the topic by handle, and ends in
        // VTYPE_END.
        let err = unsafe {
            rdsys::rd_kafka_producev(
                rk,
                RD_KAFKA_VTYPE_RKT,
                rkt.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                rec.partition.unwrap_or(-1),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                payload,
                payload_len,
                RD_KAFKA_VTYPE_KEY,
                key,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                rec.delivery_opaque.into_ptr(),
                RD_KAFKA_VTYPE_TIMESTAMP,
                rec.timestamp.unwrap_or(0),
                RD_KAFKA_VTYPE_END,
            )
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err((KafkaError::MessageProduction(err.into()), rec))
        }
    }

    /// The handle of `topic` for client `rk`, made on first use.
    fn handle(
        &mut self,
        rk: *mut rdsys::rd_kafka_t,
        topic: &str,
    ) -> Result<NonNull<rdsys::rd_kafka_topic_t>, KafkaError> {
        if self.client.map(NonNull::as_ptr) != Some(rk) {
            // Handles of another client: the owner must have released them
            // before replacing its producer. If it did not, that client may
            // be gone, so they are forgotten, never destroyed.
            debug_assert!(
                self.handles.is_empty(),
                "topic handles outlived their client"
            );
            self.handles.clear();
            self.last = None;
            self.client = NonNull::new(rk);
        }
        if let Some((name, h)) = &self.last {
            if name == topic {
                return Ok(*h);
            }
        }
        if let Some(h) = self.handles.get(topic) {
            self.last = Some((topic.to_string(), *h));
            return Ok(*h);
        }
        let name = CString::new(topic)?;
        // SAFETY: `rk` is a live client; a null configuration takes the
        // client's default topic configuration.
        let rkt = unsafe { rdsys::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut()) };
        let Some(rkt) = NonNull::new(rkt) else {
            // SAFETY: reads this thread's last librdkafka error.
            let code: RDKafkaErrorCode = unsafe { rdsys::rd_kafka_last_error() }.into();
            return Err(KafkaError::MessageProduction(code));
        };
        self.handles.insert(topic.to_string(), rkt);
        self.last = Some((topic.to_string(), rkt));
        Ok(rkt)
    }

    /// Destroy every handle: called while their client still lives (before
    /// its producer is replaced or dropped).
    pub(super) fn release(&mut self) {
        for (_, rkt) in self.handles.drain() {
            // SAFETY: made by `rd_kafka_topic_new` on `self.client`, which
            // the caller keeps alive through this call; each handle is
            // destroyed once (drained).
            unsafe { rdsys::rd_kafka_topic_destroy(rkt.as_ptr()) };
        }
        self.last = None;
        self.client = None;
    }
}

/// A pointer and length for librdkafka (null for none).
fn bytes(b: Option<&(impl ?Sized + ToBytes)>) -> (*mut std::ffi::c_void, usize) {
    match b.map(ToBytes::to_bytes) {
        None => (ptr::null_mut(), 0),
        Some(b) => (b.as_ptr() as *mut std::ffi::c_void, b.len()),
    }
}

// SAFETY: librdkafka's client and topic handles may be used from any
// thread (its API is thread-safe, as rdkafka's own `Send` client relies
// on); the map is only touched through `&mut self`.
unsafe impl Send for TopicHandles {}

impl Drop for TopicHandles {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::produce::ShipContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use std::time::{Duration, Instant};

    /// Records sent by handle reach the topic (mock cluster), a topic name
    /// with a NUL is refused with the record given back, and the handles
    /// are released before their producer is dropped.
    #[test]
    fn records_sent_by_handle_are_delivered_and_a_bad_name_is_refused() {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("handles", 1, 1).unwrap();
        mock.create_topic("handles2", 1, 1).unwrap();
        let producer: ShipProducer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .create_with_context(ShipContext::new(false))
            .unwrap();
        let mut handles = TopicHandles::default();
        // Runs of one topic, then the topics in turn: the last-topic
        // shortcut and the map both serve.
        let topics = ["handles", "handles", "handles", "handles2", "handles"];
        for i in 0..10usize {
            let payload = format!("line {i}");
            let rec = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topics[i % 5], i)
                .payload(payload.as_bytes());
            assert!(handles.send(&producer, rec).is_ok());
            assert_eq!(handles.last.as_ref().unwrap().0, topics[i % 5]);
        }
        assert_eq!(handles.handles.len(), 2, "one handle per topic");
        let bad = BaseRecord::<[u8], [u8], usize>::with_opaque_to("no\0such", 99).payload(b"x");
        let (err, back) = handles.send(&producer, bad).unwrap_err();
        assert!(matches!(err, KafkaError::Nul(_)), "{err:?}");
        assert_eq!(back.delivery_opaque, 99);
        let deadline = Instant::now() + Duration::from_secs(20);
        while producer.in_flight_count() > 0 {
            assert!(Instant::now() < deadline, "not delivered");
            producer.poll(Duration::from_millis(50));
        }
        let mut acked = Vec::new();
        producer.context().take_deliveries(&mut acked);
        assert_eq!(acked.len(), 10);
        handles.release();
        assert!(handles.handles.is_empty() && handles.last.is_none() && handles.client.is_none());
    }
}
