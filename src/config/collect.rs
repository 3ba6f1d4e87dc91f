//! The collector's configuration: `logferry collect -c FILE` (a `[kafka]`
//! section as ship's, and a `[collect]` section) or the quick flags, both
//! turned into one [`CollectSettings`]. Same rules and error style as
//! ship's file: unknown keys and bad values are refused with file, line,
//! column and key named (exit 2). A `[metrics]` section (or
//! `--metrics-listen`) turns on `/metrics` and `/health`, as for ship.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{place, ConfigError, Problem};
use super::load::describe_toml_error;
use super::quick::FlagNames;
use super::raw::{RawDuration, RawKafka, RawSize, StringList};
use super::validate::Origin;

pub const DEFAULT_GROUP: &str = "logferry-collect";
pub const DEFAULT_GAP_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_COMPRESS_AFTER: Duration = Duration::from_secs(3600);
/// `/health` turns 503 after this long without a commit while records wait.
/// A line whose offset lies more than this past the end of what its
/// generation's output holds goes to `_unattributed` instead: a corrupt or
/// hostile offset (2^60) would otherwise make a giant sparse file, or an
/// EFBIG that stops the collector. 64 GiB leaves room for a file the agent
/// started following far into it.
pub const DEFAULT_MAX_HOLE: u64 = 64 << 30;
pub const DEFAULT_MAX_STALL: Duration = Duration::from_secs(60);
/// The compacted topic the collectors of a group share their index in.
pub const DEFAULT_INDEX_TOPIC: &str = "logferry-collect-index";

/// Consumer properties logferry sets; `-X` / `[kafka.properties]` may
/// override all but the two the exactly-once promise rests on.
pub const DEFAULT_CONSUMER_PROPS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("socket.timeout.ms", "10000"),
    // Records of aborted transactions (exactly_once agents) are never
    // written (librdkafka's default, said here because exactly_once
    // depends on it); --read-uncommitted or -X overrides it.
    ("isolation.level", "read_committed"),
    // librdkafka stops fetching a partition whose queue holds
    // queued.min.messages (100,000) records, and looks again only after
    // this long (1000 ms by default). The collector, which writes every
    // line, drains more slowly than a fetch fills, so a backlog reached
    // that mark every few fetches and then waited a second each time:
    // half the wall time idle. Looking again soon keeps the queue full;
    // its size stays bounded by queued.max.messages.kbytes.
    ("fetch.queue.backoff.ms", "20"),
];
/// Properties that would break "fsync before commit" if changed.
pub const FIXED_CONSUMER_PROPS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("partition.assignment.strategy", "cooperative-sticky"),
];

/// How closed generations are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

/// Housekeeping of closed generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// A closed generation (a newer one of its path exists) with no write
    /// for this long is compressed.
    pub compress_after: Duration,
    pub compress: Compression,
    /// Closed generations older than this (last write) are deleted.
    pub retention: Option<Duration>,
    /// Closed generations are deleted, oldest first, while all outputs
    /// together exceed this.
    pub retention_bytes: Option<u64>,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            compress_after: DEFAULT_COMPRESS_AFTER,
            compress: Compression::Zstd,
            retention: None,
            retention_bytes: None,
        }
    }
}

/// Validated settings of `logferry collect`.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    pub brokers: String,
    /// librdkafka properties over [`DEFAULT_CONSUMER_PROPS`].
    pub kafka_props: Vec<(String, String)>,
    pub topics: Vec<String>,
    pub group: String,
    pub out: PathBuf,
    /// A hole open this long is a reported gap.
    pub gap_timeout: Duration,
    /// Outputs are fsynced and offsets committed this often.
    pub commit_interval: Duration,
    /// The `-m META` prefix of tail2kafka-format records, stripped.
    pub metadata: Option<Vec<u8>>,
    /// Largest sparse hole a line may open past the end of its output
    /// (bytes, more than 0); lines further out go to `_unattributed`.
    pub max_hole: u64,
    pub archive: ArchiveSettings,
    /// The metrics and health listener; None (the default) serves nothing.
    pub metrics: Option<CollectMetrics>,
    /// The compacted topic the members share their index in (which
    /// partition and offset each generation starts at, who holds it
    /// whole); None turns it off.
    pub index_topic: Option<String>,
}

