//! Collectors on separate hosts: three `logferry collect` children in one
//! group, each with its own output directory, share nothing but Kafka
//! (the topic and the collectors' index topic). Agents with the default
//! partitioning ship files with rotations; during the stream one
//! collector is killed with SIGKILL and a new one (a fresh directory)
//! joins. Afterwards every source generation is byte-identical to an
//! output in some directory, and no output `collect status` presents as
//! whole (`"whole": true`) is partial: each is, during the stream, a
//! prefix of its source, and at the end identical to it.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// An agent host with two files, shipping with the default partitioning.
struct Agent {
    host: String,
    dir: LogDir,
    writers: Vec<LogWriter>,
    rotations: usize,
    written: usize,
    ship: Logferry,
}

impl Agent {
    fn start(brokers: &str, topic: &str, host: &str) -> Agent {
        let dir = LogDir::new();
        let writers = (0..2)
            .map(|i| LogWriter::create(&dir.logs.join(format!("f{i}.log"))))
            .collect();
        let cfg = config_toml(dir.path(), brokers, host, topic, &dir.glob(), "", "");
        let ship = Logferry::start(
            &["ship", "-c", &cfg.display().to_string()],
            &dir.path().join("ship.log"),
        );
        Agent {
            host: host.into(),
            dir,
            writers,
            rotations: 0,
            written: 0,
            ship,
        }
    }

    fn write_round(&mut self, n: usize) {
        for (i, w) in self.writers.iter_mut().enumerate() {
            let from = self.written;
            w.write_lines((from..from + n).map(|k| format!("{} f{i} {}", self.host, line(k))));
        }
        self.written += n;
    }

    fn rotate(&mut self, file: usize) {
        self.rotations += 1;
        let to = self
            .dir
            .logs
            .join(format!("f{file}.log.{}", self.rotations));
        self.writers[file].rotate_rename(&to);
    }

    fn sources(&self) -> Vec<Vec<u8>> {
        files_with_prefix(&self.dir.logs, "f")
            .into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .filter(|c| !c.is_empty())
            .collect()
    }
}

struct Collector {
    out: PathBuf,
    proc: Option<Logferry>,
}

impl Collector {
    fn start(brokers: &str, topic: &str, index: &str, group: &str, out: PathBuf) -> Self {
        let log = out.with_extension("log");
        let p = Logferry::start(
            &[
                "collect",
                "--brokers",
                brokers,
                "-t",
                topic,
                "--index-topic",
                index,
                "--group",
                group,
                "--out",
                out.to_str().unwrap(),
                "--commit-interval",
                "300ms",
                // A member killed with SIGKILL is noticed after this long.
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ],
            &log,
        );
        p.wait_for_log("collecting", Duration::from_secs(20));
        Collector { out, proc: Some(p) }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.out.with_extension("log")).unwrap_or_default()
    }
}

/// One output as `collect status` presents it.
struct Shown {
    path: PathBuf,
    custody: String,
    whole: bool,
}

