//! `logferry collect` against the real 3-broker cluster: agents ship files
//! with rotations, collectors in one group (killed with SIGKILL, joining,
//! leaving) rebuild them under one shared OUT; every source generation
//! must be byte-identical to exactly one output file, and `collect status`
//! must report no gap.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, TopicPartitionList};

/// A `logferry collect` child, restartable; each start logs to its own file.
struct Collector {
    args: Vec<String>,
    dir: PathBuf,
    name: String,
    starts: usize,
    proc: Option<Logferry>,
}

impl Collector {
    fn start(brokers: &str, topic: &str, group: &str, out: &Path, dir: &Path, name: &str) -> Self {
        let index = group_index_topic(brokers, group);
        let args = [
            "collect",
            "--index-topic",
            &index,
            "--brokers",
            brokers,
            "-t",
            topic,
            "--group",
            group,
            "--out",
            &out.display().to_string(),
            "--commit-interval",
            "300ms",
            "--gap-timeout",
            "120s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut c = Collector {
            args,
            dir: dir.to_path_buf(),
            name: name.to_string(),
            starts: 0,
            proc: None,
        };
        c.restart();
        c
    }

    fn restart(&mut self) {
        self.starts += 1;
        let log = self.dir.join(format!("{}-{}.log", self.name, self.starts));
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let p = Logferry::start(&args, &log);
        // Said once its signal handlers are in place: a SIGTERM before that
        // would kill it (the default action) instead of stopping it.
        p.wait_for_log("collecting", Duration::from_secs(20));
        self.proc = Some(p);
    }

    fn kill9(&mut self) {
        let mut p = self.proc.take().expect("running");
        p.signal(libc::SIGKILL);
        p.wait_timeout(Duration::from_secs(10)).expect("killed");
        p.child = None;
    }

    fn stop(&mut self) {
        let mut p = self.proc.take().expect("running");
        let st = p.stop();
        assert!(st.success(), "collector exited {st:?}: {}", p.stderr());
    }
}

/// An agent host: a directory with `FILES` logs and the agent shipping them.
struct Agent {
    host: String,
    dir: LogDir,
    writers: Vec<LogWriter>,
    rotations: Vec<usize>,
    written: usize,
    ship: Logferry,
}

const FILES: usize = 4;

impl Agent {
    fn start(brokers: &str, topic: &str, host: &str) -> Agent {
        let dir = LogDir::new();
        let writers: Vec<LogWriter> = (0..FILES)
            .map(|i| LogWriter::create(&dir.logs.join(format!("f{i}.log"))))
            .collect();
        let cfg = config_toml(dir.path(), brokers, host, topic, &dir.glob(), "", "");
        let ship = Logferry::start(
            &["ship", "-c", &cfg.display().to_string()],
            &dir.path().join("ship.log"),
        );
        Agent {
            host: host.to_string(),
            dir,
            writers,
            rotations: vec![0; FILES],
            written: 0,
            ship,
        }
    }

    /// `n` lines to every file.
    fn write_round(&mut self, n: usize) {
        for (i, w) in self.writers.iter_mut().enumerate() {
            let start = self.written;
            w.write_lines((start..start + n).map(|k| format!("{} f{i} {}", self.host, line(k))));
        }
        self.written += n;
    }

    fn rotate(&mut self, file: usize, copytruncate: bool) {
        self.rotations[file] += 1;
        let to = self
            .dir
            .logs
            .join(format!("f{file}.log.{}", self.rotations[file]));
        if copytruncate {
            self.writers[file].rotate_copytruncate(&to);
        } else {
            self.writers[file].rotate_rename(&to);
        }
    }

