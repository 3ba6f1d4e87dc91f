//! The benchmark's log line: a realistic combined-format access-log line
//! (100-300 bytes) that ends in a marker `id=FILE:SEQ ts=MICROS`.
//!
//! `FILE` is the generator's file index (stable across rotations), `SEQ` the
//! line's number within that file starting at 0, `MICROS` the wall-clock time
//! the line was handed to `write(2)`. The consumer finds the marker from the
//! end of the record, so a shipper that adds a prefix (rsyslog) still parses.

use memchr::memmem;
use std::io::Write;

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD",
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v2/search",
    "/static/css/site.min.css",
    "/static/js/app.bundle.js",
    "/images/logo.png",
    "/checkout/cart",
    "/account/settings/profile",
    "/healthz",
    "/blog/2024/05/how-we-ship-logs",
    "/products/electronics/laptops",
    "/favicon.ico",
];
const STATUSES: &[u16] = &[
    200, 200, 200, 200, 200, 200, 204, 301, 302, 304, 400, 401, 403, 404, 404, 500, 502, 503,
];
const REFERERS: &[&str] = &[
    "-",
    "-",
    "https://www.google.com/",
    "https://example.com/",
    "https://example.com/products",
    "https://news.ycombinator.com/",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "kube-probe/1.29",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Shortest and longest line the generator aims for (without the newline).
pub const MIN_LEN: usize = 100;
pub const MAX_LEN: usize = 300;

/// Small deterministic PRNG (xorshift64*): reproducible data without a
/// dependency, and far faster than the writes it feeds.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Writes lines into a buffer. Caches the formatted date per second because
/// formatting it per line would dominate the generator's cost.
#[derive(Debug)]
pub struct LineGen {
    rng: Rng,
    date_sec: u64,
    date: String,
}

impl LineGen {
    pub fn new(seed: u64) -> Self {
        LineGen {
            rng: Rng::new(seed),
            date_sec: u64::MAX,
            date: String::new(),
        }
    }

    /// Appends one line (with its trailing newline) to `buf`.
    pub fn push_line(&mut self, buf: &mut Vec<u8>, file: u32, seq: u64, ts_us: u64) {
        let sec = ts_us / 1_000_000;
        if sec != self.date_sec {
            self.date_sec = sec;
            self.date = clf_date(sec);
        }
        let start = buf.len();
        let r = &mut self.rng;
        let ip = r.next_u64();
        let target = MIN_LEN + r.below((MAX_LEN - MIN_LEN + 1) as u64) as usize;
        // Fixed-size parts first; the query string then pads to `target`.
        let _ = write!(
            buf,
            "{}.{}.{}.{} - - [{}] \"{} {}",
            10 + (ip & 0x7f),
            (ip >> 8) & 0xff,
            (ip >> 16) & 0xff,
            1 + ((ip >> 24) % 254),
            self.date,
            r.pick(METHODS),
            r.pick(PATHS),
        );
        let status = *r.pick(STATUSES);
        let size = r.below(50_000);
        let referer = *r.pick(REFERERS);
        let agent = *r.pick(AGENTS);
        let rt = r.below(2_000);
        let mut tail = Vec::with_capacity(200);
        let _ = write!(
            tail,
            " HTTP/1.1\" {status} {size} \"{referer}\" \"{agent}\" rt={}.{:03} id={file}:{seq} ts={ts_us}",
            rt / 1000,
            rt % 1000
        );
        let have = buf.len() - start + tail.len();
        if have + 4 < target {
            // "?q=" plus lowercase letters: a plausible search query.
            buf.extend_from_slice(b"?q=");
            for _ in 0..(target - have - 3) {
                buf.push(b'a' + r.below(26) as u8);
            }
        }
        buf.extend_from_slice(&tail);
        buf.push(b'\n');
    }
}

/// Common Log Format date for a Unix second, in UTC: `24/Nov/2025:20:37:00 +0000`.
pub fn clf_date(unix_sec: u64) -> String {
    let days = (unix_sec / 86_400) as i64;
    let rem = unix_sec % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What the marker of one record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub file: u32,
    pub seq: u64,
    pub ts_us: u64,
}

/// Finds and parses the `id=FILE:SEQ ts=MICROS` marker, searching from the
/// end. Returns `None` for anything else (never panics on foreign input).
pub fn parse_marker(record: &[u8]) -> Option<Marker> {
    let at = memmem::rfind(record, b" id=")?;
    let rest = &record[at + 4..];
    let (file, rest) = take_number(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (seq, rest) = take_number(rest)?;
    let rest = rest.strip_prefix(b" ts=")?;
    let (ts_us, _) = take_number(rest)?;
    Some(Marker {
        file: u32::try_from(file).ok()?,
        seq,
        ts_us,
    })
}

fn take_number(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    Some((v, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_stay_in_range() {
        let mut g = LineGen::new(7);
        let mut lens = Vec::new();
        for seq in 0..10_000u64 {
            let mut buf = Vec::new();
            g.push_line(&mut buf, 3, seq, 1_732_480_620_123_456 + seq);
            assert_eq!(buf.last(), Some(&b'\n'));
            let line = &buf[..buf.len() - 1];
            assert!(!line.contains(&b'\n'));
            lens.push(line.len());
            let m = parse_marker(line).expect("marker");
            assert_eq!(
                m,
                Marker {
                    file: 3,
                    seq,
                    ts_us: 1_732_480_620_123_456 + seq
                }
            );
        }
        let min = *lens.iter().min().unwrap();
        let max = *lens.iter().max().unwrap();
        assert!(
            min >= MIN_LEN - 10 && max <= MAX_LEN + 10,
            "lengths {min}..{max}"
        );
    }

    #[test]
    fn marker_parsing_rejects_garbage() {
        assert_eq!(parse_marker(b""), None);
        assert_eq!(parse_marker(b"id=1:2 ts=3"), None);
        assert_eq!(parse_marker(b"x id=1:2 ts="), None);
        assert_eq!(parse_marker(b"x id=99999999999:2 ts=5"), None);
        assert_eq!(parse_marker(b"x id=1:99999999999999999999999 ts=5"), None);
        assert_eq!(
            parse_marker(b"<13>prefix x id=1:2 ts=3 trailing"),
            Some(Marker {
                file: 1,
                seq: 2,
                ts_us: 3
            })
        );
    }

    #[test]
    fn clf_date_known_value() {
        assert_eq!(clf_date(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_date(1_732_480_620), "24/Nov/2024:20:37:00 +0000");
    }
}
