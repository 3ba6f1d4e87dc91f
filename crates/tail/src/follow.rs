//! Following one file identity. A [`FileWatcher`] owns an open descriptor,
//! so a file renamed away by logrotate, or deleted, is still read to its end
//! through it. It reads with `pread` at its own position, notices truncation
//! (size below the position, or the head bytes rewritten under it) and starts
//! that identity over at 0. It can also follow a compressed rotated file
//! through its decompressed bytes ([`Gz`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::compressed::Gz;
use crate::frame::{Line, LineFramer};
use crate::identity::{Anchor, FileId, Fingerprint, ReadAt, ANCHOR_WINDOW, FINGERPRINT_WINDOW};

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
    /// the identity was restarted at offset 0. `at` is where the last line
    /// not read whole began (where a copy of the old content is read from).
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

/// What a watcher reads: a log file, or the decompressed content of a
/// compressed rotated one (which never changes).
#[derive(Debug)]
enum Body {
    Plain(File),
    Gz(Box<Gz>),
}

impl ReadAt for Body {
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self {
            Body::Plain(f) => FileExt::read_at(f, buf, pos),
            Body::Gz(g) => g.read_at(buf, pos),
        }
    }
}

#[derive(Debug)]
pub struct FileWatcher {
    id: FileId,
    /// The last path this identity was seen at; for logs and headers only.
    path: PathBuf,
    body: Body,
    framer: LineFramer,
    /// Fingerprint of the bytes read so far (up to the window), used to see
    /// the file rewritten in place under us.
    fingerprint: Fingerprint,
    /// A longer head than was read, known from the checkpoint or a look at
    /// the file (see [`FileWatcher::know_head`]): compared for cuts only.
    known_head: Fingerprint,
    /// The last read hit end of file; the bytes before the position are
    /// checked again before more data is trusted, which is how copytruncate
    /// followed by a quick rewrite past our position is caught.
    at_eof: bool,
    /// When the file last produced data (or was opened).
    last_data: Instant,
    /// The last bytes read (up to [`ANCHOR_WINDOW`]), ending at `tail_end`:
    /// the anchor of the read position without a system call, and the only
    /// record of it once the file was cut in place.
    tail: Vec<u8>,
    tail_end: u64,
    /// The anchor of the read position just before a cut, for the caller
    /// to find the copy by.
    cut_anchor: Option<Anchor>,
    /// The bytes that anchor covers (the last ones read before the cut),
    /// so that a copy ending among them is compared byte for byte.
    cut_bytes: Vec<u8>,
    /// Anchors every [`TRAIL_SPACING`] bytes of the last stretch read: a
    /// copy made before the last reads (copytruncate copies, the writer
    /// appends, then the file is cut) ends before the read position, and is
    /// recognised by one of these.
    trail: std::collections::VecDeque<Anchor>,
    next_trail_at: u64,
}

