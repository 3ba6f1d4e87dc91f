//! File-system notices (inotify, read directly), so that a write to a quiet
//! file or a new file is seen at once instead of at the next scan. Purely
//! an accelerator: the periodic scan remains the source of truth, and when
//! watching is impossible (no inotify, limits reached, a directory that
//! does not exist yet) logferry says so once and relies on the scan.
//!
//! With thousands of files each written a few times a second, the notices
//! themselves are a large share of the shipper's work, so they are read on
//! the shipping thread: the descriptor is non-blocking, the idle wait is a
//! `poll(2)` on it, and events are parsed out of one buffer kept across
//! calls (no thread, channel or allocated event per write). Only what the
//! shipper acts on is asked for: writes and truncations (IN_MODIFY) and
//! names appearing or going away; not opens, reads or closes, which are
//! as frequent as writes and say nothing new.
//!
//! Directories are watched, not files: a watch per directory covers every
//! file in it, including files not created yet. inotify does not recurse,
//! so for `**` inputs each subdirectory gets its own watch, at start and
//! when one appears.

use std::collections::hash_map::{Entry, HashMap};
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What the shipper acts on (see the module doc for what is left out).
/// IN_ATTRIB and IN_CLOSE_WRITE are left out too: a change of mode or
/// owner brings no data, and every write that does was already reported
/// as IN_MODIFY. IN_ONLYDIR: a root that turns out to be a file is not
/// watched as one (its directory would be the right watch).
const MASK: WatchMask = WatchMask::MODIFY
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

/// Room for a few hundred events per `read`; the kernel keeps the rest
/// for the next one.
const BUFFER: usize = 64 * 1024;

/// A queue overflow is logged at most this often.
const OVERFLOW_SAID_EVERY: Duration = Duration::from_secs(60);

/// What the events since the last drain ask of the shipping loop.
#[derive(Debug, Default)]
pub struct Notices {
    /// Files whose content changed (a file written several times since the
    /// last drain may be named several times).
    pub modified: Vec<PathBuf>,
    /// Something was created, removed or renamed: scan now.
    pub rescan: bool,
    /// The kernel's queue overflowed: writes went unreported, so every
    /// file may have new data.
    pub lost: bool,
}

/// One watched directory.
struct Watched {
    dir: PathBuf,
    wd: WatchDescriptor,
    /// Subdirectories are watched too.
    recursive: bool,
    /// Asked for by the caller (not found under a recursive one): when it
    /// goes away it is retried, where a subdirectory is simply forgotten
    /// (its parent reports it if it comes back).
    root: bool,
    /// (device, inode) when the watch was added: tells whether `dir` still
    /// names the watched directory after a rename.
    id: (u64, u64),
    /// On a network file system: inotify there reports only what this
    /// host does, not another host's writes.
    remote: bool,
}

pub struct FsNotices {
    inotify: Option<Inotify>,
    /// Reused by every read.
    buf: Vec<u8>,
    /// By watch descriptor number (not `WatchDescriptor`, whose comparison
    /// upgrades a weak pointer, for every event).
    by_wd: HashMap<i32, Watched>,
    /// Directories that could not be watched (yet); retried on each scan.
    missing: Vec<(PathBuf, bool)>,
    /// Watched directories on a network file system.
    remote: usize,
    warned: bool,
    /// Queue overflows since the last one was logged, and when that was:
    /// said at most once a minute.
    overflows: u64,
    overflow_said: Option<Instant>,
    /// Read by [`keep_up`](Self::keep_up), not drained yet.
    kept: Notices,
}

