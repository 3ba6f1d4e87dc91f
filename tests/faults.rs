//! Fault tests against the real 3-broker cluster (RF 3, min.insync.replicas
//! 2): each appends numbered lines, injects a fault, and ends with
//! `logferry::verify`: zero lines missing; duplicates only where logferry
//! was killed between ack and checkpoint.
//!
//! Tests that take brokers down hold the write side of CLUSTER; the others
//! hold the read side, so no test sees another's outage.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;

static CLUSTER: RwLock<()> = RwLock::new(());
const HOST: &str = "faulthost";

fn args<'a>(file: &'a str, topic: &'a str, brokers: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "ship",
        "--file",
        file,
        "--topic",
        topic,
        "--brokers",
        brokers,
        "--checkpoint-dir",
        state,
        "--host",
        HOST,
        "-X",
        "linger.ms=5",
    ]
}

/// A writer thread appending numbered lines at a steady pace into a
/// shared log (so the test thread can rotate it between batches).
struct Feeder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<usize>>,
}

impl Feeder {
    fn start(log: Arc<Mutex<LogWriter>>, per_batch: usize, pause: Duration) -> Feeder {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, l) = (stop.clone(), log);
        let handle = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                l.lock().unwrap().write_lines((n..n + per_batch).map(line));
                n += per_batch;
                std::thread::sleep(pause);
            }
            n
        });
        Feeder {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

fn assert_complete(report: &logferry::verify::VerifyReport, expected_lines: usize) {
    eprintln!("{report}");
    let lines: u64 = report.files.iter().map(|f| f.lines).sum();
    assert_eq!(lines, expected_lines as u64, "lines in the source files");
    assert_eq!(report.missing(), 0, "lines missing:\n{report}");
    assert!(report.ok(), "{report}");
    let out_of_order: u64 = report.files.iter().map(|f| f.out_of_order).sum();
    assert_eq!(out_of_order, 0, "{report}");
}

#[test]
fn kill9_logferry_twenty_times_with_rotations_loses_nothing() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("kill9");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let writer = Arc::new(Mutex::new(LogWriter::create(&log)));
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let mut a = args(log_s, &topic, &brokers, state_s);
    a.push("--from-beginning");
    let feeder = Feeder::start(writer.clone(), 40, Duration::from_millis(5));
    let mut rng = Lcg::from_time();
    let mut rotations = 0;
    for round in 0..20 {
        let lf = Logferry::start(&a, &dir.path().join(format!("err{round}")));
        // The fault lands at a random moment of shipping.
        std::thread::sleep(Duration::from_millis(150 + rng.below(700)));
        lf.signal(libc::SIGKILL);
        drop(lf);
        if round % 4 == 1 {
            // Rotate while logferry is down: its unread tail must be found
            // under the rotated name by identity.
            rotations += 1;
            writer
                .lock()
                .unwrap()
                .rotate_rename(&dir.path().join(format!("app.log.{rotations}")));
        }
    }
    let total = feeder.finish();
    let mut lf = Logferry::start(&a, &dir.path().join("err-final"));
    let files = files_with_prefix(dir.path(), "app.log");
    assert_eq!(files.len(), rotations + 1);
    let report = audit_until_complete(&brokers, &topic, &files, HOST, Duration::from_secs(90));
    assert!(lf.stop().success());
    assert_complete(&report, total);
    eprintln!("duplicates after 20 kill -9: {}", report.duplicates());
}

/// One file written at a steady pace, shipped by logferry into a fresh
/// one-partition topic: the setup of the broker fault tests.
struct Streaming {
    topic: String,
    dir: tempfile::TempDir,
    log: PathBuf,
    state: PathBuf,
    lf: Logferry,
    feeder: Feeder,
}

