//! One followed file generation, as the [`Tailer`](super::Tailer) keeps it.

use std::time::{Instant, SystemTime};

use crate::acks::AckTracker;
use crate::checkpoint::FileCheckpoint;
use crate::follow::FileWatcher;
use crate::identity::{Anchor, FileId, Fingerprint, GenerationId, FINGERPRINT_WINDOW};
use crate::multiline::MultilineJoiner;

/// Everything logferry knows about one file being followed.
pub(crate) struct Stream {
    pub(crate) input: usize,
    /// Unique per stream opened (slots are reused): lets a consumer of
    /// lines tell a new stream in a reused slot from the old one.
    pub(crate) serial: u64,
    /// The life of the file being read: what records carry.
    pub(crate) generation: GenerationId,
    pub(crate) id: FileId,
    /// None once the file was drained and closed; the stream lives on
    /// until its last in-flight line is acknowledged.
    pub(crate) watcher: Option<FileWatcher>,
    pub(crate) tracker: AckTracker,
    pub(crate) fingerprint: Fingerprint,
    /// Content proof at (or before) the acknowledged position, refreshed at
    /// each checkpoint.
    pub(crate) anchor: Anchor,
    /// How far into the file logferry has seen (read, or learnt its size):
    /// what is past the acknowledged position is known to exist.
    pub(crate) size_seen: u64,
    /// The file's size at the latest scan (or open), for lag reporting
    /// only: it can lag the file by a scan period, and is not a promise
    /// the way `size_seen` is.
    pub(crate) stat_size: u64,
    /// Where the file was opened: the path lines are attributed to.
    pub(crate) opened_path: String,
    /// Where it was last seen.
    pub(crate) path: String,
    /// Found under a matching name by the latest scan. A stream that is not
    /// was rotated away or deleted: it is drained, then closed.
    pub(crate) present: bool,
    /// Modification time when opened: the order in which rotated files
    /// are drained.
    pub(crate) modified: SystemTime,
    /// Closed to stay within `max_open_files` while idle (holding the read
    /// position); reopened by identity when it grows. Distinct from a
    /// drained stream, whose watcher is gone for good.
    pub(crate) parked: Option<u64>,
    /// While closed (parked, or drained): the anchor of where reading had
    /// got to, and (parked) the trail.
    pub(crate) parked_proof: Option<(Anchor, Vec<Anchor>)>,
    /// The file's birth time, where known (see `FileCheckpoint::born`).
    pub(crate) born: Option<u64>,
    /// Proof of the bytes seen past the acknowledged position (see
    /// `FileCheckpoint::seen`).
    pub(crate) seen: Option<Anchor>,
    /// The latest scan saw the file's size differ from the read position:
    /// read it even though it is not hot.
    pub(crate) wake: bool,
    /// Joins continuation lines when the input is multiline.
    pub(crate) joiner: Option<Box<MultilineJoiner>>,
    /// When a read last returned data. Files active within `HOT` are
    /// polled every round; colder ones only when a scan wakes them, which
    /// keeps the cost of thousands of idle files at one stat per scan.
    pub(crate) last_data: Instant,
    /// Length of the head fingerprint in the last checkpoint written with
    /// this generation in it. Write-ahead: no line is handed out while the
    /// head would prove more than that, so a crash can never leave a
    /// shipped generation unknown to the checkpoint (its file, renamed and
    /// compressed while logferry is down, is then found by content).
    pub(crate) durable_head: u64,
    /// The head length in the checkpoint entries being written now.
    pub(crate) saving_head: u64,
}

impl Stream {
    /// This stream's saved state (the anchor as last refreshed).
    pub(crate) fn checkpoint(&self, now: u64) -> FileCheckpoint {
        let read = self
            .watcher
            .as_ref()
            .map(FileWatcher::read_position)
            .or(self.parked)
            .unwrap_or(0);
        FileCheckpoint {
            generation: self.generation,
            id: self.id,
            fingerprint: self.fingerprint,
            anchor: self.anchor,
            position: self.tracker.position(),
            size: self.size_seen.max(read),
            path: self.path.clone(),
            updated: now,
            born: self.born,
            unfinished: false,
            seen: self.seen,
            // Drained: closed for good after reading to the end.
            read_to_end: self.watcher.is_none() && self.parked.is_none(),
        }
    }

