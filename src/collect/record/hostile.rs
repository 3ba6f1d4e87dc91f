//! Records no agent would write, through the collector's record handling:
//! names the file system refuses or that clash, and arbitrary bytes as
//! key, `lf` header and value. None may stop the collector (an error out
//! of [`handle`] is a stop), panic, or write outside OUT.

use std::path::{Component, Path};

use logferry_tail::{FileId, GenerationId};
use proptest::prelude::*;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

use super::handle;
use crate::collect::index::Store;
use crate::collect::State;
use crate::wire::{encode_source, encode_source_key, source_tail, SOURCE_HEADER};

const T: &str = "t";

fn keyed(host: &str, path: &[u8], gen: u64, offset: u64, value: &[u8], at: i64) -> OwnedMessage {
    keyed_at(host, path, gen, offset, value, at, 1_000)
}

/// [`keyed`] produced at `time_ms`.
fn keyed_at(
    host: &str,
    path: &[u8],
    gen: u64,
    offset: u64,
    value: &[u8],
    at: i64,
    time_ms: i64,
) -> OwnedMessage {
    let mut key = Vec::new();
    let id = FileId { dev: 1, ino: gen };
    let tail = source_tail(host, path);
    encode_source_key(&mut key, b"", GenerationId(gen), id, offset, false, &tail);
    message_at(Some(key), None, value, at, time_ms)
}

fn message(key: Option<Vec<u8>>, header: Option<Vec<u8>>, value: &[u8], at: i64) -> OwnedMessage {
    message_at(key, header, value, at, 1_000)
}

fn message_at(
    key: Option<Vec<u8>>,
    header: Option<Vec<u8>>,
    value: &[u8],
    at: i64,
    time_ms: i64,
) -> OwnedMessage {
    let headers = header.map(|h| {
        OwnedHeaders::new().insert(Header {
            key: SOURCE_HEADER,
            value: Some(&h),
        })
    });
    OwnedMessage::new(
        Some(value.to_vec()),
        key,
        T.into(),
        Timestamp::CreateTime(time_ms),
        0,
        at,
        headers,
    )
}

fn unattributed(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("_unattributed/t/partition-0.log")).unwrap_or_default()
}

/// The bug this guards: a NUL byte in the host or path made the output's
/// open fail, which the collector took for an unwritable OUT, retrying
/// forever. Now the name is escaped and the line written.
#[test]
fn a_nul_in_host_or_path_is_escaped_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut st = State::new(1 << 30);
    for (i, m) in [
        keyed("h\0", b"/a\0b", 1, 0, b"nul", 0),
        keyed("h", b"/../../x/../y", 2, 0, b"dots", 1),
        keyed("web1", b"/var/log/ok.log", 3, 0, b"real", 2),
    ]
    .iter()
    .enumerate()
    {
        handle(&mut st, &store, m, None, 1000).unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
    st.writer.sync(&store, 1000, 300).unwrap();
    let read = |rel: &str| std::fs::read(dir.path().join(rel)).unwrap();
    assert_eq!(read("h%00/a%00b"), b"nul\n");
    assert_eq!(read("h/%2E%2E/%2E%2E/x/%2E%2E/y"), b"dots\n");
    assert_eq!(read("web1/var/log/ok.log"), b"real\n");
    assert_eq!((st.counters.attributed, st.counters.unwritable), (3, 0));
}

#[test]
fn an_output_that_cannot_be_created_goes_to_unattributed_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut st = State::new(1 << 30);
    // Past PATH_MAX (4096) once joined, though every component is short.
    let too_long = format!("/{}", vec!["d".repeat(150); 30].join("/"));
    let msgs = [
        keyed("h", b"/clash", 1, 0, b"file", 0),
        // Needs h/clash as a directory: ENOTDIR.
        keyed("h", b"/clash/inner", 2, 0, b"under a file", 1),
        keyed("h", too_long.as_bytes(), 3, 0, b"too long", 2),
        // The same generation again: known unwritable until the sync.
        keyed("h", b"/clash/inner", 2, 13, b"again", 3),
        keyed("h", b"/clash", 1, 5, b"more", 4),
    ];
    for m in &msgs {
        handle(&mut st, &store, m, None, 1000).expect("no record stops the collector");
    }
    st.writer.sync(&store, 1000, 300).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("h/clash")).unwrap(),
        b"file\nmore\n"
    );
    assert_eq!(unattributed(dir.path()), b"under a file\ntoo long\nagain\n");
    let c = st.counters;
    assert_eq!(
        (c.records, c.attributed, c.unattributed, c.unwritable),
        (5, 2, 3, 3)
    );
    let idx = Store::read(dir.path()).unwrap();
    assert_eq!(
        idx.generations.keys().collect::<Vec<_>>(),
        vec!["h/0000000000000001"],
        "generations whose output was never created are not left in the index"
    );
    // After a sync the generation is tried again (the clash may be gone).
    std::fs::remove_file(dir.path().join("h/clash")).unwrap();
    let later = keyed("h", b"/clash/inner", 2, 0, b"now fine", 5);
    handle(&mut st, &store, &later, None, 1000).unwrap();
    st.writer.sync(&store, 1000, 300).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("h/clash/inner")).unwrap(),
        b"now fine\n"
    );
}

