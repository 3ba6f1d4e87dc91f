//! `--long-lines split` ships every byte of a line longer than a record may
//! be, against the real Kafka cluster started by scripts/test.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// A 2,000,000-byte line under `split` with the default max_line_bytes
/// (1,000,000) used to be framed into two 1,000,000-byte pieces, each over
/// librdkafka's default message.max.bytes (1,000,000, key and record
/// overhead included); the producer refused them and they were cut to
/// 750,000 bytes each, losing 500,000 bytes of the line. Now pieces are
/// framed to fit a record (message.max.bytes less room for the key), and
/// the records, in order of their source offsets, are the line.
#[test]
fn split_ships_every_byte_of_a_line_over_the_record_limit() {
    split_ships_all_of(&[], b"");
}

/// The same with `META::line` records: the prefix counts against the
/// limit, and each piece carries it.
#[test]
fn split_with_metadata_ships_every_byte_of_a_line_over_the_record_limit() {
    split_ships_all_of(&["-m", "web1"], b"web1::");
}

fn split_ships_all_of(extra: &[&str], prefix: &[u8]) {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("split");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
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
            state.to_str().unwrap(),
            "--long-lines",
            "split",
            "-X",
            "linger.ms=5",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    let long: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&long).unwrap();
    f.write_all(b"\n").unwrap();
    w.write_lines([line(1)]);
    let end = long.len() as u64 + 1;

    let mut r = Reader::new(&brokers, &topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !r
        .records
        .iter()
        .any(|rec| rec.source().is_some_and(|s| s.offset == end))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the line after the long one never arrived; stderr:\n{}",
            lf.stderr()
        );
        r.poll_once(Duration::from_millis(200));
    }
    let st = lf.stop();
    assert!(st.success(), "exit status {st}; stderr:\n{}", lf.stderr());

    let mut pieces: Vec<(u64, Vec<u8>)> = r
        .records
        .iter()
        .map(|rec| {
            let line = rec
                .payload
                .strip_prefix(prefix)
                .expect("the format's prefix");
            (rec.source().unwrap().offset, line.to_vec())
        })
        .filter(|(offset, _)| *offset < end)
        .collect();
    pieces.sort_by_key(|p| p.0);
    let mut at = 0;
    for (offset, payload) in &pieces {
        assert_eq!(*offset, at, "gap or overlap before offset {offset}");
        at += payload.len() as u64;
    }
    let sizes: Vec<usize> = pieces.iter().map(|p| p.1.len()).collect();
    let joined: Vec<u8> = pieces.into_iter().flat_map(|p| p.1).collect();
    assert_eq!(
        joined.len(),
        long.len(),
        "pieces of {sizes:?} bytes; stderr:\n{}",
        lf.stderr()
    );
    assert!(joined == long, "the pieces do not concatenate to the line");
    eprintln!("pieces: {sizes:?}");
    assert!(sizes.iter().all(|&n| n < 1_000_000), "{sizes:?}");
    let next = [prefix, line(1).as_bytes()].concat();
    assert!(r.records.iter().any(|rec| rec.payload == next));
}
