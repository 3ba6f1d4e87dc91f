//! Reloading the configuration on SIGHUP, against the real Kafka cluster
//! (LOGFERRY_TEST_BROKERS): inputs added and removed while lines are
//! written, an invalid file refused with `check`'s own messages, and the
//! collector's reload. What arrived is counted by a plain Kafka consumer
//! and the topics' watermarks, not by logferry.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scrape;
use common::*;

/// A ship configuration with one input per (file, topic).
fn ship_config(dir: &Path, brokers: &str, inputs: &[(&Path, &str)], extra: &str) -> String {
    let brokers: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let mut text = format!(
        "host = \"reload-test\"\nscan_interval = \"100ms\"\n{extra}\n[kafka]\nbrokers = [{}]\n\n[kafka.properties]\n\"linger.ms\" = 5\n\n[checkpoint]\ndirectory = \"{}\"\n",
        brokers.join(", "),
        dir.join("state").display()
    );
    for (file, topic) in inputs {
        text.push_str(&format!(
            "\n[[inputs]]\ninclude = [\"{}\"]\ntopic = \"{topic}\"\nstart_at = \"beginning\"\n",
            file.display()
        ));
    }
    text
}

/// Writes numbered lines to a file, a few at a time with short random
/// pauses, until stopped; counts what it wrote.
struct Writer {
    written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path, seed: u64) -> Writer {
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (Arc::clone(&written), Arc::clone(&stop));
        let path = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            let mut rng = Lcg(seed);
            let mut n = 0;
            while !s.load(Ordering::SeqCst) {
                let burst = 1 + rng.below(20) as usize;
                let mut buf = String::new();
                for i in n..n + burst {
                    buf.push_str(&line(i));
                    buf.push('\n');
                }
                f.write_all(buf.as_bytes()).unwrap();
                n += burst;
                w.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(rng.below(8)));
            }
        });
        Writer {
            written,
            stop,
            thread: Some(thread),
        }
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Stop; how many lines were written.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.written()
    }
}

/// Line numbers in a topic, read back from its beginning until `n` or the
/// deadline, sorted.
fn numbers(brokers: &str, topic: &str, n: usize, timeout: Duration) -> Vec<usize> {
    let mut r = Reader::new(brokers, topic);
    r.read_until(n, timeout);
    // A little longer: extra (duplicate) records would show.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        r.poll_once(Duration::from_millis(100));
    }
    let mut got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    got.sort_unstable();
    got
}

/// The value of the reload series `name{labels}` in a scrape of `addr`.
fn reload_series(body: &str, name: &str, labels: &str) -> Option<f64> {
    scrape::series(body, name)
        .into_iter()
        .find(|(l, _)| l.trim() == labels)
        .map(|(_, v)| v)
}

/// Wait until the reload metrics say `applied` and `refused` reloads,
/// and the last one's success.
fn wait_reload_metrics(addr: &str, applied: f64, refused: f64, success: f64) {
    scrape::until(addr, "the reload metrics", Duration::from_secs(10), |b| {
        reload_series(b, "logferry_config_reloads_total", "{result=\"applied\"}") == Some(applied)
            && reload_series(b, "logferry_config_reloads_total", "{result=\"refused\"}")
                == Some(refused)
            && reload_series(b, "logferry_config_last_reload_success", "") == Some(success)
    });
}

/// Errors in a log other than the refused reload's.
fn other_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("ERROR") && !l.contains("reload refused"))
        .collect()
}

/// What `logferry check -c FILE` prints for `path`, line by line (without
/// the `logferry: ` prefix).
fn check_errors(path: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["check", "-c"])
        .arg(path)
        .env_remove("LOGFERRY_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "check accepted the bad file");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("logferry: "))
        .map(str::to_string)
        .collect()
}

