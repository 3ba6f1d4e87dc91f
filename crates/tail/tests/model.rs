//! Model-based property test of the real [`Tailer`]: random writes (whole
//! and partial lines), rename+create rotations, copytruncate, compression of
//! rotated files (gzip, as logrotate's `compress`), plain truncation,
//! deletion and recreation, stops and restarts from the checkpoint entries
//! (with rotations while stopped), files that all start with the same long
//! header, and a descriptor budget of one file, applied to real files. Every
//! line handed out is acknowledged at once, as a broker would.
//!
//! Properties: no line is ever handed out twice; every line written is
//! handed out, except lines that a truncation (or a deletion the tailer
//! could not have seen) destroyed before they were read, which the model
//! tracks exactly.
//!
//! `crash` (tests/model/crash.rs) is the wider model: acks held back,
//! checkpoints through the real Checkpointer, kill -9 and restarts from the
//! last checkpoint file, restarts racing with logrotate, loss reports
//! checked both ways. Its cases are in `crash_found`.
//!
//! Running: `cargo test -p logferry-tail --test model`. `PROPTEST_RNG_SEED=N`
//! runs other cases (and replays a seed `crashes_and_races_random_seed`
//! printed), `LOGFERRY_MODEL_RANDOM_SEED=N` fixes that test's seed,
//! `LOGFERRY_MODEL_CASES=N` runs N cases of the crash model (to hunt),
//! `MODEL_TRACE=1` shows the tailer's log (run one case), `MODEL_STATS=1`
//! a line of counts per crash-model case.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_tail::{
    FileCheckpoint, Line, LineSink, LongLinePolicy, StartAt, StreamInfo, TailInput, TailSettings,
    Tailer,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    /// Append this many complete lines.
    Write(u8),
    /// Append the first bytes of a line (completed by a later write).
    Partial,
    /// Let the tailer catch up (and start it again if it was stopped).
    Pause,
    RenameRotate,
    CopyTruncate,
    /// copytruncate, then the copy is gzipped (and the plain copy removed).
    CopyTruncateCompress,
    /// Gzip every plain rotated file (logrotate's `compress` on its next run).
    CompressRotated,
    Truncate,
    /// Delete the file while it may be unread; the app recreates it.
    Delete,
    /// Stop the tailer (its checkpoint entries are kept); later actions
    /// happen while it is down, until the next `Pause`.
    Stop,
}

/// Writes, partial lines, rotation by rename, copytruncate, compression of
/// rotated files and copies, truncation: what logrotate and a writer do.
fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1u8..20).prop_map(Action::Write),
        2 => Just(Action::Partial),
        3 => Just(Action::Pause),
        1 => Just(Action::RenameRotate),
        1 => Just(Action::CopyTruncate),
        1 => Just(Action::CopyTruncateCompress),
        1 => Just(Action::CompressRotated),
        1 => Just(Action::Truncate),
    ]
}

/// Every action, stops and deletions included.
fn wider_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1u8..20).prop_map(Action::Write),
        2 => Just(Action::Partial),
        3 => Just(Action::Pause),
        1 => Just(Action::RenameRotate),
        1 => Just(Action::CopyTruncate),
        1 => Just(Action::CopyTruncateCompress),
        1 => Just(Action::CompressRotated),
        1 => Just(Action::Truncate),
        1 => Just(Action::Delete),
        1 => Just(Action::Stop),
    ]
}

/// The same first bytes in every file, longer than the head fingerprint:
/// only content past it tells two files apart.
const HEADER: &str = "#Software: model\n#Version: 1.0\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken bytes-sent bytes-received\n#Padding: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

/// The writer side: an application logging numbered lines through logrotate.
struct App {
    path: PathBuf,
    file: Option<File>,
    next: u64,
    /// A line was started and not terminated.
    partial: bool,
    rotations: u32,
    /// Every new file starts with [`HEADER`] (a file cut in place does
    /// not: the writer does not know).
    header: bool,
    /// Lines written to the current file (since it was created or cut).
    in_current: usize,
    /// The current file starts with the header (it was not cut since).
    headed: bool,
}

