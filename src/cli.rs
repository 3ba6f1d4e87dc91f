//! Command-line arguments as typed, kept apart from the validated
//! [`ShipSettings`] built from them. The quick-mode flags are tail2kafka's
//! own (`-l -t -s -p -m -b -w`), so an old command line keeps working.
//! A configuration file (`-c FILE`, see [`crate::config`]) takes their
//! place for more than one file; the two are exclusive.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use logferry_tail::LongLinePolicy;

use crate::config::{self, Attribution, PartitionBy};

mod collect;
mod fleet;
mod generate;
mod quick;
mod verify;
pub use fleet::{MergeArgs, TailArgs};
pub use generate::{GenerateArgs, Generated};
pub use quick::{globset_escape, ArgError};
pub use verify::VerifyArgError;

#[derive(Debug, Parser)]
#[command(
    name = "logferry",
    version,
    about = "Ships log files into Apache Kafka without losing a line"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Format of logferry's own log lines on stderr: `human` (colour on a
    /// terminal) or `json` (one object per line, for log collectors).
    #[arg(long, global = true, value_enum, value_name = "human|json", default_value_t = LogFormat::Human, env = "LOGFERRY_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// How logferry writes its own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
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
    /// Central collection: consume topics in a consumer group and rebuild
    /// every server's log files under --out, byte for byte, exactly once
    /// on disk. `collect status --out DIR` reports completeness and gaps.
    Collect(CollectArgs),
    /// One row per file in the checkpoint store: path, generation, size,
    /// acknowledged position, lag. Reads only, so it works beside a
    /// running agent and after it stopped.
    Status(StatusArgs),
    /// Shell completions and man pages from this definition (packaging).
    #[command(hide = true)]
    Generate(GenerateArgs),
    /// Live view of the whole fleet: every server's new lines from a topic,
    /// as `HOST PATH: line`, filtered by host, path and regex. Commits
    /// nothing.
    Tail(TailArgs),
    /// The collectors' archive as one stream ordered by the time each line
    /// was read, across hosts, compressed generations included.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's configuration file (for its checkpoint directory).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with = "checkpoint_dir"
    )]
    pub config: Option<PathBuf>,

    /// The agent's checkpoint directory [default: as for ship].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// One JSON object per file, in an array, for scripts.
    #[arg(long)]
    pub json: bool,

    /// Redraw the table every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Audit every input of this configuration file, each with its own
    /// topic, format, long-line policy and the file's host and brokers,
    /// over the files its include globs match and their rotated names.
    /// Used instead of --topic and FILEs.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with_all = ["topic", "files", "host", "metadata", "max_line_bytes", "brokers", "properties"]
    )]
    pub config: Option<PathBuf>,

    /// Topic to read back (without -c).
    #[arg(short = 't', long, value_name = "TOPIC", requires = "files")]
    pub topic: Option<String>,

    /// Bootstrap brokers `h1:p1,h2:p2`.
    #[arg(long, value_name = "LIST", default_value = config::DEFAULT_BROKERS)]
    pub brokers: String,

    /// Source files to audit (current and rotated names), repeatable
    /// (without -c).
    #[arg(value_name = "FILE", requires = "topic")]
    pub files: Vec<PathBuf>,

    /// Host name the records were shipped with [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Metadata prefix the records were shipped with (`-m`).
    #[arg(short = 'm', long, value_name = "META")]
    pub metadata: Option<String>,

    /// --max-line-bytes the records were shipped with [default: ship's].
    #[arg(long, value_name = "BYTES", value_parser = config::parse_size)]
    pub max_line_bytes: Option<u64>,

    /// librdkafka property `key=value` for the consumer (TLS, SASL).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// Bound on reading the topic to its end, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,

    /// The agent's checkpoint directory: files that vanished before the
    /// agent read them to the end are recorded there, and count as missing
    /// [default with -c: the file's, when it exists].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Also count records of open and aborted transactions (exactly_once
    /// agents); by default the topic is read as read_committed consumers
    /// see it.
    #[arg(long)]
    pub read_uncommitted: bool,
}

/// The consumer property `--read-uncommitted` adds.
pub const READ_UNCOMMITTED: (&str, &str) = ("isolation.level", "read_uncommitted");