fn shown(out: &Path) -> Vec<Shown> {
    let o = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args([
            "collect",
            "status",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = match serde_json::from_slice(&o.stdout) {
        Ok(v) => v,
        // Not created yet.
        Err(_) => return Vec::new(),
    };
    v["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| Shown {
            path: out.join(g["output"].as_str().unwrap()),
            custody: g["custody"].as_str().unwrap_or("untracked").to_string(),
            whole: g["whole"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// Outputs presented as whole that are not a prefix of any source (during
/// the stream), or not equal to one (`exact`).
fn wrongly_whole(collectors: &[Collector], sources: &[Vec<u8>], exact: bool) -> Vec<String> {
    let mut bad = Vec::new();
    for c in collectors {
        for s in shown(&c.out).into_iter().filter(|s| s.whole) {
            let Ok(content) = std::fs::read(&s.path) else {
                continue; // renamed between status and read
            };
            let ok = sources.iter().any(|src| {
                if exact {
                    *src == content
                } else {
                    src.starts_with(&content)
                }
            });
            if !ok {
                bad.push(format!(
                    "{} ({}, {} bytes) is shown whole but is not {} a source",
                    s.path.display(),
                    s.custody,
                    content.len(),
                    if exact { "equal to" } else { "a prefix of" }
                ));
            }
        }
    }
    bad
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".logferry" || name == "_unattributed" {
            continue;
        }
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Source generations not byte-identical to an output in any directory.
fn missing(collectors: &[Collector], sources: &[Vec<u8>]) -> usize {
    let mut outputs: HashSet<Vec<u8>> = HashSet::new();
    for c in collectors {
        let mut files = Vec::new();
        all_files(&c.out, &mut files);
        outputs.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    sources.iter().filter(|s| !outputs.contains(*s)).count()
}

#[test]
fn a_missing_index_topic_stops_the_collector_at_start_naming_it() {
    let Some(brokers) = brokers() else { return };
    let work = tempfile::tempdir().unwrap();
    let missing = topic_name("no-such-index");
    let o = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args([
            "collect",
            "--brokers",
            &brokers,
            "-t",
            "t",
            "--index-topic",
            &missing,
            "--out",
            work.path().join("out").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("index topic \"{missing}\" does not exist")),
        "{err}"
    );
}

#[test]
fn three_collectors_on_separate_directories_hold_every_generation_whole_through_a_kill_and_a_join()
{
    let Some(brokers) = brokers() else { return };
    let started = Instant::now();
    let topic = topic_name("collect-scale");
    create_topic(&brokers, &topic, 6);
    let index = index_topic(&brokers, "collect-scale");
    let work = tempfile::tempdir().unwrap();
    let group = format!("g-{topic}");
    let mut collectors: Vec<Collector> = (0..3)
        .map(|i| {
            Collector::start(
                &brokers,
                &topic,
                &index,
                &group,
                work.path().join(format!("out{i}")),
            )
        })
        .collect();
    let mut agents: Vec<Agent> = ["h0", "h1", "h2"]
        .iter()
        .map(|h| Agent::start(&brokers, &topic, h))
        .collect();
    let sources =
        |agents: &[Agent]| -> Vec<Vec<u8>> { agents.iter().flat_map(Agent::sources).collect() };
    let assignments = |c: &[Collector]| -> usize {
        c.iter()
            .map(|c| c.log().matches("partitions assigned partitions=t").count())
            .sum()
    };
    let mut before_kill = 0;
    for round in 0..44 {
        for a in agents.iter_mut() {
            a.write_round(20);
            if round % 8 == 5 {
                a.rotate((round / 8) % 2);
            }
        }
        match round {
            6 => {
                // The member killed is one that is writing a generation.
                // Which members that is depends on where the agents'
                // generations hash to: a fixed member owns none of the nine
                // generations written so far in about one run of forty.
                let deadline = Instant::now() + Duration::from_secs(20);
                let victim = loop {
                    let writing = collectors
                        .iter()
                        .position(|c| shown(&c.out).iter().any(|s| s.custody == "writing"));
                    if let Some(i) = writing {
                        break i;
                    }
                    assert!(Instant::now() < deadline, "no collector wrote anything");
                    std::thread::sleep(Duration::from_millis(50));
                };
                eprintln!("killing collector c{victim}");
                before_kill = assignments(&collectors);
                let mut p = collectors[victim].proc.take().unwrap();
                p.signal(libc::SIGKILL);
                p.wait_timeout(Duration::from_secs(10)).expect("killed");
                p.child = None;
            }
            // The survivors take the killed member's partitions over (after
            // its session times out) while the agents write on.
            16..=40 if assignments(&collectors) == before_kill => {}
            16..=40 if collectors.len() == 3 => collectors.push(Collector::start(
                &brokers,
                &topic,
                &index,
                &group,
                work.path().join("out3"),
            )),
            _ => {}
        }
        assert!(
            round < 40 || collectors.len() == 4,
            "the survivors did not take the killed member's partitions over"
        );
        // Whatever is shown whole is at least a prefix of its source.
        let bad = wrongly_whole(&collectors, &sources(&agents), false);
        assert!(bad.is_empty(), "round {round}:\n{}", bad.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines: usize = agents.iter().map(|a| a.written * 2).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic_count(&brokers, &topic) < lines as i64 {
        assert!(
            Instant::now() < deadline,
            "the agents did not ship every line"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every generation lands whole somewhere, and nothing shown whole is
    // partial, once the members caught up and read each other's claims.
    let all = sources(&agents);
    let (mut lost, mut bad);
    loop {
        lost = missing(&collectors, &all);
        bad = wrongly_whole(&collectors, &all, true);
        if (lost == 0 && bad.is_empty()) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs: Vec<String> = collectors.iter().map(Collector::log).collect();
    let custodies: Vec<String> = collectors
        .iter()
        .flat_map(|c| shown(&c.out))
        .map(|s| s.custody)
        .collect();
    for c in collectors.iter_mut() {
        if let Some(mut p) = c.proc.take() {
            assert!(p.stop().success(), "{}", p.stderr());
        }
    }
    for a in agents.iter_mut() {
        a.ship.stop();
    }
    assert_eq!(lost, 0, "source generations in no output directory");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The kill and the join moved partitions mid-generation: some member
    // rebuilt a generation from its first offset, and the copy it
    // continued was marked handed over.
    assert!(
        logs.iter()
            .any(|l| l.contains("rebuilding generations this output directory did not start")),
        "no generation was rebuilt:\n{}",
        logs.join("\n----\n")
    );
    let moves: Vec<String> = logs
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.lines()
                .filter(|l| {
                    l.contains("partitions") || l.contains("read back") || l.contains("rebuilding")
                })
                .map(move |l| format!("c{i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    // Whether a surviving member gives a partition up to the joiner while
    // it still writes a generation there depends on when the rebalances
    // fall (about one run in ten on this 2-core machine sees none): said,
    // not asserted. What is asserted above holds either way: every source
    // whole somewhere, and nothing shown whole that is not.
    if !custodies.iter().any(|c| c == "handed_over") {
        eprintln!(
            "note: no copy was handed over in this run: {custodies:?}\n{}",
            moves.join("\n")
        );
    }
    assert!(
        custodies.iter().any(|c| c == "interrupted"),
        "the killed collector's copies are not shown as interrupted: {custodies:?}"
    );
    eprintln!(
        "{} source generations, {} outputs shown, in {:?}",
        all.len(),
        custodies.len(),
        started.elapsed()
    );
}
