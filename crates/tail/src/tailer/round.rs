//! One read round: every file with data is read once (rotated-away files
//! first, oldest first), and complete lines go to the [`LineSink`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::event::TailEvent;
use super::stream::{Life, Stream};
use super::{now_unix, LineSink, StreamInfo, Tailer, HOT};
use crate::acks::AckTracker;
use crate::checkpoint::FileCheckpoint;
use crate::follow::{FileWatcher, Poll};
use crate::frame::Line;
use crate::identity::{Anchor, GenerationId};

impl Tailer {
    /// Read one buffer from every open file that has data, handing complete
    /// lines to `sink`; returns the bytes read. Files rotated away are served
    /// first so that their last lines go out before the new file's first ones.
    pub fn read_round<S: LineSink>(&mut self, buf: &mut [u8], sink: &mut S) -> usize {
        let mut total = 0;
        // Files no longer under a current name go first, oldest first, and
        // only one of them per input and round: an input's files are then
        // shipped in the order they were written, and its current file
        // waits until the rotated ones are drained.
        if self.absent_stale {
            self.absent = (0..self.streams.len())
                .filter(|&slot| matches!(&self.streams[slot], Some(s) if !s.present))
                .collect();
            self.absent_stale = false;
        }
        let mut rotated: Vec<(std::time::SystemTime, usize)> = self
            .absent
            .iter()
            .filter_map(|&slot| {
                let s = self.streams[slot].as_ref()?;
                // A file parked under the budget and then rotated away is
                // reopened under its rotated name to be drained.
                let drainable = s.watcher().is_some() || (s.parked_at().is_some() && s.wake);
                (!s.present && drainable).then_some((s.modified, slot))
            })
            .collect();
        rotated.sort_unstable();
        let mut draining = vec![false; self.settings.inputs.len()];
        // With notifications on, a write wakes its file, so only woken
        // files are read; without, recently active files are polled.
        let hot = if self.notices.active() {
            Duration::ZERO
        } else {
            HOT
        };
        // Parked (closed under the open-file budget) current files that
        // grew are read too: opened for the read and closed again, so that
        // thousands of busy files share the budget without waiting turns.
        let inputs = &self.settings.inputs;
        let waits = |s: &Stream| s.waits_for_time(inputs[s.input].partial_flush.is_some());
        let due = |s: &Stream| {
            s.present
                && ((s.watcher().is_some() && (s.wake || s.last_data.elapsed() < hot || waits(s)))
                    || (s.parked_at().is_some() && s.wake))
        };
        let indexed = self.notices.active();
        let current: Vec<usize> = if indexed {
            if self.ready_stale {
                self.ready = (0..self.streams.len()).collect();
                self.ready_stale = false;
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.sort_unstable();
            ready.dedup();
            ready.retain(|&slot| self.streams[slot].as_deref().is_some_and(due));
            ready
        } else {
            self.ready.clear();
            self.ready_stale = true;
            (0..self.streams.len())
                .filter(|&slot| self.streams[slot].as_deref().is_some_and(due))
                .collect()
        };
        let order: Vec<usize> = rotated
            .into_iter()
            .map(|(_, slot)| slot)
            .chain(current.iter().copied())
            .collect();
        let mut kept_up = std::time::Instant::now();
        for slot in order {
            // A round over thousands of woken files (each parked one
            // reopened) takes long enough for the kernel's event queue to
            // overflow: read it meanwhile.
            if kept_up.elapsed() >= super::KEEP_UP_EVERY {
                self.notices.keep_up();
                kept_up = std::time::Instant::now();
            }
            let Some(stream) = self.streams[slot].as_ref() else {
                continue;
            };
            let (input, present, id) = (stream.input, stream.present, stream.id);
            let parked = stream.parked_at().is_some();
            if draining[input] || stream.is_closed_for_good() || sink.room(input, slot) == 0 {
                continue;
            }
            self.cut_seen = false;
            // Write-ahead: a generation whose head is not in a written
            // checkpoint yet waits for one (the caller writes it when
            // `wants_save` says so) and is visited again next round. Asked
            // before a parked file is reopened, so thousands of them wait
            // closed, within the descriptor budget.
            if !self.streams[slot]
                .as_deref_mut()
                .is_some_and(Stream::head_is_durable)
            {
                self.save_wanted = true;
                if let Some(s) = self.streams[slot].as_mut() {
                    s.wake = true;
                }
                // A rotated file waiting holds back its input's newer files
                // too (backfill opens many at once): they are shipped in
                // the order they were written.
                if !present {
                    draining[input] = true;
                }
                continue;
            }
            if parked {
                let path = PathBuf::from(&*self.streams[slot].as_ref().expect("checked").path);
                if !self.unpark(slot, &path) {
                    // Renamed or gone: the next scan finds out. One no longer
                    // under a current name and gone from its last name
                    // (deleted, compressed; another file may have that name
                    // now) is let go: its unread part is looked for by
                    // content. Kept, it would wait for a read forever.
                    if !present && !id.is_at(&path) {
                        if let Some(s) = self.streams[slot].as_mut() {
                            s.wake = false;
                        }
                    }
                    continue;
                }
            }
            // Read no more than the sink leaves this stream (at least 64 KiB,
            // so lines of any size make progress): the bound is overshot by
            // at most one small read.
            let room = sink.room(input, slot).max(64 << 10).min(buf.len());
            let n = self.read_stream(slot, &mut buf[..room], sink);
            if self.cut_seen {
                // Cut in place (copytruncate): the lines not yet read are in
                // the copy, under a rotated name. Find it now and let it be
                // drained before the new content, which is written after
                // them; otherwise a quick write after the cut would be
                // shipped first.
                self.scan_rotated(input);
                draining[input] = true;
            }
            if let Some(s) = self.streams[slot].as_mut() {
                if n > 0 {
                    s.last_data = Instant::now();
                }
                // Read to the end: a later write wakes it again (an event,
                // or a scan seeing the size differ from the position).
                if n == 0 || s.watcher().is_some_and(FileWatcher::at_end) {
                    s.wake = false;
                }
            }
            if !present && n > 0 {
                draining[input] = true;
            }
            if parked {
                // (Whether the read reached the end is the watcher's to
                // say, above: `n < room` was always true once each read
                // also re-reads the bytes before its position, and a file
                // holding more than one read was left until the next
                // scan.) Close it again unless a line or record is half
                // done.
                let idle = self.streams[slot].as_deref().is_some_and(Stream::at_rest);
                if idle && self.descriptors.tight() {
                    self.park(slot);
                }
            }
            total += n;
        }
        if indexed {
            // Still woken (more to read, or skipped this round) or holding
            // an open record: visit again next round.
            for slot in current {
                if self.streams[slot].as_ref().is_some_and(|s| {
                    s.present
                        && (s.wake
                            || s.waits_for_time(
                                self.settings.inputs[s.input].partial_flush.is_some(),
                            ))
                }) {
                    self.ready.push(slot);
                }
            }
        }
        total
    }

    fn read_stream<S: LineSink>(&mut self, slot: usize, buf: &mut [u8], sink: &mut S) -> usize {
        let Tailer {
            settings,
            streams,
            ledger,
            cut_seen,
            descriptors,
            events,
            counters,
            cut_in_flight,
            ..
        } = self;
        let stream = streams[slot]
            .as_deref_mut()
            .expect("slot checked by caller");
        let input = &settings.inputs[stream.input];
        let Stream {
            life,
            tracker,
            joiner,
            opened_path,
            path,
            generation,
            id,
            serial,
            input: stream_input,
            ..
        } = stream;
        let Life::Open(w) = life else {
            return 0;
        };
        // One clock read per read call dates the lines it sends (the age
        // of the oldest unacknowledged line).
        tracker.mark_read(Instant::now());
        let mut out = Emitter {
            info: StreamInfo {
                slot,
                serial: *serial,
                input: *stream_input,
                generation: *generation,
                id: *id,
                opened_path,
                path,
            },
            tracker,
            sink,
        };
        // Lines go through the joiner when the input is multiline.
        let mut deliver = |line: Line<'_>, out: &mut Emitter<'_, S>| match joiner.as_mut() {
            Some(j) => j.push(line, |rec| out.send(rec)),
            None => out.send(line),
        };
        let outcome = w.read(buf, |line| deliver(line, &mut out));
        let mut close = None;
        let n = match outcome {
            Ok(Poll::Read(n)) => {
                stream.fingerprint = w.known_head();
                n
            }
            Ok(Poll::Truncated { at }) => {
                // The old content's last record is complete: ship it.
                if let Some(j) = joiner.as_mut() {
                    j.flush(|rec| out.send(rec));
                }
                // The generation read so far continues in its copy (if
                // copytruncate made one): look for it by content, from
                // where reading had got to. This file is a new generation.
                let old = stream.generation;
                *cut_seen = true;
                let trail = w.take_cut_trail();
                let cut_anchor = w.take_cut_anchor();
                let last = w.take_cut_bytes();
                ledger.unfinish_cut(
                    FileCheckpoint {
                        generation: old,
                        id: stream.id,
                        fingerprint: stream.fingerprint,
                        // Where reading had got to (past `at` when a line
                        // was begun); else the last saved proof.
                        anchor: cut_anchor.unwrap_or(stream.anchor),
                        position: at,
                        size: stream.size_seen.max(at),
                        path: stream.path.to_string(),
                        updated: now_unix(),
                        born: stream.born,
                        unfinished: false,
                        seen: stream.seen.take(),
                        read_to_end: stream.size_seen <= at,
                    },
                    trail,
                    last,
                );
                stream.generation = GenerationId::new();
                stream.size_seen = 0;
                stream.stat_size = 0;
                counters[stream.input].truncations += 1;
                stream.anchor = Anchor::default();
                events.push(TailEvent::Cut {
                    old,
                    new: stream.generation,
                    at,
                });
                tracing::warn!(path = %stream.path, offset = at, was = %old, generation = %stream.generation, "file truncated (copytruncate or rewritten): a new generation, read from offset 0; the old one continues in its copy if there is one");
                // Lines of the old content still in flight (the joiner's
                // last record among them) hold its checkpoint back.
                cut_in_flight.extend(super::CutInFlight::of_parts(
                    slot,
                    stream.serial,
                    old,
                    &stream.tracker,
                ));
                stream.tracker.truncated();
                stream.fingerprint = w.known_head();
                1 // Progress: read again at once.
            }
            Ok(Poll::Eof) => {
                let idle = w.idle_for();
                let flush_after = input.partial_flush;
                let gone = !stream.present && idle >= settings.rotate_grace;
                if w.pending_bytes() > 0 && (gone || flush_after.is_some_and(|d| idle >= d)) {
                    // An unterminated last line that will never (or not soon)
                    // be completed is shipped as it is.
                    w.flush_partial(|line| deliver(line, &mut out));
                }
                if let Some(j) = joiner.as_mut() {
                    if gone {
                        j.flush(|rec| out.send(rec));
                    } else {
                        j.flush_if_idle(|rec| out.send(rec));
                    }
                }
                if gone {
                    tracing::info!(path = %stream.path, id = %stream.id, "rotated-away or deleted file drained; closing it");
                    counters[stream.input].rotations += 1;
                    close = Some(true);
                }
                0
            }
            Err(e) => {
                tracing::warn!(error = %e, "read failed; closing the file, it is reopened on the next scan");
                close = Some(false);
                0
            }
        };
        match close {
            Some(true) => stream.drained(descriptors, events),
            Some(false) => stream.failed(descriptors, events),
            None => {}
        }
        n
    }
}

/// Hands one stream's lines to the sink, each with its sequence number.
struct Emitter<'a, S: LineSink> {
    info: StreamInfo<'a>,
    tracker: &'a mut AckTracker,
    sink: &'a mut S,
}

impl<S: LineSink> Emitter<'_, S> {
    fn send(&mut self, line: Line<'_>) {
        let seq = self.tracker.sent(line.end);
        self.sink.line(&self.info, seq, line);
    }
}
