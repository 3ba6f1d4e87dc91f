//! The wider model: the real [`Tailer`] under a sink that holds its acks
//! back, checkpoints written through the real [`Checkpointer`] at random
//! moments, kill -9 (the tailer dropped, lines in flight gone, the restart
//! loading only the last checkpoint file written), restarts racing with
//! logrotate (files renamed, compressed, cut or deleted between
//! `Tailer::new`, its first scan and its first reads), numbered rotations
//! that shift (`.1` -> `.2`, as `rotate N`) or dateext names
//! (`app.log-20261203-N`), compression with gzip, zstd, bzip2 or xz, the
//! oldest rotation deleted, the current file deleted and recreated, a
//! descriptor budget of one, and a short unfinished TTL with time let pass,
//! its loss reports collected.
//!
//! The model knows, for every numbered line, which life of a file (one
//! creation or cut to the next: a generation) holds it at which offsets,
//! and which files on disk hold which prefix of which life, so it knows
//! exactly which lines still exist somewhere the tailer can read them: a
//! plain file, a compressed one in a format the tailer reads, or a deleted
//! file whose descriptor the tailer held when it was deleted (looked up in
//! `/proc/self/fd`; the test process is the tailer's).
//!
//! Properties:
//! 1. every line written is handed out at least once, unless it lies in a
//!    range the tailer reported lost (generation, position..size), or it was
//!    destroyed (exists nowhere the tailer can read) without the tailer
//!    having known of it (a checkpoint it was restarted from said the
//!    generation held those bytes: then the loss must be reported);
//! 2. a loss is reported only for bytes that exist nowhere the tailer can
//!    read them;
//! 3. a line is handed out twice only if it was handed out and not covered
//!    by the last checkpoint written (in flight, or acknowledged out of
//!    order or after that checkpoint) at a crash: once more per such crash;
//! 4. within one run of the tailer, each generation's records come out in
//!    file order (offsets increase), at the offsets the model wrote them.
//!
//! One limitation is excused, as by the first model: a rotated file
//! compressed before the tailer handed out any of its lines is not
//! backfilled (no known generation leads to it); its lines, when they exist
//! only compressed, may be missed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use logferry_tail::{
    Checkpointer, FileCheckpoint, FileId, GenerationId, Line, LineSink, LongLinePolicy,
    ScanOutcome, StartAt, StreamInfo, TailInput, TailSettings, Tailer,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::{trace, HEADER};

/// How long an unfinished generation is looked for before it is declared
/// lost: short, so that cases see losses reported.
pub const TTL: Duration = Duration::from_millis(200);

/// A compressor logrotate may be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::Gzip, Codec::Zstd, Codec::Bzip2, Codec::Xz];

    fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Zstd => "zst",
            Codec::Bzip2 => "bz2",
            Codec::Xz => "xz",
        }
    }

    /// Whether the tailer reads this format (`compressed::READABLE_SUFFIXES`):
    /// the one line to change as it learns more. Bytes only in a format it
    /// cannot read are, for the model, destroyed.
    fn readable(self) -> bool {
        // By content (magic bytes), every codec logrotate is set up with.
        matches!(self, Codec::Gzip | Codec::Zstd | Codec::Bzip2 | Codec::Xz)
    }

    /// The compressed bytes; None when no compressor is installed (the
    /// action is then skipped).
    fn compress(self, bytes: &[u8]) -> Option<Vec<u8>> {
        let tool = match self {
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes).unwrap();
                return Some(e.finish().unwrap());
            }
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        };
        let mut child = Command::new(tool)
            .args(["-c", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Small inputs: they fit the pipe, no writer thread needed.
        child.stdin.take()?.write_all(bytes).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status.success().then_some(out.stdout)
    }
}

/// How rotated files are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `app.log.1`, `app.log.2`, ...: each rotation shifts every name by
    /// one (logrotate's `rotate N`).
    Numbered,
    /// `app.log-20261203-1`, `-2`, ...: names never change (`dateext`).
    DateExt,
}