/// `[metrics]` of the collector's file: as ship's, without the per-file
/// view (the collector has no followed files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectMetrics {
    pub listen: SocketAddr,
    pub max_stall: Duration,
}

/// `listen`'s value: an IP and a port, so nothing is resolved at start.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("must be IP:PORT, e.g. \"127.0.0.1:9898\" or \"[::]:9898\", got \"{s}\"")
    })
}

impl CollectSettings {
    /// The consumer configuration: defaults, then the user's properties,
    /// then the fixed ones.
    pub fn consumer_props(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = DEFAULT_CONSUMER_PROPS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(("bootstrap.servers".into(), self.brokers.clone()));
        out.push(("group.id".into(), self.group.clone()));
        out.extend(self.kafka_props.iter().cloned());
        out.extend(
            FIXED_CONSUMER_PROPS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        out
    }
}

/// Why `props` cannot be used: (key, message) per fixed property changed
/// and per property librdkafka refuses.
pub fn check_consumer_props(props: &[(String, String)]) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    for (k, v) in props {
        if let Some((_, fixed)) = FIXED_CONSUMER_PROPS.iter().find(|(f, _)| f == k) {
            if v != fixed {
                bad.push((
                    k.clone(),
                    format!("\"{k}\" must be {fixed:?} for the collector: offsets are committed only after the output is fsynced"),
                ));
            }
            continue;
        }
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set(k, v);
        if let Err(e) = cfg.create_native_config() {
            bad.push((k.clone(), format!("librdkafka refuses \"{k}\": {e}")));
        }
    }
    bad
}

#[cfg(test)]
const COLLECT_KEYS: &[&str] = &[
    "topics",
    "group",
    "out",
    "gap_timeout",
    "commit_interval",
    "metadata",
    "max_hole",
    "compress_after",
    "compress",
    "retention_days",
    "retention_bytes",
    "index_topic",
];

/// The collector's file as written (the quick flags are turned into the
/// same form, see `crate::cli`): checked by
/// [`validate::collect`](super::validate::collect).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollectFile {
    pub(crate) kafka: Option<RawKafka>,
    pub(crate) collect: Option<Spanned<RawCollect>>,
    pub(crate) metrics: Option<Spanned<RawCollectMetrics>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollectMetrics {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) max_stall: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollect {
    pub(crate) topics: Option<Spanned<StringList>>,
    pub(crate) group: Option<Spanned<String>>,
    pub(crate) out: Option<Spanned<String>>,
    pub(crate) gap_timeout: Option<Spanned<RawDuration>>,
    pub(crate) commit_interval: Option<Spanned<RawDuration>>,
    pub(crate) metadata: Option<Spanned<String>>,
    pub(crate) max_hole: Option<Spanned<RawSize>>,
    pub(crate) compress_after: Option<Spanned<RawDuration>>,
    pub(crate) compress: Option<Compression>,
    pub(crate) retention_days: Option<Spanned<f64>>,
    pub(crate) retention_bytes: Option<Spanned<RawSize>>,
    pub(crate) index_topic: Option<Spanned<RawIndexTopic>>,
}

/// `index_topic`: a topic name, or `false` to turn the shared index off.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawIndexTopic {
    Name(String),
    Off(bool),
}

/// Read and validate a collector configuration file.
pub fn load_collect(path: &Path) -> Result<CollectSettings, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_collect(&src, path)
}

