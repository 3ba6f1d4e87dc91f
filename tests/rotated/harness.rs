//! What tests/backfill.rs and tests/rotated_names.rs share: the seed, the
//! independent counter (tests/rotated/count.py, reading the topic with
//! kcat), and waiting for the topic to hold every line.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::tools::Watermarks;

pub fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rotated")
}

/// The seed for this test's random choices: `VAR` if set (replay), else the
/// clock; printed either way.
pub fn seed(var: &str, test: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed={seed} (replay with {var}={seed})");
    seed
}

/// The counter's answer, kept whole for failure messages.
#[derive(Debug, Clone)]
pub struct Counts(pub String);

impl Counts {
    /// A number field; None for `null`.
    pub fn opt(&self, key: &str) -> Option<i64> {
        let at = self
            .0
            .find(&format!("\"{key}\": "))
            .unwrap_or_else(|| panic!("count.py gave no {key:?}: {}", self.0));
        let rest = &self.0[at + key.len() + 4..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().ok()
    }

    pub fn get(&self, key: &str) -> i64 {
        self.opt(key)
            .unwrap_or_else(|| panic!("count.py: {key:?} is not a number: {}", self.0))
    }
}

/// Count the topic against lines `seq=0..expect-1`.
pub fn count(kcat: &std::path::Path, brokers: &str, topic: &str, expect: usize) -> Counts {
    let out = Command::new("python3")
        .arg(assets().join("count.py"))
        .args(["--brokers", brokers, "--topic", topic])
        .args(["--expect", &expect.to_string()])
        .arg("--kcat")
        .arg(kcat)
        .output()
        .expect("running tests/rotated/count.py");
    assert!(
        out.status.success(),
        "count.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Counts(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Wait until the counter finds nothing missing (or `timeout`), then a
/// quiet second for late records; the final count.
pub fn settle(
    kcat: &std::path::Path,
    brokers: &str,
    topic: &str,
    expect: usize,
    timeout: Duration,
) -> Counts {
    let deadline = Instant::now() + timeout;
    let marks = Watermarks::new(brokers, topic);
    let mut audited = -1;
    loop {
        let n = marks.records().unwrap_or(-1);
        if n >= expect as i64 && n != audited {
            audited = n;
            if count(kcat, brokers, topic, expect).get("missing") == 0 {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    count(kcat, brokers, topic, expect)
}

/// Wait until the topic holds at least `n` records, or `timeout`.
pub fn wait_records(brokers: &str, topic: &str, n: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    let marks = Watermarks::new(brokers, topic);
    loop {
        let got = marks.records().unwrap_or(-1);
        if got >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
