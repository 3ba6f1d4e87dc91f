//! logferry: carries application logs from the files servers write into
//! Apache Kafka, never losing a line.
//!
//! # Layout
//!
//! - [`cli`]: command-line arguments as typed (tail2kafka's quick-mode flags
//!   among them), turned into validated [`config`] settings.
//! - [`config_file`]: the TOML configuration file (`ship -c`, `check`),
//!   validated into the same settings, errors naming file, line and key.
//! - [`wire`]: the wire format, a leaf shared by ship, verify and collect:
//!   record values and the compact source attribution (key form or `lf`
//!   header).
//! - [`ship`]: the shipping loop: discover, follow and frame (through the
//!   `logferry-tail` crate), encode, produce, apply acks, checkpoint.
//!   - [`ship::acks`]: `AckTracker`, the acked-prefix rule for checkpoints.
//!   - [`ship::ledger`]: generations not being read, matched by content.
//!   - [`ship::partition`]: `SourcePartitioner`, partitions for the key form.
//!   - [`ship::produce`]: producer defaults and delivery reports.
//! - [`consume`]: records taken from a consumer's queue many at a time
//!   (`collect` and `tail`), with the unsafe code that needs.
//! - [`collect`]: the central half: consume, write each line at its source
//!   offset, fsync before commit, completeness, housekeeping.
//! - [`fleet`]: looking at the fleet: `tail` (live topic) and `merge`
//!   (the archive in read-time order).
//! - [`embedded`]: the in-process broker of the quick start.
//! - [`metrics`]: counters and gauges over HTTP (`/metrics`, `/health`).
//! - [`shutdown`]: signal handling for a clean, bounded stop.

pub mod cli;
pub mod cmd;
pub mod collect;
pub mod config;
pub mod consume;
pub mod embedded;
pub mod fleet;
pub mod metrics;
pub mod ship;
pub mod shutdown;
pub mod verify;
pub mod wire;
