//! Reading a partition back for generations this output directory did not
//! start (see [`super::custody`]): a pass reads the given offset ranges of
//! one partition with a consumer of its own (assigned, outside the group,
//! committing nothing) and writes the lines of the wanted generations at
//! their offsets, as the collect loop would have.
//!
//! A pass runs in steps of at most [`STEP_TIME`] between the group
//! consumer's polls (the loop runs one at most every `STEP_TIME`), so a
//! long read-back takes about half the loop, neither stopping consuming
//! nor letting the group think this member hung. A pass starts
//! [`GATHER`] after it was queued, and passes of one partition that wait
//! are merged: the generations met one after another right after an
//! assignment share one read.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::index::{GenKey, IndexError, Store};
use super::writer::Writer;
use crate::config::collect::CollectSettings;

/// A step reads for at most this long.
pub const STEP_TIME: Duration = Duration::from_millis(10);
/// A pass waits this long after it was queued before it starts, so that
/// the generations met right after an assignment join it.
const GATHER: Duration = Duration::from_millis(500);
/// The read-back consumer's prefetch (librdkafka's default, 64 MiB, would
/// be held on top of the group consumer's).
const PREFETCH_KB: &str = "8192";

/// Writes one record read back when it belongs to one of the wanted
/// generations; true when it did.
pub type WriteBack<'a> = dyn FnMut(
        &mut Writer,
        &Store,
        &rdkafka::message::BorrowedMessage<'_>,
        &HashSet<GenKey>,
    ) -> Result<bool, IndexError>
    + 'a;

/// One partition's ranges to read back, for some generations.
#[derive(Debug, Clone)]
struct Pass {
    topic: String,
    partition: i32,
    /// Ascending, disjoint `[start, end)` offset ranges.
    ranges: Vec<(i64, i64)>,
    gens: HashSet<GenKey>,
    /// Index into `ranges` of the one being read; None before it starts.
    at: Option<usize>,
    queued: Instant,
}

/// A pass that finished: every record of `gens` in `ranges` is written.
#[derive(Debug)]
pub struct Done {
    pub topic: String,
    pub partition: i32,
    pub ranges: Vec<(i64, i64)>,
    pub gens: Vec<GenKey>,
}

#[derive(Default)]
pub struct Rebuilds {
    props: Vec<(String, String)>,
    consumer: Option<BaseConsumer>,
    queue: VecDeque<Pass>,
    /// Records read back and written, for the log and tests.
    pub lines: u64,
}

impl Rebuilds {
    pub fn new(settings: &CollectSettings) -> Self {
        let mut props = settings.consumer_props();
        props.push(("enable.auto.offset.store".into(), "false".into()));
        props.push(("queued.max.messages.kbytes".into(), PREFETCH_KB.into()));
        Rebuilds {
            props,
            consumer: None,
            queue: VecDeque::new(),
            lines: 0,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Read `ranges` of `topic`/`partition` back for `key`.
    pub fn enqueue(&mut self, topic: &str, partition: i32, ranges: Vec<(i64, i64)>, key: GenKey) {
        // A waiting pass of the same partition takes it on.
        if let Some(p) = self
            .queue
            .iter_mut()
            .skip_while(|p| p.at.is_some())
            .find(|p| p.topic == topic && p.partition == partition)
        {
            p.ranges = union(&p.ranges, &ranges);
            p.gens.insert(key);
            return;
        }
        self.queue.push_back(Pass {
            topic: topic.to_string(),
            partition,
            ranges,
            gens: HashSet::from([key]),
            at: None,
            queued: Instant::now(),
        });
    }

    /// The partition was let go: its passes are dropped (their
    /// generations stay unfinished here; the next owner rebuilds them).
    pub fn cancel(&mut self, topic: &str, partition: i32) {
        let before = self.queue.front().map(|p| (p.topic.clone(), p.partition));
        self.queue
            .retain(|p| !(p.topic == topic && p.partition == partition));
        let after = self.queue.front().map(|p| (p.topic.clone(), p.partition));
        if before != after {
            if let Some(c) = &self.consumer {
                let _ = c.unassign();
            }
        }
    }

    /// Read and write up to a step's worth of records. `write` handles one
    /// record of a wanted generation. Returns the pass that finished, if
    /// one did.
    pub fn step(
        &mut self,
        writer: &mut Writer,
        store: &Store,
        write: &mut WriteBack<'_>,
    ) -> Result<Option<Done>, IndexError> {
        let Some(pass) = self.queue.front_mut() else {
            return Ok(None);
        };
        if pass.at.is_none() && pass.queued.elapsed() < GATHER {
            return Ok(None);
        }
        if self.consumer.is_none() {
            let mut cfg = ClientConfig::new();
            for (k, v) in &self.props {
                cfg.set(k, v);
            }
            match cfg.create::<BaseConsumer>() {
                Ok(c) => self.consumer = Some(c),
                Err(e) => {
                    tracing::warn!(
                        "cannot create the consumer that reads partitions back (retried): {e}"
                    );
                    return Ok(None);
                }
            }
        }
        let consumer = self.consumer.as_ref().expect("created above");
        if pass.at.is_none() {
            pass.at = Some(0);
            if let Err(e) = seek(consumer, pass, 0) {
                tracing::warn!(topic = %pass.topic, partition = pass.partition, "cannot read the partition back yet (retried): {e}");
                pass.at = None;
                return Ok(None);
            }
            tracing::info!(
                topic = %pass.topic,
                partition = pass.partition,
                generations = pass.gens.len(),
                ranges = ?pass.ranges,
                "rebuilding generations this output directory did not start: reading their partition back from their first offset"
            );
        }
        let mut wait = Duration::from_millis(5);
        let until = Instant::now() + STEP_TIME;
        while Instant::now() < until {
            let Some(polled) = consumer.poll(wait) else {
                return Ok(None);
            };
            wait = Duration::ZERO;
            let m = match polled {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(topic = %pass.topic, partition = pass.partition, "reading the partition back: {e}");
                    return Ok(None);
                }
            };
            let at = pass.at.expect("started above");
            let (start, end) = pass.ranges[at];
            if m.offset() < start {
                continue;
            }
            if m.offset() >= end {
                let next = at + 1;
                if next == pass.ranges.len() {
                    let pass = self.queue.pop_front().expect("front");
                    let _ = consumer.unassign();
                    return Ok(Some(Done {
                        topic: pass.topic,
                        partition: pass.partition,
                        ranges: pass.ranges,
                        gens: pass.gens.into_iter().collect(),
                    }));
                }
                pass.at = Some(next);
                if pass.ranges[next].0 > m.offset() {
                    if let Err(e) = seek(consumer, pass, next) {
                        tracing::warn!("reading the partition back: {e}");
                    }
                    return Ok(None);
                }
            }
            if write(writer, store, &m, &pass.gens)? {
                self.lines += 1;
            }
        }
        Ok(None)
    }
}

fn seek(consumer: &BaseConsumer, pass: &Pass, at: usize) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &pass.topic,
        pass.partition,
        Offset::Offset(pass.ranges[at].0),
    )?;
    consumer.assign(&tpl)
}

/// Union of two sorted lists of disjoint ranges.
fn union(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, i64)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in all {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::union;

    #[test]
    fn waiting_passes_merge_their_ranges() {
        assert_eq!(
            union(&[(0, 10), (20, 30)], &[(5, 22), (40, 50)]),
            vec![(0, 30), (40, 50)]
        );
        assert_eq!(union(&[], &[(1, 2)]), vec![(1, 2)]);
    }
}
