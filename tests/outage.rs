//! All brokers down for longer than librdkafka's default 300 s message
//! timeout, while lines keep being written: nothing is lost, and memory
//! stays bounded by the in-flight limit because reading pauses.
//!
//! Its own test binary, so that no other test runs while the cluster is
//! down. LOGFERRY_OUTAGE_SECS shortens the outage for local runs (default
//! 360, as the release criteria ask).

mod common;

use std::time::{Duration, Instant};

use common::*;

const HOST: &str = "outagehost";

#[test]
fn all_brokers_down_for_six_minutes_loses_nothing_and_memory_stays_bounded() {
    let Some(brokers) = brokers() else { return };
    let outage = Duration::from_secs(
        std::env::var("LOGFERRY_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(360),
    );
    let topic = topic_name("outage");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let inflight_bound: u64 = 2 << 20;
    let bound_s = inflight_bound.to_string();
    let mut lf = Logferry::start(
        &[
            "ship",
            "--file",
            log.to_str().unwrap(),
            "--topic",
            &topic,
            "--brokers",
            &brokers,
            "--checkpoint-dir",
            state.to_str().unwrap(),
            "--host",
            HOST,
            "--max-inflight-bytes",
            &bound_s,
        ],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    let pid = lf.child.as_ref().unwrap().id();
    let mut n = 0;
    w.write_lines((n..n + 2000).map(line));
    n += 2000;
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(n, Duration::from_secs(30));
    let baseline_kib = rss_kib(pid);

    let nodes = brokers.split(',').count();
    for i in 1..=nodes {
        kafka_script(&["kill", &i.to_string()]);
    }
    // Keep writing through the outage: about 4x the in-flight bound in
    // total, so reading must pause.
    let start = Instant::now();
    let mut peak_kib = 0;
    let ticks = (outage.as_secs() / 2).max(1) as usize;
    // About 8 MiB in all (4x the bound), spread over the outage.
    let per_tick = (8 << 20) / line(0).len() / ticks;
    while start.elapsed() < outage {
        if n < ticks * per_tick {
            w.write_lines((n..n + per_tick).map(line));
            n += per_tick;
        }
        peak_kib = peak_kib.max(rss_kib(pid));
        assert!(
            lf.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "logferry exited during the outage"
        );
        std::thread::sleep(Duration::from_secs(2).min(outage.saturating_sub(start.elapsed())));
    }
    let file_mib = std::fs::metadata(&log).unwrap().len() >> 20;
    eprintln!(
        "outage {outage:?}: wrote {n} lines ({file_mib} MiB); RSS baseline {baseline_kib} KiB, peak {peak_kib} KiB"
    );
    let ids: Vec<String> = (1..=nodes).map(|i| i.to_string()).collect();
    let mut restart = vec!["restart"];
    restart.extend(ids.iter().map(String::as_str));
    kafka_script(&restart);
    let report = audit_until_complete(
        &brokers,
        &topic,
        std::slice::from_ref(&log),
        HOST,
        Duration::from_secs(180),
    );
    eprintln!("{report}");
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(report.missing(), 0, "{report}");
    assert_eq!(report.files[0].lines, n as u64);
    assert_eq!(
        report.duplicates(),
        0,
        "no crash, so no duplicates:\n{report}"
    );
    // Reading paused at the bound: RSS grew by far less than what was
    // written during the outage.
    let growth_kib = peak_kib.saturating_sub(baseline_kib);
    assert!(
        growth_kib < 4 * (inflight_bound >> 10) + 8 * 1024,
        "RSS grew by {growth_kib} KiB during the outage (bound {} KiB)",
        inflight_bound >> 10
    );
}