    /// Whether this generation's head is in a written checkpoint, as far as
    /// the file holds one now (widened first): lines may be handed out.
    pub(crate) fn head_is_durable(&mut self) -> bool {
        self.widen_head();
        self.fingerprint.len <= self.durable_head
    }

    /// Widen a head fingerprint shorter than the window to what the file
    /// holds now (it grew past what was read), so the saved state proves
    /// more than "an empty file": a generation saved at offset 0 with an
    /// empty head would be taken for any file at all on its inode, and its
    /// unread lines (in a copy or a `.gz`) never looked for. Only while the
    /// bytes already read are still there.
    pub(crate) fn widen_head(&mut self) {
        if self.fingerprint.len >= FINGERPRINT_WINDOW {
            return;
        }
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        // A compressed file's head is decompressed again from its start:
        // only while reading is still near it.
        if w.is_compressed() && w.read_position() > FINGERPRINT_WINDOW {
            return;
        }
        let Ok(now) = w.head(FINGERPRINT_WINDOW) else {
            return;
        };
        if now.len > self.fingerprint.len
            && w.head(self.fingerprint.len).ok() == Some(self.fingerprint)
        {
            self.fingerprint = now;
            self.size_seen = self.size_seen.max(now.len);
        }
    }

    /// Keep a proof of what the file holds past the acknowledged position
    /// (one read, only while there is such a part): if the file is renamed
    /// and compressed before logferry reads it, that part is found again by
    /// it (see `FileCheckpoint::seen`).
    pub(crate) fn note_seen(&mut self) {
        let position = self.tracker.position();
        let Some(w) = self.watcher.as_mut().filter(|w| !w.is_compressed()) else {
            return;
        };
        let Ok(size) = w.size() else {
            return;
        };
        if size <= position || self.seen.is_some_and(|s| s.at == size) {
            return;
        }
        if let Some(a) = w.anchor_at(size) {
            self.seen = Some(a);
            self.size_seen = self.size_seen.max(size);
        }
    }

    /// Move the anchor to the acknowledged position, where the file still
    /// holds it (one read at most; none when the position is where reading
    /// stopped).
    pub(crate) fn refresh_anchor(&mut self) {
        let position = self.tracker.position();
        if let Some(w) = self.watcher.as_mut() {
            // Where reading got to proves at least as much as the
            // acknowledged position (those bytes were read from this very
            // file), from the bytes kept in memory: no read of the file.
            // With 10,000 files, reading an anchor for each at every
            // checkpoint cost a fifth of the CPU.
            if let Some(at) = w.last_read_at() {
                if at >= position {
                    if self.anchor.at != at {
                        if let Some(a) = w.anchor_at(at) {
                            self.anchor = a;
                        }
                    }
                    return;
                }
            }
            if self.anchor.at != position {
                if let Some(a) = w.anchor_at(position) {
                    self.anchor = a;
                }
            }
        } else if let Some((a, _)) = &self.parked_proof {
            // Closed (under the budget, or drained): the proof kept when it
            // was closed.
            if a.at >= position {
                self.anchor = *a;
            }
        }
    }

    /// Whether time alone completes something here: an open multiline
    /// record (its timeout), or an unterminated line under `partial_flush`.
    pub(crate) fn waits_for_time(&self, partial_flush: bool) -> bool {
        self.joiner.as_ref().is_some_and(|j| j.is_open())
            || (partial_flush && self.watcher.as_ref().is_some_and(|w| w.pending_bytes() > 0))
    }

    /// The file is open with no half-read line or record: closing it loses
    /// nothing.
    pub(crate) fn at_rest(&self) -> bool {
        self.watcher
            .as_ref()
            .is_some_and(|w| w.pending_bytes() == 0)
            && !self.joiner.as_ref().is_some_and(|j| j.is_open())
    }
}
