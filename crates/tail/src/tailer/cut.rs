//! Cuts with lines in flight: a file cut in place (copytruncate) while
//! lines of its old content are not acknowledged yet. Until they are, the
//! checkpoint keeps the old generation at the end of their acknowledged
//! prefix, so a crash before the acks reads them again from the copy.

use super::stream::Stream;
use super::Tailer;
use crate::acks::AckTracker;
use crate::checkpoint::FileCheckpoint;
use crate::identity::GenerationId;

/// One cut with old lines in flight (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct CutInFlight {
    slot: usize,
    serial: u64,
    /// Sequence number of the first old line in flight at the cut.
    first_seq: u64,
    /// Their end offsets, in order: the position once a prefix of them is
    /// acknowledged.
    ends: Vec<u64>,
    generation: GenerationId,
    acked: u64,
}

impl CutInFlight {
    /// The stream in `slot` is being cut (before its tracker forgets the
    /// old content): what to hold back, if lines of it are in flight.
    pub(crate) fn of(slot: usize, s: &Stream) -> Option<CutInFlight> {
        Self::of_parts(slot, s.serial, s.generation, &s.tracker)
    }

    /// [`CutInFlight::of`], from a stream's parts.
    pub(crate) fn of_parts(
        slot: usize,
        serial: u64,
        generation: GenerationId,
        tracker: &AckTracker,
    ) -> Option<CutInFlight> {
        (tracker.in_flight() > 0).then(|| CutInFlight {
            slot,
            serial,
            first_seq: tracker.first_unacked(),
            ends: tracker.in_flight_ends(),
            generation,
            acked: tracker.position(),
        })
    }
}

impl Tailer {
    /// Entries of cut generations whose last lines are not all acknowledged
    /// yet say the position acknowledged at the cut.
    pub(super) fn hold_back_cut_in_flight(&mut self, entries: &mut [FileCheckpoint]) {
        let streams = &self.streams;
        let mut held = Vec::new();
        self.cut_in_flight.retain(|c| {
            let Some(s) = streams[c.slot].as_ref().filter(|s| s.serial == c.serial) else {
                return false; // Let go: every line was acknowledged.
            };
            let until = c.first_seq + c.ends.len() as u64;
            if s.tracker.acked_before(until) {
                return false;
            }
            // The old lines acknowledged as a prefix move it on.
            let done = s.tracker.first_unacked().saturating_sub(c.first_seq) as usize;
            let at = if done == 0 { c.acked } else { c.ends[done - 1] };
            held.push((c.generation, at));
            true
        });
        for (generation, at) in held {
            for e in entries.iter_mut().filter(|e| e.generation == generation) {
                e.position = e.position.min(at);
            }
        }
    }
}
