//! Shared pieces of the integration tests: the real Kafka cluster started by
//! `scripts/test` (bootstrap list in LOGFERRY_TEST_BROKERS), topics, a
//! consumer that reads records back, and a `logferry` child process.
#![allow(dead_code)]

pub mod committed;
pub mod scrape;
pub mod tools;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Environment variables logferry reads only when built with the
/// `test-hooks` feature (src/ship): fault injection and shortened timeouts.
pub const TEST_HOOKS: &[&str] = &["LOGFERRY_FAULT_FATAL_AFTER", "LOGFERRY_UNFINISHED_TTL_SECS"];

/// The cluster's bootstrap list. Under CI a test that needs Kafka fails
/// when it is missing; a developer without a cluster gets a skip message.
pub fn brokers() -> Option<String> {
    match std::env::var("LOGFERRY_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("LOGFERRY_TEST_BROKERS is not set under CI: this test needs the real Kafka cluster (run scripts/test)")
        }
        _ => {
            eprintln!("skipping: LOGFERRY_TEST_BROKERS not set (run scripts/test to start a real cluster)");
            None
        }
    }
}

/// A topic name unique to this test run.
pub fn topic_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t-{test}-{}-{nanos}", std::process::id())
}

/// Create a topic with replication factor min(3, brokers) and
/// min.insync.replicas 2 on a 3-node cluster.
pub fn create_topic(brokers: &str, name: &str, partitions: i32) {
    create_topic_with(brokers, name, partitions, &[])
}

/// A compacted topic for the collectors' shared index (`--index-topic`),
/// unique to the test.
pub fn index_topic(brokers: &str, test: &str) -> String {
    let name = topic_name(&format!("{test}-index"));
    create_topic_with(brokers, &name, 1, &[("cleanup.policy", "compact")]);
    name
}

/// The index topic of consumer group `group` (`GROUP-index`), created by
/// the first member started: every member of a group must share one.
pub fn group_index_topic(brokers: &str, group: &str) -> String {
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let name = format!("{group}-index");
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !made.contains(&name) {
        create_topic_with(brokers, &name, 1, &[("cleanup.policy", "compact")]);
        made.push(name.clone());
    }
    name
}

/// [`create_topic`] with extra topic configuration.
pub fn create_topic_with(brokers: &str, name: &str, partitions: i32, config: &[(&str, &str)]) {
    let nodes = brokers.split(',').count() as i32;
    let rf = nodes.min(3);
    let isr = if rf >= 3 { "2" } else { "1" };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf))
        .set("min.insync.replicas", isr);
    for (k, v) in config {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res =
        futures_executor::block_on(admin.create_topics([&topic], &opts)).expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    // Wait until every partition has a leader, so the first produce does not
    // race topic creation.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(name), Duration::from_secs(5)) {
            if let Some(t) = md.topics().first() {
                if t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
                {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} has no leaders after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
}

impl Record {
    /// The record's source attribution (key form or `lf` header), read as
    /// every consumer of a topic reads it.
    pub fn source(&self) -> Option<logferry::wire::Source> {
        logferry::wire::RecordSource::of_record(self.key.as_deref(), || {
            self.headers.get("lf").map(Vec::as_slice)
        })
        .source()
    }
}

/// Reads a topic from the beginning of every partition.
pub struct Reader {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl Reader {
    pub fn new(brokers: &str, topic: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("reader-{topic}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted")
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        Reader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Poll until at least `n` records were read in total, or the deadline.
    pub fn read_until(&mut self, n: usize, timeout: Duration) -> &[Record] {
        let deadline = Instant::now() + timeout;
        while self.records.len() < n && Instant::now() < deadline {
            self.poll_once(Duration::from_millis(200));
        }
        &self.records
    }

    pub fn poll_once(&mut self, timeout: Duration) {
        if let Some(res) = self.consumer.poll(timeout) {
            // Transport errors while a broker is down are expected; the
            // consumer recovers by itself.
            let m = match res {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("reader: {e}");
                    return;
                }
            };
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            self.records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }

    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.records.iter().map(|r| r.payload.clone()).collect()
    }
}

/// Total records in a topic (sum of high watermarks): the exact count,
/// independent of how far a reader got.
pub fn topic_count(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            hi - lo
        })
        .sum()
}

/// A running `logferry` binary with its stderr captured to a file.
pub struct Logferry {
    pub child: Option<Child>,
    pub stderr_path: PathBuf,
}

impl Logferry {
    pub fn start(args: &[&str], stderr_path: &Path) -> Logferry {
        Self::start_with_env(args, &[], stderr_path)
    }

    /// [`start`](Self::start) with extra environment variables. A test hook
    /// among them fails the test unless the binary reads it.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)], stderr_path: &Path) -> Logferry {
        if let Some((hook, _)) = env.iter().find(|(k, _)| TEST_HOOKS.contains(k)) {
            // The binary is built by the same `cargo test`, with this
            // package's features.
            if !cfg!(feature = "test-hooks") {
                panic!(
                    "{hook} is a test hook that logferry reads only when built with the \
                     `test-hooks` feature: run `cargo test --features logferry/test-hooks` \
                     (scripts/test does)"
                );
            }
        }
        let err = File::create(stderr_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_logferry"))
            .args(args)
            .envs(env.iter().copied())
            .env("LOGFERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn logferry");
        Logferry {
            child: Some(child),
            stderr_path: stderr_path.to_path_buf(),
        }
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        File::open(&self.stderr_path)
            .and_then(|mut f| f.read_to_string(&mut s))
            .unwrap();
        s
    }

