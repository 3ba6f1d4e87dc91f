//! Writers that rotate to names `PATTERN.*` and `PATTERN-*` do not reach,
//! run for real, with logferry stopped across several rotations:
//!
//! - Python's `TimedRotatingFileHandler` rotating every second, with a
//!   namer that puts the date before the extension (`app.<date>.log`);
//! - daemontools' `multilog` (`current` -> `@4000....s`);
//! - a log4j2 application (log4j-core from Maven Central, a few lines of
//!   Java compiled here) with a size-based `RollingFileAppender` rolling
//!   into another directory, gzipped.
//!
//! Each run: logferry follows the file while the writer writes (phase 1)
//! and is stopped; the writer goes on across at least three rotations
//! (phase 2, checked); logferry starts again. With the input's `rotated`
//! naming where the rotations go, every line arrives, once. Without it,
//! the known generation is reported lost and logferry warns that files
//! may have rotated out of sight, naming the setting (and lines are
//! indeed missing: the runs show what the setting is for).
//!
//! Line counts and the writers' pacing come from a printed seed
//! (LOGFERRY_ROTATED_SEED replays it). An independent counter
//! (tests/rotated/count.py: kcat and Python) counts the topic against the
//! numbers the writers wrote.
//!
//! Needs python3, kcat, multilog (Debian's daemontools), java and javac
//! with log4j-api and log4j-core (`scripts/log4j fetch`, Maven Central),
//! and the Kafka cluster (LOGFERRY_TEST_BROKERS); under CI a missing one
//! fails the test.

mod common;
#[path = "rotated/harness.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tools::{find_tools, is_ci};
use common::{brokers, config_toml, create_topic, topic_name, Lcg, Logferry};

const HOST: &str = "rotated";

/// How a writer is run and where its rotations go.
struct Writer {
    name: &'static str,
    /// The file logferry follows.
    include: PathBuf,
    /// The glob for the input's `rotated` setting.
    rotated: String,
    /// Directory and name prefix of rotated files, to count rotations.
    rotated_dir: PathBuf,
    rotated_prefix: &'static str,
    /// Write lines `from..to` over about `seconds`; returns when done.
    write: Box<dyn Fn(usize, usize, f64, u64)>,
}

