//! `logferry ship` end to end against the real Kafka cluster started by
//! scripts/test.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn ship_args<'a>(file: &'a str, topic: &'a str, brokers: &'a str, state: &'a str) -> Vec<&'a str> {
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
        "-X",
        "linger.ms=5",
    ]
}

/// One log file shipped into a fresh topic of its own: the setup of most
/// tests here.
struct OneFile {
    brokers: String,
    topic: String,
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl OneFile {
    /// `None` only where `brokers()` allows running without a cluster.
    fn new(label: &str) -> Option<OneFile> {
        let brokers = brokers()?;
        let topic = topic_name(label);
        create_topic(&brokers, &topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let state = dir.path().join("state");
        Some(OneFile {
            brokers,
            topic,
            dir,
            log,
            state,
        })
    }

    fn log_s(&self) -> &str {
        self.log.to_str().unwrap()
    }

    /// Start `logferry ship` on the file (stderr to `err` in the temp
    /// dir) and wait until it follows it.
    fn ship(&self, err: &str) -> Logferry {
        let lf = Logferry::start(
            &ship_args(
                self.log_s(),
                &self.topic,
                &self.brokers,
                self.state.to_str().unwrap(),
            ),
            &self.dir.path().join(err),
        );
        lf.wait_for_log("following", Duration::from_secs(20));
        lf
    }
}

fn assert_exactly_once_in_order(payloads: &[Vec<u8>], expected: usize) {
    let nums: Vec<usize> = payloads.iter().map(|p| line_no(p)).collect();
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(
            *n, i,
            "record {i} is line {n}: lost, duplicated or reordered"
        );
    }
    assert_eq!(nums.len(), expected);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(p, line(i).as_bytes(), "record {i} is not byte-identical");
    }
}

#[test]
fn hundred_thousand_lines_arrive_once_in_order() {
    let Some(f) = OneFile::new("100k") else {
        return;
    };
    let (brokers, topic) = (&f.brokers, &f.topic);
    let mut w = LogWriter::create(&f.log);
    let mut lf = f.ship("err");
    // Appended while logferry runs, in bursts of varied size.
    let total = 100_000;
    let mut n = 0;
    while n < total {
        let burst = (1 + n % 997).min(total - n);
        w.write_lines((n..n + burst).map(line));
        n += burst;
    }
    let mut r = Reader::new(brokers, topic);
    r.read_until(total, Duration::from_secs(120));
    let st = lf.stop();
    assert!(st.success(), "exit status {st}; stderr:\n{}", lf.stderr());
    assert_exactly_once_in_order(&r.payloads(), total);
    assert_eq!(
        topic_count(brokers, topic),
        total as i64,
        "extra records in the topic"
    );
    // The source header names the file and each line's offset.
    let first = &r.records[1];
    let src = first.source().expect("source attribution");
    assert_eq!(src.path, f.log_s().as_bytes());
    assert_eq!(src.offset, line(0).len() as u64 + 1);
}

#[test]
fn rename_create_and_copytruncate_lose_and_duplicate_nothing() {
    let Some(f) = OneFile::new("rotate") else {
        return;
    };
    let (brokers, topic) = (&f.brokers, &f.topic);
    let mut w = LogWriter::create(&f.log);
    let mut lf = f.ship("err");
    let mut r = Reader::new(brokers, topic);
    let mut n = 0;
    // Three rename+create rotations in the middle of a stream, with lines
    // appended right before and right after each, faster than logferry
    // scans: files that were rotated away before logferry saw them under
    // the followed name are found under their rotated names.
    for round in 0..3 {
        for _ in 0..20 {
            w.write_lines((n..n + 250).map(line));
            n += 250;
        }
        w.rotate_rename(&f.dir.path().join(format!("app.log.{round}")));
        w.write_lines((n..n + 100).map(line));
        n += 100;
    }
    // copytruncate: logrotate copies, then truncates in place while the
    // writer keeps its descriptor. Whatever logferry had not read yet when
    // the file was cut is read from the copy, from where reading stopped.
    // Give logferry a moment of reading first, so the cut lands mid-stream.
    r.read_until(1, Duration::from_secs(60));
    w.rotate_copytruncate(&f.dir.path().join("app.log.ct"));
    w.write_lines((n..n + 5000).map(line));
    n += 5000;
    r.read_until(n, Duration::from_secs(60));
    let st = lf.stop();
    assert!(st.success(), "stderr:\n{}", lf.stderr());
    assert_exactly_once_in_order(&r.payloads(), n);
    assert_eq!(
        topic_count(brokers, topic),
        n as i64,
        "extra records in the topic"
    );
}