/// What `logferry verify` was asked to audit.
#[derive(Debug)]
pub enum VerifyInput {
    /// One topic against the files given.
    Flags(crate::verify::VerifySettings),
    /// Every input of a configuration file.
    Config {
        path: PathBuf,
        timeout: Duration,
        checkpoint_dir: Option<PathBuf>,
        read_uncommitted: bool,
    },
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

    /// Where the file's rotated files go besides FILE.* and FILE-*, as a
    /// glob (another directory, another name, compressed or not: told by
    /// content); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub rotated: Vec<String>,

    /// Also ship the rotated files already there (FILE.*, FILE-* and
    /// --rotated / `rotated`, compressed ones included) that no known
    /// generation leads to, oldest first; with -c, for every input.
    #[arg(long)]
    pub backfill: bool,

    /// Directory for checkpoints [default: /var/lib/logferry as root, else
    /// ~/.local/state/logferry; or $LOGFERRY_STATE_DIR].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    // The flags below have no clap defaults: what is not given stays
    // unset in the raw configuration, so the validator's defaults (the
    // same as a file's) apply.
    /// Which partition records go to: `generation` keeps each file
    /// generation in one partition, in order (collectors on separate hosts
    /// then hold whole files); `none` spreads batches over every partition
    /// (sticky); `file` and `host` key by file or host [default:
    /// generation].
    #[arg(long, value_name = "generation|none|file|host", value_parser = parse_partition_by)]
    pub partition_by: Option<PartitionBy>,

    /// Bound on unacknowledged records in bytes; reading pauses at it
    /// [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_inflight_bytes: Option<u64>,

    /// Longest line shipped whole; longer ones follow --long-lines
    /// [default: 1000000].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<u64>,

    /// Policy for lines over --max-line-bytes [default: truncate].
    #[arg(long, value_name = "truncate|split", value_parser = parse_long_lines)]
    pub long_lines: Option<LongLinePolicy>,

    /// Ship whole lines read together as one record of up to BYTES (the
    /// lines joined by their newlines): far less CPU a line, for
    /// consumers that split records at newlines (logferry's own do)
    /// [default: 0, a record a line].
    #[arg(long, value_name = "BYTES")]
    pub pack_bytes: Option<u64>,

    /// Where the source attribution (host, path, file identity, offset)
    /// goes: in the record key (logferry then picks the partition), in an
    /// `lf` record header, or nowhere [default: key].
    #[arg(long, value_enum, value_name = "key|header|off")]
    pub attribution: Option<Attribution>,

    /// The same as `--attribution off` (kept for scripts written against
    /// earlier versions).
    #[arg(long, hide = true)]
    pub no_source_header: bool,

    /// Host name carried in the source attribution [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Seconds to wait for in-flight records at shutdown [default: 8].
    #[arg(long, value_name = "SECS")]
    pub shutdown_timeout: Option<f64>,

    /// Serve Prometheus metrics at /metrics and a health check at /health
    /// on this IP:PORT (e.g. 127.0.0.1:9898) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// /health answers 503 after this long without an acknowledgement
    /// while lines wait, or without a checkpoint written [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration, requires = "metrics_listen")]
    pub max_stall: Option<Duration>,

    /// Read the file at most this fast, e.g. 5MB (per second; KiB/MiB are
    /// powers of 1024): a backlog waits in the file instead of taking the
    /// link [default: no limit].
    #[arg(long, value_name = "SIZE", value_parser = config::parse_size)]
    pub max_bytes_per_sec: Option<u64>,

    /// Exactly once for read_committed consumers: a transactional producer
    /// commits the records and the file positions (to the topic
    /// `logferry-positions`, which must exist) together, every second.
    #[arg(long)]
    pub exactly_once: bool,
}

/// The flags that describe what to ship without a configuration file.
const QUICK_MODE_ARGS: [&str; 26] = [
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
    "rotated",
    "checkpoint_dir",
    "partition_by",
    "max_inflight_bytes",
    "max_line_bytes",
    "long_lines",
    "pack_bytes",
    "attribution",
    "no_source_header",
    "host",
    "shutdown_timeout",
    "metrics_listen",
    "max_stall",
    "max_bytes_per_sec",
    "exactly_once",
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
        "generation" => Ok(PartitionBy::Generation),
        "none" => Ok(PartitionBy::None),
        "file" => Ok(PartitionBy::File),
        "host" => Ok(PartitionBy::Host),
        _ => Err(format!(
            "expected generation, none, file or host, got {s:?}"
        )),
    }
}

