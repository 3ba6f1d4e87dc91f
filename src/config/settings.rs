//! Validated settings: what the shipping loop runs on. The CLI (and the
//! config file) produce raw input; only values that passed validation reach
//! here, so the loop never re-checks them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_tail::LongLinePolicy;

use crate::wire::Format;

/// Where the brokers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// A bootstrap list, `host:port,host:port`.
    List(String),
    /// librdkafka's in-process mock cluster: for trying logferry out only.
    Embedded,
}

/// Where a file without a checkpoint starts (the file side owns it).
pub use logferry_tail::StartAt;

/// Where each record's source attribution (host, path, file identity,
/// offset: the `lf` source record) travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attribution {
    /// In the record key, with logferry choosing the partition from the
    /// partitioning key carried inside it. The default: a key costs
    /// librdkafka little more than its bytes, while a record header costs
    /// a header list allocated, copied and freed per record (about +60 %
    /// CPU per GB against +13 % for the key; docs/BENCHMARKS.md).
    #[default]
    Key,
    /// In one `lf` record header; the key stays the plain partitioning key
    /// (for consumers that group or compact by key).
    Header,
    /// Not at all: `verify` cannot audit such records.
    Off,
}

impl Attribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Key => "key",
            Attribution::Header => "header",
            Attribution::Off => "off",
        }
    }
}

/// How records are keyed, which decides their partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionBy {
    /// The default. Key = host + generation: each generation (one life of
    /// one file) stays in one partition, in file order, so a collector
    /// that holds the partition holds the whole generation (collectors on
    /// separate hosts each rebuild whole files). A file's successive
    /// generations hash to different partitions, which spreads a host's
    /// files over the topic.
    Generation,
    /// No key: sticky partitioning spreads batches over every partition
    /// (one file's lines over all of them).
    None,
    /// Key = host + file identity: one file's lines stay in one partition,
    /// in order.
    File,
    /// Key = host: one server's lines stay in one partition.
    Host,
    /// Key = what this regex captures in the line (group `key`, else group
    /// 1), e.g. a request id, so one request's lines from every server land
    /// in one partition. Lines without a match have no key.
    Pattern(Pattern),
}

