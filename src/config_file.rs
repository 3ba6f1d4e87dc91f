//! The configuration file (`logferry ship -c FILE`, `logferry check`): TOML
//! read into raw structs that reject unknown keys, then validated into the
//! same [`ShipSettings`] the quick-mode flags produce.
//!
//! Every error names the file, the line and column, and the key, because a
//! shipper that starts with a misspelled key silently ignored ships the
//! wrong thing for months. The format is documented key by key in
//! `examples/logferry.toml` (a unit test loads it, so it cannot rot).
//!
//! Two stages, as for the command line:
//! 1. serde (`deny_unknown_fields`) turns TOML into `Raw*` structs; every
//!    value that a later check may complain about is wrapped in
//!    [`Spanned`] so the complaint can point at it.
//! 2. [`validate`] checks meaning (regexes compile, globs are absolute,
//!    sizes are positive, no duplicates, no conflicting librdkafka
//!    properties) and collects *all* problems, not only the first.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_tail::{Discovery, LongLinePolicy};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    self, Attribution, Brokers, InputSettings, MultilineSettings, PartitionBy, ShipSettings,
    StartAt,
};
use crate::ship::produce::DEFAULT_PRODUCER_PROPS;
use crate::wire::Format;

/// Environment variable naming the configuration file when no `-c` is given.
pub const CONFIG_ENV: &str = "LOGFERRY_CONFIG";

/// Defaults for keys that are not given (the same as the quick mode's).
pub const DEFAULT_BROKERS: &str = "localhost:9092";
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_ROTATE_GRACE: Duration = Duration::from_secs(2);
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);
/// The smallest in-flight bound accepted (as for `--max-inflight-bytes`).
pub const MIN_INFLIGHT_BYTES: u64 = 64 << 10;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column of the offending key or value, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key concerned (`start_at`, `kafka.properties."acks"`...).
    pub key: Option<String>,
    pub message: String,
}

/// Why a configuration file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line per problem: `FILE:LINE:COLUMN: message`.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (empty for a file that could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&path.display().to_string());
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
            if let Some(col) = p.column {
                out.push_str(&format!(":{col}"));
            }
        }
        out.push_str(": ");
        out.push_str(&p.message);
    }
    out
}

/// A problem before it is placed in the file: a byte span and a message.
struct Issue {
    span: Option<Range<usize>>,
    key: Option<String>,
    message: String,
}