impl App {
    fn file(&mut self) -> &mut File {
        if self.file.is_none() {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .unwrap();
            if self.header && f.metadata().unwrap().len() == 0 {
                f.write_all(HEADER.as_bytes()).unwrap();
                self.headed = true;
            }
            self.file = Some(f);
        }
        self.file.as_mut().unwrap()
    }
}

fn gzip(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let mut e =
        flate2::write::GzEncoder::new(File::create(to).unwrap(), flate2::Compression::fast());
    e.write_all(&bytes).unwrap();
    e.finish().unwrap();
    std::fs::remove_file(from).unwrap();
}

/// Lines handed out, acknowledged at once.
#[derive(Default)]
struct Collector {
    read: Vec<u64>,
    /// Records that are not whole numbered lines: a line cut in two.
    bad: Vec<String>,
    acks: Vec<(usize, u64)>,
}

impl LineSink for Collector {
    fn room(&self, _input: usize, _slot: usize) -> usize {
        usize::MAX / 2
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        self.acks.push((stream.slot, seq));
        // Fragments a truncation cut are not numbered lines.
        if line.truncated {
            return;
        }
        // A pack holds several lines, joined by their newlines.
        for one in line.bytes.split(|&b| b == b'\n') {
            // Header lines are not numbered lines.
            if one.starts_with(b"#") {
                continue;
            }
            let text = std::str::from_utf8(one).unwrap();
            match text.trim_start_matches('L').parse() {
                Ok(n) => self.read.push(n),
                Err(_) => self.bad.push(format!(
                    "{text:?} in the record at {} of {} ({})",
                    line.start, stream.path, stream.generation
                )),
            }
        }
    }
}

fn settings(path: &Path, budget: usize) -> TailSettings {
    packed_settings(path, budget, 0)
}

/// `pack`: the input's `pack_bytes` (0: a record a line).
fn packed_settings(path: &Path, budget: usize, pack: usize) -> TailSettings {
    TailSettings {
        inputs: vec![TailInput {
            include: vec![path.to_string_lossy().into_owned()],
            exclude: vec![],
            start_at: StartAt::Beginning,
            max_line_bytes: 1 << 20,
            long_lines: LongLinePolicy::Truncate,
            strip_cr: false,
            pack_bytes: pack,
            partial_flush: None,
            multiline: None,
            rotated: vec![],
            backfill: false,
        }],
        scan_interval: Duration::from_millis(1),
        // Rotated-away files close as soon as they are drained.
        rotate_grace: Duration::ZERO,
        max_open_files: budget,
        unfinished_ttl: Duration::from_secs(3600),
    }
}

/// Scan and read until nothing more comes, acknowledging every line.
fn catch_up(t: &mut Tailer, sink: &mut Collector, buf: &mut [u8]) {
    let mut quiet = 0;
    while quiet < 3 {
        // File-system events wake files whose size did not change (cut and
        // rewritten to the same length), as in the shipping loop.
        t.tick(&|_| false);
        t.scan(&|_| false);
        let n = t.read_round(buf, sink);
        // A new generation waits to be in a checkpoint before its lines
        // are handed out, as the shipping loop writes one.
        let waited = t.wants_save();
        if waited {
            t.checkpoint_entries();
            t.saved();
        }
        for (slot, seq) in sink.acks.drain(..) {
            t.ack(slot, seq);
        }
        quiet = if n == 0 && !waited { quiet + 1 } else { 0 };
        if n == 0 {
            // Idle, wait for file-system events as the shipping loop does:
            // they come from a thread of their own, and the last writes'
            // may not have arrived yet. A file cut and rewritten to the
            // very length read changes no size, so only its event tells
            // the tailer to look (without one, "caught up" would be
            // declared before the tailer could know of the new lines).
            t.wait(Duration::from_millis(2));
        }
    }
}

