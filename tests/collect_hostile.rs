//! Hostile records mixed into an agent's topic, against the real cluster:
//! a real `logferry ship` ships three files (one rotated) while a second
//! producer writes a few thousand records no agent would write: random
//! bytes as key, `lf` header and value; truncated varints and huge lengths;
//! offsets near 2^63; sources whose host or path holds `..`, `/`, NUL,
//! 300-byte components; outputs that clash or whose path is too long.
//!
//! The collector (a real `logferry collect`) must keep consuming: every
//! source file is rebuilt byte-identical, every hostile record is either
//! written where its (escaped) attribution points or appended to
//! `_unattributed`, in partition order, and counted by kind; nothing lands
//! outside OUT. Expectations come from how each hostile record was built
//! and from the topic's watermarks, not from logferry's figures alone.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::scrape::*;
use common::tools::Watermarks;
use common::*;
use logferry::wire::{encode_source, encode_source_key, source_tail};
use logferry_tail::{FileId, GenerationId};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 3;
const HOST: &str = "web";

/// What the collector must make of a hostile record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// No attribution: `_unattributed`.
    Unattributed,
    /// Attribution claimed but undecodable: `_unattributed`, counted as
    /// corrupt.
    Corrupt,
    /// Offset beyond max_hole: `_unattributed`, counted.
    Far,
    /// Written at its escaped source path under OUT (a file of its own).
    Written,
    /// Its output cannot be created: `_unattributed`, counted unwritable.
    Unwritable,
}

struct Hostile {
    key: Option<Vec<u8>>,
    lf: Option<Vec<u8>>,
    value: Vec<u8>,
    partition: i32,
    fate: Fate,
}

fn random_bytes(rng: &mut Lcg, max: u64) -> Vec<u8> {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.below(256) as u8).collect()
}

fn key_form(host: &str, path: &[u8], gen: u64, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let id = FileId { dev: 9, ino: gen };
    let tail = source_tail(host, path);
    encode_source_key(&mut out, b"", GenerationId(gen), id, offset, false, &tail);
    out
}

fn header_form(host: &str, path: &[u8], gen: u64, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let id = FileId { dev: 9, ino: gen };
    encode_source(
        &mut out,
        GenerationId(gen),
        id,
        offset,
        false,
        &source_tail(host, path),
    );
    out
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Hosts and paths of sources no agent has; `canary` must never appear
/// outside OUT.
fn hostile_sources(canary: &str) -> Vec<(String, Vec<u8>)> {
    let long = "x".repeat(300);
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("..".into(), format!("/../../{canary}").into_bytes()),
        (".".into(), format!("/./{canary}/..").into_bytes()),
        ("a/../b".into(), b"/etc/passwd".to_vec()),
        ("/".into(), canary.as_bytes().to_vec()),
        ("nul\0host".into(), b"/var/log/a\0b.log".to_vec()),
        (String::new(), b"/empty-host".to_vec()),
        (".logferry".into(), b"/index.json".to_vec()),
        ("_unattributed".into(), b"/t/partition-0.log".to_vec()),
        (long.clone(), format!("/{long}/{long}.log").into_bytes()),
        ("h%41".into(), b"/100%/%2E%2E/x".to_vec()),
        ("ctl\n\t".into(), b"/a//b/".to_vec()),
        ("utf8-\u{e9}".into(), b"/\xff\xfe/\xc3(".to_vec()),
        ("rel".into(), format!("../{canary}").into_bytes()),
    ];
    for i in 0..27 {
        v.push((
            format!("../h{i}"),
            format!("/../../{canary}-{i}").into_bytes(),
        ));
    }
    v
}

