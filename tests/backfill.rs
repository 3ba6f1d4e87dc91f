//! Backfill (`logferry ship --backfill`): rotated files that were there
//! before logferry, compressed by the real `zstd` and `gzip`, are shipped
//! oldest first, each line once, and a kill -9 halfway through a
//! compressed file loses nothing and repeats only the crash window.
//!
//! The files: `app.log.4` (oldest: compressed by `xz` under a name that
//! does not say so, told by its content), `app.log.3.zst`, `app.log.2.gz`
//! (the large one the kill lands in), `app.log.1` and `app.log`, with
//! numbered lines (`seq=N`) in that order, so order across files is
//! checked too. The
//! kill moment is drawn from a printed seed (LOGFERRY_BACKFILL_SEED
//! replays it). An independent counter (tests/rotated/count.py: kcat and
//! Python, no logferry code) counts the topic.
//!
//! Then `app.log.1`, already shipped, is compressed by `gzip` and logferry
//! starts again with `backfill = true` in its configuration: the
//! compressed copy of a generation already shipped is recognised and not
//! shipped again.
//!
//! Needs kcat, gzip, zstd, xz, python3 and the Kafka cluster
//! (LOGFERRY_TEST_BROKERS); under CI a missing one fails the test.

mod common;
#[path = "rotated/harness.rs"]
mod harness;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::tools::find_tools;
use common::{brokers, create_topic, topic_name, Lcg, Logferry};

const HOST: &str = "backfill";
/// Reading is held to this rate so the kill lands inside the large file.
const RATE: u64 = 3 << 20;
const INFLIGHT: u64 = 256 << 10;
const CHECKPOINT_MS: u64 = 200;
/// Every line is at least this long (the crash window's bound in lines).
const MIN_LINE: u64 = 60;

/// Lines `from..to`, 60-140 bytes each.
fn lines(rng: &mut Lcg, from: usize, to: usize) -> String {
    let mut s = String::new();
    for n in from..to {
        let pad = 40 + rng.below(80) as usize;
        let _ = writeln!(s, "bf seq={n:08} {}", "x".repeat(pad));
    }
    s
}

fn run(tool: &Path, args: &[&str], dir: &Path) {
    let st = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(st.success(), "{} {args:?} failed", tool.display());
}