/// What the writer and logrotate do to the files.
#[derive(Debug, Clone)]
pub enum DiskOp {
    /// Append this many complete lines.
    Write(u8),
    /// Append the first bytes of a line (completed by a later write).
    Partial,
    /// Rename+create (after shifting numbered names).
    Rotate,
    /// copytruncate (after shifting numbered names).
    CopyTruncate,
    /// Compress one plain rotated file (the n-th newest, modulo their
    /// number) and remove the plain one.
    Compress(Codec, u8),
    /// Delete the oldest rotated file.
    DeleteOldest,
    /// Cut the current file in place.
    Truncate,
    /// Delete the current file; the writer creates it again.
    DeleteRecreate,
}

/// One step of a case.
#[derive(Debug, Clone)]
pub enum Op {
    Disk(DiskOp),
    /// Let the tailer catch up (started again first if it is down).
    Pause,
    /// One scan only (no read).
    Scan,
    /// The sink acknowledges some lines handed out: per stream all, a
    /// prefix, a random subset or none (chosen from this seed).
    Ack(u8),
    /// Write a checkpoint: `checkpoint_entries` saved by the Checkpointer.
    Checkpoint,
    /// kill -9: the tailer is dropped; lines not acknowledged are gone.
    Crash,
    /// A crash (if running), then a start from the checkpoint file with
    /// disk actions between the steps of the start: stage 0 before the
    /// first scan, 3 between it and the checkpoint written after it (as
    /// during a long scan, after the file was taken up), 1 between that
    /// checkpoint and the first read round, 2 after that.
    Restart(Vec<(u8, DiskOp)>),
    /// Let time pass: half the unfinished TTL, or (true) past it.
    Sleep(bool),
}

fn codec() -> impl Strategy<Value = Codec> {
    prop::sample::select(Codec::ALL.to_vec())
}

fn disk_op() -> impl Strategy<Value = DiskOp> {
    prop_oneof![
        6 => (1u8..20).prop_map(DiskOp::Write),
        2 => Just(DiskOp::Partial),
        2 => Just(DiskOp::Rotate),
        1 => Just(DiskOp::CopyTruncate),
        2 => (codec(), 0u8..3).prop_map(|(c, i)| DiskOp::Compress(c, i)),
        1 => Just(DiskOp::DeleteOldest),
        1 => Just(DiskOp::Truncate),
        1 => Just(DiskOp::DeleteRecreate),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => disk_op().prop_map(Op::Disk),
        3 => Just(Op::Pause),
        1 => Just(Op::Scan),
        3 => any::<u8>().prop_map(Op::Ack),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
        1 => proptest::collection::vec((0u8..4, disk_op()), 0..4).prop_map(Op::Restart),
        1 => any::<bool>().prop_map(Op::Sleep),
    ]
}

/// One case: the steps and the options they run under.
pub fn case() -> impl Strategy<Value = (Vec<Op>, bool, bool, bool)> {
    (
        proptest::collection::vec(op(), 1..40),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
}

/// The same without files sharing a header: two such files that agree on
/// all a checkpoint proves cannot be told apart (a known limit, see the
/// README's limits of proof by content), and a search with fresh seeds
/// finds that limit again and again (cases 19 to 21 in `crash_found`).
/// The fixed-seed property keeps shared headers.
pub fn case_without_shared_header() -> impl Strategy<Value = (Vec<Op>, bool, bool, bool)> {
    (
        proptest::collection::vec(op(), 1..40),
        Just(false),
        any::<bool>(),
        any::<bool>(),
    )
}

fn settings(path: &Path, budget: usize) -> TailSettings {
    TailSettings {
        inputs: vec![TailInput {
            include: vec![path.to_string_lossy().into_owned()],
            exclude: vec![],
            start_at: StartAt::Beginning,
            max_line_bytes: 1 << 20,
            long_lines: LongLinePolicy::Truncate,
            strip_cr: false,
            pack_bytes: 0,
            partial_flush: None,
            multiline: None,
            rotated: vec![],
            backfill: false,
        }],
        scan_interval: Duration::from_millis(1),
        rotate_grace: Duration::ZERO,
        max_open_files: budget,
        unfinished_ttl: TTL,
    }
}

/// One record handed out.
#[derive(Debug, Clone)]
struct Rec {
    slot: usize,
    serial: u64,
    seq: u64,
    generation: GenerationId,
    start: u64,
    end: u64,
    /// The numbered line (None: a header line).
    n: Option<u64>,
    acked: bool,
}

/// Records as handed out; the model takes them after each tailer call.
#[derive(Default)]
struct Sink {
    recs: Vec<Rec>,
    bad: Vec<String>,
}

impl LineSink for Sink {
    fn room(&self, _input: usize, _slot: usize) -> usize {
        usize::MAX / 2
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        let n = if line.bytes.starts_with(b"#") {
            None
        } else {
            let text = String::from_utf8_lossy(line.bytes);
            match text.strip_prefix('L').and_then(|t| t.parse().ok()) {
                Some(n) if !line.truncated => Some(n),
                _ => {
                    self.bad.push(format!(
                        "{text:?} at {} of {} ({})",
                        line.start, stream.path, stream.generation
                    ));
                    None
                }
            }
        };
        self.recs.push(Rec {
            slot: stream.slot,
            serial: stream.serial,
            seq,
            generation: stream.generation,
            start: line.start,
            end: line.end,
            n,
            acked: false,
        });
    }
}

/// A rotated file on disk: a prefix of one life, maybe compressed.
#[derive(Debug)]
struct RotFile {
    path: PathBuf,
    life: usize,
    len: u64,
    codec: Option<Codec>,
    /// Its dateext number.
    serial: u32,
}

/// Whether a descriptor of this process (the tailer's: the writer's own is
/// closed first) is open on `id`.
fn tailer_holds(id: FileId) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.flatten()
        .any(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == id.dev && m.ino() == id.ino))
}

