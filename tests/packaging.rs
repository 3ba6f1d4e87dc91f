//! What the package ships, checked with the real tools: `logferry check`
//! accepts every sample configuration (packaging/config, examples/), the
//! collector's file included, and refuses a broken collector file naming
//! the key; the systemd units pass `systemd-analyze verify`, with the
//! binary path pointed at the built one and man pages generated from the
//! CLI so their `Documentation=man:` entries are checked too. (Building
//! the .deb is `scripts/check-packaging`: it needs a release build.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LOGFERRY: &str = env!("CARGO_BIN_EXE_logferry");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn logferry(args: &[&str]) -> Output {
    Command::new(LOGFERRY).args(args).output().unwrap()
}

fn samples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["packaging/config", "examples"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn check_accepts_every_shipped_sample() {
    let files = samples();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["collect.toml", "logferry.toml"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for f in &files {
        let out = logferry(&["check", "-c", f.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": valid"), "{stdout}");
    }
    let collect = root().join("packaging/config/collect.toml");
    let out = logferry(&["check", "-c", collect.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a collector's file"), "{stdout}");
    assert!(
        stdout.contains("out: /var/lib/logferry-collect"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_a_broken_collector_file_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("packaging/config/collect.toml")).unwrap();
    let bad = dir.path().join("collect.toml");
    std::fs::write(&bad, text.replace("gap_timeout = ", "gap_timeuot = ")).unwrap();
    let out = logferry(&["check", "-c", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gap_timeuot") && err.contains(bad.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = common::tools::find_tool("systemd-analyze") else {
        assert!(
            !common::tools::is_ci(),
            "systemd-analyze is missing under CI (apt-get install systemd)"
        );
        eprintln!("skipping: systemd-analyze not installed (apt-get install systemd)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let man = dir.path().join("man/man1");
    std::fs::create_dir_all(&units).unwrap();
    let out = logferry(&["generate", "man", man.to_str().unwrap()]);
    assert!(out.status.success());
    let mut names = Vec::new();
    for e in std::fs::read_dir(root().join("packaging/systemd")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("ExecStart=/usr/bin/logferry "),
            "{}",
            p.display()
        );
        let name = p.file_name().unwrap().to_owned();
        std::fs::write(
            units.join(&name),
            text.replace("/usr/bin/logferry", LOGFERRY),
        )
        .unwrap();
        names.push(name);
    }
    assert_eq!(names.len(), 2, "{names:?}");
    let out = Command::new(analyze)
        .arg("verify")
        .args(&names)
        .current_dir(&units)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify only warns about an unknown or misspelt key: any output fails.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
