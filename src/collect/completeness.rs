//! What is known to be written of one source generation: the byte ranges
//! written (merged), "complete up to byte N" (the end of the range that
//! starts at 0), the holes between ranges and how long each has been open.
//!
//! Offsets only say where lines start, so a hole is any byte range between
//! two written ranges. A hole right after a line that the agent cut
//! (`truncated` flag: the long-line policy) is expected, not a loss: its end
//! is remembered as *excused*. Bytes after the last range are not a hole:
//! nothing says the source file went on (a known limit: lines lost at the
//! very end of a generation are not visible from offsets alone).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Sorted, non-overlapping, non-adjacent half-open byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Add `[start, end)`, merging with ranges it overlaps or touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Fast path: appending right after the last range (the usual case:
        // lines of one partition arrive in file order).
        if let Some(last) = self.0.last_mut() {
            if start >= last.0 && start <= last.1 {
                last.1 = last.1.max(end);
                return;
            }
        }
        // First range whose end reaches `start`: everything before it is
        // untouched.
        let i = self.0.partition_point(|r| r.1 < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.0.len() && self.0[j].0 <= e {
            s = s.min(self.0[j].0);
            e = e.max(self.0[j].1);
            j += 1;
        }
        self.0.splice(i..j, [(s, e)]);
    }

    pub fn union(&mut self, other: &RangeSet) {
        for &(s, e) in &other.0 {
            self.insert(s, e);
        }
    }

    /// Whether `[start, end)` is entirely written.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < end);
        self.0.get(i).is_some_and(|r| r.0 <= start && r.1 >= end)
    }

    /// End of the contiguous prefix written from byte 0 (0 when byte 0 is
    /// not written yet).
    pub fn complete_up_to(&self) -> u64 {
        match self.0.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    /// Every hole: `[0, first start)` when the start is missing, then the
    /// gaps between ranges.
    pub fn holes(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s > at {
                out.push((at, s));
            }
            at = e;
        }
        out
    }
}

/// Completeness of one generation, as kept in the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    pub written: RangeSet,
    /// Ends of lines the agent cut (long-line policy): a hole starting
    /// there is expected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excused: Vec<u64>,
    /// Start of each open hole -> Unix time it was first seen open.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holes_since: BTreeMap<u64, u64>,
}

/// A hole that is not excused, with its age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hole {
    pub start: u64,
    pub end: u64,
    /// Seconds the hole has been open.
    pub age_secs: u64,
}

impl Completeness {
    /// Merge what another writer (or an earlier flush) wrote, then restamp
    /// the holes: a hole keeps the time it was first seen while its start
    /// stays open.
    pub fn merge(&mut self, written: &RangeSet, excused: &[u64], now: u64) {
        self.written.union(written);
        for &e in excused {
            if !self.excused.contains(&e) {
                self.excused.push(e);
            }
        }
        self.excused.sort_unstable();
        let mut since = BTreeMap::new();
        for (s, _) in self.open_holes_raw() {
            since.insert(s, self.holes_since.get(&s).copied().unwrap_or(now));
        }
        self.holes_since = since;
        // Excused ends that are now followed by written bytes are no
        // longer needed.
        let w = &self.written;
        self.excused.retain(|&e| !w.covers(e, e + 1));
    }

    fn open_holes_raw(&self) -> Vec<(u64, u64)> {
        self.written
            .holes()
            .into_iter()
            .filter(|(s, _)| self.excused.binary_search(s).is_err())
            .collect()
    }

    /// Open holes with their age at `now`.
    pub fn holes(&self, now: u64) -> Vec<Hole> {
        self.open_holes_raw()
            .into_iter()
            .map(|(start, end)| Hole {
                start,
                end,
                age_secs: now.saturating_sub(self.holes_since.get(&start).copied().unwrap_or(now)),
            })
            .collect()
    }

    pub fn complete_up_to(&self) -> u64 {
        self.written.complete_up_to()
    }

    /// End of the last byte written.
    pub fn end(&self) -> u64 {
        self.written.ranges().last().map_or(0, |r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_and_reports_holes() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 25);
        assert_eq!(r.ranges(), &[(10, 25), (30, 40)]);
        assert_eq!(r.holes(), vec![(0, 10), (25, 30)]);
        assert_eq!(r.complete_up_to(), 0);
        r.insert(0, 10);
        r.insert(24, 31);
        assert_eq!(r.ranges(), &[(0, 40)]);
        assert_eq!(r.complete_up_to(), 40);
        assert!(r.covers(5, 40));
        assert!(!r.covers(5, 41));
    }

    #[test]
    fn holes_keep_their_first_seen_time_and_excused_ones_are_hidden() {
        let mut c = Completeness::default();
        let mut w = RangeSet::new();
        w.insert(0, 10);
        w.insert(20, 30);
        c.merge(&w, &[], 100);
        assert_eq!(
            c.holes(160),
            vec![Hole {
                start: 10,
                end: 20,
                age_secs: 60
            }]
        );
        let mut w2 = RangeSet::new();
        w2.insert(40, 50);
        c.merge(&w2, &[30], 150);
        // 10..20 still dated 100; 30..40 excused (a cut line ends at 30).
        assert_eq!(c.holes(160).len(), 1);
        assert_eq!(c.holes(160)[0].age_secs, 60);
        let mut w3 = RangeSet::new();
        w3.insert(10, 20);
        c.merge(&w3, &[], 170);
        assert!(c.holes(170).is_empty());
        assert_eq!(c.complete_up_to(), 30);
    }

    proptest! {
        /// Whatever the order of inserts, the set equals a byte bitmap.
        #[test]
        fn range_set_matches_a_bitmap(ops in proptest::collection::vec((0u64..200, 0u64..20), 0..60)) {
            let mut r = RangeSet::new();
            let mut bits = [false; 220];
            for (s, l) in ops {
                r.insert(s, s + l);
                for b in &mut bits[s as usize..(s + l) as usize] { *b = true; }
            }
            let mut expect = Vec::new();
            let mut i = 0;
            while i < bits.len() {
                if bits[i] {
                    let s = i;
                    while i < bits.len() && bits[i] { i += 1; }
                    expect.push((s as u64, i as u64));
                } else { i += 1; }
            }
            prop_assert_eq!(r.ranges(), expect.as_slice());
        }
    }
}