fn parse_long_lines(s: &str) -> Result<LongLinePolicy, String> {
    match s {
        "truncate" => Ok(LongLinePolicy::Truncate),
        "split" => Ok(LongLinePolicy::Split),
        _ => Err(format!("expected truncate or split, got {s:?}")),
    }
}

/// `logferry collect`: quick flags or `-c FILE` (a `[collect]` section).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CollectArgs {
    #[command(subcommand)]
    pub action: Option<CollectAction>,

    /// Configuration file with `[kafka]` and `[collect]` sections, instead
    /// of the flags below.
    #[arg(short = 'c', long = "config", value_name = "FILE",
          conflicts_with_all = ["brokers", "topics", "group", "out", "properties", "gap_timeout", "commit_interval", "metadata", "max_hole", "metrics_listen", "max_stall", "index_topic", "no_index_topic"])]
    pub config: Option<PathBuf>,

    /// Bootstrap brokers `h1:p1,h2:p2`.
    #[arg(long, value_name = "LIST")]
    pub brokers: Option<String>,

    /// Topic to collect, repeatable.
    #[arg(short = 't', long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Consumer group [default: logferry-collect].
    #[arg(short = 'g', long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Output directory.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// librdkafka consumer property `key=value` (TLS, SASL), repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// A hole still open after this long is a reported gap [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub gap_timeout: Option<Duration>,

    /// How often outputs are fsynced and offsets committed [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub commit_interval: Option<Duration>,

    /// Metadata prefix of records shipped with `-m META` (stripped).
    #[arg(short = 'm', long, value_name = "META")]
    pub metadata: Option<String>,

    /// A line whose offset lies more than SIZE past the end of its
    /// generation's output goes to _unattributed, counted, instead of
    /// opening a sparse hole that big [default: 64GiB].
    #[arg(long, value_name = "SIZE", value_parser = config::parse_size)]
    pub max_hole: Option<u64>,

    /// Serve Prometheus metrics at /metrics and a health check at /health
    /// on IP:PORT [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// /health answers 503 after this long without an offset commit while
    /// records wait [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration, requires = "metrics_listen")]
    pub max_stall: Option<Duration>,
    /// Also write records of open and aborted transactions (exactly_once
    /// agents); by default the collector reads as read_committed.
    #[arg(long)]
    pub read_uncommitted: bool,

    /// The compacted topic the collectors of the group share their index
    /// in; it must exist [default: logferry-collect-index].
    #[arg(long, value_name = "TOPIC")]
    pub index_topic: Option<String>,

    /// No shared index: collectors on separate hosts then cannot rebuild
    /// generations they did not start (fine for one collector, or members
    /// sharing one output directory).
    #[arg(long, conflicts_with = "index_topic")]
    pub no_index_topic: bool,
}

#[derive(Debug, Subcommand)]
pub enum CollectAction {
    /// Per source generation: output file, complete-up-to byte, open holes
    /// with byte ranges and ages. Exit 1 when a hole is older than the gap
    /// timeout.
    Status(CollectStatusArgs),
}

#[derive(Debug, Args)]
pub struct CollectStatusArgs {
    /// The collectors' output directory.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub out: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Override the collectors' gap timeout.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub gap_timeout: Option<Duration>,
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
        assert!(matches!(a.into_settings(), Err(ArgError::NoInput)));
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

    fn collect(args: &[&str]) -> Result<config::collect::CollectSettings, String> {
        let mut v = vec!["logferry", "collect", "-t", "t", "-o", "/out"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).map_err(|e| e.to_string())?.command {
            Command::Collect(a) => a.into_settings().map_err(|e| e.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn collect_max_hole_flag() {
        assert_eq!(
            collect(&[]).unwrap().max_hole,
            config::collect::DEFAULT_MAX_HOLE
        );
        assert_eq!(collect(&["--max-hole", "2GiB"]).unwrap().max_hole, 2 << 30);
        let e = collect(&["--max-hole", "0"]).unwrap_err();
        assert!(e.contains("--max-hole: must be more than 0"), "{e}");
        let e = collect(&["--max-hole", "lots"]).unwrap_err();
        assert!(e.contains("--max-hole"), "{e}");
        assert!(Cli::try_parse_from([
            "logferry",
            "collect",
            "-c",
            "/a.toml",
            "--max-hole",
            "1GiB"
        ])
        .is_err());
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
