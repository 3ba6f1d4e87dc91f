//! Rotated generations that logrotate compressed (`compress`): read through
//! their decompressed bytes, so the unread part of a generation that was
//! compressed before logferry read it to the end (logferry stopped across a
//! rotation, or a copy compressed right after copytruncate) is still
//! shipped, from the same offsets the plain file had.
//!
//! A rotated name with one of [`READABLE_SUFFIXES`] is looked at as
//! compressed; any other rotated name (and every file an input's `rotated`
//! globs match) is looked at as compressed when its first bytes say so
//! ([`Content`], see `tailer/rotated_globs.rs`). The first bytes decide how
//! it is decoded ([`Format`]): gzip, zstd, bzip2 or xz, whatever the suffix
//! says (a `compresscmd` other than gzip with the default `.gz` extension
//! is still read). A file with none of their signatures is not compressed
//! ([`NotCompressed`]). Concatenated streams (members, frames) decode
//! whole, as the command-line tools do.
//!
//! Decompression is sequential; [`Decompressed`] keeps a decoder positioned
//! where the last read ended, so following the file costs one pass. A read
//! elsewhere (a rewind after a producer restart) starts a new pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::identity::{Anchor, ReadAt, FINGERPRINT_WINDOW};

/// Suffixes logferry reads through a decoder (the format itself is told by
/// the content).
pub const READABLE_SUFFIXES: &[&str] = &["gz", "zst", "bz2", "xz"];

/// Whether `path` names a compressed file logferry can read.
pub fn is_readable_compressed(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| READABLE_SUFFIXES.contains(&e))
}

/// A compression format logferry decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// Bytes at each position of a signature: any of these.
type Signature = &'static [&'static [u8]];

const DIGITS: &[u8] = b"123456789";
/// Each format's signatures, as many leading bytes as tell it from text.
const SIGNATURES: &[(Format, Signature)] = &[
    (Format::Gzip, &[&[0x1f], &[0x8b]]),
    (Format::Zstd, &[&[0x28], &[0xb5], &[0x2f], &[0xfd]]),
    // A skippable frame first (0x184D2A5?, little-endian), as pzstd
    // writes: the decoder passes over it.
    (
        Format::Zstd,
        &[b"PQRSTUVWXYZ[\\]^_", &[0x2a], &[0x4d], &[0x18]],
    ),
    // "BZh", the block size, then the magic of a first block (pi) or of
    // the end of the stream (sqrt pi, an empty stream): "BZh" alone starts
    // text too often.
    (
        Format::Bzip2,
        &[
            b"B",
            b"Z",
            b"h",
            DIGITS,
            &[0x31],
            &[0x41],
            &[0x59],
            &[0x26],
            &[0x53],
            &[0x59],
        ],
    ),
    (
        Format::Bzip2,
        &[
            b"B",
            b"Z",
            b"h",
            DIGITS,
            &[0x17],
            &[0x72],
            &[0x45],
            &[0x38],
            &[0x50],
            &[0x90],
        ],
    ),
    (Format::Xz, &[&[0xfd], b"7", b"z", b"X", b"Z", &[0x00]]),
];

/// The longest signature: how many leading bytes to read to tell.
pub const MAGIC_LEN: usize = 10;

/// What a file's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniff {
    Is(Format),
    /// Shorter than a signature it starts like: a compressor may still be
    /// writing it.
    TooShort,
    NotCompressed,
}

fn sniff(head: &[u8]) -> Sniff {
    let mut short = false;
    for (format, sig) in SIGNATURES {
        let n = head.len().min(sig.len());
        if head[..n].iter().zip(*sig).all(|(b, set)| set.contains(b)) {
            if n == sig.len() {
                return Sniff::Is(*format);
            }
            short = true;
        }
    }
    if short {
        Sniff::TooShort
    } else {
        Sniff::NotCompressed
    }
}

impl Format {
    /// The format whose signature `head` (a file's first bytes, at least
    /// [`MAGIC_LEN`] of them when the file has that many) starts with.
    pub fn detect(head: &[u8]) -> Option<Format> {
        match sniff(head) {
            Sniff::Is(f) => Some(f),
            Sniff::TooShort | Sniff::NotCompressed => None,
        }
    }

