//! File identity: a path is only a name; what logferry follows is one *life*
//! of a file, a [`GenerationId`]. (device, inode) names a file while it
//! exists, but real logrotate frees an inode and hands it to the next file
//! within the same second, and real formats start every file with the same
//! header, so neither the inode nor the first bytes prove anything. Only
//! content at the position already shipped does: an [`Anchor`] is a hash of
//! the bytes just before a position, and a file is a continuation (or a
//! copy) of a generation only if its head *and* its anchor match.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// How many leading bytes the fingerprint covers. Small enough to read on
/// every check, large enough that two log files rarely share it (the first
/// line usually carries a timestamp).
pub const FINGERPRINT_WINDOW: u64 = 256;

/// (device, inode): unique among files that exist at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Whether `path` names this file now (false when it names another
    /// file or nothing).
    pub fn is_at(&self, path: &std::path::Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| FileId::of(&m) == *self)
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// How many bytes before a position an [`Anchor`] covers.
pub const ANCHOR_WINDOW: u64 = 256;

/// One life of one file: assigned when logferry first sees the file, kept
/// in the checkpoint, carried in every record's source attribution. A file
/// truncated in place starts a new generation; its copy (copytruncate) or
/// compressed form carries the old one on. Random, so it never repeats on a
/// host even when the checkpoint directory is wiped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GenerationId(pub u64);

impl GenerationId {
    /// A fresh identity from the kernel's random source.
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        // SAFETY: the buffer is valid for 8 bytes.
        let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        let v = if got == 8 {
            u64::from_ne_bytes(bytes)
        } else {
            // getrandom cannot fail for 8 bytes on Linux >= 3.17; mix the
            // clock, the pid and a counter if it ever does.
            use std::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            splitmix(
                t ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed),
            )
        };
        // 0 is kept for "none" in the wire format.
        GenerationId(v.max(1))
    }
}

impl Default for GenerationId {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl std::fmt::Display for GenerationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Something bytes can be read from at an offset: a plain file, or the
/// decompressed content of a rotated `.gz`.
pub trait ReadAt {
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
}

impl ReadAt for &File {
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(*self, buf, pos)
    }
}

/// Read up to `buf.len()` bytes at `pos`; fewer only at end of file.
pub fn read_full<R: ReadAt>(src: &mut R, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Proof of content at a position: a hash of the (up to
/// [`ANCHOR_WINDOW`]) bytes just before `at`. Log lines carry timestamps,
/// request ids and counters, so two files that share a header still differ
/// there; a file whose bytes before `at` match is the same generation read
/// to `at` (or a copy of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Anchor {
    pub at: u64,
    pub len: u64,
    pub hash: u64,
}

impl Anchor {
    /// The anchor of `src` at `at`; `None` when it is shorter than `at`.
    pub fn read<R: ReadAt>(src: &mut R, at: u64) -> io::Result<Option<Anchor>> {
        let len = at.min(ANCHOR_WINDOW);
        let mut buf = [0u8; ANCHOR_WINDOW as usize];
        let got = read_full(src, &mut buf[..len as usize], at - len)?;
        if (got as u64) < len {
            return Ok(None);
        }
        Ok(Some(Anchor::of_bytes(&buf[..got], at)))
    }

    /// The anchor of the bytes `window`, which end at `at`.
    pub fn of_bytes(window: &[u8], at: u64) -> Anchor {
        let window = &window[window.len().saturating_sub(ANCHOR_WINDOW as usize)..];
        Anchor {
            at,
            len: window.len() as u64,
            hash: Fingerprint::of_bytes(window).hash,
        }
    }

    /// Whether `src` holds the same bytes before `self.at`.
    pub fn matches<R: ReadAt>(&self, src: &mut R) -> io::Result<bool> {
        let mut buf = [0u8; ANCHOR_WINDOW as usize];
        let len = self.len.min(ANCHOR_WINDOW) as usize;
        let got = read_full(src, &mut buf[..len], self.at - len as u64)?;
        Ok(got == len && Fingerprint::of_bytes(&buf[..len]).hash == self.hash)
    }
}

/// A hash of the first `len` bytes of a file. `len` grows with what has been
/// read, up to [`FINGERPRINT_WINDOW`], so short files still have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprint of the first `min(want, FINGERPRINT_WINDOW)` bytes of
    /// `file`. Returns a shorter one if the file is shorter.
    pub fn read(file: &File, want: u64) -> io::Result<Fingerprint> {
        Self::read_from(&mut { file }, want)
    }

    /// [`read`](Self::read) from any [`ReadAt`] source.
    pub fn read_from<R: ReadAt>(src: &mut R, want: u64) -> io::Result<Fingerprint> {
        let want = want.min(FINGERPRINT_WINDOW) as usize;
        let mut buf = [0u8; FINGERPRINT_WINDOW as usize];
        let got = read_full(src, &mut buf[..want], 0)?;
        Ok(Fingerprint::of_bytes(&buf[..got]))
    }

    pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
        // FNV-1a: stable across Rust versions, which matters because the
        // value is persisted in checkpoints.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint {
            len: bytes.len() as u64,
            hash,
        }
    }

    /// Whether `file` still starts with the bytes this fingerprint saw.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        Ok(Fingerprint::read(file, self.len)? == *self)
    }

    /// [`matches`](Self::matches) for any [`ReadAt`] source.
    pub fn matches_in<R: ReadAt>(&self, src: &mut R) -> io::Result<bool> {
        Ok(Fingerprint::read_from(src, self.len)? == *self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_tracks_head_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"hello\n").unwrap();
        let r = File::open(&path).unwrap();
        let fp = Fingerprint::read(&r, 1000).unwrap();
        assert_eq!(fp.len, 6);
        assert!(fp.matches(&r).unwrap());
        // Appending does not change the fingerprint of the first 6 bytes.
        f.write_all(b"world\n").unwrap();
        assert!(fp.matches(&r).unwrap());
        // Rewriting the head does.
        f.set_len(0).unwrap();
        f.write_all(b"HELLO\n").unwrap();
        assert!(!fp.matches(&r).unwrap());
    }

    #[test]
    fn anchor_tells_files_with_one_header_apart() {
        let dir = tempfile::tempdir().unwrap();
        let header = "#Software: x\n#Fields: date time cs-method cs-uri-stem sc-status\n".repeat(5);
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        std::fs::write(&a, format!("{header}2026-12-02 10:00:01 GET /a 200\n")).unwrap();
        std::fs::write(&b, format!("{header}2026-12-02 10:00:02 GET /b 200\n")).unwrap();
        let (fa, fb) = (File::open(&a).unwrap(), File::open(&b).unwrap());
        let at = std::fs::metadata(&a).unwrap().len();
        let head = Fingerprint::read(&fa, at).unwrap();
        assert!(head.matches(&fb).unwrap(), "same header: heads alike");
        let anchor = Anchor::read(&mut &fa, at).unwrap().unwrap();
        assert!(anchor.matches(&mut &fa).unwrap());
        assert!(
            !anchor.matches(&mut &fb).unwrap(),
            "content at the position differs"
        );
        // Shorter than the position: no anchor there.
        assert_eq!(Anchor::read(&mut &fa, at + 1).unwrap(), None);
    }

    #[test]
    fn generations_do_not_repeat() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| GenerationId::new()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&GenerationId(0)));
    }

    #[test]
    fn fingerprint_is_stable() {
        // Pinned: checkpoints written by one build must match in the next.
        assert_eq!(Fingerprint::of_bytes(b"").hash, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fingerprint::of_bytes(b"a").hash, 0xaf63_dc4c_8601_ec8c);
    }
}
