//! logferry-bench: the pieces of the side-by-side benchmark.
//!
//! - [`line`]: the synthetic access-log line (generation and parsing of the
//!   `id=FILE:SEQ ts=MICROS` marker every line carries);
//! - [`procmon`]: spawning the tools under test and measuring their CPU time
//!   and peak RSS from `/proc` and `wait4`;
//! - [`kafka`]: topic setup, landed-record counting and the read-back that
//!   checks completeness and latency;
//! - [`visible`]: append-to-visible latency, seen by a read_committed
//!   consumer following the topic during a live run;
//! - [`report`]: markdown tables and SVG charts from the results.
//!
//! The binaries are `loggen` (the writer) and `lfbench` (the driver).

pub mod kafka;
pub mod line;
pub mod procmon;
pub mod report;
pub mod visible;

/// Wall clock in microseconds since the Unix epoch. Kafka's LogAppendTime
/// uses the same clock on the same machine, so the two can be subtracted.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
