//! The file as written: serde structs that reject unknown keys, with every
//! value a later check may complain about kept with its position.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::*;

// ---------------------------------------------------------------------------
// Raw file structure (serde)
// ---------------------------------------------------------------------------

// The key lists below name each section in "unknown key" messages; a unit
// test checks them against what serde reports.
pub(crate) const TOP_KEYS: &[&str] = &[
    "host",
    "scan_interval",
    "rotate_grace",
    "max_open_files",
    "attribution",
    "max_bytes_per_sec",
    "kafka",
    "checkpoint",
    "metrics",
    "inputs",
];
pub(crate) const KAFKA_KEYS: &[&str] = &[
    "brokers",
    "properties",
    "max_inflight_bytes",
    "shutdown_timeout",
    "exactly_once",
    "positions_topic",
    "transaction_interval",
    "transactional_id",
];
pub(crate) const CHECKPOINT_KEYS: &[&str] = &["directory", "interval"];
pub(crate) const METRICS_KEYS: &[&str] = &["listen", "max_stall", "top_files"];
pub(crate) const INPUT_KEYS: &[&str] = &[
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
    "pack_bytes",
    "partial_flush",
    "max_bytes_per_sec",
    "multiline",
    "rotated",
    "backfill",
];
pub(crate) const MULTILINE_KEYS: &[&str] = &["start", "timeout", "max_bytes"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) scan_interval: Option<Spanned<RawDuration>>,
    pub(crate) rotate_grace: Option<Spanned<RawDuration>>,
    pub(crate) max_open_files: Option<Spanned<i64>>,
    pub(crate) attribution: Option<Attribution>,
    pub(crate) max_bytes_per_sec: Option<Spanned<RawSize>>,
    pub(crate) kafka: Option<RawKafka>,
    pub(crate) checkpoint: Option<RawCheckpoint>,
    pub(crate) metrics: Option<RawMetrics>,
    pub(crate) inputs: Option<Vec<Spanned<RawInput>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKafka {
    pub(crate) brokers: Option<Spanned<StringList>>,
    pub(crate) properties: Option<Spanned<PropTable>>,
    pub(crate) max_inflight_bytes: Option<Spanned<RawSize>>,
    pub(crate) shutdown_timeout: Option<Spanned<RawDuration>>,
    // Exactly-once delivery (see `ExactlyOnceSettings`).
    pub(crate) exactly_once: Option<Spanned<bool>>,
    pub(crate) positions_topic: Option<Spanned<String>>,
    pub(crate) transaction_interval: Option<Spanned<RawDuration>>,
    pub(crate) transactional_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheckpoint {
    pub(crate) directory: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) max_stall: Option<Spanned<RawDuration>>,
    pub(crate) top_files: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInput {
    pub(crate) include: Option<Spanned<StringList>>,
    pub(crate) exclude: Option<Spanned<StringList>>,
    pub(crate) topic: Option<Spanned<String>>,
    pub(crate) start_at: Option<RawStartAt>,
    pub(crate) format: Option<Spanned<RawFormat>>,
    pub(crate) metadata: Option<Spanned<String>>,
    pub(crate) partition_by: Option<RawPartitionBy>,
    pub(crate) key_pattern: Option<Spanned<String>>,
    pub(crate) fields: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub(crate) headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub(crate) max_line_bytes: Option<Spanned<RawSize>>,
    pub(crate) long_lines: Option<RawLongLines>,
    pub(crate) strip_cr: Option<bool>,
    /// Whole lines read together as one record of up to this many bytes.
    pub(crate) pack_bytes: Option<Spanned<RawSize>>,
    pub(crate) partial_flush: Option<Spanned<RawDuration>>,
    pub(crate) max_bytes_per_sec: Option<Spanned<RawSize>>,
    pub(crate) multiline: Option<Spanned<RawMultiline>>,
    /// Where rotated files go besides `PATTERN.*` / `PATTERN-*`.
    pub(crate) rotated: Option<Spanned<StringList>>,
    pub(crate) backfill: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMultiline {
    pub(crate) start: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<RawDuration>>,
    pub(crate) max_bytes: Option<Spanned<RawSize>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawStartAt {
    End,
    Beginning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawFormat {
    Raw,
    Tail2kafka,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawPartitionBy {
    Generation,
    None,
    File,
    Host,
    Pattern,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawLongLines {
    Truncate,
    Split,
}

/// A duration: a number of seconds (`2`, `0.25`) or a string with a unit
/// (`"250ms"`, `"5s"`, `"2m"`, `"1h"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawDuration(pub(crate) Duration);

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

pub(crate) fn seconds(v: f64) -> Result<Duration, String> {
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
pub(crate) struct RawSize(pub(crate) u64);

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
pub(crate) struct StringList(pub(crate) Vec<Spanned<String>>);

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
pub(crate) fn items(list: &Spanned<StringList>) -> Vec<(String, Range<usize>)> {
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

/// `[kafka.properties]` as written: keys with their positions, values
/// that are scalars or (for unquoted dotted keys) nested tables.
#[derive(Debug, Default)]
pub(crate) struct PropTable(pub(crate) Vec<(Spanned<String>, PropValue)>);

#[derive(Debug)]
pub(crate) enum PropValue {
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
pub(crate) fn flatten(
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
