//! `logferry merge`: the collectors' archive as one stream ordered by the
//! time each line was read (the record timestamp, from the timeline beside
//! the archive), every source in its file order.
//!
//! A k-way merge: each generation is a stream of lines in file order
//! ([`Lines`]); a heap holds one line per open stream. Memory grows with
//! the streams open at once, not with the archive: a stream is opened
//! only once the merge reaches the earliest time any of its lines can
//! have (from its timeline's run headers) and closed at its end, so an
//! archive of a year holds open only the files that overlap in time.
//! `--since` starts each stream at the first line its timeline says was
//! read then (for a compressed generation the decoder still runs from the
//! start, but nothing before is split into lines); `--until` stops it
//! after the last line read before.
//!
//! `--follow` then goes on with what the collectors write: every
//! [`FOLLOW_EVERY`] the index is read again, and each generation's new
//! lines (new generations too) are merged by time and printed. A line is
//! taken once its time is in the timeline (the collector appends times
//! right after the lines; after [`TIME_WAIT`] without it the line takes
//! the time of the line before), and a hole in front of the position
//! (lines still on their way from another partition) is waited for up to
//! [`HOLE_WAIT`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::filter::Filter;
use super::lines::{Generation, Line, Lines, Next};
use super::print::{is_closed_pipe, Entry, Printer};
use crate::collect::index::{IndexError, Store};
use crate::collect::timeline::{RunScanner, TimeCursor};
use crate::shutdown::Shutdown;

pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);
pub const TIME_WAIT: Duration = Duration::from_secs(3);
pub const HOLE_WAIT: Duration = Duration::from_secs(5);

pub struct MergeSettings {
    pub out: PathBuf,
    pub filter: Filter,
    /// Lines read at or after (Unix ms).
    pub since: Option<i64>,
    /// Lines read before (Unix ms).
    pub until: Option<i64>,
    pub follow: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: not a collector's output directory (no .logferry/index.json)", .0.display())]
    NotAnArchive(PathBuf),
    #[error("collector index: {0}")]
    Index(#[from] IndexError),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct MergeCounts {
    pub printed: u64,
    pub generations: u64,
}

/// Why printing stopped early.
enum Stop {
    Closed,
    Failed(std::io::Error),
}

struct Merger<'a, W: Write> {
    s: &'a MergeSettings,
    out: &'a mut Printer<W>,
    counts: MergeCounts,
}

impl<W: Write> Merger<'_, W> {
    fn print(&mut self, g: &Generation, line: &Line) -> Result<(), Stop> {
        if self.s.since.is_some_and(|t| line.ms < t)
            || self.s.until.is_some_and(|t| line.ms >= t)
            || !self.s.filter.wants_line(&line.bytes)
        {
            return Ok(());
        }
        self.counts.printed += 1;
        self.out
            .print(&Entry {
                host: &g.host,
                path: g.source_path.as_bytes(),
                generation: Some(&g.generation),
                offset: Some(line.offset),
                timestamp_ms: Some(line.ms),
                line: &line.bytes,
            })
            .map_err(|e| {
                if is_closed_pipe(&e) {
                    Stop::Closed
                } else {
                    Stop::Failed(e)
                }
            })
    }
}

fn read_err(g: &Generation) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Read {
        path: g.output.clone(),
        source,
    }
}

/// The generations the filter wants, as the index lists them now.
fn listed(s: &MergeSettings) -> Result<Vec<Generation>, MergeError> {
    if !Store::index_path(&s.out).exists() {
        return Err(MergeError::NotAnArchive(s.out.clone()));
    }
    let index = Store::read(&s.out)?;
    Ok(index
        .generations
        .iter()
        .filter(|(_, e)| s.filter.wants_source(&e.host, e.source_path.as_bytes()))
        .filter_map(|(id, e)| Generation::from_entry(&s.out, id, e))
        .collect())
}

/// Print the archive in time order, then follow it if asked.
pub fn run<W: Write>(
    s: &MergeSettings,
    shutdown: &Shutdown,
    out: &mut Printer<W>,
) -> Result<MergeCounts, MergeError> {
    let mut m = Merger {
        s,
        out,
        counts: MergeCounts::default(),
    };
    let reached = match archive(&mut m, shutdown) {
        Ok(r) => r,
        Err(Ok(Stop::Closed)) => return Ok(m.counts),
        Err(Ok(Stop::Failed(e))) => return Err(MergeError::Output(e)),
        Err(Err(e)) => return Err(e),
    };
    flush(m.out)?;
    if s.follow {
        follow(&mut m, shutdown, reached)?;
    }
    Ok(m.counts)
}

