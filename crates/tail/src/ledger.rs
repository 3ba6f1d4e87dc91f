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
pub use crate::identify::{continues, still_holds, Head};
use crate::identify::{is_short_copy, knows_content, proven};
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
    /// The bytes `cp.anchor` covers, when known (in memory only, kept when
    /// a cut was seen): a copy that ends among them must hold them up to
    /// its end. A trail anchor proves nothing past itself, and files that
    /// share a header match one taken in the header.
    pub last: Vec<u8>,
}

/// What a file being read holds as far as it was read: a compressed file
/// that repeats it may be its copy (copytruncate, then `compress`).
#[derive(Debug, Clone, Copy)]
pub struct LiveProof {
    pub fingerprint: Fingerprint,
    /// At where reading got to.
    pub anchor: Anchor,
    /// The file holds nothing past where reading got to and was not cut:
    /// a copy of it holds nothing unread.
    pub settled: bool,
    /// Known to hold no more than was read: drained (read to its end after
    /// it left its name), or open and settled. A longer file that repeats
    /// it is another file, not its copy. (A parked file may have grown
    /// while closed.)
    pub finished: bool,
}

/// What a compressed rotated file is, as far as the ledger can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compressed {
    /// It holds the rest of this unfinished generation.
    Continues(FileCheckpoint),
    /// A copy of a generation already read (or resting): nothing to ship.
    Known,
    /// Not to be told yet (still being written, or possibly a copy of a
    /// file still being read): asked again at the next scan.
    Undecided,
    /// No generation logferry knows leads to it.
    Unknown,
    /// Not readable (corrupt, or a format not supported): said once.
    Unreadable,
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
    gz_seen: HashMap<FileId, (GzKey, Compressed)>,
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
        if still_holds(&cp, head, file, size) {
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
        self.unfinish_cut(cp, trail, Vec::new());
    }

    /// [`unfinish_with_trail`](Self::unfinish_with_trail), with `last`, the
    /// bytes `cp.anchor` covers (ignored unless they are).
    pub fn unfinish_cut(&mut self, cp: FileCheckpoint, trail: Vec<Anchor>, mut last: Vec<u8>) {
        if last.len() as u64 != cp.anchor.len || Anchor::of_bytes(&last, cp.anchor.at) != cp.anchor
        {
            last = Vec::new();
        }
        // One entry per generation. Several files can hold one generation
        // (a copy, a shorter copy, the original), each read to its own
        // position; every line before the furthest was shipped, so that is
        // where the rest is looked for. Kept from a nearer one, its lines
        // in between would be read again from a copy that holds them.
        let mut since = Instant::now();
        if let Some(i) = self
            .unfinished
            .iter()
            .position(|u| u.cp.generation == cp.generation)
        {
            if self.unfinished[i].cp.position >= cp.position {
                return;
            }
            since = self.unfinished.swap_remove(i).since;
        }
        self.unfinished.push(Unfinished {
            cp: FileCheckpoint {
                unfinished: false,
                ..cp
            },
            since,
            trail,
            last,
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
    ///
    /// A resting generation whose own file still holds it
    /// (`own_file_holds`) is not taken: its file is found under its own
    /// inode, and this one, under another inode, merely starts alike (files
    /// sharing a header, with nothing of the generation acknowledged past
    /// it).
    pub fn take_continued(
        &mut self,
        head: &Head,
        file: &File,
        size: u64,
        own_file_holds: &dyn Fn(&FileCheckpoint) -> bool,
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
            .filter(|cp| !own_file_holds(cp))
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
            .position(|u| is_short_copy(&u.cp, &u.trail, &u.last, head, &mut { file }, size))
        {
            // Everything the copy holds was read already: it continues the
            // generation at its end, with nothing to read. The generation is
            // still looked for: a copy that ends before what was read holds
            // none of what may follow it.
            let mut cp = self.unfinished[i].cp.clone();
            cp.position = size;
            cp.anchor = Anchor::read(&mut { file }, size)
                .ok()
                .flatten()
                .unwrap_or(cp.anchor);
            return Some(cp);
        }
        None
    }

    /// The path of a resting generation that `file` (under a rotated name)
    /// repeats and whose own file still holds it under its name: `file` is
    /// a copy whose original is not cut yet (copytruncate copies, then
    /// cuts), and is taken for that generation only once the cut is seen.
    /// Taken now, the original would be read again as a new generation from
    /// 0, with the old content, and its real new content later matched by
    /// nothing (a restart that fell between logrotate's copy and its cut).
    pub fn uncut_original(&self, head: &Head, file: &File, size: u64) -> Option<String> {
        self.resting.values().find_map(|cp| {
            if cp.anchor.len == 0 || !continues(cp, head, &mut { file }, size) {
                return None;
            }
            let original = crate::follow::open_log(Path::new(&cp.path)).ok()?;
            let meta = original.metadata().ok()?;
            // (An uncut original only grows: one shorter than `file` is
            // not its original, merely a file that starts alike.)
            let still = FileId::of(&meta) == cp.id
                && meta.len() >= size
                && Head::read(&original).is_ok_and(|h| still_holds(cp, &h, &original, meta.len()));
            still.then(|| cp.path.clone())
        })
    }

    /// Whether any generation waits for its bytes to be found.
    pub fn has_unfinished(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// Which known generation, if any, a compressed rotated file holds; at
    /// most one decompression per file version for a final verdict.
    ///
    /// `live`: what files being read hold, as far as read. A compressed
    /// file that repeats one of them further than any unfinished generation
    /// is its copy (copytruncate, then `compress`), whose original is not
    /// seen cut yet: it is left for the next scan, when the cut has made
    /// that generation unfinished. So is one that repeats a file not read
    /// to its end as far as it was read: it may be that file's (compressed
    /// after it was renamed, while it is still read through its
    /// descriptor), and only reading on tells.
    pub fn classify_compressed(
        &mut self,
        path: &Path,
        id: FileId,
        meta: &std::fs::Metadata,
        live: &[LiveProof],
        need_verdict: bool,
    ) -> Compressed {
        let key = GzKey {
            id,
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        if let Some((k, verdict)) = self.gz_seen.get(&id) {
            if *k == key {
                return verdict.clone();
            }
        }
        let fail = |e: std::io::Error, seen: &mut HashMap<FileId, (GzKey, Compressed)>| {
            // Still being written by the compressor: look again at the next
            // scan.
            // Or renamed since the scan listed it: looked at again there.
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound
            ) {
                return Compressed::Undecided;
            }
            tracing::warn!(path = %path.display(), error = %e, "cannot read compressed file");
            seen.insert(id, (key, Compressed::Unreadable));
            Compressed::Unreadable
        };
        // The head first (a few bytes to inflate), to pick the candidates:
        // unfinished generations, and resting ones with the same head, since
        // a file that merely starts with an unfinished one's content (files
        // sharing a header) may be a finished generation compressed.
        let head = match compressed::probe(path, id, &[]) {
            Ok(p) => Head(p.head),
            Err(e) => return fail(e, &mut self.gz_seen),
        };
        // (kind, generation if known, fingerprint, anchor, finished): kind 3
        // is live and not settled, 2 unfinished, 1 live and settled, 0
        // resting.
        let candidates: Vec<(u8, Option<FileCheckpoint>, Fingerprint, Anchor, bool)> = self
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
                (k, cp, fp, a, true)
            })
            .chain(live.iter().map(|l| {
                let kind = if l.settled { 1 } else { 3 };
                (kind, None, l.fingerprint, l.anchor, l.finished)
            }))
            // A file being read that has not been read yet proves nothing,
            // but may yet be this file's source.
            .filter(|(kind, _, fp, ..)| {
                if fp.len == 0 {
                    *kind == 3
                } else {
                    head.matches(fp)
                }
            })
            .collect();
        if candidates.is_empty() {
            self.gz_seen.insert(id, (key, Compressed::Unknown));
            return Compressed::Unknown;
        }
        // Only an unfinished generation is looked for (a file older than
        // the last checkpoint, whose being known or not changes nothing):
        // none starts like this one, so no need to inflate it further.
        if !need_verdict && !candidates.iter().any(|(kind, ..)| *kind == 2) {
            self.gz_seen.insert(id, (key, Compressed::Known));
            return Compressed::Known;
        }
        // Each candidate's anchor, then the proofs of bytes seen but not
        // shipped, which must hold too.
        let mut anchors: Vec<_> = candidates.iter().map(|(.., a, _)| *a).collect();
        let seen_at: Vec<Option<usize>> = candidates
            .iter()
            .map(|(_, cp, ..)| {
                let seen = cp.as_ref()?.seen?;
                anchors.push(seen);
                Some(anchors.len() - 1)
            })
            .collect();
        let probe = match compressed::probe(path, id, &anchors) {
            Ok(p) => p,
            Err(e) => return fail(e, &mut self.gz_seen),
        };
        let matched = candidates.iter().enumerate().filter(|(i, _)| {
            probe.anchors[*i] && seen_at[*i].is_none_or(|j| probe.anchors[j] || !probe.reaches[j])
        });
        // A file being read, not to its end, that this one repeats as far
        // as it was read may be its source, however little that proves
        // (files sharing a header, a file not read yet): only reading on
        // tells, and taken for an unfinished generation now, the lines that
        // file still holds would be read twice. Judged again next scan.
        if matched.clone().any(|(_, (kind, ..))| *kind == 3) {
            // Found, if it is theirs: not lost while that is undecided
            // (reading may be paused for long, e.g. while Kafka is down).
            let now = Instant::now();
            for (_, (kind, cp, ..)) in matched {
                if let (2, Some(cp)) = (kind, cp) {
                    for u in &mut self.unfinished {
                        if u.cp.generation == cp.generation {
                            u.since = now;
                        }
                    }
                }
            }
            return Compressed::Undecided;
        }
        // The longest proof (the furthest anchor that matched) is this
        // file's generation.
        let proven_of = |i: usize, c: &(u8, Option<FileCheckpoint>, Fingerprint, Anchor, bool)| {
            seen_at[i].map_or(c.3.at, |j| anchors[j].at.max(c.3.at))
        };
        let best = matched
            .clone()
            .map(|(i, c)| (c, proven_of(i, c)))
            // On a tie, the unfinished one (a finished generation holds no
            // more than was read of it).
            .max_by_key(|((kind, ..), proven)| (*proven, *kind))
            .map(|(c, _)| c);
        // The unfinished generation this file also repeats, if any: when it
        // holds more than the file with the longer proof (files sharing a
        // header), it is that generation's, not another file.
        let unfinished_match = matched
            .filter(|(_, c)| c.0 == 2)
            .max_by_key(|(i, c)| proven_of(*i, c))
            .and_then(|(_, c)| c.1.clone());
        let verdict = match best {
            Some((2, Some(cp), ..)) => {
                let generation = cp.generation;
                let Some(i) = self
                    .unfinished
                    .iter()
                    .position(|u| u.cp.generation == generation)
                else {
                    return Compressed::Undecided;
                };
                return Compressed::Continues(self.unfinished.swap_remove(i).cp);
            }
            // It repeats what was read of a generation (being read, or
            // resting). Longer than that, it is another file that starts
            // alike (files sharing a header): that generation was read to
            // its end, or is still on its own file, whose copy would be no
            // longer. Else a copy of it: a live one judged again at the
            // next scan (it may be cut yet), a resting one known.
            Some((kind, cp, _, anchor, finished)) => {
                let known_end = cp.as_ref().map_or(anchor.at, |c| c.size.max(c.position));
                match compressed::decoded_len(path, id) {
                    // (A live file not finished may have grown before it
                    // was cut or renamed away: its copy may be longer.)
                    Ok(Some(len)) if len > known_end && *finished => {
                        match unfinished_match.and_then(|cp| {
                            let i = self
                                .unfinished
                                .iter()
                                .position(|u| u.cp.generation == cp.generation)?;
                            Some(self.unfinished.swap_remove(i).cp)
                        }) {
                            Some(cp) => return Compressed::Continues(cp),
                            None => Compressed::Unknown,
                        }
                    }
                    Ok(Some(_)) if *kind == 1 => return Compressed::Undecided,
                    Ok(Some(_)) => Compressed::Known,
                    Ok(None) => return Compressed::Undecided,
                    Err(e) => return fail(e, &mut self.gz_seen),
                }
            }
            // Or a copy of an unfinished generation that ends before where
            // it was read (see `short_copy_of_unfinished`).
            None => match self.short_copy_of_unfinished(path, id, &head) {
                Ok(Some(true)) => Compressed::Known,
                Ok(Some(false)) => Compressed::Unknown,
                Ok(None) => return Compressed::Undecided,
                Err(e) => return fail(e, &mut self.gz_seen),
            },
        };
        self.gz_seen.insert(id, (key, verdict.clone()));
        verdict
    }

    /// Whether compressed file `id` is a copy of an unfinished generation
    /// that ends before where the generation was read: copytruncate copies,
    /// then cuts, and the writer's lines in between are in the original
    /// only. Such a copy holds nothing unread; its anchor at the read
    /// position is past its end, so only the generation's trail and last
    /// bytes tell it (as [`Ledger::take_continued`] does for a plain copy).
    /// Taken for an unknown file, it would be shipped again from its start.
    /// `None`: still being written.
    fn short_copy_of_unfinished(
        &self,
        path: &Path,
        id: FileId,
        head: &Head,
    ) -> std::io::Result<Option<bool>> {
        let mut maybe = self
            .unfinished
            .iter()
            .filter(|u| !u.trail.is_empty() && head.matches(&u.cp.fingerprint))
            .peekable();
        if maybe.peek().is_none() {
            return Ok(Some(false));
        }
        let Some(size) = compressed::decoded_len(path, id)? else {
            return Ok(None);
        };
        for u in maybe {
            let mut decoded = compressed::open_as(path, id)?;
            if is_short_copy(&u.cp, &u.trail, &u.last, head, &mut decoded, size) {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }

    /// Drop the unfinished entry of `generation` if it holds no more than
    /// `position` (a file of it is being read from there).
    pub fn forget_unfinished(&mut self, generation: crate::GenerationId, position: u64) {
        self.unfinished
            .retain(|u| u.cp.generation != generation || u.cp.position > position);
    }

    /// Forget the verdict kept for compressed file `id` (it is being read,
    /// and so is now known).
    pub fn forget_compressed(&mut self, id: FileId) {
        self.gz_seen.remove(&id);
    }

    /// The unfinished generation a compressed rotated file holds the rest
    /// of, if any (see [`Ledger::classify_compressed`]).
    pub fn take_from_compressed(
        &mut self,
        path: &Path,
        id: FileId,
        meta: &std::fs::Metadata,
        live: &[LiveProof],
    ) -> Option<FileCheckpoint> {
        match self.classify_compressed(path, id, meta, live, false) {
            Compressed::Continues(cp) => Some(cp),
            _ => None,
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
mod tests;
