//! One archived generation's lines in file order, each with the time its
//! agent read it (from the collector's timeline), read only where the
//! collector's index says bytes were written: a hole (lines not arrived
//! yet, or the part of a file before the agent started following it) is
//! never read as lines of zeros. Compressed generations (zstd, gzip) are
//! decoded as they are read.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use logferry_tail::compressed::Decompressed;
use logferry_tail::identity::ReadAt;

use crate::collect::index::{Archived, GenEntry};
use crate::collect::timeline::{self, RunScanner, TimeCursor};

/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

/// One generation as the collector's index lists it.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The index id (`HOST/GEN`).
    pub id: String,
    pub host: String,
    pub source_path: String,
    pub generation: String,
    pub output: PathBuf,
    pub compressed: bool,
    /// Written byte ranges.
    pub ranges: Vec<(u64, u64)>,
    /// Producer time of the first record seen of it: the time of lines
    /// before the first one the timeline knows.
    pub first_ms: i64,
    pub timeline: PathBuf,
}

impl Generation {
    /// None for a generation retention deleted.
    pub fn from_entry(root: &Path, id: &str, e: &GenEntry) -> Option<Generation> {
        if e.archived == Some(Archived::Deleted) {
            return None;
        }
        Some(Generation {
            id: id.to_string(),
            host: e.host.clone(),
            source_path: e.source_path.clone(),
            generation: e.generation.clone(),
            output: root.join(&e.output),
            compressed: e.archived == Some(Archived::Compressed),
            ranges: e.completeness.written.ranges().to_vec(),
            first_ms: e.first_record_ms() as i64,
            timeline: timeline::path_of(root, id),
        })
    }

    /// The earliest read time any of its lines can have (the timeline's
    /// first, or the first record's when that is earlier or the timeline
    /// is missing); reads only run headers.
    pub fn earliest_ms(&self) -> io::Result<i64> {
        let t = match RunScanner::open(&self.timeline)? {
            Some(s) => TimeCursor::new(s)?.min_ms(),
            None => None,
        };
        Ok(t.map_or(self.first_ms, |t| t.min(self.first_ms)))
    }
}

/// The output file, plain or compressed, read at offsets.
enum Body {
    Plain(File),
    Compressed(Box<Decompressed>),
}

impl Body {
    fn open(g: &Generation) -> io::Result<Body> {
        Ok(if g.compressed {
            Body::Compressed(Box::new(Decompressed::open(&g.output)?))
        } else {
            Body::Plain(File::open(&g.output)?)
        })
    }

    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self {
            Body::Plain(f) => std::os::unix::fs::FileExt::read_at(f, buf, pos),
            Body::Compressed(d) => d.read_at(buf, pos),
        }
    }
}

/// A line and when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub offset: u64,
    pub ms: i64,
    /// Without its newline.
    pub bytes: Vec<u8>,
}

/// What [`Lines::next`] found.
#[derive(Debug)]
pub enum Next {
    Line(Line),
    /// The next line has no time in the timeline yet (only asked for when
    /// following: the collector appends times right after the lines).
    Waiting,
    End,
}

/// A generation's lines in file order.
pub struct Lines {
    pub gen: Generation,
    body: Body,
    /// Ranges still to read, clipped to what was asked.
    ranges: std::collections::VecDeque<(u64, u64)>,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
    times: Option<TimeCursor>,
    last_ms: i64,
    /// Where the next line starts: the position reached.
    pub pos: u64,
    /// No line starting past this is returned.
    last: u64,
}

impl Lines {
    /// The lines of `g` in `[from, to)` (file offsets).
    pub fn open(g: Generation, times: Option<TimeCursor>, from: u64, to: u64) -> io::Result<Lines> {
        let ranges = g
            .ranges
            .iter()
            .map(|&(s, e)| (s.max(from), e.min(to)))
            .filter(|(s, e)| s < e)
            .collect();
        let body = Body::open(&g)?;
        let last_ms = g.first_ms;
        Ok(Lines {
            gen: g,
            body,
            ranges,
            buf: Vec::new(),
            buf_at: from,
            times,
            last_ms,
            pos: from,
            last: u64::MAX,
        })
    }

