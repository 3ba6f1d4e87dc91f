//! Rotated generations that logrotate compressed (`compress`): read through
//! their decompressed bytes, so the unread part of a generation that was
//! gzipped before logferry read it to the end (logferry stopped across a
//! rotation, or a copy compressed right after copytruncate) is still
//! shipped, from the same offsets the plain file had.
//!
//! Decompression is sequential; [`Gz`] keeps a decoder positioned where the
//! last read ended, so following the file costs one pass. A read elsewhere
//! (a rewind after a producer restart) starts a new pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::identity::{Anchor, ReadAt, FINGERPRINT_WINDOW};

/// Suffixes logferry reads through a decoder.
pub const READABLE_SUFFIXES: &[&str] = &["gz"];

/// Whether `path` names a compressed file logferry can read.
pub fn is_readable_compressed(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| READABLE_SUFFIXES.contains(&e))
}

/// The decompressed content of one `.gz` file, readable at offsets.
pub struct Gz {
    path: PathBuf,
    decoder: MultiGzDecoder<BufReader<File>>,
    /// Decompressed offset of the decoder's next byte.
    pos: u64,
}

impl std::fmt::Debug for Gz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gz")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Gz {
    pub fn open(path: &Path) -> io::Result<Gz> {
        let file = File::open(path)?;
        Ok(Gz {
            path: path.to_path_buf(),
            decoder: MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)),
            pos: 0,
        })
    }

    fn restart(&mut self) -> io::Result<()> {
        *self = Gz::open(&self.path)?;
        Ok(())
    }

    /// Move the decoder to decompressed offset `to`; false if the content
    /// ends before it.
    fn seek(&mut self, to: u64) -> io::Result<bool> {
        if to < self.pos {
            self.restart()?;
        }
        let mut skip = [0u8; 1 << 16];
        while self.pos < to {
            let want = ((to - self.pos) as usize).min(skip.len());
            let n = self.decoder.read(&mut skip[..want])?;
            if n == 0 {
                return Ok(false);
            }
            self.pos += n as u64;
        }
        Ok(true)
    }
}

impl ReadAt for Gz {
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if !self.seek(pos)? {
            return Ok(0);
        }
        let n = self.decoder.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// What a compressed file holds, as far as matching generations needs:
/// its head and the anchors asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    /// The first (up to [`FINGERPRINT_WINDOW`]) decompressed bytes, to
    /// compare with fingerprints of any length.
    pub head: Vec<u8>,
    /// For each asked-for position, in order: whether the content reaches
    /// it and the bytes before it match the anchor.
    pub anchors: Vec<bool>,
}

/// Decompress `path` once, far enough to check each anchor. An incomplete
/// file (gzip still writing it) is an error of kind `UnexpectedEof`, so the
/// caller can look again later.
pub fn probe(path: &Path, anchors: &[Anchor]) -> io::Result<Probe> {
    let mut gz = Gz::open(path)?;
    let mut head_buf = [0u8; FINGERPRINT_WINDOW as usize];
    let got = crate::identity::read_full(&mut gz, &mut head_buf, 0)?;
    let head = head_buf[..got].to_vec();
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by_key(|&i| anchors[i].at);
    let mut found = vec![false; anchors.len()];
    for i in order {
        // Sorted by position, so the decoder only moves forward.
        // (Two anchors closer than a window make the decoder start over.)
        found[i] = anchors[i].matches(&mut gz)?;
    }
    Ok(Probe {
        head,
        anchors: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Fingerprint;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(path: &Path, bytes: &[u8]) {
        let mut e = GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    }

    #[test]
    fn reads_at_offsets_and_probes_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, &text).unwrap();
        let gz_path = dir.path().join("a.log.1.gz");
        gzip(&gz_path, &text);

        let mut gz = Gz::open(&gz_path).unwrap();
        let mut buf = [0u8; 7];
        assert_eq!(gz.read_at(&mut buf, 7).unwrap(), 7);
        assert_eq!(&buf, b"line 1\n");
        // Backwards: a new pass.
        assert_eq!(gz.read_at(&mut buf, 0).unwrap(), 7);
        assert_eq!(&buf, b"line 0\n");
        assert_eq!(gz.read_at(&mut buf, text.len() as u64).unwrap(), 0);

        let f = File::open(&plain).unwrap();
        let good = Anchor::read(&mut &f, 30_000).unwrap().unwrap();
        let mut bad = good;
        bad.hash ^= 1;
        let past_end = Anchor {
            at: text.len() as u64 + 10,
            len: 5,
            hash: 0,
        };
        let p = probe(&gz_path, &[past_end, good, bad]).unwrap();
        assert_eq!(
            Fingerprint::of_bytes(&p.head),
            Fingerprint::read(&f, 256).unwrap()
        );
        assert_eq!(p.anchors, vec![false, true, false]);
    }

    #[test]
    fn incomplete_gzip_is_unexpected_eof() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.gz");
        let text: Vec<u8> = (0..20000u32).flat_map(|i| i.to_le_bytes()).collect();
        gzip(&full, &text);
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path().join("cut.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let anchor = Anchor {
            at: text.len() as u64,
            len: 4,
            hash: 0,
        };
        let err = probe(&cut, &[anchor]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
