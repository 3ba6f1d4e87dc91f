//! `logferry verify -c FILE` against the real cluster: every input of a
//! configuration file audited with its own format, long-line policy and
//! host, over its files and their rotated names.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Run `logferry verify -c cfg`: exit code and stdout.
fn verify_config(cfg: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["verify", "--timeout", "60", "-c"])
        .arg(cfg)
        .env("LOGFERRY_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}\n{stderr}"),
    )
}

/// Ship `lines` to a fresh topic with `input_extra` in the input, rotating
/// (rename) after `rotate_after` lines; returns the directory and the
/// configuration once `verify -c` finds every line (polled, within a
/// minute), logferry stopped.
fn ship(
    brokers: &str,
    label: &str,
    input_extra: &str,
    lines: &[String],
    rotate_after: usize,
) -> (LogDir, std::path::PathBuf) {
    let topic = topic_name(label);
    create_topic(brokers, &topic, 2);
    let dir = LogDir::new();
    let cfg = config_toml(
        dir.path(),
        brokers,
        "verifyhost",
        &topic,
        &dir.glob(),
        "",
        input_extra,
    );
    let mut w = LogWriter::create(&dir.logs.join("app.log"));
    w.write_lines(lines[..rotate_after].iter().cloned());
    let mut lf = Logferry::start(
        &["ship", "-c", cfg.to_str().unwrap()],
        &dir.path().join("err"),
    );
    // The file is followed under its own name before it is rotated.
    let mut r = Reader::new(brokers, &topic);
    r.read_until(1, Duration::from_secs(60));
    w.rotate_rename(&dir.logs.join("app.log.1"));
    w.write_lines(lines[rotate_after..].iter().cloned());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out) = verify_config(&cfg);
        if code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not complete within a minute:\n{out}\nlogferry:\n{}",
            lf.stderr()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(lf.stop().success(), "stderr:\n{}", lf.stderr());
    (dir, cfg)
}

#[test]
fn verify_config_audits_a_json_topic() {
    let Some(brokers) = brokers() else { return };
    let lines: Vec<String> = (0..40).map(line).collect();
    let (dir, cfg) = ship(
        &brokers,
        "vjson",
        "format = \"json\"\n[inputs.fields]\nenv = \"test\"",
        &lines,
        25,
    );
    let (code, out) = verify_config(&cfg);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("app.log.1 ["),
        "the rotated file is audited: {out}"
    );
    assert!(out.contains("25 lines, 0 missing"), "{out}");
    assert!(out.contains("15 lines, 0 missing"), "{out}");

    // A line the topic never got: exit 1, counted missing.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.logs.join("app.log.1"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"never shipped\n"))
        .unwrap();
    let (code, out) = verify_config(&cfg);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("26 lines, 1 missing"), "{out}");
}

#[test]
fn verify_config_audits_split_long_lines() {
    let Some(brokers) = brokers() else { return };
    // Lines of 350 bytes, split at 100: four records each.
    let lines: Vec<String> = (0..20)
        .map(|n| format!("{n:04}{}", "x".repeat(346)))
        .collect();
    let (_dir, cfg) = ship(
        &brokers,
        "vsplit",
        "max_line_bytes = 100\nlong_lines = \"split\"",
        &lines,
        10,
    );
    let (code, out) = verify_config(&cfg);
    assert_eq!(code, 0, "{out}");
    // Each piece is audited as a line of its own.
    assert!(out.contains("40 lines, 0 missing"), "{out}");
}

#[test]
fn verify_needs_a_config_or_a_topic_and_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-c FILE") && err.contains("-t TOPIC"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["verify", "-c", "/a.toml", "-t", "t", "/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "-c and -t do not mix");
}
