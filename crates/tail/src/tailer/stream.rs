//! One followed file generation, as the [`Tailer`](super::Tailer) keeps it,
//! and its life as one state machine.
//!
//! # A stream's life
//!
//! | from | event | to | descriptor |
//! |---|---|---|---|
//! | (found) | opened by identity | `Open` | opened |
//! | `Open` | idle, and the budget needs its descriptor | `Parked` | closed |
//! | `Parked` | grew, or rotated away with bytes unread | `Open` | opened |
//! | `Open` | rotated away or deleted, read to its end, idle past the grace | `Drained` | closed |
//! | `Open` | a read failed | `Failed` | closed |
//! | `Drained`, `Failed`, settled `Parked` | every line acknowledged | (retired: resting or unfinished in the ledger) | |
//!
//! Only [`Stream::park`], [`Stream::reopen`], [`Stream::drained`] and
//! [`Stream::failed`] close or open a descriptor, and each tells the
//! [`Descriptors`] budget and the [`EventLog`]: nowhere else counts them.
//! Generations not being read (resting, unfinished) are the ledger's.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::budget::Descriptors;
use super::event::{EventLog, TailEvent};
use crate::acks::AckTracker;
use crate::checkpoint::FileCheckpoint;
use crate::follow::FileWatcher;
use crate::identity::{Anchor, FileId, Fingerprint, GenerationId, FINGERPRINT_WINDOW};
use crate::multiline::MultilineJoiner;

/// Where a stream is in its life (see the module doc's table).
pub(crate) enum Life {
    /// Its file is open and read. Boxed: inline, its 300 bytes were kept by
    /// every parked stream too, and with 200,000 files followed and 16,384
    /// open most streams are parked.
    Open(Box<FileWatcher>),
    /// Closed to stay within `max_open_files` while idle, holding the read
    /// position; reopened by identity when it grows.
    Parked {
        /// Where reading had got to.
        at: u64,
        /// What proves the content read so far, in case the file is cut
        /// while closed: its copy is then recognised by it.
        proof: Anchor,
        trail: Vec<Anchor>,
    },
    /// Read to its end after it left its name, and closed for good; the
    /// stream lives on until its last lines are acknowledged.
    Drained {
        /// The content read, for the checkpoint.
        proof: Option<Anchor>,
    },
    /// A read failed and the file was closed; the next scan finds it again
    /// once the stream is let go.
    Failed,
}

/// Everything logferry knows about one file being followed.
pub(crate) struct Stream {
    pub(crate) input: usize,
    /// Unique per stream opened (slots are reused): lets a consumer of
    /// lines tell a new stream in a reused slot from the old one.
    pub(crate) serial: u64,
    /// The life of the file being read: what records carry.
    pub(crate) generation: GenerationId,
    pub(crate) id: FileId,
    /// Open, parked, drained or failed: the one place the stream's stage
    /// is kept.
    pub(crate) life: Life,
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
    /// Shared with `path` until the file is seen elsewhere (one copy per
    /// followed file, not two).
    pub(crate) opened_path: Arc<str>,
    /// Where it was last seen.
    pub(crate) path: Arc<str>,
    /// Found under a matching name by the latest scan. A stream that is not
    /// was rotated away or deleted: it is drained, then closed.
    pub(crate) present: bool,
    /// Modification time when opened: the order in which rotated files
    /// are drained.
    pub(crate) modified: SystemTime,
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
    /// this generation in it. Write-ahead: no line is handed out before a
    /// checkpoint holds the generation with a head (0 means none yet), so
    /// a crash can never leave a shipped generation unknown to the
    /// checkpoint (its file, renamed and compressed while logferry is down,
    /// is then found by content).
    pub(crate) durable_head: u64,
    /// The head length in the checkpoint entries being written now.
    pub(crate) saving_head: u64,
}

impl Stream {
    /// The open file, if it is open.
    pub(crate) fn watcher(&self) -> Option<&FileWatcher> {
        match &self.life {
            Life::Open(w) => Some(w),
            _ => None,
        }
    }

    pub(crate) fn watcher_mut(&mut self) -> Option<&mut FileWatcher> {
        match &mut self.life {
            Life::Open(w) => Some(w),
            _ => None,
        }
    }