/// The hostile records, in send order, with their fates.
fn hostile_records(rng: &mut Lcg, canary: &str) -> Vec<Hostile> {
    let mut out = Vec::new();
    let mut push = |key, lf, value, fate, partition: Option<i32>, rng: &mut Lcg| {
        let partition = partition.unwrap_or(rng.below(PARTITIONS as u64) as i32);
        out.push(Hostile {
            key,
            lf,
            value,
            partition,
            fate,
        });
    };
    // Clashes, first (they stay in the first wave, before most agent
    // lines), on one partition so their order holds: a file, then a
    // source needing that file as a directory; and a path past PATH_MAX.
    let too_long = format!("/{}", vec!["d".repeat(150); 30].join("/"));
    let clash = [
        (b"/c".to_vec(), 3_000_000, Fate::Written),
        (b"/c/inner".to_vec(), 3_000_001, Fate::Unwritable),
        (too_long.into_bytes(), 3_000_002, Fate::Unwritable),
        (b"/c/inner".to_vec(), 3_000_001, Fate::Unwritable),
    ];
    for (k, (path, gen, fate)) in clash.into_iter().enumerate() {
        let offset = if k == 3 { 9 } else { 0 };
        let key = key_form("clash", &path, gen, offset);
        push(
            Some(key),
            None,
            format!("clash {k}").into_bytes(),
            fate,
            Some(0),
            rng,
        );
    }
    for i in 0..1200 {
        let value = random_bytes(rng, 120);
        let fate = match i % 4 {
            // Random key that is no version byte, no header.
            0 => {
                let mut k = random_bytes(rng, 40);
                k.insert(0, 5 + rng.below(250) as u8);
                push(Some(k), None, value, Fate::Unattributed, None, rng);
                continue;
            }
            // No key at all.
            1 => Fate::Unattributed,
            // A key-form prefix whose partitioning key length is huge: not
            // the key form, a plain key.
            2 => {
                let mut k = vec![3, 0];
                k.extend(varint(1 << 62));
                push(Some(k), None, value, Fate::Unattributed, None, rng);
                continue;
            }
            _ => Fate::Unattributed,
        };
        push(None, None, value, fate, None, rng);
    }
    for i in 0..900 {
        let value = random_bytes(rng, 120);
        let (key, lf) = match i % 3 {
            // The key form with a truncated varint (continuation bits to
            // the end).
            0 => {
                let mut k = vec![3, 0, 0];
                k.extend((0..rng.below(9)).map(|_| 0x80 | rng.below(128) as u8));
                (Some(k), None)
            }
            // An lf header whose host length is huge.
            1 => {
                let mut h = vec![4, 0, 1, 1, 1, 0];
                h.extend(varint(1 << 60));
                h.extend_from_slice(b"short");
                (Some(b"plain".to_vec()), Some(h))
            }
            // An lf header of random bytes that is no known version.
            _ => {
                let mut h = random_bytes(rng, 30);
                if !h.is_empty() {
                    h[0] = 5 + rng.below(250) as u8;
                }
                (None, Some(h))
            }
        };
        push(key, lf, value, Fate::Corrupt, None, rng);
    }
    let sources = hostile_sources(canary);
    for i in 0..300u64 {
        let (host, path) = &sources[i as usize % sources.len()];
        let offset = [i64::MAX as u64 - i, u64::MAX - i, 1 << 62, (1 << 63) + i][i as usize % 4];
        let gen = 1_000_000 + i;
        let (key, lf) = if i % 2 == 0 {
            (Some(key_form(host, path, gen, offset)), None)
        } else {
            (None, Some(header_form(host, path, gen, offset)))
        };
        push(key, lf, random_bytes(rng, 60), Fate::Far, None, rng);
    }
    for (i, (host, path)) in sources.iter().enumerate() {
        let mut value = format!("named {i} ").into_bytes();
        value.extend(random_bytes(rng, 40));
        let key = key_form(host, path, 2_000_000 + i as u64, 0);
        push(Some(key), None, value, Fate::Written, None, rng);
    }
    // Interleave the kinds (each record keeps its partition).
    let n = out.len() as u64;
    for i in (1..out.len()).rev() {
        let j = (rng.below(n) as usize) % (i + 1);
        // The clash records keep their order.
        if out[i].key.as_deref().is_some_and(is_clash)
            || out[j].key.as_deref().is_some_and(is_clash)
        {
            continue;
        }
        out.swap(i, j);
    }
    out
}

