//! The read rate limit (`max_bytes_per_sec`, for the agent and per input):
//! token buckets that give the Tailer less room to read. Every peer's
//! throttle drops events; this one only slows reading, so a backlog waits
//! in its files (where `logferry_lag_bytes` shows it) and no line is lost.
//!
//! The Tailer already asks its sink how much each input may read
//! ([`LineSink::room`], the in-flight bound); [`Throttled`] answers the
//! smaller of the Outbox's room and the buckets', and charges each line's
//! file bytes (`end - start`: newline, `\r` and any dropped tail of a long
//! line included) as it passes. The Tailer reads at least 64 KiB once it
//! may read at all, so a bucket may go into debt by one read; the debt is
//! paid back before the next read, and the rate holds over any second.

use std::cell::Cell;
use std::time::{Duration, Instant};

use logferry_tail::{Line, LineSink, StreamInfo};

/// A bucket holds at most this much time's worth of its rate: an idle
/// input may then read that much at once, no more.
const BURST: Duration = Duration::from_millis(100);
/// A bucket lets reading start only when it holds this much (or its whole
/// burst, if smaller): the Tailer reads at least 64 KiB anyway, and waiting
/// for a read's worth saves waking up for crumbs.
const READ_GRAIN: f64 = (64 << 10) as f64;

/// One token bucket in bytes.
#[derive(Debug)]
struct Bucket {
    /// Bytes per second.
    rate: f64,
    /// Most tokens held (the burst).
    burst: f64,
    /// Tokens to read; negative while a read larger than they were is paid
    /// back.
    tokens: f64,
    /// When `tokens` was last topped up.
    at: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        let rate = rate as f64;
        let burst = (rate * BURST.as_secs_f64()).max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }

    /// What must be held before reading may start.
    fn threshold(&self) -> f64 {
        READ_GRAIN.min(self.burst)
    }

    fn room(&self) -> usize {
        if self.tokens >= self.threshold() {
            self.tokens as usize
        } else {
            0
        }
    }

    /// How long until reading may start again.
    fn ready_in(&self) -> Duration {
        let short = self.threshold() - self.tokens;
        if short <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(short / self.rate)
        }
    }
}

/// The agent's limit, shared out: what it lets through in a round goes in
/// equal parts to the inputs that wanted to read (asked for room while
/// their own limit allowed), so the input whose files the Tailer visits
/// first cannot starve the others, and one busy input alone gets it all.
#[derive(Debug)]
struct Shared {
    rate: f64,
    /// Most tokens an input's part holds (the agent's burst).
    burst: f64,
    /// When the parts were last topped up.
    at: Instant,
    /// Each input's part: tokens as in a [`Bucket`].
    parts: Vec<f64>,
}

impl Shared {
    fn threshold(&self) -> f64 {
        READ_GRAIN.min(self.burst)
    }
}

/// The limits of one agent: its own (shared out among the inputs) and
/// each input's own.
#[derive(Debug)]
pub struct Throttle {
    all: Option<Shared>,
    own: Vec<Option<Bucket>>,
    /// Inputs that asked for room in this round while their own limit
    /// allowed: they share what the agent's limit lets through next.
    wanted: Vec<Cell<bool>>,
    /// Inputs a limit held back in this round (asked for room, given
    /// none), to know how long the loop may sleep.
    held: Vec<Cell<bool>>,
}

impl Throttle {
    /// `all`: the agent's limit; `per_input`: each input's own. None when
    /// no limit is set at all (reading runs unthrottled, at no cost).
    pub fn new(all: Option<u64>, per_input: &[Option<u64>], now: Instant) -> Option<Throttle> {
        if all.is_none() && per_input.iter().all(Option::is_none) {
            return None;
        }
        let cells = || per_input.iter().map(|_| Cell::new(false)).collect();
        Some(Throttle {
            all: all.map(|r| {
                let b = Bucket::new(r, now);
                Shared {
                    rate: b.rate,
                    burst: b.burst,
                    at: now,
                    // The first burst is shared too.
                    parts: vec![b.burst / per_input.len().max(1) as f64; per_input.len()],
                }
            }),
            own: per_input
                .iter()
                .map(|r| r.map(|r| Bucket::new(r, now)))
                .collect(),
            wanted: cells(),
            held: cells(),
        })
    }

