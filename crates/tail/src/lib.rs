//! The tailing core of logferry: everything between a log file on disk and a
//! complete line with its byte offsets. It knows nothing of Kafka or the CLI.
//!
//! # Layout
//!
//! - [`identity`]: what makes a file the same file: a [`GenerationId`] per
//!   life of a file; ([`FileId`] = device and inode) and a [`Fingerprint`]
//!   of its first bytes as hints, an [`Anchor`] of the bytes before a
//!   position as proof.
//! - [`identify`]: the one room that decides which generation a file is
//!   (head, anchor, trail, birth time, parked files, rotated files).
//! - [`compressed`]: reading rotated generations that were compressed.
//! - [`frame`]: [`LineFramer`] cuts byte chunks into complete lines with
//!   absolute offsets, under one long-line policy and bounded memory.
//! - [`follow`]: [`FileWatcher`] reads one file identity, notices truncation
//!   and replacement, and keeps reading a rotated-away file to its end.
//! - [`discover`]: [`Discovery`] expands include/exclude globs into the set of
//!   files to follow.
//! - [`checkpoint`]: [`Checkpointer`] persists positions atomically in a
//!   versioned format.
//! - [`tailer`]: the [`Tailer`], which joins all of the above: globs in,
//!   complete lines tagged with a stream and a sequence number out, acks
//!   back in, positions for checkpoints out.
//! - [`ledger`]: generations not being read, matched to files by content.
//! - [`acks`]: `AckTracker`, the acknowledged-prefix rule for positions.
//! - [`notice`]: file-system notifications (inotify) as wake-ups.
//! - [`lock`]: [`StateLock`] keeps a checkpoint directory to one process.

pub mod acks;
pub mod checkpoint;
pub mod compressed;
pub mod discover;
pub mod follow;
pub mod frame;
pub mod identify;
pub mod identity;
pub mod ledger;
pub mod lock;
pub mod multiline;
pub mod notice;
pub mod tailer;

pub use checkpoint::{CheckpointError, CheckpointFile, Checkpointer, FileCheckpoint, Loss};
pub use discover::{Discovery, DiscoveryError};
pub use follow::{open_log, FileWatcher, Poll, WatchError};
pub use frame::{Line, LineFramer, LongLinePolicy};
pub use identity::{Anchor, FileId, Fingerprint, GenerationId};
pub use lock::{LockError, StateLock};
pub use multiline::MultilineJoiner;
pub use tailer::{
    BackfillProgress, FileStatus, LineSink, ReconfigureError, ScanOutcome, StartAt, StreamInfo,
    TailCounters, TailInput, TailSettings, Tailer, TailerError,
};