/// Validate the raw configuration built from the quick flags; `flags`
/// names the flag behind each key. Every problem, each at its flag.
pub(crate) fn validate_flags(
    raw: RawCollectFile,
    flags: &FlagNames,
) -> Result<CollectSettings, ConfigError> {
    let mut issues = Vec::new();
    let settings = super::validate::collect::validate(raw, Origin::Flags, &mut issues);
    if !issues.is_empty() {
        return Err(ConfigError::Flags {
            problems: issues
                .into_iter()
                .map(|i| flags.problem(&i.key.unwrap_or_default(), i.message))
                .collect(),
        });
    }
    Ok(settings)
}

/// Validate `src`, the text of the file at `path` (named in errors).
pub fn parse_collect(src: &str, path: &Path) -> Result<CollectSettings, ConfigError> {
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let raw: RawCollectFile =
        toml::from_str(src).map_err(|e| invalid(vec![place(src, describe_toml_error(src, &e))]))?;
    let mut issues = Vec::new();
    let settings = super::validate::collect::validate(raw, Origin::File, &mut issues);
    if !issues.is_empty() {
        let mut problems: Vec<Problem> = issues.into_iter().map(|i| place(src, i)).collect();
        problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
        return Err(invalid(problems));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<CollectSettings, ConfigError> {
        parse_collect(src, Path::new("/etc/collect.toml"))
    }

    #[test]
    fn a_full_file_loads() {
        let s = parse(
            r#"
[kafka]
brokers = ["k1:9092", "k2:9092"]
[kafka.properties]
"fetch.max.bytes" = 1000000

[collect]
topics = ["a", "b"]
group = "g"
out = "/srv/logs"
gap_timeout = "2m"
commit_interval = "500ms"
compress_after = "10m"
compress = "gzip"
retention_days = 30
retention_bytes = "1GiB"
max_hole = "1GiB"
"#,
        )
        .unwrap();
        assert_eq!(s.brokers, "k1:9092,k2:9092");
        assert_eq!(s.topics, ["a", "b"]);
        assert_eq!(s.gap_timeout, Duration::from_secs(120));
        assert_eq!(s.commit_interval, Duration::from_millis(500));
        assert_eq!(s.archive.compress, Compression::Gzip);
        assert_eq!(s.archive.retention_bytes, Some(1 << 30));
        assert_eq!(s.max_hole, 1 << 30);
        assert!(s
            .consumer_props()
            .contains(&("enable.auto.commit".into(), "false".into())));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_placed() {
        let e = parse("[collect]\ntopics = \"a\"\nout = \"/o\"\ntopcs = 1\n").unwrap_err();
        let p = &e.problems()[0];
        assert_eq!((p.line, p.key.as_deref()), (Some(4), Some("topcs")));
        assert!(p.message.contains("[collect]"), "{}", p.message);
        assert!(p.message.contains("expected one of"), "{}", p.message);
        let e = parse("[collect]\ntopics = \"a\"\nout = \"/o\"\ncompress = \"lz4\"\n").unwrap_err();
        assert_eq!(e.problems()[0].key.as_deref(), Some("compress"));
        let e = parse("[collect]\ntopics = \"a\"\nout = \"/o\"\ngap_timeout = 0\n").unwrap_err();
        assert_eq!(e.problems()[0].line, Some(4));
        let e = parse("[kafka.properties]\n\"enable.auto.commit\" = true\n[collect]\ntopics = \"a\"\nout = \"/o\"\n").unwrap_err();
        assert_eq!(e.problems()[0].key.as_deref(), Some("enable.auto.commit"));
        let e = parse(
            "[kafka.properties]\n\"no.such.prop\" = 1\n[collect]\ntopics = \"a\"\nout = \"/o\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/etc/collect.toml:2:1:"), "{e}");
        let e = parse("[collect]\nout = \"/o\"\n").unwrap_err();
        assert_eq!(e.problems()[0].key.as_deref(), Some("topics"));
    }

    #[test]
    fn metrics_section_is_checked_like_ships() {
        let base = "[collect]\ntopics = \"a\"\nout = \"/o\"\n";
        let s = parse(&format!("{base}[metrics]\nlisten = \"127.0.0.1:9899\"\n")).unwrap();
        let m = s.metrics.unwrap();
        assert_eq!(m.listen.port(), 9899);
        assert_eq!(m.max_stall, DEFAULT_MAX_STALL);
        assert!(parse(base).unwrap().metrics.is_none());
        let e = parse(&format!("{base}[metrics]\nlisten = \"localhost:1\"\n")).unwrap_err();
        let p = &e.problems()[0];
        assert_eq!((p.line, p.key.as_deref()), (Some(5), Some("listen")));
        assert!(
            p.message.contains("\"listen\" in [metrics]"),
            "{}",
            p.message
        );
        let e = parse(&format!(
            "{base}[metrics]\nlisten = \"127.0.0.1:1\"\ntop_files = 3\n"
        ))
        .unwrap_err();
        let p = &e.problems()[0];
        assert_eq!((p.line, p.key.as_deref()), (Some(6), Some("top_files")));
        assert!(p.message.contains("[metrics]"), "{}", p.message);
        let e = parse(&format!("{base}[metrics]\nmax_stall = \"5s\"\n")).unwrap_err();
        assert_eq!(e.problems()[0].key.as_deref(), Some("listen"));
    }

    #[test]
    fn max_hole_is_a_size_and_0_or_garbage_is_refused() {
        let base = "[collect]\ntopics = \"a\"\nout = \"/o\"\n";
        assert_eq!(parse(base).unwrap().max_hole, DEFAULT_MAX_HOLE);
        assert_eq!(DEFAULT_MAX_HOLE, 64 << 30);
        let s = parse(&format!("{base}max_hole = \"5GiB\"\n")).unwrap();
        assert_eq!(s.max_hole, 5 << 30);
        let s = parse(&format!("{base}max_hole = 4096\n")).unwrap();
        assert_eq!(s.max_hole, 4096);
        for bad in ["0", "\"0GiB\"", "\"lots\"", "-5", "\"12 parsecs\""] {
            let e = parse(&format!("{base}max_hole = {bad}\n")).unwrap_err();
            let p = &e.problems()[0];
            assert_eq!(
                (p.line, p.key.as_deref()),
                (Some(4), Some("max_hole")),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("max_hole"), "{bad}: {e}");
        }
        let e = parse(&format!("{base}max_hole = 0\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"max_hole\" in [collect] must be more than 0"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported_at_its_line_and_column() {
        let e = parse(
            "[kafka]\nbrokers = []\nmax_inflight_bytes = \"1MiB\"\n[kafka.properties]\n\"enable.auto.commit\" = true\n[collect]\ntopics = []\ngroup = \"\"\ngap_timeout = \"0s\"\nmax_hole = 0\nretention_days = -1\n[metrics]\nlisten = \"nowhere\"\n",
        )
        .unwrap_err();
        let got: Vec<(usize, usize, &str)> = e
            .problems()
            .iter()
            .map(|p| {
                (
                    p.line.unwrap(),
                    p.column.unwrap(),
                    p.key.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, 11, "brokers"),
                (3, 22, "max_inflight_bytes"),
                (5, 1, "enable.auto.commit"),
                (6, 1, "out"),
                (7, 10, "topics"),
                (8, 9, "group"),
                (9, 15, "gap_timeout"),
                (10, 12, "max_hole"),
                (11, 18, "retention_days"),
                (13, 10, "listen"),
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("/etc/collect.toml:8:9: \"group\" in [collect] cannot be empty"),
            "{text}"
        );
    }

    #[test]
    fn key_list_matches_the_struct() {
        let e = parse("[collect]\nzzz = 1\n").unwrap_err();
        for k in COLLECT_KEYS {
            assert!(e.to_string().contains(k), "{k} missing from {e}");
        }
    }
}
