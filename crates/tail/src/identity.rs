//! File identity: a path is only a name; what logferry follows is the file
//! behind it. (device, inode) names that file while it exists, and a
//! fingerprint of its first bytes tells an inode that was reused, or a file
//! rewritten in place (copytruncate), from the one we were reading.

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
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
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
        let want = want.min(FINGERPRINT_WINDOW) as usize;
        let mut buf = [0u8; FINGERPRINT_WINDOW as usize];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..want], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
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
    fn fingerprint_is_stable() {
        // Pinned: checkpoints written by one build must match in the next.
        assert_eq!(Fingerprint::of_bytes(b"").hash, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fingerprint::of_bytes(b"a").hash, 0xaf63_dc4c_8601_ec8c);
    }
}
