//! What goes on the wire, against the real cluster: the JSON envelope,
//! keys and partitions (per file, by a regex capture), and topic templates.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::*;

/// This file's tests' configuration: one input with `input_extra` lines.
fn config(
    dir: &Path,
    brokers: &str,
    topic: &str,
    include: &str,
    input_extra: &str,
) -> std::path::PathBuf {
    config_toml(dir, brokers, "wirehost", topic, include, "", input_extra)
}

#[test]
fn json_envelope_carries_line_source_and_fields() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("json");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = config(
        dir.path(),
        &brokers,
        &topic,
        log.to_str().unwrap(),
        "format = \"json\"\n[inputs.fields]\nenv = \"test\"\nservice = \"shop\"",
    );
    std::fs::write(&log, b"GET /a \"quoted\"\n\xff\xfebinary\n").unwrap();
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(2, Duration::from_secs(30));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(r.records.len(), 2);
    let v: Vec<serde_json::Value> = r
        .records
        .iter()
        .map(|rec| serde_json::from_slice(&rec.payload).unwrap())
        .collect();
    assert_eq!(v[0]["line"], "GET /a \"quoted\"");
    assert_eq!(v[0]["encoding"], "utf-8");
    assert_eq!(v[0]["host"], "wirehost");
    assert_eq!(v[0]["path"], log.to_str().unwrap());
    assert_eq!(v[0]["offset"], 0);
    assert_eq!(v[0]["fields"]["env"], "test");
    assert_eq!(v[0]["fields"]["service"], "shop");
    assert!(v[0]["read_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(v[1]["encoding"], "base64");
    assert_eq!(v[1]["offset"], 16);
    // The envelope's line decodes back to the file's bytes exactly.
    let f = logferry::wire::Format::Json { fields: vec![] };
    assert_eq!(
        f.line_of(&r.records[1].payload).unwrap(),
        &b"\xff\xfebinary"[..]
    );
}

#[test]
fn file_partitioning_keeps_each_of_50_files_in_order_across_12_partitions() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("perfile");
    create_topic(&brokers, &topic, 12);
    let dir = LogDir::new();
    let logs = dir.logs.clone();
    let cfg = config(
        dir.path(),
        &brokers,
        &topic,
        &dir.glob(),
        "partition_by = \"file\"",
    );
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("no matching file yet", Duration::from_secs(20));
    let (files, per_file) = (50, 200);
    let mut writers: Vec<LogWriter> = (0..files)
        .map(|f| LogWriter::create(&logs.join(format!("f{f:02}.log"))))
        .collect();
    for round in 0..4 {
        for (f, w) in writers.iter_mut().enumerate() {
            let from = round * per_file / 4;
            w.write_lines((from..from + per_file / 4).map(|n| format!("{f:02}-{n:05}")));
        }
    }
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(files * per_file, Duration::from_secs(120));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(r.records.len(), files * per_file);
    // Per file: one partition, and in Kafka order within it the file order.
    let mut by_file: HashMap<String, Vec<(i32, i64, usize)>> = HashMap::new();
    for rec in &r.records {
        let text = String::from_utf8(rec.payload.clone()).unwrap();
        let (f, n) = text.split_once('-').unwrap();
        by_file.entry(f.to_string()).or_default().push((
            rec.partition,
            rec.offset,
            n.parse().unwrap(),
        ));
    }
    assert_eq!(by_file.len(), files);
    let mut partitions_used = HashSet::new();
    for (f, mut recs) in by_file {
        let parts: HashSet<i32> = recs.iter().map(|r| r.0).collect();
        assert_eq!(parts.len(), 1, "file {f} spread over partitions {parts:?}");
        partitions_used.extend(parts);
        recs.sort_unstable();
        let order: Vec<usize> = recs.iter().map(|r| r.2).collect();
        assert_eq!(
            order,
            (0..per_file).collect::<Vec<_>>(),
            "file {f} out of order"
        );
    }
    assert!(
        partitions_used.len() > 6,
        "50 files use most of the 12 partitions: {partitions_used:?}"
    );
}

