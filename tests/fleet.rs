//! The fleet views against the real 3-broker cluster: `logferry tail`
//! during a stream from three agents, `logferry merge` over an archive of
//! three hosts rebuilt by `logferry collect` (compressed generations
//! included), and `logferry demo`'s own byte-exact check. What arrived is
//! judged against what the test wrote and against the topic read by the
//! test's own consumer (record timestamps), never against logferry's view.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const HOSTS: [&str; 3] = ["a", "b", "c"];

/// One agent: a log directory with `app.log` and `logferry ship` for it.
struct Agent {
    host: &'static str,
    /// Kept: the directory lives as long as the agent.
    _dir: LogDir,
    log: LogWriter,
    ship: Logferry,
}

impl Agent {
    fn start(brokers: &str, topic: &str, host: &'static str) -> Agent {
        let dir = LogDir::new();
        let log = LogWriter::create(&dir.logs.join("app.log"));
        let cfg = config_toml(
            dir.path(),
            brokers,
            host,
            topic,
            &dir.glob(),
            "",
            "partition_by = \"file\"",
        );
        let ship = Logferry::start(
            &["ship", "-c", &cfg.display().to_string()],
            &dir.path().join("ship.log"),
        );
        ship.wait_for_log("following", Duration::from_secs(20));
        Agent {
            host,
            _dir: dir,
            log,
            ship,
        }
    }
}

/// `logferry tail --host b --grep X` while three agents ship: exactly
/// host b's lines with an X, each on screen within a second of its write,
/// and Ctrl-C ends it within a second.
#[test]
fn tail_shows_exactly_one_hosts_matching_lines_within_a_second() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("fleet-tail");
    create_topic(&brokers, &topic, 3);
    let mut agents: Vec<Agent> = HOSTS
        .iter()
        .map(|h| Agent::start(&brokers, &topic, h))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let err = std::fs::File::create(work.path().join("tail.log")).unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["tail", "--brokers", &brokers, "-t", &topic])
        .args(["--host", "b", "--grep", "X", "--from", "beginning"])
        .env("LOGFERRY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stdout = tail.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    // A stream: every 50 ms each agent's file gets 5 lines, one in three
    // carrying the X (no other line holds a capital X).
    let mut written: HashMap<String, Instant> = HashMap::new();
    let mut expected = Vec::new();
    for round in 0..40 {
        for a in agents.iter_mut() {
            let lines: Vec<String> = (0..5)
                .map(|i| {
                    let n = round * 5 + i;
                    let mark = if n % 3 == 0 { "X" } else { "-" };
                    format!("host={} n={n:04} level=info {mark} GET /item/{n}", a.host)
                })
                .collect();
            a.log.write_lines(lines.clone());
            let at = Instant::now();
            for l in lines {
                if a.host == "b" && l.contains('X') {
                    expected.push(format!("b {}: {l}", a.log.path.display()));
                }
                written.insert(l, at);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen: Vec<(Instant, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < expected.len() && Instant::now() < deadline {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(x);
        }
    }
    // Anything else would arrive right after: give it a moment to show.
    while let Ok(x) = rx.recv_timeout(Duration::from_secs(1)) {
        seen.push(x);
    }
    let got: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    sorted_expected.sort();
    assert_eq!(
        sorted_got, sorted_expected,
        "tail printed other lines than host b's with an X"
    );
    let mut slowest = Duration::ZERO;
    for (at, l) in &seen {
        let text = l.split_once(": ").unwrap().1;
        let delay = at.duration_since(written[text]);
        slowest = slowest.max(delay);
        assert!(
            delay <= Duration::from_secs(1),
            "{l:?} shown {delay:?} after it was written"
        );
    }
    eprintln!("slowest line on screen {slowest:?} after its write");
    // Ctrl-C: gone within a second, exit 0.
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(tail.id() as i32, libc::SIGINT) }, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = tail.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "tail still running 1 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "tail exited {status:?}");
    reader.join().unwrap();
    for a in agents.iter_mut() {
        assert!(a.ship.stop().success());
    }
}

/// A record of the topic, read by the test's own consumer.
struct Truth {
    line: String,
    ms: i64,
}

/// Every record of `topic` with its timestamp (the record's own, as the
/// broker stores it).
fn read_truth(brokers: &str, topic: &str, n: usize) -> Vec<Truth> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("truth-{topic}"))
        .set("enable.auto.commit", "false")
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
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let line = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
        out.push(Truth {
            line,
            ms: m.timestamp().to_millis().unwrap(),
        });
    }
    assert_eq!(out.len(), n, "the topic holds every line written");
    out
}

