//! The collector's `/metrics` and `/health` against a real Kafka cluster:
//! an agent ships a file, `logferry collect --metrics-listen` rebuilds it;
//! record and byte counters move with each batch, consumer lag returns to
//! 0 once the stream is consumed, no gap is open, `/health` answers 200.

mod common;

use std::process::Command;
use std::time::Duration;

use common::scrape::*;
use common::*;

/// Records consumed, bytes written, lag 0 on every partition, no hole.
fn caught_up(body: &str, records: usize, bytes: u64, partitions: usize) -> bool {
    let lag = series(body, "logferry_collect_consumer_lag");
    sum(body, "logferry_collect_records_total") == records as f64
        && sum(body, "logferry_collect_bytes_written_total") == bytes as f64
        && lag.len() == partitions
        && lag.iter().all(|(_, v)| *v == 0.0)
        && sum(body, "logferry_collect_open_holes") == 0.0
}

#[test]
fn collector_metrics_follow_a_stream_and_lag_returns_to_zero() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("collect-metrics");
    create_topic(&brokers, &topic, 2);
    let dir = LogDir::new();
    let path = dir.logs.join("app.log");
    let mut w = LogWriter::create(&path);
    w.write_lines((0..2000).map(line));
    let cfg = config_toml(dir.path(), &brokers, "cm-host", &topic, &dir.glob(), "", "");
    let _ship = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("ship.log"),
    );
    let out = dir.path().join("out");
    let group = format!("{topic}-g");
    let index = index_topic(&brokers, "collect-metrics");
    let mut collector = Logferry::start(
        &[
            "collect",
            "--index-topic",
            &index,
            "--brokers",
            &brokers,
            "-t",
            &topic,
            "--group",
            &group,
            "--out",
            out.to_str().unwrap(),
            "--commit-interval",
            "300ms",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &dir.path().join("collect.log"),
    );
    let addr = metrics_addr(&collector);

    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let first = until(
        &addr,
        "the first batch collected and committed",
        Duration::from_secs(60),
        |b| caught_up(b, 2000, size(&path), 2) && sum(b, "logferry_collect_commits_total") >= 1.0,
    );
    assert_eq!(sum(&first, "logferry_collect_open_gaps"), 0.0, "{first}");
    assert_eq!(
        sum(&first, "logferry_collect_oldest_gap_seconds"),
        0.0,
        "{first}"
    );
    assert_eq!(sum(&first, "logferry_collect_generations"), 1.0, "{first}");
    assert_eq!(sum(&first, "logferry_collect_disk_full"), 0.0, "{first}");
    assert!(
        sum(&first, "logferry_collect_fsync_seconds_count") >= 1.0,
        "{first}"
    );
    let attributed = format!("{{topic=\"{topic}\",kind=\"attributed\"}}");
    assert!(
        series(&first, "logferry_collect_records_total").contains(&(attributed.as_str(), 2000.0)),
        "{first}"
    );

    // A second batch: the counters move again, a commit follows, lag
    // returns to 0 again. Lag comes from statistics taken once a second,
    // so a scrape can count the records before the lag saw them: the
    // commit after them is what says the batch is done.
    w.write_lines((2000..5000).map(line));
    let commits = sum(&first, "logferry_collect_commits_total");
    until(
        &addr,
        "the second batch collected and committed",
        Duration::from_secs(60),
        |b| {
            caught_up(b, 5000, size(&path), 2) && sum(b, "logferry_collect_commits_total") > commits
        },
    );
    let (code, body) = get(&addr, "/health");
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    // What the figures claim is on disk.
    let rebuilt = out.join("cm-host").join(path.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(&rebuilt).unwrap(),
        std::fs::read(&path).unwrap()
    );
    let st = collector.stop();
    assert!(st.success(), "{}", collector.stderr());
}

#[test]
fn a_bad_metrics_address_is_refused_naming_the_flag_or_key() {
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
    let o = dir.path().join("out");
    let (code, err) = run(&[
        "collect",
        "-t",
        "t",
        "-o",
        o.to_str().unwrap(),
        "--metrics-listen",
        "nope:1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--metrics-listen") && err.contains("nope:1"),
        "{err}"
    );
    let cfg = dir.path().join("collect.toml");
    std::fs::write(
        &cfg,
        format!(
            "[collect]\ntopics = \"t\"\nout = \"{}\"\n[metrics]\nlisten = \"localhost\"\n",
            o.display()
        ),
    )
    .unwrap();
    let (code, err) = run(&["collect", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"listen\" in [metrics]") && err.contains("localhost"),
        "{err}"
    );
}