fn install(path: &Path, text: &str) {
    // Written whole, then renamed: a reload never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_adds_and_removes_inputs_while_lines_are_written() {
    let Some(brokers) = brokers() else { return };
    let mut rng = Lcg::from_time();
    let (t_kept, t_removed, t_added) = (
        topic_name("reload-kept"),
        topic_name("reload-removed"),
        topic_name("reload-added"),
    );
    for t in [&t_kept, &t_removed, &t_added] {
        create_topic(&brokers, t, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let (kept, removed, added) = (
        dir.path().join("kept.log"),
        dir.path().join("removed.log"),
        dir.path().join("added.log"),
    );
    let config: PathBuf = dir.path().join("logferry.toml");
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let v1 = ship_config(
        dir.path(),
        &brokers,
        &[(&kept, &t_kept), (&removed, &t_removed)],
        metrics,
    );
    install(&config, &v1);
    let w_kept = Writer::start(&kept, rng.below(u64::MAX));
    let w_removed = Writer::start(&removed, rng.below(u64::MAX));
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let addr = scrape::metrics_addr(&lf);
    wait_reload_metrics(&addr, 0.0, 0.0, 1.0);
    // The removed input is being shipped before the reload.
    let mut r = Reader::new(&brokers, &t_removed);
    r.read_until(200, Duration::from_secs(60));
    assert!(r.records.len() >= 200, "stderr:\n{}", lf.stderr());
    std::thread::sleep(Duration::from_millis(rng.below(1500)));
    let shipped_before = topic_count(&brokers, &t_removed) as usize;

    // Reload: the second input goes, a third comes, and a producer
    // property changes (a new producer).
    let v2 = ship_config(
        dir.path(),
        &brokers,
        &[(&kept, &t_kept), (&added, &t_added)],
        metrics,
    )
    .replace("\"linger.ms\" = 5", "\"linger.ms\" = 7");
    install(&config, &v2);
    let w_added = Writer::start(&added, rng.below(u64::MAX));
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("configuration reloaded", Duration::from_secs(30));
    // Every line of it shipped was read, so written, before this.
    let removed_written_at_reload = w_removed.written();
    wait_reload_metrics(&addr, 1.0, 0.0, 1.0);

    // An invalid file: refused with check's messages; the old (v2)
    // configuration keeps shipping.
    std::thread::sleep(Duration::from_millis(rng.below(1000)));
    let bad = v2.clone()
        + "\n[[inputs]]\ninclude = [\"logs/*.log\"]\ntopic = \"x\"\n[inputs.multiline]\nstart = \"(\"\n";
    install(&config, &bad);
    let want = check_errors(&config);
    assert!(want.len() >= 2, "check gave {want:?}");
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("reload refused", Duration::from_secs(30));
    wait_reload_metrics(&addr, 1.0, 1.0, 0.0);
    std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));

    let n_kept = w_kept.finish();
    let n_removed = w_removed.finish();
    let n_added = w_added.finish();
    // Everything written to the kept and the added input arrives.
    let got_kept = numbers(&brokers, &t_kept, n_kept, Duration::from_secs(60));
    let got_added = numbers(&brokers, &t_added, n_added, Duration::from_secs(60));
    let st = lf.stop();
    let err = lf.stderr();
    assert_eq!(st.code(), Some(0), "stderr:\n{err}");
    for line in &want {
        assert!(
            err.contains(&format!(
                "reload refused, the running configuration is kept: {line}"
            )),
            "check said {line:?}; not in the log:\n{err}"
        );
    }
    assert_eq!(err.matches("configuration reloaded").count(), 1, "{err}");
    assert!(err.contains("new_producer=true"), "{err}");
    assert_eq!(other_errors(&err), Vec::<&str>::new(), "{err}");

    // The kept input: every line exactly once, across both reloads.
    assert_eq!(got_kept, (0..n_kept).collect::<Vec<_>>(), "kept input");
    assert_eq!(
        topic_count(&brokers, &t_kept) as usize,
        n_kept,
        "duplicates"
    );
    // The added input: every line, once.
    assert_eq!(got_added, (0..n_added).collect::<Vec<_>>(), "added input");
    assert_eq!(topic_count(&brokers, &t_added) as usize, n_added);
    // The removed input: a prefix of its lines, each once, at least what
    // was shipped before the SIGHUP and nothing written after the reload.
    let shipped = topic_count(&brokers, &t_removed) as usize;
    let got_removed = numbers(&brokers, &t_removed, shipped, Duration::from_secs(30));
    assert_eq!(
        got_removed,
        (0..shipped).collect::<Vec<_>>(),
        "removed input"
    );
    assert!(
        shipped >= shipped_before && shipped <= removed_written_at_reload,
        "removed input: {shipped} lines shipped, {shipped_before} before the SIGHUP, {removed_written_at_reload} written by the reload"
    );
    assert!(n_removed > shipped, "the writer went on after the reload");
    // Its position is kept in the checkpoint, at the end of what shipped.
    let bytes: u64 = (0..shipped).map(|n| line(n).len() as u64 + 1).sum();
    let positions = checkpoint_positions(&dir.path().join("state"));
    let removed_path = removed.to_str().unwrap();
    assert!(
        positions.contains(&(removed_path.to_string(), bytes)),
        "checkpoint {positions:?} lacks {removed_path} at {bytes}"
    );
}