    /// Every non-empty source file (current, rotated, copies).
    fn sources(&self) -> Vec<PathBuf> {
        files_with_prefix(&self.dir.logs, "f")
            .into_iter()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .collect()
    }
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

/// Source files not (yet) byte-identical to exactly one output file of
/// their host, with why.
fn unmatched(agents: &[Agent], out: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for a in agents {
        let mut outputs = Vec::new();
        all_files(&out.join(&a.host), &mut outputs);
        let contents: Vec<Vec<u8>> = outputs
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_default())
            .collect();
        for src in a.sources() {
            let want = std::fs::read(&src).unwrap();
            let n = contents.iter().filter(|c| **c == want).count();
            if n != 1 {
                bad.push(format!(
                    "{} ({} bytes): {n} identical outputs",
                    src.display(),
                    want.len()
                ));
            }
        }
    }
    bad
}

fn status(out: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args([
            "collect",
            "status",
            "--out",
            &out.display().to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// What happens to the collectors while the agents write.
#[derive(Clone, Copy)]
enum Plan {
    /// Two collectors, each killed with SIGKILL three times and restarted.
    Kills,
    /// Two collectors; a third joins, then one leaves (SIGTERM).
    JoinLeave,
}

fn scenario(test: &str, plan: Plan) {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name(test);
    create_topic(&brokers, &topic, 6);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let group = format!("g-{topic}");
    let mut agents: Vec<Agent> = ["a", "b", "c"]
        .iter()
        .map(|h| Agent::start(&brokers, &topic, h))
        .collect();
    let mut collectors: Vec<Collector> = (0..2)
        .map(|i| {
            Collector::start(
                &brokers,
                &topic,
                &group,
                &out,
                work.path(),
                &format!("c{i}"),
            )
        })
        .collect();
    let rounds = 36;
    for round in 0..rounds {
        for a in agents.iter_mut() {
            a.write_round(20);
            match round {
                8 | 20 => a.rotate(0, false),
                12 => a.rotate(1, false),
                16 => a.rotate(3, true),
                24 => a.rotate(2, false),
                _ => {}
            }
        }
        match plan {
            // Kills at rounds 4, 8, ... 24: each collector three times.
            Plan::Kills if round % 4 == 0 && (4..=24).contains(&round) => {
                let c = &mut collectors[(round / 4) % 2];
                c.kill9();
                std::thread::sleep(Duration::from_millis(150));
                c.restart();
            }
            Plan::JoinLeave if round == 8 => collectors.push(Collector::start(
                &brokers,
                &topic,
                &group,
                &out,
                work.path(),
                "c2",
            )),
            Plan::JoinLeave if round == 20 => collectors[0].stop(),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The stream ends; wait until every generation is rebuilt.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut bad = unmatched(&agents, &out);
    while !bad.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        bad = unmatched(&agents, &out);
    }
    for c in collectors.iter_mut().filter(|c| c.proc.is_some()) {
        c.stop();
    }
    for a in agents.iter_mut() {
        a.ship.stop();
    }
    assert!(
        bad.is_empty(),
        "sources not rebuilt exactly:\n{}",
        bad.join("\n")
    );
    let (ok, report) = status(&out);
    assert!(ok, "collect status failed:\n{report}");
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(v["gaps"], 0, "{report}");
    // OUT/HOST holds only log files; state lives in OUT/.logferry.
    assert!(out.join(".logferry/index.json").exists());
    let sources: usize = agents.iter().map(|a| a.sources().len()).sum();
    eprintln!("{sources} source generations rebuilt exactly");
    assert!(
        sources >= 3 * (FILES + 5),
        "expected rotated files and copies: {sources}"
    );
}

#[test]
fn three_agents_two_collectors_killed_rebuild_every_generation() {
    scenario("collect-kills", Plan::Kills);
}

#[test]
fn a_collector_joining_and_one_leaving_rebuild_every_generation() {
    scenario("collect-join", Plan::JoinLeave);
}

fn produce_plain(brokers: &str, topic: &str, partitions: i32, per_partition: usize, size: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..per_partition {
        for p in 0..partitions {
            let v = plain_value(p, i, size);
            // Keys: none, a plain key, and a key that looks like logferry's
            // key form but does not decode (a corrupt attribution).
            let key: &[u8] = match i % 3 {
                0 => b"",
                1 => b"request-42",
                _ => b"\x03\x00\x00\x09",
            };
            let mut rec = BaseRecord::<[u8], [u8]>::to(topic).payload(&v).partition(p);
            if !key.is_empty() {
                rec = rec.key(key);
            }
            common::send_waiting(&producer, rec);
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn plain_value(p: i32, i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("p{p}-{i:07}").into_bytes();
    v.resize(size.max(v.len()), b'x');
    v
}

fn expected_unattributed(p: i32, n: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(plain_value(p, i, size));
        out.push(b'\n');
    }
    out
}

fn wait_for_unattributed(
    out: &Path,
    topic: &str,
    partitions: i32,
    n: usize,
    size: usize,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let bad: Vec<String> = (0..partitions)
            .filter_map(|p| {
                let path = out.join(format!("_unattributed/{topic}/partition-{p}.log"));
                let got = std::fs::read(&path).unwrap_or_default();
                (got != expected_unattributed(p, n, size))
                    .then(|| format!("{}: {} bytes", path.display(), got.len()))
            })
            .collect();
        if bad.is_empty() || Instant::now() > deadline {
            return bad;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn records_from_another_producer_land_in_unattributed_in_order() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("collect-plain");
    create_topic(&brokers, &topic, 3);
    let (n, size) = (4000, 60);
    produce_plain(&brokers, &topic, 3, n, size);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let group = format!("g-{topic}");
    let mut c = Collector::start(&brokers, &topic, &group, &out, work.path(), "c");
    // Kill it once it has written some, to prove appends are not doubled.
    let first = out.join(format!("_unattributed/{topic}/partition-0.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&first).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "nothing written");
        std::thread::sleep(Duration::from_millis(10));
    }
    c.kill9();
    c.restart();
    let bad = wait_for_unattributed(&out, &topic, 3, n, size, Duration::from_secs(60));
    c.stop();
    assert!(
        bad.is_empty(),
        "unattributed files differ:\n{}",
        bad.join("\n")
    );
    let (ok, report) = status(&out);
    assert!(ok, "{report}");
}

/// Committed offsets of `group` on `topic`, per partition.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_consuming_without_committing_and_resumes() {
    let Some(brokers) = brokers() else { return };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk test did not run"
        );
        return;
    }
    let _tmpfs = Tmpfs(out.clone());
    // Leave about 1 MiB free; the topic holds about 2.4 MB.
    let filler = out.join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let topic = topic_name("collect-full");
    create_topic(&brokers, &topic, 2);
    let (n, size) = (12_000, 99);
    produce_plain(&brokers, &topic, 2, n, size);
    let group = format!("g-{topic}");
    let mut c = Collector::start(&brokers, &topic, &group, &out, work.path(), "c");
    let p = c.proc.as_ref().unwrap();
    p.wait_for_log("cannot write under", Duration::from_secs(60));
    // Nothing committed past what is durably written: every committed
    // offset is at most the number of lines in its partition's file.
    std::thread::sleep(Duration::from_secs(2));
    for (part, off) in committed(&brokers, &group, &topic, 2) {
        let path = out.join(format!("_unattributed/{topic}/partition-{part}.log"));
        let text = std::fs::read(&path).unwrap_or_default();
        let lines = text.iter().filter(|&&b| b == b'\n').count() as i64;
        assert!(
            off <= lines,
            "partition {part}: committed {off} but {lines} lines on disk"
        );
        assert!(
            off < n as i64,
            "partition {part}: all committed while the disk is full"
        );
    }
    assert_eq!(
        p.stderr().matches("cannot write under").count(),
        1,
        "said once"
    );
    std::fs::remove_file(&filler).unwrap();
    let bad = wait_for_unattributed(&out, &topic, 2, n, size, Duration::from_secs(60));
    let log = c.proc.as_ref().unwrap().stderr();
    c.stop();
    assert!(
        bad.is_empty(),
        "outputs differ after space returned:\n{}\n{log}",
        bad.join("\n")
    );
    assert!(log.contains("writable again"), "{log}");
}
