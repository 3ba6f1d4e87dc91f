//! Source attribution: where each record came from, as one binary field
//! rather than four strings (librdkafka's per-record cost grows with the
//! number of headers far more than with their bytes). It travels either in
//! the record key (the default, and the cheapest place: see
//! `config::Attribution`) or in one record header:
//!
//! ```text
//! key          = [version=3][flags][varint pkey_len][pkey] SOURCE
//! header "lf"  = [version=4][flags] SOURCE
//! SOURCE       = [varint generation][varint dev][varint ino][varint offset]
//!                [varint host_len][host][varint path_len][path]
//! (versions 2 (key) and 1 (header), written before generations, lack the
//!  generation and still decode)
//! flags bit 0: the line was truncated or split (longer than max_line_bytes)
//! flags bit 1: the value is several whole lines joined by their newlines
//!              (`pack_bytes`); the offset is the first one's. Readers
//!              that write values at their offsets need not look at it;
//!              readers that show lines one by one split at it
//! pkey: the partitioning key (`partition_by`); empty means none, and the
//!       record goes to a sticky partition
//! ```
//!
//! The partitioning key comes first in the key form so the partitioner,
//! which runs once per record inside librdkafka, reads only a few bytes.

use logferry_tail::{FileId, GenerationId};

/// Name of the source-attribution header.
pub const SOURCE_HEADER: &str = "lf";
const SOURCE_VERSION: u8 = 4;
const KEY_VERSION: u8 = 3;
/// Versions written before generations existed; still decoded.
const SOURCE_VERSION_V1: u8 = 1;
const KEY_VERSION_V2: u8 = 2;
const FLAG_TRUNCATED: u8 = 1;
const FLAG_PACKED: u8 = 2;

/// Where a record came from, as carried in the key form or the `lf` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub host: String,
    pub path: Vec<u8>,
    /// None for records written before generations (older versions).
    pub generation: Option<GenerationId>,
    pub id: FileId,
    /// File offset of the line's first byte.
    pub offset: u64,
    pub truncated: bool,
    /// The value is several whole lines joined by their newlines.
    pub packed: bool,
    /// The partitioning key carried in the key form (empty: none, and
    /// always empty in the header form).
    pub partition_key: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceDecodeError {
    #[error("source attribution is empty")]
    Empty,
    #[error("source attribution version {0} is not supported")]
    Version(u8),
    #[error("source attribution is cut short")]
    Short,
    #[error("source attribution host is not UTF-8")]
    Host,
}