/// Byte offset -> 1-based (line, column in characters).
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn place(src: &str, issue: Issue) -> Problem {
    let (line, column) = match issue.span {
        Some(s) => {
            let (l, c) = line_col(src, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    Problem {
        line,
        column,
        key: issue.key,
        message: issue.message,
    }
}

// ---------------------------------------------------------------------------
// Raw file structure (serde)
// ---------------------------------------------------------------------------

// The key lists below name each section in "unknown key" messages; a unit
// test checks them against what serde reports.
const TOP_KEYS: &[&str] = &[
    "host",
    "scan_interval",
    "rotate_grace",
    "max_open_files",
    "attribution",
    "kafka",
    "checkpoint",
    "inputs",
];
const KAFKA_KEYS: &[&str] = &[
    "brokers",
    "properties",
    "max_inflight_bytes",
    "shutdown_timeout",
];
const CHECKPOINT_KEYS: &[&str] = &["directory", "interval"];
const INPUT_KEYS: &[&str] = &[
    "include",
    "exclude",
    "topic",
    "start_at",
    "format",
    "metadata",
    "partition_by",
    "key_pattern",
    "fields",
    "headers",
    "max_line_bytes",
    "long_lines",
    "strip_cr",
    "partial_flush",
    "multiline",
];
const MULTILINE_KEYS: &[&str] = &["start", "timeout", "max_bytes"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: Option<Spanned<String>>,
    scan_interval: Option<Spanned<RawDuration>>,
    rotate_grace: Option<Spanned<RawDuration>>,
    max_open_files: Option<Spanned<i64>>,
    attribution: Option<Attribution>,
    kafka: Option<RawKafka>,
    checkpoint: Option<RawCheckpoint>,
    inputs: Option<Vec<Spanned<RawInput>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<Spanned<StringList>>,
    properties: Option<Spanned<PropTable>>,
    max_inflight_bytes: Option<Spanned<RawSize>>,
    shutdown_timeout: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    directory: Option<Spanned<String>>,
    interval: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    include: Option<Spanned<StringList>>,
    exclude: Option<Spanned<StringList>>,
    topic: Option<Spanned<String>>,
    start_at: Option<RawStartAt>,
    format: Option<Spanned<RawFormat>>,
    metadata: Option<Spanned<String>>,
    partition_by: Option<RawPartitionBy>,
    key_pattern: Option<Spanned<String>>,
    fields: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    max_line_bytes: Option<Spanned<RawSize>>,
    long_lines: Option<RawLongLines>,
    strip_cr: Option<bool>,
    partial_flush: Option<Spanned<RawDuration>>,
    multiline: Option<Spanned<RawMultiline>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultiline {
    start: Option<Spanned<String>>,
    timeout: Option<Spanned<RawDuration>>,
    max_bytes: Option<Spanned<RawSize>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawStartAt {
    End,
    Beginning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawFormat {
    Raw,
    Tail2kafka,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawPartitionBy {
    None,
    File,
    Host,
    Pattern,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLongLines {
    Truncate,
    Split,
}

/// A duration: a number of seconds (`2`, `0.25`) or a string with a unit
/// (`"250ms"`, `"5s"`, `"2m"`, `"1h"`).
#[derive(Debug, Clone, Copy)]
struct RawDuration(Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a duration: seconds as a number, or a string like "250ms", "5s", "2m", "1h""#)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                seconds(v).map(RawDuration).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                parse_duration(v).map(RawDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn seconds(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "a duration must be a non-negative number of seconds, got {v}"
        ));
    }
    Duration::try_from_secs_f64(v).map_err(|_| format!("duration {v} s is too large"))
}

/// `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            r#"invalid duration "{s}": expected a number with a unit: "250ms", "5s", "2m", "1h""#
        )
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    seconds(n * mult)
}

/// A size in bytes: an integer, or a string with a unit (`"64KiB"`,
/// `"16MiB"`, `"1MB"`; KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000).
#[derive(Debug, Clone, Copy)]
struct RawSize(u64);

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    r#"a size: bytes as an integer, or a string like "64KiB", "16MiB", "1MB""#,
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                u64::try_from(v)
                    .map(RawSize)
                    .map_err(|_| E::custom(format!("a size must not be negative, got {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                parse_size(v).map(RawSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `"1000000"`, `"64KiB"`, `"16MiB"`, `"1GiB"`, `"500KB"`, `"1.5MiB"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            r#"invalid size "{s}": expected bytes, or a number with a unit: "64KiB", "16MiB", "1MB""#
        )
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// One string or a list of strings, each with its span.
#[derive(Debug, Clone, Default)]
struct StringList(Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                // The caller's Spanned carries the position of a lone string.
                Ok(StringList(vec![Spanned::new(0..0, v.to_string())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Each string with its own span (a lone string gets the whole value's).
fn items(list: &Spanned<StringList>) -> Vec<(String, Range<usize>)> {
    let outer = list.span();
    list.get_ref()
        .0
        .iter()
        .map(|s| {
            let sp = s.span();
            let sp = if sp == (0..0) { outer.clone() } else { sp };
            (s.get_ref().clone(), sp)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// A configuration file that passed validation.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: ShipSettings,
    /// Accepted but worth saying (e.g. acks other than all weakens the
    /// no-loss promise): logged by `ship`, printed by `check`.
    pub warnings: Vec<Problem>,
}

/// Read and validate the file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&src, path)
}

/// Validate `src`, the text of the file at `path` (named in errors).
pub fn parse(src: &str, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => return Err(invalid(vec![place(src, describe_toml_error(src, &e))])),
    };
    let mut v = Validator {
        src,
        issues: Vec::new(),
        warnings: Vec::new(),
    };
    let settings = v.validate(raw);
    if !v.issues.is_empty() {
        let mut problems: Vec<Problem> = v.issues.into_iter().map(|i| place(src, i)).collect();
        problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
        return Err(invalid(problems));
    }
    let settings = settings.expect("no issues means settings were built");
    Ok(LoadedConfig {
        settings,
        warnings: v.warnings.into_iter().map(|i| place(src, i)).collect(),
    })
}

/// Turn a serde/TOML error into a message that names the key and section.
fn describe_toml_error(src: &str, e: &toml::de::Error) -> Issue {
    let span = e.span();
    let mut msg = e.message().trim().to_string();
    if msg.contains("__toml_private_datetime") {
        // serde's view of a TOML date: say it plainly.
        msg = "a date or time is not a valid value here".into();
    }
    let span_text = span
        .as_ref()
        .and_then(|s| src.get(s.clone()))
        .unwrap_or("")
        .to_string();
    // TOML dates reach serde as maps; a map where no table was written is one.
    if msg.starts_with("invalid type: map") && !span_text.trim_start().starts_with(['{', '[']) {
        msg = msg.replacen("map", "date or time", 1);
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let names = backticked(rest);
        let key = names.first().cloned().unwrap_or(span_text);
        let expected: Vec<&str> = names.iter().skip(1).map(String::as_str).collect();
        let section = section_from_keys(&expected)
            .map(str::to_string)
            .or_else(|| span.as_ref().map(|s| section_at(src, s.start)))
            .unwrap_or_else(|| "the file".into());
        let mut message = format!("unknown key \"{key}\" in {section}");
        if !expected.is_empty() {
            message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        return Issue {
            span,
            key: Some(key),
            message,
        };
    }
    if msg == "duplicate key" {
        return Issue {
            span,
            key: Some(span_text.clone()),
            message: format!("duplicate key \"{span_text}\""),
        };
    }
    // A value that did not fit: name the key it belongs to.
    let key = span.as_ref().and_then(|s| {
        key_before(src, s.start).or_else(|| {
            // A table header where a value was expected: `[inputs]`.
            let t = span_text.trim();
            t.starts_with('[')
                .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        })
    });
    match key {
        Some(key) if !msg.contains("expected `.`, `=`") && !src_is_syntax_error(&msg) => {
            let section = span
                .as_ref()
                .map(|s| section_at(src, s.start))
                .unwrap_or_else(|| "the top level".into());
            let mut message = format!("bad value for \"{key}\" in {section}: {msg}");
            if key == "inputs" && msg.contains("expected a sequence") {
                message.push_str(" (write each input as an [[inputs]] table)");
            }
            Issue {
                span,
                key: Some(key),
                message,
            }
        }
        _ => Issue {
            span,
            key: None,
            message: format!("TOML syntax error: {msg}"),
        },
    }
}

/// Messages from the TOML parser itself (not from serde) are syntax errors.
fn src_is_syntax_error(msg: &str) -> bool {
    !(msg.starts_with("invalid type")
        || msg.starts_with("a date or time")
        || msg.starts_with("invalid value")
        || msg.starts_with("unknown variant")
        || msg.starts_with("invalid length")
        || msg.starts_with("a duration")
        || msg.starts_with("a size")
        || msg.starts_with("duration")
        || msg.starts_with("invalid duration")
        || msg.starts_with("invalid size"))
}

fn backticked(s: &str) -> Vec<String> {
    // `s` starts right after the first backtick.
    let mut out = Vec::new();
    let mut parts = s.split('`');
    if let Some(first) = parts.next() {
        out.push(first.to_string());
    }
    // After the first name: text, name, text, name...
    for (i, p) in parts.enumerate() {
        if i % 2 == 1 {
            out.push(p.to_string());
        }
    }
    out
}

fn section_from_keys(expected: &[&str]) -> Option<&'static str> {
    let same =
        |keys: &[&str]| keys.len() == expected.len() && keys.iter().all(|k| expected.contains(k));
    if same(TOP_KEYS) {
        Some("the top level")
    } else if same(KAFKA_KEYS) {
        Some("[kafka]")
    } else if same(CHECKPOINT_KEYS) {
        Some("[checkpoint]")
    } else if same(INPUT_KEYS) {
        Some("[[inputs]]")
    } else if same(MULTILINE_KEYS) {
        Some("[inputs.multiline]")
    } else {
        None
    }
}

/// The `[table]` or `[[array]]` header in force at `offset`.
fn section_at(src: &str, offset: usize) -> String {
    let before = &src[..offset.min(src.len())];
    for line in before.lines().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            let end = t.rfind(']').map_or(t.len(), |i| i + 1);
            return t[..end].to_string();
        }
    }
    "the top level".into()
}

/// The key whose value starts at `offset`: the last `key =` before it, on
/// its line or the lines above (multi-line arrays), stopping at a header.
fn key_before(src: &str, offset: usize) -> Option<String> {
    let re = key_regex();
    let before = &src[..offset.min(src.len())];
    for line in before.rsplit('\n') {
        if line.trim_start().starts_with('[') && !line.contains('=') {
            return None;
        }
        if let Some(c) = re.captures_iter(line).last() {
            return Some(c[1].replace([' ', '\t', '"', '\''], ""));
        }
    }
    None
}

fn key_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r#"(?:^|[\s{,])((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="#,
        )
        .expect("static regex")
    })
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

struct Validator<'a> {
    src: &'a str,
    issues: Vec<Issue>,
    warnings: Vec<Issue>,
}

impl Validator<'_> {
    fn err(&mut self, span: Option<Range<usize>>, key: &str, message: String) {
        self.issues.push(Issue {
            span,
            key: Some(key.to_string()),
            message,
        });
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.src, span.start).0
    }

    /// A duration that must be above zero.
    fn positive(
        &mut self,
        d: &Option<Spanned<RawDuration>>,
        key: &str,
        section: &str,
        default: Duration,
    ) -> Duration {
        match d {
            Some(s) if s.get_ref().0.is_zero() => {
                self.err(
                    Some(s.span()),
                    key,
                    format!("\"{key}\" in {section} must be above zero"),
                );
                default
            }
            Some(s) => s.get_ref().0,
            None => default,
        }
    }

    /// A size that must be above zero (and fit in memory).
    fn size(
        &mut self,
        s: &Option<Spanned<RawSize>>,
        key: &str,
        section: &str,
        min: u64,
        default: usize,
    ) -> usize {
        let Some(s) = s else { return default };
        let n = s.get_ref().0;
        if n < min.max(1) {
            let need = if min > 1 {
                format!("at least {min}")
            } else {
                "above zero".into()
            };
            self.err(
                Some(s.span()),
                key,
                format!("\"{key}\" in {section} must be {need}, got {n}"),
            );
            return default;
        }
        match usize::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                self.err(
                    Some(s.span()),
                    key,
                    format!("\"{key}\" in {section} is too large: {n}"),
                );
                default
            }
        }
    }

    fn validate(&mut self, raw: RawConfig) -> Option<ShipSettings> {
        // --- top level
        let host = match raw.host {
            Some(h) if h.get_ref().trim().is_empty() => {
                self.err(
                    Some(h.span()),
                    "host",
                    "\"host\" must not be empty (omit it to use this machine's name)".into(),
                );
                String::new()
            }
            Some(h) => h.into_inner(),
            None => config::host_name(),
        };
        let top = "the top level";
        let scan_interval = self.positive(
            &raw.scan_interval,
            "scan_interval",
            top,
            DEFAULT_SCAN_INTERVAL,
        );
        let rotate_grace = raw
            .rotate_grace
            .map_or(DEFAULT_ROTATE_GRACE, |d| d.into_inner().0);
        let max_open_files = match raw.max_open_files {
            Some(n) if *n.get_ref() < 1 => {
                self.err(
                    Some(n.span()),
                    "max_open_files",
                    format!("\"max_open_files\" must be at least 1, got {}", n.get_ref()),
                );
                1
            }
            Some(n) => usize::try_from(*n.get_ref()).unwrap_or(usize::MAX),
            None => ShipSettings::DEFAULT_MAX_OPEN_FILES,
        };
        let attribution = raw.attribution.unwrap_or_default();

        // --- [kafka]
        let kafka = raw.kafka.unwrap_or(RawKafka {
            brokers: None,
            properties: None,
            max_inflight_bytes: None,
            shutdown_timeout: None,
        });
        let brokers = self.brokers(kafka.brokers.as_ref());
        let kafka_props = match &kafka.properties {
            Some(p) => self.properties(p),
            None => Vec::new(),
        };
        let max_inflight_bytes = self.size(
            &kafka.max_inflight_bytes,
            "max_inflight_bytes",
            "[kafka]",
            MIN_INFLIGHT_BYTES,
            ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES,
        );
        let shutdown_timeout = kafka
            .shutdown_timeout
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.into_inner().0);

        // --- [checkpoint]
        let (checkpoint_dir, checkpoint_interval) = match raw.checkpoint {
            Some(c) => {
                let dir = match c.directory {
                    Some(d) if !Path::new(d.get_ref()).is_absolute() => {
                        self.err(
                            Some(d.span()),
                            "directory",
                            format!("\"directory\" in [checkpoint] must be an absolute path, got \"{}\"", d.get_ref()),
                        );
                        PathBuf::new()
                    }
                    Some(d) => PathBuf::from(d.into_inner()),
                    None => config::default_checkpoint_dir(),
                };
                let interval = self.positive(
                    &c.interval,
                    "interval",
                    "[checkpoint]",
                    DEFAULT_CHECKPOINT_INTERVAL,
                );
                (dir, interval)
            }
            None => (
                config::default_checkpoint_dir(),
                DEFAULT_CHECKPOINT_INTERVAL,
            ),
        };

        // --- [[inputs]]
        let raw_inputs = raw.inputs.unwrap_or_default();
        if raw_inputs.is_empty() {
            self.issues.push(Issue {
                span: None,
                key: Some("inputs".into()),
                message: "no [[inputs]]: nothing to ship (add an [[inputs]] table with include and topic)".into(),
            });
        }
        let mut seen_globs: HashMap<String, (usize, usize)> = HashMap::new();
        let mut inputs = Vec::new();
        for (i, input) in raw_inputs.into_iter().enumerate() {
            if let Some(s) = self.input(i + 1, input, &mut seen_globs) {
                inputs.push(s);
            }
        }
        if !self.issues.is_empty() {
            return None;
        }
        Some(ShipSettings {
            inputs,
            brokers,
            kafka_props,
            checkpoint_dir,
            checkpoint_interval,
            max_inflight_bytes,
            host,
            attribution,
            scan_interval,
            rotate_grace,
            shutdown_timeout,
            max_open_files,
        })
    }

    fn brokers(&mut self, raw: Option<&Spanned<StringList>>) -> Brokers {
        let Some(raw) = raw else {
            return Brokers::List(DEFAULT_BROKERS.into());
        };
        // A string may itself be a comma-separated list.
        let mut entries: Vec<(String, Range<usize>)> = Vec::new();
        for (s, span) in items(raw) {
            for part in s.split(',') {
                entries.push((part.trim().to_string(), span.clone()));
            }
        }
        if entries.len() == 1 && entries[0].0 == "embedded" {
            return Brokers::Embedded;
        }
        if entries.iter().all(|(e, _)| e.is_empty()) {
            self.err(
                Some(raw.span()),
                "brokers",
                "\"brokers\" in [kafka] must not be empty".into(),
            );
            return Brokers::Embedded;
        }
        let mut seen = HashMap::new();
        for (e, span) in &entries {
            if e.is_empty() {
                self.err(
                    Some(span.clone()),
                    "brokers",
                    "\"brokers\" in [kafka] has an empty entry".into(),
                );
            } else if e == "embedded" {
                self.err(
                    Some(span.clone()),
                    "brokers",
                    "\"embedded\" in [kafka] brokers must stand alone (brokers = \"embedded\")"
                        .into(),
                );
            } else if e.contains(char::is_whitespace) {
                self.err(
                    Some(span.clone()),
                    "brokers",
                    format!("broker \"{e}\" in [kafka] contains a space"),
                );
            } else if let Some(port) = e.rsplit_once(':').map(|(_, p)| p) {
                if port.parse::<u16>().map_or(true, |p| p == 0) && !e.ends_with(']') {
                    self.err(
                        Some(span.clone()),
                        "brokers",
                        format!("broker \"{e}\" in [kafka]: bad port \"{port}\""),
                    );
                }
            }
            if !e.is_empty() {
                if let Some(first) = seen.insert(e.clone(), self.line_of(span)) {
                    self.err(
                        Some(span.clone()),
                        "brokers",
                        format!("broker \"{e}\" is listed twice in [kafka] brokers (first on line {first})"),
                    );
                }
            }
        }
        Brokers::List(
            entries
                .into_iter()
                .map(|(e, _)| e)
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// `[kafka.properties]`: dotted keys (`security.protocol = "SSL"`
    /// written unquoted is a nested table in TOML) are joined back into
    /// librdkafka names, each checked by librdkafka itself, then the set is
    /// checked for conflicts.
    fn properties(&mut self, table: &Spanned<PropTable>) -> Vec<(String, String)> {
        let mut flat: Vec<(String, String, Range<usize>)> = Vec::new();
        flatten("", table.get_ref(), &mut flat, &mut |key, span, why| {
            self.issues.push(Issue {
                span: Some(span),
                message: format!("kafka.properties \"{key}\": {why}"),
                key: Some(key),
            })
        });
        flat.sort_by_key(|e| e.2.start);
        // `${env:NAME}` and `${file:/path}` are replaced by what they name.
        for (k, v, span) in &mut flat {
            match crate::config::resolve_value(v) {
                Ok(resolved) => *v = resolved,
                Err(why) => self.issues.push(Issue {
                    span: Some(span.clone()),
                    message: format!("kafka.properties \"{k}\": {why}"),
                    key: Some(k.clone()),
                }),
            }
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for (k, v, span) in &flat {
            if let Some(prev) = seen.insert(k.clone(), span.clone()) {
                let first = self.line_of(&prev);
                self.err(
                    Some(span.clone()),
                    k,
                    format!("kafka.properties \"{k}\" is set twice (first on line {first})"),
                );
            }
            if k == "bootstrap.servers" || k == "metadata.broker.list" {
                self.err(
                    Some(span.clone()),
                    k,
                    format!("kafka.properties \"{k}\": set \"brokers\" in [kafka] instead"),
                );
                continue;
            }
            if let Err(e) = rdkafka::ClientConfig::new()
                .set(k, v)
                .create_native_config()
            {
                let why = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                let why = if is_secret(k) && !v.is_empty() {
                    why.replace(v.as_str(), "***")
                } else {
                    why
                };
                self.err(
                    Some(span.clone()),
                    k,
                    format!("kafka.properties \"{k}\": {why}"),
                );
            }
        }
        let props: Vec<(String, String)> = flat
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect();
        for c in property_conflicts(&props) {
            let span = flat
                .iter()
                .rev()
                .find(|(k, _, _)| *k == c.key)
                .map_or(table.span(), |(_, _, s)| s.clone());
            if c.warning {
                self.warnings.push(Issue {
                    span: Some(span),
                    key: Some(c.key),
                    message: c.message,
                });
            } else {
                self.err(Some(span), &c.key, c.message);
            }
        }
        props
    }

    fn input(
        &mut self,
        n: usize,
        raw: Spanned<RawInput>,
        seen_globs: &mut HashMap<String, (usize, usize)>,
    ) -> Option<InputSettings> {
        let table_span = raw.span();
        let sect = format!("[[inputs]] #{n}");
        let raw = raw.into_inner();
        let before = self.issues.len();

        let include = match &raw.include {
            Some(l) => items(l),
            None => {
                self.err(
                    Some(table_span.clone()),
                    "include",
                    format!(
                        "{sect} has no \"include\" (absolute paths or globs of the files to ship)"
                    ),
                );
                Vec::new()
            }
        };
        if raw.include.is_some() && include.is_empty() {
            self.err(
                raw.include.as_ref().map(|l| l.span()),
                "include",
                format!("\"include\" in {sect} is empty"),
            );
        }
        let exclude = raw.exclude.as_ref().map(items).unwrap_or_default();
        for (what, list) in [("include", &include), ("exclude", &exclude)] {
            let mut local: HashMap<&str, usize> = HashMap::new();
            for (g, span) in list.iter() {
                if !g.starts_with('/') {
                    self.err(
                        Some(span.clone()),
                        what,
                        format!("\"{what}\" in {sect}: \"{g}\" is relative; patterns must be absolute paths (start with /)"),
                    );
                    continue;
                }
                let (inc, exc) = if what == "include" {
                    (vec![g.clone()], vec![])
                } else {
                    (vec![], vec![g.clone()])
                };
                if let Err(e) = Discovery::new(&inc, &exc) {
                    self.err(
                        Some(span.clone()),
                        what,
                        format!("\"{what}\" in {sect}: {e}"),
                    );
                    continue;
                }
                if let Some(first) = local.insert(g.as_str(), self.line_of(span)) {
                    self.err(
                        Some(span.clone()),
                        what,
                        format!(
                            "\"{what}\" in {sect}: \"{g}\" is listed twice (first on line {first})"
                        ),
                    );
                } else if what == "include" {
                    if let Some((other, line)) =
                        seen_globs.insert(g.clone(), (n, self.line_of(span)))
                    {
                        self.err(
                            Some(span.clone()),
                            what,
                            format!("\"include\" in {sect}: \"{g}\" is also included by [[inputs]] #{other} (line {line}); its files would be shipped twice"),
                        );
                    }
                }
            }
        }

        let topic = match &raw.topic {
            Some(t) => {
                if let Err(why) = check_topic(t.get_ref()) {
                    self.err(
                        Some(t.span()),
                        "topic",
                        format!("\"topic\" in {sect}: {why}"),
                    );
                }
                t.get_ref().clone()
            }
            None => {
                self.err(
                    Some(table_span.clone()),
                    "topic",
                    format!("{sect} has no \"topic\""),
                );
                String::new()
            }
        };

        let format = match (raw.format.as_ref().map(|f| *f.get_ref()), &raw.metadata) {
            (Some(RawFormat::Tail2kafka), Some(m)) if m.get_ref().is_empty() => {
                self.err(
                    Some(m.span()),
                    "metadata",
                    format!("\"metadata\" in {sect} must not be empty"),
                );
                Format::Raw
            }
            (Some(RawFormat::Tail2kafka), Some(m)) => Format::Tail2Kafka {
                meta: m.get_ref().clone().into_bytes(),
            },
            (Some(RawFormat::Tail2kafka), None) => {
                self.err(
                    raw.format.as_ref().map(|f| f.span()),
                    "metadata",
                    format!("format = \"tail2kafka\" in {sect} needs \"metadata\" (the META of META::line)"),
                );
                Format::Raw
            }
            (_, Some(m)) => {
                self.err(
                    Some(m.span()),
                    "metadata",
                    format!("\"metadata\" in {sect} is only used with format = \"tail2kafka\""),
                );
                Format::Raw
            }
            (Some(RawFormat::Json), None) => Format::Json {
                fields: raw
                    .fields
                    .as_ref()
                    .map(|f| {
                        f.get_ref()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            (_, None) => Format::Raw,
        };
        let mut headers = Vec::new();
        if let Some(h) = &raw.headers {
            for (name, value) in h.get_ref() {
                match crate::wire::check_static_header(name) {
                    Ok(()) => headers.push((name.clone(), value.clone())),
                    Err(why) => self.err(
                        Some(h.span()),
                        "headers",
                        format!("bad \"headers\" in {sect}: {why}"),
                    ),
                }
            }
        }
        if let (Some(f), false) = (&raw.fields, matches!(format, Format::Json { .. })) {
            self.err(
                Some(f.span()),
                "fields",
                format!("\"fields\" in {sect} is only used with format = \"json\""),
            );
        }

        let max_line_bytes = self.size(
            &raw.max_line_bytes,
            "max_line_bytes",
            &sect,
            1,
            ShipSettings::DEFAULT_MAX_LINE_BYTES,
        );
        let partial_flush = match &raw.partial_flush {
            Some(d) if d.get_ref().0.is_zero() => {
                self.err(
                    Some(d.span()),
                    "partial_flush",
                    format!("\"partial_flush\" in {sect} must be above zero (omit it to wait for the newline)"),
                );
                None
            }
            Some(d) => Some(d.get_ref().0),
            None => None,
        };

        let multiline = raw.multiline.as_ref().map(|m| {
            let msect = format!("[inputs.multiline] of {sect}");
            let m_span = m.span();
            let m = m.get_ref();
            let start = match &m.start {
                Some(s) => {
                    if let Err(e) = regex::bytes::Regex::new(s.get_ref()) {
                        self.err(
                            Some(s.span()),
                            "start",
                            format!(
                                "\"start\" in {msect}: bad regex \"{}\": {}",
                                s.get_ref(),
                                regex_error(&e)
                            ),
                        );
                    }
                    s.get_ref().clone()
                }
                None => {
                    self.err(
                        Some(m_span),
                        "start",
                        format!(
                            "{msect} has no \"start\" (the regex a record's first line matches)"
                        ),
                    );
                    String::new()
                }
            };
            MultilineSettings {
                start,
                timeout: self.positive(&m.timeout, "timeout", &msect, DEFAULT_MULTILINE_TIMEOUT),
                max_bytes: self.size(&m.max_bytes, "max_bytes", &msect, 1, max_line_bytes),
            }
        });

        if self.issues.len() > before {
            return None;
        }
        Some(InputSettings {
            include: include.into_iter().map(|(g, _)| g).collect(),
            exclude: exclude.into_iter().map(|(g, _)| g).collect(),
            topic,
            start_at: match raw.start_at {
                Some(RawStartAt::Beginning) => StartAt::Beginning,
                Some(RawStartAt::End) | None => StartAt::End,
            },
            format,
            partition_by: match raw.partition_by {
                Some(RawPartitionBy::File) => PartitionBy::File,
                Some(RawPartitionBy::Host) => PartitionBy::Host,
                Some(RawPartitionBy::Pattern) => match &raw.key_pattern {
                    Some(p) => {
                        if let Err(e) = regex::bytes::Regex::new(p.get_ref()) {
                            self.err(
                                Some(p.span()),
                                "key_pattern",
                                format!("\"key_pattern\" in {sect} is not a valid regex: {e}"),
                            );
                        }
                        PartitionBy::Pattern(p.get_ref().clone())
                    }
                    None => {
                        self.err(
                            Some(table_span.clone()),
                            "key_pattern",
                            format!("partition_by = \"pattern\" in {sect} needs \"key_pattern\" (a regex whose group `key` or 1 is the key)"),
                        );
                        PartitionBy::None
                    }
                },
                Some(RawPartitionBy::None) | None => PartitionBy::None,
            },
            max_line_bytes,
            long_lines: match raw.long_lines {
                Some(RawLongLines::Split) => LongLinePolicy::Split,
                Some(RawLongLines::Truncate) | None => LongLinePolicy::Truncate,
            },
            strip_cr: raw.strip_cr.unwrap_or(false),
            partial_flush,
            multiline,
            headers,
        })
    }
}

/// `[kafka.properties]` as written: keys with their positions, values
/// that are scalars or (for unquoted dotted keys) nested tables.
#[derive(Debug, Default)]
struct PropTable(Vec<(Spanned<String>, PropValue)>);

#[derive(Debug)]
enum PropValue {
    Scalar(String),
    Table(PropTable),
    /// Not usable as a librdkafka value; the reason.
    Bad(&'static str),
}

impl<'de> Deserialize<'de> for PropTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of librdkafka properties")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<PropTable, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<PropValue>()?;
                    out.push((k, v));
                }
                Ok(PropTable(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for PropValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PropValue, E> {
                Ok(PropValue::Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PropValue, E> {
                Ok(PropValue::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PropValue, E> {
                Ok(PropValue::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PropValue, E> {
                Ok(PropValue::Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PropValue, E> {
                Ok(PropValue::Scalar(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PropValue, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(PropValue::Bad(
                    "a librdkafka property takes one value; write a list as one comma-separated string",
                ))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<PropValue, A::Error> {
                let t = PropTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PropValue::Table(t))
            }
        }
        d.deserialize_any(V)
    }
}

/// Join nested tables (unquoted dotted keys) into dotted librdkafka names;
/// each entry keeps the span of its last key part.
fn flatten(
    prefix: &str,
    table: &PropTable,
    out: &mut Vec<(String, String, Range<usize>)>,
    bad: &mut dyn FnMut(String, Range<usize>, &str),
) {
    for (k, v) in &table.0 {
        let key = if prefix.is_empty() {
            k.get_ref().clone()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v {
            PropValue::Scalar(s) => out.push((key, s.clone(), k.span())),
            PropValue::Table(t) => flatten(&key, t, out, bad),
            PropValue::Bad(why) => bad(key, k.span(), why),
        }
    }
}

/// The last line of a regex error is the reason (the lines above draw the
/// pattern with a caret).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_string()
}

/// Kafka's own rules for topic names.
/// A topic name, or a template: `{host}`, `{file_name}`, `{file_stem}` and
/// `{dir}` are filled in per file (characters a topic cannot hold become
/// `_`), so only the literal parts are checked here.
fn check_topic(t: &str) -> Result<(), String> {
    if t.contains('{') || t.contains('}') {
        let mut literal = t.to_string();
        for v in ["{host}", "{file_name}", "{file_stem}", "{dir}"] {
            literal = literal.replace(v, "x");
        }
        if literal.contains('{') || literal.contains('}') {
            return Err(format!(
                "\"{t}\": a topic template may only use {{host}}, {{file_name}}, {{file_stem}} and {{dir}}"
            ));
        }
        return check_topic(&literal);
    }
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t == "." || t == ".." {
        return Err(format!("\"{t}\" is not a valid topic name"));
    }
    if t.len() > 249 {
        return Err(format!(
            "a topic name is at most 249 characters, this one has {}",
            t.len()
        ));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "\"{t}\": a topic name may only contain letters, digits, '.', '_' and '-', not {c:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// librdkafka properties: conflicts and secrets
// ---------------------------------------------------------------------------

/// A conflict (or, with `warning`, a risk) among producer properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyConflict {
    /// The user's key the message is attached to.
    pub key: String,
    pub message: String,
    pub warning: bool,
}

/// Two names librdkafka treats as the same property.
const ALIASES: &[(&str, &str)] = &[
    ("acks", "request.required.acks"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("retries", "message.send.max.retries"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("compression.type", "compression.codec"),
    ("message.timeout.ms", "delivery.timeout.ms"),
];

/// Check user properties (layered over logferry's producer defaults) for
/// combinations librdkafka would refuse at start, or that break the no-loss
/// promise. Each conflict names both keys.
pub fn property_conflicts(user: &[(String, String)]) -> Vec<PropertyConflict> {
    let mut out = Vec::new();
    let set_by_user = |k: &str| {
        user.iter()
            .rev()
            .find(|(uk, _)| uk == k)
            .map(|(_, v)| v.as_str())
    };
    for (a, b) in ALIASES {
        if set_by_user(a).is_some() && set_by_user(b).is_some() {
            out.push(PropertyConflict {
                key: b.to_string(),
                message: format!("kafka.properties \"{a}\" and \"{b}\" are the same librdkafka property; set only one"),
                warning: false,
            });
        }
    }
    // The effective value of a property (by any of its names) and where it
    // came from, for the messages.
    let effective = |names: &[&str]| -> Option<(String, String, bool)> {
        for n in names {
            if let Some(v) = set_by_user(n) {
                return Some((n.to_string(), v.to_string(), true));
            }
        }
        for n in names {
            if let Some((_, v)) = DEFAULT_PRODUCER_PROPS.iter().find(|(k, _)| k == n) {
                return Some((n.to_string(), v.to_string(), false));
            }
        }
        None
    };
    let origin = |user: bool| if user { "" } else { " (logferry's default)" };
    let truthy = |v: &str| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "t" | "yes" | "on"
        )
    };
    let idem = effective(&["enable.idempotence"]);
    let idem_on = idem.as_ref().is_some_and(|(_, v, _)| truthy(v));
    let acks = effective(&["acks", "request.required.acks"]);
    let acks_all = acks
        .as_ref()
        .is_none_or(|(_, v, _)| matches!(v.trim().to_ascii_lowercase().as_str(), "all" | "-1"));
    if let (true, Some((ik, iv, iu)), Some((ak, av, au))) = (idem_on, &idem, &acks) {
        if !acks_all {
            out.push(PropertyConflict {
                key: if *au { ak.clone() } else { ik.clone() },
                message: format!(
                    "kafka.properties \"{ik}\" = \"{iv}\"{} conflicts with \"{ak}\" = \"{av}\"{}: idempotence needs acks = \"all\" (or -1); set \"{ik}\" = false to use {ak} = {av}",
                    origin(*iu),
                    origin(*au)
                ),
                warning: false,
            });
        }
    }
    if idem_on {
        let (ik, iv, iu) = idem.clone().expect("idempotence is set");
        if let Some((k, v, true)) =
            effective(&["max.in.flight.requests.per.connection", "max.in.flight"])
        {
            if v.trim().parse::<u64>().is_ok_and(|n| n > 5) {
                out.push(PropertyConflict {
                    key: k.clone(),
                    message: format!(
                        "kafka.properties \"{k}\" = \"{v}\" conflicts with \"{ik}\" = \"{iv}\"{}: idempotence allows at most 5",
                        origin(iu)
                    ),
                    warning: false,
                });
            }
        }
        if let Some((k, v, true)) = effective(&["retries", "message.send.max.retries"]) {
            if v.trim() == "0" {
                out.push(PropertyConflict {
                    key: k.clone(),
                    message: format!(
                        "kafka.properties \"{k}\" = \"0\" conflicts with \"{ik}\" = \"{iv}\"{}: idempotence needs retries",
                        origin(iu)
                    ),
                    warning: false,
                });
            }
        }
    } else if let Some((k, v, true)) = effective(&["enable.gapless.guarantee"]) {
        if truthy(&v) {
            let (ik, iv, _) =
                idem.clone()
                    .unwrap_or(("enable.idempotence".into(), "false".into(), true));
            out.push(PropertyConflict {
                key: k.clone(),
                message: format!(
                    "kafka.properties \"{k}\" = \"{v}\" needs \"{ik}\" = true (it is \"{iv}\")"
                ),
                warning: false,
            });
        }
    }
    if !acks_all {
        if let Some((ak, av, true)) = &acks {
            out.push(PropertyConflict {
                key: ak.clone(),
                message: format!(
                    "kafka.properties \"{ak}\" = \"{av}\": lines acknowledged by one broker can be lost when it fails; logferry's no-loss promise needs acks = \"all\""
                ),
                warning: true,
            });
        }
    }
    out
}

/// Properties whose values must never be printed: passwords, secrets, JAAS
/// configs, tokens and private key material.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "credential",
        "private",
        "oauthbearer.config",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.split(['.', '_']).any(|part| part == "key")
}

/// `value`, or `***` when the property is a secret.
pub fn shown_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret(key) {
        "***"
    } else {
        value
    }
}

// ---------------------------------------------------------------------------
// `logferry check`
// ---------------------------------------------------------------------------

/// The human summary printed by `logferry check`. Secret properties are
/// shown as `***`.
pub fn summary(path: &Path, loaded: &LoadedConfig) -> String {
    use std::fmt::Write as _;
    let s = &loaded.settings;
    let mut o = String::new();
    let _ = writeln!(o, "{}: valid", path.display());
    let _ = writeln!(
        o,
        "brokers: {}",
        match &s.brokers {
            Brokers::List(l) => l.split(',').collect::<Vec<_>>().join(", "),
            Brokers::Embedded =>
                "embedded (in-process test broker, for trying logferry out only)".into(),
        }
    );
    let mut topics: Vec<&str> = s.inputs.iter().map(|i| i.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    let _ = writeln!(o, "topics: {}", topics.join(", "));
    let _ = writeln!(o, "host: {}", s.host);
    let _ = writeln!(
        o,
        "checkpoints: {} (every {})",
        s.checkpoint_dir.display(),
        fmt_duration(s.checkpoint_interval)
    );
    let _ = writeln!(
        o,
        "limits: max_inflight_bytes {}, max_open_files {}, scan_interval {}, rotate_grace {}, shutdown_timeout {}, attribution {}",
        fmt_size(s.max_inflight_bytes),
        s.max_open_files,
        fmt_duration(s.scan_interval),
        fmt_duration(s.rotate_grace),
        fmt_duration(s.shutdown_timeout),
        s.attribution.as_str()
    );
    let _ = writeln!(o, "inputs: {}", s.inputs.len());
    for (n, i) in s.inputs.iter().enumerate() {
        let _ = writeln!(o, "  #{} -> topic {}", n + 1, i.topic);
        for g in &i.include {
            let _ = writeln!(o, "     include {g}");
        }
        for g in &i.exclude {
            let _ = writeln!(o, "     exclude {g}");
        }
        let format = match &i.format {
            Format::Raw => "raw".to_string(),
            Format::Tail2Kafka { meta } => format!(
                "tail2kafka (metadata \"{}\")",
                String::from_utf8_lossy(meta)
            ),
            Format::Json { fields } => format!("json ({} static fields)", fields.len()),
        };
        let format = if i.headers.is_empty() {
            format
        } else {
            let names: Vec<&str> = i.headers.iter().map(|(k, _)| k.as_str()).collect();
            format!("{format}, headers {}", names.join(", "))
        };
        let _ = writeln!(
            o,
            "     start_at {}, format {format}, partition_by {}, max_line_bytes {} ({}), strip_cr {}, partial_flush {}",
            match i.start_at {
                StartAt::End => "end",
                StartAt::Beginning => "beginning",
            },
            match &i.partition_by {
                PartitionBy::None => "none".to_string(),
                PartitionBy::File => "file".to_string(),
                PartitionBy::Host => "host".to_string(),
                PartitionBy::Pattern(p) => format!("pattern /{p}/"),
            },
            i.max_line_bytes,
            match i.long_lines {
                LongLinePolicy::Truncate => "truncate",
                LongLinePolicy::Split => "split",
            },
            i.strip_cr,
            i.partial_flush.map_or("off".to_string(), fmt_duration),
        );
        if let Some(m) = &i.multiline {
            let _ = writeln!(
                o,
                "     multiline start /{}/, timeout {}, max_bytes {}",
                m.start,
                fmt_duration(m.timeout),
                m.max_bytes
            );
        }
    }
    let _ = writeln!(
        o,
        "producer properties (logferry's defaults, then the file's):"
    );
    let mut effective: Vec<(String, String, &str)> = DEFAULT_PRODUCER_PROPS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string(), "default"))
        .collect();
    for (k, v) in &s.kafka_props {
        match effective.iter_mut().find(|(ek, _, _)| ek == k) {
            Some(e) => {
                e.1 = v.clone();
                e.2 = "file";
            }
            None => effective.push((k.clone(), v.clone(), "file")),
        }
    }
    for (k, v, from) in &effective {
        let _ = writeln!(
            o,
            "  {k} = {}{}",
            shown_value(k, v),
            if *from == "default" {
                "  (default)"
            } else {
                ""
            }
        );
    }
    for w in &loaded.warnings {
        let at = w.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(o, "warning: {}{at}: {}", path.display(), w.message);
    }
    o
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 || ms == 0 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

fn fmt_size(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{}KiB", n >> 10)
    } else {
        n.to_string()
    }
}

/// Why `check --connect` failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// One line per bootstrap broker that did not answer.
    #[error("{}", .0.join("\n"))]
    Unreachable(Vec<String>),
    /// One line per topic that is missing or unusable.
    #[error("{}", .0.join("\n"))]
    Topics(Vec<String>),
}

/// What `check --connect` found.
#[derive(Debug, Clone)]
pub struct ConnectReport {
    /// One line per bootstrap broker and per topic.
    pub lines: Vec<String>,
}

/// Ask every bootstrap broker for metadata (within `timeout`) and check
/// that every configured topic exists. Uses the file's properties (TLS,
/// SASL), so authentication problems show here too. Topics are never
/// created: metadata is asked for all topics, which does not trigger the
/// brokers' auto-creation.
pub fn connect_check(
    settings: &ShipSettings,
    timeout: Duration,
) -> Result<ConnectReport, ConnectError> {
    use rdkafka::producer::{BaseProducer, Producer};
    let Brokers::List(list) = &settings.brokers else {
        return Ok(ConnectReport {
            lines: vec![
                "brokers: embedded: nothing to connect to (the embedded broker only exists inside `logferry ship`)".into(),
            ],
        });
    };
    let bootstrap: Vec<String> = list.split(',').map(str::to_string).collect();
    // Each broker alone, in parallel, so a wrong entry is named.
    let results: Vec<(String, Result<rdkafka::metadata::Metadata, String>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = bootstrap
                .iter()
                .map(|b| {
                    let props = &settings.kafka_props;
                    scope.spawn(move || {
                        let mut cfg = crate::ship::produce::client_config(b, props);
                        cfg.set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg);
                        let res = cfg
                            .create::<BaseProducer>()
                            .map_err(|e| format!("cannot create a client: {e}"))
                            .and_then(|p| {
                                p.client()
                                    .fetch_metadata(None, timeout)
                                    .map_err(|e| e.to_string())
                            });
                        (b.clone(), res)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("metadata thread"))
                .collect()
        });
    let mut lines = Vec::new();
    let mut down = Vec::new();
    let mut metadata = None;
    for (b, r) in results {
        match r {
            Ok(m) => {
                lines.push(format!(
                    "broker {b}: answered (cluster of {} brokers)",
                    m.brokers().len()
                ));
                metadata.get_or_insert(m);
            }
            Err(e) => down.push(format!(
                "broker {b} did not answer within {}: {e}",
                fmt_duration(timeout)
            )),
        }
    }
    if !down.is_empty() {
        return Err(ConnectError::Unreachable(down));
    }
    let metadata = metadata.ok_or_else(|| ConnectError::Unreachable(vec!["no brokers".into()]))?;
    let mut missing = Vec::new();
    let mut topics: Vec<&str> = settings.inputs.iter().map(|i| i.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for t in topics {
        match metadata.topics().iter().find(|mt| mt.name() == t) {
            None => missing.push(format!(
                "topic \"{t}\" does not exist on {list} (logferry never creates topics)"
            )),
            Some(mt) if mt.error().is_some() => missing.push(format!(
                "topic \"{t}\": {:?}",
                rdkafka::types::RDKafkaErrorCode::from(mt.error().expect("checked"))
            )),
            Some(mt) if mt.partitions().is_empty() => {
                missing.push(format!("topic \"{t}\" has no partitions"))
            }
            Some(mt) => lines.push(format!(
                "topic {t}: exists, {} partitions",
                mt.partitions().len()
            )),
        }
    }
    if !missing.is_empty() {
        return Err(ConnectError::Topics(missing));
    }
    Ok(ConnectReport { lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> LoadedConfig {
        match parse(src, Path::new("/etc/logferry.toml")) {
            Ok(l) => l,
            Err(e) => panic!("expected a valid file, got:\n{e}"),
        }
    }

    fn err(src: &str) -> (String, Vec<Problem>) {
        match parse(src, Path::new("/etc/logferry.toml")) {
            Ok(_) => panic!("expected an error for:\n{src}"),
            Err(e) => (e.to_string(), e.problems().to_vec()),
        }
    }

    const MINIMAL: &str = r#"
[[inputs]]
include = ["/var/log/app.log"]
topic = "app"
"#;

    #[test]
    fn minimal_file_gets_the_quick_mode_defaults() {
        let s = ok(MINIMAL).settings;
        assert_eq!(s.brokers, Brokers::List("localhost:9092".into()));
        assert!(s.kafka_props.is_empty());
        assert_eq!(s.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);
        assert_eq!(
            s.max_inflight_bytes,
            ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES
        );
        assert_eq!(s.scan_interval, DEFAULT_SCAN_INTERVAL);
        assert_eq!(s.rotate_grace, DEFAULT_ROTATE_GRACE);
        assert_eq!(s.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(s.max_open_files, ShipSettings::DEFAULT_MAX_OPEN_FILES);
        assert_eq!(s.attribution, Attribution::Key);
        assert_eq!(s.host, config::host_name());
        let i = &s.inputs[0];
        assert_eq!(i.include, ["/var/log/app.log"]);
        assert!(i.exclude.is_empty());
        assert_eq!(i.topic, "app");
        assert_eq!(i.start_at, StartAt::End);
        assert_eq!(i.format, Format::Raw);
        assert_eq!(i.partition_by, PartitionBy::None);
        assert_eq!(i.max_line_bytes, ShipSettings::DEFAULT_MAX_LINE_BYTES);
        assert_eq!(i.long_lines, LongLinePolicy::Truncate);
        assert!(!i.strip_cr);
        assert!(i.partial_flush.is_none());
        assert!(i.multiline.is_none());
    }

    #[test]
    fn full_file_sets_every_key() {
        let s = ok(r#"
host = "web1"
scan_interval = "100ms"
rotate_grace = 5
max_open_files = 64
attribution = "header"

[kafka]
brokers = ["k1:9092", "k2:9093"]
max_inflight_bytes = "32MiB"
shutdown_timeout = "1m"

[kafka.properties]
"compression.type" = "zstd"
linger.ms = 50
security.protocol = "SASL_SSL"

[checkpoint]
directory = "/srv/state"
interval = 0.5

[[inputs]]
include = ["/var/log/nginx/*.log", "/var/log/nginx/**/*.log"]
exclude = ["/var/log/nginx/*.gz"]
topic = "weblogs"
start_at = "beginning"
format = "tail2kafka"
metadata = "web1"
partition_by = "file"
max_line_bytes = "64KiB"
long_lines = "split"
strip_cr = true
partial_flush = "2s"

[inputs.multiline]
start = '^\d{4}-\d{2}-\d{2}'
timeout = "500ms"
max_bytes = 100000

[[inputs]]
include = "/var/log/app.log"
topic = "app"
"#)
        .settings;
        assert_eq!(s.host, "web1");
        assert_eq!(s.scan_interval, Duration::from_millis(100));
        assert_eq!(s.rotate_grace, Duration::from_secs(5));
        assert_eq!(s.max_open_files, 64);
        assert_eq!(s.attribution, Attribution::Header);
        assert_eq!(s.brokers, Brokers::List("k1:9092,k2:9093".into()));
        assert_eq!(s.max_inflight_bytes, 32 << 20);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(
            s.kafka_props,
            [
                ("compression.type".to_string(), "zstd".to_string()),
                ("linger.ms".to_string(), "50".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ]
        );
        assert_eq!(s.checkpoint_dir, PathBuf::from("/srv/state"));
        assert_eq!(s.checkpoint_interval, Duration::from_millis(500));
        assert_eq!(s.inputs.len(), 2);
        let i = &s.inputs[0];
        assert_eq!(
            i.include,
            ["/var/log/nginx/*.log", "/var/log/nginx/**/*.log"]
        );
        assert_eq!(i.exclude, ["/var/log/nginx/*.gz"]);
        assert_eq!(i.topic, "weblogs");
        assert_eq!(i.start_at, StartAt::Beginning);
        assert_eq!(
            i.format,
            Format::Tail2Kafka {
                meta: b"web1".to_vec()
            }
        );
        assert_eq!(i.partition_by, PartitionBy::File);
        assert_eq!(i.max_line_bytes, 65536);
        assert_eq!(i.long_lines, LongLinePolicy::Split);
        assert!(i.strip_cr);
        assert_eq!(i.partial_flush, Some(Duration::from_secs(2)));
        let m = i.multiline.as_ref().unwrap();
        assert_eq!(m.start, r"^\d{4}-\d{2}-\d{2}");
        assert_eq!(m.timeout, Duration::from_millis(500));
        assert_eq!(m.max_bytes, 100_000);
        assert_eq!(s.inputs[1].include, ["/var/log/app.log"]);
        assert_eq!(s.inputs[1].topic, "app");
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logferry.toml");
        let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loaded.settings.inputs.is_empty());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_section() {
        let (msg, p) = err("[[inputs]]\ninclude = [\"/a\"]\ntopic = \"t\"\n\n[[inputs]]\ninclude = [\"/b\"]\ntopc = \"u\"\n");
        assert_eq!(p[0].line, Some(7));
        assert_eq!(p[0].column, Some(1));
        assert_eq!(p[0].key.as_deref(), Some("topc"));
        assert!(
            msg.starts_with("/etc/logferry.toml:7:1: unknown key \"topc\" in [[inputs]] (expected one of: include, exclude, topic,"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_sections_match_the_structs() {
        // Each key list must equal what serde expects, or sections would
        // be misnamed; an unknown key in each place proves it.
        for (src, section) in [
            ("bogus = 1\n", "the top level"),
            ("[kafka]\nbogus = 1\n", "[kafka]"),
            ("[checkpoint]\nbogus = 1\n", "[checkpoint]"),
            ("[[inputs]]\nbogus = 1\n", "[[inputs]]"),
            (
                "[[inputs]]\n[inputs.multiline]\nbogus = 1\n",
                "[inputs.multiline]",
            ),
            (
                "inputs = [{ topic = \"t\", multiline = { bogus = 1 } }]\n",
                "[inputs.multiline]",
            ),
        ] {
            let (msg, p) = err(src);
            assert!(
                msg.contains(&format!("unknown key \"bogus\" in {section} (")),
                "{src:?}: {msg}"
            );
            assert_eq!(p[0].key.as_deref(), Some("bogus"));
        }
    }

    #[test]
    fn static_headers_are_read_and_lf_is_reserved() {
        let s = ok("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.headers]\ndc = \"fra1\"\nteam = \"web\"\n")
            .settings;
        assert_eq!(
            s.inputs[0].headers,
            [("dc".into(), "fra1".into()), ("team".into(), "web".into())]
        );
        let (msg, p) =
            err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.headers]\nlf = \"x\"\n");
        assert_eq!(p[0].key.as_deref(), Some("headers"));
        assert!(
            msg.contains("header name \"lf\" is reserved for the source attribution"),
            "{msg}"
        );
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let (msg, p) =
            err("[[inputs]]\ninclude = [\"/a\"]\ntopic = \"t\"\nstart_at = \"middle\"\n");
        assert_eq!(p[0].line, Some(4));
        assert_eq!(p[0].column, Some(12));
        assert_eq!(p[0].key.as_deref(), Some("start_at"));
        assert!(msg.starts_with("/etc/logferry.toml:4:12: bad value for \"start_at\" in [[inputs]]: unknown variant `middle`, expected `end` or `beginning`"), "{msg}");

        let (msg, p) =
            err("scan_interval = \"5 fortnights\"\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
        assert_eq!(p[0].key.as_deref(), Some("scan_interval"));
        assert!(
            msg.contains(":1:17: bad value for \"scan_interval\""),
            "{msg}"
        );

        let (msg, p) =
            err("[kafka]\nmax_inflight_bytes = -5\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
        assert_eq!(p[0].key.as_deref(), Some("max_inflight_bytes"));
        assert!(msg.contains(":2:22: bad value for \"max_inflight_bytes\" in [kafka]: a size must not be negative"), "{msg}");

        let (msg, _) = err("[inputs]\ninclude = \"/a\"\n");
        assert!(msg.contains("[[inputs]]"), "{msg}");
    }

    #[test]
    fn sizes_and_intervals_must_be_positive() {
        let (msg, p) = err("max_open_files = 0\nscan_interval = 0\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nmax_line_bytes = 0\n[kafka]\nmax_inflight_bytes = \"1KiB\"\n");
        let keys: Vec<_> = p.iter().map(|p| p.key.clone().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "max_open_files",
                "scan_interval",
                "max_line_bytes",
                "max_inflight_bytes"
            ],
            "{msg}"
        );
        assert!(
            msg.contains(":6:18: \"max_line_bytes\" in [[inputs]] #1 must be above zero, got 0"),
            "{msg}"
        );
    }

    #[test]
    fn bad_regex_is_named() {
        let (msg, p) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.multiline]\nstart = \"(unclosed\"\n");
        assert_eq!(p[0].key.as_deref(), Some("start"));
        assert_eq!(p[0].line, Some(5));
        assert!(
            msg.contains("bad regex \"(unclosed\": unclosed group"),
            "{msg}"
        );
    }

    #[test]
    fn relative_glob_is_rejected() {
        let (msg, p) =
            err("[[inputs]]\ninclude = [\"/ok/*.log\", \"logs/*.log\"]\ntopic = \"t\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key.as_deref(), Some("include"));
        assert!(
            msg.contains(":2:25: \"include\" in [[inputs]] #1: \"logs/*.log\" is relative"),
            "{msg}"
        );
        let (msg, _) =
            err("[[inputs]]\ninclude = \"/a/*.log\"\nexclude = \"*.gz\"\ntopic = \"t\"\n");
        assert!(
            msg.contains(":3:11: \"exclude\" in [[inputs]] #1: \"*.gz\" is relative"),
            "{msg}"
        );
        let (msg, _) = err("[[inputs]]\ninclude = \"/a/[.log\"\ntopic = \"t\"\n");
        assert!(msg.contains("invalid glob"), "{msg}");
    }

    #[test]
    fn missing_and_empty_values() {
        let (msg, _) = err("host = \"h\"\n");
        assert!(msg.contains("no [[inputs]]"), "{msg}");
        let (msg, p) = err("[[inputs]]\ninclude = \"/a\"\n");
        assert_eq!(p[0].key.as_deref(), Some("topic"));
        assert!(
            msg.contains(":1:1: [[inputs]] #1 has no \"topic\""),
            "{msg}"
        );
        let (msg, _) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"\"\n");
        assert!(
            msg.contains("\"topic\" in [[inputs]] #1: must not be empty"),
            "{msg}"
        );
        let (msg, _) = err("[kafka]\nbrokers = []\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
        assert!(
            msg.contains(":2:11: \"brokers\" in [kafka] must not be empty"),
            "{msg}"
        );
        let (msg, _) =
            err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nformat = \"tail2kafka\"\n");
        assert!(msg.contains("needs \"metadata\""), "{msg}");
        let (msg, _) = err(
            "[checkpoint]\ndirectory = \"state\"\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n",
        );
        assert!(msg.contains("must be an absolute path"), "{msg}");
    }

    #[test]
    fn brokers_forms() {
        let b = |v: &str| {
            ok(&format!("[kafka]\nbrokers = {v}\n{MINIMAL}"))
                .settings
                .brokers
        };
        assert_eq!(b("\"embedded\""), Brokers::Embedded);
        assert_eq!(b("\"a:1, b:2\""), Brokers::List("a:1,b:2".into()));
        assert_eq!(b("[\"a:1\"]"), Brokers::List("a:1".into()));
        let (msg, _) = err(&format!("[kafka]\nbrokers = [\"a:1\", \"a:1\"]\n{MINIMAL}"));
        assert!(msg.contains("broker \"a:1\" is listed twice"), "{msg}");
        let (msg, _) = err(&format!("[kafka]\nbrokers = \"a:x\"\n{MINIMAL}"));
        assert!(msg.contains("bad port \"x\""), "{msg}");
    }

    #[test]
    fn duplicates_are_flagged() {
        let (msg, p) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[[inputs]]\ninclude = [\"/b\", \"/a\"]\ntopic = \"u\"\n");
        assert_eq!(p[0].line, Some(5));
        assert!(
            msg.contains("\"/a\" is also included by [[inputs]] #1 (line 2)"),
            "{msg}"
        );
        let (msg, _) = err("[[inputs]]\ninclude = [\"/a\", \"/a\"]\ntopic = \"t\"\n");
        assert!(msg.contains("is listed twice (first on line 2)"), "{msg}");
        let (msg, p) = err(&format!(
            "[kafka.properties]\n\"linger.ms\" = 5\nlinger.ms = 6\n{MINIMAL}"
        ));
        assert!(msg.contains("\"linger.ms\" is set twice"), "{msg}");
        assert_eq!(p[0].line, Some(3));
        let (msg, _) = err(&format!(
            "[kafka.properties]\n\"linger.ms\" = 5\n\"queue.buffering.max.ms\" = 6\n{MINIMAL}"
        ));
        assert!(
            msg.contains(
                "\"linger.ms\" and \"queue.buffering.max.ms\" are the same librdkafka property"
            ),
            "{msg}"
        );
        let (msg, _) = err("host = \"a\"\nhost = \"b\"\n");
        assert!(msg.contains(":2:1: duplicate key \"host\""), "{msg}");
    }

    #[test]
    fn idempotence_with_weak_acks_is_rejected_naming_both_keys() {
        let (msg, p) = err(&format!("[kafka.properties]\nacks = 1\n{MINIMAL}"));
        assert_eq!(p[0].key.as_deref(), Some("acks"));
        assert_eq!(p[0].line, Some(2));
        assert!(
            msg.contains("\"enable.idempotence\" = \"true\" (logferry's default) conflicts with \"acks\" = \"1\""),
            "{msg}"
        );
        let (msg, _) = err(&format!("[kafka.properties]\n\"enable.idempotence\" = true\n\"request.required.acks\" = \"0\"\n{MINIMAL}"));
        assert!(msg.contains("\"enable.idempotence\" = \"true\" conflicts with \"request.required.acks\" = \"0\""), "{msg}");
        // Turning idempotence off makes acks=1 legal, with a warning.
        let l = ok(&format!(
            "[kafka.properties]\nenable.idempotence = false\nacks = 1\n{MINIMAL}"
        ));
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].message.contains("no-loss promise"));
        let (msg, _) = err(&format!(
            "[kafka.properties]\nmax.in.flight.requests.per.connection = 10\n{MINIMAL}"
        ));
        assert!(msg.contains("idempotence allows at most 5"), "{msg}");
        let (msg, _) = err(&format!(
            "[kafka.properties]\n\"bootstrap.servers\" = \"x:1\"\n{MINIMAL}"
        ));
        assert!(msg.contains("set \"brokers\" in [kafka] instead"), "{msg}");
    }

    #[test]
    fn librdkafka_checks_each_property() {
        let (msg, p) = err(&format!(
            "[kafka.properties]\n\"linger.msx\" = 5\n{MINIMAL}"
        ));
        assert_eq!(p[0].key.as_deref(), Some("linger.msx"));
        assert_eq!(p[0].line, Some(2));
        assert!(
            msg.contains("kafka.properties \"linger.msx\": No such configuration property"),
            "{msg}"
        );
        let (msg, _) = err(&format!(
            "[kafka.properties]\n\"compression.type\" = \"brotli\"\n{MINIMAL}"
        ));
        assert!(msg.contains("\"compression.type\""), "{msg}");
    }

    #[test]
    fn secrets_are_hidden_in_check_output() {
        let l = ok(&format!(
            "[kafka.properties]\nsecurity.protocol = \"SASL_SSL\"\nsasl.mechanisms = \"PLAIN\"\nsasl.username = \"ferry\"\nsasl.password = \"hunter2\"\n\"ssl.key.password\" = \"kp-secret\"\n\"ssl.key.pem\" = \"-----BEGIN PRIVATE KEY-----abc\"\n{MINIMAL}"
        ));
        let out = summary(Path::new("/etc/logferry.toml"), &l);
        for secret in ["hunter2", "kp-secret", "BEGIN PRIVATE KEY"] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
        assert!(out.contains("sasl.password = ***"), "{out}");
        assert!(out.contains("ssl.key.password = ***"), "{out}");
        assert!(out.contains("ssl.key.pem = ***"), "{out}");
        assert!(out.contains("sasl.username = ferry"), "{out}");
        assert!(out.contains("acks = all  (default)"), "{out}");
        assert!(out.contains("topics: app"), "{out}");
        for k in [
            "sasl.jaas.config",
            "sasl.oauthbearer.client.secret",
            "ssl.keystore.password",
            "ssl_key.pem",
        ] {
            assert!(is_secret(k), "{k}");
        }
        for k in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "acks",
        ] {
            assert!(!is_secret(k), "{k}");
        }
        // A bad secret value is not echoed by errors either.
        let (msg, _) = err(&format!(
            "[kafka.properties]\n\"ssl.key.password\" = [\"hunter2\"]\n{MINIMAL}"
        ));
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("12 parsecs").is_err());
    }
}
