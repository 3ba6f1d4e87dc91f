//! Metrics, health and status against the real Kafka cluster: counters
//! move during a stream and lag returns to 0; a missing topic (deliveries
//! fail as with every broker down, without stopping the shared cluster)
//! shows as growing lag, a moving error counter and a 503, and recovers
//! once the topic exists; `logferry status --json` positions equal the
//! ends of what the topic holds; checkpoints that cannot be written turn
//! /health 503 (with `--max-stall`) while shipping goes on, until they can.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::scrape::*;
use common::*;

/// The value of one series (`name{labels}` exactly as exposed).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn config(
    dir: &Path,
    brokers: &str,
    topic: &str,
    include: &str,
    extra_props: &str,
) -> std::path::PathBuf {
    let brokers: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let text = format!(
        r#"
host = "metrics-test"
scan_interval = "100ms"

[metrics]
listen = "127.0.0.1:0"
max_stall = "2s"

[kafka]
brokers = [{brokers}]

[kafka.properties]
"linger.ms" = 5
{extra_props}

[checkpoint]
directory = "{state}"

[[inputs]]
include = ["{include}"]
topic = "{topic}"
start_at = "beginning"
"#,
        brokers = brokers.join(", "),
        state = dir.join("state").display(),
    );
    let path = dir.join("logferry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `logferry status -c FILE --json`, as (generation, position, lag).
fn status(cfg: &Path) -> Vec<(String, u64, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["status", "-c", cfg.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["generation"].as_str().unwrap().to_string(),
                r["position"].as_u64().unwrap(),
                r["lag_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Per generation, where the lines the topic holds end (offset + length +
/// newline of the furthest line), from each record's source attribution.
fn topic_ends(reader: &Reader) -> HashMap<String, u64> {
    let mut ends = HashMap::new();
    for r in &reader.records {
        let s = r.source().expect("attributed record");
        let end = s.offset + r.payload.len() as u64 + 1;
        let e = ends.entry(s.generation.unwrap().to_string()).or_insert(0);
        *e = end.max(*e);
    }
    ends
}

#[test]
fn counters_move_during_a_stream_and_lag_returns_to_zero() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("metrics");
    create_topic(&brokers, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let cfg = config(dir.path(), &brokers, &topic, log.to_str().unwrap(), "");
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let addr = metrics_addr(&lf);
    lf.wait_for_log("following", Duration::from_secs(30));
    const N: usize = 30_000;
    for chunk in 0..10 {
        w.write_lines((chunk * N / 10..(chunk + 1) * N / 10).map(line));
    }
    until(&addr, "lines read", Duration::from_secs(30), |b| {
        value(b, "logferry_lines_read_total{input=\"0\"}").unwrap_or(0.0) > 0.0
    });
    let done = until(
        &addr,
        "every line acked and lag 0",
        Duration::from_secs(60),
        |b| {
            value(b, "logferry_lines_acked_total{input=\"0\"}") == Some(N as f64)
                && value(b, "logferry_lag_bytes{input=\"0\"}") == Some(0.0)
        },
    );
    let size = std::fs::metadata(&log).unwrap().len() as f64;
    // Record bytes: every line's value plus its key (the attribution).
    assert!(
        value(&done, "logferry_bytes_acked_total{input=\"0\"}").unwrap() >= size - N as f64,
        "{done}"
    );
    assert_eq!(
        value(&done, "logferry_files_followed{input=\"0\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&done, "logferry_oldest_unacked_seconds{input=\"0\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(&done, "logferry_inflight_bytes{input=\"0\"}"),
        Some(0.0)
    );
    assert!(
        value(&done, "logferry_checkpoint_writes_total").unwrap() >= 1.0,
        "{done}"
    );
    assert_eq!(get(&addr, "/health"), (200, "ok\n".to_string()));
    // Broker statistics arrive once a second.
    until(&addr, "broker state", Duration::from_secs(10), |b| {
        sum(b, "logferry_broker_up") >= 1.0
    });

    // Status while running equals the topic once the checkpoint caught up.
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(N, Duration::from_secs(60));
    let ends = topic_ends(&r);
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = loop {
        let rows = status(&cfg);
        if rows.iter().all(|(_, _, lag)| *lag == 0) && !rows.is_empty() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "status never caught up: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (generation, position, _) in &running {
        assert_eq!(Some(position), ends.get(generation), "while running");
    }
    assert!(lf.stop().success());
    let stopped = status(&cfg);
    assert_eq!(stopped, running, "after stop");
    let err = lf.stderr();
    assert!(err.contains("logferry ship starting"), "{err}");
    assert!(
        err.contains("lag_bytes=0"),
        "the stop line says no lag is left: {err}"
    );
}

#[test]
fn a_missing_topic_shows_as_lag_errors_and_503_then_recovers() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("metrics-missing");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    // Unknown-topic deliveries fail after this long (librdkafka's default
    // is 30 s), so errors show within the test.
    let cfg = config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        "\"topic.metadata.propagation.max.ms\" = 1000",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let addr = metrics_addr(&lf);
    lf.wait_for_log("following", Duration::from_secs(30));
    w.write_lines((0..1000).map(line));
    let first = until(&addr, "lag", Duration::from_secs(30), |b| {
        value(b, "logferry_lag_bytes{input=\"0\"}").unwrap_or(0.0) > 0.0
    });
    let lag0 = value(&first, "logferry_lag_bytes{input=\"0\"}").unwrap();
    w.write_lines((1000..2000).map(line));
    let stalled = until(
        &addr,
        "lag growing, errors, old lines",
        Duration::from_secs(60),
        |b| {
            value(b, "logferry_lag_bytes{input=\"0\"}").unwrap_or(0.0) > lag0
                && value(b, "logferry_oldest_unacked_seconds{input=\"0\"}").unwrap_or(0.0) > 2.0
                && sum(b, "logferry_delivery_errors_total") + sum(b, "logferry_client_errors_total")
                    > 0.0
        },
    );
    assert!(
        value(
            &stalled,
            "logferry_delivery_errors_total{kind=\"unknown_topic\"}"
        )
        .unwrap_or(0.0)
            > 0.0,
        "{stalled}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, reason) = loop {
        let h = get(&addr, "/health");
        if h.0 == 503 || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 503, "{reason}");
    assert!(reason.contains("no acknowledgement"), "{reason}");
    assert_eq!(reason.trim_end().lines().count(), 1, "one line: {reason}");

    // The topic appears: everything ships, lag returns to 0, healthy again.
    create_topic(&brokers, &topic, 1);
    until(&addr, "recovery", Duration::from_secs(120), |b| {
        value(b, "logferry_lag_bytes{input=\"0\"}") == Some(0.0)
            && value(b, "logferry_lines_acked_total{input=\"0\"}") == Some(2000.0)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&addr, "/health").0 != 200 {
        assert!(Instant::now() < deadline, "health never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(2000, Duration::from_secs(60));
    let mut got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, (0..2000).collect::<Vec<_>>(), "nothing lost");
    assert!(lf.stop().success());
}

#[test]
fn no_broker_listening_moves_client_errors_and_turns_health_503() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let cfg = config(
        dir.path(),
        "127.0.0.1:1",
        "nowhere",
        log.to_str().unwrap(),
        "",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let addr = metrics_addr(&lf);
    lf.wait_for_log("following", Duration::from_secs(30));
    w.write_lines((0..100).map(line));
    let b = until(
        &addr,
        "client errors and lag",
        Duration::from_secs(30),
        |b| {
            sum(b, "logferry_client_errors_total") > 0.0
                && value(b, "logferry_lag_bytes{input=\"0\"}").unwrap_or(0.0) > 0.0
        },
    );
    assert!(sum(&b, "logferry_broker_up") == 0.0, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&addr, "/health").0 != 503 {
        assert!(Instant::now() < deadline, "health stayed 200");
        std::thread::sleep(Duration::from_millis(100));
    }
    lf.signal(libc::SIGKILL);
    lf.wait_timeout(Duration::from_secs(10));
}

#[test]
fn metrics_settings_are_validated_naming_the_key_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cfg = config(dir.path(), "127.0.0.1:9092", "t", "/tmp/x.log", "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("max_stall = \"2s\"", "max_stal = \"2s\""),
    )
    .unwrap();
    let (code, err) = run(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("max_stal") && err.contains("[metrics]"),
        "{err}"
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("max_stal = \"2s\"", "")
            .replace("127.0.0.1:0", "localhost"),
    )
    .unwrap();
    let (code, err) = run(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"listen\" in [metrics]") && err.contains("localhost"),
        "{err}"
    );
    let (code, err) = run(&[
        "ship",
        "-l",
        "/tmp/x.log",
        "-t",
        "t",
        "--metrics-listen",
        "nope:1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--metrics-listen") && err.contains("nope:1"),
        "{err}"
    );
}

#[test]
fn health_turns_503_while_checkpoints_cannot_be_written_and_recovers() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("metrics-ckpt");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    // Quick mode, with the stall bound given by its flag.
    let mut lf = Logferry::start(
        &[
            "ship",
            "-l",
            log.to_str().unwrap(),
            "-t",
            &topic,
            "--brokers",
            &brokers,
            "--checkpoint-dir",
            state.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--max-stall",
            "2s",
        ],
        &dir.path().join("err"),
    );
    let addr = metrics_addr(&lf);
    lf.wait_for_log("following", Duration::from_secs(30));
    let acked = |b: &str| value(b, "logferry_lines_acked_total{input=\"0\"}").unwrap_or(0.0);
    w.write_lines((0..100).map(line));
    until(&addr, "first lines acked", Duration::from_secs(30), |b| {
        acked(b) == 100.0
    });
    assert_eq!(get(&addr, "/health").0, 200);
    // A directory where the checkpoint's temporary file goes: every write
    // fails (EISDIR), as it would on a full or read-only disk, even for
    // root, who ignores permissions.
    let blocker = state.join("checkpoints.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    w.write_lines((100..200).map(line));
    until(
        &addr,
        "failing checkpoint writes",
        Duration::from_secs(30),
        |b| value(b, "logferry_checkpoint_failures_total").unwrap_or(0.0) > 0.0,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body) = get(&addr, "/health");
        if code == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "health stayed {code}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("checkpoint not written"), "{body}");
    // Shipping goes on meanwhile: only the checkpoint is stuck.
    w.write_lines((200..300).map(line));
    until(
        &addr,
        "lines acked while failing",
        Duration::from_secs(30),
        |b| acked(b) == 300.0,
    );
    assert_eq!(get(&addr, "/health").0, 503, "still failing");
    // The disk is writable again: the next write succeeds, healthy again.
    std::fs::remove_dir(&blocker).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&addr, "/health").0 != 200 {
        assert!(Instant::now() < deadline, "health never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lf.stop().success());
    assert!(lf.stderr().contains("checkpoint not saved"));
    let positions = checkpoint_positions(&state);
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(positions.len(), 1, "{positions:?}");
    assert_eq!(positions[0].1, size, "the last checkpoint holds every line");
}