/// Ship three "servers" (files) logging lines of the same 40 requests to a
/// 12-partition topic with `partition_by = "pattern"` and the given
/// attribution; return each request id's partitions.
fn ship_requests(brokers: &str, attribution: &str) -> HashMap<Vec<u8>, HashSet<i32>> {
    let topic = topic_name(&format!("reqkey-{attribution}"));
    create_topic(brokers, &topic, 12);
    let dir = LogDir::new();
    let logs = dir.logs.clone();
    let cfg = config_toml(
        dir.path(),
        brokers,
        "wirehost",
        &topic,
        &dir.glob(),
        &format!("attribution = \"{attribution}\""),
        "partition_by = \"pattern\"\nkey_pattern = 'request_id=(?P<key>[0-9a-f]+)'",
    );
    for server in 0..3 {
        let mut w = LogWriter::create(&logs.join(format!("server{server}.log")));
        w.write_lines(
            (0..40).map(|req| format!("server={server} request_id={:x} GET /x", 0xa000 + req)),
        );
    }
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let mut r = Reader::new(brokers, &topic);
    r.read_until(120, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(r.records.len(), 120);
    let mut partition_of: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
    for rec in &r.records {
        // The request id is the record key itself with attribution in a
        // header, and the partitioning key inside the key form otherwise.
        let key = match attribution {
            "key" => {
                let src = rec.source().expect("key form");
                assert_eq!(src.host, "wirehost");
                src.partition_key
            }
            _ => rec.key.clone().expect("every line has a request id"),
        };
        let text = String::from_utf8(rec.payload.clone()).unwrap();
        assert!(text.contains(&format!("request_id={}", String::from_utf8_lossy(&key))));
        partition_of.entry(key).or_default().insert(rec.partition);
    }
    assert_eq!(partition_of.len(), 40);
    assert!(
        partition_of.values().all(|p| p.len() == 1),
        "a request spread over partitions ({attribution})"
    );
    partition_of
}

#[test]
fn regex_key_puts_one_request_in_one_partition() {
    let Some(brokers) = brokers() else { return };
    let in_key = ship_requests(&brokers, "key");
    let in_header = ship_requests(&brokers, "header");
    // logferry's partitioner (attribution in the key) and librdkafka's
    // default (plain key) agree, so a fleet mixing both keeps a request in
    // one partition.
    assert_eq!(in_key, in_header);
}

#[test]
fn topic_template_routes_each_file_to_its_topic() {
    let Some(brokers) = brokers() else { return };
    let prefix = topic_name("tmpl");
    for stem in ["alpha", "beta"] {
        create_topic(&brokers, &format!("{prefix}.wirehost.{stem}"), 1);
    }
    let dir = LogDir::new();
    let logs = dir.logs.clone();
    let cfg = config(
        dir.path(),
        &brokers,
        &format!("{prefix}.{{host}}.{{file_stem}}"),
        &dir.glob(),
        "",
    );
    for (stem, n) in [("alpha", 30), ("beta", 20)] {
        let mut w = LogWriter::create(&logs.join(format!("{stem}.log")));
        w.write_lines((0..n).map(|i| format!("{stem} {i}")));
    }
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    for (stem, n) in [("alpha", 30), ("beta", 20)] {
        let topic = format!("{prefix}.wirehost.{stem}");
        let mut r = Reader::new(&brokers, &topic);
        r.read_until(n, Duration::from_secs(60));
        assert_eq!(r.records.len(), n, "topic {topic}");
        assert!(r
            .records
            .iter()
            .all(|rec| rec.payload.starts_with(stem.as_bytes())));
        assert_eq!(topic_count(&brokers, &topic), n as i64);
    }
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
}

#[test]
fn static_headers_arrive_on_every_record() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("headers");
    create_topic(&brokers, &topic, 1);
    let dir = LogDir::new();
    let logs = dir.logs.clone();
    let cfg = config(
        dir.path(),
        &brokers,
        &topic,
        &dir.glob(),
        "[inputs.headers]\ndc = \"fra1\"\nteam = \"web\"",
    );
    let mut w = LogWriter::create(&logs.join("a.log"));
    w.write_lines((0..50).map(line));
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(50, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(r.records.len(), 50);
    let mut offset = 0u64;
    for (i, rec) in r.records.iter().enumerate() {
        assert_eq!(rec.payload, line(i).as_bytes(), "record {i}");
        assert_eq!(rec.headers.get("dc").map(Vec::as_slice), Some(&b"fra1"[..]));
        assert_eq!(
            rec.headers.get("team").map(Vec::as_slice),
            Some(&b"web"[..])
        );
        // The attribution stays in the key (the default), not a header.
        assert!(!rec.headers.contains_key("lf"));
        let src = rec.source().expect("source in the key");
        assert_eq!((src.host.as_str(), src.offset), ("wirehost", offset));
        offset += rec.payload.len() as u64 + 1;
    }
}
