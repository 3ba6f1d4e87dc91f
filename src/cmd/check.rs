//! `logferry check`: validate a configuration file, print what it means,
//! and with `--connect` ask the brokers whether they answer and the topics
//! exist.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::report_config_error;
use crate::cli::CheckArgs;
use crate::config::{
    self, shown_value, Brokers, LoadedConfig, PartitionBy, ShipSettings, StartAt,
    DEFAULT_PRODUCER_PROPS,
};
use crate::wire::Format;
use logferry_tail::LongLinePolicy;

/// `logferry check`: 0 valid, 2 invalid, 1 when `--connect` finds a broker
/// that does not answer or a topic that does not exist.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        eprintln!(
            "logferry: --timeout must be a positive number of seconds, got {}",
            args.timeout
        );
        return Ok(ExitCode::from(2));
    }
    if is_collector_file(&args.config) {
        return check_collector(&args);
    }
    let loaded = match config::load(&args.config) {
        Ok(l) => l,
        Err(e) => {
            report_config_error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    print!("{}", summary(&args.config, &loaded));
    if args.connect {
        let timeout = Duration::from_secs_f64(args.timeout);
        match connect_check(&loaded.settings, timeout) {
            Ok(report) => {
                for line in &report.lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("logferry: {line}");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A file with a `[collect]` table is the collector's (`logferry collect
/// -c`); anything else, unreadable files included, is checked as ship's,
/// whose loader names the problem.
fn is_collector_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("collect"))
}

/// `check` of a collector's file: validated by the collector's own loader
/// (as `collect -c` would), and summarised. `--connect` is ship's only.
fn check_collector(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = match config::collect::load_collect(&args.config) {
        Ok(s) => s,
        Err(e) => {
            report_config_error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    print!("{}", collect_summary(&args.config, &settings));
    if args.connect {
        eprintln!(
            "logferry: --connect checks an agent's file; the collector connects when it starts"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `check` prints for a collector's file.
pub fn collect_summary(path: &Path, s: &config::collect::CollectSettings) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: valid (a collector's file: logferry collect -c)",
        path.display()
    );
    let _ = writeln!(
        o,
        "brokers: {}",
        s.brokers.split(',').collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(o, "topics: {}", s.topics.join(", "));
    let _ = writeln!(o, "group: {}", s.group);
    let _ = writeln!(o, "out: {}", s.out.display());
    let _ = writeln!(
        o,
        "gap_timeout {}, commit_interval {}, max_hole {}",
        fmt_duration(s.gap_timeout),
        fmt_duration(s.commit_interval),
        fmt_size(s.max_hole)
    );
    let a = &s.archive;
    let _ = writeln!(
        o,
        "archive: compress {} after {}, retention {}, retention_bytes {}",
        match a.compress {
            config::collect::Compression::Zstd => "zstd",
            config::collect::Compression::Gzip => "gzip",
            config::collect::Compression::None => "none",
        },
        fmt_duration(a.compress_after),
        a.retention.map_or("none".to_string(), fmt_duration),
        a.retention_bytes.map_or("none".to_string(), fmt_size)
    );
    let _ = match &s.metrics {
        Some(m) => writeln!(
            o,
            "metrics: /metrics and /health on {}, max_stall {}",
            m.listen,
            fmt_duration(m.max_stall)
        ),
        None => writeln!(o, "metrics: off (no [metrics] listen)"),
    };
    let _ = writeln!(o, "consumer properties:");
    for (k, v) in s.consumer_props() {
        let _ = writeln!(o, "  {k} = {}", shown_value(&k, &v));
    }
    o
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
        fmt_size(s.max_inflight_bytes as u64),
        s.max_open_files,
        fmt_duration(s.scan_interval),
        fmt_duration(s.rotate_grace),
        fmt_duration(s.shutdown_timeout),
        s.attribution.as_str()
    );
    let _ = writeln!(
        o,
        "read rate: {}",
        s.max_bytes_per_sec
            .map_or("no limit".to_string(), |r| format!(
                "{} per second",
                fmt_size(r)
            ))
    );
    let _ = match &s.metrics {
        Some(m) => writeln!(
            o,
            "metrics: /metrics and /health on {}, max_stall {}, top_files {}",
            m.listen,
            fmt_duration(m.max_stall),
            m.top_files
        ),
        None => writeln!(o, "metrics: off (no [metrics] listen)"),
    };
    let _ = writeln!(o, "inputs: {}", s.inputs.len());
    for (n, i) in s.inputs.iter().enumerate() {
        let _ = writeln!(o, "  #{} -> topic {}", n + 1, i.topic);
        for g in &i.include {
            let _ = writeln!(o, "     include {g}");
        }
        for g in &i.exclude {
            let _ = writeln!(o, "     exclude {g}");
        }
        for g in &i.rotated {
            let _ = writeln!(o, "     rotated {g}");
        }
        if i.backfill {
            let _ = writeln!(o, "     backfill: rotated files already there are shipped");
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
                PartitionBy::Generation => "generation".to_string(),
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
        if i.pack_bytes > 0 {
            let _ = writeln!(
                o,
                "     lines read together packed into records of up to {}",
                fmt_size(i.pack_bytes as u64)
            );
        }
        if let Some(r) = i.max_bytes_per_sec {
            let _ = writeln!(o, "     read at most {} per second", fmt_size(r));
        }
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
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// A size in the unit it was most likely written in: MiB/KiB when a
/// multiple of them, MB/kB when a multiple of those, else bytes.
fn fmt_size(n: u64) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{}GiB", n >> 30)
    } else if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{}KiB", n >> 10)
    } else if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}MB", n / 1_000_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}kB", n / 1000)
    } else {
        format!("{n} bytes")
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
    let (mut topics, notes) = topics_to_check(settings);
    lines.extend(notes);
    if let Some(eo) = &settings.exactly_once {
        topics.push(eo.positions_topic.clone());
    }
    for t in &topics {
        let t = t.as_str();
        match metadata.topics().iter().find(|mt| mt.name() == t) {
            None if settings
                .exactly_once
                .as_ref()
                .is_some_and(|eo| eo.positions_topic == t) =>
            {
                missing.push(
                    crate::ship::positions::PositionsError::Missing {
                        topic: t.to_string(),
                    }
                    .to_string(),
                )
            }
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

/// The topics the inputs ship to, rendered for this host: a template over
/// the file (`{file_name}`, `{file_stem}`, `{dir}`) once per file its
/// include globs match now. An input whose topic depends on a file none of
/// which exists yet cannot be checked: said in a note, not called missing.
fn topics_to_check(settings: &ShipSettings) -> (Vec<String>, Vec<String>) {
    let mut topics = std::collections::BTreeSet::new();
    let mut notes = Vec::new();
    for (n, input) in settings.inputs.iter().enumerate() {
        if !input.topic_depends_on_file() {
            // The path plays no part: any will do.
            topics.insert(input.topic_for(&settings.host, Path::new("/")));
            continue;
        }
        let files = match logferry_tail::Discovery::new(&input.include, &input.exclude) {
            Ok(mut d) => d.scan(),
            // Validated at load; a failure here has nothing to check.
            Err(_) => Vec::new(),
        };
        if files.is_empty() {
            notes.push(format!(
                "topic {} (input #{}): depends on the file name; cannot be checked before a file matching {} exists",
                input.topic,
                n + 1,
                input.include.join(", ")
            ));
        }
        for f in files {
            topics.insert(input.topic_for(&settings.host, &f.path));
        }
    }
    (topics.into_iter().collect(), notes)
}
