//! Arguments of the fleet views, `tail` and `merge` (see `crate::fleet`).

use std::path::PathBuf;

use clap::Args;

use crate::config;
use crate::fleet::print::OutputFormat;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Bootstrap brokers `h1:p1,h2:p2`.
    #[arg(long, value_name = "LIST", default_value = config::DEFAULT_BROKERS)]
    pub brokers: String,

    /// Topic to watch, repeatable.
    #[arg(short = 't', long = "topic", value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,

    /// Only lines from hosts matching this glob (`web*`).
    #[arg(long, value_name = "GLOB")]
    pub host: Option<String>,

    /// Only lines from source paths matching this glob (`*` stops at `/`,
    /// `**` crosses it).
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,

    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,

    /// Where to start: `end` (new lines only), `beginning` (all the topic
    /// holds), a duration ago (`10m`) or a time (`2026-11-25T10:00:00Z`).
    #[arg(long, value_name = "DURATION|beginning|end", default_value = "end")]
    pub from: String,

    /// `text` (`HOST PATH: line`, a colour per host on a terminal) or
    /// `json` (host, path, generation, offset, timestamp, line).
    #[arg(long, value_enum, value_name = "text|json", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Metadata prefix of records shipped with `-m META` (stripped).
    #[arg(short = 'm', long, value_name = "META")]
    pub metadata: Option<String>,

    /// librdkafka consumer property `key=value` (TLS, SASL), repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = super::parse_property)]
    pub properties: Vec<(String, String)>,

    /// Also show records of open and aborted transactions (exactly_once
    /// agents); by default the topic is read as read_committed consumers
    /// see it.
    #[arg(long)]
    pub read_uncommitted: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The collectors' output directory (`logferry collect --out`).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,

    /// Only lines from hosts matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub host: Option<String>,

    /// Only lines from source paths matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,

    /// Only lines read at or after this time (`2026-11-25T10:00:00Z`,
    /// `2026-11-25`, `@UNIX_SECONDS`, or a duration ago: `1h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only lines read before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,

    /// At the end of the archive, go on with what the collectors write.
    #[arg(short = 'f', long, conflicts_with = "until")]
    pub follow: bool,

    /// `text` (`HOST PATH: line`) or `json` (host, path, generation,
    /// offset, timestamp, line).
    #[arg(long, value_enum, value_name = "text|json", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}