/// A rename of the live holder to its older name finds that name taken
/// (a record of another source made a directory there): the holder keeps
/// the live name, the newcomer gets its older name, nothing stops.
#[test]
fn an_older_name_already_taken_leaves_the_live_holder_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut st = State::new(1 << 30);
    let old = keyed("h", b"/x.log", 1, 0, b"old", 0);
    handle(&mut st, &store, &old, None, 1000).unwrap();
    // The name generation 1 would move to (record time 1 s).
    let squatter = format!("/x.log.1-{}/f", GenerationId(1));
    let m = keyed("h", squatter.as_bytes(), 9, 0, b"squat", 1);
    handle(&mut st, &store, &m, None, 1000).unwrap();
    st.writer.sync(&store, 1000, 300).unwrap();
    let newer = keyed_at("h", b"/x.log", 2, 0, b"new", 2, 5_000);
    handle(&mut st, &store, &newer, None, 1000).unwrap();
    st.writer.sync(&store, 1000, 300).unwrap();
    assert_eq!(std::fs::read(dir.path().join("h/x.log")).unwrap(), b"old\n");
    let newcomer = format!("h/x.log.5-{}", GenerationId(2));
    assert_eq!(std::fs::read(dir.path().join(newcomer)).unwrap(), b"new\n");
    assert!(Store::read(dir.path()).unwrap().pending_renames.is_empty());
}

#[test]
fn the_unwritable_warning_is_rate_limited() {
    let mut t = super::LogThrottle::default();
    let t0 = std::time::Instant::now();
    let s = std::time::Duration::from_secs(1);
    assert_eq!(t.allow(t0), Some(0));
    assert_eq!(t.allow(t0 + s), None);
    assert_eq!(t.allow(t0 + 59 * s), None);
    assert_eq!(
        t.allow(t0 + 60 * s),
        Some(2),
        "says how many were held back"
    );
    assert_eq!(t.allow(t0 + 61 * s), None);
}

/// Everything under `root`, relative, files and directories.
fn tree(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A host or path component a hostile producer might send.
fn hostile_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b"".to_vec()),
        Just(b"a\0b".to_vec()),
        Just(b"a/b".to_vec()),
        Just(b"%".to_vec()),
        Just(vec![b'x'; 300]),
        Just(b".logferry".to_vec()),
        Just(b"_unattributed".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn hostile_path() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec(hostile_name(), 0..5),
    )
        .prop_map(|(abs, parts)| {
            let mut p = if abs { b"/".to_vec() } else { Vec::new() };
            p.extend(parts.join(&b'/'));
            p
        })
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64u64,
        Just(1u64 << 62),
        Just(i64::MAX as u64 - 3),
        Just(u64::MAX),
        any::<u64>()
    ]
}

/// Key and `lf` header bytes: valid encodings of hostile sources, the
/// same cut short or with a byte changed, or arbitrary bytes.
fn attribution_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        encoded(),
        damaged(),
        proptest::collection::vec(any::<u8>(), 0..80),
    ])
}

/// A valid encoding (key form or header) of a hostile source.
fn encoded() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        hostile_name(),
        hostile_path(),
        0..4u64,
        offset(),
    )
        .prop_map(|(key_form, host, path, g, off)| {
            let host = String::from_utf8_lossy(&host).into_owned();
            let tail = source_tail(&host, &path);
            let id = FileId { dev: 1, ino: g };
            let mut out = Vec::new();
            if key_form {
                encode_source_key(&mut out, b"", GenerationId(g), id, off, false, &tail);
            } else {
                encode_source(&mut out, GenerationId(g), id, off, false, &tail);
            }
            out
        })
}

/// A valid encoding cut short or with one byte changed.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (encoded(), any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(mut e, at, b, cut)| {
        let i = at % e.len();
        if cut {
            e.truncate(i);
        } else {
            e[i] = b;
        }
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary records: no panic, no stop, nothing outside OUT, and the
    /// counters account for every record.
    #[test]
    fn no_record_stops_the_collector_or_writes_outside_out(
        recs in proptest::collection::vec(
            (attribution_bytes(), attribution_bytes(), proptest::collection::vec(any::<u8>(), 0..40)),
            1..12,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let store = Store::open(&out).unwrap();
        let mut st = State::new(1 << 20);
        for (i, (key, header, value)) in recs.iter().enumerate() {
            let m = message(key.clone(), header.clone(), value, i as i64);
            let r = handle(&mut st, &store, &m, None, 1000);
            prop_assert!(r.is_ok(), "record {} stopped the collector: {:?}", i, r.err());
        }
        prop_assert!(st.writer.sync(&store, 1000, 300).is_ok());
        let c = st.counters;
        prop_assert_eq!(c.records, recs.len() as u64);
        prop_assert_eq!(c.attributed + c.unattributed, c.records);
        let outside: Vec<_> = tree(dir.path())
            .into_iter()
            .filter(|p| !p.starts_with("out"))
            .collect();
        prop_assert!(outside.is_empty(), "written outside OUT: {:?}", outside);
        for p in tree(&out) {
            prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{:?}", p);
        }
    }
}
