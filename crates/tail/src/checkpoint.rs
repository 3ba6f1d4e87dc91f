//! Persisted read positions. The [`Checkpointer`] only writes what it is
//! given; deciding *which* position is safe (every line before it acked by
//! the broker) is the caller's job.
//!
//! The file is JSON with a version tag, written to a temp file, fsynced,
//! renamed over the old one, and the directory fsynced, so a crash leaves
//! either the old or the new checkpoint, never a torn one. Mode 0600: it
//! names log paths.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::{Anchor, FileId, Fingerprint, GenerationId};

/// Bumped whenever the on-disk shape changes; older builds refuse newer files
/// instead of misreading them. Version 1 (no generations) is still read.
pub const FORMAT_VERSION: u32 = 2;
const FILE_NAME: &str = "checkpoints.json";
/// Generations that vanished with bytes never shipped, one JSON object a
/// line, appended: what `verify --checkpoint-dir` reports as lost.
const LOSSES_NAME: &str = "losses.jsonl";

/// Bytes of a generation that vanished before logferry read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// Seconds since the Unix epoch when the loss was declared.
    pub time: u64,
    pub host: String,
    pub path: String,
    pub generation: GenerationId,
    /// First byte never shipped.
    pub offset: u64,
    /// How many bytes past `offset` were known to exist.
    pub bytes: u64,
    /// The file was being read when logferry last looked at it: lines
    /// written after that (how many is not known) are lost with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_size: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot create checkpoint directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read checkpoint file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("checkpoint file {path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("checkpoint file {path} has format version {found}; this logferry reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write checkpoint file {path}: {source} (the previous checkpoint is kept)")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot record a loss in {path}: {source}")]
    Loss { path: PathBuf, source: io::Error },
}

/// The saved state of one file generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Which life of the file this is; what records carry.
    pub generation: GenerationId,
    /// Where it lived when last seen: a hint, since inodes are reused.
    pub id: FileId,
    /// Head of the file when last read.
    pub fingerprint: Fingerprint,
    /// Content proof near `position` (at or before it): a file is this
    /// generation only if its head and this anchor match.
    pub anchor: Anchor,
    /// Every line ending at or before this offset was acknowledged.
    pub position: u64,
    /// How many bytes of it logferry knew of (read, or seen by size): if the
    /// generation vanishes, the bytes past `position` are a known loss.
    pub size: u64,
    /// Where the file was last seen; informational (identity is what counts).
    pub path: String,
    /// Seconds since the Unix epoch when this entry was last refreshed, so
    /// entries of files gone for good can be expired.
    pub updated: u64,
    /// The file's birth time (nanoseconds since the epoch) where the file
    /// system keeps one: an inode handed to a new file has a new one, so a
    /// reused inode is told apart even when the new file starts with the
    /// same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<u64>,
    /// Its unread bytes are to be found in another file (a copy, a `.gz`),
    /// not under its inode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    /// The bytes before the end of the file as last seen, when that is
    /// past `position`: what was there but not shipped. With a header
    /// shared by every file and nothing shipped yet, the head and `anchor`
    /// prove nothing, and this tells the generation's own file (or its
    /// `.gz`) from the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Anchor>,
    /// Every byte logferry saw of it was read: drained after a rotation, or
    /// cut while reading had caught up. If its file then vanishes, nothing
    /// logferry could know of is lost. Without it (a file being read when
    /// logferry stopped), a generation never found again may have had lines
    /// written after the last look, and is reported as a loss of unknown
    /// size rather than let go in silence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_to_end: bool,
}

/// A file's birth time, where the file system keeps one.
pub fn born_of(meta: &std::fs::Metadata) -> Option<u64> {
    meta.created()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub version: u32,
    /// Nanoseconds since the epoch: every compressed rotated file modified
    /// after this had not been examined yet (see
    /// [`Tailer::examined_until`](crate::Tailer::examined_until)). Absent in
    /// files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examined_until: Option<u64>,
    pub files: Vec<FileCheckpoint>,
}

/// Version 1 entries: per inode, no generation and no anchor. Loaded with a
/// fresh generation and an empty anchor (which matches any content), so an
/// upgrade resumes where the old build stopped.
#[derive(Deserialize)]
struct CheckpointFileV1 {
    files: Vec<FileCheckpointV1>,
}

#[derive(Deserialize)]
struct FileCheckpointV1 {
    id: FileId,
    fingerprint: Fingerprint,
    position: u64,
    path: String,
    updated: u64,
}

impl From<FileCheckpointV1> for FileCheckpoint {
    fn from(v: FileCheckpointV1) -> Self {
        FileCheckpoint {
            generation: GenerationId::new(),
            id: v.id,
            fingerprint: v.fingerprint,
            anchor: Anchor {
                at: v.position,
                len: 0,
                hash: Fingerprint::of_bytes(b"").hash,
            },
            position: v.position,
            size: v.position,
            path: v.path,
            updated: v.updated,
            born: None,
            unfinished: false,
            seen: None,
            read_to_end: false,
        }
    }
}

