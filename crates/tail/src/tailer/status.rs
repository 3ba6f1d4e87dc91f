//! What the [`Tailer`] shows of itself to metrics and status: read-only
//! views of the followed files and a few counters. Computed on request (a
//! few times a second at most), never per line.

use std::time::Instant;

use super::Tailer;
use crate::identity::GenerationId;

/// One followed file generation as it stands now.
#[derive(Debug, Clone, Copy)]
pub struct FileStatus<'a> {
    pub input: usize,
    pub path: &'a str,
    pub generation: GenerationId,
    /// The file's size as last seen (the latest scan, or what was read if
    /// that is further): writes since the last scan show at the next one.
    pub size: u64,
    /// End of the longest acknowledged prefix: what a checkpoint saves.
    pub acked: u64,
    /// How far reading got.
    pub read: u64,
    /// A descriptor is held (not parked under the open-file budget, not
    /// drained and closed).
    pub open: bool,
    /// When the oldest line read and not yet acknowledged was read.
    pub oldest_unacked: Option<Instant>,
}

impl FileStatus<'_> {
    /// Bytes in the file past the acknowledged position.
    pub fn lag(&self) -> u64 {
        self.size.saturating_sub(self.acked)
    }

    /// Bytes in the file not read yet.
    pub fn unread(&self) -> u64 {
        self.size.saturating_sub(self.read)
    }
}

/// Events of one input, counted as they happen (an integer add each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCounters {
    /// Files that left their name (rotated away or deleted), read to the
    /// end and closed.
    pub rotations: u64,
    /// Files found cut in place (copytruncate, or rewritten).
    pub truncations: u64,
}

impl Tailer {
    /// Every generation being followed (open, parked, or drained and
    /// waiting for its last acknowledgements).
    pub fn files(&self) -> impl Iterator<Item = FileStatus<'_>> {
        self.streams.iter().flatten().map(|s| {
            let read = s.read_at().unwrap_or(s.size_seen);
            FileStatus {
                input: s.input,
                path: &s.path,
                generation: s.generation,
                size: s.stat_size.max(s.size_seen).max(read),
                acked: s.tracker.position(),
                read,
                open: s.watcher().is_some(),
                oldest_unacked: s.tracker.oldest_unacked(),
            }
        })
    }

    /// Per input, its counters since start.
    pub fn counters(&self) -> &[TailCounters] {
        &self.counters
    }

    /// How many inputs there are.
    pub fn inputs(&self) -> usize {
        self.settings.inputs.len()
    }
}
