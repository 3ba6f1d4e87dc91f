//! Looking at the whole fleet: `logferry tail`, the live topic as one view
//! across every server, and `logferry merge`, the collector's archive as
//! one stream ordered by the time each line was read. Both print the same
//! way (`HOST PATH: line`, or JSON) and filter the same way (host and path
//! globs on the source attribution, a regex on the line).
//!
//! # Layout
//!
//! - [`record`]: the one place a consumed record's attribution and line
//!   are read (through `wire/`).
//! - [`filter`]: host and path globs, `--grep`.
//! - [`print`]: text (a colour per host on a terminal) or JSON lines.
//! - [`time`]: RFC 3339 times and durations ago, both ways.
//! - [`tail`]: the live view (assigned partitions, nothing committed).
//! - [`lines`]: one archived generation's lines in file order, each with
//!   its read time from the collector's timeline.
//! - [`merge`]: the k-way merge of those streams.

pub mod filter;
pub mod lines;
pub mod merge;
pub mod print;
pub mod record;
pub mod tail;
pub mod time;