impl Streaming {
    fn start(brokers: &str, name: &str) -> Streaming {
        let topic = topic_name(name);
        create_topic(brokers, &topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let state = dir.path().join("state");
        let writer = Arc::new(Mutex::new(LogWriter::create(&log)));
        let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
        let lf = Logferry::start(
            &args(log_s, &topic, brokers, state_s),
            &dir.path().join("err"),
        );
        lf.wait_for_log("following", Duration::from_secs(20));
        let feeder = Feeder::start(writer, 20, Duration::from_millis(5));
        Streaming {
            topic,
            dir,
            log,
            state,
            lf,
            feeder,
        }
    }
}

/// End of a broker fault test: stop writing, every line in the topic once
/// (the idempotent producer: no duplicates without a logferry crash), a
/// clean stop, and the cluster healthy again for the next test.
fn finish_streaming(brokers: &str, topic: &str, log: &Path, feeder: Feeder, mut lf: Logferry) {
    let total = feeder.finish();
    let report = audit_until_complete(
        brokers,
        topic,
        &[log.to_path_buf()],
        HOST,
        Duration::from_secs(90),
    );
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_complete(&report, total);
    assert_eq!(
        report.duplicates(),
        0,
        "idempotent producer: no duplicates without a logferry crash"
    );
    wait_cluster_healthy(brokers, topic);
}

#[test]
fn one_broker_killed_mid_stream_loses_and_duplicates_nothing() {
    let _g = CLUSTER.write().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let Streaming {
        topic,
        dir: _dir,
        log,
        state: _,
        lf,
        feeder,
    } = Streaming::start(&brokers, "brokerkill");
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(3000, Duration::from_secs(60));
    // Kill the partition leader: the producer must fail over.
    let leader = partition_leader(&brokers, &topic);
    kafka_script(&["kill", &leader.to_string()]);
    let killed_at = Instant::now();
    let seen = r.records.len();
    r.read_until(seen + 3000, Duration::from_secs(90));
    assert!(
        r.records.len() >= seen + 3000,
        "no progress after the leader was killed"
    );
    eprintln!("failover: 3000 more lines within {:?}", killed_at.elapsed());
    kafka_script(&["restart", &leader.to_string()]);
    finish_streaming(&brokers, &topic, &log, feeder, lf);
}

/// A hung broker (SIGSTOP: connections stay open, nothing answers) is the
/// leader of the only partition. Shipping stalls until the request to it
/// times out and the partition has a new leader, then goes on: bounded by
/// logferry's request timeouts, not librdkafka's minute-long defaults.
#[test]
fn hung_leader_stalls_shipping_only_briefly() {
    let _g = CLUSTER.write().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let Streaming {
        topic,
        dir: _dir,
        log,
        state,
        lf,
        feeder,
    } = Streaming::start(&brokers, "hung");
    // Progress is what the broker acknowledged: the checkpointed position
    // (a consumer would measure its own timeouts against the hung node).
    let acked = || {
        checkpoint_positions(&state)
            .iter()
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(0)
    };
    let wait_acked_past = |at: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked() <= at && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        acked() > at
    };
    assert!(wait_acked_past(50_000), "no progress before the fault");
    let leader = partition_leader(&brokers, &topic);
    kafka_script(&["pause", &leader.to_string()]);
    let hung_at = Instant::now();
    // What was written up to now, plus a little: acknowledged past it means
    // lines written after the hang went through.
    let written = std::fs::metadata(&log).unwrap().len();
    let progressed = wait_acked_past(written + 20_000);
    let resumed = hung_at.elapsed();
    kafka_script(&["resume", &leader.to_string()]);
    eprintln!("hung leader: lines written after the hang acknowledged within {resumed:?}");
    assert!(progressed, "no progress within 60 s of the leader hanging");
    assert!(
        resumed < Duration::from_secs(30),
        "a hung leader stalled shipping for {resumed:?}"
    );
    finish_streaming(&brokers, &topic, &log, feeder, lf);
}

fn partition_leader(brokers: &str, topic: &str) -> i32 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0].partitions()[0].leader()
}