/// A regex as written, and compiled: validated at load, so building the
/// shipper cannot fail on it. Compared and printed by its source, since
/// compiled regexes have no equality.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::bytes::Regex,
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        Ok(Pattern {
            source: source.to_string(),
            regex: regex::bytes::Regex::new(source)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn regex(&self) -> &regex::bytes::Regex {
        &self.regex
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

/// Compared whole on reload: an input that changed in any way is removed
/// and added again.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSettings {
    /// Absolute paths or globs.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// A topic name, or a template over `{host}`, `{file_name}`,
    /// `{file_stem}` and `{dir}` (the file's directory name), rendered per
    /// file; characters a topic name cannot hold become `_`.
    pub topic: String,
    pub start_at: StartAt,
    pub format: Format,
    pub partition_by: PartitionBy,
    pub max_line_bytes: usize,
    pub long_lines: LongLinePolicy,
    pub strip_cr: bool,
    /// Whole lines read together go out as one record of up to this many
    /// bytes, joined by their newlines (0: a record a line). Only for the
    /// raw format, without multiline, CR stripping or a key pattern.
    pub pack_bytes: usize,
    /// Emit an unterminated last line after the file was idle this long;
    /// None waits for the newline forever.
    pub partial_flush: Option<Duration>,
    /// Join continuation lines into one record (stack traces).
    pub multiline: Option<MultilineSettings>,
    /// This input's files are read at most this many bytes per second
    /// (besides the agent's own limit); None: no limit of its own.
    pub max_bytes_per_sec: Option<u64>,
    /// Static record headers (name, value) added to every record. Each
    /// costs librdkafka per-record work (see `Attribution`), so none by
    /// default.
    pub headers: Vec<(String, String)>,
    /// Where this input's rotated files go besides `PATTERN.*` and
    /// `PATTERN-*` (absolute globs; compression told by content).
    pub rotated: Vec<String>,
    /// Ship the rotated files already there (compressed ones too) that no
    /// known generation leads to, oldest first (`ship --backfill` sets it
    /// for every input).
    pub backfill: bool,
}

/// Multiline joining: a line matching `start` begins a record; following
/// lines that do not match are appended to it (joined with `\n`).
#[derive(Debug, Clone, PartialEq)]
pub struct MultilineSettings {
    /// Regex matched against each line's bytes (compiled at load).
    pub start: Pattern,
    /// A record is emitted when no continuation came for this long.
    pub timeout: Duration,
    /// A record is emitted (flagged truncated) once it reaches this size.
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ShipSettings {
    pub inputs: Vec<InputSettings>,
    pub brokers: Brokers,
    /// librdkafka properties layered over logferry's defaults.
    pub kafka_props: Vec<(String, String)>,
    pub checkpoint_dir: PathBuf,
    pub checkpoint_interval: Duration,
    /// Records sent and not yet acknowledged may cost at most this much
    /// (see `record_cost`); reading pauses at the bound.
    pub max_inflight_bytes: usize,
    /// Host name carried in the source attribution.
    pub host: String,
    /// Where the source attribution goes.
    pub attribution: Attribution,
    pub scan_interval: Duration,
    /// A file no longer found under any matching name (rotated away or
    /// deleted) is closed after it was idle at EOF this long.
    pub rotate_grace: Duration,
    /// Bound on flushing in-flight records at shutdown.
    pub shutdown_timeout: Duration,
    /// At most this many files are kept open; idle ones are closed (least
    /// recently active first) and reopened by identity when they grow.
    pub max_open_files: usize,
    /// The metrics and health listener; None (the default) serves nothing.
    pub metrics: Option<MetricsSettings>,
    /// All inputs together are read at most this many bytes per second, so
    /// a backlog never takes the link or the disk from the application;
    /// lines wait in their files (the lag metrics show them), none are
    /// dropped. None: as fast as Kafka acknowledges.
    pub max_bytes_per_sec: Option<u64>,
    /// Exactly-once delivery (a transactional producer); None (the
    /// default) ships at least once.
    pub exactly_once: Option<ExactlyOnceSettings>,
}

/// `exactly_once = true` in `[kafka]`: records and the file positions they
/// advance are committed in one Kafka transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactlyOnceSettings {
    /// The compacted topic the positions are committed to.
    pub positions_topic: String,
    /// How often a transaction is committed: what a read_committed consumer
    /// waits for a line at most (plus the commit).
    pub transaction_interval: Duration,
    /// Configured; else derived from the host and the state directory.
    pub transactional_id: Option<String>,
}

impl ExactlyOnceSettings {
    pub const DEFAULT_POSITIONS_TOPIC: &'static str = "logferry-positions";
    pub const DEFAULT_TRANSACTION_INTERVAL: Duration = Duration::from_secs(1);
}

/// `[metrics]`: Prometheus text at `/metrics`, a verdict at `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: std::net::SocketAddr,
    /// `/health` answers 503 when no acknowledgement came for this long
    /// while lines wait, or a checkpoint could not be written for this long.
    pub max_stall: Duration,
    /// How many files the per-file lag view shows (the furthest behind).
    pub top_files: usize,
}

impl MetricsSettings {
    pub const DEFAULT_MAX_STALL: Duration = Duration::from_secs(60);
    /// Enough to name the few files behind on a host without a series per
    /// file (see `crate::metrics::top_n`).
    pub const DEFAULT_TOP_FILES: usize = 10;
}

impl ShipSettings {
    /// librdkafka holds each record with about 200 bytes of bookkeeping,
    /// so the heap in flight is about twice this for 230-byte lines. 8 MiB
    /// shipped a backlog as fast as 16 MiB in A/B runs, with peak RSS 34
    /// instead of 50 MB; 4 MiB was 20 % slower.
    pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 8 << 20;
    pub const DEFAULT_MAX_LINE_BYTES: usize = 1_000_000;
    /// High enough that 10,000 busy files stay open (reopening a parked
    /// file for each line costs more than the line); the soft descriptor
    /// limit is raised to fit it at start.
    pub const DEFAULT_MAX_OPEN_FILES: usize = 16384;
}

/// The names a topic template may use. `{host}` is the same for every
/// file; the others are not known before a file is.
pub const TOPIC_VARIABLES: &[&str] = &["{host}", "{file_name}", "{file_stem}", "{dir}"];
const FILE_VARIABLES: &[&str] = &["{file_name}", "{file_stem}", "{dir}"];

impl InputSettings {
    /// The topic of the file at `path`, shipped from `host`.
    pub fn topic_for(&self, host: &str, path: &Path) -> String {
        render_topic(&self.topic, host, path)
    }

    /// Whether the topic depends on the file (its name or directory), so
    /// it is known only once a file exists.
    pub fn topic_depends_on_file(&self) -> bool {
        FILE_VARIABLES.iter().any(|v| self.topic.contains(v))
    }
}

/// Render a topic template for one file: `{host}`, `{file_name}`,
/// `{file_stem}`, `{dir}` (the file's directory name). Characters a topic
/// name cannot hold become `_`.
pub fn render_topic(template: &str, host: &str, path: &Path) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let rendered = template
        .replace("{host}", host)
        .replace("{file_name}", &name)
        .replace("{file_stem}", &stem)
        .replace("{dir}", &dir);
    rendered
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The checkpoint directory used when none is given.
pub fn default_checkpoint_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOGFERRY_STATE_DIR") {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/logferry");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/logferry"),
        None => PathBuf::from(".logferry-state"),
    }
}