    /// The format of the file at `path`, by its first bytes; `None` when it
    /// is not compressed in one logferry reads.
    pub fn of_path(path: &Path) -> io::Result<Option<Format>> {
        Ok(Format::detect(&head(&File::open(path)?)?))
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a file holds, by its first bytes: how a rotated name that says
/// nothing (`rotated` globs: `@4000...s`, `app-1.log`, `app.log.gz` alike)
/// is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Compressed(Format),
    Plain,
    /// Empty, or shorter than a signature it starts like: a compressor may
    /// still be writing it; asked again when it grows.
    Undecided,
}

impl Content {
    /// The content of `file`, by its first bytes (its position unmoved).
    pub fn of(file: &File) -> io::Result<Content> {
        Ok(match sniff(&head(file)?) {
            Sniff::Is(f) => Content::Compressed(f),
            Sniff::TooShort => Content::Undecided,
            Sniff::NotCompressed => Content::Plain,
        })
    }
}

/// Up to [`MAGIC_LEN`] first bytes of `file`, read without moving its
/// position.
fn head(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; MAGIC_LEN];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf[..got].to_vec())
}

/// A file opened for decompression whose content has none of the
/// signatures of [`Format`]; it is the inner error (kind `InvalidData`) of
/// the `io::Error` that [`Decompressed::open`] and [`probe`] return, see
/// [`NotCompressed::in_error`].
#[derive(Debug, thiserror::Error)]
#[error("{}: not compressed (no gzip, zstd, bzip2 or xz signature)", path.display())]
pub struct NotCompressed {
    pub path: PathBuf,
}

impl NotCompressed {
    /// The `NotCompressed` that `e` carries, if that is what it says.
    pub fn in_error(e: &io::Error) -> Option<&NotCompressed> {
        e.get_ref()?.downcast_ref()
    }
}

type Input = BufReader<File>;

/// One pass of a decoder over the file.
enum Decoder {
    Gzip(MultiGzDecoder<Input>),
    Zstd(zstd::stream::read::Decoder<'static, Input>),
    Bzip2(bzip2::bufread::MultiBzDecoder<Input>),
    Xz(liblzma::bufread::XzDecoder<Input>),
}

impl Decoder {
    fn new(format: Format, input: Input) -> io::Result<Decoder> {
        Ok(match format {
            Format::Gzip => Decoder::Gzip(MultiGzDecoder::new(input)),
            // Frames one after another are read on (not `single_frame`).
            Format::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
            Format::Bzip2 => Decoder::Bzip2(bzip2::bufread::MultiBzDecoder::new(input)),
            Format::Xz => Decoder::Xz(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        })
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Bzip2(d) => d.read(buf),
            Decoder::Xz(d) => d.read(buf),
        }
    }
}

/// The decompressed content of one compressed file, readable at offsets.
pub struct Decompressed {
    path: PathBuf,
    /// The file as opened: a decoder started again (to read an earlier
    /// offset) reads this very file, not whatever has its name now
    /// (logrotate renames compressed files at every rotation).
    file: File,
    format: Format,
    decoder: Decoder,
    /// Decompressed offset of the decoder's next byte.
    pos: u64,
}

/// The name this had when it read gzip only.
pub type Gz = Decompressed;

impl std::fmt::Debug for Decompressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressed")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Decompressed {
    /// Open `path`, decoded as its first bytes say. Not compressed: an
    /// error of kind `InvalidData` carrying [`NotCompressed`]; shorter than
    /// a signature it starts like (a compressor just created it): kind
    /// `UnexpectedEof`, as for a stream cut short.
    pub fn open(path: &Path) -> io::Result<Decompressed> {
        let file = File::open(path)?;
        let format = match sniff(&head(&file)?) {
            Sniff::Is(f) => f,
            Sniff::TooShort => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: too short for a compressed header", path.display()),
                ))
            }
            Sniff::NotCompressed => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    NotCompressed {
                        path: path.to_path_buf(),
                    },
                ))
            }
        };
        let input = BufReader::with_capacity(1 << 16, file.try_clone()?);
        Ok(Decompressed {
            path: path.to_path_buf(),
            file,
            format,
            decoder: Decoder::new(format, input)?,
            pos: 0,
        })
    }

    /// The identity of the file opened.
    pub fn id(&self) -> io::Result<crate::FileId> {
        Ok(crate::FileId::of(&self.file.metadata()?))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// How far into the compressed file the decoder has read (to within
    /// its input buffer): progress in bytes on disk. The decoder reads a
    /// duplicate of `file`'s descriptor, which shares its offset.
    pub fn disk_position(&self) -> u64 {
        use std::io::Seek;
        (&self.file).stream_position().unwrap_or(0)
    }

    fn restart(&mut self) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        self.decoder = Decoder::new(self.format, BufReader::with_capacity(1 << 16, file))?;
        self.pos = 0;
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

impl ReadAt for Decompressed {
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if !self.seek(pos)? {
            return Ok(0);
        }
        let n = self.decoder.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether the compressed file at `path` decodes to its end: false while
/// the compressor is still writing it (the stream stops short). A file
/// opened for reading is checked first, so a read never meets the end of
/// a file still being written and takes it for the end of the generation.
pub fn is_complete(path: &Path, id: crate::FileId) -> io::Result<bool> {
    Ok(decoded_len(path, id)?.is_some())
}

/// Open `path`, which must still be file `id`: logrotate renames numbered
/// compressed files at every rotation, and a name listed by a scan may
/// hold another file a moment later (an error of kind `NotFound` then).
pub fn open_as(path: &Path, id: crate::FileId) -> io::Result<Decompressed> {
    let gz = Decompressed::open(path)?;
    if gz.id()? != id {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: renamed since the scan", path.display()),
        ));
    }
    Ok(gz)
}

