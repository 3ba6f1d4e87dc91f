//! The open-file budget: idle files are closed (parked) so that at most
//! `max_open_files` descriptors are held, and reopened by identity when
//! they grow. [`Descriptors`] counts them; only a stream's transitions
//! (`stream.rs`) move the count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::event::TailEvent;
use super::stream::Life;
use super::{now_unix, Tailer};
use crate::checkpoint::FileCheckpoint;
use crate::follow::{open_log, FileWatcher};
use crate::identify::{still_the_parked_file, Glance};
use crate::identity::{Anchor, FileId, GenerationId};

/// How many descriptors the streams hold, against the budget.
#[derive(Debug)]
pub(crate) struct Descriptors {
    open: usize,
    max: usize,
}

impl Descriptors {
    pub(crate) fn new(max: usize) -> Self {
        Descriptors { open: 0, max }
    }

    pub(crate) fn opened(&mut self) {
        self.open += 1;
    }

    pub(crate) fn closed(&mut self) {
        self.open -= 1;
    }

    /// More are open than the budget allows.
    pub(crate) fn over(&self) -> bool {
        self.open > self.max
    }

    /// No descriptor is free.
    pub(crate) fn full(&self) -> bool {
        self.open >= self.max
    }

    /// At most one is free: a file opened for one read closes after it.
    pub(crate) fn tight(&self) -> bool {
        self.open > self.max.saturating_sub(1)
    }

    pub(crate) fn free(&self) -> usize {
        self.max.saturating_sub(self.open)
    }
}

impl Tailer {
    /// Close a stream's file to free a descriptor, keeping its state.
    pub(super) fn park(&mut self, slot: usize) {
        if let Some(s) = self.streams[slot].as_mut() {
            s.park(&mut self.descriptors, &mut self.events);
        }
    }

    /// Reopen a parked stream by identity. False if the file behind its
    /// path is no longer that identity (the next scan finds it elsewhere).
    pub(super) fn unpark(&mut self, slot: usize, path: &Path) -> bool {
        let Some(s) = self.streams[slot].as_mut() else {
            return false;
        };
        let Some(position) = s.parked_at() else {
            return false;
        };
        let Ok(file) = open_log(path) else {
            return false;
        };
        // One `statx` and one look at the content serve the identity, the
        // checks and the watcher (docs/BENCHMARKS.md, 200,000 files).
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if FileId::of(&meta) != s.id {
            return false;
        }
        let Life::Parked { proof: anchor, .. } = &s.life else {
            return false;
        };
        // Cut while closed (shorter now, or other bytes where ours were), or
        // another file on the same inode (deleted and reused while closed):
        // the content read so far continues in its copy, if there is one,
        // as when a cut is seen while reading; this file is a new
        // generation.
        let glance = Glance::read(&file, meta.len(), position).ok().flatten();
        let same = glance
            .as_ref()
            .is_some_and(|g| still_the_parked_file(s.fingerprint, anchor, s.born, &file, &meta, g));
        let born = crate::checkpoint::born_of(&meta);
        let w = match glance {
            Some(g) if same && position > 0 => Ok(FileWatcher::reopened(
                path,
                file,
                s.id,
                position,
                &g,
                &self.framers[s.input],
            )),
            _ => FileWatcher::new(
                path,
                file,
                if same { position } else { 0 },
                &self.framers[s.input],
            ),
        };
        let Ok(w) = w else {
            return false;
        };
        let hold_if_cut = super::CutInFlight::of(slot, s);
        let Some((anchor, trail)) = s.reopen(w, &mut self.descriptors, &mut self.events) else {
            return false;
        };
        if !same {
            let old = s.generation;
            self.cut_in_flight.extend(hold_if_cut);
            self.ledger.unfinish_with_trail(
                FileCheckpoint {
                    anchor,
                    position,
                    size: s.size_seen.max(position),
                    read_to_end: s.size_seen <= position,
                    updated: now_unix(),
                    unfinished: false,
                    seen: s.seen.take(),
                    ..s.checkpoint(now_unix())
                },
                trail,
            );
            s.generation = GenerationId::new();
            s.born = born;
            s.size_seen = 0;
            s.anchor = Anchor::default();
            s.fingerprint = s
                .watcher()
                .map(FileWatcher::fingerprint)
                .unwrap_or_default();
            s.tracker.truncated();
            self.cut_seen = true;
            self.events.push(TailEvent::Cut {
                old,
                new: s.generation,
                at: position,
            });
            tracing::warn!(path = %path.display(), offset = position, was = %old, generation = %s.generation, "file cut while closed: a new generation, read from offset 0; the old one continues in its copy if there is one");
        }
        true
    }

    /// Keep at most `max_open_files` open: park idle files (least recently
    /// active first) so that parked files with new data can be reopened.
    pub(super) fn rebalance_open_files(&mut self) {
        let waiting: Vec<usize> = (0..self.streams.len())
            .filter(|&i| matches!(&self.streams[i], Some(s) if s.parked_at().is_some() && s.wake))
            .collect();
        let need = waiting.len().saturating_sub(self.descriptors.free());
        if need > 0 {
            let mut idle: Vec<(Instant, usize)> = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    let w = s.watcher()?;
                    // At EOF with nothing half-read: closing it loses
                    // nothing, and the least recently active go first. Busy
                    // files are not exempt, or thousands of files writing
                    // a line a second would starve the ones waiting.
                    let parkable = s.present
                        && !s.wake
                        && w.pending_bytes() == 0
                        && !s.joiner.as_ref().is_some_and(|j| j.is_open());
                    parkable.then_some((s.last_data, i))
                })
                .collect();
            idle.sort_unstable();
            for (_, slot) in idle.into_iter().take(need) {
                self.park(slot);
            }
        }
        for slot in waiting {
            if self.descriptors.full() {
                break;
            }
            let path = PathBuf::from(&*self.streams[slot].as_ref().expect("listed above").path);
            self.unpark(slot, &path);
        }
    }
}
