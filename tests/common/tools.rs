//! The real tools' side of the real-tools suites (tests/realtools.rs,
//! tests/restarts.rs): finding the tools, children in process groups of
//! their own, and the number of records in a topic.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// Under CI a missing tool or cluster is a failure, never a skip.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `name` on PATH or in the sbin directories (nginx and logrotate live in
/// /usr/sbin, which a non-root PATH may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// A child in a process group of its own; dropping it kills the whole
/// group (nginx's workers with their master) and reaps the child.
pub struct Group {
    child: Child,
    reaped: bool,
}

impl Group {
    pub fn spawn(mut cmd: Command, what: &str) -> Group {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Group {
            child,
            reaped: false,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Signal the group's leader only (nginx's master, the writer).
    pub fn signal(&self, sig: i32) {
        assert!(!self.reaped, "signal to a process already reaped");
        // SAFETY: kill(2) on our own child, which is not reaped yet, so its
        // pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        let st = self.child.try_wait().unwrap();
        self.reaped |= st.is_some();
        st
    }

    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: kill(2) on the process group we created; its leader
            // is not reaped, so the id still names our group.
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// The number of records in a topic, from its partitions' watermarks
/// (common's `topic_count` panics on the first error; a loaded 2-core
/// machine sees an occasional metadata timeout, which only means "ask
/// again").
pub struct Watermarks {
    consumer: BaseConsumer,
    topic: String,
}

impl Watermarks {
    pub fn new(brokers: &str, topic: &str) -> Watermarks {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("consumer for watermarks");
        Watermarks {
            consumer,
            topic: topic.to_string(),
        }
    }

    /// None when the cluster did not answer this time.
    pub fn records(&self) -> Option<i64> {
        let timeout = Duration::from_secs(5);
        let md = match self.consumer.fetch_metadata(Some(&self.topic), timeout) {
            Ok(md) => md,
            Err(e) => {
                eprintln!("watermarks of {} (will ask again): {e}", self.topic);
                return None;
            }
        };
        let mut total = 0;
        for p in md.topics().first()?.partitions() {
            match self.consumer.fetch_watermarks(&self.topic, p.id(), timeout) {
                Ok((lo, hi)) => total += hi - lo,
                Err(e) => {
                    eprintln!("watermarks of {} (will ask again): {e}", self.topic);
                    return None;
                }
            }
        }
        Some(total)
    }
}

/// Each of `wanted` (tool, Debian package), in order; or None outside CI
/// with a skip message naming what is missing. Under CI a missing tool is
/// a failure, never a silent skip.
pub fn find_tools(wanted: &[(&str, &str)], suite: &str) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = wanted.iter().map(|(t, _)| find_tool(t)).collect();
    let missing: Vec<String> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|((t, p), _)| format!("{t} (Debian package {p})"))
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "missing {}: {suite} runs the real tools (.ci/run installs them)",
            missing.join(", ")
        );
        if is_ci() {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return None;
    }
    Some(found.into_iter().map(Option::unwrap).collect())
}