    /// Wait until logferry's log contains `needle` (it logs "following" once
    /// a file is open).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Wait until `needle` occurs at least `count` times in the log.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.stderr().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "logferry did not log {needle:?} within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Wait for exit, at most `timeout`; None if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let st = self
            .wait_timeout(Duration::from_secs(15))
            .unwrap_or_else(|| {
                panic!(
                    "logferry did not stop within 15 s; stderr:\n{}",
                    self.stderr()
                )
            });
        self.child = None;
        st
    }
}

impl Drop for Logferry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An appending writer for a test log file.
pub struct LogWriter {
    pub path: PathBuf,
    file: File,
}

impl LogWriter {
    pub fn create(path: &Path) -> LogWriter {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        LogWriter {
            path: path.to_path_buf(),
            file,
        }
    }

    pub fn write_lines<I: IntoIterator<Item = String>>(&mut self, lines: I) {
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        self.file.write_all(&buf).unwrap();
    }

    /// logrotate's rename+create: rename to `to`, then reopen a new file
    /// under the original name.
    pub fn rotate_rename(&mut self, to: &Path) {
        std::fs::rename(&self.path, to).unwrap();
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
    }

    /// logrotate's copytruncate: copy, then truncate in place.
    /// Cut the file in place, as the second half of copytruncate does.
    pub fn truncate(&mut self) {
        self.file.set_len(0).unwrap();
    }

    pub fn rotate_copytruncate(&mut self, to: &Path) {
        std::fs::copy(&self.path, to).unwrap();
        self.file.set_len(0).unwrap();
    }
}

/// A temporary directory holding an empty `logs/` directory, and the glob
/// for the `*.log` files in it: the setup of most many-file tests.
pub struct LogDir {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
}

impl LogDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        LogDir { dir, logs }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn glob(&self) -> String {
        format!("{}/*.log", self.logs.display())
    }
}

/// A numbered, access-log-like line; `n` is recoverable with [`line_no`].
pub fn line(n: usize) -> String {
    format!(
        "{n:08} 198.51.100.{} - - [24/Nov/2026:10:00:00 +0000] \"GET /api/items/{} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\"",
        n % 250,
        n * 7,
        n % 5000
    )
}

pub fn line_no(payload: &[u8]) -> usize {
    std::str::from_utf8(&payload[..8]).unwrap().parse().unwrap()
}

/// Checkpointed position of the only file in a checkpoint directory.
pub fn checkpoint_positions(dir: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(dir.join("checkpoints.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["position"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Run `scripts/kafka` (fault injection on the test cluster).
pub fn kafka_script(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("run scripts/kafka");
    assert!(
        out.status.success(),
        "scripts/kafka {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator for fault timings (seed printed by the
/// test so a failure can be replayed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn from_time() -> Lcg {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("fault seed: {seed}");
        Lcg(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Audit `files` against `topic` with `logferry::verify`.
pub fn audit(
    brokers: &str,
    topic: &str,
    files: &[PathBuf],
    host: &str,
) -> Result<logferry::verify::VerifyReport, logferry::verify::VerifyError> {
    logferry::verify::verify(&logferry::verify::VerifySettings {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        files: files.to_vec(),
        host: host.to_string(),
        format: logferry::wire::Format::Raw,
        max_line_bytes: 1_000_000,
        long_lines: logferry_tail::LongLinePolicy::Truncate,
        strip_cr: false,
        timeout: Duration::from_secs(60),
        kafka_props: vec![],
        checkpoint_dir: None,
    })
}

/// Audit repeatedly until nothing is missing, or the deadline; returns the
/// last report. Errors while the cluster recovers (leaders not elected yet)
/// are retried until the deadline.
pub fn audit_until_complete(
    brokers: &str,
    topic: &str,
    files: &[PathBuf],
    host: &str,
    timeout: Duration,
) -> logferry::verify::VerifyReport {
    let deadline = Instant::now() + timeout;
    loop {
        match audit(brokers, topic, files, host) {
            Ok(report) if report.missing() == 0 || Instant::now() > deadline => return report,
            Ok(_) => {}
            Err(e) if Instant::now() > deadline => panic!("verify: {e}"),
            Err(e) => eprintln!("verify (retrying): {e}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every file in `dir` whose name starts with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// A logferry TOML configuration with one input, written into `dir`.
/// `top_extra` goes before `[kafka]`, `input_extra` into the input's table.
pub fn config_toml(
    dir: &Path,
    brokers: &str,
    host: &str,
    topic: &str,
    include: &str,
    top_extra: &str,
    input_extra: &str,
) -> PathBuf {
    let brokers: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let text = format!(
        r#"
host = "{host}"
scan_interval = "100ms"
{top_extra}

[kafka]
brokers = [{brokers}]

[kafka.properties]
"linger.ms" = 5

[checkpoint]
directory = "{state}"

[[inputs]]
include = ["{include}"]
topic = "{topic}"
start_at = "beginning"
{input_extra}
"#,
        brokers = brokers.join(", "),
        state = dir.join("state").display(),
    );
    let path = dir.join("logferry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Send `rec`, waiting while the producer's queue is full.
pub fn send_waiting(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    mut rec: rdkafka::producer::BaseRecord<'_, [u8], [u8]>,
) {
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((_, back)) => {
                rec = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