#[test]
fn sighup_without_a_file_changes_nothing() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("reload-quick");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut w = LogWriter::create(&log);
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
            dir.path().join("state").to_str().unwrap(),
            "-X",
            "linger.ms=5",
        ],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..100).map(line));
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("no file to re-read", Duration::from_secs(10));
    w.write_lines((100..200).map(line));
    let got = numbers(&brokers, &topic, 200, Duration::from_secs(60));
    assert_eq!(lf.stop().code(), Some(0), "{}", lf.stderr());
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// How many files under `dir` hold exactly the bytes of `src`.
fn identical_outputs(dir: &Path, src: &Path) -> usize {
    let want = std::fs::read(src).unwrap();
    let mut outputs = Vec::new();
    all_files(dir, &mut outputs);
    outputs
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|c| c == want))
        .count()
}

fn wait_identical(dir: &Path, src: &Path, lf: &Logferry, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while identical_outputs(dir, src) != 1 {
        assert!(
            Instant::now() < deadline,
            "{} has no identical output under {}; collector log:\n{}",
            src.display(),
            dir.display(),
            lf.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn collect_config(brokers: &str, topics: &[&str], out: &Path, group: &str, index: &str) -> String {
    let brokers: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let topics: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[kafka]\nbrokers = [{}]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[collect]\ntopics = [{}]\nout = \"{}\"\ngroup = \"{group}\"\nindex_topic = \"{index}\"\ncommit_interval = \"300ms\"\n",
        brokers.join(", "),
        topics.join(", "),
        out.display()
    )
}

#[test]
fn collector_reload_adds_a_topic_and_refuses_an_invalid_file() {
    let Some(brokers) = brokers() else { return };
    let mut rng = Lcg::from_time();
    let (t1, t2) = (topic_name("reload-c1"), topic_name("reload-c2"));
    for t in [&t1, &t2] {
        create_topic(&brokers, t, 2);
    }
    let group = topic_name("reload-cg");
    let index = group_index_topic(&brokers, &group);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let out = dir.path().join("out");
    // The agent ships both files from the start.
    let agent_config = dir.path().join("agent.toml");
    install(
        &agent_config,
        &ship_config(dir.path(), &brokers, &[(&a, &t1), (&b, &t2)], ""),
    );
    let w_a = Writer::start(&a, rng.below(u64::MAX));
    let w_b = Writer::start(&b, rng.below(u64::MAX));
    let mut agent = Logferry::start(
        &["ship", "-c", agent_config.to_str().unwrap()],
        &dir.path().join("agent.err"),
    );
    // The collector takes the first topic only.
    let config = dir.path().join("collect.toml");
    install(
        &config,
        &collect_config(&brokers, &[&t1], &out, &group, &index),
    );
    let mut lf = Logferry::start(
        &["collect", "-c", config.to_str().unwrap()],
        &dir.path().join("collect.err"),
    );
    lf.wait_for_log("collecting", Duration::from_secs(20));
    let addr = scrape::metrics_addr(&lf);
    let host_dir = out.join("reload-test");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&host_dir).is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "{}", lf.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500 + rng.below(1500)));
    assert_eq!(
        identical_outputs(&host_dir, &b),
        0,
        "b.log collected before its topic was"
    );

    // Reload: the second topic is added, the commit interval changes.
    install(
        &config,
        &collect_config(&brokers, &[&t1, &t2], &out, &group, &index)
            .replace("\"300ms\"", "\"200ms\""),
    );
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("configuration reloaded", Duration::from_secs(30));
    wait_reload_metrics(&addr, 1.0, 0.0, 1.0);

    // An invalid file: refused with check's messages, collection goes on.
    std::thread::sleep(Duration::from_millis(rng.below(1500)));
    let bad = collect_config(&brokers, &[&t1, &t2], &out, &group, &index)
        .replace("\"300ms\"", "\"0s\"")
        .replace("[collect]\n", "[collect]\nmax_hole = 0\n");
    install(&config, &bad);
    let want = check_errors(&config);
    assert!(want.len() >= 2, "check gave {want:?}");
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("reload refused", Duration::from_secs(30));
    wait_reload_metrics(&addr, 1.0, 1.0, 0.0);
    std::thread::sleep(Duration::from_millis(500 + rng.below(1500)));

    let (n_a, n_b) = (w_a.finish(), w_b.finish());
    eprintln!("written: a.log {n_a} lines, b.log {n_b} lines");
    // Every line of both files is collected, byte for byte, once.
    wait_identical(&host_dir, &a, &lf, Duration::from_secs(90));
    wait_identical(&host_dir, &b, &lf, Duration::from_secs(90));
    assert_eq!(agent.stop().code(), Some(0), "{}", agent.stderr());
    let st = lf.stop();
    let err = lf.stderr();
    assert_eq!(st.code(), Some(0), "{err}");
    for line in &want {
        assert!(
            err.contains(&format!(
                "reload refused, the running configuration is kept: {line}"
            )),
            "check said {line:?}; not in the collector's log:\n{err}"
        );
    }
    assert_eq!(err.matches("configuration reloaded").count(), 1, "{err}");
    assert_eq!(other_errors(&err), Vec::<&str>::new(), "{err}");
}