/// Why `name` cannot be a static header name, if it cannot.
pub fn check_static_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a header name cannot be empty".into())
    } else if name == SOURCE_HEADER {
        Err(format!(
            "header name {SOURCE_HEADER:?} is reserved for the source attribution"
        ))
    } else {
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, SourceDecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(SourceDecodeError::Short)?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SourceDecodeError::Short)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], SourceDecodeError> {
    if bytes.len() < n {
        return Err(SourceDecodeError::Short);
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// The host-and-path tail of the header, fixed per file: computed once when
/// the file is opened, appended to every record's header.
pub fn source_tail(host: &str, path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(host.len() + path.len() + 4);
    put_source_tail(&mut out, host, path);
    out
}

/// [`source_tail`] into `out` (cleared first), reusing its room.
pub fn put_source_tail(out: &mut Vec<u8>, host: &str, path: &[u8]) {
    out.clear();
    put_varint(out, host.len() as u64);
    out.extend_from_slice(host.as_bytes());
    put_varint(out, path.len() as u64);
    out.extend_from_slice(path);
}

fn flags(truncated: bool) -> u8 {
    if truncated {
        FLAG_TRUNCATED
    } else {
        0
    }
}

fn put_source(out: &mut Vec<u8>, generation: GenerationId, id: FileId, offset: u64, tail: &[u8]) {
    put_varint(out, generation.0);
    put_varint(out, id.dev);
    put_varint(out, id.ino);
    put_varint(out, offset);
    out.extend_from_slice(tail);
}

/// Write the `lf` header value for one line into `out` (cleared first).
pub fn encode_source(
    out: &mut Vec<u8>,
    generation: GenerationId,
    id: FileId,
    offset: u64,
    truncated: bool,
    tail: &[u8],
) {
    out.clear();
    out.push(SOURCE_VERSION);
    out.push(flags(truncated));
    put_source(out, generation, id, offset, tail);
}

/// Write the key form for one line into `out` (cleared first):
/// `partition_key` (empty for none) followed by the source.
pub fn encode_source_key(
    out: &mut Vec<u8>,
    partition_key: &[u8],
    generation: GenerationId,
    id: FileId,
    offset: u64,
    truncated: bool,
    tail: &[u8],
) {
    out.clear();
    out.push(KEY_VERSION);
    out.push(flags(truncated));
    put_varint(out, partition_key.len() as u64);
    out.extend_from_slice(partition_key);
    put_source(out, generation, id, offset, tail);
}

/// The partitioning key inside a key-form record key (empty: none), or
/// `None` when `key` is not in the key form.
pub fn partition_key_of(key: &[u8]) -> Option<&[u8]> {
    let mut b = key;
    let head = take(&mut b, 2).ok()?;
    if head[0] != KEY_VERSION && head[0] != KEY_VERSION_V2 {
        return None;
    }
    let len = usize::try_from(get_varint(&mut b).ok()?).ok()?;
    take(&mut b, len).ok()
}

/// The partitioning key of `partition_by = "generation"`: the host, `/`,
/// and the generation in 16 hex digits. Every record of a generation
/// carries it, so the generation stays in one partition; a collector
/// recognises it (see [`is_generation_partition_key`]) to know that the
/// partition holding a generation's records holds all of them.
pub fn generation_partition_key(host: &str, generation: GenerationId) -> Vec<u8> {
    format!("{host}/{generation}").into_bytes()
}

/// Whether `pkey` is the key [`generation_partition_key`] gives `host` and
/// `generation` (compared in place: no allocation per record).
pub fn is_generation_partition_key(pkey: &[u8], host: &str, generation: GenerationId) -> bool {
    let h = host.as_bytes();
    let Some(rest) = pkey
        .strip_prefix(h)
        .and_then(|r| r.strip_prefix(b"/"))
        .filter(|r| r.len() == 16)
    else {
        return false;
    };
    let want = generation.0;
    rest.iter().enumerate().all(|(i, &c)| {
        let nibble = ((want >> (60 - 4 * i)) & 0xf) as u8;
        c == b"0123456789abcdef"[nibble as usize]
    })
}

/// Set the truncated flag in an encoded source (either form); other bytes
/// are left alone.
pub fn mark_truncated(encoded: &mut [u8]) {
    set_flag(encoded, FLAG_TRUNCATED);
}

/// Set the packed flag in an encoded source (either form): the record's
/// value is several whole lines.
pub fn mark_packed(encoded: &mut [u8]) {
    set_flag(encoded, FLAG_PACKED);
}

fn set_flag(encoded: &mut [u8], flag: u8) {
    if let [SOURCE_VERSION | KEY_VERSION | SOURCE_VERSION_V1 | KEY_VERSION_V2, flags, ..] = encoded
    {
        *flags |= flag;
    }
}

/// [`Source`] borrowed from the bytes it was decoded from: what a reader
/// that only looks (`logferry tail`, millions of records a minute, most of
/// them filtered out) needs, without allocating per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRef<'a> {
    pub host: &'a str,
    pub path: &'a [u8],
    pub generation: Option<GenerationId>,
    pub id: FileId,
    pub offset: u64,
    pub truncated: bool,
    /// The value is several whole lines joined by their newlines.
    pub packed: bool,
    pub partition_key: &'a [u8],
}

impl SourceRef<'_> {
    pub fn to_source(&self) -> Source {
        Source {
            host: self.host.to_string(),
            path: self.path.to_vec(),
            generation: self.generation,
            id: self.id,
            offset: self.offset,
            truncated: self.truncated,
            packed: self.packed,
            partition_key: self.partition_key.to_vec(),
        }
    }
}