fn id_of(path: &Path) -> FileId {
    let m = std::fs::metadata(path).unwrap();
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

/// A lost range as reported, with the lives it may be.
struct Reported {
    cp: FileCheckpoint,
    lives: BTreeSet<usize>,
}

pub struct Model {
    dir: PathBuf,
    path: PathBuf,
    naming: Naming,
    header: bool,
    budget: usize,
    checkpointer: Checkpointer,
    tailer: Option<Tailer>,
    sink: Sink,
    buf: Vec<u8>,
    // The writer.
    file: Option<File>,
    partial: bool,
    cur_life: usize,
    cur_len: u64,
    lives: usize,
    rotations: u32,
    rotated: Vec<RotFile>,
    /// Deleted files the tailer held open when they were deleted: (life,
    /// length). Gone at a crash.
    held: Vec<(usize, u64)>,
    /// Every life a file with this inode ever held.
    inode_lives: HashMap<FileId, BTreeSet<usize>>,
    /// Per line: (life, start, end).
    lines: Vec<(usize, u64, u64)>,
    // What the tailer did.
    /// Records of `sink.recs` already taken.
    taken: usize,
    handed: Vec<u32>,
    /// Per line: acknowledged as part of its stream's acknowledged prefix
    /// when a checkpoint was written (so a restart does not repeat it).
    covered: Vec<bool>,
    /// Per line: crashes at which it was handed out and not covered.
    risk: Vec<u32>,
    /// Lives some line of which was handed out.
    seen: HashSet<usize>,
    generation_lives: HashMap<GenerationId, BTreeSet<usize>>,
    /// This run's records per stream serial, in order (indices in recs).
    streams: BTreeMap<u64, Vec<usize>>,
    /// This run: per generation, the end of the last record.
    last_end: HashMap<GenerationId, u64>,
    /// The entries each restart loaded.
    loaded: Vec<Vec<FileCheckpoint>>,
    reported: Vec<Reported>,
    errors: Vec<String>,
    log: Vec<String>,
}

impl Model {
    pub fn new(dir: &Path, header: bool, budget: usize, naming: Naming) -> Model {
        trace();
        let path = dir.join("app.log");
        let checkpointer = Checkpointer::new(&dir.join("state")).unwrap();
        let mut m = Model {
            dir: dir.to_path_buf(),
            path: path.clone(),
            naming,
            header,
            budget,
            checkpointer,
            tailer: None,
            sink: Sink::default(),
            buf: vec![0u8; 64],
            file: None,
            partial: false,
            cur_life: 0,
            cur_len: 0,
            lives: 0,
            rotations: 0,
            rotated: Vec::new(),
            held: Vec::new(),
            inode_lives: HashMap::new(),
            lines: Vec::new(),
            taken: 0,
            handed: Vec::new(),
            covered: Vec::new(),
            risk: Vec::new(),
            seen: HashSet::new(),
            generation_lives: HashMap::new(),
            streams: BTreeMap::new(),
            last_end: HashMap::new(),
            loaded: Vec::new(),
            reported: Vec::new(),
            errors: Vec::new(),
            log: Vec::new(),
        };
        m.new_life();
        m.create_current();
        m.tailer = Some(Tailer::new(settings(&path, budget), vec![], true).unwrap());
        m.catch_up();
        // A checkpoint exists from the start: a restart is never taken for a
        // first start (which would treat rotated files as history).
        m.checkpoint();
        m
    }

    fn new_life(&mut self) {
        self.cur_life = self.lives;
        self.lives += 1;
        self.cur_len = 0;
    }

    fn create_current(&mut self) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        if self.header && f.metadata().unwrap().len() == 0 {
            f.write_all(HEADER.as_bytes()).unwrap();
            self.cur_len = HEADER.len() as u64;
        }
        self.file = Some(f);
        let id = id_of(&self.path);
        self.inode_lives
            .entry(id)
            .or_default()
            .insert(self.cur_life);
    }

    fn rotated_name(&self, pos: usize, f: &RotFile) -> PathBuf {
        let base = match self.naming {
            Naming::Numbered => format!("app.log.{}", pos + 1),
            Naming::DateExt => format!("app.log-20261203-{}", f.serial),
        };
        let name = match f.codec {
            Some(c) => format!("{base}.{}", c.suffix()),
            None => base,
        };
        self.dir.join(name)
    }

    /// Make room for a new `.1`: every numbered name moves up by one.
    fn shift(&mut self) {
        for i in (0..self.rotated.len()).rev() {
            let to = self.rotated_name(i + 1, &self.rotated[i]);
            let f = &mut self.rotated[i];
            if f.path != to {
                std::fs::rename(&f.path, &to).unwrap();
                f.path = to;
            }
        }
    }

    /// A file about to be deleted: if the tailer holds it open, it can
    /// still read what it holds.
    fn deleting(&mut self, path: &Path, life: usize, len: u64) {
        if tailer_holds(id_of(path)) {
            self.held.push((life, len));
        }
        std::fs::remove_file(path).unwrap();
    }

    fn disk(&mut self, op: &DiskOp) {
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("model: disk {op:?}");
        }
        match *op {
            DiskOp::Write(n) => {
                for _ in 0..n {
                    let k = self.lines.len() as u64;
                    let line = format!("L{k}\n");
                    // A pending partial line is this line's first two bytes.
                    let from = if self.partial { 2 } else { 0 };
                    self.file
                        .as_mut()
                        .unwrap()
                        .write_all(&line.as_bytes()[from..])
                        .unwrap();
                    self.partial = false;
                    let start = self.cur_len - from as u64;
                    self.cur_len = start + line.len() as u64;
                    self.lines.push((self.cur_life, start, self.cur_len));
                    self.handed.push(0);
                    self.covered.push(false);
                    self.risk.push(0);
                }
            }
            DiskOp::Partial => {
                if !self.partial {
                    let line = format!("L{}\n", self.lines.len());
                    self.file
                        .as_mut()
                        .unwrap()
                        .write_all(&line.as_bytes()[..2])
                        .unwrap();
                    self.cur_len += 2;
                    self.partial = true;
                }
            }
            // logrotate acts between writes, never inside a line.
            _ if self.partial => {}
            DiskOp::Rotate => {
                self.shift();
                self.rotations += 1;
                let mut f = RotFile {
                    path: PathBuf::new(),
                    life: self.cur_life,
                    len: self.cur_len,
                    codec: None,
                    serial: self.rotations,
                };
                f.path = self.rotated_name(0, &f);
                self.file = None;
                std::fs::rename(&self.path, &f.path).unwrap();
                self.rotated.insert(0, f);
                self.new_life();
                self.create_current();
            }
            DiskOp::CopyTruncate => {
                self.shift();
                self.rotations += 1;
                let mut f = RotFile {
                    path: PathBuf::new(),
                    life: self.cur_life,
                    len: self.cur_len,
                    codec: None,
                    serial: self.rotations,
                };
                f.path = self.rotated_name(0, &f);
                std::fs::copy(&self.path, &f.path).unwrap();
                self.inode_lives
                    .entry(id_of(&f.path))
                    .or_default()
                    .insert(f.life);
                self.rotated.insert(0, f);
                self.file.as_mut().unwrap().set_len(0).unwrap();
                self.new_life();
                let id = id_of(&self.path);
                self.inode_lives
                    .entry(id)
                    .or_default()
                    .insert(self.cur_life);
            }
            DiskOp::Compress(codec, i) => {
                let plain: Vec<usize> = (0..self.rotated.len())
                    .filter(|&k| self.rotated[k].codec.is_none())
                    .collect();
                if plain.is_empty() {
                    return;
                }
                let k = plain[i as usize % plain.len()];
                let bytes = std::fs::read(&self.rotated[k].path).unwrap();
                let Some(packed) = codec.compress(&bytes) else {
                    return;
                };
                let (life, len) = (self.rotated[k].life, self.rotated[k].len);
                let old = self.rotated[k].path.clone();
                self.rotated[k].codec = Some(codec);
                let to = self.rotated_name(k, &self.rotated[k]);
                std::fs::write(&to, packed).unwrap();
                self.inode_lives.entry(id_of(&to)).or_default().insert(life);
                self.rotated[k].path = to;
                self.deleting(&old, life, len);
            }
            DiskOp::DeleteOldest => {
                if let Some(f) = self.rotated.pop() {
                    self.deleting(&f.path, f.life, f.len);
                }
            }
            DiskOp::Truncate => {
                self.file.as_mut().unwrap().set_len(0).unwrap();
                self.new_life();
                let id = id_of(&self.path);
                self.inode_lives
                    .entry(id)
                    .or_default()
                    .insert(self.cur_life);
            }
            DiskOp::DeleteRecreate => {
                self.file = None;
                let path = self.path.clone();
                self.deleting(&path, self.cur_life, self.cur_len);
                self.new_life();
                self.create_current();
            }
        }
    }

    /// Slots holding lines not acknowledged yet: not to be retired.
    fn busy(&self) -> HashSet<usize> {
        self.streams
            .values()
            .flatten()
            .filter(|&&i| !self.sink.recs[i].acked)
            .map(|&i| self.sink.recs[i].slot)
            .collect()
    }

    /// Take the records handed out since last time.
    fn take(&mut self) {
        while self.taken < self.sink.recs.len() {
            let i = self.taken;
            self.taken += 1;
            let r = self.sink.recs[i].clone();
            if std::env::var_os("MODEL_TRACE").is_some() {
                eprintln!(
                    "model: handed {:?} of {} at {}..{} (stream {})",
                    r.n, r.generation, r.start, r.end, r.serial
                );
            }
            self.streams.entry(r.serial).or_default().push(i);
            let last = self.last_end.entry(r.generation).or_insert(0);
            if r.start < *last {
                self.errors.push(format!(
                    "(4) out of order: {:?} of {} at {}..{} after {} in this run",
                    r.n, r.generation, r.start, r.end, last
                ));
            }
            *last = (*last).max(r.end);
            let Some(n) = r.n else { continue };
            let Some(&(life, start, end)) = self.lines.get(n as usize) else {
                self.errors.push(format!("line {n} was never written"));
                continue;
            };
            if (r.start, r.end) != (start, end) {
                self.errors.push(format!(
                    "(4) line {n} handed out at {}..{}, written at {start}..{end}",
                    r.start, r.end
                ));
            }
            self.handed[n as usize] += 1;
            self.seen.insert(life);
            let lives = self.generation_lives.entry(r.generation).or_default();
            lives.insert(life);
            // (5) A generation is one file's content from its creation (or
            // cut) on, wherever copies of it went: lines of two under one
            // generation mean one was taken for the other, and the lines of
            // the one not read are never looked for. Not asserted for files
            // that share a header: a generation acknowledged no further
            // than its header is told from another only by a proof of what
            // followed it, which a crash can leave unsaved (docs/DELIVERY.md,
            // "Limits of proof by content": its lines are shipped, under the
            // wrong generation).
            if lives.len() > 1 && !self.header {
                self.errors.push(format!(
                    "(5) generation {} holds lines of lives {:?} (line {n} of life {life})",
                    r.generation, lives
                ));
            }
        }
    }

    fn lost(&mut self, out: ScanOutcome) {
        for cp in out.lost {
            let mut lives = self
                .generation_lives
                .get(&cp.generation)
                .cloned()
                .unwrap_or_default();
            if lives.is_empty() {
                lives = self.inode_lives.get(&cp.id).cloned().unwrap_or_default();
            }
            // (2) Bytes at the reported position must exist nowhere.
            let really = lives.iter().any(|&l| self.max_present(l) <= cp.position);
            let msg = format!(
                "{} lost {}..{} of {} (lives {lives:?})",
                cp.generation, cp.position, cp.size, cp.path
            );
            self.log.push(msg.clone());
            if !really {
                self.errors.push(format!(
                    "(2) reported lost, yet present: {msg}; present {:?}",
                    lives
                        .iter()
                        .map(|&l| (l, self.max_present(l)))
                        .collect::<Vec<_>>()
                ));
            }
            self.reported.push(Reported { cp, lives });
        }
    }

    /// How much of `life` exists where the tailer can read it.
    fn max_present(&self, life: usize) -> u64 {
        let mut max = 0;
        if life == self.cur_life {
            max = self.cur_len;
        }
        for f in &self.rotated {
            if f.life == life && f.codec.is_none_or(Codec::readable) {
                max = max.max(f.len);
            }
        }
        for &(l, len) in &self.held {
            if l == life {
                max = max.max(len);
            }
        }
        max
    }

    /// Where line `n` exists: (plainly or held, compressed and readable).
    fn present(&self, n: usize) -> (bool, bool) {
        let (life, _, end) = self.lines[n];
        let plain = (life == self.cur_life && self.cur_len >= end)
            || self
                .rotated
                .iter()
                .any(|f| f.life == life && f.len >= end && f.codec.is_none())
            || self.held.iter().any(|&(l, len)| l == life && len >= end);
        let packed = self
            .rotated
            .iter()
            .any(|f| f.life == life && f.len >= end && f.codec.is_some_and(Codec::readable));
        (plain, packed)
    }

    fn start(&mut self, races: &[(u8, DiskOp)]) {
        let (saved, mark) = self.checkpointer.load_with_watermark().unwrap();
        if std::env::var_os("MODEL_TRACE").is_some() {
            for cp in &saved {
                eprintln!("model: restart from {cp:?}");
            }
            self.trace_files("before the start");
        }
        self.loaded.push(saved.clone());
        let mut t = Tailer::new(settings(&self.path, self.budget), saved, false).unwrap();
        // As the shipper: compressed files modified since the watermark
        // saved are examined for generations born while it was down.
        if let Some(ns) = mark {
            t.examine_compressed_since(std::time::UNIX_EPOCH + Duration::from_nanos(ns));
        }
        for (_, op) in races.iter().filter(|r| r.0 == 0) {
            self.disk(op);
        }
        let busy = self.busy();
        let out = t.scan(&|s| busy.contains(&s));
        self.tailer = Some(t);
        self.lost(out);
        for (_, op) in races.iter().filter(|r| r.0 == 3) {
            self.disk(op);
        }
        // As the shipping loop: a checkpoint right after the first scan.
        self.checkpoint();
        for (_, op) in races.iter().filter(|r| r.0 == 1) {
            self.disk(op);
        }
        let t = self.tailer.as_mut().unwrap();
        t.read_round(&mut self.buf, &mut self.sink);
        self.take();
        for (_, op) in races.iter().filter(|r| r.0 == 2) {
            self.disk(op);
        }
    }

    /// The files on disk (name, inode, size), for traces.
    fn trace_files(&self, when: &str) {
        let dir = self.path.parent().unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some(format!(
                    "{} (ino {}, {} B)",
                    e.file_name().to_string_lossy(),
                    std::os::unix::fs::MetadataExt::ino(&m),
                    m.len()
                ))
            })
            .collect();
        files.sort();
        eprintln!("model: files {when}: {}", files.join(", "));
    }

    fn crash(&mut self) {
        if self.tailer.take().is_none() {
            return;
        }
        for n in 0..self.lines.len() {
            if self.handed[n] > 0 && !self.covered[n] {
                self.risk[n] += 1;
            }
        }
        self.held.clear();
        self.streams.clear();
        self.last_end.clear();
        // What the restart knows of each life is what the checkpoint file
        // says: a life none of whose lines it reached is unknown to it, and
        // if it is (or will be) compressed, it is not backfilled.
        let saved = self.checkpointer.load().unwrap();
        let known: HashSet<usize> = saved
            .iter()
            .flat_map(|cp| {
                let lives = self.generation_lives.get(&cp.generation);
                self.lines
                    .iter()
                    .filter(move |l| l.2 <= cp.size && lives.is_some_and(|s| s.contains(&l.0)))
                    .map(|l| l.0)
            })
            .collect();
        self.seen = known;
    }

    /// Scan and read until nothing more comes, acknowledging nothing.
    fn catch_up(&mut self) {
        let mut quiet = 0;
        while quiet < 3 {
            let busy = self.busy();
            let t = self.tailer.as_mut().unwrap();
            let a = t.tick(&|s| busy.contains(&s));
            let b = t.scan(&|s| busy.contains(&s));
            let n = t.read_round(&mut self.buf, &mut self.sink);
            // Write-ahead: a new generation waits for a checkpoint, which
            // the shipping loop writes at once.
            let waited = t.wants_save();
            if n == 0 && !waited {
                // File-system events come from a thread of their own.
                t.wait(Duration::from_millis(2));
            }
            self.lost(a);
            self.lost(b);
            self.take();
            if waited {
                self.checkpoint();
            }
            quiet = if n == 0 && !waited { quiet + 1 } else { 0 };
        }
    }

    fn ack(&mut self, seed: u8, all: bool) {
        let Some(t) = self.tailer.as_mut() else {
            return;
        };
        let mut rng = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for recs in self.streams.values() {
            let open: Vec<usize> = recs
                .iter()
                .copied()
                .filter(|&i| !self.sink.recs[i].acked)
                .collect();
            if open.is_empty() {
                continue;
            }
            let chosen: Vec<usize> = match if all { 0 } else { next() % 4 } {
                0 => open,
                1 => {
                    let k = (next() % (open.len() as u64 + 1)) as usize;
                    open[..k].to_vec()
                }
                2 => open.into_iter().filter(|_| next() % 2 == 0).collect(),
                _ => vec![],
            };
            for i in chosen {
                let r = &mut self.sink.recs[i];
                r.acked = true;
                t.ack(r.slot, r.seq);
            }
        }
    }

    fn checkpoint(&mut self) {
        let Some(t) = self.tailer.as_mut() else {
            return;
        };
        let entries = t.checkpoint_entries();
        self.checkpointer
            .save_with_watermark(&entries, Some(t.examined_until()))
            .unwrap();
        t.saved();
        // Covered: acknowledged, and so is every earlier line of its
        // generation handed out in this run. A generation read from two
        // files (a copy made while lines of the original were in flight)
        // is checkpointed at the first line not acknowledged in either.
        let mut by_generation: HashMap<GenerationId, Vec<usize>> = HashMap::new();
        for recs in self.streams.values() {
            for &i in recs {
                by_generation
                    .entry(self.sink.recs[i].generation)
                    .or_default()
                    .push(i);
            }
        }
        for recs in by_generation.values_mut() {
            recs.sort_by_key(|&i| self.sink.recs[i].start);
            for &i in recs.iter() {
                let r = &self.sink.recs[i];
                if !r.acked {
                    break;
                }
                if let Some(n) = r.n {
                    self.covered[n as usize] = true;
                }
            }
        }
    }

    pub fn step(&mut self, op: &Op) {
        match op {
            Op::Disk(d) => self.disk(d),
            Op::Pause => {
                if self.tailer.is_none() {
                    self.start(&[]);
                }
                self.catch_up();
            }
            Op::Scan => {
                let busy = self.busy();
                if let Some(t) = self.tailer.as_mut() {
                    let out = t.scan(&|s| busy.contains(&s));
                    self.lost(out);
                }
            }
            Op::Ack(seed) => self.ack(*seed, false),
            Op::Checkpoint => self.checkpoint(),
            Op::Crash => self.crash(),
            Op::Restart(races) => {
                self.crash();
                self.start(races);
            }
            Op::Sleep(past) => std::thread::sleep(if *past {
                TTL + Duration::from_millis(20)
            } else {
                TTL / 2
            }),
        }
    }

    fn in_reported(&self, n: usize) -> bool {
        let (life, start, end) = self.lines[n];
        self.reported
            .iter()
            .any(|r| r.lives.contains(&life) && start < r.cp.size && end > r.cp.position)
    }

    /// A checkpoint the tailer was started from said the line's generation
    /// held it: if it is destroyed, its loss must be reported.
    fn known(&self, n: usize) -> bool {
        let (life, start, end) = self.lines[n];
        self.loaded.iter().flatten().any(|cp| {
            start < cp.size
                && end > cp.position
                && self
                    .generation_lives
                    .get(&cp.generation)
                    .is_some_and(|l| l.contains(&life))
        })
    }

    /// Lines neither handed out nor excused.
    fn missing(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&n| {
                if self.handed[n] > 0 || self.in_reported(n) {
                    return false;
                }
                let (plain, packed) = self.present(n);
                let destroyed = !plain && !packed;
                if destroyed {
                    return self.known(n);
                }
                // Still on disk, plainly or compressed (a compressed file
                // no known generation leads to, written since the last
                // checkpoint, is shipped from its start): it must come.
                true
            })
            .collect()
    }

    /// Start if down, read everything, acknowledge everything; wait for
    /// the TTL when lines are still missing; check the properties.
    pub fn finish(mut self) -> Result<(), TestCaseError> {
        for round in 0..2 {
            if self.tailer.is_none() {
                self.start(&[]);
            }
            self.catch_up();
            self.ack(0, true);
            self.catch_up();
            if round == 0 && !self.missing().is_empty() {
                std::thread::sleep(TTL + Duration::from_millis(30));
            } else {
                break;
            }
        }
        if std::env::var_os("MODEL_STATS").is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "lines {} handed {} lives {} losses {} loaded {}",
                self.lines.len(),
                self.handed.iter().filter(|&&h| h > 0).count(),
                self.lives,
                self.reported.len(),
                self.loaded.len()
            );
        }
        let sink = std::mem::take(&mut self.sink.bad);
        prop_assert!(sink.is_empty(), "not whole lines: {:?}", sink);
        prop_assert!(
            self.errors.is_empty(),
            "{:?}\nlosses: {:?}",
            self.errors,
            self.log
        );
        for n in 0..self.lines.len() {
            prop_assert!(
                self.handed[n] <= 1 + self.risk[n],
                "(3) line {} handed out {} times, at risk at {} crashes (covered: {})",
                n,
                self.handed[n],
                self.risk[n],
                self.covered[n]
            );
        }
        let missing = self.missing();
        prop_assert!(
            missing.is_empty(),
            "(1) lines never handed out, not reported lost: {:?} (known to a checkpoint: {:?}); \
             lines (life, start, end): {:?}; losses: {:?}; handed out: {:?}",
            missing,
            missing
                .iter()
                .filter(|&&n| self.known(n))
                .collect::<Vec<_>>(),
            missing.iter().map(|&n| self.lines[n]).collect::<Vec<_>>(),
            self.log,
            self.handed
        );
        Ok(())
    }
}

