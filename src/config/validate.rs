//! The one validator: raw configuration in, settings holding built values
//! out, or every problem found.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::*;
use super::kafka::*;
use super::raw::*;
use super::*;

/// One `[[inputs]]` table.
pub(crate) mod collect;
mod input;

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Where the raw configuration came from, which decides how a problem is
/// said: a file's problems are placed at line and column and name the key
/// and its section; quick-mode flags' problems are placed at the flag
/// (see `super::quick`), so their messages are the reason alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    File,
    Flags,
}

pub(crate) struct Validator<'a> {
    /// The file's text (empty for flags).
    pub(crate) src: &'a str,
    pub(crate) origin: Origin,
    pub(crate) issues: Vec<Issue>,
    pub(crate) warnings: Vec<Issue>,
}

impl Validator<'_> {
    pub(crate) fn new(src: &str, origin: Origin) -> Validator<'_> {
        Validator {
            src,
            origin,
            issues: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A problem with `key` of `section`: `"key" in section: reason` in a
    /// file; the reason alone for a flag, which names itself.
    fn say(&self, key: &str, section: &str, reason: impl std::fmt::Display) -> String {
        match self.origin {
            Origin::File => format!("\"{key}\" in {section}: {reason}"),
            Origin::Flags => reason.to_string(),
        }
    }

    /// A problem with the librdkafka property `key`.
    fn say_prop(&self, key: &str, reason: impl std::fmt::Display) -> String {
        match self.origin {
            Origin::File => format!("kafka.properties \"{key}\": {reason}"),
            Origin::Flags => reason.to_string(),
        }
    }

    /// Where an earlier occurrence was, for "given twice" messages.
    fn first_at(&self, span: &Range<usize>) -> String {
        match self.origin {
            Origin::File => format!(" (first on line {})", self.line_of(span)),
            Origin::Flags => String::new(),
        }
    }

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
                let msg = self.say(key, section, "must be above zero");
                self.err(Some(s.span()), key, msg);
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
            let min = min.max(1);
            let msg = self.say(key, section, format!("must be at least {min}, got {n}"));
            self.err(Some(s.span()), key, msg);
            return default;
        }
        match usize::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                let msg = self.say(key, section, format!("is too large: {n}"));
                self.err(Some(s.span()), key, msg);
                default
            }
        }
    }

    /// A read rate limit in bytes per second; None: no limit.
    fn rate(&mut self, s: &Option<Spanned<RawSize>>, section: &str) -> Option<u64> {
        let s = s.as_ref()?;
        let n = s.get_ref().0;
        if n == 0 {
            let why = "must be at least 1 byte per second (omit it for no limit)";
            let msg = self.say("max_bytes_per_sec", section, why);
            self.err(Some(s.span()), "max_bytes_per_sec", msg);
            return None;
        }
        Some(n)
    }

    pub(crate) fn validate(&mut self, raw: RawConfig) -> Option<ShipSettings> {
        // --- top level
        let host = match raw.host {
            Some(h) if h.get_ref().trim().is_empty() => {
                let msg = self.say(
                    "host",
                    "the top level",
                    "must not be empty (omit it to use this machine's name)",
                );
                self.err(Some(h.span()), "host", msg);
                String::new()
            }
            Some(h) => h.into_inner(),
            None => super::host_name(),
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
        let max_bytes_per_sec = self.rate(&raw.max_bytes_per_sec, top);

        // --- [kafka]
        let kafka = raw.kafka.unwrap_or_default();
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
        let exactly_once = self.exactly_once(&kafka);
        let shutdown_timeout = kafka
            .shutdown_timeout
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.into_inner().0);

        // --- [checkpoint]
        let (checkpoint_dir, checkpoint_interval) = match raw.checkpoint {
            Some(c) => {
                let dir = match c.directory {
                    Some(d) if !Path::new(d.get_ref()).is_absolute() => {
                        let msg = self.say(
                            "directory",
                            "[checkpoint]",
                            format!("must be an absolute path, got \"{}\"", d.get_ref()),
                        );
                        self.err(Some(d.span()), "directory", msg);
                        PathBuf::new()
                    }
                    Some(d) => PathBuf::from(d.into_inner()),
                    None => super::default_checkpoint_dir(),
                };
                let interval = self.positive(
                    &c.interval,
                    "interval",
                    "[checkpoint]",
                    DEFAULT_CHECKPOINT_INTERVAL,
                );
                (dir, interval)
            }
            None => (super::default_checkpoint_dir(), DEFAULT_CHECKPOINT_INTERVAL),
        };

        let metrics = raw.metrics.and_then(|m| self.metrics(m));

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
            metrics,
            max_bytes_per_sec,
            exactly_once,
        })
    }

    /// `exactly_once` and its keys in `[kafka]`: None unless it is on (its
    /// keys are still checked, so a typo is not silently ignored).
    fn exactly_once(&mut self, kafka: &RawKafka) -> Option<ExactlyOnceSettings> {
        let positions_topic = match &kafka.positions_topic {
            Some(t) if t.get_ref().contains('{') || check_topic(t.get_ref()).is_err() => {
                let why = match check_topic(t.get_ref()) {
                    Err(why) => why,
                    Ok(()) => "a fixed topic name; templates are not allowed here".into(),
                };
                let msg = self.say("positions_topic", "[kafka]", why);
                self.err(Some(t.span()), "positions_topic", msg);
                String::new()
            }
            Some(t) => t.get_ref().clone(),
            None => ExactlyOnceSettings::DEFAULT_POSITIONS_TOPIC.to_string(),
        };
        let transaction_interval = self.positive(
            &kafka.transaction_interval,
            "transaction_interval",
            "[kafka]",
            ExactlyOnceSettings::DEFAULT_TRANSACTION_INTERVAL,
        );
        let transactional_id = match &kafka.transactional_id {
            Some(t) if t.get_ref().trim().is_empty() => {
                let msg = self.say("transactional_id", "[kafka]", "must not be empty");
                self.err(Some(t.span()), "transactional_id", msg);
                None
            }
            Some(t) => Some(t.get_ref().clone()),
            None => None,
        };
        let on = kafka.exactly_once.as_ref().is_some_and(|b| *b.get_ref());
        on.then_some(ExactlyOnceSettings {
            positions_topic,
            transaction_interval,
            transactional_id,
        })
    }

    /// `[metrics]`: an address to listen on (an IP, so nothing is resolved
    /// at start), a stall bound, the size of the per-file view.
    fn metrics(&mut self, m: RawMetrics) -> Option<MetricsSettings> {
        const SECTION: &str = "[metrics]";
        let max_stall = self.positive(
            &m.max_stall,
            "max_stall",
            SECTION,
            MetricsSettings::DEFAULT_MAX_STALL,
        );
        let top_files = match m.top_files {
            Some(n) if *n.get_ref() < 0 => {
                let msg = self.say(
                    "top_files",
                    SECTION,
                    format!("must be 0 or more, got {}", n.get_ref()),
                );
                self.err(Some(n.span()), "top_files", msg);
                0
            }
            Some(n) => usize::try_from(*n.get_ref()).unwrap_or(usize::MAX),
            None => MetricsSettings::DEFAULT_TOP_FILES,
        };
        let Some(listen) = m.listen else {
            let msg = self.say(
                "listen",
                SECTION,
                "must be given: the address to serve /metrics and /health on, e.g. \"127.0.0.1:9898\"",
            );
            self.err(None, "listen", msg);
            return None;
        };
        match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(MetricsSettings {
                listen: addr,
                max_stall,
                top_files,
            }),
            Err(_) => {
                let msg = self.say(
                    "listen",
                    SECTION,
                    format!(
                        "must be IP:PORT, e.g. \"127.0.0.1:9898\" or \"[::]:9898\", got \"{}\"",
                        listen.get_ref()
                    ),
                );
                self.err(Some(listen.span()), "listen", msg);
                None
            }
        }
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
        let k = "[kafka]";
        if entries.iter().all(|(e, _)| e.is_empty()) {
            let msg = self.say("brokers", k, "must not be empty");
            self.err(Some(raw.span()), "brokers", msg);
            return Brokers::Embedded;
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for (e, span) in &entries {
            let why = if e.is_empty() {
                Some("has an empty entry".to_string())
            } else if e == "embedded" {
                Some("\"embedded\" must stand alone (brokers = \"embedded\")".to_string())
            } else if e.contains(char::is_whitespace) {
                Some(format!("broker \"{e}\" contains a space"))
            } else if let Some(port) = e.rsplit_once(':').map(|(_, p)| p) {
                (port.parse::<u16>().map_or(true, |p| p == 0) && !e.ends_with(']'))
                    .then(|| format!("broker \"{e}\": bad port \"{port}\""))
            } else {
                None
            };
            if let Some(why) = why {
                let msg = self.say("brokers", k, why);
                self.err(Some(span.clone()), "brokers", msg);
            }
            if !e.is_empty() {
                if let Some(first) = seen.insert(e.clone(), span.clone()) {
                    let msg = self.say(
                        "brokers",
                        k,
                        format!("broker \"{e}\" is listed twice{}", self.first_at(&first)),
                    );
                    self.err(Some(span.clone()), "brokers", msg);
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
        let mut nested = Vec::new();
        flatten("", table.get_ref(), &mut flat, &mut |key, span, why| {
            nested.push((key, span, why.to_string()))
        });
        for (key, span, why) in nested {
            let msg = self.say_prop(&key, why);
            self.err(Some(span), &key, msg);
        }
        flat.sort_by_key(|e| e.2.start);
        // `${env:NAME}` and `${file:/path}` are replaced by what they name.
        for (k, v, span) in &mut flat {
            match crate::config::resolve_value(v) {
                Ok(resolved) => *v = resolved,
                Err(why) => {
                    let msg = self.say_prop(k, why);
                    self.err(Some(span.clone()), k, msg);
                }
            }
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for (k, v, span) in &flat {
            if let Some(prev) = seen.insert(k.clone(), span.clone()) {
                let msg = self.say_prop(k, format!("is set twice{}", self.first_at(&prev)));
                self.err(Some(span.clone()), k, msg);
            }
            if k == "bootstrap.servers" || k == "metadata.broker.list" {
                let instead = match self.origin {
                    Origin::File => "set \"brokers\" in [kafka] instead",
                    Origin::Flags => "give --brokers instead",
                };
                let msg = self.say_prop(k, instead);
                self.err(Some(span.clone()), k, msg);
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
                let msg = self.say_prop(k, why);
                self.err(Some(span.clone()), k, msg);
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
}

/// The last line of a regex error is the reason (the lines above draw the
/// pattern with a caret).
pub(crate) fn regex_error(e: &regex::Error) -> String {
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
pub(crate) fn check_topic(t: &str) -> Result<(), String> {
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