fn is_clash(key: &[u8]) -> bool {
    key.windows(5).any(|w| w == b"clash")
}

fn produce(brokers: &str, topic: &str, recs: &[Hostile]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for r in recs {
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic)
            .payload(&r.value)
            .partition(r.partition);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(h) = &r.lf {
            rec = rec.headers(OwnedHeaders::new().insert(Header {
                key: "lf",
                value: Some(h),
            }));
        }
        common::send_waiting(&producer, rec);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
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

/// Source files not byte-identical to exactly one output of the agent's host.
fn unmatched(logs: &Path, out: &Path) -> Vec<String> {
    let mut outputs = Vec::new();
    all_files(&out.join(HOST), &mut outputs);
    let contents: Vec<Vec<u8>> = outputs
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    files_with_prefix(logs, "f")
        .into_iter()
        .filter_map(|src| {
            let want = std::fs::read(&src).unwrap();
            let n = contents.iter().filter(|c| **c == want).count();
            (n != 1).then(|| format!("{}: {n} identical outputs", src.display()))
        })
        .collect()
}

fn count(recs: &[Hostile], fate: Fate) -> f64 {
    recs.iter().filter(|r| r.fate == fate).count() as f64
}

#[test]
fn hostile_records_never_stop_the_collector_and_every_real_file_is_rebuilt() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("collect-hostile");
    create_topic(&brokers, &topic, PARTITIONS);
    let mut rng = Lcg::from_time();
    let canary = format!("lf-canary-{}", rng.below(1 << 40));
    let hostile = hostile_records(&mut rng, &canary);

    // The collector first: it must consume through the hostile records as
    // they come, not only a finished topic.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let c_log = work.path().join("collect.log");
    let index = index_topic(&brokers, "collect-hostile");
    let mut collector = Logferry::start(
        &[
            "collect",
            "--index-topic",
            &index,
            "--brokers",
            &brokers,
            "-t",
            &topic,
            "--group",
            &format!("g-{topic}"),
            "--out",
            out.to_str().unwrap(),
            "--commit-interval",
            "300ms",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &c_log,
    );
    collector.wait_for_log("collecting", Duration::from_secs(20));
    let addr = metrics_addr(&collector);

    let agent = LogDir::new();
    let cfg = config_toml(agent.path(), &brokers, HOST, &topic, &agent.glob(), "", "");
    let mut ship = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &agent.path().join("ship.log"),
    );
    let mut writers: Vec<LogWriter> = (0..3)
        .map(|i| LogWriter::create(&agent.logs.join(format!("f{i}.log"))))
        .collect();
    let mut written = 0;
    let mut round = |writers: &mut Vec<LogWriter>, n: usize| {
        for (i, w) in writers.iter_mut().enumerate() {
            w.write_lines((written..written + n).map(|k| format!("f{i} {}", line(k))));
        }
        written += n;
    };
    // Agent lines and hostile records in three waves, with a rotation.
    let third = hostile.len() / 3;
    round(&mut writers, 700);
    produce(&brokers, &topic, &hostile[..third]);
    round(&mut writers, 700);
    writers[0].rotate_rename(&agent.logs.join("f0.log.1"));
    produce(&brokers, &topic, &hostile[third..2 * third]);
    round(&mut writers, 700);
    produce(&brokers, &topic, &hostile[2 * third..]);

    // Every real file rebuilt byte-identical while the stream goes on.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bad = unmatched(&agent.logs, &out);
    while !bad.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        bad = unmatched(&agent.logs, &out);
    }
    assert!(
        bad.is_empty(),
        "sources not rebuilt exactly:\n{}\ncollector log:\n{}",
        bad.join("\n"),
        collector.stderr()
    );
    let agent_lines: f64 = files_with_prefix(&agent.logs, "f")
        .iter()
        .map(|p| std::fs::read(p).unwrap().split(|&b| b == b'\n').count() as f64 - 1.0)
        .sum();
    ship.stop();

    // Every record consumed: the topic's own count, not logferry's.
    let in_topic = Watermarks::new(&brokers, &topic)
        .records()
        .expect("watermarks") as f64;
    assert_eq!(in_topic, agent_lines + hostile.len() as f64);
    let body = until(
        &addr,
        "every record in the topic handled",
        Duration::from_secs(30),
        |b| sum(b, "logferry_collect_records_total") == in_topic,
    );
    let kinds: HashMap<String, f64> = series(&body, "logferry_collect_records_total")
        .into_iter()
        .map(|(labels, v)| (labels.to_string(), v))
        .collect();
    let kind = |k: &str| {
        kinds
            .iter()
            .filter(|(l, _)| l.contains(&format!("kind=\"{k}\"")))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    let written_hostile = count(&hostile, Fate::Written);
    assert_eq!(kind("attributed"), agent_lines + written_hostile, "{body}");
    let kept: Vec<&Hostile> = hostile.iter().filter(|r| r.fate != Fate::Written).collect();
    assert_eq!(kind("unattributed"), kept.len() as f64, "{body}");
    assert_eq!(
        sum(&body, "logferry_collect_corrupt_attribution_total"),
        count(&hostile, Fate::Corrupt),
        "{body}"
    );
    assert_eq!(
        sum(&body, "logferry_collect_beyond_max_hole_total"),
        count(&hostile, Fate::Far),
        "{body}"
    );
    assert_eq!(
        sum(&body, "logferry_collect_unwritable_total"),
        count(&hostile, Fate::Unwritable),
        "{body}"
    );
    assert_eq!(sum(&body, "logferry_collect_disk_full"), 0.0, "{body}");

    // _unattributed holds exactly the kept records, in send order per
    // partition (one producer, idempotent: its order is the partition's).
    for p in 0..PARTITIONS {
        let mut want = Vec::new();
        for r in kept.iter().filter(|r| r.partition == p) {
            want.extend_from_slice(&r.value);
            want.push(b'\n');
        }
        let path = out.join(format!("_unattributed/{topic}/partition-{p}.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(&path).unwrap_or_default().len() < want.len()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let got = std::fs::read(&path).unwrap_or_default();
        assert!(
            got == want,
            "{}: {} bytes, want {} bytes of kept records",
            path.display(),
            got.len(),
            want.len()
        );
    }

    // The records written under their escaped names: one file each, with
    // that record's value, beside the agent's host, _unattributed and the
    // state directory.
    let mut others = Vec::new();
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        let name = e.file_name();
        if ![HOST, "_unattributed", ".logferry"]
            .iter()
            .any(|n| name == *n)
        {
            all_files(&e.path(), &mut others);
        }
    }
    let mut got: Vec<Vec<u8>> = others.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let mut want: Vec<Vec<u8>> = hostile
        .iter()
        .filter(|r| r.fate == Fate::Written)
        .map(|r| [r.value.as_slice(), b"\n"].concat())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "files: {others:?}");
    assert!(
        got == want,
        "hostile sources' files differ from their records"
    );

    // Nothing outside OUT: the work directory holds OUT and the log, and
    // the canary name (every `..` path ends in it) is nowhere above.
    let mut top: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["collect.log", "out"]);
    for dir in [
        work.path().to_path_buf(),
        work.path().parent().unwrap().to_path_buf(),
        std::env::temp_dir(),
        PathBuf::from("/"),
    ] {
        let found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(&canary))
            .collect();
        assert!(found.is_empty(), "{}: {found:?}", dir.display());
    }

    // It never stopped consuming, and said so once (rate-limited), not per
    // record.
    let log = collector.stderr();
    assert!(!log.contains("consuming stopped"), "{log}");
    assert_eq!(log.matches("output cannot be created").count(), 1, "{log}");
    let st = collector.stop();
    assert!(
        st.success(),
        "collector exited {st:?}: {}",
        collector.stderr()
    );
}
