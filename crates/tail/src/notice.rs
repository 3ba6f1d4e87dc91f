//! File-system notifications (inotify, through `notify`), so that a write
//! to a quiet file or a new file is seen at once instead of at the next
//! scan. Purely an accelerator: the periodic scan remains the source of
//! truth, and when watching is impossible (no inotify, limits reached, a
//! directory that does not exist yet) logferry says so once and relies on
//! the scan.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// What the events since the last drain ask of the shipping loop.
#[derive(Debug, Default)]
pub struct Notices {
    /// Files whose content changed.
    pub modified: Vec<PathBuf>,
    /// Something was created, removed or renamed: scan now.
    pub rescan: bool,
}

pub struct FsNotices {
    watcher: Option<RecommendedWatcher>,
    events: Receiver<notify::Result<notify::Event>>,
    /// Directories being watched.
    watched: HashSet<PathBuf>,
    /// Directories that could not be watched (yet); retried on each scan.
    missing: Vec<(PathBuf, bool)>,
    warned: bool,
    /// An event taken by `wait`, handed out by the next `drain`.
    pending: Option<notify::Result<notify::Event>>,
}

impl FsNotices {
    /// Watch `dirs` (directory, recursive). Never fails: without a watcher
    /// the shipper polls.
    pub fn new(dirs: Vec<(PathBuf, bool)>) -> Self {
        let (tx, events) = channel();
        let watcher = match notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file-system notifications unavailable; relying on periodic scans");
                None
            }
        };
        let mut n = FsNotices {
            watcher,
            events,
            watched: HashSet::new(),
            missing: dirs,
            warned: false,
            pending: None,
        };
        n.retry_missing();
        n
    }

    /// Try again to watch directories that could not be watched before
    /// (they may have been created since).
    pub fn retry_missing(&mut self) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        let mut still = Vec::new();
        for (dir, recursive) in self.missing.drain(..) {
            if self.watched.contains(&dir) {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match w.watch(&dir, mode) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => {
                    if !self.warned && dir.exists() {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on periodic scans for it");
                        self.warned = true;
                    }
                    still.push((dir, recursive));
                }
            }
        }
        self.missing = still;
    }

    /// Watch `dirs` too (inputs added at run time); those already watched
    /// are skipped.
    pub fn watch(&mut self, dirs: Vec<(PathBuf, bool)>) {
        self.missing.extend(dirs);
        self.retry_missing();
    }

    /// Every directory is watched: a write anywhere in them will be
    /// reported, so quiet files need not be polled.
    pub fn active(&self) -> bool {
        self.watcher.is_some() && self.missing.is_empty()
    }

    /// Sleep until the next event or `timeout`, whichever comes first: the
    /// shipping loop's idle wait, so that a write is read at once rather
    /// than at the end of a fixed sleep.
    pub fn wait(&mut self, timeout: Duration) {
        if self.pending.is_some() {
            return;
        }
        match self.events.recv_timeout(timeout) {
            Ok(ev) => self.pending = Some(ev),
            Err(RecvTimeoutError::Timeout) => {}
            // No watcher: nothing will ever arrive, so this is a plain sleep.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
        }
    }

    /// Everything that happened since the last call.
    pub fn drain(&mut self) -> Notices {
        let mut out = Notices::default();
        loop {
            let next = match self.pending.take() {
                Some(ev) => Ok(ev),
                None => self.events.try_recv(),
            };
            match next {
                Ok(Ok(ev)) => match ev.kind {
                    EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
                        out.modified.extend(ev.paths)
                    }
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => {}
                    _ => out.rescan = true,
                },
                // Overflowed queue or a watch that went away: scan.
                Ok(Err(_)) => out.rescan = true,
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        out
    }
}