/// How many bytes the compressed file at `path` decodes to; None while the
/// compressor is still writing it.
pub fn decoded_len(path: &Path, id: crate::FileId) -> io::Result<Option<u64>> {
    let mut d = open_as(path, id)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        match d.read_at(&mut buf, at) {
            Ok(0) => return Ok(Some(at)),
            Ok(n) => at += n as u64,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
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
    /// For each asked-for position, in order: whether the content reaches
    /// it at all (a copy made by copytruncate may end before bytes seen in
    /// its original: the writer's last lines before the cut are not in it).
    pub reaches: Vec<bool>,
}

/// Decompress `path` once, far enough to check each anchor. An incomplete
/// file (the compressor still writing it) is an error of kind
/// `UnexpectedEof`, so the caller can look again later; one that is not
/// compressed is an error carrying [`NotCompressed`].
pub fn probe(path: &Path, id: crate::FileId, anchors: &[Anchor]) -> io::Result<Probe> {
    let mut gz = open_as(path, id)?;
    let mut head_buf = [0u8; FINGERPRINT_WINDOW as usize];
    let got = crate::identity::read_full(&mut gz, &mut head_buf, 0)?;
    let head = head_buf[..got].to_vec();
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by_key(|&i| anchors[i].at);
    let mut found = vec![false; anchors.len()];
    let mut reaches = vec![true; anchors.len()];
    for i in order {
        // Sorted by position, so the decoder only moves forward.
        // (Two anchors closer than a window make the decoder start over.)
        found[i] = anchors[i].matches(&mut gz)?;
        if !found[i] && anchors[i].at > 0 {
            let mut last = [0u8; 1];
            reaches[i] = crate::identity::read_full(&mut gz, &mut last, anchors[i].at - 1)? == 1;
        }
    }
    Ok(Probe {
        head,
        anchors: found,
        reaches,
    })
}

#[cfg(test)]
mod tests {
    fn id_of(path: &std::path::Path) -> crate::FileId {
        crate::FileId::of(&std::fs::metadata(path).unwrap())
    }
    use super::*;
    use crate::identity::Fingerprint;
    use std::io::Write;

    const FORMATS: [Format; 4] = [Format::Gzip, Format::Zstd, Format::Bzip2, Format::Xz];

    /// `bytes` compressed by the format's own encoder, as one stream.
    fn encode(format: Format, bytes: &[u8]) -> Vec<u8> {
        match format {
            Format::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            }
            Format::Zstd => zstd::stream::encode_all(bytes, 3).unwrap(),
            Format::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            }
            Format::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn lines(from: u32, to: u32) -> Vec<u8> {
        (from..to)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    /// All of `path`'s decompressed content, through `read_at`.
    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut d = Decompressed::open(path)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = d.read_at(&mut buf, out.len() as u64)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn signatures_fit_magic_len() {
        assert!(SIGNATURES.iter().all(|(_, s)| s.len() <= MAGIC_LEN));
        assert!(SIGNATURES.iter().any(|(_, s)| s.len() == MAGIC_LEN));
    }

    #[test]
    fn reads_at_offsets_and_probes_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let text = lines(0, 5000);
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, &text).unwrap();
        let f = File::open(&plain).unwrap();
        let good = Anchor::read(&mut &f, 30_000).unwrap().unwrap();
        let mut bad = good;
        bad.hash ^= 1;
        let past_end = Anchor {
            at: text.len() as u64 + 10,
            len: 5,
            hash: 0,
        };
        for format in FORMATS {
            let path = dir.path().join(format!("a.log.1.{format}"));
            std::fs::write(&path, encode(format, &text)).unwrap();

            let mut d = Decompressed::open(&path).unwrap();
            assert_eq!(d.format(), format);
            let mut buf = [0u8; 7];
            assert_eq!(d.read_at(&mut buf, 7).unwrap(), 7);
            assert_eq!(&buf, b"line 1\n");
            // Backwards: a new pass.
            assert_eq!(d.read_at(&mut buf, 0).unwrap(), 7);
            assert_eq!(&buf, b"line 0\n");
            assert_eq!(d.read_at(&mut buf, text.len() as u64).unwrap(), 0);
            assert_eq!(read_all(&path).unwrap(), text, "{format}");

            let p = probe(&path, id_of(&path), &[past_end, good, bad]).unwrap();
            assert_eq!(
                Fingerprint::of_bytes(&p.head),
                Fingerprint::read(&f, 256).unwrap(),
                "{format}"
            );
            assert_eq!(p.anchors, vec![false, true, false], "{format}");
        }
    }

    #[test]
    fn format_is_told_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = lines(0, 300);
        for format in FORMATS {
            // logrotate with a compresscmd of its own, the default
            // compressext: every format under `.gz`, and one without a
            // suffix at all.
            for name in ["a.log.1.gz", "a.log.1.xz", "a.log.1"] {
                let path = dir.path().join(name);
                std::fs::write(&path, encode(format, &text)).unwrap();
                assert_eq!(Format::of_path(&path).unwrap(), Some(format), "{name}");
                assert_eq!(Decompressed::open(&path).unwrap().format(), format);
                assert_eq!(read_all(&path).unwrap(), text, "{format} as {name}");
            }
        }
    }

    #[test]
    fn concatenated_streams_decode_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (lines(0, 700), lines(700, 900), lines(900, 2000));
        let mut text = a.clone();
        text.extend_from_slice(&b);
        text.extend_from_slice(&c);
        for format in FORMATS {
            let mut bytes = encode(format, &a);
            bytes.extend(encode(format, &b));
            // An empty stream between, as `: | gzip >> file` leaves.
            bytes.extend(encode(format, b""));
            bytes.extend(encode(format, &c));
            let path = dir.path().join(format!("cat.{format}"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(read_all(&path).unwrap(), text, "{format}");
            let end = Anchor::of_bytes(&text, text.len() as u64);
            assert_eq!(
                probe(&path, id_of(&path), &[end]).unwrap().anchors,
                vec![true],
                "{format}"
            );
        }
    }

    #[test]
    fn zstd_skippable_frame_first() {
        let dir = tempfile::tempdir().unwrap();
        let text = lines(0, 100);
        // A skippable frame (as pzstd writes first): magic, size, payload.
        let mut bytes = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        bytes.extend(encode(Format::Zstd, &text));
        let path = dir.path().join("p.zst");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Format::of_path(&path).unwrap(), Some(Format::Zstd));
        assert_eq!(read_all(&path).unwrap(), text);
    }

    /// A file the compressor is still writing, cut anywhere: an error of
    /// kind `UnexpectedEof` (look again later), or, cut exactly between two
    /// streams, the first stream's content.
    #[test]
    fn truncated_stream_is_unexpected_eof() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (lines(0, 150), lines(150, 300));
        for format in FORMATS {
            let first = encode(format, &a);
            let mut bytes = first.clone();
            bytes.extend(encode(format, &b));
            let path = dir.path().join(format!("cut.{format}"));
            for cut in 0..bytes.len() {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                match read_all(&path) {
                    Err(e) => assert_eq!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof,
                        "{format} cut at {cut} of {}: {e}",
                        bytes.len()
                    ),
                    Ok(got) => {
                        assert_eq!(cut, first.len(), "{format} cut at {cut}: read to the end");
                        assert_eq!(got, a);
                    }
                }
            }
            // Through `probe`, as the ledger calls it.
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            let end = Anchor {
                at: (a.len() + b.len()) as u64,
                len: 4,
                hash: 0,
            };
            let err = probe(&path, id_of(&path), &[end]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{format}");
        }
    }

    #[test]
    fn not_compressed_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        for (i, content) in [
            &b"plain text\n"[..],
            b"BZh9 starts like bzip2, is text\n",
            b"\x1f not quite gzip\n",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("plain{i}.log.1.gz"));
            std::fs::write(&path, content).unwrap();
            assert_eq!(Format::of_path(&path).unwrap(), None);
            for err in [
                Decompressed::open(&path).unwrap_err(),
                probe(&path, id_of(&path), &[]).unwrap_err(),
            ] {
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
                let nc = NotCompressed::in_error(&err).expect("a NotCompressed");
                assert_eq!(nc.path, path);
            }
        }
        // Empty, or a signature's first bytes only: the compressor may have
        // just created it.
        for content in [&b""[..], b"\x1f", b"\x28\xb5\x2f", b"BZh9", b"\xfd7zX"] {
            let path = dir.path().join("new.gz");
            std::fs::write(&path, content).unwrap();
            assert_eq!(Format::of_path(&path).unwrap(), None);
            let err = Decompressed::open(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{content:?}");
            assert!(NotCompressed::in_error(&err).is_none());
        }
    }
}