/// Distance between trail anchors, and how many are kept: the last 2 MiB
/// read are covered (a hash of 256 bytes every 64 KiB: nothing next to the
/// reading itself).
const TRAIL_SPACING: u64 = 64 << 10;
const TRAIL_LEN: usize = 32;

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
        // Opened at its start, the file is this generation as it is now: its
        // head, known before the first read, is what a cut in between (a
        // copytruncate racing a start) is seen by, and what makes a look at
        // the file later (a proof of bytes seen, a wider head) a look at
        // this generation and not at whatever was written after a cut.
        let known_head = if position == 0 {
            Fingerprint::read(&file, FINGERPRINT_WINDOW)?
        } else {
            Fingerprint::default()
        };
        let mut watcher = Self::with_body(
            FileId::of(&meta),
            path,
            Body::Plain(file),
            position,
            fingerprint,
            framer_proto,
        );
        watcher.known_head = known_head;
        Ok(watcher)
    }

    /// Follow a parked file reopened at `position`, from what
    /// [`Glance::read`](crate::identify::Glance::read) read of it for the
    /// identity check: nothing is read again. `id` was checked by the
    /// caller.
    pub fn reopened(
        path: &Path,
        file: File,
        id: FileId,
        position: u64,
        glance: &crate::identify::Glance,
        framer_proto: &LineFramer,
    ) -> Self {
        let mut tail = Vec::with_capacity(ANCHOR_WINDOW as usize);
        tail.extend_from_slice(glance.before());
        FileWatcher {
            tail,
            tail_end: position,
            ..Self::unread(
                id,
                path,
                Body::Plain(file),
                position,
                glance.fingerprint(position),
                framer_proto,
            )
        }
    }

    /// Follow the decompressed content of the compressed file at `path`
    /// from `position`. `id` is the compressed file's identity.
    pub fn compressed(
        path: &Path,
        id: FileId,
        position: u64,
        framer_proto: &LineFramer,
    ) -> io::Result<Self> {
        // Renamed between the scan and now (logrotate shifts numbered
        // names): another file; the next scan sees it as it is.
        let gz = crate::compressed::open_as(path, id)?;
        let mut body = Body::Gz(Box::new(gz));
        let fingerprint = Fingerprint::read_from(&mut body, position)?;
        Ok(Self::with_body(
            id,
            path,
            body,
            position,
            fingerprint,
            framer_proto,
        ))
    }

    fn with_body(
        id: FileId,
        path: &Path,
        mut body: Body,
        position: u64,
        fingerprint: Fingerprint,
        framer_proto: &LineFramer,
    ) -> Self {
        // The bytes before the start position, so the anchor of where
        // reading got to is known without going back (for a compressed
        // file, going back means decompressing again from the start).
        let before = position.min(ANCHOR_WINDOW);
        let mut tail = vec![0u8; before as usize];
        let (tail, tail_end) =
            match crate::identity::read_full(&mut body, &mut tail, position - before) {
                Ok(n) if n as u64 == before => (tail, position),
                _ => (Vec::with_capacity(ANCHOR_WINDOW as usize), u64::MAX),
            };
        FileWatcher {
            tail,
            tail_end,
            ..Self::unread(id, path, body, position, fingerprint, framer_proto)
        }
    }

    /// A watcher at `position` that knows nothing of the bytes before it.
    fn unread(
        id: FileId,
        path: &Path,
        body: Body,
        position: u64,
        fingerprint: Fingerprint,
        framer_proto: &LineFramer,
    ) -> Self {
        FileWatcher {
            id,
            path: path.to_path_buf(),
            body,
            framer: framer_proto.restarted_at(position),
            fingerprint,
            known_head: Fingerprint::default(),
            at_eof: false,
            last_data: Instant::now(),
            tail: Vec::new(),
            tail_end: u64::MAX,
            cut_anchor: None,
            cut_bytes: Vec::new(),
            trail: std::collections::VecDeque::new(),
            next_trail_at: 0,
        }
    }

    /// How far reading got in bytes on disk (for a compressed file, in its
    /// compressed bytes): for progress reports.
    pub fn disk_position(&self) -> u64 {
        match &self.body {
            Body::Plain(_) => self.read_position(),
            Body::Gz(g) => g.disk_position(),
        }
    }

    /// Whether this follows a compressed file (which never grows or is cut).
    pub fn is_compressed(&self) -> bool {
        matches!(self.body, Body::Gz(_))
    }

    /// The anchor at `at` (a position already read), from the bytes last
    /// read when they end there, else read from the file; `None` when the
    /// file no longer holds it or it would mean decompressing again.
    /// Where the bytes kept in memory end, when they make an anchor there
    /// (see [`anchor_at`](Self::anchor_at), which reads none then).
    pub fn last_read_at(&self) -> Option<u64> {
        (self.tail_end != u64::MAX && self.tail.len() as u64 == self.tail_end.min(ANCHOR_WINDOW))
            .then_some(self.tail_end)
    }

    pub fn anchor_at(&mut self, at: u64) -> Option<Anchor> {
        if self.tail_end == at && (self.tail.len() as u64 == at.min(ANCHOR_WINDOW)) {
            return Some(Anchor::of_bytes(&self.tail, at));
        }
        // Every file holds the bytes before its start.
        if at == 0 {
            return Some(Anchor::of_bytes(&[], 0));
        }
        let head = self.head_proof();
        match &mut self.body {
            // The file may have been cut and written again since it was
            // read (seen at the next read): its bytes prove nothing then.
            Body::Plain(f) if Self::still_starts_as_known(head, f) => {
                Anchor::read(&mut &*f, at).ok().flatten()
            }
            _ => None,
        }
    }

    /// The anchor of where reading had got to when the file was found cut
    /// (taken once).
    pub fn take_cut_anchor(&mut self) -> Option<Anchor> {
        self.cut_anchor.take()
    }

    /// The bytes before the cut anchor's position, as read (taken once;
    /// empty when there is no cut anchor).
    pub fn take_cut_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.cut_bytes)
    }

    /// Anchors at earlier positions read before the cut (taken once).
    pub fn take_cut_trail(&mut self) -> Vec<Anchor> {
        self.next_trail_at = 0;
        self.trail.drain(..).collect()
    }

    /// Whether `other` holds the same bytes as this file before `at`, and
    /// the same head (so it is a copy of this file up to `at`).
    pub fn same_content_until(&mut self, other: &File, at: u64) -> bool {
        // The head as it was read: the file itself may have been cut
        // already (copytruncate cuts right after copying), which is not
        // known until the next read.
        let mine_head = if self.fingerprint.len <= at {
            Some(self.fingerprint)
        } else {
            Fingerprint::read_from(&mut self.body, at).ok()
        };
        let theirs_head = mine_head.and_then(|h| Fingerprint::read(other, h.len).ok());
        if theirs_head.is_none() || theirs_head != mine_head {
            return false;
        }
        // The bytes before `at` as read; if they are gone from the file (it
        // was cut, and the next read will say so), the latest trail anchor
        // before `at` stands in for them.
        let mine = self.anchor_at(at).or_else(|| {
            self.trail
                .iter()
                .filter(|a| a.at <= at && a.len > 0)
                .max_by_key(|a| a.at)
                .copied()
        });
        match mine {
            Some(a) => a.matches(&mut { other }).unwrap_or(false),
            // Cut, and nothing kept that far back: say yes for now; once
            // the cut is read, the copy is judged against what was kept.
            None => self.size().is_ok_and(|size| size < at),
        }
    }

    /// The file's size now, if it still holds what was read (its head, and
    /// the bytes before the read position): `None` when it was cut (or that
    /// cannot be told). An uncut file only grows, so a copy of it holds at
    /// most its size now, and a file longer than that is no copy of it.
    pub fn uncut_size(&mut self) -> Option<u64> {
        let at = self.read_position();
        let mine = self.anchor_at(at)?;
        let Body::Plain(f) = &self.body else {
            return None;
        };
        let size = f.metadata().ok()?.len();
        (self.fingerprint.matches(f).unwrap_or(false) && mine.matches(&mut &*f).unwrap_or(false))
            .then_some(size)
    }

    /// Whether this file holds the bytes of `anchor` (read from the file as
    /// it is now; a compressed one is never asked).
    pub fn holds(&mut self, anchor: &Anchor) -> bool {
        match &self.body {
            Body::Plain(f) => anchor.matches(&mut &*f).unwrap_or(false),
            Body::Gz(_) => false,
        }
    }

    /// Remember the bytes just read (ending at `end`) for anchors.
    fn note_tail(&mut self, data: &[u8], end: u64) {
        let window = ANCHOR_WINDOW as usize;
        if data.len() >= window {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - window..]);
        } else if self.tail_end == end - data.len() as u64 {
            // Drop first, then append: the buffer never outgrows the
            // window (it is kept for every followed file).
            let extra = (self.tail.len() + data.len()).saturating_sub(window);
            self.tail.drain(..extra);
            self.tail.extend_from_slice(data);
        } else if end == data.len() as u64 {
            // The file's first bytes: nothing before them.
            self.tail.clear();
            self.tail.extend_from_slice(data);
        } else {
            self.tail_end = u64::MAX;
            return;
        }
        self.tail_end = end;
        if end >= self.next_trail_at && self.tail.len() as u64 == end.min(ANCHOR_WINDOW) {
            if self.trail.len() == TRAIL_LEN {
                self.trail.pop_front();
            }
            self.trail.push_back(Anchor::of_bytes(&self.tail, end));
            self.next_trail_at = end + TRAIL_SPACING;
        }
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

    /// The head this file was matched by (from the checkpoint) when more
    /// of it is known than was read: a cut before the first read (a restart
    /// at offset 0 racing copytruncate) is then seen, as any other.
    pub fn know_head(&mut self, fingerprint: Fingerprint) {
        if fingerprint.len > self.known_head.len {
            self.known_head = fingerprint;
        }
    }

    /// The longest head this file is known to start with: a file that
    /// does not is not this file any more.
    fn head_proof(&self) -> Fingerprint {
        if self.known_head.len > self.fingerprint.len {
            self.known_head
        } else {
            self.fingerprint
        }
    }

    /// The longest head this file is known to start with (read, from the
    /// checkpoint, or looked at when it was opened at its start).
    pub fn known_head(&self) -> Fingerprint {
        self.head_proof()
    }

    /// Whether the file still starts with the head known for it. An empty
    /// head proves nothing: a look at such a file may see bytes written
    /// after a cut, so it is not trusted past its start.
    fn still_starts_as_known(head: Fingerprint, f: &File) -> bool {
        head.len > 0 && head.matches(f).unwrap_or(false)
    }

    /// Whether the file (plain) still starts with the head known for it,
    /// non-empty: what is seen in it now belongs to this generation.
    pub fn holds_known_head(&self) -> bool {
        match &self.body {
            Body::Plain(f) => Self::still_starts_as_known(self.head_proof(), f),
            Body::Gz(_) => false,
        }
    }

    /// Fingerprint of this file's first `len` bytes (up to the window) as
    /// they are now: compared with a file that may be a copy of this one
    /// still being written.
    pub fn head(&mut self, len: u64) -> io::Result<Fingerprint> {
        Fingerprint::read_from(&mut self.body, len)
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

    /// Current size of the file behind the descriptor (of a compressed
    /// one: how far it was read, all that is known without decoding).
    pub fn size(&self) -> io::Result<u64> {
        match &self.body {
            Body::Plain(f) => Ok(f.metadata()?.len()),
            Body::Gz(_) => Ok(self.framer.consumed()),
        }
    }

    /// Read up to `buf.len()` new bytes and hand every completed line to
    /// `emit`.
    pub fn read<F: FnMut(Line<'_>)>(
        &mut self,
        buf: &mut [u8],
        emit: F,
    ) -> Result<Poll, WatchError> {
        let pos = self.framer.consumed();
        // Past the end we had reached, the file may have been cut and
        // written again. Where the bytes just before the position are in
        // memory, they are read again together with the new ones and
        // compared: one system call both proves the file still holds what
        // was read and returns what follows (a separate head check was a
        // second `pread` per read, a tenth of the CPU with 10,000 files).
        //
        // Done on every read, not only after one that reached the end: a
        // file cut right after a read that filled the buffer would else be
        // read on at the old position, as if its new content continued the
        // old (the crash model found it; with 1 MiB reads in a backlog
        // such reads are the common case). The bytes re-read are at most
        // 256 of a large buffer.
        let overlap = self.overlap_before(pos, buf.len());
        let got = loop {
            match self.body.read_at(buf, pos - overlap as u64) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(e)),
            }
        };
        let cut = if overlap > 0 {
            // Shorter than the position, or other bytes before it.
            got < overlap || buf[..overlap] != self.tail[self.tail.len() - overlap..]
        } else {
            self.check_truncation(got - overlap)
                .map_err(|e| self.err(e))?
        };
        if cut {
            let at = pos;
            let whole = self.tail_end == at && self.tail.len() as u64 == at.min(ANCHOR_WINDOW);
            self.cut_anchor = whole.then(|| Anchor::of_bytes(&self.tail, at));
            self.cut_bytes = if whole { self.tail.clone() } else { Vec::new() };
            self.tail_end = u64::MAX;
            // A line begun and not finished is not shipped as a
            // fragment: its whole is in the copy, if copytruncate made
            // one, read from where the line starts; if none is found,
            // its bytes are reported lost with the rest.
            let line_start = at - self.framer.pending() as u64;
            self.framer.reset(0);
            self.fingerprint = Fingerprint::default();
            self.known_head = Fingerprint::default();
            self.at_eof = false;
            return Ok(Poll::Truncated { at: line_start });
        }
        let n = got.saturating_sub(overlap);
        if n == 0 {
            self.at_eof = true;
            return Ok(Poll::Eof);
        }
        // A short read of a regular file ends at its end: say so now rather
        // than learn it from one more read that returns nothing (with
        // thousands of files written a line at a time, that read was a
        // third of the reading).
        self.at_eof = got < buf.len();
        self.last_data = Instant::now();
        let data = &buf[overlap..got];
        self.note_tail(data, pos + n as u64);
        if self.fingerprint.len < FINGERPRINT_WINDOW {
            self.widen_fingerprint(pos + n as u64)
                .map_err(|e| self.err(e))?;
        }
        self.framer.push(data, emit);
        Ok(Poll::Read(n))
    }

    /// How many bytes before `pos` to read again with the next read, to see
    /// that the file still holds them: all those kept in memory, when they
    /// end at `pos` and leave most of a `buf_len` buffer for new data.
    fn overlap_before(&self, pos: u64, buf_len: usize) -> usize {
        let kept = self.tail.len();
        let whole = self.tail_end == pos && kept as u64 == pos.min(ANCHOR_WINDOW);
        if matches!(self.body, Body::Plain(_)) && pos > 0 && whole && buf_len >= 4 * kept {
            kept
        } else {
            0
        }
    }

    /// Extend a head fingerprint shorter than the window after a read that
    /// ended at `end`: from the bytes kept in memory when they reach back
    /// to the file's start, else by reading the head.
    fn widen_fingerprint(&mut self, end: u64) -> io::Result<()> {
        const _: () = assert!(ANCHOR_WINDOW >= FINGERPRINT_WINDOW);
        self.fingerprint = if self.tail_end == end && self.tail.len() as u64 == end {
            Fingerprint::of_bytes(&self.tail[..end.min(FINGERPRINT_WINDOW) as usize])
        } else {
            Fingerprint::read_from(&mut self.body, end)?
        };
        Ok(())
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
        self.tail_end = u64::MAX;
    }

    /// Emit the unterminated last line, if any, as a line of its own.
    pub fn flush_partial<F: FnMut(Line<'_>)>(&mut self, emit: F) {
        self.framer.flush_partial(emit);
    }

    /// Whether the file was cut (copytruncate) since the end was reached,
    /// given that a read at the position just returned `read` bytes, when
    /// the bytes before the position are not in memory to compare (after a
    /// rewind, or a start whose earlier bytes could not be read). Data past the position means the file is
    /// not shorter, so only its head is compared (a cut followed by writes
    /// past our position); no data means only a shrink needs looking for
    /// (a head rewritten to exactly our length shows at the next growth).
    /// One system call either way.
    fn check_truncation(&self, read: usize) -> io::Result<bool> {
        let pos = self.framer.consumed();
        let Body::Plain(file) = &self.body else {
            return Ok(false); // A compressed file is never rewritten.
        };
        let head = self.head_proof();
        if pos == 0 && head.len == 0 {
            return Ok(false);
        }
        // No data: shorter than the position, or (rarely, and found only
        // here) cut and rewritten to exactly the position with other bytes.
        let cut = if read == 0 {
            file.metadata()?.len() < pos || !head.matches(file)?
        } else {
            !head.matches(file)?
        };
        Ok(cut)
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
        // Where reading had got to before the cut is still known by content.
        let anchor = w.take_cut_anchor().expect("anchor of the cut position");
        assert_eq!(anchor, Anchor::of_bytes(b"2026-11-25 first\n", 17));
        assert_eq!(
            read_lines(&mut w).1,
            vec!["2026-11-25 after the cut, longer than before".to_string()]
        );
    }

    /// Real formats share long headers (a CSV header, a banner): a file cut
    /// and written again past the position can keep its head, but not the
    /// bytes just before the position.
    #[test]
    fn cut_and_rewritten_under_a_shared_header_is_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let header = format!("#{}\n", "fields: time host request status ".repeat(10));
        let mut f = appender(&path);
        f.write_all(format!("{header}12:00:01 first\n").as_bytes())
            .unwrap();
        let mut w = watcher(&path);
        read_lines(&mut w);
        let at = header.len() as u64 + 15;
        f.set_len(0).unwrap();
        f.write_all(format!("{header}12:00:02 second, longer\n").as_bytes())
            .unwrap();
        assert_eq!(read_lines(&mut w).0, Poll::Truncated { at });
        assert_eq!(
            read_lines(&mut w).1.last().unwrap(),
            "12:00:02 second, longer"
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
