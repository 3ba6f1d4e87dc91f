//! Custody: what this output directory holds of each generation whose
//! records all go to one partition (agents with `partition_by =
//! "generation"`, the default), and the rules that let collectors on
//! separate hosts, one consumer group, each with its own OUT, together
//! hold every generation whole through rebalances and crashes.
//!
//! - A collector writes a generation only whole: when it meets a record
//!   of a generation it did not start, it first rebuilds the generation
//!   from its first offset (found in the [`super::registry`]), reading
//!   back only the partition ranges this OUT does not hold yet (the
//!   partition *coverage*: offsets whose every attributed record is
//!   written here, kept in the index).
//! - While a generation is being rebuilt, offsets of its partition are
//!   committed no further than its first record in this assignment: a
//!   collector killed mid-rebuild leaves the next owner that record to
//!   meet, so it rebuilds the generation too.
//! - Once whole (synced), the collector says so in the registry
//!   (`holder`); the member that held a copy before marks its copy
//!   `handed_over` when it reads that.
//!
//! States, kept per generation in the index (`custody`):
//! `writing` (whole from the first record through what this OUT consumed
//! of the partition, which its collector holds), `rebuilding`, `held`
//! (the partition was let go at offset `at`; every record before it is
//! here), `handed_over` (another OUT took the generation over: this copy
//! is partial) and `unfinished` (the partition was let go before a rebuild
//! finished). `collect status` presents a copy as whole only when
//! `writing` or `held` and a collector runs on OUT to keep these marks.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::completeness::RangeSet;
use super::index::{GenKey, Index, Lineage};
use super::registry::Placement;

/// Partition coverage key in the index: `TOPIC/PARTITION`.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// One generation's custody in this OUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Custody {
    pub topic: String,
    pub partition: i32,
    /// Offset of the generation's first record in its partition.
    pub first: i64,
    /// Partition ranges read back for this generation alone (rebuilds).
    #[serde(default, skip_serializing_if = "RangeSet::is_empty")]
    pub rebuilt: RangeSet,
    pub state: CustodyState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustodyState {
    Writing,
    Rebuilding,
    Held { at: i64 },
    HandedOver { to: String },
    Unfinished,
}

impl CustodyState {
    pub fn name(&self) -> &'static str {
        match self {
            CustodyState::Writing => "writing",
            CustodyState::Rebuilding => "rebuilding",
            CustodyState::Held { .. } => "held",
            CustodyState::HandedOver { .. } => "handed_over",
            CustodyState::Unfinished => "unfinished",
        }
    }

    /// Whether the copy holds every record of the generation it can know
    /// of (given that a collector keeps the marks current).
    pub fn whole(&self) -> bool {
        matches!(self, CustodyState::Writing | CustodyState::Held { .. })
    }
}

/// What to do about a generation met for the first time in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Records of it go elsewhere too, or its agent does not keep it in
    /// one partition: nothing to track.
    Untracked,
    /// First seen: this record is its first. Publish the placement.
    First(Placement),
    /// This OUT holds it from its first record: write on.
    Whole { first: i64 },
    /// Read these partition ranges back for it first.
    Rebuild { first: i64, ranges: Vec<(i64, i64)> },
}

/// Decide for a generation met at `offset` of `topic`/`partition`, in an
/// assignment whose first record was at `stint_start`.
/// `placement`: the registry's entry; `coverage`: this OUT's coverage of
/// the partition; `custody`: the generation's custody here, if any.
pub fn decide(
    me: &str,
    (topic, partition, offset): (&str, i32, i64),
    stint_start: i64,
    placement: Option<&Placement>,
    coverage: Option<&RangeSet>,
    custody: Option<&Custody>,
) -> Decision {
    let Some(p) = placement else {
        return Decision::First(Placement {
            topic: topic.to_string(),
            partition,
            first: offset,
            holder: me.to_string(),
        });
    };
    if p.topic != topic || p.partition != partition {
        return Decision::Untracked;
    }
    let mut held = coverage.cloned().unwrap_or_default();
    if let Some(c) = custody.filter(|c| c.topic == topic && c.partition == partition) {
        held.union(&c.rebuilt);
    }
    let want_end = stint_start.min(offset);
    let ranges = missing(&held, p.first, want_end);
    if ranges.is_empty() {
        Decision::Whole { first: p.first }
    } else {
        Decision::Rebuild {
            first: p.first,
            ranges,
        }
    }
}

