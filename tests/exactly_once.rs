//! exactly_once against the real cluster: a read_committed consumer (the
//! tests' own, tests/common/committed.rs, not logferry's `verify`) sees
//! every line exactly once after kill -9 of logferry at random moments with rotations in between,
//! after a broker is killed mid-stream and restored, after all brokers are
//! down longer than the transaction timeout (memory bounded meanwhile),
//! and when two agents claim the same positions one is fenced (also when
//! it is idle).
//!
//! Tests that take brokers down (through `scripts/kafka`, on the cluster
//! `scripts/test` started) hold the write side of CLUSTER; the others hold
//! the read side, so no test sees another's outage.
//!
//! Every line is unique (numbered), so counting by payload finds both
//! missing and duplicated lines; the source attribution of each record is
//! checked too: one record per (generation, offset).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::committed::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

static CLUSTER: RwLock<()> = RwLock::new(());

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

/// An idle agent learns it was fenced without a line to send: it commits
/// its unchanged positions every 30 intervals (9 s here), and that request
/// is refused once another agent claimed its transactional id.
#[test]
fn an_idle_agent_replaced_by_another_is_fenced_within_thirty_intervals() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("eo-idle-fence");
    let positions = topic_name("eo-idle-fence-positions");
    create_topic(&brokers, &topic, 1);
    create_positions_topic(&brokers, &positions);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    LogWriter::create(&log).write_lines((0..10).map(line));
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = format!("transactional_id = \"{}\"", topic_name("eo-idle-fence-id"));
    let include = log.to_str().unwrap();
    let a_cfg = eo_config(a_dir.path(), &brokers, &topic, include, &positions, &id);
    let b_cfg = eo_config(b_dir.path(), &brokers, &topic, include, &positions, &id);
    let mut a = Logferry::start(
        &["ship", "-c", a_cfg.to_str().unwrap()],
        &a_dir.path().join("err"),
    );
    let mut reader = CommittedReader::new(&brokers, &topic);
    assert!(
        reader.read_until(10, Duration::from_secs(60)),
        "A shipped nothing"
    );
    // Both idle from here on: nothing more is written.
    let mut b = Logferry::start(
        &["ship", "-c", b_cfg.to_str().unwrap()],
        &b_dir.path().join("err"),
    );
    b.wait_for_log("positions read back", Duration::from_secs(30));
    let status = a.wait_timeout(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "the idle agent was not fenced within 30 s; stderr:\n{}",
            a.stderr()
        )
    });
    a.child = None;
    assert!(!status.success(), "a fenced agent exits non-zero");
    assert!(
        a.stderr()
            .contains("fenced: another logferry with the same transactional.id"),
        "the fenced agent says why; stderr:\n{}",
        a.stderr()
    );
    assert!(b.stop().success(), "stderr:\n{}", b.stderr());
    let seen = reader.finish(10, Duration::from_secs(10));
    assert_exactly_once(&seen, 10, "an idle agent fenced");
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
