//! Following one file identity. A [`FileWatcher`] owns an open descriptor,
//! so a file renamed away by logrotate, or deleted, is still read to its end
//! through it. It reads with `pread` at its own position, notices truncation
//! (size below the position, or the head bytes rewritten under it) and starts
//! that identity over at 0.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::frame::{Line, LineFramer};
use crate::identity::{FileId, Fingerprint, FINGERPRINT_WINDOW};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// What one [`FileWatcher::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// This many bytes were read and framed.
    Read(usize),
    /// Nothing new.
    Eof,
    /// The file shrank below the read position or its head bytes changed:
    /// the identity was restarted at offset 0. `at` is where we had been.
    Truncated { at: u64 },
}

/// Open a log file for reading without touching its access time where the
/// kernel allows it. Under `relatime` every read that follows a write
/// writes the inode back (the access time is older than the modification
/// time again); with thousands of files read a line at a time that was a
/// tenth of logferry's CPU. `O_NOATIME` needs the file's owner or
/// CAP_FOWNER, so anything else opens the file normally.
pub fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match File::options()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        opened => opened,
    }
}

#[derive(Debug)]
pub struct FileWatcher {
    id: FileId,
    /// The last path this identity was seen at; for logs and headers only.
    path: PathBuf,
    file: File,
    framer: LineFramer,
    /// Fingerprint of the bytes read so far (up to the window), used to see
    /// the file rewritten in place under us.
    fingerprint: Fingerprint,
    /// The last read hit end of file; the head is re-checked before more
    /// data is trusted, which is how copytruncate followed by a quick
    /// rewrite past our position is caught.
    at_eof: bool,
    /// When the file last produced data (or was opened).
    last_data: Instant,
}

impl FileWatcher {
    /// Follow `file` (found at `path`) from byte `position`. If the file is
    /// now shorter than `position` it is read from 0.
    pub fn new(
        path: &Path,
        file: File,
        position: u64,
        framer_proto: &LineFramer,
    ) -> io::Result<Self> {
        let meta = file.metadata()?;
        let position = if meta.len() < position { 0 } else { position };
        let fingerprint = Fingerprint::read(&file, position)?;
        Ok(FileWatcher {
            id: FileId::of(&meta),
            path: path.to_path_buf(),
            file,
            framer: framer_proto.restarted_at(position),
            fingerprint,
            at_eof: false,
            last_data: Instant::now(),
        })
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn set_path(&mut self, path: &Path) {
        if self.path != path {
            self.path = path.to_path_buf();
        }
    }

    /// The fingerprint of this identity's head, for checkpoints.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Fingerprint of this file's first `len` bytes (up to the window) as
    /// they are now: compared with a file that may be a copy of this one
    /// still being written.
    pub fn head(&self, len: u64) -> io::Result<Fingerprint> {
        Fingerprint::read(&self.file, len)
    }

    /// Offset just past the last byte read.
    pub fn read_position(&self) -> u64 {
        self.framer.consumed()
    }

    /// Start of the unterminated line waiting for its newline (the read
    /// position when none waits).
    pub fn pending_bytes(&self) -> usize {
        self.framer.pending()
    }

    pub fn idle_for(&self) -> std::time::Duration {
        self.last_data.elapsed()
    }

    /// Whether the file was unlinked (no name left). Its descriptor still
    /// reads; callers drain it, then drop the watcher.
    pub fn is_deleted(&self) -> bool {
        self.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true)
    }

