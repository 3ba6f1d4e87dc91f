//! The wire format, shared by `ship` (which writes it), `verify` (which
//! audits with it) and the collector to come: what a line becomes as a
//! Kafka record. Pure functions over bytes; nothing here knows of files,
//! producers or consumers, and nothing else in the crate is imported.
//!
//! - [`format`]: the record value: the line exactly (raw), tail2kafka's
//!   `META::line`, or a JSON envelope; and the line back out of a value.
//! - [`attribution`]: the compact source attribution (host, path,
//!   generation, file identity, byte offset) in the record key or one
//!   header, encoded and decoded; old versions keep decoding.
//!
//! (host, generation, offset) identifies a line: the generation is one life
//! of one file (see `logferry_tail::GenerationId`), so a reused inode or a
//! file truncated in place never collides with an earlier file.

pub mod attribution;
pub mod format;

pub use attribution::{
    check_static_header, decode_source, encode_source, encode_source_key, mark_truncated,
    partition_key_of, source_tail, Source, SourceDecodeError, SOURCE_HEADER,
};
pub use format::{Format, LineSource};
