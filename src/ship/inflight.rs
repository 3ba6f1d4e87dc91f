//! What is in flight: the cost of records handed to the producer and not
//! settled yet (acknowledged, cut shorter, or given up with a producer),
//! in total, per input and per stream, kept in one place so they cannot
//! drift.

use super::produce::record_cost;
use crate::config::{PartitionBy, ShipSettings, DEFAULT_PRODUCER_PROPS};

/// librdkafka's batches a stream may have in flight when all its records
/// go to one partition: the request on the wire and the next one, ready.
const BATCHES_PER_STREAM: usize = 2;

/// Per input, what one of its streams may have in flight if its records
/// all go to one partition (`partition_by` generation, file or host);
/// `None` when they spread over partitions (the input's share of
/// `max_inflight_bytes` bounds them then).
///
/// librdkafka's idempotent producer (every logferry producer) sends one
/// produce request at a time per partition: its check of the five requests
/// it may have in flight counts the messages in flight instead (librdkafka
/// pull request 4989). Records queued beyond the next batch only wait, and
/// once the oldest of them is older than `linger.ms` its broker thread
/// polls without sleeping until the response comes. On 3 brokers that spin
/// was most of the agent's CPU in a backlog (docs/BENCHMARKS.md, "One
/// request at a time per partition"). The one batch kept queued still makes
/// it spin once a round trip takes longer than `linger.ms`; with none
/// queued, each request would wait for the agent to refill after the
/// answer.
pub fn stream_bounds(settings: &ShipSettings) -> Vec<Option<usize>> {
    // librdkafka fills a batch up to batch.size, never past message.max.bytes.
    let batch =
        effective_size(settings, "batch.size").min(effective_size(settings, "message.max.bytes"));
    let bound = batch.saturating_mul(BATCHES_PER_STREAM);
    settings
        .inputs
        .iter()
        .map(|input| {
            let one_partition = matches!(
                input.partition_by,
                PartitionBy::Generation | PartitionBy::File | PartitionBy::Host
            );
            one_partition.then_some(bound)
        })
        .collect()
}

/// A size property as the producer gets it: the user's last value, else
/// logferry's default, else librdkafka's (1,000,000 for both used here).
fn effective_size(settings: &ShipSettings, key: &str) -> usize {
    let user = settings.kafka_props.iter().rev().find(|(k, _)| k == key);
    let ours = DEFAULT_PRODUCER_PROPS.iter().find(|(k, _)| *k == key);
    user.map(|(_, v)| v.as_str())
        .or(ours.map(|(_, v)| *v))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// In-flight record costs (see `produce::record_cost`).
#[derive(Debug, Clone)]
pub struct InFlight {
    total: usize,
    /// The same, per input: an input whose records cannot be delivered (its
    /// topic missing, say) may hold at most its share of the bound, so the
    /// other inputs keep flowing.
    per_input: Vec<usize>,
    /// Per stream slot (grown on demand), the bytes in flight as
    /// librdkafka counts them against `batch.size` (key and value, without
    /// the cost's bookkeeping allowance), for `stream_bounds`. A slot's
    /// count may include a finished stream's records after its slot is
    /// reused; that only ever errs towards reading less, briefly.
    per_slot: Vec<usize>,
}

/// The part of a record's cost that is not its key and value.
fn allowance() -> usize {
    record_cost(0, 0)
}

impl InFlight {
    pub fn new(inputs: usize) -> Self {
        InFlight {
            total: 0,
            per_input: vec![0; inputs],
            per_slot: Vec::new(),
        }
    }

    /// A record of `input`'s stream in `slot` costing `cost` was handed out.
    pub fn add(&mut self, input: usize, slot: usize, cost: usize) {
        self.total += cost;
        self.per_input[input] += cost;
        if self.per_slot.len() <= slot {
            self.per_slot.resize(slot + 1, 0);
        }
        self.per_slot[slot] += cost.saturating_sub(allowance());
    }

    /// A record costing `cost` is no longer in flight. `input` is `None`
    /// when the record's stream ended before its report came (its route
    /// forgotten): only the total and the slot are known to hold it then.
    pub fn settle(&mut self, input: Option<usize>, slot: usize, cost: usize) {
        self.take(input, slot, cost, cost.saturating_sub(allowance()));
    }

    /// A record in flight was cut `bytes` shorter.
    pub fn shrink(&mut self, input: Option<usize>, slot: usize, bytes: usize) {
        self.take(input, slot, bytes, bytes);
    }

    fn take(&mut self, input: Option<usize>, slot: usize, cost: usize, bytes: usize) {
        self.total = self.total.saturating_sub(cost);
        if let Some(share) = input.and_then(|i| self.per_input.get_mut(i)) {
            *share = share.saturating_sub(cost);
        }
        if let Some(share) = self.per_slot.get_mut(slot) {
            *share = share.saturating_sub(bytes);
        }
    }

    /// Nothing is in flight any more (the producer holding it was dropped).
    pub fn clear(&mut self) {
        self.total = 0;
        self.per_input.iter_mut().for_each(|c| *c = 0);
        self.per_slot.iter_mut().for_each(|c| *c = 0);
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, input: usize) -> usize {
        self.per_input.get(input).copied().unwrap_or(0)
    }

    /// Key and value bytes in flight of the stream in `slot`.
    pub fn bytes_of_slot(&self, slot: usize) -> usize {
        self.per_slot.get(slot).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_settle_keep_total_and_shares_together() {
        let a = allowance();
        let mut f = InFlight::new(2);
        f.add(0, 0, a + 100);
        f.add(1, 3, a + 50);
        assert_eq!(
            (f.total(), f.of(0), f.of(1)),
            (2 * a + 150, a + 100, a + 50)
        );
        assert_eq!(
            (f.bytes_of_slot(0), f.bytes_of_slot(3), f.bytes_of_slot(9)),
            (100, 50, 0)
        );
        f.shrink(Some(0), 0, 40);
        assert_eq!(
            (f.total(), f.of(0), f.bytes_of_slot(0)),
            (2 * a + 110, a + 60, 60)
        );
        f.settle(Some(0), 0, a + 60);
        assert_eq!((f.total(), f.of(0), f.bytes_of_slot(0)), (a + 50, 0, 0));
        f.settle(None, 3, a + 10);
        assert_eq!((f.total(), f.of(1), f.bytes_of_slot(3)), (40, a + 50, 40));
        f.settle(Some(1), 3, 5 * a);
        assert_eq!((f.total(), f.of(1), f.bytes_of_slot(3)), (0, 0, 0));
        f.add(1, 2, a + 7);
        f.clear();
        assert_eq!(
            (f.total(), f.of(0), f.of(1), f.bytes_of_slot(2)),
            (0, 0, 0, 0)
        );
    }
}
