//! Which generation a file is: every rule that answers "is this file
//! generation X?" lives here, for every caller (resuming at start, a file
//! under a rotated name, a copy made by copytruncate, a file reopened after
//! it was parked, a compressed rotation). Inodes are reused and files share
//! headers, so an inode or a head is only a hint: a file is a generation
//! when it holds the same head *and* the same bytes before the position
//! already shipped ([`Anchor`]), and, where the file system keeps birth
//! times, was not born again.
//!
//! The [`Ledger`](crate::ledger::Ledger) keeps the generations not being
//! read and asks these rules which one a file is; the
//! [`Tailer`](crate::Tailer) asks them about the files it follows.

use std::fs::File;
use std::path::Path;

use crate::follow::{open_log, FileWatcher};
use crate::identity::{read_full, ReadAt, ANCHOR_WINDOW, FINGERPRINT_WINDOW};
use crate::{Anchor, FileCheckpoint, FileId, Fingerprint};

/// The first bytes of a file, read once and compared with fingerprints of
/// any length.
pub struct Head(pub(crate) Vec<u8>);

impl Head {
    pub fn read(file: &File) -> std::io::Result<Head> {
        let mut buf = vec![0u8; FINGERPRINT_WINDOW as usize];
        let got = crate::identity::read_full(&mut { file }, &mut buf, 0)?;
        buf.truncate(got);
        Ok(Head(buf))
    }

    pub fn matches(&self, fp: &Fingerprint) -> bool {
        let len = fp.len as usize;
        len <= self.0.len() && Fingerprint::of_bytes(&self.0[..len]) == *fp
    }
}

/// Whether `src`, of `size` bytes, continues generation `cp`: it reaches the
/// saved position, starts with the same head and holds the same bytes before
/// the anchor.
pub fn continues<R: ReadAt>(cp: &FileCheckpoint, head: &Head, src: &mut R, size: u64) -> bool {
    knows_content(cp)
        && size >= cp.position
        && size >= cp.anchor.at
        && head.matches(&cp.fingerprint)
        && cp.anchor.matches(src).unwrap_or(false)
        // The bytes seen past the position must be there, where the file
        // reaches them: a copytruncate copy may end before them (the
        // writer's last lines before the cut are in no file), and is still
        // this generation's.
        && cp
            .seen
            .is_none_or(|s| size < s.at || s.matches(src).unwrap_or(false))
}

/// Whether `file`, of `size` bytes, on `cp`'s inode is still `cp`'s own file:
/// not born again (where the file system keeps birth times) and holding its
/// content ([`continues`]).
pub fn still_holds(cp: &FileCheckpoint, head: &Head, file: &File, size: u64) -> bool {
    !file.metadata().is_ok_and(|m| reborn(cp.born, &m)) && continues(cp, head, &mut { file }, size)
}

/// Whether generation `cp`'s own file (its inode, found at `path`) still
/// holds it: then a file elsewhere that merely starts alike is not it.
pub fn own_file_holds(cp: &FileCheckpoint, path: &Path) -> bool {
    let Ok(file) = open_log(path) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    FileId::of(&meta) == cp.id
        && Head::read(&file).is_ok_and(|head| still_holds(cp, &head, &file, meta.len()))
}

/// Whether a file now carries another birth time than `was` (its inode
/// was freed and handed to a new file), where the file system keeps one.
pub fn reborn(was: Option<u64>, meta: &std::fs::Metadata) -> bool {
    matches!(
        (was, crate::checkpoint::born_of(meta)),
        (Some(was), Some(now)) if was != now
    )
}

/// What a parked file is checked by when it is reopened, read once: its
/// head and the bytes just before where reading stopped. With 200,000 files
/// under a 16,384-descriptor budget every appended line reopens its file,
/// and the checks and the watcher each reading these again was 11 system
/// calls a line; now it is one `pread` (two for a file read past
/// [`GLANCE_SPAN`]) besides the open, one `statx`, the read and the close.
pub struct Glance {
    head: [u8; FINGERPRINT_WINDOW as usize],
    head_len: usize,
    before: [u8; ANCHOR_WINDOW as usize],
    before_len: usize,
    /// Where `before` ends: the position reading stopped at.
    at: u64,
}

/// Up to here a reopened file's head and the bytes before its position are
/// read in one `pread`.
const GLANCE_SPAN: u64 = 8 << 10;

