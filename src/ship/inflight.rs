//! What is in flight: the cost of records handed to the producer and not
//! settled yet (acknowledged, cut shorter, or given up with a producer),
//! in total and per input, kept in one place so the two cannot drift.

/// In-flight record costs (see `produce::record_cost`).
#[derive(Debug, Clone)]
pub struct InFlight {
    total: usize,
    /// The same, per input: an input whose records cannot be delivered (its
    /// topic missing, say) may hold at most its share of the bound, so the
    /// other inputs keep flowing.
    per_input: Vec<usize>,
}

impl InFlight {
    pub fn new(inputs: usize) -> Self {
        InFlight {
            total: 0,
            per_input: vec![0; inputs],
        }
    }

    /// A record of `input` costing `cost` was handed out.
    pub fn add(&mut self, input: usize, cost: usize) {
        self.total += cost;
        self.per_input[input] += cost;
    }

    /// `cost` of a record is no longer in flight. `input` is `None` when the
    /// record's stream ended before its report came (its route forgotten):
    /// only the total is known to hold it then.
    pub fn settle(&mut self, input: Option<usize>, cost: usize) {
        self.total = self.total.saturating_sub(cost);
        if let Some(share) = input.and_then(|i| self.per_input.get_mut(i)) {
            *share = share.saturating_sub(cost);
        }
    }

    /// Nothing is in flight any more (the producer holding it was dropped).
    pub fn clear(&mut self) {
        self.total = 0;
        self.per_input.iter_mut().for_each(|c| *c = 0);
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, input: usize) -> usize {
        self.per_input.get(input).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_settle_keep_total_and_shares_together() {
        let mut f = InFlight::new(2);
        f.add(0, 100);
        f.add(1, 50);
        assert_eq!((f.total(), f.of(0), f.of(1)), (150, 100, 50));
        f.settle(Some(0), 40);
        assert_eq!((f.total(), f.of(0), f.of(1)), (110, 60, 50));
        f.settle(None, 10);
        assert_eq!((f.total(), f.of(0), f.of(1)), (100, 60, 50));
        f.settle(Some(1), 500);
        assert_eq!((f.total(), f.of(1)), (0, 0));
        f.add(1, 7);
        f.clear();
        assert_eq!((f.total(), f.of(0), f.of(1)), (0, 0, 0));
    }
}