    /// Current size of the file behind the descriptor.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Read up to `buf.len()` new bytes and hand every completed line to
    /// `emit`.
    pub fn read<F: FnMut(Line<'_>)>(
        &mut self,
        buf: &mut [u8],
        mut emit: F,
    ) -> Result<Poll, WatchError> {
        let pos = self.framer.consumed();
        let n = loop {
            match self.file.read_at(buf, pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(e)),
            }
        };
        // Past the end we had reached, the file may have been cut and
        // written again: check before trusting what was read.
        if self.at_eof {
            if let Some(at) = self.check_truncation(n).map_err(|e| self.err(e))? {
                // Whatever was waiting for a newline is all that is left of
                // that line; ship it, flagged as a fragment, rather than
                // lose it.
                self.framer.flush_partial(|mut line| {
                    line.truncated = true;
                    emit(line)
                });
                self.framer.reset(0);
                self.fingerprint = Fingerprint::default();
                self.at_eof = false;
                return Ok(Poll::Truncated { at });
            }
        }
        if n == 0 {
            self.at_eof = true;
            return Ok(Poll::Eof);
        }
        // A short read of a regular file ends at its end: say so now rather
        // than learn it from one more read that returns nothing (with
        // thousands of files written a line at a time, that read was a
        // third of the reading).
        self.at_eof = n < buf.len();
        self.last_data = Instant::now();
        if self.fingerprint.len < FINGERPRINT_WINDOW {
            self.fingerprint =
                Fingerprint::read(&self.file, pos + n as u64).map_err(|e| self.err(e))?;
        }
        self.framer.push(&buf[..n], emit);
        Ok(Poll::Read(n))
    }

    /// The last read reached the end of the file as it was then.
    pub fn at_end(&self) -> bool {
        self.at_eof
    }

    /// Read again from `position` (a line start), forgetting what was read
    /// after it: used when records sent from there must be sent again.
    pub fn rewind(&mut self, position: u64) {
        self.framer.reset(position);
        self.at_eof = false;
    }

    /// Emit the unterminated last line, if any, as a line of its own.
    pub fn flush_partial<F: FnMut(Line<'_>)>(&mut self, emit: F) {
        self.framer.flush_partial(emit);
    }

    /// Whether the file was cut (copytruncate) since the end was reached,
    /// given that a read at the position just returned `read` bytes: `Some`
    /// of the position if so. Data past the position means the file is
    /// not shorter, so only its head is compared (a cut followed by writes
    /// past our position); no data means only a shrink needs looking for
    /// (a head rewritten to exactly our length shows at the next growth).
    /// One system call either way.
    fn check_truncation(&self, read: usize) -> io::Result<Option<u64>> {
        let pos = self.framer.consumed();
        if pos == 0 {
            return Ok(None);
        }
        let cut = if read == 0 {
            self.file.metadata()?.len() < pos
        } else {
            !self.fingerprint.matches(&self.file)?
        };
        Ok(cut.then_some(pos))
    }

    fn err(&self, source: io::Error) -> WatchError {
        WatchError::Read {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::LongLinePolicy;
    use std::io::Write;

    fn watcher(path: &Path) -> FileWatcher {
        let framer = LineFramer::new(0, 1 << 20, LongLinePolicy::Truncate, false);
        FileWatcher::new(path, open_log(path).unwrap(), 0, &framer).unwrap()
    }

    /// Writers of logs that are cut in place append (O_APPEND), so after
    /// the cut they write at the new end.
    fn appender(path: &Path) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    fn read_lines(w: &mut FileWatcher) -> (Poll, Vec<String>) {
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        let poll = w
            .read(&mut buf, |l| {
                got.push(String::from_utf8_lossy(l.bytes).into_owned())
            })
            .unwrap();
        (poll, got)
    }

    #[test]
    fn short_read_reaches_the_end_and_growth_is_read_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = appender(&path);
        f.write_all(b"one\ntwo\n").unwrap();
        let mut w = watcher(&path);
        assert_eq!(
            read_lines(&mut w),
            (Poll::Read(8), vec!["one".into(), "two".into()])
        );
        assert!(w.at_end(), "a short read is the end of the file");
        f.write_all(b"three\n").unwrap();
        assert_eq!(read_lines(&mut w), (Poll::Read(6), vec!["three".into()]));
        assert_eq!(read_lines(&mut w).0, Poll::Eof);
    }

    #[test]
    fn cut_and_rewritten_past_the_position_is_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = appender(&path);
        f.write_all(b"2026-11-25 first\n").unwrap();
        let mut w = watcher(&path);
        read_lines(&mut w);
        // copytruncate, then the writer goes on past where we were.
        f.set_len(0).unwrap();
        f.write_all(b"2026-11-25 after the cut, longer than before\n")
            .unwrap();
        assert_eq!(read_lines(&mut w).0, Poll::Truncated { at: 17 });
        assert_eq!(
            read_lines(&mut w).1,
            vec!["2026-11-25 after the cut, longer than before".to_string()]
        );
    }

    #[test]
    fn cut_to_shorter_is_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = appender(&path);
        f.write_all(b"a long first line\n").unwrap();
        let mut w = watcher(&path);
        read_lines(&mut w);
        f.set_len(0).unwrap();
        assert_eq!(read_lines(&mut w).0, Poll::Truncated { at: 18 });
        f.write_all(b"x\n").unwrap();
        assert_eq!(read_lines(&mut w).1, vec!["x".to_string()]);
    }
}