impl Glance {
    /// Read the head of `file` (of `size` bytes) and the bytes before
    /// `position`. `None` when the file is shorter than `position`.
    pub fn read(file: &File, size: u64, position: u64) -> std::io::Result<Option<Glance>> {
        if size < position {
            return Ok(None);
        }
        let mut g = Glance {
            head: [0; FINGERPRINT_WINDOW as usize],
            head_len: size.min(FINGERPRINT_WINDOW) as usize,
            before: [0; ANCHOR_WINDOW as usize],
            before_len: position.min(ANCHOR_WINDOW) as usize,
            at: position,
        };
        let span = position.max(g.head_len as u64);
        if span <= GLANCE_SPAN {
            let mut buf = [0u8; GLANCE_SPAN as usize];
            let buf = &mut buf[..span as usize];
            if read_full(&mut { file }, buf, 0)? < buf.len() {
                return Ok(None);
            }
            g.head[..g.head_len].copy_from_slice(&buf[..g.head_len]);
            g.before[..g.before_len]
                .copy_from_slice(&buf[position as usize - g.before_len..position as usize]);
        } else {
            let (head, before) = (&mut g.head[..g.head_len], &mut g.before[..g.before_len]);
            if read_full(&mut { file }, head, 0)? < head.len()
                || read_full(&mut { file }, before, position - before.len() as u64)? < before.len()
            {
                return Ok(None);
            }
        }
        Ok(Some(g))
    }

    /// The fingerprint of the first `len` bytes (fewer if the file is
    /// shorter, as [`Fingerprint::read`]).
    pub fn fingerprint(&self, len: u64) -> Fingerprint {
        Fingerprint::of_bytes(&self.head[..(len as usize).min(self.head_len)])
    }

    /// The bytes just before the position (up to [`ANCHOR_WINDOW`]).
    pub fn before(&self) -> &[u8] {
        &self.before[..self.before_len]
    }

    /// Whether the file holds the bytes `proof` covers; read from the file
    /// only when the proof is not of the glanced position.
    fn proves(&self, proof: &Anchor, file: &File) -> bool {
        if proof.at == self.at && proof.len as usize <= self.before_len {
            let bytes = &self.before()[self.before_len - proof.len as usize..];
            return Fingerprint::of_bytes(bytes).hash == proof.hash;
        }
        proof.matches(&mut { file }).unwrap_or(false)
    }
}

/// Whether `file` (`meta` its metadata, `glance` what was read of it), on a
/// parked stream's inode, is still the file that was closed: same head,
/// same bytes before where reading stopped, not born again. Not so: cut
/// (and perhaps rewritten) or replaced while closed.
pub fn still_the_parked_file(
    fingerprint: Fingerprint,
    proof: &Anchor,
    born: Option<u64>,
    file: &File,
    meta: &std::fs::Metadata,
    glance: &Glance,
) -> bool {
    fingerprint.len <= glance.head_len as u64
        && glance.fingerprint(fingerprint.len) == fingerprint
        && glance.proves(proof, file)
        && !reborn(born, meta)
}

/// Whether a file under a rotated name, on the inode of resting
/// generation `cp` and exactly as long as what was shipped of it, is that
/// generation with nothing new: not born again, and (`check_content`: the
/// inode may have been cut and written again to that very length while
/// logferry was stopped) holding its content.
pub fn unchanged_rotated(
    cp: &FileCheckpoint,
    path: &std::path::Path,
    meta: &std::fs::Metadata,
    check_content: bool,
) -> bool {
    // Shorter than what was seen of it (its size, its head): cut since.
    if meta.len() != cp.position
        || meta.len() < cp.size
        || meta.len() < cp.fingerprint.len
        || reborn(cp.born, meta)
    {
        return false;
    }
    !check_content
        || (cp.position == 0 && cp.fingerprint.len == 0)
        || open_log(path)
            .is_ok_and(|f| Head::read(&f).is_ok_and(|head| still_holds(cp, &head, &f, meta.len())))
}

/// How far into its file `cp`'s content is proven (shipped, or seen).
pub(crate) fn proven(cp: &FileCheckpoint) -> u64 {
    cp.seen.map_or(cp.anchor.at, |s| s.at.max(cp.anchor.at))
}