/// One row of `logferry merge --format json`.
#[derive(serde::Deserialize, Debug)]
struct Row {
    host: String,
    path: String,
    generation: String,
    offset: u64,
    timestamp: String,
    line: String,
}

fn merge(out: &Path, extra: &[&str]) -> Vec<Row> {
    let res = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .arg("merge")
        .arg(out)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "merge {extra:?}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8(res.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `@SECONDS.mmm` for a time in Unix ms.
fn at(ms: i64) -> String {
    format!("@{}.{:03}", ms / 1000, ms % 1000)
}

fn rfc3339_ms(t: &str) -> i64 {
    logferry::fleet::time::parse(t, 0).unwrap()
}

/// `logferry merge` over what `logferry collect` rebuilt of three hosts,
/// each rotated once (the first generation compressed by the collector):
/// every line once, in read-time order (the record timestamps), each
/// source in file order, and `--since`/`--until` cut exactly.
#[test]
fn merge_orders_an_archive_of_three_hosts_by_read_time() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("fleet-merge");
    create_topic(&brokers, &topic, 3);
    let mut agents: Vec<Agent> = HOSTS
        .iter()
        .map(|h| Agent::start(&brokers, &topic, h))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let cfg = work.path().join("collect.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\n[collect]\ntopics = [\"{topic}\"]\ngroup = \"{topic}-collect\"\nout = \"{}\"\ncommit_interval = \"200ms\"\ncompress_after = \"1s\"\nindex_topic = false\n",
            out.display()
        ),
    )
    .unwrap();
    let mut collector = Logferry::start(
        &["collect", "-c", &cfg.display().to_string()],
        &work.path().join("collect.log"),
    );
    collector.wait_for_log("collecting", Duration::from_secs(20));
    // Interleaved writes with small pauses, so read times interleave
    // across hosts; each file rotated (rename + create) half way.
    const ROUNDS: usize = 30;
    let mut total = 0;
    for round in 0..ROUNDS {
        for a in agents.iter_mut() {
            if round == ROUNDS / 2 {
                let to = a.log.path.with_extension("log.1");
                a.log.rotate_rename(&to);
            }
            let lines: Vec<String> = (0..4)
                .map(|i| format!("host={} n={:04} GET /r/{round}/{i}", a.host, round * 4 + i))
                .collect();
            total += lines.len();
            a.log.write_lines(lines);
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    // Every line in the topic, then the archive complete: each live file
    // equal to its source and the rotated generations compressed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic_count(&brokers, &topic) < total as i64 {
        assert!(
            Instant::now() < deadline,
            "not every line reached the topic"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let truth = read_truth(&brokers, &topic, total);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let index: serde_json::Value = std::fs::read(out.join(".logferry/index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let compressed = index["generations"].as_object().map_or(0, |g| {
            g.values().filter(|e| e["archived"] == "compressed").count()
        });
        let live_done = agents.iter().all(|a| {
            let live = out.join(a.host).join(a.log.path.strip_prefix("/").unwrap());
            std::fs::read(live).ok() == std::fs::read(&a.log.path).ok()
        });
        if compressed == HOSTS.len() && live_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "archive not complete within 60 s (compressed: {compressed}); collector log:\n{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(collector.stop().success());
    let timeline = out.join(".logferry/timeline");
    assert!(timeline.is_dir(), "the time index is beside the archive");
    for h in HOSTS {
        let mut stack = vec![out.join(h)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                assert!(
                    !p.to_string_lossy().ends_with(".tl"),
                    "{} is inside OUT/HOST",
                    p.display()
                );
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
    }

    let ms_of: HashMap<&str, i64> = truth.iter().map(|t| (t.line.as_str(), t.ms)).collect();
    let rows = merge(&out, &[]);
    // Every line once.
    let mut got: Vec<&str> = rows.iter().map(|r| r.line.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = truth.iter().map(|t| t.line.as_str()).collect();
    want.sort();
    assert_eq!(got, want, "merge prints every line exactly once");
    // Read time = the record timestamp, in order.
    let mut prev = i64::MIN;
    for r in &rows {
        let ms = rfc3339_ms(&r.timestamp);
        assert_eq!(ms, ms_of[r.line.as_str()], "time of {:?}", r.line);
        assert!(
            ms >= prev,
            "{:?} at {} comes after a later line",
            r.line,
            r.timestamp
        );
        prev = ms;
        assert_eq!(r.host, &r.line[5..6], "host named");
    }
    // Each source in file order: offsets grow per generation, and line
    // numbers per host (a host's generations follow each other).
    let mut last: HashMap<(&str, &str), u64> = HashMap::new();
    let mut last_n: HashMap<&str, u32> = HashMap::new();
    let mut generations: HashMap<&str, HashSet<&str>> = HashMap::new();
    for r in &rows {
        let k = (r.host.as_str(), r.generation.as_str());
        if let Some(&o) = last.get(&k) {
            assert!(r.offset > o, "{:?} out of file order", r.line);
        }
        last.insert(k, r.offset);
        let n: u32 = r.line[9..13].parse().unwrap();
        if let Some(&p) = last_n.get(r.host.as_str()) {
            assert!(n > p, "{:?} after line {p} of the same host", r.line);
        }
        last_n.insert(&r.host, n);
        assert!(r.path.ends_with("/logs/app.log"), "{}", r.path);
        generations
            .entry(&r.host)
            .or_default()
            .insert(&r.generation);
    }
    for h in HOSTS {
        assert_eq!(
            generations[h].len(),
            2,
            "host {h}: the compressed generation is merged too"
        );
    }

    // --since/--until cut exactly, by the records' own times.
    let mut times: Vec<i64> = truth.iter().map(|t| t.ms).collect();
    times.sort();
    let (t1, t2) = (times[times.len() / 3], times[2 * times.len() / 3]);
    let rows = merge(&out, &["--since", &at(t1), "--until", &at(t2)]);
    let mut got: Vec<&str> = rows.iter().map(|r| r.line.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = truth
        .iter()
        .filter(|t| t.ms >= t1 && t.ms < t2)
        .map(|t| t.line.as_str())
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "--since {t1} --until {t2}");
    let hosts: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.host.as_str()).or_default() += 1;
        m
    });
    eprintln!(
        "window {t1}..{t2}: {} lines, per host {hosts:?}",
        rows.len()
    );
    // Host filter and grep on the archive.
    let rows = merge(&out, &["--host", "c", "--grep", "n=00[0-3][0-9] "]);
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r.host == "c"));
    for a in agents.iter_mut() {
        assert!(a.ship.stop().success());
    }
}

/// `logferry demo` runs the whole pipeline on the embedded broker and ends
/// with its byte-exact check passing.
#[test]
fn demo_ends_with_a_passing_byte_exact_check() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["demo", "--lines", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "demo exited {status:?}\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("byte-exact check passed"),
        "no passing check in:\n{stdout}"
    );
    // The merged view interleaves both hosts.
    let merged: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("web1 ") || l.starts_with("web2 "))
        .collect();
    assert!(merged.iter().any(|l| l.starts_with("web1 ")));
    assert!(merged.iter().any(|l| l.starts_with("web2 ")));
}
