//! Command-line arguments as typed, kept apart from the validated
//! [`ShipSettings`] built from them. The quick-mode flags are tail2kafka's
//! own (`-l -t -s -p -m -b -w`), so an old command line keeps working.
//! A configuration file (`-c FILE`, see [`crate::config`]) takes their
//! place for more than one file; the two are exclusive.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use logferry_tail::LongLinePolicy;

use crate::config::{
    self, Attribution, Brokers, InputSettings, PartitionBy, ShipSettings, StartAt,
};

use crate::wire::Format;

#[derive(Debug, Parser)]
#[command(
    name = "logferry",
    version,
    about = "Ships log files into Apache Kafka without losing a line"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow log files and ship every line to Kafka: the files of a
    /// configuration file (-c FILE), or one file given by flags (-l -t).
    Ship(Box<ShipArgs>),
    /// Validate a configuration file and print what it would ship (exit 0
    /// valid, 2 invalid); with --connect also ask the brokers (exit 1 when
    /// a broker does not answer or a topic is missing).
    Check(CheckArgs),
    /// Try logferry with nothing installed: write a sample log, ship it to
    /// an embedded in-memory broker, read it back and print what arrived.
    Demo(DemoArgs),
    /// Read a topic back and audit it against source files, using each
    /// record's source attribution: lines missing, duplicated, out of order.
    /// Exit 0 when nothing is missing, 1 otherwise.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Topic to read back.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: String,

    /// Bootstrap brokers `h1:p1,h2:p2`.
    #[arg(long, value_name = "LIST", default_value = "localhost:9092")]
    pub brokers: String,

    /// Source files to audit (current and rotated names), repeatable.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Host name the records were shipped with [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Metadata prefix the records were shipped with (`-m`).
    #[arg(short = 'm', long, value_name = "META")]
    pub metadata: Option<String>,

    /// --max-line-bytes the records were shipped with.
    #[arg(long, value_name = "BYTES", default_value_t = ShipSettings::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,

    /// librdkafka property `key=value` for the consumer (TLS, SASL).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// Bound on reading the topic to its end, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,

    /// The agent's checkpoint directory: files that vanished before the
    /// agent read them to the end are recorded there, and count as missing.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
}

impl VerifyArgs {
    pub fn into_settings(self) -> crate::verify::VerifySettings {
        crate::verify::VerifySettings {
            brokers: self.brokers,
            topic: self.topic,
            files: self.files,
            host: self.host.unwrap_or_else(config::host_name),
            format: match self.metadata {
                Some(m) => Format::Tail2Kafka {
                    meta: m.into_bytes(),
                },
                None => Format::Raw,
            },
            max_line_bytes: self.max_line_bytes.max(1),
            long_lines: LongLinePolicy::Truncate,
            timeout: Duration::from_secs(self.timeout),
            kafka_props: self.properties,
            checkpoint_dir: self.checkpoint_dir,
        }
    }
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Configuration file (TOML; see examples/logferry.toml). Used instead
    /// of the flags below; $LOGFERRY_CONFIG when neither -c nor --file is
    /// given.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with_all = QUICK_MODE_ARGS
    )]
    pub config: Option<PathBuf>,

    /// Log file to follow (tail2kafka -l). Absolute or relative path.
    #[arg(short = 'l', long = "file", value_name = "FILE", requires = "topic")]
    pub file: Option<PathBuf>,

    /// Kafka topic (tail2kafka -t). Must exist: logferry never creates topics.
    #[arg(short = 't', long, value_name = "TOPIC", requires = "file")]
    pub topic: Option<String>,

    /// Broker host (tail2kafka -s); with -p forms the bootstrap address.
    #[arg(
        short = 's',
        long = "host-broker",
        value_name = "HOST",
        conflicts_with = "brokers"
    )]
    pub broker_host: Option<String>,

    /// Broker port (tail2kafka -p).
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        requires = "broker_host"
    )]
    pub broker_port: Option<u16>,

    /// Bootstrap brokers `h1:p1,h2:p2`, or `embedded` for an in-process
    /// broker (for trying logferry out only).
    #[arg(long, value_name = "LIST")]
    pub brokers: Option<String>,

    /// Metadata prefix: each record becomes `META::line` (tail2kafka -m).
    #[arg(short = 'm', long, value_name = "META")]
    pub metadata: Option<String>,

    /// Most messages per batch (tail2kafka -b; librdkafka batch.num.messages).
    #[arg(short = 'b', long, value_name = "N")]
    pub batch_size: Option<u32>,

    /// Longest wait before a batch is sent, in seconds, fractions allowed
    /// (tail2kafka -w; librdkafka linger.ms).
    #[arg(short = 'w', long, value_name = "SECS")]
    pub batch_time: Option<f64>,

    /// Static record header `name=value` added to every record, as with
    /// kcat; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// librdkafka property `key=value`, as with kcat; repeatable; overrides
    /// logferry's defaults.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// Ship what the file already holds instead of starting at its end
    /// (only for a file with no checkpoint).
    #[arg(long)]
    pub from_beginning: bool,

    /// Directory for checkpoints [default: /var/lib/logferry as root, else
    /// ~/.local/state/logferry; or $LOGFERRY_STATE_DIR].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Key records by host and file so one file's lines stay in one
    /// partition, in order.
    #[arg(long, value_name = "none|file|host", default_value = "none", value_parser = parse_partition_by)]
    pub partition_by: PartitionBy,

    /// Bound on unacknowledged records in bytes; reading pauses at it.
    #[arg(long, value_name = "BYTES", default_value_t = ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES)]
    pub max_inflight_bytes: usize,

    /// Longest line shipped whole; longer ones follow --long-lines.
    #[arg(long, value_name = "BYTES", default_value_t = ShipSettings::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,

    /// Policy for lines over --max-line-bytes.
    #[arg(long, value_name = "truncate|split", default_value = "truncate", value_parser = parse_long_lines)]
    pub long_lines: LongLinePolicy,

    /// Where the source attribution (host, path, file identity, offset)
    /// goes: in the record key (logferry then picks the partition), in an
    /// `lf` record header, or nowhere.
    #[arg(long, value_enum, value_name = "key|header|off", default_value = "key")]
    pub attribution: Attribution,

    /// The same as `--attribution off` (kept for scripts written against
    /// earlier versions).
    #[arg(long, hide = true)]
    pub no_source_header: bool,

    /// Host name carried in the source attribution [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Seconds to wait for in-flight records at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    pub shutdown_timeout: f64,
}

