//! The generations logferry knows of but is not reading right now, and how
//! a newly found file is matched to one of them.
//!
//! - *Resting* generations were read (or at least checkpointed) and their
//!   file may be found again under its inode: a restart, a rotated file seen
//!   once more. The inode is only a hint: the file must still hold the same
//!   head and the same bytes before the saved position (its [`Anchor`]), or
//!   the inode was handed to another file.
//! - *Unfinished* generations have bytes logferry has not shipped and no
//!   file it knows holds them: the original was cut in place (copytruncate)
//!   and the copy is still to be found, or a checkpointed file vanished
//!   while logferry was stopped (renamed, compressed). They are looked for by
//!   content, in plain and in compressed rotated files, for
//!   [`UNFINISHED_TTL`]; one never found is a loss, said with its byte count.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::compressed;
use crate::identity::{ReadAt, FINGERPRINT_WINDOW};
use crate::{Anchor, FileCheckpoint, FileId, Fingerprint};

/// How long an unfinished generation is looked for before it is declared
/// lost. logrotate compresses a rotated file right after rotating it (or at
/// the next rotation with `delaycompress`, when the plain file is still
/// there), so a generation that is neither under a rotated name nor in a
/// compressed file after this long is gone.
pub const UNFINISHED_TTL: Duration = Duration::from_secs(60);

/// A generation whose remaining bytes must be found in another file.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub cp: FileCheckpoint,
    pub since: Instant,
    /// Anchors at earlier positions of the generation (in memory only): a
    /// copy that ends before `cp.position` is recognised by them.
    pub trail: Vec<Anchor>,
}

/// A compressed file already examined, so it is decompressed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GzKey {
    id: FileId,
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Ledger {
    /// How long unfinished generations are looked for.
    ttl: Duration,
    resting: HashMap<FileId, FileCheckpoint>,
    unfinished: Vec<Unfinished>,
    /// Compressed files examined and found to hold nothing unfinished.
    gz_seen: HashMap<FileId, GzKey>,
}

/// The first bytes of a file, read once and compared with fingerprints of
/// any length.
pub struct Head(Vec<u8>);

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
        && cp
            .seen
            .is_none_or(|s| size >= s.at && s.matches(src).unwrap_or(false))
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            ttl: UNFINISHED_TTL,
            resting: HashMap::new(),
            unfinished: Vec::new(),
            gz_seen: HashMap::new(),
        }
    }
}

/// How far into its file `cp`'s content is proven (shipped, or seen).
fn proven(cp: &FileCheckpoint) -> u64 {
    cp.seen.map_or(cp.anchor.at, |s| s.at.max(cp.anchor.at))
}

/// Whether anything of `cp`'s content is known. A generation saved before
/// a byte of it was seen proves nothing: any file "continues" it, and taking
/// one for it would read a file already read once more. Its content, if it
/// ever had any, is read as a new file wherever it turns up.
fn knows_content(cp: &FileCheckpoint) -> bool {
    cp.fingerprint.len > 0
}

/// Whether `file`, shorter than the position `u` was read to, is a copy of
/// it: same head, and the latest trail anchor the copy reaches matches.
fn is_short_copy(u: &Unfinished, head: &Head, file: &File, size: u64) -> bool {
    size < u.cp.position
        && head.matches(&u.cp.fingerprint)
        && u.trail
            .iter()
            .filter(|a| a.at <= size && a.len > 0)
            .max_by_key(|a| a.at)
            .is_some_and(|a| a.matches(&mut { file }).unwrap_or(false))
}

impl Ledger {
    pub fn new(saved: Vec<FileCheckpoint>, ttl: Duration) -> Self {
        let mut ledger = Ledger {
            ttl,
            ..Ledger::default()
        };
        for cp in saved {
            if cp.unfinished {
                ledger.unfinish(cp);
            } else {
                ledger.rest(cp);
            }
        }
        ledger
    }