fn flush<W: Write>(out: &mut Printer<W>) -> Result<(), MergeError> {
    match out.flush() {
        Err(e) if !is_closed_pipe(&e) => Err(MergeError::Output(e)),
        _ => Ok(()),
    }
}

type Failed = Result<Stop, MergeError>;

/// A stream's next line in the heap: (read time, stream, offset, bytes);
/// ties go to the stream listed first, then to file order.
type Head = (i64, usize, u64, Vec<u8>);

/// The k-way merge over the archive as it is now. Returns, per
/// generation, the position reached (where following goes on).
fn archive<W: Write>(
    m: &mut Merger<'_, W>,
    shutdown: &Shutdown,
) -> Result<HashMap<String, u64>, Failed> {
    let mut waiting: Vec<(i64, usize, Generation)> = Vec::new();
    for (seq, g) in listed(m.s).map_err(Err)?.into_iter().enumerate() {
        let earliest = g.earliest_ms().map_err(|e| Err(read_err(&g)(e)))?;
        waiting.push((earliest, seq, g));
    }
    m.counts.generations = waiting.len() as u64;
    waiting.sort_by_key(|w| (w.0, w.1));
    let mut waiting: VecDeque<_> = waiting.into();
    let mut reached = HashMap::new();
    let mut open: HashMap<usize, Lines> = HashMap::new();
    let mut heads: BinaryHeap<Reverse<Head>> = BinaryHeap::new();
    let mut printed = 0u64;
    loop {
        // Open every stream whose earliest line could come before the
        // earliest line now at hand.
        while let Some(&(earliest, ..)) = waiting.front() {
            if heads.peek().is_some_and(|Reverse(h)| h.0 < earliest) {
                break;
            }
            let (_, seq, g) = waiting.pop_front().expect("peeked");
            let id = g.id.clone();
            let end = g.ranges.last().map_or(0, |r| r.1);
            let opened = open_window(m.s, g.clone()).map_err(|e| Err(read_err(&g)(e)))?;
            match opened {
                Some(mut lines) => {
                    if let Some(l) = advance(&mut lines)? {
                        heads.push(Reverse((l.ms, seq, l.offset, l.bytes)));
                        open.insert(seq, lines);
                    } else {
                        reached.insert(id, lines.pos.max(end));
                    }
                }
                // Nothing in the window: following starts after it all.
                None => {
                    reached.insert(id, end);
                }
            }
        }
        let Some(Reverse((ms, seq, offset, bytes))) = heads.pop() else {
            break;
        };
        let lines = open.get_mut(&seq).expect("a head has its stream");
        m.print(&lines.gen, &Line { offset, ms, bytes })
            .map_err(Ok)?;
        match advance(lines)? {
            Some(l) => heads.push(Reverse((l.ms, seq, l.offset, l.bytes))),
            None => {
                let lines = open.remove(&seq).expect("present");
                let end = lines.gen.ranges.last().map_or(0, |r| r.1);
                reached.insert(lines.gen.id.clone(), lines.pos.max(end));
            }
        }
        printed += 1;
        if printed % 4096 == 0 && shutdown.is_requested() {
            break;
        }
    }
    Ok(reached)
}

/// Open a generation's window. The collector may compress it between the
/// index read and the open (the output then has a new name): its entry is
/// read again once.
fn open_window(s: &MergeSettings, g: Generation) -> std::io::Result<Option<Lines>> {
    match Lines::open_window(g.clone(), s.since, s.until) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let again = Store::read(&s.out).ok().and_then(|index| {
                let e = index.generations.get(&g.id)?;
                Generation::from_entry(&s.out, &g.id, e)
            });
            match again {
                Some(g) => Lines::open_window(g, s.since, s.until),
                // Deleted by retention meanwhile.
                None => Ok(None),
            }
        }
        other => other,
    }
}

fn advance(lines: &mut Lines) -> Result<Option<Line>, Failed> {
    match lines.next(false) {
        Ok(Next::Line(l)) => Ok(Some(l)),
        Ok(_) => Ok(None),
        Err(e) => Err(Err(read_err(&lines.gen)(e))),
    }
}

