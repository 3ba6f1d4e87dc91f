//! exactly_once against the real cluster: a read_committed consumer (this
//! file's own, not logferry's `verify`) sees every line exactly once
//! after kill -9 of logferry at random moments with rotations in between,
//! after a broker is killed mid-stream and restored, after all brokers are
//! down longer than the transaction timeout (memory bounded meanwhile),
//! and when two agents claim the same positions one is fenced.
//!
//! Tests that take brokers down (through `scripts/kafka`, on the cluster
//! `scripts/test` started) hold the write side of CLUSTER; the others hold
//! the read side, so no test sees another's outage.
//!
//! Every line is unique (numbered), so counting by payload finds both
//! missing and duplicated lines; the source attribution of each record is
//! checked too: one record per (generation, offset).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

static CLUSTER: RwLock<()> = RwLock::new(());
const HOST: &str = "eohost";

/// The positions topic, as an operator creates it: compacted.
fn create_positions_topic(brokers: &str, name: &str) {
    create_topic_with(brokers, name, 1, &[("cleanup.policy", "compact")]);
}

/// A configuration with exactly_once on, the given positions topic and
/// transaction interval (and transactional id, if any).
fn eo_config(
    dir: &Path,
    brokers: &str,
    topic: &str,
    include: &str,
    positions: &str,
    extra_kafka: &str,
) -> PathBuf {
    let path = config_toml(dir, brokers, HOST, topic, include, "", "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[kafka.properties]",
        &format!(
            "exactly_once = true\npositions_topic = \"{positions}\"\ntransaction_interval = \"300ms\"\n{extra_kafka}\n[kafka.properties]"
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Appends numbered lines in batches; the test thread rotates the file
/// between batches (under the same lock, so no line is written between a
/// copy and its truncation).
struct Feeder {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<()>,
}

impl Feeder {
    fn start(log: Arc<Mutex<LogWriter>>, per_batch: usize) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let (s, w) = (stop.clone(), written.clone());
        let handle = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                log.lock()
                    .unwrap()
                    .write_lines((n..n + per_batch).map(line));
                n += per_batch;
                w.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Feeder {
            stop,
            written,
            handle,
        }
    }

    /// Stop writing; how many lines were written.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap();
        self.written.load(Ordering::Relaxed)
    }
}

/// What a read_committed consumer saw of a topic.
struct Seen {
    /// Per line number, how many records carried it.
    lines: HashMap<usize, usize>,
    /// (generation, offset) of every attributed record.
    sources: Vec<(u64, u64)>,
    records: usize,
}

impl Seen {
    fn missing(&self, total: usize) -> usize {
        (0..total).filter(|n| !self.lines.contains_key(n)).count()
    }

    fn duplicated(&self) -> usize {
        self.lines.values().map(|c| c - 1).sum()
    }
}

/// A read_committed consumer of a whole topic, from its beginning.
struct CommittedReader {
    consumer: BaseConsumer,
    seen: Seen,
}

impl CommittedReader {
    fn new(brokers: &str, topic: &str) -> CommittedReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("eo-reader-{topic}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        CommittedReader {
            consumer,
            seen: Seen {
                lines: HashMap::new(),
                sources: Vec::new(),
                records: 0,
            },
        }
    }

    /// One poll; whether a record came.
    fn poll_once(&mut self, timeout: Duration) -> bool {
        match self.consumer.poll(timeout) {
            Some(Ok(m)) => {
                let seen = &mut self.seen;
                seen.records += 1;
                let payload = m.payload().unwrap_or_default();
                *seen.lines.entry(line_no(payload)).or_default() += 1;
                let rec = Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    headers: m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let src = rec.source().expect("every record is attributed");
                seen.sources
                    .push((src.generation.expect("generation").0, src.offset));
                true
            }
            Some(Err(e)) => {
                eprintln!("reader: {e}");
                false
            }
            None => false,
        }
    }

    /// Read until `n` distinct lines were seen or the deadline; whether
    /// they were.
    fn read_until(&mut self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.seen.lines.len() < n && Instant::now() < deadline {
            self.poll_once(Duration::from_millis(200));
        }
        self.seen.lines.len() >= n
    }

    /// Read until `total` distinct lines were seen and then nothing more
    /// came for a while (a duplicate would arrive after the last line), or
    /// the deadline.
    fn finish(mut self, total: usize, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            if self.seen.lines.len() >= total && quiet_since.elapsed() > Duration::from_secs(3) {
                break;
            }
            if self.poll_once(Duration::from_millis(200)) {
                quiet_since = Instant::now();
            }
        }
        self.seen
    }
}