impl FsNotices {
    /// Watch `dirs` (directory, recursive). Never fails: without inotify
    /// the shipper polls.
    pub fn new(dirs: Vec<(PathBuf, bool)>) -> Self {
        let inotify = match Inotify::init() {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(error = %e, "file-system notifications unavailable; relying on periodic scans");
                None
            }
        };
        let mut n = FsNotices {
            inotify,
            buf: vec![0; BUFFER],
            by_wd: HashMap::new(),
            missing: dirs,
            remote: 0,
            warned: false,
            overflows: 0,
            overflow_said: None,
            kept: Notices::default(),
        };
        n.retry_missing();
        n
    }

    /// Try again to watch directories that could not be watched before
    /// (they may have been created since).
    pub fn retry_missing(&mut self) {
        if self.inotify.is_none() {
            return;
        }
        for (dir, recursive) in std::mem::take(&mut self.missing) {
            self.watch_tree(dir, recursive, true);
        }
    }

    /// Watch `dirs` too (inputs added at run time); those already watched
    /// are merged with their watch.
    pub fn watch(&mut self, dirs: Vec<(PathBuf, bool)>) {
        self.missing.extend(dirs);
        self.retry_missing();
    }

    /// Every directory is watched, on a local file system: a write
    /// anywhere in them will be reported, so quiet files need not be
    /// polled and the periodic scan is only a safety net.
    pub fn active(&self) -> bool {
        self.inotify.is_some() && self.missing.is_empty() && self.remote == 0
    }

    /// Sleep until the next event or `timeout`, whichever comes first: the
    /// shipping loop's idle wait, so that a write is read at once rather
    /// than at the end of a fixed sleep.
    pub fn wait(&mut self, timeout: Duration) {
        let Some(inotify) = &self.inotify else {
            // Nothing will ever arrive: a plain sleep.
            std::thread::sleep(timeout);
            return;
        };
        let mut pfd = libc::pollfd {
            fd: inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up: a wait of less than a millisecond must not become a
        // busy loop.
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, owned for the duration of the call. An
        // error (EINTR) only ends the wait early, which the loop tolerates.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Read what the kernel queued so far and keep it for the next
    /// [`drain`](Self::drain): called while the caller is busy for long (a
    /// scan of 200,000 files takes about a second, while writes to them
    /// fill the kernel's queue of 16,384 events by default), so that the
    /// queue does not overflow and lose which files were written.
    pub fn keep_up(&mut self) {
        self.kept = self.drain();
    }

    /// Everything that happened since the last call.
    pub fn drain(&mut self) -> Notices {
        let mut out = std::mem::take(&mut self.kept);
        // Directories that appeared under recursive watches, and watches
        // that ended or whose directory was renamed: handled after the
        // reads, which borrow the buffer.
        let mut appeared = Vec::new();
        let mut ended = Vec::new();
        let mut renamed = Vec::new();
        let Self {
            inotify,
            buf,
            by_wd,
            warned,
            overflows,
            ..
        } = self;
        let Some(inotify) = inotify.as_mut() else {
            return out;
        };
        loop {
            let events = match inotify.read_events(buf) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if !*warned {
                        tracing::warn!(error = %e, "cannot read file-system notifications; relying on periodic scans");
                        *warned = true;
                    }
                    out.rescan = true;
                    break;
                }
            };
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    out.rescan = true;
                    out.lost = true;
                    *overflows += 1;
                    continue;
                }
                let id = ev.wd.get_watch_descriptor_id();
                // Events still queued for a watch already forgotten.
                let Some(w) = by_wd.get(&id) else { continue };
                if ev.mask.contains(EventMask::MODIFY) {
                    if let Some(name) = ev.name {
                        out.modified.push(w.dir.join(name));
                    }
                    continue;
                }
                out.rescan = true;
                if ev
                    .mask
                    .intersects(EventMask::IGNORED | EventMask::DELETE_SELF)
                {
                    ended.push(id);
                } else if ev.mask.contains(EventMask::MOVE_SELF) {
                    renamed.push(id);
                } else if w.recursive
                    && ev.mask.contains(EventMask::ISDIR)
                    && ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                {
                    if let Some(name) = ev.name {
                        appeared.push(w.dir.join(name));
                    }
                }
            }
        }
        if self.overflows > 0
            && self
                .overflow_said
                .is_none_or(|t| t.elapsed() >= OVERFLOW_SAID_EVERY)
        {
            tracing::warn!(
                overflows = self.overflows,
                "the kernel's file-system event queue overflowed (fs.inotify.max_queued_events): writes went unreported, so every file is looked at again"
            );
            self.overflows = 0;
            self.overflow_said = Some(Instant::now());
        }
        for id in ended {
            self.forget(id);
        }
        for id in renamed {
            // A directory moved within a recursive tree was watched again
            // under its new name when its new parent reported it; one moved
            // elsewhere names nothing watched any more.
            let still = self
                .by_wd
                .get(&id)
                .is_some_and(|w| dir_id(&w.dir) == Some(w.id));
            if !still {
                if let (Some(w), Some(inotify)) = (self.by_wd.get(&id), self.inotify.as_mut()) {
                    let _ = inotify.watches().remove(w.wd.clone());
                }
                self.forget(id);
            }
        }
        // Files may have been created in them before their watch was added:
        // the rescan asked for above finds those.
        for dir in appeared {
            self.watch_tree(dir, true, false);
        }
        out
    }

    /// Stop tracking a watch that ended; a root goes back on the missing
    /// list, to be watched again when it exists again.
    fn forget(&mut self, id: i32) {
        if let Some(w) = self.by_wd.remove(&id) {
            self.remote -= usize::from(w.remote);
            if w.root {
                self.missing.push((w.dir, w.recursive));
            }
        }
    }

    /// Watch `top` and, if `recursive`, every directory under it (symlinks
    /// followed, as discovery does). Directories that cannot be watched go
    /// on the missing list.
    fn watch_tree(&mut self, top: PathBuf, recursive: bool, root: bool) {
        let mut todo = vec![(top, root)];
        while let Some((dir, root)) = todo.pop() {
            match self.add(&dir, recursive, root) {
                // Already watched as a recursive tree (a symlink loop, or
                // two inputs over one tree): its subdirectories are too.
                Ok(false) => {}
                Ok(true) if recursive => {
                    let Ok(entries) = fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let is_dir = match entry.file_type() {
                            Ok(t) if !t.is_symlink() => t.is_dir(),
                            _ => fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()),
                        };
                        if is_dir {
                            todo.push((entry.path(), false));
                        }
                    }
                }
                Ok(true) => {}
                // A subdirectory removed since it was listed.
                Err(e) if !root && e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    if !self.warned && dir.exists() {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on periodic scans for it");
                        self.warned = true;
                    }
                    self.missing.push((dir, recursive));
                }
            }
        }
    }

    /// Add one watch. Ok(true): its subdirectories still need watching
    /// (new, or newly recursive).
    fn add(&mut self, dir: &Path, recursive: bool, root: bool) -> io::Result<bool> {
        let inotify = self.inotify.as_mut().ok_or(io::ErrorKind::Unsupported)?;
        let wd = inotify.watches().add(dir, MASK)?;
        let id = dir_id(dir).unwrap_or_default();
        // The kernel hands out one watch per directory, so a directory
        // reached twice (two inputs, a symlink, a rename) comes back with
        // the watch it already has.
        match self.by_wd.entry(wd.get_watch_descriptor_id()) {
            Entry::Occupied(mut e) => {
                let w = e.get_mut();
                let deeper = recursive && !w.recursive;
                w.recursive |= recursive;
                w.root |= root;
                if dir_id(&w.dir) != Some(w.id) {
                    w.dir = dir.to_path_buf();
                    w.id = id;
                }
                Ok(deeper)
            }
            Entry::Vacant(e) => {
                let remote = on_remote_file_system(dir);
                if remote {
                    tracing::info!(dir = %dir.display(), "on a network file system: other hosts' writes are not notified, so its files are polled");
                }
                self.remote += usize::from(remote);
                e.insert(Watched {
                    dir: dir.to_path_buf(),
                    wd,
                    recursive,
                    root,
                    id,
                    remote,
                });
                Ok(true)
            }
        }
    }
}