#[test]
fn copy_seen_half_written_is_not_read_twice() {
    let Some(f) = OneFile::new("halfcopy") else {
        return;
    };
    let (brokers, topic) = (&f.brokers, &f.topic);
    let mut w = LogWriter::create(&f.log);
    let mut lf = f.ship("err");
    let mut r = Reader::new(brokers, topic);
    w.write_lines((0..1000).map(line));
    r.read_until(1000, Duration::from_secs(60));
    // copytruncate as cp and logrotate do it: the copy is created empty
    // and filled a buffer at a time, and logferry's scan sees it on the
    // way. Seen empty, then with its first bytes, it must be recognised as
    // a copy in progress rather than read from 0 as a new rotated file.
    let content = std::fs::read(&f.log).unwrap();
    let copy_path = f.dir.path().join("app.log.1");
    let mut copy = std::fs::File::create(&copy_path).unwrap();
    lf.wait_for_log("copy still being written", Duration::from_secs(20));
    use std::io::Write;
    copy.write_all(&content[..100]).unwrap();
    copy.write_all(&content[100..]).unwrap();
    drop(copy);
    w.truncate();
    w.write_lines((1000..2000).map(line));
    r.read_until(2000, Duration::from_secs(60));
    let st = lf.stop();
    assert!(st.success(), "stderr:\n{}", lf.stderr());
    assert_exactly_once_in_order(&r.payloads(), 2000);
    assert_eq!(
        topic_count(brokers, topic),
        2000,
        "extra records in the topic"
    );
}

#[test]
fn sigterm_mid_stream_exits_zero_and_keeps_every_read_line() {
    let Some(f) = OneFile::new("sigterm") else {
        return;
    };
    let (brokers, topic) = (&f.brokers, &f.topic);
    let mut w = LogWriter::create(&f.log);
    let mut lf = f.ship("err");
    // A writer thread keeps appending while the signal arrives.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                w.write_lines((n..n + 50).map(line));
                n += 50;
                written.store(n, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let mut r = Reader::new(brokers, topic);
    r.read_until(5_000, Duration::from_secs(60));
    assert!(r.records.len() >= 5_000);
    let t0 = Instant::now();
    lf.signal(libc::SIGTERM);
    let st = lf.wait_timeout(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "no exit within 10 s after SIGTERM; stderr:\n{}",
            lf.stderr()
        )
    });
    lf.child = None;
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total = writer.join().unwrap();
    assert!(st.success(), "exit status {st}; stderr:\n{}", lf.stderr());
    let err = lf.stderr();
    assert!(
        !err.contains("panicked") && !err.contains("ERROR"),
        "error output on SIGTERM:\n{err}"
    );
    assert!(
        !err.contains("not acknowledged"),
        "in-flight records were abandoned:\n{err}"
    );
    eprintln!("stopped in {took:?}");

    // Everything logferry read before the signal was acked before exit: the
    // checkpoint covers it, and every line it covers is in the topic.
    let cps = checkpoint_positions(&f.state);
    assert_eq!(cps.len(), 1);
    let position = cps[0].1;
    let content = std::fs::read(&f.log).unwrap();
    let covered = content[..position as usize]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert!(covered >= 5_000, "checkpoint covers only {covered} lines");
    let in_topic = topic_count(brokers, topic) as usize;
    assert_eq!(
        in_topic, covered,
        "topic holds exactly the lines up to the checkpoint"
    );

    // A restart ships the rest from the checkpoint: nothing lost, nothing twice.
    let mut lf2 = f.ship("err2");
    r.read_until(total, Duration::from_secs(60));
    assert!(lf2.stop().success());
    assert_exactly_once_in_order(&r.payloads(), total);
    assert_eq!(topic_count(brokers, topic), total as i64);
}

#[test]
fn quick_mode_flags_with_metadata_prefix() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("quick");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    w.write_lines((0..10).map(line)); // Before start: skipped, like tail -n0.
    let first = brokers.split(',').next().unwrap();
    let (host, port) = first.rsplit_once(':').unwrap();
    let mut lf = Logferry::start(
        &[
            "ship",
            "-l",
            log.to_str().unwrap(),
            "-t",
            &topic,
            "-s",
            host,
            "-p",
            port,
            "-m",
            "web1",
            "-b",
            "100",
            "-w",
            "0.01",
            "--checkpoint-dir",
            state.to_str().unwrap(),
        ],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((10..1010).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(1000, Duration::from_secs(60));
    assert!(lf.stop().success());
    let got = r.payloads();
    assert_eq!(got.len(), 1000);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p, format!("web1::{}", line(i + 10)).as_bytes());
    }
    assert_eq!(topic_count(&brokers, &topic), 1000);
}

#[test]
fn missing_file_is_waited_for_and_bad_flags_exit_2() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("wait");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let state = dir.path().join("state");
    let mut lf = Logferry::start(
        &ship_args(
            log.to_str().unwrap(),
            &topic,
            &brokers,
            state.to_str().unwrap(),
        ),
        &dir.path().join("err"),
    );
    lf.wait_for_log("no matching file yet", Duration::from_secs(20));
    // Created after start: read from its beginning.
    let mut w = LogWriter::create(&log);
    w.write_lines((0..100).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(100, Duration::from_secs(30));
    assert!(lf.stop().success());
    assert_exactly_once_in_order(&r.payloads(), 100);
    assert_eq!(
        lf.stderr().matches("no matching file yet").count(),
        1,
        "logged once"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["ship", "-l", "/x.log", "-t", "t", "-w", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch-time"));
}