/// Decode either form: the `lf` header value or a key-form record key.
pub fn decode_source(bytes: &[u8]) -> Result<Source, SourceDecodeError> {
    decode_source_ref(bytes).map(|s| s.to_source())
}

/// [`decode_source`] without copying: the one decoder of both forms.
pub fn decode_source_ref(bytes: &[u8]) -> Result<SourceRef<'_>, SourceDecodeError> {
    decode_parts(bytes).map(|(src, _)| src)
}

/// The decoded source and where its offset varint lies in `whole`
/// (start, end): what [`KeyMemo`] keeps apart.
fn decode_parts(whole: &[u8]) -> Result<(SourceRef<'_>, (usize, usize)), SourceDecodeError> {
    let mut bytes = whole;
    let b = &mut bytes;
    let version = *take(b, 1)
        .map_err(|_| SourceDecodeError::Empty)?
        .first()
        .unwrap_or(&0);
    let (keyed, generations) = match version {
        KEY_VERSION => (true, true),
        SOURCE_VERSION => (false, true),
        KEY_VERSION_V2 => (true, false),
        SOURCE_VERSION_V1 => (false, false),
        _ => return Err(SourceDecodeError::Version(version)),
    };
    let flags = take(b, 1)?[0];
    let partition_key: &[u8] = if keyed {
        let len = get_varint(b)? as usize;
        take(b, len)?
    } else {
        &[]
    };
    let generation = if generations {
        Some(GenerationId(get_varint(b)?))
    } else {
        None
    };
    let dev = get_varint(b)?;
    let ino = get_varint(b)?;
    let offset_at = whole.len() - b.len();
    let offset = get_varint(b)?;
    let offset_end = whole.len() - b.len();
    let host_len = get_varint(b)? as usize;
    let host = std::str::from_utf8(take(b, host_len)?).map_err(|_| SourceDecodeError::Host)?;
    let path_len = get_varint(b)? as usize;
    let path = take(b, path_len)?;
    let src = SourceRef {
        host,
        path,
        generation,
        id: FileId { dev, ino },
        offset,
        truncated: flags & FLAG_TRUNCATED != 0,
        packed: flags & FLAG_PACKED != 0,
        partition_key,
    };
    Ok((src, (offset_at, offset_end)))
}

/// The last key-form key that decoded, split around its offset: the
/// records of one file arrive in runs whose keys differ only in the
/// offset, so the next key is recognised by comparing bytes and reading
/// one varint ([`KeyMemo::repeat`]) instead of decoding it all and
/// checking its host's UTF-8 again. What `repeat` returns is what
/// [`decode_source_ref`] returns for the same key.
#[derive(Debug, Default)]
pub struct KeyMemo {
    /// The key's bytes before its offset varint (empty: nothing kept).
    head: Vec<u8>,
    /// The key's bytes after its offset varint, to its end.
    tail: Vec<u8>,
    generation: Option<GenerationId>,
    dev: u64,
    ino: u64,
    truncated: bool,
    packed: bool,
    /// The partitioning key's place in `head`.
    pkey: (usize, usize),
    /// The host's place in `tail` (UTF-8: checked when kept).
    host: (usize, usize),
    /// Where the path starts in `tail`.
    path_at: usize,
    path_len: usize,
}

