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
    put_varint(&mut out, host.len() as u64);
    out.extend_from_slice(host.as_bytes());
    put_varint(&mut out, path.len() as u64);
    out.extend_from_slice(path);
    out
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
    if let [SOURCE_VERSION | KEY_VERSION | SOURCE_VERSION_V1 | KEY_VERSION_V2, flags, ..] = encoded
    {
        *flags |= FLAG_TRUNCATED;
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
            partition_key: self.partition_key.to_vec(),
        }
    }
}

/// Decode either form: the `lf` header value or a key-form record key.
pub fn decode_source(bytes: &[u8]) -> Result<Source, SourceDecodeError> {
    decode_source_ref(bytes).map(|s| s.to_source())
}

/// [`decode_source`] without copying: the one decoder of both forms.
pub fn decode_source_ref(mut bytes: &[u8]) -> Result<SourceRef<'_>, SourceDecodeError> {
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
    let offset = get_varint(b)?;
    let host_len = get_varint(b)? as usize;
    let host = std::str::from_utf8(take(b, host_len)?).map_err(|_| SourceDecodeError::Host)?;
    let path_len = get_varint(b)? as usize;
    let path = take(b, path_len)?;
    Ok(SourceRef {
        host,
        path,
        generation,
        id: FileId { dev, ino },
        offset,
        truncated: flags & FLAG_TRUNCATED != 0,
        partition_key,
    })
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

    proptest! {
        #[test]
        fn source_round_trips(g: u64, dev: u64, ino: u64, offset: u64, truncated: bool, host in "[a-z0-9.-]{0,40}", path in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            encode_source(&mut out, GenerationId(g), FileId { dev, ino }, offset, truncated, &source_tail(&host, &path));
            let s = decode_source(&out).unwrap();
            prop_assert_eq!(s, Source { host: host.clone(), path: path.clone(), generation: Some(GenerationId(g)), id: FileId { dev, ino }, offset, truncated, partition_key: Vec::new() });
        }

        #[test]
        fn key_form_round_trips(g: u64, dev: u64, ino: u64, offset: u64, truncated: bool, pkey in proptest::collection::vec(any::<u8>(), 0..40), host in "[a-z0-9.-]{0,40}", path in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            encode_source_key(&mut out, &pkey, GenerationId(g), FileId { dev, ino }, offset, truncated, &source_tail(&host, &path));
            prop_assert_eq!(partition_key_of(&out), Some(pkey.as_slice()));
            let s = decode_source(&out).unwrap();
            prop_assert_eq!(s, Source { host, path, generation: Some(GenerationId(g)), id: FileId { dev, ino }, offset, truncated, partition_key: pkey });
        }
    }
}