    pub fn is_empty(&self) -> bool {
        self.resting.is_empty() && self.unfinished.is_empty()
    }

    /// Keep a generation that is not being read, findable by its inode. An
    /// older one on the same inode (the inode was freed and reused since) is
    /// looked for by content, in case it had more than was read.
    pub fn rest(&mut self, cp: FileCheckpoint) {
        if let Some(old) = self.resting.insert(cp.id, cp) {
            self.unfinish(old);
        }
    }

    /// The resting generation last seen on inode `id`.
    pub fn resting(&mut self, id: &FileId) -> Option<&mut FileCheckpoint> {
        self.resting.get_mut(id)
    }

    /// Take the resting generation of inode `id` if `file` still holds it.
    /// If the inode now holds other content, the generation is looked for
    /// elsewhere (it may be a copy or compressed) and `Err` names where it
    /// was.
    pub fn resume(
        &mut self,
        id: &FileId,
        head: &Head,
        file: &File,
        size: u64,
    ) -> Result<Option<FileCheckpoint>, String> {
        let Some(cp) = self.resting.remove(id) else {
            return Ok(None);
        };
        if !knows_content(&cp) {
            // Nothing of it was seen: the file is read as a new one.
            return Ok(None);
        }
        let reborn = matches!(
            (cp.born, file.metadata().ok().as_ref().and_then(crate::checkpoint::born_of)),
            (Some(was), Some(now)) if was != now
        );
        if !reborn && continues(&cp, head, &mut { file }, size) {
            return Ok(Some(cp));
        }
        let was = cp.path.clone();
        self.unfinish(cp);
        Err(was)
    }

    /// Look for a generation that has unread bytes elsewhere.
    pub fn unfinish(&mut self, cp: FileCheckpoint) {
        self.unfinish_with_trail(cp, Vec::new());
    }

    /// [`unfinish`](Self::unfinish), with anchors at earlier positions:
    /// copytruncate copies, then cuts, and a writer that appends in between
    /// leaves the copy shorter than what was read. Such a copy holds
    /// nothing unread, and the trail proves it is this generation's.
    pub fn unfinish_with_trail(&mut self, cp: FileCheckpoint, trail: Vec<Anchor>) {
        if self
            .unfinished
            .iter()
            .any(|u| u.cp.generation == cp.generation)
        {
            return;
        }
        self.unfinished.push(Unfinished {
            cp: FileCheckpoint {
                unfinished: false,
                ..cp
            },
            since: Instant::now(),
            trail,
        });
        // Compressed files judged against the earlier set may hold this one.
        self.gz_seen.clear();
    }