/// With `MODEL_TRACE` set, the tailer's own account of a failing case.
fn trace() {
    if std::env::var_os("MODEL_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    }
}

fn run(actions: Vec<Action>, header: bool, budget: usize, dir: &Path) -> Result<(), TestCaseError> {
    run_packed(actions, header, budget, 0, dir)
}

fn run_packed(
    actions: Vec<Action>,
    header: bool,
    budget: usize,
    pack: usize,
    dir: &Path,
) -> Result<(), TestCaseError> {
    trace();
    let path = dir.join("app.log");
    let mut app = App {
        path: path.clone(),
        file: None,
        next: 0,
        partial: false,
        rotations: 0,
        header,
        in_current: 0,
        headed: false,
    };
    app.file();
    let mut sink = Collector::default();
    let mut buf = vec![0u8; 64]; // Small on purpose, so lines straddle reads.
    let mut tailer = Some(Tailer::new(packed_settings(&path, budget, pack), vec![], true).unwrap());
    catch_up(tailer.as_mut().unwrap(), &mut sink, &mut buf);
    let mut saved: Vec<FileCheckpoint> = Vec::new();
    // Lines that may be gone for good before the tailer read them.
    let mut destroyed = HashSet::new();
    // Lines written to the current file since the tailer last caught up.
    let mut unread: Vec<u64> = Vec::new();
    // Backfilling compressed files that no known generation leads to is not
    // done (a later stage): the lines of a file of which the tailer had not
    // read a byte may be missed if the file is compressed before the tailer
    // reads it. `anchored`: the current file had content at the last catch-up.
    let mut anchored = false;
    // Lines of the current file written while it was not anchored.
    let mut fresh: Vec<u64> = Vec::new();
    // Such lines now under a rotated name, or in a copy.
    let mut unanchored: Vec<u64> = Vec::new();
    for a in actions {
        let running = tailer.is_some();
        match a {
            Action::Write(n) => {
                for _ in 0..n {
                    let line = format!("L{}\n", app.next);
                    // A pending partial line is this line's first two bytes.
                    let from = if app.partial { 2 } else { 0 };
                    app.file().write_all(&line.as_bytes()[from..]).unwrap();
                    app.partial = false;
                    unread.push(app.next);
                    if !anchored {
                        fresh.push(app.next);
                    }
                    app.next += 1;
                    app.in_current += 1;
                }
            }
            Action::Partial => {
                if !app.partial {
                    let line = format!("L{}\n", app.next);
                    app.file().write_all(&line.as_bytes()[..2]).unwrap();
                    app.partial = true;
                }
            }
            Action::Pause => {
                let t = tailer.get_or_insert_with(|| {
                    Tailer::new(
                        packed_settings(&path, budget, pack),
                        std::mem::take(&mut saved),
                        false,
                    )
                    .unwrap()
                });
                catch_up(t, &mut sink, &mut buf);
                unread.clear();
                // A header alone anchors nothing: every file starts with it.
                anchored = app.in_current > 0;
                fresh.clear();
                unanchored.clear();
            }
            Action::Stop => {
                if let Some(mut t) = tailer.take() {
                    saved = t.checkpoint_entries();
                }
            }
            // logrotate acts between writes, never inside a line.
            _ if app.partial => {}
            Action::RenameRotate => {
                app.rotations += 1;
                std::fs::rename(&path, dir.join(format!("app.log.{}", app.rotations))).unwrap();
                app.file = None;
                app.file();
                app.in_current = 0;
                unanchored.append(&mut fresh);
                anchored = false;
                if let Some(t) = tailer.as_mut() {
                    t.scan(&|_| false);
                }
            }
            Action::CopyTruncate | Action::CopyTruncateCompress => {
                app.rotations += 1;
                let copy = dir.join(format!("app.log.{}", app.rotations));
                std::fs::copy(&path, &copy).unwrap();
                app.file().set_len(0).unwrap();
                app.headed = false;
                unanchored.append(&mut fresh);
                anchored = false;
                if matches!(a, Action::CopyTruncateCompress) {
                    gzip(&copy, &copy.with_extension(format!("{}.gz", app.rotations)));
                    destroyed.extend(unanchored.drain(..));
                }
                app.in_current = 0;
            }
            Action::CompressRotated => {
                destroyed.extend(unanchored.drain(..));
                for r in 1..=app.rotations {
                    let plain = dir.join(format!("app.log.{r}"));
                    if plain.exists() {
                        gzip(&plain, &dir.join(format!("app.log.{r}.gz")));
                    }
                }
            }
            Action::Truncate => {
                // Lines of the current file not read yet are gone.
                destroyed.extend(unread.drain(..));
                app.file().set_len(0).unwrap();
                app.headed = false;
                app.in_current = 0;
                fresh.clear();
                anchored = false;
            }
            Action::Delete => {
                // Running, the tailer drains an open file through its
                // descriptor; one it never opened (created and deleted
                // between scans), or any while it is stopped, is gone.
                let open_before = running && budget > 1;
                if !open_before {
                    destroyed.extend(unread.drain(..));
                } else {
                    destroyed.extend(unread.iter().copied());
                }
                std::fs::remove_file(&path).unwrap();
                app.file = None;
                app.file();
                app.in_current = 0;
                fresh.clear();
                anchored = false;
                if let Some(t) = tailer.as_mut() {
                    t.scan(&|_| false);
                }
            }
        }
    }
    let t = tailer.get_or_insert_with(|| {
        Tailer::new(
            packed_settings(&path, budget, pack),
            std::mem::take(&mut saved),
            false,
        )
        .unwrap()
    });
    catch_up(t, &mut sink, &mut buf);
    prop_assert!(sink.bad.is_empty(), "not whole lines: {:?}", sink.bad);
    let mut seen = HashSet::new();
    for n in &sink.read {
        prop_assert!(
            seen.insert(*n),
            "line {} handed out twice: {:?}",
            n,
            sink.read
        );
    }
    for n in 0..app.next {
        prop_assert!(
            seen.contains(&n) || destroyed.contains(&n),
            "line {} lost; read {:?}, destroyed {:?}",
            n,
            sink.read,
            destroyed
        );
    }
    Ok(())
}

proptest! {
    // A fixed seed: the same 96 cases on every run, so a failure is a
    // regression, not luck (`PROPTEST_RNG_SEED` picks other cases).
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261202),
        ),
        .. ProptestConfig::default()
    })]
    #[test]
    fn every_written_line_is_handed_out_once(
        actions in proptest::collection::vec(action(), 1..40),
        header: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        run(actions, header, 16, dir.path())?;
    }

    /// The same with stops and restarts, deletion and recreation, and a
    /// budget of one open file. The cases it found are kept in `found`.
    #[test]
    fn every_written_line_is_handed_out_once_with_stops_deletes_and_a_tiny_budget(
        actions in proptest::collection::vec(wider_action(), 1..40),
        header: bool,
        tiny_budget: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        run(actions, header, if tiny_budget { 1 } else { 16 }, dir.path())?;
    }

    /// The same with whole lines packed into records (`pack_bytes`): a
    /// pack's end is what a checkpoint names, so a stop, a rotation or a
    /// cut between its lines must neither lose nor repeat one of them.
    #[test]
    fn every_written_line_is_handed_out_once_when_lines_are_packed(
        actions in proptest::collection::vec(wider_action(), 1..40),
        header: bool,
        tiny_budget: bool,
        pack in 8usize..48,
    ) {
        let dir = tempfile::tempdir().unwrap();
        run_packed(actions, header, if tiny_budget { 1 } else { 16 }, pack, dir.path())?;
    }
}

