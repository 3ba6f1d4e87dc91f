//! `pack_bytes`: whole lines read together shipped as one record, against
//! the real Kafka cluster started by scripts/test. What arrived is counted
//! here from the raw records, split at newlines, trusting no flag logferry
//! sets; the collector, `tail` and `verify` are logferry's own readers of
//! packs. (Kills and rotations with packs: tests/restarts.rs runs every
//! other seed packed.)

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::scrape::*;
use common::*;

const HOST: &str = "packhost";

/// Every line of `records`, split at newlines, with the file offset it
/// must have had: the record's source offset, then each line after the
/// one before (so a pack that lost or reordered bytes shows as a line at
/// the wrong offset).
fn lines_of(records: &[Record]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for r in records {
        let src = r.source().expect("every record is attributed");
        let mut at = src.offset;
        for line in r.payload.split(|&b| b == b'\n') {
            out.push((at, line.to_vec()));
            at += line.len() as u64 + 1;
        }
    }
    out
}

/// The file's lines with their offsets.
fn file_lines(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        out.push((at, line[..line.len() - 1].to_vec()));
        at += line.len() as u64;
    }
    out
}

fn ship(brokers: &str, topic: &str, dir: &std::path::Path, extra: &[&str]) -> Logferry {
    let log = dir.join("app.log");
    let state = dir.join("state");
    let mut args = vec![
        "ship",
        "--file",
        log.to_str().unwrap(),
        "--topic",
        topic,
        "--brokers",
        brokers,
        "--checkpoint-dir",
        state.to_str().unwrap(),
        "--from-beginning",
        "--host",
        HOST,
        "-X",
        "linger.ms=5",
    ];
    args.extend_from_slice(extra);
    let lf = Logferry::start(&args, &dir.join("err"));
    lf.wait_for_log("following", Duration::from_secs(20));
    lf
}

/// Read until every line of `want` (offset, bytes) was seen, or panic
/// with what is missing.
fn read_all_lines(
    brokers: &str,
    topic: &str,
    want: &[(u64, Vec<u8>)],
    lf: &Logferry,
) -> Vec<Record> {
    let mut r = Reader::new(brokers, topic);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        r.poll_once(Duration::from_millis(200));
        let got = lines_of(&r.records);
        if got.len() >= want.len() {
            return r.records.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} lines after 90 s; stderr:\n{}",
            got.len(),
            want.len(),
            lf.stderr()
        );
    }
}