/// Line numbers a read_committed consumer (tests/common/committed.rs)
/// sees in `topic`, sorted, each as often as it came: read until `n`
/// records or the deadline, and a little longer (duplicates would show).
fn committed_numbers(brokers: &str, topic: &str, n: usize, timeout: Duration) -> Vec<usize> {
    let mut reader = common::committed::CommittedReader::new(brokers, topic);
    let deadline = Instant::now() + timeout;
    let mut extra_until = None;
    loop {
        let now = Instant::now();
        if reader.seen.records >= n && extra_until.is_none() {
            extra_until = Some(now + Duration::from_millis(1000));
        }
        if now >= deadline || extra_until.is_some_and(|t| now >= t) {
            break;
        }
        reader.poll_once(Duration::from_millis(100));
    }
    let mut got: Vec<usize> = reader
        .seen
        .lines
        .iter()
        .flat_map(|(&line, &count)| std::iter::repeat_n(line, count))
        .collect();
    got.sort_unstable();
    got
}

#[test]
fn exactly_once_reload_changes_inputs_and_refuses_a_new_producer() {
    let Some(brokers) = brokers() else { return };
    let mut rng = Lcg::from_time();
    let (t_kept, t_removed, t_added, positions) = (
        topic_name("reload-eo-kept"),
        topic_name("reload-eo-removed"),
        topic_name("reload-eo-added"),
        topic_name("reload-eo-positions"),
    );
    for t in [&t_kept, &t_removed, &t_added] {
        create_topic(&brokers, t, 1);
    }
    create_topic_with(&brokers, &positions, 1, &[("cleanup.policy", "compact")]);
    let dir = tempfile::tempdir().unwrap();
    let (kept, removed, added) = (
        dir.path().join("kept.log"),
        dir.path().join("removed.log"),
        dir.path().join("added.log"),
    );
    let eo = |text: String| {
        text.replace(
            "\n[kafka.properties]",
            &format!("exactly_once = true\npositions_topic = \"{positions}\"\ntransaction_interval = \"300ms\"\n\n[kafka.properties]"),
        )
    };
    let config = dir.path().join("logferry.toml");
    install(
        &config,
        &eo(ship_config(
            dir.path(),
            &brokers,
            &[(&kept, &t_kept), (&removed, &t_removed)],
            "",
        )),
    );
    let w_kept = Writer::start(&kept, rng.below(u64::MAX));
    let w_removed = Writer::start(&removed, rng.below(u64::MAX));
    let mut lf = Logferry::start(
        &["ship", "-c", config.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let first = committed_numbers(&brokers, &t_removed, 100, Duration::from_secs(60));
    assert!(first.len() >= 100, "stderr:\n{}", lf.stderr());
    std::thread::sleep(Duration::from_millis(rng.below(1500)));

    let v2 = eo(ship_config(
        dir.path(),
        &brokers,
        &[(&kept, &t_kept), (&added, &t_added)],
        "",
    ));
    install(&config, &v2);
    let w_added = Writer::start(&added, rng.below(u64::MAX));
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("configuration reloaded", Duration::from_secs(30));
    let removed_written_at_reload = w_removed.written();

    // A new producer would fence this one's transactional id: refused.
    install(
        &config,
        &v2.replace("\"linger.ms\" = 5", "\"linger.ms\" = 7"),
    );
    lf.signal(libc::SIGHUP);
    lf.wait_for_log("in exactly-once mode the brokers", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));

    let n_kept = w_kept.finish();
    let n_removed = w_removed.finish();
    let n_added = w_added.finish();
    let got_kept = committed_numbers(&brokers, &t_kept, n_kept, Duration::from_secs(60));
    let got_added = committed_numbers(&brokers, &t_added, n_added, Duration::from_secs(60));
    let st = lf.stop();
    let err = lf.stderr();
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(other_errors(&err), Vec::<&str>::new(), "{err}");
    assert_eq!(got_kept, (0..n_kept).collect::<Vec<_>>(), "kept input");
    assert_eq!(got_added, (0..n_added).collect::<Vec<_>>(), "added input");
    let got_removed = committed_numbers(&brokers, &t_removed, n_removed, Duration::from_secs(5));
    let shipped = got_removed.len();
    assert_eq!(
        got_removed,
        (0..shipped).collect::<Vec<_>>(),
        "removed input"
    );
    assert!(
        shipped >= first.len() && shipped <= removed_written_at_reload && shipped < n_removed,
        "removed input: {shipped} lines committed, {} before the SIGHUP, {removed_written_at_reload} written by the reload, {n_removed} in all",
        first.len()
    );
}
