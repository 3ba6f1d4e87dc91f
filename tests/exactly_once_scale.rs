//! exactly_once at scale, against the real cluster: a backlog is committed
//! in stretched transactions, and the positions of 30,000 files (more than
//! one record holds) are committed in parts and read back at a restart.
//! A read_committed consumer of the tests' own (tests/common/committed.rs)
//! counts every numbered line.

mod common;

use std::time::{Duration, Instant};

use common::committed::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A backlog (here a rate limit keeps the agent behind) is committed in
/// transactions that stretch up to ten intervals, not one per interval:
/// each boundary drains the pipeline, which a backlog pays for in
/// throughput. Lines are still seen exactly once.
#[test]
fn a_backlog_is_committed_in_stretched_transactions_and_seen_once() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-stretch");
    let positions = topic_name("eo-stretch-positions");
    create_topic(&brokers, &topic, 1);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let total = 40_000; // about 4.2 MB: 4 s at the limit
    LogWriter::create(&log).write_lines((0..total).map(line));
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        "max_inflight_bytes = \"64KiB\"",
    );
    let interval = Duration::from_millis(100);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "transaction_interval = \"300ms\"",
            "transaction_interval = \"100ms\"",
        )
        .replacen("[kafka]", "max_bytes_per_sec = \"1MB\"\n\n[kafka]", 1)
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&config, text).unwrap();
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let addr = scrape::metrics_addr(&lf);
    let committed = || {
        let body = scrape::get(&addr, "/metrics").1;
        scrape::sum(&body, "logferry_transactions_committed_total")
    };
    // Count the commits over a window in which the agent is behind: from
    // the first lines visible to three quarters of them.
    let mut reader = CommittedReader::new(&brokers, &topic);
    assert!(
        reader.read_until(1, Duration::from_secs(60)),
        "nothing visible"
    );
    let (t1, c1) = (Instant::now(), committed());
    assert!(
        reader.read_until(total * 3 / 4, Duration::from_secs(120)),
        "lines stopped becoming visible; stderr:\n{}",
        lf.stderr()
    );
    let (window, c2) = (t1.elapsed(), committed());
    let seen_all = reader.read_until(total, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert!(seen_all, "not every line became visible");
    let seen = reader.finish(total, Duration::from_secs(30));
    assert_exactly_once(&seen, total, "a backlog in stretched transactions");
    assert!(
        window >= Duration::from_secs(1),
        "the rate limit kept the agent behind for {window:?} only"
    );
    // One commit per interval would be window / (100 ms + a drain and a
    // commit); stretched to ten intervals, a tenth of that. The bound is
    // twice the stretched rate.
    let bound = (window.as_secs_f64() / (5.0 * interval.as_secs_f64())).ceil() + 2.0;
    let during = c2 - c1;
    eprintln!("{during} transactions committed in {window:?} behind (bound {bound})");
    assert!(
        during <= bound,
        "{during} transactions committed in {window:?} behind (bound {bound}): a backlog's transactions were not stretched"
    );
}

/// The last committed positions in `topic` (one partition, one agent):
/// how many parts, and their bytes together (the latest record of each
/// key; parts carry the agent's key, a NUL and their number).
fn positions_size(brokers: &str, topic: &str) -> (usize, usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("eo-parts-{topic}"))
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latest = std::collections::HashMap::new();
    let mut parts = 1;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = m.key().unwrap_or_default().to_vec();
                if !key.contains(&0) {
                    parts = m
                        .headers()
                        .and_then(|hs| hs.iter().find(|h| h.key == "parts"))
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                        .unwrap_or(1);
                }
                latest.insert(key, m.payload_len());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    let mut keys: Vec<_> = latest.into_iter().collect();
    keys.sort();
    (parts, keys.iter().take(parts).map(|(_, len)| len).sum())
}

/// 30,000 files: their positions (about 43 bytes a file compressed, 1.3
/// MB) are more than one record may hold (librdkafka's
/// `message.max.bytes`, 1 MB), so they are committed in parts. After a
/// clean stop the local checkpoint is deleted: the restart reads the parts
/// back from the positions topic, and a line appended to 100 files is
/// shipped once, nothing before it again.
#[test]
fn positions_of_thirty_thousand_files_are_committed_in_parts_and_read_back() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-many");
    let positions = topic_name("eo-many-positions");
    create_topic(&brokers, &topic, 3);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let (dirs, per_dir) = (150, 200);
    let total = dirs * per_dir;
    let file = |n: usize| {
        logs.join(format!("d{}", n / per_dir))
            .join(format!("f{}.log", n % per_dir))
    };
    for d in 0..dirs {
        std::fs::create_dir_all(logs.join(format!("d{d}"))).unwrap();
    }
    for n in 0..total {
        std::fs::write(file(n), format!("{}\n", line(n))).unwrap();
    }
    let include = format!("{}/*/*.log", logs.display());
    let config = eo_config(dir.path(), &brokers, &topic, &include, &positions, "");
    let args = ["ship", "-c", config.to_str().unwrap()];
    let mut lf = Logferry::start(&args, &dir.path().join("err1"));
    let mut reader = CommittedReader::new(&brokers, &topic);
    assert!(
        reader.read_until(total, Duration::from_secs(300)),
        "{} of {total} lines visible; stderr:\n{}",
        reader.seen.lines.len(),
        lf.stderr()
    );
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    let (parts, bytes) = positions_size(&brokers, &positions);
    eprintln!("positions: {bytes} bytes in {parts} parts");
    assert!(
        bytes > 1_000_000 && parts > 1,
        "{bytes} bytes of positions in {parts} parts: more than librdkafka's message.max.bytes, so parts are needed"
    );
    // The local checkpoint is a cache: without it, the committed parts
    // are all a restart has.
    std::fs::remove_file(dir.path().join("state/checkpoints.json")).unwrap();
    for n in 0..100 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(file(n))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{}\n", line(total + n)).as_bytes()).unwrap();
    }
    let mut lf = Logferry::start(&args, &dir.path().join("err2"));
    assert!(
        reader.read_until(total + 100, Duration::from_secs(300)),
        "the appended lines were not shipped; stderr:\n{}",
        lf.stderr()
    );
    let seen = reader.finish(total + 100, Duration::from_secs(30));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert!(
        lf.stderr().contains("positions read back"),
        "the restart did not read the positions back:\n{}",
        lf.stderr()
    );
    assert_exactly_once(
        &seen,
        total + 100,
        "30,000 files, positions in parts, restarted",
    );
}
