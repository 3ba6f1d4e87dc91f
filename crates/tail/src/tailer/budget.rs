//! The open-file budget: idle files are closed (parked) so that at most
//! `max_open_files` descriptors are held, and reopened by identity when
//! they grow.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{now_unix, Tailer};
use crate::checkpoint::FileCheckpoint;
use crate::follow::{open_log, FileWatcher};
use crate::identity::{Anchor, FileId, Fingerprint, GenerationId};

impl Tailer {
    /// Close a stream's file to free a descriptor, keeping its state.
    pub(super) fn park(&mut self, slot: usize) {
        let Some(s) = self.streams[slot].as_mut() else {
            return;
        };
        if let Some(mut w) = s.watcher.take() {
            let at = w.read_position();
            // What proves the content read so far, in case the file is cut
            // while closed: its copy is then recognised by it.
            s.parked_proof = Some((w.anchor_at(at).unwrap_or(s.anchor), w.take_cut_trail()));
            s.parked = Some(at);
            self.open_files -= 1;
        }
    }

    /// Reopen a parked stream by identity. False if the file behind its
    /// path is no longer that identity (the next scan finds it elsewhere).
    pub(super) fn unpark(&mut self, slot: usize, path: &Path) -> bool {
        let Some(s) = self.streams[slot].as_mut() else {
            return false;
        };
        let Some(position) = s.parked else {
            return false;
        };
        let Ok(file) = open_log(path) else {
            return false;
        };
        if file.metadata().map(|m| FileId::of(&m)).ok() != Some(s.id) {
            return false;
        }
        let (anchor, trail) = s.parked_proof.take().unwrap_or((s.anchor, Vec::new()));
        // Cut while closed (shorter now, or other bytes where ours were): the
        // content read so far continues in its copy, if there is one, as
        // when a cut is seen while reading; this file is a new generation.
        // Or another file on the same inode (deleted and reused while
        // closed): a different birth time says so.
        let born = file
            .metadata()
            .ok()
            .as_ref()
            .and_then(crate::checkpoint::born_of);
        let same = Fingerprint::read(&file, s.fingerprint.len).ok() == Some(s.fingerprint)
            && anchor.matches(&mut &file).unwrap_or(false)
            && !matches!((s.born, born), (Some(was), Some(now)) if was != now);
        let start = if same { position } else { 0 };
        match FileWatcher::new(path, file, start, &self.framers[s.input]) {
            Ok(w) => {
                if !same {
                    let old = s.generation;
                    self.cut_in_flight.extend(super::CutInFlight::of(slot, s));
                    self.ledger.unfinish_with_trail(
                        FileCheckpoint {
                            generation: old,
                            id: s.id,
                            fingerprint: s.fingerprint,
                            anchor,
                            position,
                            size: s.size_seen.max(position),
                            path: s.path.clone(),
                            updated: now_unix(),
                            born: s.born,
                            unfinished: false,
                            seen: s.seen.take(),
                            read_to_end: s.size_seen <= position,
                        },
                        trail,
                    );
                    s.generation = GenerationId::new();
                    s.born = born;
                    s.size_seen = 0;
                    s.anchor = Anchor::default();
                    s.fingerprint = w.fingerprint();
                    s.tracker.truncated();
                    self.cut_seen = true;
                    tracing::warn!(path = %path.display(), offset = position, was = %old, generation = %s.generation, "file cut while closed: a new generation, read from offset 0; the old one continues in its copy if there is one");
                }
                s.watcher = Some(w);
                s.parked = None;
                self.open_files += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Keep at most `max_open_files` open: park idle files (least recently
    /// active first) so that parked files with new data can be reopened.
    pub(super) fn rebalance_open_files(&mut self) {
        let budget = self.settings.max_open_files;
        let waiting: Vec<usize> = (0..self.streams.len())
            .filter(|&i| matches!(&self.streams[i], Some(s) if s.parked.is_some() && s.wake))
            .collect();
        let free = budget.saturating_sub(self.open_files);
        let need = waiting.len().saturating_sub(free);
        if need > 0 {
            let mut idle: Vec<(Instant, usize)> = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    let w = s.watcher.as_ref()?;
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
            if self.open_files >= budget {
                break;
            }
            let path = PathBuf::from(&self.streams[slot].as_ref().expect("listed above").path);
            self.unpark(slot, &path);
        }
    }
}
