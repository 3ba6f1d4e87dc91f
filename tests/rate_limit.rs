//! The read rate limit against the real Kafka cluster: a backlog is shipped
//! no faster than `max_bytes_per_sec` (and not much slower), every line
//! arrives once, and the lag metric shows the backlog meanwhile; an
//! input's own limit slows that input only. Rates are measured from the
//! topic's watermarks, not from logferry's counters. The precise figure is
//! in bench/ (docs/BENCHMARKS.md); the bounds here are generous.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::scrape::*;
use common::*;

/// Write `lines` numbered lines to `path`; returns its size.
fn backlog(path: &Path, lines: usize) -> u64 {
    let mut w = LogWriter::create(path);
    for chunk in (0..lines).step_by(10_000) {
        w.write_lines((chunk..(chunk + 10_000).min(lines)).map(line));
    }
    std::fs::metadata(path).unwrap().len()
}

/// Poll the topic's record count until it holds `n`; the time it took.
fn until_count(brokers: &str, topic: &str, n: i64, since: Instant, timeout: Duration) -> Duration {
    loop {
        let count = topic_count(brokers, topic);
        if count >= n {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "{topic}: {count} of {n} records after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_limit_slows_a_backlog_and_drops_nothing() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("rate");
    create_topic(&brokers, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // About 20 MB at 2 MB/s: ten seconds.
    const N: usize = 165_000;
    const RATE: f64 = 2_000_000.0;
    let size = backlog(&log, N);
    let state = dir.path().join("state");
    let started = Instant::now();
    let mut lf = Logferry::start(
        &[
            "ship",
            "-l",
            log.to_str().unwrap(),
            "-t",
            &topic,
            "--brokers",
            &brokers,
            "--from-beginning",
            "--checkpoint-dir",
            state.to_str().unwrap(),
            "--max-bytes-per-sec",
            "2MB",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &dir.path().join("err"),
    );
    let addr = metrics_addr(&lf);
    // The backlog waits in the file, and the lag metric shows it draining.
    let lag = |b: &str| sum(b, "logferry_lag_bytes");
    let scrape = until(
        &addr,
        "lag below the file size",
        Duration::from_secs(10),
        |b| lag(b) > 0.0 && lag(b) < size as f64 * 0.9,
    );
    assert!(
        lag(&scrape) > size as f64 * 0.3,
        "most of the backlog still waits a few seconds in: {scrape}"
    );
    let took = until_count(&brokers, &topic, N as i64, started, Duration::from_secs(60));
    let rate = size as f64 / took.as_secs_f64();
    eprintln!(
        "{size} bytes in {:.2} s: {:.0} B/s (limit {RATE})",
        took.as_secs_f64(),
        rate
    );
    // Never faster than the limit (start-up time only makes it look
    // slower); not far slower either, with a generous floor: on a loaded
    // 2-core CI machine the reader itself may fall behind (bench/ratelimit
    // measures the precise rate: 99.9 % of the limit).
    assert!(rate <= RATE * 1.1, "{rate:.0} B/s is over the limit");
    assert!(rate >= RATE * 0.5, "{rate:.0} B/s is far under the limit");
    assert!(lf.stop().success());
    // Every line once: counted from the records, not from logferry.
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(N, Duration::from_secs(60));
    let seen: HashSet<usize> = r.records.iter().map(|r| line_no(&r.payload)).collect();
    assert_eq!(r.records.len(), N, "records");
    assert_eq!(seen.len(), N, "distinct lines");
}

#[test]
fn an_input_limit_slows_that_input_only() {
    let Some(brokers) = brokers() else { return };
    let slow_topic = topic_name("rate-slow");
    let fast_topic = topic_name("rate-fast");
    create_topic(&brokers, &slow_topic, 1);
    create_topic(&brokers, &fast_topic, 1);
    let dir = tempfile::tempdir().unwrap();
    // About 4 MB each; the slow input reads 1 MB/s.
    const N: usize = 33_000;
    let slow = dir.path().join("slow.log");
    let fast = dir.path().join("fast.log");
    let slow_size = backlog(&slow, N);
    backlog(&fast, N);
    let cfg = config_toml(
        dir.path(),
        &brokers,
        "rate-test",
        &slow_topic,
        slow.to_str().unwrap(),
        "",
        &format!(
            "max_bytes_per_sec = \"1MB\"\n\n[[inputs]]\ninclude = [\"{}\"]\ntopic = \"{fast_topic}\"\nstart_at = \"beginning\"\n",
            fast.display()
        ),
    );
    let started = Instant::now();
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let fast_took = until_count(
        &brokers,
        &fast_topic,
        N as i64,
        started,
        Duration::from_secs(60),
    );
    let slow_then = topic_count(&brokers, &slow_topic);
    assert!(
        (slow_then as usize) < N / 2,
        "the limited input had shipped {slow_then} of {N} lines when the other was done ({fast_took:?})"
    );
    let slow_took = until_count(
        &brokers,
        &slow_topic,
        N as i64,
        started,
        Duration::from_secs(60),
    );
    let rate = slow_size as f64 / slow_took.as_secs_f64();
    assert!(
        rate <= 1_100_000.0,
        "{rate:.0} B/s is over the input's limit"
    );
    assert!(lf.stop().success());
}