    /// Where reading had got to, while parked.
    pub(crate) fn parked_at(&self) -> Option<u64> {
        match self.life {
            Life::Parked { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Closed for good (drained, or failed): nothing more is read.
    pub(crate) fn is_closed_for_good(&self) -> bool {
        matches!(self.life, Life::Drained { .. } | Life::Failed)
    }

    /// How far reading got, while open or parked.
    pub(crate) fn read_at(&self) -> Option<u64> {
        match &self.life {
            Life::Open(w) => Some(w.read_position()),
            Life::Parked { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// The proof kept when the file was closed (parked or drained).
    pub(crate) fn closed_proof(&self) -> Option<Anchor> {
        match &self.life {
            Life::Parked { proof, .. } => Some(*proof),
            Life::Drained { proof } => *proof,
            _ => None,
        }
    }

    /// Open -> Parked: close the file to free a descriptor, keeping where
    /// reading got to and what proves it.
    pub(crate) fn park(&mut self, fds: &mut Descriptors, log: &mut EventLog) {
        let Life::Open(w) = &mut self.life else {
            return;
        };
        let at = w.read_position();
        let proof = w.anchor_at(at).unwrap_or(self.anchor);
        let mut trail = w.take_cut_trail();
        // Kept while closed, by every parked file: no spare room.
        trail.shrink_to_fit();
        self.life = Life::Parked { at, proof, trail };
        fds.closed();
        log.push(TailEvent::Parked {
            generation: self.generation,
            at,
        });
    }

    /// Parked -> Open, on `w` (the same identity, checked by the caller).
    /// Returns the proof and trail kept while closed.
    pub(crate) fn reopen(
        &mut self,
        w: FileWatcher,
        fds: &mut Descriptors,
        log: &mut EventLog,
    ) -> Option<(Anchor, Vec<Anchor>)> {
        let Life::Parked { proof, trail, .. } =
            std::mem::replace(&mut self.life, Life::Open(Box::new(w)))
        else {
            return None;
        };
        fds.opened();
        log.push(TailEvent::Reopened {
            generation: self.generation,
        });
        Some((proof, trail))
    }

    /// Open -> Drained: read to its end after it left its name.
    pub(crate) fn drained(&mut self, fds: &mut Descriptors, log: &mut EventLog) {
        let Life::Open(w) = &mut self.life else {
            return;
        };
        let at = w.read_position();
        let proof = w.anchor_at(at);
        self.life = Life::Drained { proof };
        fds.closed();
        log.push(TailEvent::Drained {
            generation: self.generation,
            at,
        });
    }

    /// Open -> Failed: a read failed; the file is closed.
    pub(crate) fn failed(&mut self, fds: &mut Descriptors, log: &mut EventLog) {
        if !matches!(self.life, Life::Open(_)) {
            return;
        }
        self.life = Life::Failed;
        fds.closed();
        log.push(TailEvent::Failed {
            generation: self.generation,
        });
    }

    /// This stream's saved state (the anchor as last refreshed).
    pub(crate) fn checkpoint(&self, now: u64) -> FileCheckpoint {
        let read = self.read_at().unwrap_or(0);
        FileCheckpoint {
            generation: self.generation,
            id: self.id,
            fingerprint: self.fingerprint,
            anchor: self.anchor,
            position: self.tracker.position(),
            size: self.size_seen.max(read),
            path: self.path.to_string(),
            updated: now,
            born: self.born,
            unfinished: false,
            seen: self.seen,
            // Drained: closed for good after reading to the end.
            read_to_end: matches!(self.life, Life::Drained { .. }),
        }
    }

    /// Whether this generation is in a written checkpoint with some of its
    /// head (widened first, to what the file holds now): lines may be
    /// handed out. Once known by a head, later widenings of it ride on the
    /// regular checkpoints: the generation is found by that head and the
    /// anchor at its acknowledged position, and with 10,000 files growing
    /// a line at a time, a write per widening cost a checkpoint every few
    /// milliseconds.
    pub(crate) fn head_is_durable(&mut self) -> bool {
        if self.durable_head > 0 {
            return true;
        }
        self.widen_head();
        self.fingerprint.len == 0
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
        let Life::Open(w) = &mut self.life else {
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
            // The watcher compares it too: a cut before it reads that far
            // (to 0, and rewritten) is then seen.
            w.know_head(now);
        }
    }

    /// Keep a proof of what the file holds past the acknowledged position
    /// (one read, only while there is such a part): if the file is renamed
    /// and compressed before logferry reads it, that part is found again by
    /// it (see `FileCheckpoint::seen`).
    pub(crate) fn note_seen(&mut self) {
        let position = self.tracker.position();
        let Life::Open(w) = &mut self.life else {
            return;
        };
        if w.is_compressed() {
            return;
        }
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
        let closed = self.closed_proof();
        if let Life::Open(w) = &mut self.life {
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
        } else if let Some(a) = closed {
            // Closed (under the budget, or drained): the proof kept when it
            // was closed.
            if a.at >= position {
                self.anchor = a;
            }
        }
    }

    /// Whether time alone completes something here: an open multiline
    /// record (its timeout), or an unterminated line under `partial_flush`.
    pub(crate) fn waits_for_time(&self, partial_flush: bool) -> bool {
        self.joiner.as_ref().is_some_and(|j| j.is_open())
            || (partial_flush && self.watcher().is_some_and(|w| w.pending_bytes() > 0))
    }

    /// The file is open with no half-read line or record: closing it loses
    /// nothing.
    pub(crate) fn at_rest(&self) -> bool {
        self.watcher().is_some_and(|w| w.pending_bytes() == 0)
            && !self.joiner.as_ref().is_some_and(|j| j.is_open())
    }
}

#[cfg(test)]
mod size {
    /// A followed file costs its stream and little else: with 200,000
    /// files, every byte here is 200 kB. The open file's state (300 bytes)
    /// is boxed, so the 90 % of streams that are parked do not carry it.
    #[test]
    fn a_stream_stays_small_and_a_parked_one_does_not_carry_the_open_file() {
        use std::mem::size_of;
        assert!(
            size_of::<super::Life>() <= 64,
            "Life: {}",
            size_of::<super::Life>()
        );
        assert!(
            size_of::<super::Stream>() <= 400,
            "Stream: {}",
            size_of::<super::Stream>()
        );
    }
}