/// Whether anything of `cp`'s content is known. A generation saved before
/// a byte of it was seen proves nothing: any file "continues" it, and taking
/// one for it would read a file already read once more. Its content, if it
/// ever had any, is read as a new file wherever it turns up.
pub(crate) fn knows_content(cp: &FileCheckpoint) -> bool {
    cp.fingerprint.len > 0
}

/// Whether `src`, shorter than the position `u` was read to, is a copy of
/// it: same head, and the latest trail anchor the copy reaches matches.
/// (`src`: a plain file, or a compressed one decoded.)
pub(crate) fn is_short_copy<R: ReadAt>(
    cp: &FileCheckpoint,
    trail: &[Anchor],
    last: &[u8],
    head: &Head,
    src: &mut R,
    size: u64,
) -> bool {
    // Where the copy ends among the last bytes read, those up to its end
    // must be the same.
    let start = cp.anchor.at - last.len() as u64;
    let same_end = |src: &mut R| {
        if last.is_empty() || size <= start {
            return true;
        }
        let n = (size - start) as usize;
        let mut buf = vec![0u8; n];
        crate::identity::read_full(src, &mut buf, start)
            .is_ok_and(|got| got == n && buf[..] == last[..n])
    };
    // (The trail anchor first: it lies before the end, and a decoder
    // reads forward.)
    size < cp.position
        && head.matches(&cp.fingerprint)
        && trail
            .iter()
            .filter(|a| a.at <= size && a.len > 0)
            .max_by_key(|a| a.at)
            .is_some_and(|a| a.matches(src).unwrap_or(false))
        && same_end(src)
}

/// Whether `file` (under a rotated name, `size` bytes) is a copy of the
/// open file `w` (copytruncate copies, then cuts): it repeats all of `w` up
/// to where it was read (a complete copy), or, when `w` is under a current
/// name, all of `file` (a copy still being written).
pub fn copy_of_open(
    w: &mut FileWatcher,
    fingerprint: Fingerprint,
    file: &File,
    size: u64,
    is_current: bool,
) -> bool {
    let pos = w.read_position();
    if w.is_compressed() {
        return false;
    }
    if pos == 0 {
        // Nothing read since a restart at acknowledged position 0: the
        // head known from the checkpoint is what a copy repeats (else a
        // copy would be read as a new generation, and its original, cut,
        // be reported lost though its lines were shipped).
        // The original no longer starting so was cut (its copy, this);
        // still starting so, it must be no shorter than a copy of it.
        let original_cut = w.head(fingerprint.len).ok() != Some(fingerprint);
        return fingerprint.len > 0
            && size >= fingerprint.len
            && Fingerprint::read(file, fingerprint.len).ok() == Some(fingerprint)
            && (original_cut
                || (w.size().is_ok_and(|now| now >= size) && ends_like_original(w, file, size)));
    }
    // Not a longer file whose supposed original still holds what was read
    // and is shorter: it merely starts alike (files sharing a header, the
    // original holding only the header), and waiting for a cut that never
    // comes would never read it. Only files under current names are
    // copied by copytruncate (an empty file would otherwise "repeat" every
    // rotated file still draining, and wait for nothing).
    (size >= pos
        && w.same_content_until(file, pos)
        && w.uncut_size()
            .is_none_or(|now| now >= size && (size == pos || ends_like_original(w, file, size))))
        || (is_current && size < pos && w.same_content_until(file, size))
}

/// Whether `file`, of `size` bytes, ends as the uncut original `w` reads at
/// that offset: a copy of a file that was not cut holds exactly its first
/// `size` bytes (the original only grows). Files that share a header repeat
/// whatever was read of one another while only the header was read; the
/// bytes before the copy's end tell them apart (else such a file waited
/// for a cut that never came, and its lines were never read).
fn ends_like_original(w: &mut FileWatcher, file: &File, size: u64) -> bool {
    match Anchor::read(&mut { file }, size) {
        Ok(Some(end)) => w.holds(&end),
        _ => false,
    }
}