/// Read `topic` with isolation.level=read_committed until `total` distinct
/// lines were seen and then nothing more came for a while, or the deadline.
fn read_committed(brokers: &str, topic: &str, total: usize, timeout: Duration) -> Seen {
    CommittedReader::new(brokers, topic).finish(total, timeout)
}

/// Every line once, and one record per (generation, offset).
fn assert_exactly_once(seen: &Seen, total: usize, what: &str) {
    let missing = seen.missing(total);
    if missing > 0 {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for n in (0..total).filter(|n| !seen.lines.contains_key(n)) {
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == n => r.1 = n,
                _ => ranges.push((n, n)),
            }
        }
        eprintln!("{what}: missing line ranges {ranges:?}");
    }
    let duplicated = seen.duplicated();
    eprintln!(
        "{what}: {total} lines written, {} records read_committed, {missing} missing, {duplicated} duplicated",
        seen.records
    );
    assert_eq!(missing, 0, "{what}: lines missing");
    assert_eq!(duplicated, 0, "{what}: lines duplicated");
    let distinct: HashSet<_> = seen.sources.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.sources.len(),
        "{what}: two records with the same (generation, offset)"
    );
}

fn seed() -> u64 {
    let seed = std::env::var("LOGFERRY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Lcg::from_time().0);
    eprintln!("seed {seed} (set LOGFERRY_TEST_SEED to repeat)");
    seed
}

#[test]
fn kill9_twenty_times_with_rotations_read_committed_sees_each_line_once() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-kill9");
    let positions = topic_name("eo-kill9-positions");
    create_topic(&brokers, &topic, 3);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let writer = Arc::new(Mutex::new(LogWriter::create(&log)));
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        "",
    );
    let args = ["ship", "-c", config.to_str().unwrap()];
    let feeder = Feeder::start(writer.clone(), 40);
    let mut rng = Lcg(seed());
    let mut rotations = 0;
    for round in 0..20 {
        let lf = Logferry::start(&args, &dir.path().join(format!("err{round}")));
        // The kill lands at a random moment: reading, between a commit's
        // records and its end, writing the local checkpoint...
        std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
        lf.signal(libc::SIGKILL);
        drop(lf);
        // Rotations alternate between rename+create and copytruncate, done
        // as logrotate does them (mv + reopen; cp + truncate) under the
        // writer's lock, so no line falls between copy and truncation.
        let mut w = writer.lock().unwrap();
        match round % 4 {
            1 => {
                rotations += 1;
                w.rotate_rename(&dir.path().join(format!("app.log.{rotations}")));
            }
            3 => {
                rotations += 1;
                w.rotate_copytruncate(&dir.path().join(format!("app.log.{rotations}")));
            }
            _ => {}
        }
    }
    let total = feeder.finish();
    let mut lf = Logferry::start(&args, &dir.path().join("err-final"));
    let seen = read_committed(&brokers, &topic, total, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    if seen.missing(total) > 0 {
        // Kept for a look at each round's log and the files.
        eprintln!("kept {}", dir.path().display());
        std::mem::forget(dir);
    }
    assert_exactly_once(&seen, total, "20 kill -9 with rotations");
}

#[test]
fn a_second_agent_on_the_same_positions_fences_the_first() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-fence");
    let positions = topic_name("eo-fence-positions");
    create_topic(&brokers, &topic, 1);
    create_positions_topic(&brokers, &positions);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    let writer = Arc::new(Mutex::new(LogWriter::create(&log)));
    // Two state directories (each agent locks its own), one transactional
    // id: the same positions.
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = format!("transactional_id = \"{}\"", topic_name("eo-fence-id"));
    let include = log.to_str().unwrap();
    let a_cfg = eo_config(a_dir.path(), &brokers, &topic, include, &positions, &id);
    let b_cfg = eo_config(b_dir.path(), &brokers, &topic, include, &positions, &id);
    let feeder = Feeder::start(writer, 20);
    let mut a = Logferry::start(
        &["ship", "-c", a_cfg.to_str().unwrap()],
        &a_dir.path().join("err"),
    );
    a.wait_for_log("following", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let mut b = Logferry::start(
        &["ship", "-c", b_cfg.to_str().unwrap()],
        &b_dir.path().join("err"),
    );
    let status = a.wait_timeout(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "the first agent was not fenced within 30 s; stderr:\n{}",
            a.stderr()
        )
    });
    a.child = None;
    assert!(!status.success(), "a fenced agent exits non-zero");
    let err = a.stderr();
    assert!(
        err.contains("fenced: another logferry with the same transactional.id"),
        "the fenced agent says why; stderr:\n{err}"
    );
    // B goes on from what A committed.
    std::thread::sleep(Duration::from_millis(1000));
    let total = feeder.finish();
    let seen = read_committed(&brokers, &topic, total, Duration::from_secs(60));
    assert!(b.stop().success(), "stderr:\n{}", b.stderr());
    assert_exactly_once(&seen, total, "two agents, one fenced");
}