    /// Top the buckets up for the time passed; once per read round, so
    /// asking for room costs no clock read.
    pub fn refill(&mut self, now: Instant) {
        for b in self.own.iter_mut().flatten() {
            b.refill(now);
        }
        if let Some(all) = self.all.as_mut() {
            let elapsed = now.saturating_duration_since(all.at).as_secs_f64();
            all.at = now;
            let wanted = self.wanted.iter().filter(|w| w.get()).count();
            // Nobody wanted to read: every input's part fills (up to the
            // burst), as a single bucket would while idle.
            let each = elapsed * all.rate / wanted.max(1) as f64;
            for (part, w) in all.parts.iter_mut().zip(&self.wanted) {
                if wanted == 0 || w.get() {
                    *part = (*part + each).min(all.burst);
                }
            }
        }
        for c in self.wanted.iter().chain(&self.held) {
            c.set(false);
        }
    }

    /// Bytes `input` may read now by the limits (usize::MAX: no limit).
    pub fn room(&self, input: usize) -> usize {
        let own = match self.own.get(input).and_then(Option::as_ref) {
            Some(b) => b.room(),
            None => usize::MAX,
        };
        let room = match (&self.all, own) {
            (_, 0) | (None, _) => own,
            (Some(all), _) => {
                if let Some(w) = self.wanted.get(input) {
                    w.set(true);
                }
                let part = all.parts.get(input).copied().unwrap_or(0.0);
                let shared = if part >= all.threshold() {
                    part as usize
                } else {
                    0
                };
                own.min(shared)
            }
        };
        if room == 0 {
            if let Some(h) = self.held.get(input) {
                h.set(true);
            }
        }
        room
    }

    /// `bytes` of `input`'s files were read.
    pub fn charge(&mut self, input: usize, bytes: u64) {
        let bytes = bytes as f64;
        if let Some(part) = self.all.as_mut().and_then(|a| a.parts.get_mut(input)) {
            *part -= bytes;
        }
        if let Some(Some(b)) = self.own.get_mut(input) {
            b.tokens -= bytes;
        }
    }

    /// When an input was held back in this round: about how long until
    /// the first of those may read again. None when none was held back.
    pub fn held_for(&self) -> Option<Duration> {
        let wanted = self.wanted.iter().filter(|w| w.get()).count().max(1);
        self.held
            .iter()
            .enumerate()
            .filter(|(_, h)| h.get())
            .map(|(i, _)| {
                let own = self.own[i]
                    .as_ref()
                    .map_or(Duration::ZERO, Bucket::ready_in);
                let shared = self.all.as_ref().map_or(Duration::ZERO, |a| {
                    let short = a.threshold() - a.parts[i];
                    let rate = a.rate / wanted as f64;
                    Duration::from_secs_f64((short / rate).max(0.0))
                });
                own.max(shared)
            })
            .min()
    }
}

/// A sink that reads no faster than the limits allow, in front of the
/// real one (the Outbox).
pub struct Throttled<'a, S: LineSink> {
    pub sink: &'a mut S,
    pub throttle: &'a mut Throttle,
}

