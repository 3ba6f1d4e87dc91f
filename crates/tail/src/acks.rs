//! Which position of a file is safe to checkpoint. Lines are sent in file
//! order, but acknowledgements can arrive out of order (different
//! partitions, retries), and a failed line must never be hidden by a later
//! success. The [`AckTracker`] keeps one slot per in-flight line, in send
//! order, and reports the end of the longest fully acknowledged prefix.

use std::collections::VecDeque;
use std::time::Instant;

/// Sequence numbers carried in a delivery opaque are truncated to this many
/// bits; the tracker widens them back using its window base.
pub const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// File offset just past the line.
    end: u64,
    acked: bool,
}

#[derive(Debug)]
pub struct AckTracker {
    /// Sequence number of `window[0]`.
    base: u64,
    /// In-flight lines in send order; acked slots at the front are popped.
    window: VecDeque<Slot>,
    /// Every line ending at or before this offset was acknowledged.
    position: u64,
    /// (first sequence number read at, when): one mark per read of the
    /// file, not per line, so the age of the oldest unacknowledged line
    /// costs one clock read per read call. The front mark covers
    /// `window[0]`; marks wholly behind it are popped with the window.
    marks: VecDeque<(u64, Instant)>,
    /// After a cut, while lines of the content before it are in flight:
    /// the sequence number of the first line after it. The new content's
    /// position is its own acknowledged prefix (the old lines are held by
    /// the caller), so acks of new lines are not kept waiting on old ones.
    epoch: Option<u64>,
}

impl AckTracker {
    /// A tracker for a file whose lines before `position` are already safe.
    pub fn new(position: u64) -> Self {
        AckTracker {
            base: 0,
            window: VecDeque::new(),
            position,
            marks: VecDeque::new(),
            epoch: None,
        }
    }

    /// Lines sent from now on were read at `now` (called once per read).
    pub fn mark_read(&mut self, now: Instant) {
        let next = self.base + self.window.len() as u64;
        match self.marks.back_mut() {
            // Nothing was sent since the last mark: it moves to now.
            Some(last) if last.0 == next => last.1 = now,
            _ => self.marks.push_back((next, now)),
        }
    }

    /// When the oldest line not yet acknowledged was read (None when every
    /// line sent was acknowledged, or lines were sent without a mark).
    pub fn oldest_unacked(&self) -> Option<Instant> {
        if self.window.is_empty() {
            return None;
        }
        self.marks.front().filter(|m| m.0 <= self.base).map(|m| m.1)
    }

    /// Record a line ending at `end` as sent; returns its sequence number.
    pub fn sent(&mut self, end: u64) -> u64 {
        self.window.push_back(Slot { end, acked: false });
        self.base + self.window.len() as u64 - 1
    }

    /// Widen a sequence number that went through a [`SEQ_BITS`]-bit opaque.
    pub fn widen(&self, short: u64) -> u64 {
        let delta = short.wrapping_sub(self.base) & SEQ_MASK;
        self.base + delta
    }

    /// Mark line `seq` acknowledged. Returns true when the safe position
    /// moved.
    pub fn ack(&mut self, seq: u64) -> bool {
        let Some(idx) = seq.checked_sub(self.base) else {
            return false; // Already popped: a duplicate report.
        };
        match self.window.get_mut(idx as usize) {
            Some(slot) => slot.acked = true,
            None => return false,
        }
        let mut moved = false;
        while let Some(front) = self.window.front() {
            if !front.acked {
                break;
            }
            self.position = front.end;
            self.window.pop_front();
            self.base += 1;
            moved = true;
        }
        if moved {
            while self.marks.len() >= 2 && self.marks[1].0 <= self.base {
                self.marks.pop_front();
            }
            if self.epoch.is_some_and(|e| self.base >= e) {
                self.epoch = None;
            }
            if self.window.is_empty() {
                self.release();
            }
        }
        moved
    }

    /// Every line sent was acknowledged: give the queues' room back. With
    /// 200,000 files followed, a 16-slot window and a 4-mark queue kept by
    /// each idle file were a third of a kilobyte per file; a busy file pays
    /// one allocation per read instead.
    fn release(&mut self) {
        self.window = VecDeque::new();
        self.marks = VecDeque::new();
    }

    /// The file restarted at 0 (truncation). Lines still in flight belong to
    /// content that no longer exists, so their acks may no longer move the
    /// position past the new content.
    pub fn truncated(&mut self) {
        for slot in &mut self.window {
            slot.end = 0;
        }
        self.position = 0;
        self.epoch = (!self.window.is_empty()).then(|| self.next_seq());
    }

    /// The sequence number the next line sent will get.
    pub fn next_seq(&self) -> u64 {
        self.base + self.window.len() as u64
    }

    /// Whether every line sent before sequence number `seq` was
    /// acknowledged.
    pub fn acked_before(&self, seq: u64) -> bool {
        self.base >= seq
    }

    /// Sequence number of the first line not acknowledged (every line
    /// before it was).
    pub fn first_unacked(&self) -> u64 {
        self.base
    }

    /// (sequence number, end offset) of each line in flight, in order.
    pub fn in_flight_ends(&self) -> Vec<u64> {
        self.window.iter().map(|s| s.end).collect()
    }