/// Run one case in a new directory.
pub fn run(
    ops: &[Op],
    header: bool,
    tiny_budget: bool,
    dateext: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let naming = if dateext {
        Naming::DateExt
    } else {
        Naming::Numbered
    };
    let mut m = Model::new(dir.path(), header, if tiny_budget { 1 } else { 16 }, naming);
    for op in ops {
        m.step(op);
    }
    m.finish()
}

/// The proptest configuration for `seed`.
/// `LOGFERRY_MODEL_CASES` runs more (or fewer) cases, to hunt locally.
pub fn config(seed: u64, cases: u32) -> Config {
    Config {
        cases: std::env::var("LOGFERRY_MODEL_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(cases),
        rng_seed: RngSeed::Fixed(seed),
        // Failures are kept as named cases in `crash_found`, not in a file.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The fixed seed, unless `PROPTEST_RNG_SEED` names another.
pub fn fixed_seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261203)
}

/// `LOGFERRY_MODEL_RANDOM_SEED`, or one from the clock, said on stderr
/// (past the test harness's capture) so a failure can be replayed.
pub fn random_seed() -> u64 {
    let seed = std::env::var("LOGFERRY_MODEL_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000
        });
    let _ = writeln!(
        std::io::stderr(),
        "model: random seed {seed} (replay with PROPTEST_RNG_SEED={seed})"
    );
    seed
}
