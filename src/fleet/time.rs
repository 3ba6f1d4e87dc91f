//! Times as people type and read them: RFC 3339 in UTC out, and in: RFC
//! 3339 (`2026-11-25T10:00:00Z`, `2026-11-25 10:00:00.250+01:00`), a date
//! (`2026-11-25`, midnight UTC), Unix seconds (`@1764064800`), or a
//! duration ago (`10m`, `2h`, as everywhere in logferry). Unix milliseconds
//! inside; no calendar crate for a few lines of arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-25T10:00:00.250Z`.
pub fn format_ms(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let s = rest / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        rest % 1000
    )
}

/// A time as given to `--since`, `--until` or `--from`, in Unix ms;
/// durations count back from `now_ms`.
pub fn parse(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    if let Some(secs) = t.strip_prefix('@') {
        return secs
            .parse::<f64>()
            .map(|v| (v * 1000.0).round() as i64)
            .map_err(|_| format!("{s:?}: expected Unix seconds after '@'"));
    }
    if t.len() >= 10 && t.as_bytes()[4] == b'-' {
        return parse_rfc3339(t).ok_or_else(|| {
            format!("{s:?}: expected a time like 2026-11-25T10:00:00Z, 2026-11-25 10:00:00+01:00 or 2026-11-25")
        });
    }
    crate::config::parse_duration(t)
        .map(|d| now_ms - d.as_millis() as i64)
        .map_err(|_| {
            format!("{s:?}: expected a time (2026-11-25T10:00:00Z, 2026-11-25, @UNIX_SECONDS) or a duration ago (10m, 2h)")
        })
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = t.get(a..b)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if t.as_bytes()[7] != b'-' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day_ms = days_from_civil(y, mo, d) * 86_400_000;
    if t.len() == 10 {
        return Some(day_ms);
    }
    if !matches!(t.as_bytes()[10], b'T' | b't' | b' ')
        || t.get(13..14)? != ":"
        || t.get(16..17)? != ":"
    {
        return None;
    }
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &f[..digits.min(3)]);
        frac_ms = padded.parse::<i64>().ok()?;
        rest = &f[digits..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60) * 1000
        }
    };
    Some(day_ms + (h * 3600 + mi * 60 + sec) * 1000 + frac_ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_forms() {
        for ms in [0, 1_764_064_800_250, 951_782_400_000, -86_400_000] {
            assert_eq!(parse(&format_ms(ms), 0).unwrap(), ms, "{}", format_ms(ms));
        }
        assert_eq!(format_ms(1_764_064_800_250), "2025-11-25T10:00:00.250Z");
        assert_eq!(parse("2025-11-25", 0).unwrap(), 1_764_028_800_000);
        assert_eq!(
            parse("2025-11-25 11:00:00+01:00", 0).unwrap(),
            1_764_064_800_000
        );
        assert_eq!(
            parse("2025-11-25T10:00:00.5Z", 0).unwrap(),
            1_764_064_800_500
        );
        assert_eq!(parse("@1764064800.25", 0).unwrap(), 1_764_064_800_250);
        assert_eq!(parse("10m", 1_000_000).unwrap(), 400_000);
        for bad in [
            "2025-13-01",
            "2025-11-25T10:00",
            "yesterday",
            "2025-11-25T10:00:00",
            "@x",
        ] {
            let e = parse(bad, 0).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
