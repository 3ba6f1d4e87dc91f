//! Backfill progress: the rotated files an input ships because `backfill`
//! is on (history otherwise), and how far reading them got, in bytes on
//! disk (compressed bytes for a compressed file: its decoded length is not
//! known before it is read).

use std::collections::HashMap;

use super::Tailer;
use crate::identity::FileId;

/// Where backfill stands: what [`Tailer::backfill_progress`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    /// Bytes on disk of the files being backfilled.
    pub total: u64,
    /// Of those, read.
    pub done: u64,
    pub files: usize,
    pub files_done: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Identity -> bytes on disk when found; the read part is learnt from
    /// the stream, and all of it once the stream is gone.
    files: HashMap<FileId, u64>,
}

impl Progress {
    pub(crate) fn add(&mut self, id: FileId, size: u64) {
        self.files.entry(id).or_insert(size);
    }
}

impl Tailer {
    /// None until some file is backfilled.
    pub fn backfill_progress(&self) -> Option<BackfillProgress> {
        if self.backfill.files.is_empty() {
            return None;
        }
        let mut p = BackfillProgress::default();
        for (id, &size) in &self.backfill.files {
            p.files += 1;
            p.total += size;
            let stream = self
                .by_id
                .get(id)
                .and_then(|&slot| self.streams[slot].as_deref());
            // A decoder reads ahead of what it decoded: a file counts as
            // done once its stream is, not when its bytes were taken in.
            let (read, done) = match stream {
                Some(s) if s.is_closed_for_good() => (size, true),
                Some(s) => (
                    s.watcher().map_or(0, |w| w.disk_position().min(size)),
                    false,
                ),
                None => (size, true),
            };
            p.done += read;
            p.files_done += usize::from(done);
        }
        Some(p)
    }
}