    /// The archive read for `merge`: the timeline positions the start at
    /// the first line read at or after `since` and the end after the last
    /// one read before `until`. None when no line can be in that window.
    pub fn open_window(
        g: Generation,
        since: Option<i64>,
        until: Option<i64>,
    ) -> io::Result<Option<Lines>> {
        let times = match RunScanner::open(&g.timeline)? {
            Some(s) => Some(TimeCursor::new(s)?),
            None => None,
        };
        let (mut from, mut last) = (0, u64::MAX);
        if let Some(t) = &times {
            if let Some(since) = since {
                match t.first_offset_since(since) {
                    Some(o) => from = o,
                    None if g.first_ms < since => return Ok(None),
                    None => {}
                }
            }
            if let Some(until) = until {
                match t.last_offset_before(until) {
                    Some(o) => last = o,
                    None if g.first_ms >= until => return Ok(None),
                    None => {}
                }
            }
        }
        let mut times = times;
        if let Some(t) = times.as_mut() {
            t.skip_below(from);
        }
        let mut lines = Lines::open(g, times, from, u64::MAX)?;
        lines.last = last;
        Ok(Some(lines))
    }

    /// The next line. With `wait_for_time`, a line the timeline does not
    /// know yet is not taken (`Waiting`); without, it gets the time of the
    /// line before it.
    pub fn next(&mut self, wait_for_time: bool) -> io::Result<Next> {
        loop {
            let Some(&(start, end)) = self.ranges.front() else {
                return Ok(Next::End);
            };
            if self.pos.max(start) > self.last {
                return Ok(Next::End);
            }
            if self.pos < start || self.pos >= end {
                self.pos = self.pos.max(start);
                if self.pos >= end {
                    self.ranges.pop_front();
                    continue;
                }
                self.buf.clear();
                self.buf_at = self.pos;
            }
            let at = (self.pos - self.buf_at) as usize;
            let line_end = match memchr::memchr(b'\n', &self.buf[at..]) {
                Some(i) => Some((at + i, at + i + 1)),
                None => {
                    let have = self.buf_at + self.buf.len() as u64;
                    if have < end {
                        self.fill(end)?;
                        continue;
                    }
                    // A range ending without a newline: a line the agent
                    // cut (long-line policy), whole as written.
                    (self.buf.len() > at).then_some((self.buf.len(), self.buf.len()))
                }
            };
            let Some((stop, next)) = line_end else {
                self.ranges.pop_front();
                continue;
            };
            let offset = self.pos;
            let ms = match &mut self.times {
                Some(t) => t.time_of(offset)?,
                None => None,
            };
            let ms = match ms {
                Some(ms) => ms,
                None if wait_for_time => return Ok(Next::Waiting),
                None => self.last_ms,
            };
            self.last_ms = ms;
            let bytes = self.buf[at..stop].to_vec();
            self.pos = self.buf_at + next as u64;
            return Ok(Next::Line(Line { offset, ms, bytes }));
        }
    }

    /// Read more of the current range into the buffer, dropping what was
    /// already returned.
    fn fill(&mut self, end: u64) -> io::Result<()> {
        let used = (self.pos - self.buf_at) as usize;
        self.buf.drain(..used);
        self.buf_at = self.pos;
        let have = self.buf_at + self.buf.len() as u64;
        let want = ((end - have) as usize).min(CHUNK);
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let n = self.body.read_at(&mut self.buf[old..], have)?;
        self.buf.truncate(old + n);
        if n == 0 {
            // Shorter than the index says (a file cut by hand, or a
            // compressed stream ending early): stop at what is there.
            self.ranges.pop_front();
            self.ranges.push_front((self.pos, have));
        }
        Ok(())
    }

    /// Take the timeline for following: runs appended later are read as
    /// they come.
    pub fn into_parts(self) -> (Generation, Option<TimeCursor>, u64) {
        (self.gen, self.times, self.pos)
    }
}