/// Whether `dir` is on a file system whose files other hosts may write
/// (NFS, SMB, Ceph, AFS, 9p, GFS2, OCFS2, Lustre, GPFS, Coda): inotify sees
/// none of their writes. Unknown: local. FUSE is left out: rootless
/// containers keep their logs on fuse-overlayfs, written on this host.
fn on_remote_file_system(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a zeroed statfs the call fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    is_remote_magic(st.f_type as u64)
}

/// File-system magic numbers (statfs(2), linux/magic.h) of the kinds
/// [`on_remote_file_system`] names.
fn is_remote_magic(magic: u64) -> bool {
    const REMOTE: [u64; 13] = [
        0x6969,      // NFS
        0x517b,      // SMB
        0xff53_4d42, // CIFS
        0xfe53_4d42, // SMB2
        0x00c3_6400, // Ceph
        0x5346_414f, // AFS
        0x6b41_4653, // kAFS
        0x0102_1997, // 9p
        0x0116_1970, // GFS2
        0x7461_636f, // OCFS2
        0x0bd0_0bd0, // Lustre
        0x4750_4653, // GPFS
        0x7375_7245, // Coda
    ];
    REMOTE.contains(&(magic & 0xffff_ffff))
}

/// The (device, inode) `dir` names now.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests;
