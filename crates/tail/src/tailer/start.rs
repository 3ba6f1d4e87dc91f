//! What a newly found file is: which generation (by content, never by
//! inode or path alone), and where reading it starts.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::time::{Instant, UNIX_EPOCH};

use super::event::TailEvent;
use super::stream::{Life, Stream};
use super::{now_unix, Role, StartAt, Tailer};
use crate::acks::AckTracker;
use crate::checkpoint::FileCheckpoint;
use crate::discover::Found;
use crate::follow::{open_log, FileWatcher};
use crate::identity::{Anchor, FileId, Fingerprint, GenerationId, FINGERPRINT_WINDOW};
use crate::ledger::{Compressed, Head, LiveProof};

/// Where reading a newly found file starts.
enum Start {
    /// A generation already known, from its saved position.
    Known(FileCheckpoint),
    /// A new generation, from this offset.
    New(u64),
    /// A copy of a file being read that is still being written or whose
    /// original was not cut yet: not opened now, asked again next scan.
    Wait { copy_of: String },
}

/// More than the kernel's file-time granularity (one clock tick: 10 ms at
/// 100 Hz, the coarsest).
const MTIME_GRANULARITY: std::time::Duration = std::time::Duration::from_millis(20);

impl Tailer {
    /// Compressed rotated files: the rest of unfinished generations, and
    /// generations born while logferry was not looking. A compressed file
    /// written since the last checkpoint (or since this start, without
    /// one) that no known generation leads to was rotated and compressed
    /// while logferry was stopped (or faster than a scan): every generation
    /// logferry ever shipped from is in the checkpoint before its first
    /// line left (write-ahead), so this one was never shipped, and is read
    /// from its start. Older ones are history (backfill is not automatic).
    pub(super) fn scan_compressed(&mut self) {
        let mut listed = HashSet::new();
        // Every file newer than `examine_after` has a verdict: the mark may
        // move on.
        let mut complete = true;
        for input in 0..self.compressed.len() {
            let mut live: Option<Vec<LiveProof>> = None;
            let backfill = self.settings.inputs[input].backfill;
            let mut listing = self.compressed[input].scan();
            // Compressed content under a name that does not say so.
            listing.append(&mut self.rotated_compressed[input]);
            if let Some(own) = self.own_rotated[input].as_mut() {
                let paths: HashSet<_> = listing.iter().map(|f| f.path.clone()).collect();
                let more = own.list(&self.discoveries[input]).compressed;
                listing.extend(more.into_iter().filter(|f| !paths.contains(&f.path)));
            }
            for found in listing {
                let modified = found.meta.modified().ok();
                let key = (found.id, found.meta.len(), modified);
                listed.insert(key);
                if let Some(&slot) = self.by_id.get(&found.id) {
                    // Being read, through a descriptor that holds its
                    // inode. A stream closed (drained, parked) does not
                    // hold it: the inode may now be another file's (a
                    // deleted file's inode given to a compression), judged
                    // once that stream is let go: the mark waits for it
                    // (crash model case 20).
                    let holds = self.streams[slot]
                        .as_ref()
                        .is_some_and(|s| s.watcher().is_some());
                    if !holds && modified.is_some_and(|m| m > self.examine_after) {
                        complete = false;
                    }
                    continue;
                }
                // Backfill: every compressed file is examined, whatever its
                // age; one a known generation leads to is not shipped again.
                let new = (backfill || modified.is_some_and(|m| m > self.examine_after))
                    && !self.examined.contains(&key);
                if !new && !self.ledger.has_unfinished() {
                    continue;
                }
                if live.is_none() {
                    live = Some(self.live_proofs(input));
                }
                let live = live.as_deref().unwrap_or_default();
                let verdict =
                    self.ledger
                        .classify_compressed(&found.path, found.id, &found.meta, live, new);
                let (known, position) = match verdict {
                    Compressed::Continues(cp) if self.streaming(cp.generation) => {
                        // Being read from another file (see `open_stream`).
                        self.examined.insert(key);
                        self.ledger.unfinish(cp);
                        continue;
                    }
                    Compressed::Continues(cp) => {
                        tracing::info!(path = %found.path.display(), generation = %cp.generation, offset = cp.position, was = %cp.path, "unfinished file found compressed; shipping the rest from it");
                        (Some(cp), None)
                    }
                    Compressed::Unknown if new => {
                        if modified.is_some_and(|m| m > self.examine_after) {
                            tracing::info!(path = %found.path.display(), "compressed rotated file written since the last checkpoint that no known file leads to: rotated while logferry was not looking; shipping it from its start");
                        } else {
                            tracing::info!(path = %found.path.display(), "backfill: shipping compressed rotated file from its start");
                        }
                        (None, Some(0))
                    }
                    Compressed::Undecided => {
                        complete &= !new;
                        continue;
                    }
                    Compressed::Known | Compressed::Unknown | Compressed::Unreadable => {
                        self.examined.insert(key);
                        continue;
                    }
                };
                // Read only once the compressor is done with it: a read
                // meeting the end of a file still being written would take
                // it for the end of the generation.
                if !crate::compressed::is_complete(&found.path, found.id).unwrap_or(false) {
                    complete &= !new;
                    if let Some(cp) = known {
                        self.ledger.unfinish(cp);
                    }
                    continue;
                }
                self.examined.insert(key);
                // Read now: a verdict kept for it is out of date.
                self.ledger.forget_compressed(found.id);
                let from = known.as_ref().map_or(0, |cp| cp.position);
                let watcher = match FileWatcher::compressed(
                    &found.path,
                    found.id,
                    position.unwrap_or(from),
                    &self.framers[input],
                ) {
                    Ok(w) => w,
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            tracing::debug!(path = %found.path.display(), error = %e, "compressed file renamed or gone since the scan");
                        } else {
                            tracing::warn!(path = %found.path.display(), error = %e, "cannot read compressed file");
                        }
                        complete &= !new;
                        self.examined.remove(&key);
                        if let Some(cp) = known {
                            self.ledger.unfinish(cp);
                        }
                        continue;
                    }
                };
                if backfill {
                    self.backfill.add(found.id, found.meta.len());
                }
                self.add_stream(input, Role::Rotated, &found.path, found.id, watcher, known);
            }
        }
        // Only files still there are remembered.
        self.examined.retain(|k| listed.contains(k));
        if complete {
            // Less the kernel's timestamp granularity: a file's times come
            // from a coarse clock (one tick, up to 10 ms), so a write just
            // after the scan began can be dated before it; rotated and
            // compressed (which keeps the source's time) before the next
            // scan, it would be taken for history (crash model case 23).
            let mark = self
                .scan_began
                .checked_sub(MTIME_GRANULARITY)
                .unwrap_or(self.scan_began);
            self.examine_after = self.examine_after.max(mark);
        }
        self.compressed_judged = complete;
    }

    /// Whether a stream reads generation `g` now.
    fn streaming(&self, g: GenerationId) -> bool {
        self.streams.iter().flatten().any(|s| s.generation == g)
    }

    /// How far the streams of generation `g` were read.
    fn read_extent(&self, g: GenerationId) -> u64 {
        self.streams
            .iter()
            .flatten()
            .filter(|s| s.generation == g)
            .map(|s| s.read_at().unwrap_or(s.size_seen))
            .max()
            .unwrap_or(0)
    }

    /// What the files of `input` being read hold, as far as read
    /// (compressed ones too: a `.gz` being read is not read twice).
    fn live_proofs(&mut self, input: usize) -> Vec<LiveProof> {
        // Backfill's first look (the scan that opened every file found):
        // see `fingerprint` below.
        let backfill_start = self.settings.inputs[input].backfill && self.scans <= 1;
        self.streams
            .iter_mut()
            .flatten()
            .filter(|s| s.input == input)
            .filter_map(|s| {
                // Closed streams (drained, parked) not yet let go count
                // with the proof kept when they closed. Settled: nothing
                // past where reading got to, so a copy of the file holds
                // nothing unread (a drained one was read to its end; a
                // parked one that a scan saw grow was not). A file under a
                // current name is judged by this scan's size, free; one
                // renamed away or deleted, which the scan may not have
                // seen, by its descriptor.
                let parked_settled = s.parked_at().is_none() || !s.wake;
                let mut fingerprint = s.fingerprint;
                let (anchor, settled) = match &mut s.life {
                    // Cut since it was read (not seen yet: the next read
                    // will): what it holds now is a new generation, head
                    // unknown, that any compressed file may be a copy of.
                    Life::Open(w)
                        if !w.is_compressed()
                            && w.known_head().len > 0
                            && !w.holds_known_head() =>
                    {
                        return Some(LiveProof {
                            fingerprint: Fingerprint::default(),
                            anchor: Anchor::of_bytes(&[], 0),
                            settled: false,
                            finished: false,
                        });
                    }
                    Life::Open(w) => {
                        let at = w.read_position();
                        // A file opened and not read yet proves nothing
                        // with an empty head, and every compressed file
                        // would wait until it is read: with backfill, the
                        // older compressed files would go after the files
                        // opened with them. At that first look no file has
                        // been cut or rewritten under logferry yet, so a
                        // copy starts with its original's head as it is
                        // now: that head tells apart the files that start
                        // otherwise. (Later, a file opened at 0 may be the
                        // rewrite of a cut one whose copy this is; the
                        // model tests found lines handed out twice then.)
                        // The stream's own head is left as read.
                        if backfill_start && at == 0 && fingerprint.len == 0 && !w.is_compressed() {
                            fingerprint = w.head(FINGERPRINT_WINDOW).unwrap_or(fingerprint);
                        }
                        let anchor = w.anchor_at(at)?;
                        let settled = if w.is_compressed() {
                            true
                        } else if s.present {
                            w.at_end() && s.stat_size == at
                        } else {
                            w.uncut_size() == Some(at)
                        };
                        (anchor, settled)
                    }
                    _ => (s.closed_proof()?, parked_settled),
                };
                Some(LiveProof {
                    fingerprint,
                    anchor,
                    settled,
                    // Drained, or open and known by its descriptor to hold
                    // no more (a parked file may have grown unseen).
                    finished: matches!(s.life, Life::Drained { .. })
                        || (settled && s.watcher().is_some()),
                })
            })
            .collect()
    }

    pub(super) fn scan_rotated(&mut self, input: usize) {
        let siblings = self.rotated[input].list(&self.discoveries[input]);
        self.rotated_compressed[input] = siblings.compressed;
        let mut listing = siblings.plain;
        if let Some(own) = self.own_rotated[input].as_mut() {
            let paths: HashSet<_> = listing.iter().map(|f| f.path.clone()).collect();
            let more = own.list(&self.discoveries[input]).plain;
            listing.extend(more.into_iter().filter(|f| !paths.contains(&f.path)));
        }
        for found in &listing {
            self.rotated_listing.insert(found.id, found.path.clone());
        }
        for found in listing {
            // A name both patterns match (`/dir/*` also matches `/dir/*.*`)
            // is a current file.
            if !self.discoveries[input].matches(&found.path) {
                self.consider(input, Role::Rotated, found);
            }
        }
    }

    pub(super) fn consider(&mut self, input: usize, role: Role, found: Found) {
        if let Some(&slot) = self.by_id.get(&found.id) {
            let s = self.streams[slot]
                .as_mut()
                .expect("by_id points at a live slot");
            if role == Role::Current {
                s.present = true;
            }
            // The scan's stat is free: the size metrics and status show.
            s.stat_size = found.meta.len();
            let at = s.read_at();
            if at.is_some_and(|at| at != found.meta.len()) {
                s.wake = true;
                self.ready.push(slot);
            }
            // Known to exist: if the file vanishes unread, this much is lost.
            s.size_seen = s.size_seen.max(found.meta.len());
            let path = found.path.to_string_lossy();
            if *s.path != *path && (role == Role::Current || !s.present) {
                tracing::info!(from = %s.path, to = %path, "file renamed; following it by identity");
                s.path = path.into();
                if let Some(w) = s.watcher_mut() {
                    w.set_path(&found.path);
                }
                self.by_path.insert(found.path.clone(), slot);
            }
            return;
        }
        // A file we finished (or saw at start under a rotated name) is only
        // reopened when it grew past what was shipped.
        let mut known = false;
        if let Some(cp) = self.ledger.resting(&found.id) {
            known = true;
            // Seen again: keep its entry from expiring.
            cp.updated = now_unix();
            if !self.first_scan_done {
                self.seen_at_start.insert(found.id);
            }
            // Under a rotated name and no longer than what was shipped:
            // nothing to read, if it is still that file. Its inode may have
            // been freed and given to another file of the same length (a
            // copy), which a different birth time (free from the scan's
            // stat) tells. Loaded from a checkpoint, the file may also have
            // been cut and written again to that very length while
            // logferry was stopped (copytruncate, then a rotation), which
            // only its content tells. One that is not the same file any
            // more is opened, and is a new generation.
            let check_content = !self.first_scan_done;
            if role == Role::Rotated
                && crate::identify::unchanged_rotated(cp, &found.path, &found.meta, check_content)
            {
                return;
            }
        }
        let backfill = self.settings.inputs[input].backfill;
        if role == Role::Rotated && backfill && !known {
            self.backfill.add(found.id, found.meta.len());
        }
        if role == Role::Rotated && !self.first_scan_done && self.fresh_start && !known && !backfill
        {
            // Rotated files present at start are history, not to be shipped;
            // remember them so that only their growth is read later.
            if let Ok(file) = open_log(&found.path) {
                let size = found.meta.len();
                let anchor = Anchor::read(&mut &file, size).ok().flatten();
                if let (Ok(fingerprint), Some(anchor)) = (Fingerprint::read(&file, size), anchor) {
                    self.ledger.rest(FileCheckpoint {
                        generation: GenerationId::new(),
                        id: found.id,
                        fingerprint,
                        anchor,
                        position: size,
                        size,
                        path: found.path.to_string_lossy().into_owned(),
                        updated: now_unix(),
                        born: crate::checkpoint::born_of(&found.meta),
                        unfinished: false,
                        seen: None,
                        read_to_end: true,
                    });
                }
            }
            return;
        }
        self.open_stream(input, role, &found.path, found.id);
    }

    /// Where reading a newly found identity starts, and as which generation.
    ///
    /// Inodes are reused and files share headers, so a file is taken for a
    /// known generation only when its content proves it: the same head and
    /// the same bytes before the saved position ([`crate::ledger::continues`]).
    fn start_of(
        &mut self,
        input: usize,
        role: Role,
        file: &File,
        path: &Path,
        id: FileId,
    ) -> Start {
        let Ok(meta) = file.metadata() else {
            return Start::New(0);
        };
        let size = meta.len();
        let Ok(head) = Head::read(file) else {
            return Start::New(0);
        };
        match self.ledger.resume(&id, &head, file, size) {
            Ok(Some(cp)) => {
                if !self.streaming(cp.generation) {
                    tracing::info!(path = %path.display(), generation = %cp.generation, offset = cp.position, "resuming from checkpoint");
                }
                return Start::Known(cp);
            }
            Ok(None) => {}
            Err(old) => {
                tracing::info!(path = %path.display(), was = %old, "inode reused by another file (content differs from its checkpoint): a new file; the old one is looked for under rotated and compressed names");
            }
        }
        // A file of this input being read whose copy this is (copytruncate
        // copies, then cuts): wait until the original is found cut, then
        // the copy continues the original's generation from where it was
        // read to. Opening it before would read twice what the original
        // still serves. A file under a rotated name that holds a prefix of
        // one being read (empty included: cp creates the copy empty, then
        // fills it) is a copy being written and waits too. Under a current
        // name, a prefix is a new file that starts with the same header,
        // and an empty file is no copy of anything.
        if let Some(of) = self.copy_of_live(input, role, file, size) {
            return Start::Wait { copy_of: of };
        }
        // By content alone only under a rotated name: copies and renamed
        // files are there. A file under a current name that merely starts
        // like a known one (a new file with the same header) is new; one
        // that was renamed there keeps its inode and resumed above.
        if role == Role::Rotated {
            if let Some(of) = self.ledger.uncut_original(&head, file, size) {
                return Start::Wait { copy_of: of };
            }
        }
        let listing = &self.rotated_listing;
        let own_file_holds = |cp: &FileCheckpoint| {
            let own = listing
                .get(&cp.id)
                .map_or(Path::new(&cp.path), |p| p.as_path());
            crate::identify::own_file_holds(cp, own)
        };
        let continued = match role {
            Role::Rotated => self
                .ledger
                .take_continued(&head, file, size, &own_file_holds),
            Role::Current => None,
        };
        if let Some(cp) = continued {
            tracing::info!(path = %path.display(), generation = %cp.generation, offset = cp.position, was = %cp.path, "file continues one already read (a copy, or renamed while logferry was stopped): reading only the part not yet read");
            return Start::Known(cp);
        }
        let at_start = !self.first_scan_done && self.fresh_start;
        Start::New(match (role, self.settings.inputs[input].start_at) {
            (Role::Current, StartAt::End) if at_start => size,
            _ => 0,
        })
    }

    /// The path of a file of `input` being read whose content `file`
    /// repeats: all of it up to where it was read (a complete copy), or, for
    /// a file under a rotated name, all of `file` (a copy being written).
    fn copy_of_live(&mut self, input: usize, role: Role, file: &File, size: u64) -> Option<String> {
        // copytruncate copies to rotated names: a file under a current name
        // is never a copy (and with 10,000 files found at start, comparing
        // each with every other cost a quadratic number of glob matches).
        if role != Role::Rotated {
            return None;
        }
        // (`present` is being recomputed during a scan, so the path says
        // which files are current.)
        let current = &self.discoveries[input];
        for (slot, s) in self.streams.iter_mut().enumerate() {
            let Some(s) = s.as_deref_mut() else {
                continue;
            };
            if s.input != input {
                continue;
            }
            // A copy being written holds a prefix of a file being read;
            // only files under current names are copied by copytruncate
            // (an empty file would otherwise "repeat" every rotated file
            // still draining, and wait for nothing).
            let is_current = current.matches(Path::new(&*s.path));
            let copied = role == Role::Rotated
                && match &mut s.life {
                    Life::Open(w) => {
                        crate::identify::copy_of_open(w, s.fingerprint, file, size, is_current)
                    }
                    Life::Parked { at, proof, .. } => crate::identify::copy_of_parked(
                        s.fingerprint,
                        proof,
                        *at,
                        s.id,
                        Path::new(&*s.path),
                        file,
                        size,
                    ),
                    Life::Drained { .. } | Life::Failed => false,
                };
            if copied {
                // A parked original gone from its name (deleted: one
                // renamed was followed to its new name) cannot be reopened
                // to see it cut, and a woken stream is never let go: the
                // copy would wait for it forever (crash model seed
                // 472355782). Not woken, it is let go at the end of this
                // scan and looked for by content, and the copy, judged
                // again at the next scan, continues it.
                if matches!(s.life, Life::Parked { .. }) && !s.id.is_at(Path::new(&*s.path)) {
                    return Some(s.path.to_string());
                }
                // Whether the original was cut is learnt by reading it: a
                // cut and a rewrite to the very length read change no size
                // that a scan would see, and its notification may come
                // late, or never (no inotify), so read it now.
                s.wake = true;
                self.ready.push(slot);
                return Some(s.path.to_string());
            }
        }
        None
    }

    fn open_stream(&mut self, input: usize, role: Role, path: &Path, id: FileId) {
        let file = match open_log(path) {
            Ok(f) => f,
            Err(e) => {
                // Logged once per path and kind of error; retried each scan.
                if self.open_errors.insert((path.to_path_buf(), e.kind())) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open; retrying on every scan");
                }
                return;
            }
        };
        match file.metadata() {
            Ok(m) if FileId::of(&m) == id => {}
            _ => return, // Replaced between scan and open; the next scan sees the new one.
        }
        let (position, known) = match self.start_of(input, role, &file, path, id) {
            Start::Known(cp) if self.streaming(cp.generation) => {
                // One generation is read from one file at a time: this is
                // a copy of one being read (files that share a header
                // prove no more). Kept as that generation's on this inode,
                // so it is not looked at again unless it changes.
                tracing::debug!(path = %path.display(), generation = %cp.generation, "file holds a generation already being read from another file: a copy, not read");
                // Resting at what the other file was read to: if this one
                // holds more, that part is read once it grows or the other
                // is done.
                let size = file.metadata().map_or(0, |m| m.len());
                let read = self.read_extent(cp.generation).min(size);
                self.ledger.rest(FileCheckpoint {
                    id,
                    path: path.to_string_lossy().into_owned(),
                    born: file
                        .metadata()
                        .ok()
                        .as_ref()
                        .and_then(crate::checkpoint::born_of),
                    position: read.max(cp.position),
                    anchor: Anchor::read(&mut { &file }, read.max(cp.position))
                        .ok()
                        .flatten()
                        .unwrap_or(cp.anchor),
                    ..cp
                });
                return;
            }
            Start::Known(cp) => (cp.position, Some(cp)),
            Start::New(at) => (at, None),
            Start::Wait { copy_of } => {
                if self.copies_in_progress.insert(id) {
                    tracing::info!(path = %path.display(), copy_of = %copy_of, "file looks like a copy still being written, or a copy whose original is not cut yet (copytruncate); it is read once the original is found cut");
                }
                return;
            }
        };
        self.copies_in_progress.remove(&id);
        let watcher = match FileWatcher::new(path, file, position, &self.framers[input]) {
            Ok(w) => w,
            Err(e) => {
                if let Some(cp) = known {
                    self.ledger.rest(cp);
                }
                tracing::warn!(path = %path.display(), error = %e, "cannot follow; retrying on the next scan");
                return;
            }
        };
        self.add_stream(input, role, path, id, watcher, known);
    }

    /// Start following `watcher` as generation `known` (or a new one).
    fn add_stream(
        &mut self,
        input: usize,
        role: Role,
        path: &Path,
        id: FileId,
        mut watcher: FileWatcher,
        known: Option<FileCheckpoint>,
    ) {
        let position = watcher.read_position();
        if let Some(cp) = &known {
            watcher.know_head(cp.fingerprint);
        }
        let generation = known
            .as_ref()
            .map_or_else(GenerationId::new, |cp| cp.generation);
        // One generation, one reader: other entries of it (an unfinished
        // one kept in case a longer copy turns up) would let a second file
        // that merely starts alike be read as it too.
        if known.is_some() {
            self.ledger.forget_unfinished(generation, position);
        }
        let anchor = match &known {
            Some(cp) if cp.anchor.at <= position => cp.anchor,
            _ => watcher.anchor_at(position).unwrap_or_default(),
        };
        let size_seen = known
            .as_ref()
            .map_or(position, |cp| cp.size.max(position))
            .max(watcher.known_head().len);
        let meta = std::fs::metadata(path);
        let modified = meta
            .as_ref()
            .ok()
            .and_then(|m| m.modified().ok())
            .unwrap_or(UNIX_EPOCH);
        // A compressed file is not the generation's own file: no birth.
        let born = if watcher.is_compressed() {
            known.as_ref().and_then(|cp| cp.born)
        } else {
            meta.as_ref().ok().and_then(crate::checkpoint::born_of)
        };
        let stat_size = meta.map_or(0, |m| m.len());
        tracing::info!(path = %path.display(), id = %id, generation = %generation, offset = position, "following");
        let serial = self.next_serial;
        self.next_serial += 1;
        let path_s: std::sync::Arc<str> = path.to_string_lossy().into();
        let mut stream = Stream {
            input,
            serial,
            generation,
            id,
            tracker: AckTracker::new(position),
            // The head as far as read, or as the checkpoint knew it (the
            // file was matched to it by content), or as the file held it
            // when opened at its start: the watcher has read none of it yet.
            fingerprint: known
                .as_ref()
                .map(|cp| cp.fingerprint)
                .filter(|fp| fp.len > watcher.known_head().len)
                .unwrap_or_else(|| watcher.known_head()),
            anchor,
            size_seen,
            stat_size,
            opened_path: std::sync::Arc::clone(&path_s),
            path: path_s,
            present: role == Role::Current,
            modified,
            born,
            seen: known.as_ref().and_then(|cp| cp.seen),
            joiner: self.settings.inputs[input].multiline.clone().map(Box::new),
            wake: true,
            last_data: Instant::now(),
            durable_head: known.as_ref().map_or(0, |cp| cp.fingerprint.len),
            saving_head: 0,
            life: Life::Open(Box::new(watcher)),
        };
        // A generation resumed with a head shorter than the window (the
        // file held a few bytes when it was saved) proves little: content
        // written after a cut can start with the same bytes. The file was
        // matched to it just now, so what it holds now is the generation's
        // head; known at once, a cut before the first read (copytruncate
        // during a long startup scan) is seen, not read on as this
        // generation while its lines, in the copy, are never looked for.
        if known.is_some() {
            stream.widen_head();
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.streams[slot] = Some(Box::new(stream));
                slot
            }
            None => {
                self.streams.push(Some(Box::new(stream)));
                self.streams.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        self.by_path.insert(path.to_path_buf(), slot);
        self.ready.push(slot);
        self.absent_stale = true;
        self.descriptors.opened();
        self.events.push(TailEvent::Opened {
            generation,
            path: path.to_string_lossy().into_owned(),
            offset: position,
            known: known.is_some(),
        });
        // A file under a rotated name is drained and closed soon, and a
        // parked one is only reopened under its current name: it may go
        // over the budget for that while.
        if self.descriptors.over() && role == Role::Current {
            self.park(slot);
        }
    }
}