/// After a fault test, wait until the topic is fully replicated again so
/// the next test starts on a healthy cluster.
fn wait_cluster_healthy(brokers: &str, topic: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let nodes = brokers.split(',').count();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let ok = md.brokers().len() == nodes
                && md.topics()[0]
                    .partitions()
                    .iter()
                    .all(|p| p.isr().len() == p.replicas().len());
            if ok {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not recover within 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn rotation_while_stopped_rename_and_copytruncate() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("stopped-rotate");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let a = args(log_s, &topic, &brokers, state_s);
    let mut lf = Logferry::start(&a, &dir.path().join("err1"));
    lf.wait_for_log("following", Duration::from_secs(20));
    let mut n = 0;
    w.write_lines((n..n + 1000).map(line));
    n += 1000;
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(n, Duration::from_secs(30));
    assert!(lf.stop().success());

    // While stopped: more lines, a rename+create rotation, lines into the
    // new file, then a copytruncate of that one, then more lines.
    w.write_lines((n..n + 500).map(line));
    n += 500;
    w.rotate_rename(&dir.path().join("app.log.1"));
    w.write_lines((n..n + 700).map(line));
    n += 700;
    w.rotate_copytruncate(&dir.path().join("app.log.2"));
    w.write_lines((n..n + 300).map(line));
    n += 300;

    let mut lf = Logferry::start(&a, &dir.path().join("err2"));
    r.read_until(n, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    // The copy (app.log.2) holds the same lines as the truncated file's old
    // content; whichever name they were read from, each line is in the topic
    // exactly once, in order.
    let got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    assert!(
        got == (0..n).collect::<Vec<_>>(),
        "lines lost, duplicated or reordered ({} of {n}); stderr:\n{}",
        got.len(),
        lf.stderr()
    );
    assert_eq!(topic_count(&brokers, &topic), n as i64);
}

#[test]
fn checkpoint_disk_full_keeps_shipping_and_recovers() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("diskfull");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // A 64 KiB tmpfs for the checkpoint directory only.
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount");
    assert!(
        st.success(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(state.clone());
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let a = args(log_s, &topic, &brokers, state_s);
    let mut lf = Logferry::start(&a, &dir.path().join("err"));
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..1000).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(1000, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !state.join("checkpoints.json").exists()
        || checkpoint_positions(&state)[0].1 != std::fs::metadata(&log).unwrap().len()
    {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Fill the disk, keep writing lines.
    let filler = state.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 << 10]);
    w.write_lines((1000..3000).map(line));
    r.read_until(3000, Duration::from_secs(30));
    assert_eq!(
        r.records.len(),
        3000,
        "shipping goes on while checkpoints fail"
    );
    lf.wait_for_log("checkpoint not saved", Duration::from_secs(20));
    // The previous checkpoint is intact.
    let before = checkpoint_positions(&state);
    assert_eq!(before.len(), 1);
    // Free the space: the next checkpoint succeeds and covers everything.
    std::fs::remove_file(&filler).unwrap();
    let want = std::fs::metadata(&log).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while checkpoint_positions(&state)[0].1 != want {
        assert!(
            Instant::now() < deadline,
            "checkpoint did not catch up after space was freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lf.stop().success());
    let got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    assert_eq!(got, (0..3000).collect::<Vec<_>>());
}

/// A file that vanishes while logferry is stopped, with lines it had read
/// but the broker never acknowledged (here: the topic is missing), is a loss
/// said out loud: an ERROR with the byte count at the next start, and
/// `verify --checkpoint-dir` fails naming it. Never silence.
#[test]
fn vanished_file_with_unshipped_bytes_is_reported_lost() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("vanished");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let mut ship = args(log_s, &topic, &brokers, state_s);
    ship.extend(["--shutdown-timeout", "1", "--from-beginning"]);
    let mut lf = Logferry::start(&ship, &dir.path().join("err1"));
    lf.wait_for_log("topic does not exist", Duration::from_secs(30));
    w.write_lines((0..100).map(line));
    let size = std::fs::metadata(&log).unwrap().len();
    lf.wait_for_log("following", Duration::from_secs(20));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    drop(w);
    std::fs::remove_file(&log).unwrap();
    let mut lf = Logferry::start_with_env(
        &ship,
        &[("LOGFERRY_UNFINISHED_TTL_SECS", "1")],
        &dir.path().join("err2"),
    );
    lf.wait_for_log("these bytes are lost", Duration::from_secs(30));
    let err = lf.stderr();
    assert!(
        err.contains(&format!("bytes={size}")) && err.contains(log_s),
        "the loss names the file and its byte count:\n{err}"
    );
    assert!(lf.stop().success());
    // An empty topic and an empty file to audit: only the loss record can
    // make the audit fail.
    create_topic(&brokers, &topic, 1);
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args([
            "verify",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--host",
            HOST,
        ])
        .args(["--checkpoint-dir", state_s, "--timeout", "20"])
        .arg(&empty)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("vanished") && text.contains(&format!("{size} bytes")),
        "{text}"
    );
}

#[test]
fn missing_topic_is_named_and_lines_wait_for_it() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("missing");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let mut lf = Logferry::start(
        &args(log_s, &topic, &brokers, state_s),
        &dir.path().join("err"),
    );
    lf.wait_for_log("topic does not exist", Duration::from_secs(30));
    assert!(lf.stderr().contains(&topic), "the error names the topic");
    w.write_lines((0..500).map(line));
    // Nothing is dropped while the topic is missing: once it exists, every
    // line arrives.
    create_topic(&brokers, &topic, 1);
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(500, Duration::from_secs(120));
    assert!(lf.stop().success());
    let got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted,
        (0..500).collect::<Vec<_>>(),
        "every line arrived once the topic existed"
    );
}