    /// Resting generations whose inode the first scan did not find: they
    /// were renamed out of sight, compressed or deleted while logferry was
    /// stopped, and are looked for by content.
    pub fn unfinish_unseen(&mut self, seen: &std::collections::HashSet<FileId>) {
        let gone: Vec<FileId> = self
            .resting
            .keys()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(cp) = self.resting.remove(&id) {
                self.unfinish(cp);
            }
        }
    }

    /// A generation (unfinished first, then resting under another inode)
    /// that `file` continues: a copy made by copytruncate, or a file renamed
    /// while logferry was stopped and found under a new inode.
    pub fn take_continued(
        &mut self,
        head: &Head,
        file: &File,
        size: u64,
    ) -> Option<FileCheckpoint> {
        // The one read furthest wins, unfinished or resting: a file that
        // starts with another's whole content (a header-only file, then one
        // with lines) matches both, and only the longer proof is this
        // file's. On a tie, the unfinished one (a resting one holds no more
        // than was read of it). Resting generations with no anchor (loaded
        // from a version 1 checkpoint) are matched by inode only: their
        // head alone proves nothing.
        let unfinished = self
            .unfinished
            .iter()
            .filter(|u| continues(&u.cp, head, &mut { file }, size))
            .map(|u| (proven(&u.cp), true, u.cp.generation))
            .max();
        let resting = self
            .resting
            .values()
            .filter(|cp| cp.anchor.len > 0 || cp.position == 0)
            .filter(|cp| continues(cp, head, &mut { file }, size))
            .map(|cp| (proven(cp), false, cp.generation, cp.id))
            .max();
        let unfinished_wins = match (&unfinished, &resting) {
            (Some(u), Some(r)) => (u.0, u.1) >= (r.0, r.1),
            (u, _) => u.is_some(),
        };
        if unfinished_wins {
            let generation = unfinished.map(|u| u.2)?;
            let i = self
                .unfinished
                .iter()
                .position(|x| x.cp.generation == generation)?;
            if size == self.unfinished[i].cp.position {
                // Holds no more than was read: a copy of what was shipped,
                // taken as such, while the generation is still looked for
                // elsewhere (a `.gz` of a longer copy, when files share
                // their first bytes, would otherwise go unread).
                return Some(self.unfinished[i].cp.clone());
            }
            return Some(self.unfinished.swap_remove(i).cp);
        }
        if let Some(r) = resting {
            return self.resting.remove(&r.3);
        }
        if let Some(i) = self
            .unfinished
            .iter()
            .position(|u| is_short_copy(u, head, file, size))
        {
            // Everything the copy holds was read already: it continues the
            // generation at its end, with nothing to read.
            let mut cp = self.unfinished.swap_remove(i).cp;
            cp.position = size;
            cp.anchor = Anchor::read(&mut { file }, size)
                .ok()
                .flatten()
                .unwrap_or(cp.anchor);
            return Some(cp);
        }
        None
    }

    /// Whether any generation waits for its bytes to be found.
    pub fn has_unfinished(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// Look in a compressed rotated file for an unfinished generation; at
    /// most one decompression per file version.
    ///
    /// `live`: the head and the anchor of where reading got to of files
    /// being read. A compressed file that repeats one of them further than
    /// any unfinished generation is its copy (copytruncate, then
    /// `compress`), whose original is not seen cut yet: it is left for the
    /// next scan, when the cut has made that generation unfinished.
    pub fn take_from_compressed(
        &mut self,
        path: &Path,
        id: FileId,
        meta: &std::fs::Metadata,
        live: &[(Fingerprint, Anchor)],
    ) -> Option<FileCheckpoint> {
        if self.unfinished.is_empty() {
            return None;
        }
        let key = GzKey {
            id,
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        if self.gz_seen.get(&id) == Some(&key) {
            return None;
        }
        let fail = |e: std::io::Error, seen: &mut HashMap<FileId, GzKey>| {
            // Still being written by gzip: look again at the next scan.
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                tracing::warn!(path = %path.display(), error = %e, "cannot read compressed file");
                seen.insert(id, key);
            }
        };
        // The head first (a few bytes to inflate), to pick the candidates:
        // unfinished generations, and resting ones with the same head, since
        // a file that merely starts with an unfinished one's content (files
        // sharing a header) may be a finished generation compressed.
        let head = match compressed::probe(path, &[]) {
            Ok(p) => Head(p.head),
            Err(e) => {
                fail(e, &mut self.gz_seen);
                return None;
            }
        };
        // (kind, generation if known, fingerprint, anchor): kind 2 is
        // unfinished, 1 live, 0 resting; a tie goes to the higher kind.
        let candidates: Vec<(u8, Option<FileCheckpoint>, Fingerprint, Anchor)> = self
            .unfinished
            .iter()
            .map(|u| (2, Some(u.cp.clone())))
            .chain(self.resting.values().map(|cp| (0, Some(cp.clone()))))
            .filter(|(_, cp)| cp.as_ref().is_some_and(knows_content))
            .map(|(k, cp)| {
                let (fp, a) = cp
                    .as_ref()
                    .map(|c| (c.fingerprint, c.anchor))
                    .expect("filtered");
                (k, cp, fp, a)
            })
            .chain(live.iter().map(|(fp, a)| (1, None, *fp, *a)))
            .filter(|(_, _, fp, _)| fp.len > 0 && head.matches(fp))
            .collect();
        if !candidates.iter().any(|(kind, ..)| *kind == 2) {
            self.gz_seen.insert(id, key);
            return None;
        }
        // Each candidate's anchor, then the proofs of bytes seen but not
        // shipped, which must hold too.
        let mut anchors: Vec<_> = candidates.iter().map(|(.., a)| *a).collect();
        let seen_at: Vec<Option<usize>> = candidates
            .iter()
            .map(|(_, cp, ..)| {
                let seen = cp.as_ref()?.seen?;
                anchors.push(seen);
                Some(anchors.len() - 1)
            })
            .collect();
        let probe = match compressed::probe(path, &anchors) {
            Ok(p) => p,
            Err(e) => {
                fail(e, &mut self.gz_seen);
                return None;
            }
        };
        // The longest proof (the furthest anchor that matched) is this
        // file's generation.
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| probe.anchors[*i] && seen_at[*i].is_none_or(|j| probe.anchors[j]))
            .map(|(i, c)| (c, seen_at[i].map_or(c.3.at, |j| anchors[j].at.max(c.3.at))))
            // On a tie, the unfinished one (a finished generation holds no
            // more than was read of it).
            .max_by_key(|((kind, ..), proven)| (*proven, *kind))
            .map(|(c, _)| c);
        match best {
            Some((2, Some(cp), ..)) => {
                let generation = cp.generation;
                let i = self
                    .unfinished
                    .iter()
                    .position(|u| u.cp.generation == generation)?;
                Some(self.unfinished.swap_remove(i).cp)
            }
            // A copy of a file being read: judged again at the next scan.
            Some((1, ..)) => None,
            _ => {
                self.gz_seen.insert(id, key);
                None
            }
        }
    }

    /// Unfinished generations looked for longer than the ledger's time to
    /// live ([`UNFINISHED_TTL`] by default), removed: those with bytes known
    /// and never shipped are losses.
    pub fn expire(&mut self, now: Instant) -> Vec<FileCheckpoint> {
        let mut expired = Vec::new();
        let ttl = self.ttl;
        self.unfinished.retain(|u| {
            let keep = now.duration_since(u.since) < ttl;
            if !keep {
                expired.push(u.cp.clone());
            }
            keep
        });
        expired
    }

    /// Drop resting generations not refreshed for `ttl` (their files are
    /// long gone).
    pub fn forget_older_than(&mut self, now_unix: u64, ttl: Duration) {
        self.resting
            .retain(|_, c| now_unix.saturating_sub(c.updated) < ttl.as_secs());
    }

    /// Everything to save in the checkpoint.
    pub fn entries(&self) -> Vec<FileCheckpoint> {
        let mut out: Vec<FileCheckpoint> = self.resting.values().cloned().collect();
        out.extend(self.unfinished.iter().map(|u| FileCheckpoint {
            unfinished: true,
            ..u.cp.clone()
        }));
        out.sort_by_key(|e| (e.id, e.generation));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationId;
    use std::io::Write;

    fn checkpoint_of(path: &Path, position: u64) -> FileCheckpoint {
        let f = File::open(path).unwrap();
        let meta = f.metadata().unwrap();
        FileCheckpoint {
            generation: GenerationId::new(),
            id: FileId::of(&meta),
            fingerprint: Fingerprint::read(&f, position).unwrap(),
            anchor: Anchor::read(&mut &f, position).unwrap().unwrap(),
            position,
            size: meta.len(),
            path: path.display().to_string(),
            updated: 0,
            born: None,
            unfinished: false,
            seen: None,
        }
    }

    const HEADER: &str = "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Date: 2026-12-02 00:00:00\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\n";

    fn write(path: &Path, body: &str) {
        let mut f = File::create(path).unwrap();
        f.write_all(HEADER.as_bytes()).unwrap();
        f.write_all(body.as_bytes()).unwrap();
    }

    /// A new file that shares the old one's long header is not the old one,
    /// even on the old one's inode: it is read from 0, not from the old
    /// position.
    #[test]
    fn same_header_on_a_reused_inode_is_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        write(&path, "2026-12-02 00:00:01 GET /one 200\n");
        let old = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
        // Same inode, same header, other lines (as after the old file was
        // deleted and its inode reused).
        let f = File::options().write(true).open(&path).unwrap();
        f.set_len(0).unwrap();
        drop(f);
        write(
            &path,
            "2026-12-02 00:00:09 GET /two 200\n2026-12-02 00:00:10 GET /three 200\n",
        );
        let mut ledger = Ledger::new(vec![old.clone()], UNFINISHED_TTL);
        let f = File::open(&path).unwrap();
        let size = f.metadata().unwrap().len();
        let head = Head::read(&f).unwrap();
        assert_eq!(
            ledger.resume(&old.id, &head, &f, size).unwrap_err(),
            old.path
        );
        assert!(ledger.has_unfinished(), "looked for elsewhere");
        assert!(
            ledger.take_continued(&head, &f, size).is_none(),
            "not a continuation of the old generation"
        );
    }

    /// A copy (another inode) of a checkpointed file continues its
    /// generation at the saved position.
    #[test]
    fn copy_continues_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        write(&path, "2026-12-02 00:00:01 GET /one 200\n");
        let cp = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
        let copy = dir.path().join("a.log.1");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&copy)
            .unwrap()
            .write_all(b"2026-12-02 00:00:02 GET /unread 200\n")
            .unwrap();
        let mut ledger = Ledger::default();
        ledger.unfinish(cp.clone());
        let f = File::open(&copy).unwrap();
        let head = Head::read(&f).unwrap();
        let got = ledger
            .take_continued(&head, &f, f.metadata().unwrap().len())
            .expect("the copy continues it");
        assert_eq!((got.generation, got.position), (cp.generation, cp.position));
        assert!(!ledger.has_unfinished());
    }

    /// copytruncate copies, then cuts; lines appended in between were read
    /// from the original but are not in the copy. The copy, shorter than
    /// what was read, is still recognised (by the trail) and holds nothing
    /// to read; a file with the same header but other lines is not taken.
    #[test]
    fn copy_shorter_than_what_was_read_is_recognised_by_the_trail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let body: String = (0..2000)
            .map(|i| format!("2026-12-02 00:00:01 GET /r/{i} 200\n"))
            .collect();
        write(&path, &body);
        let copy = dir.path().join("a.log.1");
        std::fs::copy(&path, &copy).unwrap();
        let other = dir.path().join("other.1");
        write(&other, &body.replace("GET", "PUT"));
        // Appended after the copy, before the cut: read, not in the copy.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2026-12-02 00:00:02 GET /between 200\n")
            .unwrap();
        let read_to = std::fs::metadata(&path).unwrap().len();
        let cp = checkpoint_of(&path, read_to);
        let f = File::open(&path).unwrap();
        let trail: Vec<Anchor> = [4096u64, 20_000, 40_000]
            .iter()
            .map(|&at| Anchor::read(&mut &f, at).unwrap().unwrap())
            .collect();
        let mut ledger = Ledger::default();
        ledger.unfinish_with_trail(cp.clone(), trail.clone());
        let o = File::open(&other).unwrap();
        let osize = o.metadata().unwrap().len();
        assert!(
            ledger
                .take_continued(&Head::read(&o).unwrap(), &o, osize)
                .is_none(),
            "same header, other lines"
        );
        let c = File::open(&copy).unwrap();
        let size = c.metadata().unwrap().len();
        let got = ledger
            .take_continued(&Head::read(&c).unwrap(), &c, size)
            .expect("the short copy is recognised");
        assert_eq!((got.generation, got.position), (cp.generation, size));
        // Without a trail the short copy cannot be told apart: it would be
        // read as a new file.
        let mut bare = Ledger::default();
        bare.unfinish(cp);
        assert!(bare
            .take_continued(&Head::read(&c).unwrap(), &c, size)
            .is_none());
    }

    /// Nothing shipped yet and every file starts with the same header: the
    /// head and the anchor at 0 prove nothing, and only the proof of the
    /// bytes seen (but not shipped) tells the generation's own file from
    /// another that starts alike.
    #[test]
    fn bytes_seen_but_not_shipped_tell_files_with_one_header_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("a.log.1");
        let other = dir.path().join("a.log");
        write(&mine, "2026-12-02 00:00:01 GET /mine 200\n");
        write(&other, "2026-12-02 00:00:01 GET /other 200\nand more\n");
        let f = File::open(&mine).unwrap();
        let size = f.metadata().unwrap().len();
        let mut cp = checkpoint_of(&mine, 0);
        cp.fingerprint = Fingerprint::read(&f, 256).unwrap();
        cp.seen = Anchor::read(&mut &f, size).unwrap();
        let mut ledger = Ledger::default();
        ledger.unfinish(cp.clone());
        let o = File::open(&other).unwrap();
        let osize = o.metadata().unwrap().len();
        assert!(
            ledger
                .take_continued(&Head::read(&o).unwrap(), &o, osize)
                .is_none(),
            "same header, other bytes where the seen ones were"
        );
        let got = ledger
            .take_continued(&Head::read(&f).unwrap(), &f, size)
            .expect("its own file");
        assert_eq!((got.generation, got.position), (cp.generation, 0));
    }

    /// An unfinished generation found in a gzip file; another compressed
    /// file with the same header is not taken for it.
    #[test]
    fn unfinished_generation_is_found_compressed() {
        use flate2::write::GzEncoder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        write(&path, "2026-12-02 00:00:01 GET /one 200\n");
        let cp = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
        let gz = |name: &str, body: &str| {
            let p = dir.path().join(name);
            let mut e = GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
            e.write_all(HEADER.as_bytes()).unwrap();
            e.write_all(body.as_bytes()).unwrap();
            e.finish().unwrap();
            let meta = std::fs::metadata(&p).unwrap();
            (p, FileId::of(&meta), meta)
        };
        let (other, oid, ometa) = gz("a.log.2.gz", "2026-12-02 00:00:07 GET /other 200\n");
        let (mine, mid, mmeta) = gz(
            "a.log.1.gz",
            "2026-12-02 00:00:01 GET /one 200\n2026-12-02 00:00:02 GET /unread 200\n",
        );
        let mut ledger = Ledger::default();
        ledger.unfinish(cp.clone());
        assert!(ledger
            .take_from_compressed(&other, oid, &ometa, &[])
            .is_none());
        let got = ledger
            .take_from_compressed(&mine, mid, &mmeta, &[])
            .expect("found in the gzip");
        assert_eq!(got.generation, cp.generation);
    }

    #[test]
    fn expired_unfinished_generations_are_reported() {
        let mut ledger = Ledger::default();
        let cp = FileCheckpoint {
            generation: GenerationId(5),
            id: FileId { dev: 1, ino: 2 },
            fingerprint: Fingerprint::default(),
            anchor: Anchor::default(),
            position: 10,
            size: 30,
            path: "/x".into(),
            updated: 0,
            born: None,
            unfinished: false,
            seen: None,
        };
        ledger.unfinish(cp.clone());
        assert!(ledger.expire(Instant::now()).is_empty());
        let later = Instant::now() + UNFINISHED_TTL + Duration::from_secs(1);
        assert_eq!(ledger.expire(later), vec![cp]);
        assert!(!ledger.has_unfinished());
    }
}
