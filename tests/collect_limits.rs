//! `logferry collect`'s defences against streams it cannot trust to be in
//! order or in shape, against the real cluster. Records are produced here
//! with logferry's own attribution (key form) so that partitions, offsets
//! and producer timestamps are exactly what each test needs:
//!
//! - a line whose offset lies more than `max_hole` past its output's end
//!   goes to `_unattributed`, counted and said once, not into the file;
//! - a backlog delivering the newer generation of a file before the older
//!   one leaves the live name with the newer (ordered by record time);
//! - a generation arriving on several partitions while a collector holds
//!   only some of them is warned about once per session and counted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::scrape::*;
use common::*;
use logferry::wire::{encode_source_key, source_tail};
use logferry_tail::{FileId, GenerationId};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

const HOST: &str = "lim";
const PATH: &[u8] = b"/var/log/app.log";

/// One line of one generation, placed in a partition with a timestamp.
#[derive(Clone)]
struct Rec {
    generation: u64,
    offset: u64,
    line: Vec<u8>,
    partition: i32,
    time_ms: i64,
}

fn produce(brokers: &str, topic: &str, recs: &[Rec]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let tail = source_tail(HOST, PATH);
    let mut key = Vec::new();
    for r in recs {
        let id = FileId {
            dev: 1,
            ino: r.generation,
        };
        let g = GenerationId(r.generation);
        encode_source_key(&mut key, b"", g, id, r.offset, false, &tail);
        let rec = BaseRecord::<[u8], [u8]>::to(topic)
            .key(&key)
            .payload(&r.line)
            .partition(r.partition)
            .timestamp(r.time_ms);
        common::send_waiting(&producer, rec);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// `n` lines of `generation` from `offset` on, partition chosen by
/// `partition(i)`; returns them and the file they make.
fn lines(
    generation: u64,
    tag: &str,
    n: usize,
    time_ms: i64,
    partition: impl Fn(usize) -> i32,
) -> (Vec<Rec>, Vec<u8>) {
    let mut file = Vec::new();
    let mut recs = Vec::new();
    for i in 0..n {
        let line = format!("{tag} {}", line(i)).into_bytes();
        recs.push(Rec {
            generation,
            offset: file.len() as u64,
            line: line.clone(),
            partition: partition(i),
            time_ms,
        });
        file.extend_from_slice(&line);
        file.push(b'\n');
    }
    (recs, file)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn collector(brokers: &str, topic: &str, group: &str, out: &Path, extra: &[&str]) -> Logferry {
    let index = group_index_topic(brokers, group);
    let mut args = vec![
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
        out.to_str().unwrap(),
        "--commit-interval",
        "300ms",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let log = out.with_extension("log");
    let lf = Logferry::start(&args, &log);
    lf.wait_for_log("collecting", Duration::from_secs(20));
    lf
}

fn wait_for_file(path: &Path, want: &[u8], timeout: Duration, lf: &Logferry) {
    let deadline = Instant::now() + timeout;
    while std::fs::read(path).ok().as_deref() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{} never held the expected {} bytes (has {:?} bytes); collector log:\n{}",
            path.display(),
            want.len(),
            std::fs::metadata(path).map(|m| m.len()).ok(),
            lf.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn far_offsets_go_to_unattributed_and_an_older_generation_met_late_does_not_take_the_live_name() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("collect-limits");
    create_topic(&brokers, &topic, 1);
    let t = now_ms();
    let old_ms = t - 3_600_000;
    let (new_gen, old_gen, stray_gen) = (0x2b, 0x1a, 0x3c);
    let (mut newer, new_file) = lines(new_gen, "new", 50, t, |_| 0);
    let (older, old_file) = lines(old_gen, "old", 30, old_ms, |_| 0);
    let far = |generation, offset: u64, line: &str| Rec {
        generation,
        offset,
        line: line.as_bytes().to_vec(),
        partition: 0,
        time_ms: t,
    };
    // In one partition, so the order is the one a backlog can deliver:
    // the newer generation's first lines, then far offsets, then the older
    // generation, then the rest of the newer one.
    let rest = newer.split_off(25);
    let mut recs = newer;
    recs.push(far(new_gen, 1 << 60, "hostile"));
    // Under the default (64 GiB) this would be written; --max-hole 1MiB
    // refuses it.
    recs.push(far(new_gen, 3 << 20, "past the flag's limit"));
    // A generation seen first far out is not registered at all.
    recs.push(far(stray_gen, 1 << 50, "stray"));
    recs.extend(older);
    recs.extend(rest);
    produce(&brokers, &topic, &recs);

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let group = format!("g-{topic}");
    let mut c = collector(&brokers, &topic, &group, &out, &["--max-hole", "1MiB"]);
    let addr = metrics_addr(&c);
    let live = out.join(HOST).join("var/log/app.log");
    wait_for_file(&live, &new_file, Duration::from_secs(60), &c);
    let older_name = PathBuf::from(format!(
        "{}.{}-{}",
        live.display(),
        old_ms / 1000,
        GenerationId(old_gen)
    ));
    wait_for_file(&older_name, &old_file, Duration::from_secs(30), &c);
    let un = out.join(format!("_unattributed/{topic}/partition-0.log"));
    wait_for_file(
        &un,
        b"hostile\npast the flag's limit\nstray\n",
        Duration::from_secs(30),
        &c,
    );
    let body = until(
        &addr,
        "3 lines beyond max_hole",
        Duration::from_secs(10),
        |b| sum(b, "logferry_collect_beyond_max_hole_total") == 3.0,
    );
    assert_eq!(
        sum(&body, "logferry_collect_split_generations_total"),
        0.0,
        "{body}"
    );
    let log = c.stderr();
    c.stop();
    assert_eq!(
        log.matches("lies more than max_hole").count(),
        1,
        "said once:\n{log}"
    );
    let warning = log
        .lines()
        .find(|l| l.contains("lies more than max_hole"))
        .unwrap();
    eprintln!("the warning: {warning}");
    for needle in [
        HOST,
        &GenerationId(new_gen).to_string(),
        "/var/log/app.log",
        &(1u64 << 60).to_string(),
        &(1u64 << 20).to_string(),
    ] {
        assert!(warning.contains(needle), "{needle} missing: {warning}");
    }
    // Nothing but the two generations' files under the host: no sparse
    // giant, no file for the stray generation.
    let mut names: Vec<String> = std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        std::fs::metadata(&live).unwrap().len(),
        new_file.len() as u64
    );
}

#[test]
fn a_generation_spread_over_partitions_is_warned_once_per_collector_holding_part_of_them() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("collect-spread");
    create_topic(&brokers, &topic, 4);
    let work = tempfile::tempdir().unwrap();
    // Two collectors of one group with separate OUT directories: the setup
    // that loses half of every file when agents partition by "none".
    let group = format!("g-{topic}");
    let out_a = work.path().join("a");
    let out_b = work.path().join("b");
    let mut a = collector(&brokers, &topic, &group, &out_a, &[]);
    a.wait_for_log("partitions assigned", Duration::from_secs(30));
    let mut b = collector(&brokers, &topic, &group, &out_b, &[]);
    // Cooperative-sticky: `a` gives two of its four partitions to `b`.
    a.wait_for_log("partitions revoked", Duration::from_secs(60));
    b.wait_for_log("partitions assigned", Duration::from_secs(60));
    let (addr_a, addr_b) = (metrics_addr(&a), metrics_addr(&b));
    let t = now_ms();
    // Two generations round-robin over every partition, one on partition 0
    // only.
    let (s1, _) = lines(0x51, "s1", 40, t, |i| (i % 4) as i32);
    let (s2, _) = lines(0x52, "s2", 40, t, |i| (i % 4) as i32);
    let (k, _) = lines(0x60, "k", 40, t, |_| 0);
    produce(&brokers, &topic, &[s1, s2, k].concat());
    for (lf, addr) in [(&a, &addr_a), (&b, &addr_b)] {
        let body = until(
            addr,
            "both spread generations counted",
            Duration::from_secs(60),
            |m| sum(m, "logferry_collect_split_generations_total") == 2.0,
        );
        let log = lf.stderr();
        assert_eq!(
            log.matches("arrives on partitions").count(),
            1,
            "once per session:\n{log}"
        );
        if let Some(w) = log.lines().find(|l| l.contains("arrives on partitions")) {
            eprintln!("the warning: {w}");
        }
        assert!(log.contains("holds only 2 of 4"), "{log}");
        assert!(
            log.contains("partition_by = \"generation\" (the default)"),
            "{log}"
        );
        assert_eq!(
            sum(&body, "logferry_collect_beyond_max_hole_total"),
            0.0,
            "{body}"
        );
    }
    a.stop();
    b.stop();

    // Alone in its group, a collector holds every partition: the same
    // stream says nothing.
    let out_c = work.path().join("c");
    let mut c = collector(&brokers, &topic, &format!("{group}-alone"), &out_c, &[]);
    let addr_c = metrics_addr(&c);
    until(&addr_c, "all 120 records", Duration::from_secs(60), |m| {
        sum(m, "logferry_collect_records_total") == 120.0
            && sum(m, "logferry_collect_commits_total") >= 1.0
    });
    let body = until(&addr_c, "a later scrape", Duration::from_secs(5), |_| true);
    assert_eq!(
        sum(&body, "logferry_collect_split_generations_total"),
        0.0,
        "{body}"
    );
    let log = c.stderr();
    c.stop();
    assert!(!log.contains("arrives on partitions"), "{log}");
}