/// [`copy_of_open`] for a parked file (closed under the budget at `at`,
/// with `proof` of what was read), compared with what was kept.
pub fn copy_of_parked(
    fingerprint: Fingerprint,
    proof: &Anchor,
    at: u64,
    id: FileId,
    path: &Path,
    file: &File,
    size: u64,
) -> bool {
    let repeats = |f: &File| {
        Fingerprint::read(f, fingerprint.len).ok() == Some(fingerprint)
            && proof.matches(&mut { f }).unwrap_or(false)
    };
    // (As for an open file: an original still holding what was read and
    // shorter than this file is not its original.)
    let outgrown = || {
        open_log(path).is_ok_and(|f| {
            f.metadata()
                .is_ok_and(|m| FileId::of(&m) == id && m.len() < size)
                && repeats(&f)
        })
    };
    // At 0 (nothing acknowledged since a restart), the head is the proof.
    (at > 0 || fingerprint.len > 0) && size >= at && repeats(file) && !outgrown()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        path
    }

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{i:06} GET /item/{i} 200 {}\n", i * 7).into_bytes())
            .collect()
    }

    /// A glance reads what the separate reads it replaces read: the head's
    /// fingerprint, the anchor of the position, and the watcher built from
    /// it is the one built by reading (below and above the one-read span).
    #[test]
    fn a_glance_sees_what_the_reads_it_replaces_see() {
        let dir = tempfile::tempdir().unwrap();
        for n in [3usize, 20, 2_000] {
            let bytes = lines(n);
            let path = file_of(&dir, &format!("{n}.log"), &bytes);
            let positions = [1, 100, bytes.len() as u64 / 2, bytes.len() as u64];
            for position in positions.into_iter().filter(|&p| p <= bytes.len() as u64) {
                let file = open_log(&path).unwrap();
                let meta = file.metadata().unwrap();
                let g = Glance::read(&file, meta.len(), position).unwrap().unwrap();
                for len in [0, 10, position, FINGERPRINT_WINDOW] {
                    assert_eq!(g.fingerprint(len), Fingerprint::read(&file, len).unwrap());
                }
                let framer =
                    crate::LineFramer::new(0, 1 << 20, crate::LongLinePolicy::Truncate, false);
                let fast = FileWatcher::reopened(
                    &path,
                    open_log(&path).unwrap(),
                    FileId::of(&meta),
                    position,
                    &g,
                    &framer,
                );
                let mut fast = fast;
                let mut slow =
                    FileWatcher::new(&path, open_log(&path).unwrap(), position, &framer).unwrap();
                assert_eq!(
                    fast.fingerprint(),
                    slow.fingerprint(),
                    "n {n} at {position}"
                );
                assert_eq!(
                    fast.anchor_at(position),
                    slow.anchor_at(position),
                    "n {n} at {position}"
                );
                let proof = slow.anchor_at(position).unwrap();
                let fp = Fingerprint::read(&file, position).unwrap();
                assert!(g.proves(&proof, &file), "n {n} at {position}: proof");
                assert_eq!(g.fingerprint(fp.len), fp, "n {n} at {position}");
                assert!(
                    still_the_parked_file(
                        fp,
                        &proof,
                        crate::checkpoint::born_of(&meta),
                        &file,
                        &meta,
                        &g
                    ),
                    "n {n} at {position}"
                );
            }
        }
    }

    /// Cut shorter, or rewritten where the head or the proven bytes were:
    /// not the parked file.
    #[test]
    fn a_glance_sees_a_cut_or_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = lines(500);
        let position = bytes.len() as u64 - 40;
        let path = file_of(&dir, "a.log", &bytes);
        let parked = {
            let file = open_log(&path).unwrap();
            let fp = Fingerprint::read(&file, position).unwrap();
            let proof = Anchor::read(&mut { &file }, position).unwrap().unwrap();
            (fp, proof)
        };
        let judge = |content: &[u8]| {
            std::fs::write(&path, content).unwrap();
            let file = open_log(&path).unwrap();
            let meta = file.metadata().unwrap();
            Glance::read(&file, meta.len(), position)
                .unwrap()
                .is_some_and(|g| still_the_parked_file(parked.0, &parked.1, None, &file, &meta, &g))
        };
        let mut grown = bytes.clone();
        grown.extend_from_slice(b"one more line\n");
        assert!(judge(&grown), "appended to: the same file");
        assert!(!judge(&bytes[..100]), "cut shorter");
        let mut head = grown.clone();
        head[3] = b'X';
        assert!(!judge(&head), "head rewritten");
        let mut proven = grown.clone();
        proven[position as usize - 5] = b'X';
        assert!(!judge(&proven), "bytes before the position rewritten");
    }
}
