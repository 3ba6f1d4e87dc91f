//! Joining continuation lines into one record: a Java stack trace or a
//! Rails error spans many lines but is one event. A line matching the start
//! pattern begins a record; lines that do not match are appended to the
//! record in progress (joined with `\n`). A record is emitted when the next
//! one starts, when nothing was appended for a while (the caller asks, see
//! [`MultilineJoiner::flush_if_idle`]), or when it reached its size cap (the
//! rest of it is dropped and the record is flagged truncated).
//!
//! The emitted record's `end` is the end of its last line, so a checkpoint
//! never lands inside a record: after a restart the whole record is read
//! again from its first line.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::frame::Line;

#[derive(Debug, Clone)]
pub struct MultilineJoiner {
    start: Regex,
    timeout: Duration,
    max_bytes: usize,
    buf: Vec<u8>,
    /// Offsets of the record in progress (valid when `open`).
    first: u64,
    last_end: u64,
    open: bool,
    truncated: bool,
    last_append: Instant,
}

impl MultilineJoiner {
    pub fn new(start: Regex, timeout: Duration, max_bytes: usize) -> Self {
        MultilineJoiner {
            start,
            timeout,
            max_bytes: max_bytes.max(1),
            buf: Vec::new(),
            first: 0,
            last_end: 0,
            open: false,
            truncated: false,
            last_append: Instant::now(),
        }
    }

    /// Feed one framed line; emits the previous record if this one starts a
    /// new record.
    pub fn push<F: FnMut(Line<'_>)>(&mut self, line: Line<'_>, mut emit: F) {
        if !self.open || self.start.is_match(line.bytes) {
            self.flush(&mut emit);
            self.open = true;
            self.first = line.start;
            self.truncated = line.truncated;
            self.append(line.bytes);
        } else {
            self.append(b"\n");
            self.append(line.bytes);
            self.truncated |= line.truncated;
        }
        self.last_end = line.end;
        self.last_append = Instant::now();
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = self.max_bytes - self.buf.len();
        if bytes.len() > room {
            self.buf.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Emit the record in progress, if any.
    pub fn flush<F: FnMut(Line<'_>)>(&mut self, mut emit: F) {
        if !self.open {
            return;
        }
        emit(Line {
            bytes: &self.buf,
            start: self.first,
            end: self.last_end,
            truncated: self.truncated,
        });
        self.buf.clear();
        self.open = false;
        self.truncated = false;
    }

    /// Emit the record in progress if nothing was appended for the timeout.
    pub fn flush_if_idle<F: FnMut(Line<'_>)>(&mut self, emit: F) {
        if self.open && self.last_append.elapsed() >= self.timeout {
            self.flush(emit);
        }
    }

    /// A record is waiting for more lines or its timeout.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Forget the record in progress (the file was truncated).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.open = false;
        self.truncated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{LineFramer, LongLinePolicy};

    fn run(j: &mut MultilineJoiner, text: &[u8]) -> Vec<(String, u64, u64, bool)> {
        let mut lines = Vec::new();
        let mut f = LineFramer::new(0, 1 << 20, LongLinePolicy::Truncate, false);
        f.push(text, |l| {
            lines.push((l.bytes.to_vec(), l.start, l.end, l.truncated))
        });
        let mut out = Vec::new();
        for (b, s, e, t) in &lines {
            let line = Line {
                bytes: b,
                start: *s,
                end: *e,
                truncated: *t,
            };
            j.push(line, |r| {
                out.push((
                    String::from_utf8_lossy(r.bytes).into_owned(),
                    r.start,
                    r.end,
                    r.truncated,
                ))
            });
        }
        out
    }

    fn java() -> MultilineJoiner {
        MultilineJoiner::new(
            Regex::new(r"^\d{4}-").unwrap(),
            Duration::from_millis(50),
            1000,
        )
    }

    #[test]
    fn stack_trace_is_one_record() {
        let mut j = java();
        let text =
            b"2026-11-24 ERROR boom\njava.lang.X: y\n\tat a.b(C.java:1)\n2026-11-24 INFO next\n";
        let out = run(&mut j, text);
        assert_eq!(
            out,
            vec![(
                "2026-11-24 ERROR boom\njava.lang.X: y\n\tat a.b(C.java:1)".into(),
                0,
                55,
                false
            )]
        );
        assert!(j.is_open(), "the INFO record waits for continuation lines");
        let mut rest = Vec::new();
        j.flush(|r| rest.push((r.bytes.to_vec(), r.start, r.end)));
        assert_eq!(rest, vec![(b"2026-11-24 INFO next".to_vec(), 55, 76)]);
    }

    #[test]
    fn timeout_flushes_the_last_record() {
        let mut j = java();
        run(&mut j, b"2026-11-24 a\n cont\n");
        let mut out = Vec::new();
        j.flush_if_idle(|r| out.push(r.bytes.to_vec()));
        assert!(out.is_empty(), "not idle yet");
        std::thread::sleep(Duration::from_millis(60));
        j.flush_if_idle(|r| out.push(r.bytes.to_vec()));
        assert_eq!(out, vec![b"2026-11-24 a\n cont".to_vec()]);
    }

    #[test]
    fn size_cap_truncates_and_flags() {
        let mut j = MultilineJoiner::new(Regex::new("^S").unwrap(), Duration::from_secs(1), 10);
        let out = run(&mut j, b"S123456\nabcdefgh\nS2\n");
        assert_eq!(out, vec![("S123456\nab".into(), 0, 17, true)]);
    }

    #[test]
    fn leading_continuation_lines_form_their_own_record() {
        let mut j = java();
        let out = run(&mut j, b"\tat orphan\n2026-11-24 x\n");
        assert_eq!(out, vec![("\tat orphan".into(), 0, 11, false)]);
    }
}
