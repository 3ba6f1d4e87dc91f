//! One module per subcommand, each with a `run` that the binary calls: the
//! edge where typed errors become messages and exit codes (0 after a clean
//! stop, 2 for bad arguments or configuration, 1 for a fatal runtime error
//! or a failed check).

pub mod check;
pub mod collect;
pub mod demo;
pub mod generate;
pub mod merge;
pub mod ship;
pub mod status;
pub mod tail;
pub mod verify;

use crate::config::ConfigError;

/// Print a configuration error, one `logferry: FILE:LINE:COL: ...` line per
/// problem.
pub(crate) fn report_config_error(e: &ConfigError) {
    for line in e.to_string().lines() {
        eprintln!("logferry: {line}");
    }
}