/// Lines written in bursts are shipped as packs of whole lines (fewer
/// records than lines, none over pack_bytes), each line once at its own
/// offset; the collector rebuilds the file byte for byte, `verify` finds
/// every line, and `logferry tail` shows a line from inside a pack alone,
/// at its offset.
#[test]
fn packs_carry_every_line_once_and_logferrys_readers_split_them() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("packs");
    create_topic(&brokers, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let mut lf = ship(&brokers, &topic, dir.path(), &["--pack-bytes", "4096"]);
    for burst in 0..20 {
        w.write_lines((burst * 500..(burst + 1) * 500).map(line));
    }
    let bytes = std::fs::read(&log).unwrap();
    let want = file_lines(&bytes);
    let records = read_all_lines(&brokers, &topic, &want, &lf);

    let mut got = lines_of(&records);
    got.sort();
    assert_eq!(got, want, "each line once, at its offset");
    assert!(
        records.len() * 10 < want.len(),
        "{} records for {} lines: not packed",
        records.len(),
        want.len()
    );
    assert!(records.iter().all(|r| r.payload.len() < 4096));
    assert!(
        records
            .iter()
            .filter(|r| r.payload.contains(&b'\n'))
            .all(|r| r.source().unwrap().packed),
        "a record of several lines says so"
    );
    lf.stop();

    // The collector writes each pack at its offset: the file, byte for byte.
    let out = dir.path().join("archive");
    let mut col = Logferry::start(
        &[
            "collect",
            "--no-index-topic",
            "--brokers",
            &brokers,
            "-t",
            &topic,
            "--group",
            &topic,
            "--out",
            out.to_str().unwrap(),
            "--commit-interval",
            "300ms",
        ],
        &dir.path().join("collect.err"),
    );
    let archived = out.join(HOST).join(log.strip_prefix("/").unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&archived).ok().as_deref() != Some(&bytes[..]) {
        assert!(
            Instant::now() < deadline,
            "archive {} not the file after 60 s; stderr:\n{}",
            archived.display(),
            col.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    col.stop();

    // verify audits each line of a pack at its offset.
    let report = audit(&brokers, &topic, std::slice::from_ref(&log), HOST).unwrap();
    assert_eq!(report.missing(), 0, "{report:?}");
    assert_eq!(report.files[0].lines, want.len() as u64);

    // tail: one line from the middle of a pack, alone, at its offset.
    let (at, inside) = want
        .iter()
        .find(|(at, _)| !records.iter().any(|r| r.source().unwrap().offset == *at))
        .expect("a line that does not begin its record");
    let pattern = format!("^{}", String::from_utf8_lossy(&inside[..8]));
    let mut tail = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["tail", "--brokers", &brokers, "-t", &topic])
        .args([
            "--from",
            "beginning",
            "--grep",
            &pattern,
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first line it prints (tail runs until stopped).
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    let _ = tail.kill();
    let _ = tail.wait();
    let first = first.expect("logferry tail printed no line in 60 s");
    let v: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("tail printed {first:?}: {e}"));
    assert_eq!(v["line"].as_str().unwrap().as_bytes(), &inside[..]);
    assert_eq!(v["offset"].as_u64(), Some(*at));
}

/// A pack over what a record may be (the producer's message.max.bytes
/// below pack_bytes) is never cut: its lines go out again as records of
/// whole lines under the limit, each line once, none truncated.
#[test]
fn a_pack_over_the_record_limit_goes_out_as_whole_lines() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("packs-limit");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let mut lf = ship(
        &brokers,
        &topic,
        dir.path(),
        &["--pack-bytes", "65536", "-X", "message.max.bytes=8192"],
    );
    for burst in 0..10 {
        w.write_lines((burst * 1000..(burst + 1) * 1000).map(line));
    }
    let bytes = std::fs::read(&log).unwrap();
    let want = file_lines(&bytes);
    let records = read_all_lines(&brokers, &topic, &want, &lf);
    let mut got = lines_of(&records);
    got.sort();
    assert_eq!(got, want, "each line once, whole, at its offset");
    assert!(records.iter().all(|r| !r.source().unwrap().truncated));
    assert!(records.iter().all(|r| r.payload.len() <= 8192));
    assert!(
        records.iter().any(|r| r.payload.contains(&b'\n')),
        "still packed, under the limit"
    );
    lf.wait_for_log("over the topic's size limit", Duration::from_secs(5));
    let counts: HashMap<u64, usize> = records.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.source().unwrap().offset).or_default() += 1;
        m
    });
    assert!(counts.values().all(|&n| n == 1), "a record sent twice");
    lf.stop();
}

/// A file whose lines all go to one partition (the default
/// `partition_by = "generation"`) holds at most two of librdkafka's
/// batches in flight, not the input's whole `max_inflight_bytes`: more
/// would only wait behind the one request librdkafka's idempotent
/// producer sends to a partition at a time, and make its thread spin
/// (docs/BENCHMARKS.md, "One request at a time per partition"). Sampled
/// from `/metrics` during a packed backlog on the real cluster.
#[test]
fn a_backlog_of_one_file_holds_two_batches_in_flight() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("packs-inflight");
    create_topic(&brokers, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    const N: usize = 600_000;
    for chunk in 0..20 {
        w.write_lines((chunk * N / 20..(chunk + 1) * N / 20).map(line));
    }
    const BATCH: usize = 256 << 10;
    let mut lf = ship(
        &brokers,
        &topic,
        dir.path(),
        &[
            "--pack-bytes",
            "65536",
            "-X",
            &format!("batch.size={BATCH}"),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let addr = metrics_addr(&lf);
    let series = "logferry_inflight_bytes{input=\"0\"}";
    let acked = "logferry_lines_acked_total{input=\"0\"}";
    let mut most = 0.0f64;
    let mut samples = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = get(&addr, "/metrics");
        let value = |name: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let Some(v) = value(series) {
            most = most.max(v);
            samples += usize::from(v > 0.0);
        }
        let lines = value("logferry_lines_read_total{input=\"0\"}").unwrap_or(0.0);
        if lines > 0.0
            && value(acked) == Some(lines)
            && value("logferry_lag_bytes{input=\"0\"}") == Some(0.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog not shipped in 120 s; last scrape:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two batches of key and value bytes, plus the bookkeeping counted per
    // record and one read past the bound (at least 64 KiB is read).
    let bound = (2 * BATCH + (64 << 10) + 64 * 200) as f64;
    assert!(
        samples >= 2,
        "the backlog was in flight in {samples} scrapes only"
    );
    assert!(
        most <= bound,
        "{most} bytes in flight at most, over the file's bound {bound} (max_inflight_bytes is 8 MiB)"
    );
    assert!(
        most > BATCH as f64 / 2.0,
        "{most}: the file never had a batch in flight"
    );
    // Every line read was acknowledged and none is left unread (waited
    // for above); that each arrives once at its offset, in packs, is the
    // first test's.
    lf.stop();
}