impl Writer {
    fn rotations(&self) -> usize {
        fs::read_dir(&self.rotated_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(self.rotated_prefix)
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

fn lines_py() -> PathBuf {
    harness::assets().join("lines.py")
}

fn python_writer(dir: &Path) -> Writer {
    let logs = dir.join("py");
    fs::create_dir_all(&logs).unwrap();
    let path = logs.join("app.log");
    let p = path.clone();
    Writer {
        name: "python",
        include: path,
        rotated: format!("{}/app.*.log", logs.display()),
        rotated_dir: logs.clone(),
        rotated_prefix: "app.20",
        write: Box::new(move |from, to, seconds, seed| {
            let st = Command::new("python3")
                .arg(lines_py())
                .args([
                    "--tag",
                    "py",
                    "--from",
                    &from.to_string(),
                    "--to",
                    &to.to_string(),
                ])
                .args([
                    "--seconds",
                    &seconds.to_string(),
                    "--seed",
                    &seed.to_string(),
                ])
                .arg("--timed-rotating")
                .arg(&p)
                .status()
                .expect("running tests/rotated/lines.py");
            assert!(st.success(), "lines.py failed");
        }),
    }
}

fn multilog_writer(dir: &Path, multilog: PathBuf) -> Writer {
    let logs = dir.join("ml");
    Writer {
        name: "multilog",
        include: logs.join("current"),
        rotated: format!("{}/@*", logs.display()),
        rotated_dir: logs.clone(),
        rotated_prefix: "@",
        write: Box::new(move |from, to, seconds, seed| {
            let mut py = Command::new("python3")
                .arg(lines_py())
                .args([
                    "--tag",
                    "ml",
                    "--from",
                    &from.to_string(),
                    "--to",
                    &to.to_string(),
                ])
                .args([
                    "--seconds",
                    &seconds.to_string(),
                    "--seed",
                    &seed.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("running tests/rotated/lines.py");
            // s4096: a new file every few KB; n999: none deleted.
            let st = Command::new(&multilog)
                .args(["s4096", "n999"])
                .arg(&logs)
                .stdin(py.stdout.take().unwrap())
                .status()
                .expect("running multilog");
            assert!(st.success(), "multilog failed");
            assert!(py.wait().unwrap().success(), "lines.py failed");
        }),
    }
}

/// The log4j jars (`scripts/log4j fetch`), or None outside CI when they
/// cannot be had.
fn log4j_classpath() -> Option<String> {
    let out = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/log4j"))
        .arg("fetch")
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/log4j");
    if !out.status.success() {
        let msg = "scripts/log4j fetch failed: the log4j2 test needs log4j-api and log4j-core from Maven Central";
        if is_ci() {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return None;
    }
    Some(String::from_utf8(out.stdout).unwrap().trim().to_string())
}

fn log4j_writer(dir: &Path, java: PathBuf, javac: &Path, jars: &str) -> Writer {
    let logs = dir.join("j");
    let classes = dir.join("classes");
    fs::create_dir_all(&classes).unwrap();
    let st = Command::new(javac)
        .args(["-d", classes.to_str().unwrap(), "-cp", jars])
        .arg(harness::assets().join("App.java"))
        .status()
        .expect("running javac");
    assert!(st.success(), "javac failed");
    let classpath = format!("{jars}:{}", classes.display());
    let logs_arg = format!("-DLOGS={}", logs.display());
    let config = format!(
        "-Dlog4j2.configurationFile={}",
        harness::assets().join("log4j2.xml").display()
    );
    Writer {
        name: "log4j2",
        include: logs.join("app.log"),
        rotated: format!("{}/archive/app-*", logs.display()),
        rotated_dir: logs.join("archive"),
        rotated_prefix: "app-",
        write: Box::new(move |from, to, seconds, seed| {
            let st = Command::new(&java)
                .args(["-cp", &classpath, &logs_arg, &config, "App"])
                .args([
                    from.to_string(),
                    to.to_string(),
                    seconds.to_string(),
                    seed.to_string(),
                ])
                .status()
                .expect("running java");
            assert!(st.success(), "the log4j2 application failed");
        }),
    }
}

/// Phase 1 with logferry running, phase 2 with it stopped (at least three
/// rotations), then logferry again: what arrived.
fn stopped_across_rotations(writer: &Writer, with_rotated: bool, test: &str) {
    let Some(brokers) = brokers() else { return };
    let Some(tools) = find_tools(&[("kcat", "kcat")], "tests/rotated_names.rs") else {
        return;
    };
    let kcat = &tools[0];
    let seed = harness::seed("LOGFERRY_ROTATED_SEED", test);
    let mut rng = Lcg(seed);
    let topic = topic_name(test);
    create_topic(&brokers, &topic, 1);
    let dir = writer
        .include
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let input_extra = if with_rotated {
        format!("rotated = [\"{}\"]", writer.rotated)
    } else {
        String::new()
    };
    let cfg = config_toml(
        &dir,
        &brokers,
        HOST,
        &topic,
        writer.include.to_str().unwrap(),
        "",
        &input_extra,
    );
    let cfg = cfg.to_str().unwrap();
    let first = 40 + rng.below(80) as usize;
    let total = first + 300 + rng.below(300) as usize;
    let seconds = 4.0 + rng.below(2000) as f64 / 1000.0;
    eprintln!(
        "{test}: {} lines while logferry runs, {} over {seconds:.1} s while it is stopped",
        first,
        total - first
    );

    let mut lf = Logferry::start(&["ship", "-c", cfg], &dir.join("run1.log"));
    (writer.write)(0, first, 1.0, seed);
    let got = harness::wait_records(&brokers, &topic, first as i64, Duration::from_secs(60));
    assert!(
        got >= first as i64,
        "{test}: {got} of {first} lines before the stop; stderr:\n{}",
        lf.stderr()
    );
    assert_eq!(lf.stop().code(), Some(0), "stderr:\n{}", lf.stderr());

    let before = writer.rotations();
    (writer.write)(first, total, seconds, seed.wrapping_add(1));
    let rotations = writer.rotations() - before;
    eprintln!(
        "{test}: {rotations} rotations by {} while logferry was stopped",
        writer.name
    );
    assert!(
        rotations >= 3,
        "{test}: only {rotations} rotations while stopped"
    );

    let mut lf = Logferry::start_with_env(
        &["ship", "-c", cfg],
        &[("LOGFERRY_UNFINISHED_TTL_SECS", "2")],
        &dir.join("run2.log"),
    );
    if with_rotated {
        let counts = harness::settle(kcat, &brokers, &topic, total, Duration::from_secs(90));
        assert_eq!(lf.stop().code(), Some(0), "stderr:\n{}", lf.stderr());
        eprintln!("{test}: {}", counts.0);
        assert_eq!(
            counts.get("missing"),
            0,
            "{}\nstderr:\n{}",
            counts.0,
            lf.stderr()
        );
        assert_eq!(counts.get("unexpected"), 0, "{}", counts.0);
        assert_eq!(counts.get("duplicated"), 0, "{}", counts.0);
    } else {
        lf.wait_for_log("`rotated` setting", Duration::from_secs(60));
        let log = lf.stderr();
        assert!(
            log.contains("these bytes are lost")
                || log.contains("are lost (how many cannot be known)"),
            "{test}: the known generation was not reported lost:\n{log}"
        );
        let counts = harness::settle(kcat, &brokers, &topic, total, Duration::from_secs(5));
        assert_eq!(lf.stop().code(), Some(0), "stderr:\n{}", lf.stderr());
        eprintln!("{test}: without `rotated`: {}", counts.0);
        assert!(
            counts.get("missing") > 0,
            "{test}: nothing missing without `rotated`: the run does not show the setting's use: {}",
            counts.0
        );
    }
}

#[test]
fn python_timed_rotating_handler_with_a_namer_stopped_across_rotations() {
    if find_tools(&[("python3", "python3")], "tests/rotated_names.rs").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = python_writer(dir.path());
    stopped_across_rotations(&w, true, "rotated-python");
}

#[test]
fn multilog_stopped_across_rotations() {
    let Some(tools) = find_tools(
        &[("python3", "python3"), ("multilog", "daemontools")],
        "tests/rotated_names.rs",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = multilog_writer(dir.path(), tools[1].clone());
    stopped_across_rotations(&w, true, "rotated-multilog");
}

#[test]
fn log4j2_rollover_into_another_directory_gzipped_stopped_across_rollovers() {
    let Some(tools) = find_tools(
        &[
            ("java", "openjdk-17-jre-headless"),
            ("javac", "openjdk-17-jdk-headless"),
        ],
        "tests/rotated_names.rs",
    ) else {
        return;
    };
    let Some(jars) = log4j_classpath() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = log4j_writer(dir.path(), tools[0].clone(), &tools[1], &jars);
    stopped_across_rotations(&w, true, "rotated-log4j2");
}

#[test]
fn without_rotated_the_loss_is_reported_and_the_setting_named() {
    let Some(tools) = find_tools(
        &[("python3", "python3"), ("multilog", "daemontools")],
        "tests/rotated_names.rs",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = python_writer(dir.path());
    stopped_across_rotations(&w, false, "unrotated-python");
    let dir = tempfile::tempdir().unwrap();
    let w = multilog_writer(dir.path(), tools[1].clone());
    stopped_across_rotations(&w, false, "unrotated-multilog");
}