/// The flags that describe what to ship without a configuration file.
const QUICK_MODE_ARGS: [&str; 20] = [
    "file",
    "topic",
    "broker_host",
    "broker_port",
    "brokers",
    "metadata",
    "batch_size",
    "batch_time",
    "properties",
    "headers",
    "from_beginning",
    "checkpoint_dir",
    "partition_by",
    "max_inflight_bytes",
    "max_line_bytes",
    "long_lines",
    "attribution",
    "no_source_header",
    "host",
    "shutdown_timeout",
];

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file to check.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = crate::config::CONFIG_ENV
    )]
    pub config: PathBuf,

    /// Also connect: every bootstrap broker must answer a metadata request
    /// and every configured topic must exist (exit 1 otherwise).
    #[arg(long)]
    pub connect: bool,

    /// Seconds to wait for each broker with --connect.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        requires = "connect"
    )]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many sample lines to write (a rotation happens half way).
    #[arg(long, default_value_t = 20)]
    pub lines: u32,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    crate::wire::check_static_header(name)?;
    Ok((name.to_string(), value.to_string()))
}

fn parse_partition_by(s: &str) -> Result<PartitionBy, String> {
    match s {
        "none" => Ok(PartitionBy::None),
        "file" => Ok(PartitionBy::File),
        "host" => Ok(PartitionBy::Host),
        _ => Err(format!("expected none, file or host, got {s:?}")),
    }
}

fn parse_long_lines(s: &str) -> Result<LongLinePolicy, String> {
    match s {
        "truncate" => Ok(LongLinePolicy::Truncate),
        "split" => Ok(LongLinePolicy::Split),
        _ => Err(format!("expected truncate or split, got {s:?}")),
    }
}

/// A command-line value that parsed but does not make sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgError {
    #[error("-X {0}: {1}")]
    Property(String, String),
    #[error("--batch-time (-w) must be a non-negative number of seconds, got {0}")]
    BatchTime(f64),
    #[error("--batch-size (-b) must be at least 1")]
    BatchSize,
    #[error("--topic (-t) must not be empty")]
    Topic,
    #[error("--max-inflight-bytes must be at least 64 KiB, got {0}")]
    Inflight(usize),
    #[error("--shutdown-timeout must be a non-negative number of seconds, got {0}")]
    ShutdownTimeout(f64),
    #[error("--file {0:?}: cannot make the path absolute: {1}")]
    Path(PathBuf, String),
    #[error("ship needs a configuration file (-c FILE, or $LOGFERRY_CONFIG) or a file and a topic (-l FILE -t TOPIC); see `logferry ship --help`")]
    NoInput,
}