#[test]
fn a_missing_positions_topic_is_named_with_the_command_to_create_it() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-nopos");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    LogWriter::create(&log).write_lines([line(0)]);
    let positions = topic_name("eo-nopos-positions");
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        "",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let status = lf
        .wait_timeout(Duration::from_secs(60))
        .expect("logferry stops when the positions topic is missing");
    lf.child = None;
    assert!(!status.success());
    let err = lf.stderr();
    assert!(
        err.contains(&format!(
            "the positions topic \"{positions}\" does not exist"
        )) && err.contains("cleanup.policy=compact"),
        "stderr:\n{err}"
    );
    // `check --connect` names it the same way, before any start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["check", "--connect", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "the positions topic \"{positions}\" does not exist"
        )),
        "{text}"
    );
}

/// A record the broker refuses (over the topic's max.message.bytes) fails
/// its transaction: it is aborted in-process, its lines are read again from
/// the last committed positions, the long line is cut to the size learned,
/// and a read_committed consumer sees every line once.
#[test]
fn an_aborted_transaction_is_read_again_and_seen_once() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-abort");
    let positions = topic_name("eo-abort-positions");
    // The limit applies to a whole (compressed) batch, so it stays well
    // above a batch of ordinary lines.
    create_topic_with(&brokers, &topic, 1, &[("max.message.bytes", "50000")]);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        "",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(30));
    w.write_lines((0..100).map(line));
    // Incompressible, so the broker sees its real size.
    let mut rng = Lcg(seed());
    let noise: String = (0..200_000)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    w.write_lines([format!("{:08} {noise}", 100)]);
    w.write_lines((101..200).map(line));
    let seen = read_committed(&brokers, &topic, 200, Duration::from_secs(60));
    lf.wait_for_log("aborting the transaction", Duration::from_secs(5));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_exactly_once(&seen, 200, "a refused record, aborted and read again");
}

/// The leader of partition 0 of `topic` (a node number of scripts/kafka).
fn partition_leader(brokers: &str, topic: &str) -> i32 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0].partitions()[0].leader()
}

/// After a broker fault, wait until every node is back and `topics` are
/// fully replicated, so the next test starts on a healthy cluster.
fn wait_cluster_healthy(brokers: &str, topics: &[&str]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let nodes = brokers.split(',').count();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let healthy = topics.iter().all(|t| {
            c.fetch_metadata(Some(t), Duration::from_secs(5))
                .is_ok_and(|md| {
                    md.brokers().len() == nodes
                        && md.topics()[0]
                            .partitions()
                            .iter()
                            .all(|p| p.isr().len() == p.replicas().len())
                })
        });
        if healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not recover within 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The leader of the data partition is killed while lines stream in: the
/// open transaction fails over or is aborted and read again, and after the
/// broker is restored a read_committed consumer sees every line once.
#[test]
fn a_broker_killed_mid_stream_and_restored_read_committed_sees_each_line_once() {
    let _g = CLUSTER.write().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-brokerkill");
    let positions = topic_name("eo-brokerkill-positions");
    create_topic(&brokers, &topic, 1);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let writer = Arc::new(Mutex::new(LogWriter::create(&log)));
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        "",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(30));
    let feeder = Feeder::start(writer, 20);
    let mut r = CommittedReader::new(&brokers, &topic);
    assert!(
        r.read_until(2000, Duration::from_secs(60)),
        "no lines committed before the fault; stderr:\n{}",
        lf.stderr()
    );
    let leader = partition_leader(&brokers, &topic);
    kafka_script(&["kill", &leader.to_string()]);
    let killed_at = Instant::now();
    let before = r.seen.lines.len();
    assert!(
        r.read_until(before + 2000, Duration::from_secs(90)),
        "no committed progress after the leader was killed; stderr:\n{}",
        lf.stderr()
    );
    eprintln!(
        "failover: 2000 more lines committed within {:?}",
        killed_at.elapsed()
    );
    kafka_script(&["restart", &leader.to_string()]);
    // Shipping goes on across the restored broker's return too.
    let before = r.seen.lines.len();
    assert!(
        r.read_until(before + 2000, Duration::from_secs(60)),
        "no committed progress after the broker was restored"
    );
    let total = feeder.finish();
    let seen = r.finish(total, Duration::from_secs(90));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_exactly_once(&seen, total, "a broker killed mid-stream and restored");
    wait_cluster_healthy(&brokers, &[&topic, &positions]);
}