/// A generation being followed.
struct Follower {
    seq: usize,
    pos: u64,
    times: Option<TimeCursor>,
    /// Since when the next line has waited for its time, or the position
    /// for a hole to fill.
    waiting_since: Option<Instant>,
    /// Read to the end of a generation that cannot grow any more.
    done: bool,
}

fn follow<W: Write>(
    m: &mut Merger<'_, W>,
    shutdown: &Shutdown,
    reached: HashMap<String, u64>,
) -> Result<(), MergeError> {
    let mut followers: HashMap<String, Follower> = HashMap::new();
    let mut next_seq = 0usize;
    let mut first = true;
    while !shutdown.is_requested() {
        let mut batch: Vec<(i64, usize, u64, usize, Vec<u8>)> = Vec::new();
        let gens = listed(m.s)?;
        for (gi, g) in gens.iter().enumerate() {
            let f = followers.entry(g.id.clone()).or_insert_with(|| {
                next_seq += 1;
                let start = g.ranges.first().map_or(0, |r| r.0);
                Follower {
                    seq: next_seq,
                    // Generations met when following began continue where
                    // the archive pass stopped; newer ones from their start.
                    pos: if first {
                        reached.get(&g.id).copied().unwrap_or(start)
                    } else {
                        start
                    },
                    times: None,
                    waiting_since: None,
                    done: false,
                }
            });
            if f.done {
                continue;
            }
            for (offset, ms, bytes) in follow_one(f, g)? {
                batch.push((ms, f.seq, offset, gi, bytes));
            }
        }
        first = false;
        batch.sort_unstable_by_key(|b| (b.0, b.1, b.2));
        for (ms, _, offset, gi, bytes) in batch {
            match m.print(&gens[gi], &Line { offset, ms, bytes }) {
                Ok(()) => {}
                Err(Stop::Closed) => return Ok(()),
                Err(Stop::Failed(e)) => return Err(MergeError::Output(e)),
            }
        }
        flush(m.out)?;
        std::thread::sleep(FOLLOW_EVERY);
    }
    Ok(())
}

/// The lines of `g` past the follower's position that can be taken now.
fn follow_one(f: &mut Follower, g: &Generation) -> Result<Vec<(u64, i64, Vec<u8>)>, MergeError> {
    let mut out = Vec::new();
    let Some(to) = readable_to(f, g) else {
        if g.compressed {
            f.done = true;
            f.times = None;
        }
        return Ok(out);
    };
    if f.times.is_none() {
        if let Some(s) = RunScanner::open(&g.timeline).map_err(read_err(g))? {
            let c = TimeCursor::new(s).map_err(read_err(g))?;
            f.times = Some(c.into_following(f.pos).map_err(read_err(g))?);
        }
    } else if let Some(t) = f.times.as_mut() {
        t.catch_up().map_err(read_err(g))?;
    }
    let mut lines = Lines::open(g.clone(), f.times.take(), f.pos, to).map_err(read_err(g))?;
    loop {
        let late = f.waiting_since.is_some_and(|t| t.elapsed() >= TIME_WAIT);
        match lines.next(!late).map_err(read_err(g))? {
            Next::Line(l) => {
                f.waiting_since = None;
                out.push((l.offset, l.ms, l.bytes));
            }
            Next::Waiting => {
                f.waiting_since.get_or_insert_with(Instant::now);
                break;
            }
            Next::End => break,
        }
    }
    let (_, times, pos) = lines.into_parts();
    f.pos = pos.max(f.pos);
    f.times = times;
    Ok(out)
}

/// How far the follower may read now: to the end of the written range at
/// its position; across a hole in front of it only once the hole has been
/// waited for. None when there is nothing new.
fn readable_to(f: &mut Follower, g: &Generation) -> Option<u64> {
    if let Some(&(_, e)) = g.ranges.iter().find(|&&(s, e)| s <= f.pos && f.pos < e) {
        return Some(e);
    }
    let &(s, e) = g.ranges.iter().find(|&&(s, _)| s > f.pos)?;
    let since = *f.waiting_since.get_or_insert_with(Instant::now);
    if since.elapsed() >= HOLE_WAIT {
        tracing::warn!(host = %g.host, source = %g.source_path, generation = %g.generation, "bytes {}..{s} not written after {} s; going on after them", f.pos, HOLE_WAIT.as_secs());
        f.pos = s;
        f.waiting_since = None;
        return Some(e);
    }
    None
}