impl ShipArgs {
    /// The configuration file to ship from: `-c`, else `env_config` (the
    /// value of $LOGFERRY_CONFIG) unless quick-mode `--file` was given.
    /// None: quick mode ([`Self::into_settings`]).
    pub fn config_path(&self, env_config: Option<std::ffi::OsString>) -> Option<PathBuf> {
        if let Some(c) = &self.config {
            return Some(c.clone());
        }
        if self.file.is_some() {
            return None;
        }
        env_config.filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// Validate the quick-mode flags and turn them into settings.
    pub fn into_settings(self) -> Result<ShipSettings, ArgError> {
        let (Some(file), Some(topic)) = (self.file, self.topic) else {
            return Err(ArgError::NoInput);
        };
        if topic.is_empty() {
            return Err(ArgError::Topic);
        }
        let brokers = match (&self.brokers, &self.broker_host) {
            (Some(b), _) if b == "embedded" => Brokers::Embedded,
            (Some(b), _) => Brokers::List(b.clone()),
            (None, Some(h)) => Brokers::List(format!("{h}:{}", self.broker_port.unwrap_or(9092))),
            (None, None) => Brokers::List("localhost:9092".into()),
        };
        let mut props = Vec::new();
        if let Some(n) = self.batch_size {
            if n == 0 {
                return Err(ArgError::BatchSize);
            }
            props.push(("batch.num.messages".to_string(), n.to_string()));
        }
        if let Some(w) = self.batch_time {
            if !(w.is_finite() && w >= 0.0) {
                return Err(ArgError::BatchTime(w));
            }
            props.push((
                "linger.ms".to_string(),
                ((w * 1000.0).round() as u64).to_string(),
            ));
        }
        for (k, v) in self.properties {
            // -X sasl.password='${env:KAFKA_PASSWORD}' keeps the secret
            // out of the process list.
            let v = config::resolve_value(&v).map_err(|why| ArgError::Property(k.clone(), why))?;
            props.push((k, v));
        }
        if self.max_inflight_bytes < 64 << 10 {
            return Err(ArgError::Inflight(self.max_inflight_bytes));
        }
        if !(self.shutdown_timeout.is_finite() && self.shutdown_timeout >= 0.0) {
            return Err(ArgError::ShutdownTimeout(self.shutdown_timeout));
        }
        let file =
            std::path::absolute(&file).map_err(|e| ArgError::Path(file.clone(), e.to_string()))?;
        // The path is a literal, not a glob: escape glob metacharacters.
        let include = globset_escape(&file.to_string_lossy());
        let format = match self.metadata {
            Some(m) => Format::Tail2Kafka {
                meta: m.into_bytes(),
            },
            None => Format::Raw,
        };
        Ok(ShipSettings {
            inputs: vec![InputSettings {
                include: vec![include],
                exclude: vec![],
                topic,
                start_at: if self.from_beginning {
                    StartAt::Beginning
                } else {
                    StartAt::End
                },
                format,
                partition_by: self.partition_by,
                max_line_bytes: self.max_line_bytes.max(1),
                long_lines: self.long_lines,
                strip_cr: false,
                partial_flush: None,
                multiline: None,
                headers: self.headers,
            }],
            brokers,
            kafka_props: props,
            checkpoint_dir: self
                .checkpoint_dir
                .unwrap_or_else(config::default_checkpoint_dir),
            checkpoint_interval: config::DEFAULT_CHECKPOINT_INTERVAL,
            max_inflight_bytes: self.max_inflight_bytes,
            host: self.host.unwrap_or_else(config::host_name),
            attribution: if self.no_source_header {
                Attribution::Off
            } else {
                self.attribution
            },
            scan_interval: config::DEFAULT_SCAN_INTERVAL,
            rotate_grace: config::DEFAULT_ROTATE_GRACE,
            shutdown_timeout: Duration::from_secs_f64(self.shutdown_timeout),
            max_open_files: ShipSettings::DEFAULT_MAX_OPEN_FILES,
        })
    }
}

fn globset_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> CheckArgs {
        let mut v = vec!["logferry", "check"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Check(a) => a,
            _ => unreachable!(),
        }
    }