    /// End of the longest acknowledged prefix.
    pub fn position(&self) -> u64 {
        match self.epoch {
            // Lines of the old content still in flight: the new content's
            // own acknowledged prefix, from its start at 0.
            Some(e) if self.base < e => self
                .window
                .iter()
                .skip((e - self.base) as usize)
                .take_while(|s| s.acked)
                .last()
                .map_or(0, |s| s.end),
            _ => self.position,
        }
    }

    /// Lines sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn after_a_cut_new_lines_move_on_while_old_ones_wait() {
        let mut t = AckTracker::new(0);
        let old = t.sent(10);
        t.truncated();
        let a = t.sent(4);
        let b = t.sent(9);
        t.ack(a);
        assert_eq!(t.position(), 4, "the new content's own prefix");
        t.ack(b);
        assert_eq!(t.position(), 9);
        t.ack(old);
        assert_eq!(t.position(), 9, "and after the old line is acked");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_fully_acknowledged_tracker_holds_no_room_and_goes_on_numbering() {
        let mut t = AckTracker::new(0);
        let now = Instant::now();
        t.mark_read(now);
        let seqs: Vec<u64> = (1..=10).map(|i| t.sent(i * 10)).collect();
        assert!(t.window.capacity() >= 10);
        for &s in &seqs[..9] {
            t.ack(s);
        }
        assert!(t.window.capacity() > 0, "a line in flight keeps the window");
        assert_eq!(t.oldest_unacked(), Some(now));
        t.ack(seqs[9]);
        assert_eq!(t.window.capacity(), 0, "nothing in flight: no room kept");
        assert_eq!(t.marks.capacity(), 0);
        assert_eq!((t.position(), t.oldest_unacked()), (100, None));
        let later = Instant::now();
        t.mark_read(later);
        let next = t.sent(110);
        assert_eq!(next, 10, "numbering goes on");
        assert_eq!(t.oldest_unacked(), Some(later));
        assert!(t.ack(next));
        assert_eq!(t.position(), 110);
    }

    #[test]
    fn in_order_acks_advance() {
        let mut t = AckTracker::new(10);
        let a = t.sent(20);
        let b = t.sent(35);
        assert_eq!(t.position(), 10);
        assert!(t.ack(a));
        assert_eq!(t.position(), 20);
        assert!(t.ack(b));
        assert_eq!(t.position(), 35);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn later_ack_never_hides_earlier_gap() {
        let mut t = AckTracker::new(0);
        let a = t.sent(5);
        let b = t.sent(9);
        let c = t.sent(14);
        assert!(!t.ack(c));
        assert!(!t.ack(b));
        assert_eq!(t.position(), 0, "line a is not acked yet");
        assert!(t.ack(a));
        assert_eq!(t.position(), 14);
    }

    #[test]
    fn truncation_resets_position() {
        let mut t = AckTracker::new(0);
        let old = t.sent(100);
        t.truncated();
        let new = t.sent(7);
        t.ack(old);
        assert_eq!(
            t.position(),
            0,
            "old content acks must not point past new content"
        );
        t.ack(new);
        assert_eq!(t.position(), 7);
    }

    #[test]
    fn widen_round_trips_across_the_mask() {
        let mut t = AckTracker::new(0);
        t.base = SEQ_MASK - 2;
        let s = t.sent(1);
        let s2 = t.sent(2);
        let s3 = t.sent(3);
        let s4 = t.sent(4);
        for s in [s, s2, s3, s4] {
            assert_eq!(t.widen(s & SEQ_MASK), s);
        }
    }

    #[test]
    fn oldest_unacked_follows_the_window_front() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(1);
        let mut t = AckTracker::new(0);
        assert_eq!(t.oldest_unacked(), None);
        t.mark_read(t0);
        let a = t.sent(5);
        let b = t.sent(9);
        t.mark_read(t1);
        let c = t.sent(14);
        assert_eq!(t.oldest_unacked(), Some(t0));
        t.ack(b);
        assert_eq!(t.oldest_unacked(), Some(t0), "a is still waiting");
        t.ack(a);
        assert_eq!(t.oldest_unacked(), Some(t1), "c was read later");
        t.ack(c);
        assert_eq!(t.oldest_unacked(), None);
        // A read that sent nothing does not age the next line.
        t.mark_read(t0);
        t.mark_read(t1);
        t.sent(20);
        assert_eq!(t.oldest_unacked(), Some(t1));
    }

    proptest! {
        /// Whatever the ack order, the position is the end of the longest
        /// acknowledged prefix.
        #[test]
        fn position_is_longest_acked_prefix(n in 1usize..60, order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..80)) {
            let mut t = AckTracker::new(0);
            let ends: Vec<u64> = (1..=n as u64).map(|i| i * 10).collect();
            let seqs: Vec<u64> = ends.iter().map(|&e| t.sent(e)).collect();
            let mut acked = vec![false; n];
            for ix in order {
                let i = ix.index(n);
                acked[i] = true;
                t.ack(seqs[i]);
                let prefix = acked.iter().take_while(|a| **a).count();
                let expect = if prefix == 0 { 0 } else { ends[prefix - 1] };
                prop_assert_eq!(t.position(), expect);
            }
        }
    }
}