#[derive(Debug)]
pub struct Checkpointer {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
}

/// Entries written between two calls of a save's `between` hook.
const BETWEEN_EVERY: usize = 4096;

impl Checkpointer {
    /// Use `dir` (created 0700 if missing) for checkpoints.
    pub fn new(dir: &Path) -> Result<Self, CheckpointError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|source| CheckpointError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        Ok(Checkpointer {
            dir: dir.to_path_buf(),
            path: dir.join(FILE_NAME),
            tmp: dir.join(format!("{FILE_NAME}.tmp")),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint file in `dir`, for readers that must not create or
    /// lock anything (`logferry status` beside a running agent).
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Append `loss` to the directory's loss record (fsynced).
    pub fn record_loss(&self, loss: &Loss) -> Result<(), CheckpointError> {
        let path = self.dir.join(LOSSES_NAME);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)?;
            let mut line = serde_json::to_vec(loss).map_err(io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_all()
        };
        write().map_err(|source| CheckpointError::Loss {
            path: path.clone(),
            source,
        })
    }

    /// Every loss recorded in `dir` (none if nothing was ever lost).
    pub fn losses(dir: &Path) -> Result<Vec<Loss>, CheckpointError> {
        let path = dir.join(LOSSES_NAME);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| CheckpointError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// The saved entries; none when no checkpoint was written yet.
    pub fn load(&self) -> Result<Vec<FileCheckpoint>, CheckpointError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        Self::decode(&self.path, &text)
    }

    /// Parse a checkpoint file's bytes (public for the golden test).
    pub fn decode(path: &Path, text: &[u8]) -> Result<Vec<FileCheckpoint>, CheckpointError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let corrupt = |e: serde_json::Error| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let v: VersionOnly = serde_json::from_slice(text).map_err(corrupt)?;
        if v.version == 1 {
            let old: CheckpointFileV1 = serde_json::from_slice(text).map_err(corrupt)?;
            return Ok(old.files.into_iter().map(FileCheckpoint::from).collect());
        }
        if v.version != FORMAT_VERSION {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        let file: CheckpointFile = serde_json::from_slice(text).map_err(corrupt)?;
        Ok(file.files)
    }

    /// The saved entries and the compressed-file watermark (see
    /// [`CheckpointFile::examined_until`]); none when no checkpoint was
    /// written yet.
    pub fn load_with_watermark(
        &self,
    ) -> Result<(Vec<FileCheckpoint>, Option<u64>), CheckpointError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let files = Self::decode(&self.path, &text)?;
        #[derive(Deserialize)]
        struct WatermarkOnly {
            #[serde(default)]
            examined_until: Option<u64>,
        }
        let mark = serde_json::from_slice::<WatermarkOnly>(&text)
            .ok()
            .and_then(|w| w.examined_until);
        Ok((files, mark))
    }

    /// The file's bytes: JSON, one entry a line. Compact, because it is
    /// rewritten every second: pretty-printed, 10,000 entries cost a tenth
    /// of the shipping loop's time.
    pub fn encode(files: &[FileCheckpoint]) -> Vec<u8> {
        let mut out = Vec::new();
        Self::write_to(files, None, &mut out, &mut || {}).expect("writing to memory cannot fail");
        out
    }