// Kept beside, not in `tests/` itself, where cargo would build it as a test
// of its own.
#[path = "model/found.rs"]
mod found;

#[path = "model/crash.rs"]
mod crash;

#[path = "model/crash_found.rs"]
mod crash_found;

proptest! {
    // The wider model (see `crash`): crashes from the last checkpoint file,
    // acks held back, restarts racing with logrotate, shifting and dateext
    // names, four compressors, a short unfinished TTL with its loss reports.
    // A fixed seed, so a failure is a regression (`PROPTEST_RNG_SEED` picks
    // other cases, and replays the random test's).
    #![proptest_config(crash::config(crash::fixed_seed(), 96))]
    #[test]
    fn crashes_and_races((ops, header, tiny_budget, dateext) in crash::case()) {
        crash::run(&ops, header, tiny_budget, dateext)?;
    }
}

proptest! {
    // The same with one seed of its own each run (from the clock, printed;
    // `LOGFERRY_MODEL_RANDOM_SEED` sets it), so CI keeps looking further;
    // without shared headers (see `crash::case_without_shared_header`).
    #![proptest_config(crash::config(crash::random_seed(), 32))]
    #[test]
    fn crashes_and_races_random_seed((ops, header, tiny_budget, dateext) in crash::case_without_shared_header()) {
        crash::run(&ops, header, tiny_budget, dateext)?;
    }
}