/// This machine's host name, for source attribution.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A property value may name where its secret lives instead of holding it,
/// so passwords stay out of config files and command lines:
/// `${env:NAME}` (an environment variable) or `${file:/path}` (a file's
/// content, one trailing newline removed). Any other value is itself.
/// Errors name the variable or file, never a value.
pub fn resolve_value(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return Ok(value.to_string());
    };
    if let Some(name) = inner.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = inner.strip_prefix("file:") {
        let mut text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_per_file() {
        let p = Path::new("/var/log/nginx/access.log");
        assert_eq!(render_topic("logs-{host}", "web 1", p), "logs-web_1");
        assert_eq!(
            render_topic("{dir}.{file_stem}.{file_name}", "h", p),
            "nginx.access.access.log"
        );
        assert_eq!(render_topic("plain", "h", p), "plain");
        let re = Pattern::new("a+").unwrap();
        assert_eq!(re, Pattern::new("a+").unwrap());
        assert!(re.regex().is_match(b"xaa"));
        assert_eq!(format!("{re:?}"), "/a+/");
    }

    #[test]
    fn values_resolve_from_env_and_file() {
        assert_eq!(resolve_value("plain").unwrap(), "plain");
        std::env::set_var("LOGFERRY_TEST_SECRET_X", "s3cret");
        assert_eq!(
            resolve_value("${env:LOGFERRY_TEST_SECRET_X}").unwrap(),
            "s3cret"
        );
        let err = resolve_value("${env:LOGFERRY_TEST_NOT_SET_Y}").unwrap_err();
        assert!(err.contains("LOGFERRY_TEST_NOT_SET_Y"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        assert_eq!(
            resolve_value(&format!("${{file:{}}}", f.display())).unwrap(),
            "from-file"
        );
        assert!(resolve_value("${file:/nonexistent/pw}")
            .unwrap_err()
            .contains("/nonexistent/pw"));
    }
}
