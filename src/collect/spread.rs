//! Generations that other members of the group also write.
//!
//! With the agents' default sticky partitioning, the lines of one source
//! generation spread over the partitions of its topic, and each collector
//! in the group receives only the lines of the partitions it holds.
//! Collectors sharing one OUT directory still rebuild exact files (they
//! share the index under its lock); collectors with separate OUT
//! directories each get a part of every file. A collector cannot see the
//! others' directories, but it can see the symptom: a generation arriving
//! on two or more partitions of a topic while it holds only some of that
//! topic's partitions. It says so once per session and counts such
//! generations; the fix, when OUT is not shared, is `partition_by = "file"`
//! or `"host"` on the agents.
//!
//! A collector holding a single partition never sees a generation on two,
//! so it cannot tell: the members holding several do.

use std::collections::{HashMap, HashSet};

use super::index::GenKey;

/// The partitions one generation's records came from in this session, on
/// the topic it first came on. Cheap per record: with sticky partitioning
/// a generation stays on one partition for a whole batch, so the set is
/// touched only when the partition differs from the last one seen.
#[derive(Debug, Clone)]
pub struct Partitions {
    topic: String,
    last: i32,
    /// Bit p for partition p below 64 (nearly every topic).
    low: u64,
    /// Partitions from 64 up, sorted.
    high: Vec<i32>,
}

impl Partitions {
    pub fn new(topic: &str) -> Self {
        Partitions {
            topic: topic.to_string(),
            last: -1,
            low: 0,
            high: Vec::new(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// A record of the generation came from `topic`/`partition`: true when
    /// that partition is new for it and it has now come on two or more.
    /// Records on another topic (an agent reconfigured) are not counted:
    /// partitions of different topics say nothing about each other.
    #[inline]
    pub fn note(&mut self, topic: &str, partition: i32) -> bool {
        if partition == self.last || topic != self.topic {
            return false;
        }
        self.last = partition;
        self.insert(partition) && self.len() >= 2
    }

    fn insert(&mut self, partition: i32) -> bool {
        match u32::try_from(partition) {
            Ok(bit) if bit < 64 => {
                let new = self.low & (1 << bit) == 0;
                self.low |= 1 << bit;
                new
            }
            Ok(_) => match self.high.binary_search(&partition) {
                Ok(_) => false,
                Err(i) => {
                    self.high.insert(i, partition);
                    true
                }
            },
            // Not a real partition: nothing to learn from it.
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.low.count_ones() as usize + self.high.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The partitions, ascending.
    pub fn list(&self) -> Vec<i32> {
        (0..64)
            .filter(|b| self.low & (1u64 << b) != 0)
            .chain(self.high.iter().copied())
            .collect()
    }
}

/// How much of one topic this collector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Partitions assigned to this collector.
    pub held: usize,
    /// Partitions the topic has.
    pub total: usize,
}

impl Hold {
    fn partial(self) -> bool {
        self.held < self.total
    }
}

/// One session's watch: the current assignment, the generations counted,
/// whether the warning was given.
#[derive(Debug, Default)]
pub struct SpreadWatch {
    holds: HashMap<String, Hold>,
    counted: HashSet<GenKey>,
    warned: bool,
    /// Generations counted (each once per session): the metric.
    pub split_generations: u64,
}

impl SpreadWatch {
    /// After a rebalance: what this collector holds of each topic it has
    /// partitions of (topics whose size is unknown are left out).
    pub fn set_holds(&mut self, holds: HashMap<String, Hold>) {
        self.holds = holds;
    }

    pub fn holds(&self) -> &HashMap<String, Hold> {
        &self.holds
    }

    /// `key` came on `seen` partitions: when two or more while this
    /// collector holds only part of the topic, count it (once) and warn
    /// (once per session: a rotation storm must not flood the log).
    /// Returns whether it was counted now.
    pub fn check(&mut self, key: &GenKey, seen: &Partitions) -> bool {
        if seen.len() < 2 {
            return false;
        }
        let Some(hold) = self.holds.get(seen.topic()).copied() else {
            return false;
        };
        if !hold.partial() || self.counted.contains(key) {
            return false;
        }
        self.counted.insert(key.clone());
        self.split_generations += 1;
        if !self.warned {
            self.warned = true;
            let parts: Vec<String> = seen.list().iter().map(i32::to_string).collect();
            tracing::warn!(
                host = %key.host,
                generation = %key.lineage,
                topic = seen.topic(),
                "generation {} of host {} arrives on partitions {{{}}} of topic {}, of which this collector holds only {} of {}, so other members of the group write the rest; fine if all members share this OUT directory, otherwise set partition_by = \"generation\" (the default) on the agents (said once per session; such generations are counted in logferry_collect_split_generations_total)",
                key.lineage,
                key.host,
                parts.join(","),
                seen.topic(),
                hold.held,
                hold.total
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: u64) -> GenKey {
        GenKey::test_generation(g)
    }

    #[test]
    fn partitions_are_noted_when_they_change() {
        let mut p = Partitions::new("t");
        assert!(!p.note("t", 3), "one partition is no spread");
        assert!(!p.note("t", 3));
        assert!(p.note("t", 5), "a second partition");
        assert!(!p.note("t", 3), "seen before");
        assert!(!p.note("other", 7), "another topic is not counted");
        assert!(!p.note("t", -1), "not a partition");
        assert!(p.note("t", 200), "partitions past 64 too");
        assert!(p.note("t", 64));
        assert!(!p.note("t", 200));
        assert_eq!(p.list(), vec![3, 5, 64, 200]);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn a_spread_generation_is_counted_once_and_warned_once_only_under_a_partial_hold() {
        let mut w = SpreadWatch::default();
        let mut p = Partitions::new("t");
        p.note("t", 0);
        p.note("t", 1);
        // Assignment unknown: nothing to say.
        assert!(!w.check(&key(1), &p));
        // Holding every partition: all of the generation comes here.
        w.set_holds(HashMap::from([(
            "t".to_string(),
            Hold { held: 4, total: 4 },
        )]));
        assert!(!w.check(&key(1), &p));
        assert_eq!(w.split_generations, 0);
        assert!(!w.warned);
        // Holding 2 of 4: the rest goes to other members.
        w.set_holds(HashMap::from([(
            "t".to_string(),
            Hold { held: 2, total: 4 },
        )]));
        assert!(w.check(&key(1), &p));
        assert!(w.warned);
        assert!(!w.check(&key(1), &p), "counted once");
        assert!(w.check(&key(2), &p), "another generation counts too");
        assert_eq!(w.split_generations, 2);
        // A generation seen on one partition only is not counted.
        let mut one = Partitions::new("t");
        one.note("t", 2);
        assert!(!w.check(&key(3), &one));
        assert_eq!(w.split_generations, 2);
    }
}