/// The parts of `[from, to)` not in `held`.
fn missing(held: &RangeSet, from: i64, to: i64) -> Vec<(i64, i64)> {
    let (from, to) = (from.max(0) as u64, to.max(0) as u64);
    if from >= to {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = from;
    for &(s, e) in held.ranges() {
        if e <= at {
            continue;
        }
        if s >= to {
            break;
        }
        if s > at {
            out.push((at as i64, s as i64));
        }
        at = at.max(e);
        if at >= to {
            break;
        }
    }
    if at < to {
        out.push((at as i64, to as i64));
    }
    out
}

/// The session's custody bookkeeping, applied to the index at each sync.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per partition held now: the offset of its first record consumed in
    /// this assignment, and the offset after the last one synced.
    stints: HashMap<(String, i32), (i64, i64)>,
    /// Whether a stint moved since the last [`Tracker::apply`].
    advanced: bool,
    /// Generations decided in this session, by partition.
    known: HashMap<GenKey, (String, i32)>,
    /// Custody to record at the next sync.
    decided: Vec<(GenKey, Custody)>,
    /// Rebuilds whose lines were all written: recorded at the next sync.
    rebuilt: Vec<(GenKey, Vec<(i64, i64)>)>,
    /// Partitions let go, and the offset they were let go at.
    revoked: Vec<(String, i32, i64)>,
    /// Generations another OUT claimed.
    claims: Vec<String>,
    /// Per partition: generations being rebuilt and their first record
    /// in this assignment (commits stay below the lowest).
    caps: HashMap<(String, i32), BTreeMap<i64, Vec<GenKey>>>,
    /// Whole after the next sync: to publish as held here.
    publish_after_sync: Vec<(GenKey, i64)>,
}

impl Tracker {
    /// A record of `topic`/`partition` at `offset` is the first consumed
    /// since the partition was assigned (or since the last sync).
    pub fn note_partition(&mut self, topic: &str, partition: i32, offset: i64) {
        self.stints
            .entry((topic.to_string(), partition))
            .or_insert((offset, offset));
    }

