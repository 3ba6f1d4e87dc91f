//! The wire format, shared by `ship` (which writes it), `verify` (which
//! audits with it) and `collect` (which rebuilds files with it): what a
//! line becomes as a Kafka record. Pure functions over bytes (and one
//! adapter reading a consumed rdkafka message's key and headers); nothing
//! here knows of files, producers or consumers, and nothing else in the
//! crate is imported.
//!
//! - [`format`]: the record value: the line exactly (raw), tail2kafka's
//!   `META::line`, or a JSON envelope; and the line back out of a value.
//! - [`attribution`]: the compact source attribution (host, path,
//!   generation, file identity, byte offset) in the record key or one
//!   header, encoded and decoded; old versions keep decoding.
//! - [`record`]: which record came from where: [`RecordSource::of_record`]
//!   (key first, `lf` header second, and what counts as corrupt), the one
//!   reading every consumer of a topic calls.
//!
//! (host, generation, offset) identifies a line: the generation is one life
//! of one file (see `logferry_tail::GenerationId`), so a reused inode or a
//! file truncated in place never collides with an earlier file.

pub mod attribution;
pub mod format;
pub mod record;

pub use attribution::{
    check_static_header, decode_source, decode_source_ref, encode_source, encode_source_key,
    generation_partition_key, is_generation_partition_key, mark_packed, mark_truncated,
    partition_key_of, put_source_tail, source_tail, Source, SourceDecodeError, SourceRef,
    SOURCE_HEADER,
};
pub use format::{Format, LineSource};
pub use record::{RecordSource, RecordSourceRef};