/// All brokers down for longer than the transaction timeout while lines
/// keep being written: the open transaction's records time out, it is
/// aborted once the cluster is back, its lines are read again, and a
/// read_committed consumer sees every line once. Meanwhile reading pauses
/// at max_inflight_bytes, so memory stays bounded.
#[test]
fn all_brokers_down_longer_than_the_transaction_timeout_nothing_lost_or_duplicated_memory_bounded()
{
    let _g = CLUSTER.write().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    // Short, so the test is quick. message.timeout.ms may not exceed it,
    // nor may logferry's socket.timeout.ms (10 s) by more than 100 ms.
    const TXN_TIMEOUT: Duration = Duration::from_secs(10);
    let outage = TXN_TIMEOUT + TXN_TIMEOUT / 2;
    let inflight_bound: u64 = 2 << 20;
    let topic = topic_name("eo-outage");
    let positions = topic_name("eo-outage-positions");
    create_topic(&brokers, &topic, 1);
    create_positions_topic(&brokers, &positions);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let config = eo_config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        &positions,
        &format!("max_inflight_bytes = {inflight_bound}"),
    );
    let ms = TXN_TIMEOUT.as_millis();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.properties]\n",
        &format!(
            "[kafka.properties]\n\"transaction.timeout.ms\" = {ms}\n\"message.timeout.ms\" = {ms}\n"
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(30));
    let pid = lf.child.as_ref().unwrap().id();
    let mut n = 0;
    w.write_lines((n..n + 2000).map(line));
    n += 2000;
    let mut r = CommittedReader::new(&brokers, &topic);
    assert!(
        r.read_until(n, Duration::from_secs(30)),
        "stderr:\n{}",
        lf.stderr()
    );
    let baseline_kib = rss_kib(pid);

    let nodes = brokers.split(',').count();
    for i in 1..=nodes {
        kafka_script(&["kill", &i.to_string()]);
    }
    // Keep writing through the outage, 16 times the in-flight bound in
    // all: without the pause, memory would grow by about that.
    let written = 16 * inflight_bound as usize;
    let per_tick = written / line(0).len() / (outage.as_millis() / 500) as usize;
    let start = Instant::now();
    let mut peak_kib = 0;
    while start.elapsed() < outage {
        w.write_lines((n..n + per_tick).map(line));
        n += per_tick;
        peak_kib = peak_kib.max(rss_kib(pid));
        assert!(
            lf.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "logferry exited during the outage; stderr:\n{}",
            lf.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let file_mib = std::fs::metadata(&log).unwrap().len() >> 20;
    eprintln!(
        "outage {outage:?} (transaction timeout {TXN_TIMEOUT:?}): {n} lines ({file_mib} MiB); RSS baseline {baseline_kib} KiB, peak {peak_kib} KiB"
    );
    let ids: Vec<String> = (1..=nodes).map(|i| i.to_string()).collect();
    let mut restart = vec!["restart"];
    restart.extend(ids.iter().map(String::as_str));
    kafka_script(&restart);
    let seen = r.finish(n, Duration::from_secs(120));
    let err = lf.stderr();
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_exactly_once(
        &seen,
        n,
        "all brokers down longer than the transaction timeout",
    );
    // The outage did outlast the transaction: it was aborted and its lines
    // read again (not merely delivered late).
    assert!(
        err.contains("aborting the transaction"),
        "the transaction open during the outage was not aborted; stderr:\n{err}"
    );
    // Reading paused at the bound: RSS stayed far below what was written.
    let growth_kib = peak_kib.saturating_sub(baseline_kib);
    eprintln!("RSS growth during the outage: {growth_kib} KiB");
    assert!(
        growth_kib < 4 * (inflight_bound >> 10) + 8 * 1024,
        "RSS grew by {growth_kib} KiB during the outage (bound {} KiB)",
        inflight_bound >> 10
    );
    assert!(
        peak_kib < (inflight_bound >> 10) + 64 * 1024,
        "RSS peaked at {peak_kib} KiB"
    );
    wait_cluster_healthy(&brokers, &[&topic, &positions]);
}

/// A backlog (here a rate limit keeps the agent behind) is committed in
/// transactions that stretch up to ten intervals, not one per interval:
/// each boundary drains the pipeline, which a backlog pays for in
/// throughput. Lines are still seen exactly once.
#[test]
fn a_backlog_is_committed_in_stretched_transactions_and_seen_once() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
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