fn set_age(path: &Path, hours: u64) {
    let t = SystemTime::now() - Duration::from_secs(hours * 3600);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn config(dir: &Path, brokers: &str, topic: &str, input_extra: &str) -> std::path::PathBuf {
    let brokers: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let text = format!(
        r#"host = "{HOST}"
scan_interval = "100ms"
max_bytes_per_sec = {RATE}

[kafka]
brokers = [{brokers}]
max_inflight_bytes = {INFLIGHT}

[kafka.properties]
"linger.ms" = 5

[checkpoint]
directory = "{state}"
interval = "{CHECKPOINT_MS}ms"

[[inputs]]
include = ["{logs}/app.log"]
topic = "{topic}"
start_at = "beginning"
{input_extra}
"#,
        brokers = brokers.join(", "),
        state = dir.join("state").display(),
        logs = dir.join("logs").display(),
    );
    let path = dir.join("logferry.toml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn backfill_of_compressed_and_plain_rotations_survives_kill_9_and_ships_nothing_twice() {
    let Some(brokers) = brokers() else { return };
    let Some(tools) = find_tools(
        &[
            ("kcat", "kcat"),
            ("gzip", "gzip"),
            ("zstd", "zstd"),
            ("xz", "xz-utils"),
            ("python3", "python3"),
        ],
        "tests/backfill.rs",
    ) else {
        return;
    };
    let (kcat, gzip, zstd, xz) = (&tools[0], &tools[1], &tools[2], &tools[3]);
    let seed = harness::seed("LOGFERRY_BACKFILL_SEED", "backfill");
    let mut rng = Lcg(seed);
    let topic = topic_name("backfill");
    // One partition: the order of the records is the order of shipping.
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();

    // Oldest to newest: .4 (xz), .3.zst, .2.gz (large), .1, the live file.
    let sizes = [
        1_000 + rng.below(1_000) as usize,
        3_000 + rng.below(2_000) as usize,
        60_000 + rng.below(20_000) as usize,
        2_000 + rng.below(2_000) as usize,
        1_000 + rng.below(1_000) as usize,
    ];
    let mut bounds = vec![0usize];
    for s in sizes {
        bounds.push(bounds.last().unwrap() + s);
    }
    let total = bounds[5];
    eprintln!("backfill: files of {sizes:?} lines, {total} in all");
    let write = |name: &str, rng: &mut Lcg, k: usize| {
        fs::write(logs.join(name), lines(rng, bounds[k], bounds[k + 1])).unwrap();
    };
    write("app.log.4", &mut rng, 0);
    run(xz, &["app.log.4"], &logs);
    fs::rename(logs.join("app.log.4.xz"), logs.join("app.log.4")).unwrap();
    write("app.log.3", &mut rng, 1);
    run(zstd, &["-q", "--rm", "app.log.3"], &logs);
    write("app.log.2", &mut rng, 2);
    run(gzip, &["app.log.2"], &logs);
    write("app.log.1", &mut rng, 3);
    write("app.log", &mut rng, 4);
    set_age(&logs.join("app.log.4"), 40);
    set_age(&logs.join("app.log.3.zst"), 30);
    set_age(&logs.join("app.log.2.gz"), 20);
    set_age(&logs.join("app.log.1"), 10);

    let cfg = config(dir.path(), &brokers, &topic, "");
    let cfg_s = cfg.to_str().unwrap();

    // Killed with -9 somewhere in the middle 60 % of the .gz file.
    let gz_lines = sizes[2] as u64;
    let kill_at = bounds[2] as u64 + gz_lines / 5 + rng.below(gz_lines * 3 / 5);
    eprintln!("backfill: kill -9 once the topic holds {kill_at} records");
    let mut lf = Logferry::start(
        &["ship", "-c", cfg_s, "--backfill"],
        &dir.path().join("run1.log"),
    );
    let got = harness::wait_records(&brokers, &topic, kill_at as i64, Duration::from_secs(120));
    assert!(
        got >= kill_at as i64,
        "only {got} records before the kill; stderr:\n{}",
        lf.stderr()
    );
    lf.signal(libc::SIGKILL);
    lf.wait_timeout(Duration::from_secs(10)).expect("killed");
    let run1 = lf.stderr();
    drop(lf);
    // Off a terminal, progress is a log line.
    assert!(
        run1.contains("backfill: ") && run1.contains("bytes on disk read"),
        "no backfill progress line in:\n{run1}"
    );

    let mut lf = Logferry::start(
        &["ship", "-c", cfg_s, "--backfill"],
        &dir.path().join("run2.log"),
    );
    let counts = harness::settle(kcat, &brokers, &topic, total, Duration::from_secs(180));
    assert_eq!(lf.stop().code(), Some(0), "stderr:\n{}", lf.stderr());
    eprintln!("backfill: after the restart: {}", counts.0);
    assert_eq!(counts.get("missing"), 0, "{}\n{}", counts.0, lf.stderr());
    assert_eq!(counts.get("unexpected"), 0, "{}", counts.0);
    assert_eq!(counts.get("out_of_order"), 0, "oldest first: {}", counts.0);
    let dups = counts.get("duplicated");
    if dups > 0 {
        // Only lines of the file being read at the kill, and no more than
        // what was in flight or acknowledged but not yet checkpointed.
        let (first, last) = (counts.get("dup_first"), counts.get("dup_last"));
        assert!(
            first >= bounds[2] as i64 && last < bounds[3] as i64,
            "duplicates outside the .gz being read at the kill: {}",
            counts.0
        );
        let window = (INFLIGHT + RATE * (CHECKPOINT_MS + 1000) / 1000) / MIN_LINE;
        assert!(
            (last - first) as u64 <= window,
            "duplicates span {} lines, more than the crash window ({window}): {}",
            last - first,
            counts.0
        );
    }
    let records_before = counts.get("records");

    // app.log.1 (shipped) is compressed; the live file grows. Started again
    // with backfill from the configuration: app.log.1.gz is the known
    // generation, and neither it nor the other rotations are shipped again.
    run(gzip, &["app.log.1"], &logs);
    let more = 500 + rng.below(500) as usize;
    let mut f = fs::File::options()
        .append(true)
        .open(logs.join("app.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, lines(&mut rng, total, total + more).as_bytes()).unwrap();
    drop(f);
    let cfg = config(dir.path(), &brokers, &topic, "backfill = true");
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("run3.log"),
    );
    let counts = harness::settle(
        kcat,
        &brokers,
        &topic,
        total + more,
        Duration::from_secs(120),
    );
    // Anything shipped again would arrive with the new lines: wait a
    // little past them.
    std::thread::sleep(Duration::from_secs(2));
    let counts_after = harness::count(kcat, &brokers, &topic, total + more);
    assert_eq!(lf.stop().code(), Some(0), "stderr:\n{}", lf.stderr());
    let run3 = lf.stderr();
    eprintln!("backfill: after the third start: {}", counts_after.0);
    assert_eq!(counts.get("missing"), 0, "{}\n{run3}", counts.0);
    assert_eq!(
        counts_after.get("records"),
        records_before + more as i64,
        "something was shipped again: {}\n{run3}",
        counts_after.0
    );
    assert!(
        !run3.contains("shipping compressed rotated file from its start"),
        "a compressed rotation was shipped again:\n{run3}"
    );
}
