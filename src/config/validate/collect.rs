//! The collector's validator: its file's `[kafka]`, `[collect]` and
//! `[metrics]` and its quick flags (turned into the same raw form by
//! `crate::cli`) pass here, so a value means the same in both and every
//! problem is reported at once: at line and column with key and section
//! for a file, at the flag for flags (the reason alone: the flag names
//! itself).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Origin;
use crate::config::collect::*;
use crate::config::error::Issue;
use crate::config::raw::{flatten, items, RawDuration, RawKafka};

/// Problems found, phrased for where the configuration came from.
struct Checks<'a> {
    origin: Origin,
    issues: &'a mut Vec<Issue>,
}

impl Checks<'_> {
    /// `"key" in section reason` in a file; `reason` for a flag.
    fn bad(&mut self, span: Option<Range<usize>>, key: &str, section: &str, reason: &str) {
        let message = match self.origin {
            Origin::File => format!("\"{key}\" in {section} {reason}"),
            Origin::Flags => reason.to_string(),
        };
        self.issues.push(Issue {
            span,
            key: Some(key.to_string()),
            message,
        });
    }

    /// A message that already names what it is about.
    fn said(&mut self, span: Option<Range<usize>>, key: &str, message: String) {
        self.issues.push(Issue {
            span,
            key: Some(key.to_string()),
            message,
        });
    }

    fn positive(
        &mut self,
        v: Option<Spanned<RawDuration>>,
        key: &str,
        section: &str,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(d) if d.get_ref().0.is_zero() => {
                self.bad(Some(d.span()), key, section, "must be more than 0");
                default
            }
            Some(d) => d.get_ref().0,
        }
    }
}

/// Check `raw`; the settings it makes (defaults where a value was bad:
/// only meaningful when no issue was added).
pub(crate) fn validate(
    raw: RawCollectFile,
    origin: Origin,
    issues: &mut Vec<Issue>,
) -> CollectSettings {
    let mut c = Checks { origin, issues };
    let (brokers, kafka_props) = kafka_section(raw.kafka, &mut c);
    let metrics = metrics_section(raw.metrics, &mut c);
    let Some(section) = raw.collect else {
        c.said(
            None,
            "collect",
            "a [collect] section is required (topics, out)".into(),
        );
        return empty_settings(brokers, kafka_props);
    };
    let span = section.span();
    let raw = section.into_inner();
    let topics: Vec<String> = match &raw.topics {
        Some(t) => items(t).into_iter().map(|(s, _)| s).collect(),
        None => Vec::new(),
    };
    if topics.is_empty() || topics.iter().any(String::is_empty) {
        let sp = raw.topics.as_ref().map_or(span.clone(), |t| t.span());
        let reason = match origin {
            Origin::File => "must name at least one topic, none empty",
            Origin::Flags => "collect needs a topic (--topic TOPIC, repeatable, none empty) or a configuration file (-c FILE)",
        };
        c.bad(Some(sp), "topics", "[collect]", reason);
    }
    let out = match raw.out {
        Some(o) if !o.get_ref().is_empty() => PathBuf::from(o.into_inner()),
        _ => {
            let msg = match origin {
                Origin::File => "\"out\" in [collect] (the output directory) is required",
                Origin::Flags => "the output directory is required",
            };
            c.said(Some(span.clone()), "out", msg.into());
            PathBuf::new()
        }
    };
    let group = match raw.group {
        Some(g) if g.get_ref().is_empty() => {
            c.bad(Some(g.span()), "group", "[collect]", "cannot be empty");
            String::new()
        }
        Some(g) => g.into_inner(),
        None => DEFAULT_GROUP.into(),
    };
    let retention = raw.retention_days.and_then(|d| {
        let days = *d.get_ref();
        if !days.is_finite() || days <= 0.0 {
            c.bad(
                Some(d.span()),
                "retention_days",
                "[collect]",
                &format!("must be a positive number of days, got {days}"),
            );
            None
        } else {
            Duration::try_from_secs_f64(days * 86400.0).ok()
        }
    });
    let max_hole = match raw.max_hole {
        Some(b) if b.get_ref().0 == 0 => {
            c.bad(
                Some(b.span()),
                "max_hole",
                "[collect]",
                "must be more than 0",
            );
            DEFAULT_MAX_HOLE
        }
        Some(b) => b.get_ref().0,
        None => DEFAULT_MAX_HOLE,
    };
    let retention_bytes = raw.retention_bytes.and_then(|b| {
        if b.get_ref().0 == 0 {
            c.bad(
                Some(b.span()),
                "retention_bytes",
                "[collect]",
                "must be more than 0",
            );
            None
        } else {
            Some(b.get_ref().0)
        }
    });
    let index_topic = match raw.index_topic {
        None => Some(DEFAULT_INDEX_TOPIC.to_string()),
        Some(t) => match t.get_ref() {
            RawIndexTopic::Off(false) => None,
            RawIndexTopic::Name(n) if !n.is_empty() => Some(n.clone()),
            _ => {
                c.bad(
                    Some(t.span()),
                    "index_topic",
                    "[collect]",
                    "must be a topic name or false (no shared index)",
                );
                None
            }
        },
    };
    let gap_timeout = c.positive(
        raw.gap_timeout,
        "gap_timeout",
        "[collect]",
        DEFAULT_GAP_TIMEOUT,
    );
    let commit_interval = c.positive(
        raw.commit_interval,
        "commit_interval",
        "[collect]",
        DEFAULT_COMMIT_INTERVAL,
    );
    let compress_after = c.positive(
        raw.compress_after,
        "compress_after",
        "[collect]",
        DEFAULT_COMPRESS_AFTER,
    );
    CollectSettings {
        index_topic,
        brokers,
        kafka_props,
        topics,
        group,
        out,
        gap_timeout,
        commit_interval,
        metadata: raw.metadata.map(|m| m.into_inner().into_bytes()),
        max_hole,
        archive: ArchiveSettings {
            compress_after,
            compress: raw.compress.unwrap_or(Compression::Zstd),
            retention,
            retention_bytes,
        },
        metrics,
    }
}