    fn ship(args: &[&str]) -> ShipArgs {
        let mut v = vec!["logferry", "ship"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Ship(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn tail2kafka_flags_mean_what_they_meant() {
        let s = ship(&[
            "-l",
            "/var/log/a.log",
            "-t",
            "web",
            "-s",
            "kafka1",
            "-p",
            "9093",
            "-m",
            "web1",
            "-b",
            "500",
            "-w",
            "2",
        ])
        .into_settings()
        .unwrap();
        assert_eq!(s.brokers, Brokers::List("kafka1:9093".into()));
        let i = &s.inputs[0];
        assert_eq!(i.include, ["/var/log/a.log"]);
        assert_eq!(i.topic, "web");
        assert_eq!(
            i.format,
            Format::Tail2Kafka {
                meta: b"web1".to_vec()
            }
        );
        assert_eq!(i.start_at, StartAt::End);
        assert!(s
            .kafka_props
            .contains(&("batch.num.messages".into(), "500".into())));
        assert!(s.kafka_props.contains(&("linger.ms".into(), "2000".into())));
    }

    #[test]
    fn long_forms_and_passthrough() {
        let s = ship(&[
            "--file",
            "/x/a.log",
            "--topic",
            "t",
            "--brokers",
            "h1:1,h2:2",
            "-X",
            "compression.type=zstd",
            "--batch-time",
            "0.05",
        ])
        .into_settings()
        .unwrap();
        assert_eq!(s.brokers, Brokers::List("h1:1,h2:2".into()));
        assert!(s
            .kafka_props
            .contains(&("compression.type".into(), "zstd".into())));
        assert!(s.kafka_props.contains(&("linger.ms".into(), "50".into())));
    }

    #[test]
    fn default_port_and_glob_escaping() {
        let s = ship(&["-l", "/x/a[1].log", "-t", "t", "-s", "k"])
            .into_settings()
            .unwrap();
        assert_eq!(s.brokers, Brokers::List("k:9092".into()));
        assert_eq!(s.inputs[0].include, ["/x/a[[]1[]].log"]);
    }

    #[test]
    fn bad_values_are_named() {
        let e = ship(&["-l", "/x", "-t", "t", "--batch-time=-1"])
            .into_settings()
            .unwrap_err();
        assert_eq!(e, ArgError::BatchTime(-1.0));
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x"]).is_err(),
            "topic is required"
        );
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x", "-t", "t", "-X", "novalue"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x", "-t", "t", "-p", "1"]).is_err(),
            "-p needs -s"
        );
    }

    #[test]
    fn config_file_or_quick_mode() {
        let a = ship(&["-c", "/etc/logferry.toml"]);
        assert_eq!(
            a.config_path(None),
            Some(PathBuf::from("/etc/logferry.toml"))
        );
        let a = ship(&["--config", "/a.toml"]);
        assert_eq!(
            a.config_path(Some("/b.toml".into())),
            Some(PathBuf::from("/a.toml")),
            "-c wins over the environment"
        );
        // $LOGFERRY_CONFIG applies when no quick-mode file was given...
        let a = ship(&[]);
        assert_eq!(
            a.config_path(Some("/b.toml".into())),
            Some(PathBuf::from("/b.toml"))
        );
        // ...and neither: a usage error naming both ways.
        let a = ship(&[]);
        assert_eq!(a.config_path(None), None);
        assert_eq!(a.into_settings().unwrap_err(), ArgError::NoInput);
        // Quick mode on the command line beats the environment.
        let a = ship(&["-l", "/x", "-t", "t"]);
        assert_eq!(a.config_path(Some("/b.toml".into())), None);
        assert!(a.into_settings().is_ok());
        // A file and quick-mode flags do not mix.
        for extra in [
            &["-l", "/x", "-t", "t"][..],
            &["--brokers", "k:1"],
            &["-X", "a=b"],
            &["--host", "h"],
        ] {
            let mut v = vec!["logferry", "ship", "-c", "/a.toml"];
            v.extend_from_slice(extra);
            assert!(Cli::try_parse_from(&v).is_err(), "{v:?}");
        }
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-t", "t"]).is_err(),
            "topic needs a file"
        );
    }

    #[test]
    fn check_args() {
        let c = check(&["-c", "/a.toml"]);
        assert_eq!(c.config, PathBuf::from("/a.toml"));
        assert!(!c.connect);
        let c = check(&["--config", "/a.toml", "--connect", "--timeout", "2.5"]);
        assert!(c.connect);
        assert_eq!(c.timeout, 2.5);
        assert!(Cli::try_parse_from(["logferry", "check", "-c", "/a", "--timeout", "1"]).is_err());
    }
}