    /// Everything of `topic`/`partition` before `next` is about to be
    /// synced.
    pub fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        if let Some(s) = self.stints.get_mut(&(topic.to_string(), partition)) {
            if next > s.1 {
                s.1 = next;
                self.advanced = true;
            }
        }
    }

    pub fn stint_start(&self, topic: &str, partition: i32) -> Option<i64> {
        self.stints
            .get(&(topic.to_string(), partition))
            .map(|s| s.0)
    }

    /// Whether `key` was decided in this session already.
    pub fn knows(&self, key: &GenKey) -> bool {
        self.known.contains_key(key)
    }

    /// Record a decision for `key` met at `offset`; returns the ranges to
    /// read back, if any.
    pub fn record(
        &mut self,
        key: &GenKey,
        (topic, partition, offset): (&str, i32, i64),
        decision: &Decision,
    ) {
        self.known
            .insert(key.clone(), (topic.to_string(), partition));
        let (first, state) = match decision {
            Decision::Untracked => return,
            Decision::First(p) => (p.first, CustodyState::Writing),
            Decision::Whole { first } => {
                self.publish_after_sync.push((key.clone(), *first));
                (*first, CustodyState::Writing)
            }
            Decision::Rebuild { first, .. } => {
                self.caps
                    .entry((topic.to_string(), partition))
                    .or_default()
                    .entry(offset)
                    .or_default()
                    .push(key.clone());
                (*first, CustodyState::Rebuilding)
            }
        };
        self.decided.push((
            key.clone(),
            Custody {
                topic: topic.to_string(),
                partition,
                first,
                rebuilt: RangeSet::new(),
                state,
            },
        ));
    }

    /// A rebuild wrote every line of `keys` in `ranges`.
    pub fn rebuilt(&mut self, topic: &str, partition: i32, keys: &[GenKey], ranges: &[(i64, i64)]) {
        for k in keys {
            self.rebuilt.push((k.clone(), ranges.to_vec()));
        }
        if let Some(caps) = self.caps.get_mut(&(topic.to_string(), partition)) {
            for list in caps.values_mut() {
                list.retain(|k| !keys.contains(k));
            }
            caps.retain(|_, l| !l.is_empty());
        }
    }

    /// The highest offset of `topic`/`partition` that may be committed.
    pub fn commit_cap(&self, topic: &str, partition: i32) -> Option<i64> {
        self.caps
            .get(&(topic.to_string(), partition))
            .and_then(|c| c.keys().next().copied())
    }

    /// The partition is let go (after its last records were synced).
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        let k = (topic.to_string(), partition);
        let stint = self.stints.remove(&k);
        self.caps.remove(&k);
        self.known.retain(|_, p| *p != k);
        if let Some((_, next)) = stint {
            self.revoked.push((topic.to_string(), partition, next));
        }
    }

    /// Claims read from the registry.
    pub fn claimed(&mut self, keys: Vec<String>) {
        self.claims.extend(keys);
    }

    /// Whether [`Tracker::apply`] has something to record even when no
    /// line was written.
    pub fn has_changes(&self) -> bool {
        self.advanced
            || !(self.decided.is_empty()
                && self.rebuilt.is_empty()
                && self.revoked.is_empty()
                && self.claims.is_empty())
    }

    /// Record into the index (under its lock, before it is saved, after
    /// every output was fsynced): what was consumed, decisions, rebuilds,
    /// partitions let go and claims. `holder_of` gives the registry's
    /// holder of a generation.
    pub fn apply(
        &mut self,
        index: &mut Index,
        me: &str,
        holder_of: &dyn Fn(&str) -> Option<String>,
    ) {
        self.advanced = false;
        for ((topic, partition), &(start, next)) in &self.stints {
            if next > start {
                index
                    .coverage
                    .entry(partition_key(topic, *partition))
                    .or_default()
                    .insert(start.max(0) as u64, next.max(0) as u64);
            }
        }
        for (key, custody) in self.decided.drain(..) {
            if let Some(e) = index.generations.get_mut(&key.id()) {
                let rebuilt = e
                    .custody
                    .as_ref()
                    .filter(|c| c.topic == custody.topic && c.partition == custody.partition)
                    .map(|c| c.rebuilt.clone())
                    .unwrap_or_default();
                e.custody = Some(Custody { rebuilt, ..custody });
            }
        }
        for (key, ranges) in self.rebuilt.drain(..) {
            if let Some(c) = index
                .generations
                .get_mut(&key.id())
                .and_then(|e| e.custody.as_mut())
            {
                for (s, e) in ranges {
                    c.rebuilt.insert(s.max(0) as u64, e.max(0) as u64);
                }
                if c.state == CustodyState::Rebuilding {
                    c.state = CustodyState::Writing;
                    self.publish_after_sync.push((key, c.first));
                }
            }
        }
        for (topic, partition, at) in self.revoked.drain(..) {
            for (id, e) in index.generations.iter_mut() {
                let Some(c) = e
                    .custody
                    .as_mut()
                    .filter(|c| c.topic == topic && c.partition == partition)
                else {
                    continue;
                };
                c.state = match c.state {
                    CustodyState::Writing => match holder_of(id) {
                        Some(h) if h != me => CustodyState::HandedOver { to: h },
                        _ => CustodyState::Held { at },
                    },
                    CustodyState::Rebuilding => CustodyState::Unfinished,
                    ref s => s.clone(),
                };
            }
        }
        for id in self.claims.drain(..) {
            let Some(c) = index
                .generations
                .get_mut(&id)
                .and_then(|e| e.custody.as_mut())
            else {
                continue;
            };
            if let (CustodyState::Held { .. }, Some(h)) = (&c.state, holder_of(&id)) {
                if h != me {
                    c.state = CustodyState::HandedOver { to: h };
                }
            }
        }
    }

    /// Generations that became whole at the sync just done: (key, first).
    pub fn take_published(&mut self) -> Vec<(GenKey, i64)> {
        std::mem::take(&mut self.publish_after_sync)
    }
}

