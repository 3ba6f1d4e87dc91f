//! The fleet simulation (`scripts/fleet-sim`), reduced: 20 agents with
//! distinct host names, two files each written steadily and rotated, three
//! collectors in one group with separate output directories, one killed
//! with SIGKILL midway and a new one joining. The script checks the
//! outputs itself without logferry code (byte comparison with the source
//! files); this test asserts its report: every line rebuilt byte-exact,
//! nothing lost, nothing twice, and the kill and the join happened.

mod common;

use std::process::Command;

use common::*;

#[test]
fn a_reduced_fleet_is_rebuilt_whole_through_a_kill_and_a_join() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("fleet-sim");
    create_topic(&brokers, &topic, 6);
    let index = index_topic(&brokers, "fleet-sim");
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("report.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fleet-sim");
    let o = Command::new("python3")
        .args([
            script,
            "--agents",
            "20",
            "--secs",
            "30",
            "--rate",
            "10",
            "--rotate-every",
            "12",
            "--drain",
            "90",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--index-topic",
            &index,
            "--logferry",
            env!("CARGO_BIN_EXE_logferry"),
            "--work",
            work.path().join("sim").to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("{stdout}");
    let r: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report).unwrap_or_else(|e| panic!("no report ({e}):\n{stderr}")),
    )
    .unwrap();
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("lines_written") > 8_000.0, "{r}");
    assert_eq!(n("lines_rebuilt_exact"), n("lines_written"), "{r}");
    assert_eq!(n("lines_lost"), 0.0, "{r}");
    assert_eq!(n("outputs_not_prefix_of_source"), 0.0, "nothing twice: {r}");
    assert_eq!(n("outputs_shown_whole_but_not_exact"), 0.0, "{r}");
    assert_eq!(n("unattributed_bytes"), 0.0, "{r}");
    assert_eq!(r["killed"], "collector1", "{r}");
    assert_eq!(r["joined"], "collector3", "{r}");
    assert!(
        n("rebuild_passes") >= 1.0,
        "no partition changed hands mid-generation: {r}"
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
}