    /// [`encode`](Self::encode) into `out`, entry by entry: with 10,000
    /// files the whole encoding is megabytes, which need not be held at
    /// once.
    fn write_to<W: Write>(
        files: &[FileCheckpoint],
        examined_until: Option<u64>,
        mut out: W,
        between: &mut dyn FnMut(),
    ) -> io::Result<()> {
        write!(out, "{{\"version\":{FORMAT_VERSION},")?;
        if let Some(t) = examined_until {
            write!(out, "\"examined_until\":{t},")?;
        }
        write!(out, "\"files\":[")?;
        for (i, f) in files.iter().enumerate() {
            if i % BETWEEN_EVERY == BETWEEN_EVERY - 1 {
                between();
            }
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut out, f).map_err(io::Error::from)?;
        }
        out.write_all(b"\n]}\n")?;
        out.flush()
    }

    /// Replace the checkpoint atomically. On error the previous file stays.
    pub fn save(&self, files: &[FileCheckpoint]) -> Result<(), CheckpointError> {
        self.save_with_watermark(files, None)
    }

    /// [`save`](Self::save), with the compressed-file watermark.
    pub fn save_with_watermark(
        &self,
        files: &[FileCheckpoint],
        examined_until: Option<u64>,
    ) -> Result<(), CheckpointError> {
        self.save_with_watermark_and(files, examined_until, &mut || {})
    }

    /// [`save_with_watermark`](Self::save_with_watermark), calling
    /// `between` every few thousand entries and before the file is synced:
    /// with 200,000 files a save takes about 0.4 s, long enough for the
    /// caller's file-system event queue to overflow unless it reads it
    /// meanwhile ([`Tailer::keep_up`](crate::Tailer::keep_up)).
    pub fn save_with_watermark_and(
        &self,
        files: &[FileCheckpoint],
        examined_until: Option<u64>,
        between: &mut dyn FnMut(),
    ) -> Result<(), CheckpointError> {
        self.write_atomically(files, examined_until, between)
            .map_err(|source| {
                let _ = fs::remove_file(&self.tmp);
                CheckpointError::Write {
                    path: self.path.clone(),
                    source,
                }
            })
    }

    fn write_atomically(
        &self,
        files: &[FileCheckpoint],
        examined_until: Option<u64>,
        between: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.tmp)?;
        let mut out = io::BufWriter::with_capacity(64 << 10, f);
        Self::write_to(files, examined_until, &mut out, between)?;
        let f = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        between();
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<FileCheckpoint> {
        vec![FileCheckpoint {
            generation: GenerationId(0x0123_4567_89ab_cdef),
            id: FileId {
                dev: 2049,
                ino: 131,
            },
            fingerprint: Fingerprint { len: 256, hash: 42 },
            anchor: Anchor {
                at: 1234,
                len: 256,
                hash: 7,
            },
            position: 1234,
            size: 2000,
            path: "/var/log/app/access.log".into(),
            updated: 1_790_000_000,
            born: None,
            unfinished: false,
            seen: None,
            read_to_end: false,
        }]
    }

    /// Pins the on-disk format: a change here breaks every existing
    /// checkpoint and must bump FORMAT_VERSION.
    #[test]
    fn golden_format() {
        let golden = r#"{"version":2,"files":[
{"generation":81985529216486895,"id":{"dev":2049,"ino":131},"fingerprint":{"len":256,"hash":42},"anchor":{"at":1234,"len":256,"hash":7},"position":1234,"size":2000,"path":"/var/log/app/access.log","updated":1790000000}
]}
"#;
        assert_eq!(
            String::from_utf8(Checkpointer::encode(&sample())).unwrap(),
            golden
        );
        assert_eq!(
            Checkpointer::decode(Path::new("x"), golden.as_bytes()).unwrap(),
            sample()
        );
    }

    /// A version 1 file (written by earlier builds) still loads: same
    /// positions, a fresh generation each, an anchor that defers to the head.
    #[test]
    fn version_1_still_loads() {
        let v1 = br#"{"version": 1, "files": [{"id": {"dev": 2049, "ino": 131},
            "fingerprint": {"len": 256, "hash": 42}, "position": 1234,
            "path": "/var/log/app/access.log", "updated": 1790000000}]}"#;
        let got = Checkpointer::decode(Path::new("x"), v1).unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!((c.id.ino, c.position, c.size), (131, 1234, 1234));
        assert_eq!((c.anchor.at, c.anchor.len), (1234, 0));
        assert_ne!(c.generation, GenerationId(0));
    }

    #[test]
    fn losses_are_appended_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::new(dir.path()).unwrap();
        assert!(Checkpointer::losses(dir.path()).unwrap().is_empty());
        let loss = Loss {
            time: 1,
            host: "web1".into(),
            path: "/var/log/a.log".into(),
            generation: GenerationId(9),
            offset: 100,
            bytes: 42,
            unknown_size: false,
        };
        cp.record_loss(&loss).unwrap();
        cp.record_loss(&loss).unwrap();
        assert_eq!(
            Checkpointer::losses(dir.path()).unwrap(),
            vec![loss.clone(), loss]
        );
    }

    #[test]
    fn round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::new(&dir.path().join("state")).unwrap();
        assert!(cp.load().unwrap().is_empty());
        cp.save(&sample()).unwrap();
        assert_eq!(cp.load().unwrap(), sample());
        let mode = fs::metadata(cp.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn newer_version_is_refused_with_path() {
        let err = Checkpointer::decode(
            Path::new("/s/checkpoints.json"),
            br#"{"version": 9, "files": []}"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/s/checkpoints.json") && msg.contains("version 9"),
            "{msg}"
        );
    }

    #[test]
    fn failed_write_keeps_previous() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::new(dir.path()).unwrap();
        cp.save(&sample()).unwrap();
        // Make the temp name a directory so opening it for writing fails.
        fs::create_dir(dir.path().join("checkpoints.json.tmp")).unwrap();
        let mut changed = sample();
        changed[0].position = 9999;
        assert!(matches!(
            cp.save(&changed),
            Err(CheckpointError::Write { .. })
        ));
        assert_eq!(cp.load().unwrap(), sample());
    }
}