fn empty_settings(brokers: String, kafka_props: Vec<(String, String)>) -> CollectSettings {
    CollectSettings {
        brokers,
        kafka_props,
        topics: Vec::new(),
        group: DEFAULT_GROUP.into(),
        out: PathBuf::new(),
        gap_timeout: DEFAULT_GAP_TIMEOUT,
        commit_interval: DEFAULT_COMMIT_INTERVAL,
        metadata: None,
        max_hole: DEFAULT_MAX_HOLE,
        archive: ArchiveSettings::default(),
        metrics: None,
        index_topic: Some(DEFAULT_INDEX_TOPIC.into()),
    }
}

/// `[metrics]`: an address (required once the section is there) and a
/// stall bound.
fn metrics_section(
    m: Option<Spanned<RawCollectMetrics>>,
    c: &mut Checks<'_>,
) -> Option<CollectMetrics> {
    let m = m?;
    let span = m.span();
    let m = m.into_inner();
    let max_stall = c.positive(m.max_stall, "max_stall", "[metrics]", DEFAULT_MAX_STALL);
    let Some(listen) = m.listen else {
        c.bad(
            Some(span),
            "listen",
            "[metrics]",
            "must be given: the address to serve /metrics and /health on, e.g. \"127.0.0.1:9898\"",
        );
        return None;
    };
    match parse_listen(listen.get_ref()) {
        Ok(addr) => Some(CollectMetrics {
            listen: addr,
            max_stall,
        }),
        Err(why) => {
            // As ship's file says it: `"listen" in [metrics]: why`.
            let message = match c.origin {
                Origin::File => format!("\"listen\" in [metrics]: {why}"),
                Origin::Flags => why,
            };
            c.said(Some(listen.span()), "listen", message);
            None
        }
    }
}

/// `[kafka]`: brokers and consumer properties (secrets resolved); the
/// producer-only keys are refused, since they would do nothing here.
fn kafka_section(k: Option<RawKafka>, c: &mut Checks<'_>) -> (String, Vec<(String, String)>) {
    let Some(k) = k else {
        return (crate::config::DEFAULT_BROKERS.into(), Vec::new());
    };
    let ship_only = [
        (
            "max_inflight_bytes",
            k.max_inflight_bytes.as_ref().map(Spanned::span),
        ),
        (
            "shutdown_timeout",
            k.shutdown_timeout.as_ref().map(Spanned::span),
        ),
        ("exactly_once", k.exactly_once.as_ref().map(Spanned::span)),
        (
            "positions_topic",
            k.positions_topic.as_ref().map(Spanned::span),
        ),
        (
            "transaction_interval",
            k.transaction_interval.as_ref().map(Spanned::span),
        ),
        (
            "transactional_id",
            k.transactional_id.as_ref().map(Spanned::span),
        ),
    ];
    for (key, span) in ship_only {
        if let Some(span) = span {
            c.bad(
                Some(span),
                key,
                "[kafka]",
                "is a ship setting; the collector does not use it",
            );
        }
    }
    let brokers = match &k.brokers {
        Some(b) => {
            let list: Vec<String> = items(b).into_iter().map(|(s, _)| s).collect();
            if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) {
                c.bad(
                    Some(b.span()),
                    "brokers",
                    "[kafka]",
                    "must list at least one host:port",
                );
            }
            list.join(",")
        }
        None => crate::config::DEFAULT_BROKERS.into(),
    };
    let mut flat = Vec::new();
    if let Some(p) = &k.properties {
        flatten("", p.get_ref(), &mut flat, &mut |key, span, why| {
            c.said(
                Some(span),
                &key,
                format!("bad value for \"{key}\" in [kafka.properties]: {why}"),
            );
        });
    }
    let mut props = Vec::new();
    for (key, value, span) in flat {
        match crate::config::resolve_value(&value) {
            Ok(v) => {
                let bad = check_consumer_props(&[(key.clone(), v.clone())]);
                for (_, msg) in bad {
                    c.said(Some(span.clone()), &key, msg);
                }
                props.push((key, v));
            }
            Err(why) => {
                let message = match c.origin {
                    Origin::File => format!("\"{key}\" in [kafka.properties]: {why}"),
                    Origin::Flags => why,
                };
                c.said(Some(span), &key, message);
            }
        }
    }
    (brokers, props)
}
