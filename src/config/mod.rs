//! Configuration: raw input (the TOML file, or the quick-mode flags turned
//! into the same raw form) -> one validator -> settings that hold built
//! values, so the shipping loop never re-checks them.
//!
//! # Layout
//!
//! - [`settings`]: the validated settings (`ShipSettings`, inputs).
//! - [`raw`]: the file as written (serde, unknown keys rejected, values
//!   kept with their positions).
//! - [`load`]: reading a file, placing serde's errors at line and column.
//! - `quick`: tail2kafka's quick-mode flags as the same raw form, through
//!   the same validator, problems placed at the flag.
//! - [`validate`]: the one validator.
//! - [`kafka`]: producer defaults, property conflicts, secrets.
//! - [`error`]: problems placed at file, line, column and key.
//! - [`collect`]: the collector's `[collect]` file and settings.
//!
//! Every error names the file, the line and column, and the key, because a
//! shipper that starts with a misspelled key silently ignored ships the
//! wrong thing for months. The format is documented key by key in
//! `examples/logferry.toml` (a unit test loads it, so it cannot rot).
//!
//! Two stages, as for the command line:
//! 1. serde (`deny_unknown_fields`) turns TOML into `Raw*` structs; every
//!    value that a later check may complain about is wrapped in
//!    `toml::Spanned` so the complaint can point at it.
//! 2. the validator checks meaning (regexes compile, globs are absolute,
//!    sizes are positive, no duplicates, no conflicting librdkafka
//!    properties) and collects *all* problems, not only the first.

use std::time::Duration;

pub mod collect;
pub mod error;
pub mod kafka;
pub mod load;
pub(crate) mod quick;
pub mod raw;
pub mod settings;
pub mod validate;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, Problem};
pub use kafka::{
    is_secret, property_conflicts, shown_value, PropertyConflict, DEFAULT_PRODUCER_PROPS,
};
pub use load::{load, parse, LoadedConfig};
pub use raw::{parse_duration, parse_size};
pub use settings::*;

/// Environment variable naming the configuration file when no `-c` is given.
pub const CONFIG_ENV: &str = "LOGFERRY_CONFIG";

/// Defaults for keys (and quick-mode flags) that are not given; the rest
/// are `ShipSettings::DEFAULT_*`.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_ROTATE_GRACE: Duration = Duration::from_secs(2);
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);
/// The smallest in-flight bound accepted (as for `--max-inflight-bytes`).
pub const MIN_INFLIGHT_BYTES: u64 = 64 << 10;