impl<S: LineSink> LineSink for Throttled<'_, S> {
    fn room(&self, input: usize, slot: usize) -> usize {
        let room = self.sink.room(input, slot);
        if room == 0 {
            // Paused by the in-flight bound, not by the limit.
            return 0;
        }
        room.min(self.throttle.room(input))
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        self.throttle
            .charge(stream.input, line.end.saturating_sub(line.start));
        self.sink.line(stream, seq, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Read as a Tailer does: whenever an input has room, at least 64 KiB
    /// (at most a 1 MiB buffer), every millisecond for `secs` seconds,
    /// inputs in the same order every time. Returns the bytes each input
    /// read.
    fn drive(t: &mut Throttle, inputs: usize, secs: u64, t0: Instant) -> Vec<u64> {
        drive_some(t, &vec![true; inputs], secs, t0)
    }

    /// [`drive`] where only the inputs `busy` has data to read.
    fn drive_some(t: &mut Throttle, busy: &[bool], secs: u64, t0: Instant) -> Vec<u64> {
        let mut read = vec![0u64; busy.len()];
        for ms in 0..secs * 1000 {
            t.refill(t0 + Duration::from_millis(ms));
            for (i, total) in read.iter_mut().enumerate() {
                if !busy[i] {
                    continue;
                }
                let room = t.room(i);
                if room > 0 {
                    let n = room.clamp(64 << 10, 1 << 20) as u64;
                    t.charge(i, n);
                    *total += n;
                }
            }
        }
        read
    }

    fn within(got: u64, want: u64, tolerance: f64) -> bool {
        (got as f64 - want as f64).abs() <= want as f64 * tolerance
    }

    #[test]
    fn no_limit_is_no_throttle() {
        assert!(Throttle::new(None, &[None, None], Instant::now()).is_none());
    }

    #[test]
    fn the_agent_limit_holds_over_every_input_together() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Some(5_000_000), &[None, None], t0).unwrap();
        let read = drive(&mut t, 2, 10, t0);
        let total: u64 = read.iter().sum();
        // 10 s at 5 MB/s, plus at most one burst and one read of debt.
        assert!(within(total, 50_000_000, 0.02), "{read:?}");
        // The input asked first does not starve the other: equal parts.
        assert!(within(read[0], 25_000_000, 0.05), "{read:?}");
    }

    #[test]
    fn one_busy_input_gets_the_whole_agent_limit() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Some(5_000_000), &[None, None, None], t0).unwrap();
        let read = drive_some(&mut t, &[false, true, false], 10, t0);
        assert!(within(read[1], 50_000_000, 0.02), "{read:?}");
    }

    #[test]
    fn an_input_limit_holds_that_input_only() {
        let t0 = Instant::now();
        let mut t = Throttle::new(None, &[Some(1_000_000), None], t0).unwrap();
        let read = drive(&mut t, 2, 10, t0);
        assert!(within(read[0], 10_000_000, 0.02), "{read:?}");
        // The other input is not limited: it read every millisecond.
        assert!(read[1] > 10_000 * (64 << 10) - 1, "{read:?}");
    }

    #[test]
    fn both_limits_apply_the_lower_wins() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Some(4_000_000), &[Some(1_000_000), None], t0).unwrap();
        let read = drive(&mut t, 2, 10, t0);
        assert!(within(read[0], 10_000_000, 0.02), "{read:?}");
        assert!(within(read[0] + read[1], 40_000_000, 0.02), "{read:?}");
    }

    #[test]
    fn a_rate_below_one_read_holds_on_average() {
        // 10 KB/s: every read (64 KiB) is a debt of seconds.
        let t0 = Instant::now();
        let mut t = Throttle::new(None, &[Some(10_000)], t0).unwrap();
        let read = drive(&mut t, 1, 60, t0);
        // Within one read of 600 KB.
        assert!(read[0] <= 600_000 + (64 << 10), "{read:?}");
        assert!(read[0] >= 600_000 - (64 << 10), "{read:?}");
    }

    /// A sink that takes lines and has `room` left.
    struct Counting {
        room: usize,
        lines: usize,
    }

    impl LineSink for Counting {
        fn room(&self, _input: usize, _slot: usize) -> usize {
            self.room
        }
        fn line(&mut self, _stream: &StreamInfo<'_>, _seq: u64, _line: Line<'_>) {
            self.lines += 1;
        }
    }

    #[test]
    fn the_throttled_sink_charges_file_bytes_and_keeps_the_inflight_pause() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(None, &[Some(1_000_000)], t0).unwrap();
        let mut inner = Counting {
            room: 8 << 20,
            lines: 0,
        };
        let info = StreamInfo {
            slot: 0,
            serial: 0,
            input: 0,
            generation: logferry_tail::GenerationId::new(),
            id: logferry_tail::FileId { dev: 1, ino: 1 },
            opened_path: "/a",
            path: "/a",
        };
        let mut sink = Throttled {
            sink: &mut inner,
            throttle: &mut throttle,
        };
        // The burst (100 ms at 1 MB/s) is the room.
        assert_eq!(sink.room(0, 0), 100_000);
        // A line truncated to 10 bytes of a 90,000-byte line costs 90,000.
        let line = Line {
            bytes: b"0123456789",
            start: 1000,
            end: 91_000,
            truncated: true,
        };
        sink.line(&info, 0, line);
        assert_eq!(sink.room(0, 0), 0, "10,000 tokens left, below a read");
        assert_eq!(inner.lines, 1, "the line went on");
        // The Outbox's own pause stays a pause.
        inner.room = 0;
        throttle.refill(t0 + Duration::from_secs(1));
        let sink = Throttled {
            sink: &mut inner,
            throttle: &mut throttle,
        };
        assert_eq!(sink.room(0, 0), 0);
        assert_eq!(throttle.held_for(), None, "not held by the limit");
    }

    #[test]
    fn held_back_inputs_say_how_long_to_wait() {
        let t0 = Instant::now();
        let mut t = Throttle::new(None, &[Some(1_000_000), None], t0).unwrap();
        t.refill(t0);
        assert_eq!(t.held_for(), None);
        t.charge(0, 200_000);
        assert_eq!(t.room(0), 0);
        // An input without a limit is never held.
        assert_eq!(t.room(1), usize::MAX);
        // 100 KB of debt plus 64 KiB to start a read, at 1 MB/s.
        let wait = t.held_for().unwrap();
        assert!(wait > 160 * MS && wait < 170 * MS, "{wait:?}");
        t.refill(t0 + wait + MS);
        assert_eq!(t.held_for(), None);
        assert!(t.room(0) >= 64 << 10);
    }
}