/// A session starts alone on OUT after a crash: copies its collector was
/// writing hold every record of their partition's coverage (synced
/// together), so they are `held` up to its end; unfinished rebuilds are
/// `unfinished`.
pub fn settle_after_crash(index: &mut Index) {
    for e in index.generations.values_mut() {
        let Some(c) = e.custody.as_mut() else {
            continue;
        };
        let end = index
            .coverage
            .get(&partition_key(&c.topic, c.partition))
            .and_then(|r| r.ranges().last().map(|r| r.1 as i64));
        c.state = match (&c.state, end) {
            (CustodyState::Writing, Some(at)) => CustodyState::Held { at },
            (CustodyState::Writing | CustodyState::Rebuilding, _) => CustodyState::Unfinished,
            (s, _) => s.clone(),
        };
    }
}

/// Whether `key` can be tracked at all: generations only (records of
/// agents older than generations have none).
pub fn trackable(key: &GenKey) -> bool {
    matches!(key.lineage, Lineage::Generation(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(first: i64) -> Placement {
        Placement {
            topic: "t".into(),
            partition: 2,
            first,
            holder: "other".into(),
        }
    }

    fn ranges(r: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in r {
            s.insert(a, b);
        }
        s
    }

    #[test]
    fn a_generation_not_in_the_registry_starts_here() {
        let d = decide("me", ("t", 2, 500), 400, None, None, None);
        assert_eq!(
            d,
            Decision::First(Placement {
                topic: "t".into(),
                partition: 2,
                first: 500,
                holder: "me".into()
            })
        );
    }

    #[test]
    fn a_generation_started_before_this_assignment_is_read_back_where_out_lacks_it() {
        // Nothing held: from its first record to the assignment's start.
        let p = placement(100);
        assert_eq!(
            decide("me", ("t", 2, 450), 400, Some(&p), None, None),
            Decision::Rebuild {
                first: 100,
                ranges: vec![(100, 400)]
            }
        );
        // OUT held 150..300 of the partition before: only the rest.
        let cov = ranges(&[(0, 50), (150, 300)]);
        assert_eq!(
            decide("me", ("t", 2, 450), 400, Some(&p), Some(&cov), None),
            Decision::Rebuild {
                first: 100,
                ranges: vec![(100, 150), (300, 400)]
            }
        );
        // And what an earlier rebuild of this generation read.
        let c = Custody {
            topic: "t".into(),
            partition: 2,
            first: 100,
            rebuilt: ranges(&[(100, 150), (300, 400)]),
            state: CustodyState::HandedOver { to: "x".into() },
        };
        assert_eq!(
            decide("me", ("t", 2, 450), 400, Some(&p), Some(&cov), Some(&c)),
            Decision::Whole { first: 100 }
        );
        // Started within this assignment: nothing to read back.
        assert_eq!(
            decide("me", ("t", 2, 450), 400, Some(&placement(420)), None, None),
            Decision::Whole { first: 420 }
        );
        // On another partition than its first records: not tracked.
        assert_eq!(
            decide("me", ("t", 3, 450), 400, Some(&p), None, None),
            Decision::Untracked
        );
    }

    fn key(g: u64) -> GenKey {
        GenKey::test_generation(g)
    }

    fn entry(k: &GenKey) -> super::super::index::GenEntry {
        super::super::index::GenEntry {
            host: k.host.clone(),
            generation: k.lineage.to_string(),
            source_path: "/x".into(),
            output: "h/x".into(),
            first_seen: 0,
            first_record_ms: None,
            last_write: 0,
            completeness: Default::default(),
            archived: None,
            custody: None,
        }
    }

    #[test]
    fn rebuilding_caps_commits_and_the_states_follow_revokes_and_claims() {
        let (a, b) = (key(1), key(2));
        let mut index = Index::default();
        index.generations.insert(a.id(), entry(&a));
        index.generations.insert(b.id(), entry(&b));
        let mut t = Tracker::default();
        t.note_partition("t", 2, 400);
        t.record(&a, ("t", 2, 450), &Decision::Whole { first: 420 });
        t.record(
            &b,
            ("t", 2, 460),
            &Decision::Rebuild {
                first: 100,
                ranges: vec![(100, 400)],
            },
        );
        assert_eq!(t.commit_cap("t", 2), Some(460));
        let no_holder = |_: &str| None;
        t.advance("t", 2, 470);
        t.apply(&mut index, "me", &no_holder);
        assert_eq!(index.coverage["t/2"].ranges(), &[(400, 470)]);
        let state = |i: &Index, k: &GenKey| i.generations[&k.id()].custody.clone().unwrap().state;
        assert_eq!(state(&index, &a), CustodyState::Writing);
        assert_eq!(state(&index, &b), CustodyState::Rebuilding);
        assert_eq!(t.take_published(), vec![(a.clone(), 420)]);
        t.rebuilt("t", 2, std::slice::from_ref(&b), &[(100, 400)]);
        assert_eq!(t.commit_cap("t", 2), None, "rebuilt: commits go on");
        t.apply(&mut index, "me", &no_holder);
        assert_eq!(state(&index, &b), CustodyState::Writing);
        assert_eq!(t.take_published(), vec![(b.clone(), 100)]);
        // Let go at 480: both held; another OUT then claims `a`.
        t.advance("t", 2, 480);
        t.revoke("t", 2);
        t.apply(&mut index, "me", &no_holder);
        assert_eq!(state(&index, &a), CustodyState::Held { at: 480 });
        t.claimed(vec![a.id()]);
        let other = |id: &str| (id == "h/0000000000000001").then(|| "other".to_string());
        t.apply(&mut index, "me", &other);
        assert_eq!(
            state(&index, &a),
            CustodyState::HandedOver { to: "other".into() }
        );
        assert_eq!(state(&index, &b), CustodyState::Held { at: 480 });
        assert!(!t.knows(&a), "a new assignment decides again");
    }

    #[test]
    fn after_a_crash_writing_copies_are_held_to_the_coverage_and_rebuilds_unfinished() {
        let (a, b) = (key(1), key(2));
        let mut index = Index::default();
        for (k, state) in [(&a, CustodyState::Writing), (&b, CustodyState::Rebuilding)] {
            let mut e = entry(k);
            e.custody = Some(Custody {
                topic: "t".into(),
                partition: 2,
                first: 0,
                rebuilt: RangeSet::new(),
                state,
            });
            index.generations.insert(k.id(), e);
        }
        index.coverage.insert("t/2".into(), ranges(&[(0, 90)]));
        settle_after_crash(&mut index);
        let state = |k: &GenKey| index.generations[&k.id()].custody.clone().unwrap().state;
        assert_eq!(state(&a), CustodyState::Held { at: 90 });
        assert_eq!(state(&b), CustodyState::Unfinished);
    }
}