#[test]
fn record_over_the_topic_size_limit_is_truncated_not_dropped() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("toolarge");
    // The limit applies to a whole (compressed) batch, so it stays well
    // above a batch of ordinary lines.
    create_topic_with(&brokers, &topic, 1, &[("max.message.bytes", "50000")]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let mut lf = Logferry::start(
        &args(log_s, &topic, &brokers, state_s),
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    // Incompressible, so the broker sees its real size.
    let mut rng = Lcg::from_time();
    let noise: String = (0..200_000)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    let big = format!("{:08} {noise}", 100);
    w.write_lines((0..100).map(line));
    w.write_lines([big.clone()]);
    w.write_lines((101..200).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(200, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(
        r.records.len(),
        200,
        "every line arrived, the big one cut to fit"
    );
    let mut normal = 0;
    for rec in &r.records {
        let src = rec.source().expect("source attribution");
        if line_no(&rec.payload) == 100 {
            assert!(src.truncated, "the cut record is flagged");
            assert!(rec.payload.len() < 50_000 && big.as_bytes().starts_with(&rec.payload));
        } else {
            assert!(!src.truncated);
            assert_eq!(rec.payload, line(line_no(&rec.payload)).as_bytes());
            normal += 1;
        }
    }
    assert_eq!(normal, 199, "no innocent record was cut");
    assert!(lf.stderr().contains("size limit"), "the cut is reported");
}

#[test]
fn fatal_producer_error_replaces_the_producer_and_loses_nothing() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("fatal");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    // librdkafka's own fault injection raises a fatal idempotence error
    // (as a fenced producer would see) after 2000 lines were sent.
    let mut lf = Logferry::start_with_env(
        &args(log_s, &topic, &brokers, state_s),
        &[("LOGFERRY_FAULT_FATAL_AFTER", "2000")],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    for chunk in 0..10 {
        w.write_lines((chunk * 500..chunk * 500 + 500).map(line));
    }
    let report = audit_until_complete(
        &brokers,
        &topic,
        std::slice::from_ref(&log),
        HOST,
        Duration::from_secs(60),
    );
    lf.wait_for_log("replacing it and resending", Duration::from_secs(10));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_complete(&report, 5000);
}

#[test]
fn a_missing_topic_stalls_only_its_own_input() {
    let _g = CLUSTER.read().unwrap_or_else(|p| p.into_inner());
    let Some(brokers) = brokers() else { return };
    let missing = topic_name("stalled");
    let flowing = topic_name("flowing");
    create_topic(&brokers, &flowing, 1);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let list: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let cfg = dir.path().join("logferry.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
host = "{HOST}"
scan_interval = "100ms"
[kafka]
brokers = [{list}]
max_inflight_bytes = "256KiB"
[kafka.properties]
"linger.ms" = 5
[checkpoint]
directory = "{state}"
[[inputs]]
include = ["{a}"]
topic = "{missing}"
start_at = "beginning"
[[inputs]]
include = ["{b}"]
topic = "{flowing}"
start_at = "beginning"
"#,
            list = list.join(", "),
            state = dir.path().join("state").display(),
            a = a.display(),
            b = b.display(),
        ),
    )
    .unwrap();
    // Input A holds far more than its share of the in-flight bound.
    let mut wa = LogWriter::create(&a);
    wa.write_lines((0..5000).map(line));
    let mut wb = LogWriter::create(&b);
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("topic does not exist", Duration::from_secs(30));
    // B keeps flowing while A is stuck.
    let mut rb = Reader::new(&brokers, &flowing);
    for round in 0..5 {
        wb.write_lines((round * 1000..(round + 1) * 1000).map(line));
        rb.read_until((round + 1) * 1000, Duration::from_secs(30));
        assert_eq!(
            rb.records.len(),
            (round + 1) * 1000,
            "input B stalled behind input A; stderr:\n{}",
            lf.stderr()
                .lines()
                .filter(|l| !l.contains("kept for retry"))
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // Once A's topic exists, A's lines arrive too.
    create_topic(&brokers, &missing, 1);
    let report = audit_until_complete(
        &brokers,
        &missing,
        std::slice::from_ref(&a),
        HOST,
        Duration::from_secs(120),
    );
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(report.missing(), 0, "{report}");
}
