//! The agent's default partitioning against the real cluster: every
//! generation of every file stays in one partition, in file order, and
//! carries the partitioning key `HOST/GENERATION` a collector recognises;
//! a file cut in place (copytruncate) goes on as a new generation with its
//! own key, in the same stream.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;

#[test]
fn by_default_each_generation_stays_in_one_partition_in_order_through_copytruncate() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("pergen");
    create_topic(&brokers, &topic, 12);
    let dir = LogDir::new();
    let cfg = config_toml(dir.path(), &brokers, "genhost", &topic, &dir.glob(), "", "");
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("no matching file yet", Duration::from_secs(20));
    let (files, per_half) = (20, 100);
    let mut writers: Vec<LogWriter> = (0..files)
        .map(|f| LogWriter::create(&dir.logs.join(format!("f{f:02}.log"))))
        .collect();
    for (f, w) in writers.iter_mut().enumerate() {
        w.write_lines((0..per_half).map(|n| format!("{f:02}-a-{n:05}")));
    }
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(files * per_half, Duration::from_secs(60));
    // Cut every file in place: what follows is a new generation.
    for (f, w) in writers.iter_mut().enumerate() {
        w.rotate_copytruncate(&dir.logs.join(format!("f{f:02}.log.1")));
        w.write_lines((0..per_half).map(|n| format!("{f:02}-b-{n:05}")));
    }
    r.read_until(2 * files * per_half, Duration::from_secs(60));
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    assert_eq!(r.records.len(), 2 * files * per_half);
    // Per (file, half): one generation, one partition, file order, its key.
    let mut by_gen: HashMap<String, Vec<(i32, i64, usize)>> = HashMap::new();
    let mut generations: HashMap<String, HashSet<u64>> = HashMap::new();
    for rec in &r.records {
        let src = rec.source().expect("attributed");
        let g = src.generation.expect("a generation");
        assert_eq!(
            src.partition_key,
            format!("genhost/{g}").into_bytes(),
            "the partitioning key is HOST/GENERATION"
        );
        assert!(logferry::wire::is_generation_partition_key(
            &src.partition_key,
            "genhost",
            g
        ));
        let text = String::from_utf8(rec.payload.clone()).unwrap();
        let (file_half, n) = text.rsplit_once('-').unwrap();
        generations
            .entry(file_half.to_string())
            .or_default()
            .insert(g.0);
        by_gen.entry(file_half.to_string()).or_default().push((
            rec.partition,
            rec.offset,
            n.parse().unwrap(),
        ));
    }
    assert_eq!(by_gen.len(), 2 * files);
    let mut partitions_used = HashSet::new();
    for (fh, mut recs) in by_gen {
        assert_eq!(generations[&fh].len(), 1, "{fh}: one generation");
        let parts: HashSet<i32> = recs.iter().map(|r| r.0).collect();
        assert_eq!(parts.len(), 1, "{fh} spread over partitions {parts:?}");
        partitions_used.extend(parts);
        recs.sort_unstable();
        let order: Vec<usize> = recs.iter().map(|r| r.2).collect();
        assert_eq!(
            order,
            (0..per_half).collect::<Vec<_>>(),
            "{fh} out of order"
        );
    }
    // A file's two generations are two keys: 40 generations use most of
    // the 12 partitions.
    assert!(
        partitions_used.len() > 6,
        "generations hash over the partitions: {partitions_used:?}"
    );
    for f in 0..files {
        let (a, b) = (
            &generations[&format!("{f:02}-a")],
            &generations[&format!("{f:02}-b")],
        );
        assert_ne!(a, b, "f{f:02}: the cut starts a new generation");
    }
}