impl KeyMemo {
    /// The source of `key` when it is the kept key but for the offset.
    pub fn repeat<'a>(&self, key: &'a [u8]) -> Option<SourceRef<'a>> {
        if self.head.is_empty() {
            return None;
        }
        let mut rest = key.strip_prefix(self.head.as_slice())?;
        let offset = get_varint(&mut rest).ok()?;
        if rest != self.tail.as_slice() {
            return None;
        }
        let host = &rest[self.host.0..self.host.1];
        // SAFETY: these bytes equal, byte for byte, the host bytes that
        // `std::str::from_utf8` accepted when the memo was kept.
        let host = unsafe { std::str::from_utf8_unchecked(host) };
        Some(SourceRef {
            host,
            path: &rest[self.path_at..self.path_at + self.path_len],
            generation: self.generation,
            id: FileId {
                dev: self.dev,
                ino: self.ino,
            },
            offset,
            truncated: self.truncated,
            packed: self.packed,
            partition_key: &key[self.pkey.0..self.pkey.1],
        })
    }

    /// Decode `key` when it is in the key form and keep it for
    /// [`KeyMemo::repeat`]; None (and nothing kept) when it is not or does
    /// not decode.
    pub fn keep<'a>(&mut self, key: &'a [u8]) -> Option<SourceRef<'a>> {
        self.head.clear();
        if !matches!(key.first(), Some(&(KEY_VERSION | KEY_VERSION_V2))) {
            return None;
        }
        let (src, (offset_at, offset_end)) = decode_parts(key).ok()?;
        let place = |part: &[u8], within: usize| {
            // Every part is a subslice of `key`.
            part.as_ptr() as usize - key.as_ptr() as usize - within
        };
        let pkey_at = place(src.partition_key, 0);
        let host_at = place(src.host.as_bytes(), offset_end);
        self.tail.clear();
        self.tail.extend_from_slice(&key[offset_end..]);
        self.generation = src.generation;
        (self.dev, self.ino) = (src.id.dev, src.id.ino);
        self.truncated = src.truncated;
        self.packed = src.packed;
        self.pkey = (pkey_at, pkey_at + src.partition_key.len());
        self.host = (host_at, host_at + src.host.len());
        self.path_at = place(src.path, offset_end);
        self.path_len = src.path.len();
        self.head.extend_from_slice(&key[..offset_at]);
        Some(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const G: GenerationId = GenerationId(129);

    #[test]
    fn the_generation_partition_key_is_recognised_only_for_its_own_source() {
        let g = GenerationId(0x0123_4567_89ab_cdef);
        let k = generation_partition_key("web/1", g);
        assert_eq!(k, b"web/1/0123456789abcdef");
        assert!(is_generation_partition_key(&k, "web/1", g));
        assert!(!is_generation_partition_key(&k, "web", g));
        assert!(!is_generation_partition_key(&k, "web/1", GenerationId(1)));
        assert!(!is_generation_partition_key(b"", "web/1", g));
        assert!(!is_generation_partition_key(
            b"web/1/0123456789ABCDEF",
            "web/1",
            g
        ));
        assert!(!is_generation_partition_key(b"web/1:1:2", "web/1", g));
    }

    /// Records shipped by builds before generations keep decoding.
    #[test]
    fn older_versions_still_decode() {
        let header_v1 = [1u8, 1, 1, 0xac, 0x02, 5, 1, b'h', 2, b'/', b'a'];
        let s = decode_source(&header_v1).unwrap();
        assert_eq!(
            (s.generation, s.id.ino, s.offset, s.truncated),
            (None, 300, 5, true)
        );
        let key_v2 = [
            2u8, 0, 2, b'r', b'q', 1, 0xac, 0x02, 5, 1, b'h', 2, b'/', b'a',
        ];
        assert_eq!(partition_key_of(&key_v2), Some(&b"rq"[..]));
        let s = decode_source(&key_v2).unwrap();
        assert_eq!((s.generation, s.path), (None, b"/a".to_vec()));
    }

    #[test]
    fn header_golden_bytes() {
        let mut out = Vec::new();
        let tail = source_tail("h", b"/a");
        encode_source(&mut out, G, FileId { dev: 1, ino: 300 }, 5, true, &tail);
        assert_eq!(
            out,
            [4, 1, 0x81, 0x01, 1, 0xac, 0x02, 5, 1, b'h', 2, b'/', b'a']
        );
    }

    #[test]
    fn key_golden_bytes() {
        let mut out = Vec::new();
        let tail = source_tail("h", b"/a");
        encode_source_key(
            &mut out,
            b"rq",
            G,
            FileId { dev: 1, ino: 300 },
            5,
            false,
            &tail,
        );
        assert_eq!(
            out,
            [3, 0, 2, b'r', b'q', 0x81, 0x01, 1, 0xac, 0x02, 5, 1, b'h', 2, b'/', b'a']
        );
        assert_eq!(partition_key_of(&out), Some(&b"rq"[..]));
        mark_truncated(&mut out);
        assert!(decode_source(&out).unwrap().truncated);
        encode_source_key(&mut out, b"", G, FileId { dev: 1, ino: 2 }, 3, false, &tail);
        assert_eq!(partition_key_of(&out), Some(&b""[..]));
        // A plain key (another producer, or attribution = "header") is not
        // mistaken for the key form.
        assert_eq!(partition_key_of(b"request-42"), None);
        let mut plain = b"\x05xyz".to_vec();
        mark_truncated(&mut plain);
        assert_eq!(plain, b"\x05xyz");
    }

    #[test]
    fn the_packed_flag_is_set_apart_from_truncation_in_both_forms() {
        let tail = source_tail("h", b"/p");
        let id = FileId { dev: 1, ino: 2 };
        let mut key = Vec::new();
        encode_source_key(&mut key, b"k", GenerationId(3), id, 40, false, &tail);
        mark_packed(&mut key);
        let s = decode_source(&key).unwrap();
        assert!(s.packed && !s.truncated);
        assert_eq!((s.offset, s.partition_key.as_slice()), (40, &b"k"[..]));
        let mut header = Vec::new();
        encode_source(&mut header, GenerationId(3), id, 40, true, &tail);
        mark_packed(&mut header);
        let s = decode_source(&header).unwrap();
        assert!(s.packed && s.truncated);
    }

    #[test]
    fn truncated_key_is_an_error() {
        let mut out = Vec::new();
        let tail = source_tail("host", b"/p");
        encode_source_key(
            &mut out,
            b"id",
            G,
            FileId { dev: 1, ino: 2 },
            3,
            false,
            &tail,
        );
        for cut in 0..out.len() {
            assert!(decode_source(&out[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn truncated_header_is_an_error() {
        let mut out = Vec::new();
        encode_source(
            &mut out,
            G,
            FileId { dev: 1, ino: 2 },
            3,
            false,
            &source_tail("host", b"/p"),
        );
        for cut in 0..out.len() {
            assert!(decode_source(&out[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode_source(&[9]), Err(SourceDecodeError::Version(9)));
    }

    fn key(pkey: &[u8], g: u64, ino: u64, offset: u64, truncated: bool, host: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let tail = source_tail(host, b"/var/log/a.log");
        let id = FileId { dev: 8, ino };
        encode_source_key(
            &mut out,
            pkey,
            GenerationId(g),
            id,
            offset,
            truncated,
            &tail,
        );
        out
    }

    #[test]
    fn the_memo_recognises_the_next_key_of_a_file_and_nothing_else() {
        let mut memo = KeyMemo::default();
        let first = key(b"rq", u64::MAX, 300, 5, false, "web-1");
        assert_eq!(memo.keep(&first), Some(decode_source_ref(&first).unwrap()));
        for offset in [6, 0, 200_000, u64::MAX] {
            let next = key(b"rq", u64::MAX, 300, offset, false, "web-1");
            let src = memo.repeat(&next).expect("same file, other offset");
            assert_eq!(src, decode_source_ref(&next).unwrap());
            assert_eq!(src.offset, offset);
        }
        let others = [
            key(b"rs", u64::MAX, 300, 6, false, "web-1"),
            key(b"rq", 1, 300, 6, false, "web-1"),
            key(b"rq", u64::MAX, 301, 6, false, "web-1"),
            key(b"rq", u64::MAX, 300, 6, true, "web-1"),
            key(b"rq", u64::MAX, 300, 6, false, "web-2"),
            key(b"", u64::MAX, 300, 6, false, "web-1"),
        ];
        for other in &others {
            assert_eq!(memo.repeat(other), None);
        }
        // A cut or a longer key is not the same key.
        let next = key(b"rq", u64::MAX, 300, 6, false, "web-1");
        assert_eq!(memo.repeat(&next[..next.len() - 1]), None);
        let mut longer = next.clone();
        longer.push(0);
        assert_eq!(memo.repeat(&longer), None);
    }

    #[test]
    fn the_memo_keeps_only_key_form_keys_that_decode() {
        let mut memo = KeyMemo::default();
        let good = key(b"", 7, 2, 3, false, "h");
        assert!(memo.keep(&good).is_some());
        let mut header = Vec::new();
        encode_source(
            &mut header,
            G,
            FileId { dev: 1, ino: 2 },
            3,
            false,
            &source_tail("h", b"/p"),
        );
        assert_eq!(memo.keep(&header), None, "the header form is not a key");
        assert_eq!(memo.repeat(&good), None, "a miss forgets the last key");
        // A host that is not UTF-8 never decodes, kept or not.
        let mut bad = key(b"", 7, 2, 3, false, "h");
        let at = bad.len() - 1 - b"/var/log/a.log".len() - 1;
        bad[at] = 0xff;
        assert_eq!(decode_source_ref(&bad), Err(SourceDecodeError::Host));
        assert_eq!(memo.keep(&bad), None);
        assert!(memo.keep(&good).is_some());
        assert_eq!(memo.repeat(&bad), None);
        for cut in 0..good.len() {
            assert_eq!(memo.repeat(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(memo.keep(b""), None);
        assert_eq!(memo.keep(b"request-42"), None);
    }

    proptest! {
        #[test]
        fn source_round_trips(g: u64, dev: u64, ino: u64, offset: u64, truncated: bool, host in "[a-z0-9.-]{0,40}", path in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            encode_source(&mut out, GenerationId(g), FileId { dev, ino }, offset, truncated, &source_tail(&host, &path));
            let s = decode_source(&out).unwrap();
            prop_assert_eq!(s, Source { host: host.clone(), path: path.clone(), generation: Some(GenerationId(g)), id: FileId { dev, ino }, offset, truncated, packed: false, partition_key: Vec::new() });
        }

        /// Whatever key follows whatever key, the memo answers what a
        /// full decode answers, or leaves it to one.
        #[test]
        fn the_memo_answers_as_a_full_decode(g: u64, ino: u64, a_off: u64, b_off: u64, truncated: bool, pkey in proptest::collection::vec(any::<u8>(), 0..4), host in "[a-z]{0,6}", flip in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())), cut in proptest::option::of(any::<prop::sample::Index>()), extra in proptest::collection::vec(any::<u8>(), 0..3)) {
            let a = key(&pkey, g, ino, a_off, truncated, &host);
            let mut b = key(&pkey, g, ino, b_off, truncated, &host);
            if let Some((i, v)) = flip {
                let i = i.index(b.len());
                b[i] = v;
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            }
            b.extend_from_slice(&extra);
            let mut memo = KeyMemo::default();
            prop_assert_eq!(memo.keep(&a), Some(decode_source_ref(&a).unwrap()));
            let plain = flip.is_none() && cut.is_none() && extra.is_empty();
            match memo.repeat(&b) {
                Some(src) => prop_assert_eq!(Ok(src), decode_source_ref(&b)),
                None => prop_assert!(!plain, "same file, other offset, missed"),
            }
            let kept = memo.keep(&b);
            let full = decode_source_ref(&b).ok().filter(|_| partition_key_of(&b).is_some());
            prop_assert_eq!(kept, full);
        }

        #[test]
        fn key_form_round_trips(g: u64, dev: u64, ino: u64, offset: u64, truncated: bool, pkey in proptest::collection::vec(any::<u8>(), 0..40), host in "[a-z0-9.-]{0,40}", path in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            encode_source_key(&mut out, &pkey, GenerationId(g), FileId { dev, ino }, offset, truncated, &source_tail(&host, &path));
            prop_assert_eq!(partition_key_of(&out), Some(pkey.as_slice()));
            let s = decode_source(&out).unwrap();
            prop_assert_eq!(s, Source { host, path, generation: Some(GenerationId(g)), id: FileId { dev, ino }, offset, truncated, packed: false, partition_key: pkey });
        }
    }
}
