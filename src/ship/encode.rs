//! What a line becomes on the wire. Pure functions over bytes: the payload
//! (raw, or tail2kafka's `META::line`) and the compact source attribution
//! that `verify` and consumers use to audit and de-duplicate.
//!
//! Attribution is one binary field rather than four strings (librdkafka's
//! per-record cost grows with the number of headers far more than with
//! their bytes). It travels either in the record key (the default, and the
//! cheapest place: see `config::Attribution`) or in one record header:
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
//!
//! (host, generation, offset) identifies a line: the generation is one life
//! of one file (see `logferry_tail::GenerationId`), so a reused inode or a
//! file truncated in place never collides with an earlier file.

use logferry_tail::{FileId, GenerationId};

/// Name of the source-attribution header.
pub const SOURCE_HEADER: &str = "lf";
const SOURCE_VERSION: u8 = 4;
const KEY_VERSION: u8 = 3;
/// Versions written before generations existed; still decoded.
const SOURCE_VERSION_V1: u8 = 1;
const KEY_VERSION_V2: u8 = 2;
const FLAG_TRUNCATED: u8 = 1;

/// How a line's bytes become a record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The line's bytes exactly.
    Raw,
    /// `META::line`, as tail2kafka's `-m` produced.
    Tail2Kafka { meta: Vec<u8> },
    /// A JSON object: the line (a string when it is UTF-8, base64
    /// otherwise, as `encoding` says), its source, when it was read, and
    /// static `fields` from the configuration.
    Json { fields: Vec<(String, String)> },
}

/// Where a line came from, for formats that carry it in the value.
#[derive(Debug, Clone, Copy)]
pub struct LineSource<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub generation: GenerationId,
    pub id: FileId,
    /// File offset of the line's first byte.
    pub offset: u64,
    /// Milliseconds since the Unix epoch when logferry read the line.
    pub read_at_ms: u64,
}

#[derive(serde::Serialize)]
struct JsonRecord<'a> {
    line: std::borrow::Cow<'a, str>,
    encoding: &'static str,
    host: &'a str,
    path: &'a str,
    generation: String,
    file: String,
    offset: u64,
    read_at_ms: u64,
    #[serde(skip_serializing_if = "no_fields", serialize_with = "fields_as_object")]
    fields: &'a [(String, String)],
}

fn no_fields(f: &&[(String, String)]) -> bool {
    f.is_empty()
}

fn fields_as_object<S: serde::Serializer>(
    fields: &&[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(fields.len()))?;
    for (k, v) in fields.iter() {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

impl Format {
    /// The record value for `line`, borrowing `line` when no bytes are added.
    pub fn payload<'a>(
        &self,
        line: &'a [u8],
        src: &LineSource<'_>,
        scratch: &'a mut Vec<u8>,
    ) -> &'a [u8] {
        match self {
            Format::Raw => line,
            Format::Tail2Kafka { meta } => {
                scratch.clear();
                scratch.reserve(meta.len() + 2 + line.len());
                scratch.extend_from_slice(meta);
                scratch.extend_from_slice(b"::");
                scratch.extend_from_slice(line);
                scratch
            }
            Format::Json { fields } => {
                use base64::Engine;
                let (text, encoding) = match std::str::from_utf8(line) {
                    Ok(t) => (std::borrow::Cow::Borrowed(t), "utf-8"),
                    Err(_) => (
                        std::borrow::Cow::Owned(
                            base64::engine::general_purpose::STANDARD.encode(line),
                        ),
                        "base64",
                    ),
                };
                let rec = JsonRecord {
                    line: text,
                    encoding,
                    host: src.host,
                    path: src.path,
                    generation: src.generation.to_string(),
                    file: src.id.to_string(),
                    offset: src.offset,
                    read_at_ms: src.read_at_ms,
                    fields,
                };
                scratch.clear();
                // Serializing strings and integers into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *scratch, &rec);
                scratch
            }
        }
    }
}

impl Format {
    /// The original line inside a record value of this format (what
    /// `verify` compares with the file). None when the value is not of
    /// this format.
    pub fn line_of<'a>(&self, value: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        use std::borrow::Cow;
        match self {
            Format::Raw => Some(Cow::Borrowed(value)),
            Format::Tail2Kafka { meta } => value
                .strip_prefix(meta.as_slice())
                .and_then(|v| v.strip_prefix(b"::"))
                .map(Cow::Borrowed),
            Format::Json { .. } => {
                use base64::Engine;
                let v: serde_json::Value = serde_json::from_slice(value).ok()?;
                let line = v.get("line")?.as_str()?;
                match v.get("encoding")?.as_str()? {
                    "base64" => base64::engine::general_purpose::STANDARD
                        .decode(line)
                        .ok()
                        .map(Cow::Owned),
                    _ => Some(Cow::Owned(line.as_bytes().to_vec())),
                }
            }
        }
    }
}

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

/// Set the truncated flag in an encoded source (either form); other bytes
/// are left alone.
pub fn mark_truncated(encoded: &mut [u8]) {
    if let [SOURCE_VERSION | KEY_VERSION | SOURCE_VERSION_V1 | KEY_VERSION_V2, flags, ..] = encoded
    {
        *flags |= FLAG_TRUNCATED;
    }
}

/// Decode either form: the `lf` header value or a key-form record key.
pub fn decode_source(mut bytes: &[u8]) -> Result<Source, SourceDecodeError> {
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
    let partition_key = if keyed {
        let len = get_varint(b)? as usize;
        take(b, len)?.to_vec()
    } else {
        Vec::new()
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
    let host = std::str::from_utf8(take(b, host_len)?)
        .map_err(|_| SourceDecodeError::Host)?
        .to_string();
    let path_len = get_varint(b)? as usize;
    let path = take(b, path_len)?.to_vec();
    Ok(Source {
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

    const SRC: LineSource<'static> = LineSource {
        host: "web1",
        path: "/var/log/a.log",
        generation: GenerationId(0xab),
        id: FileId { dev: 8, ino: 42 },
        offset: 1234,
        read_at_ms: 1_790_000_000_000,
    };

    #[test]
    fn raw_is_identity_and_tail2kafka_prefixes() {
        let mut s = Vec::new();
        assert_eq!(Format::Raw.payload(b"a\xffb", &SRC, &mut s), b"a\xffb");
        let f = Format::Tail2Kafka {
            meta: b"web1".to_vec(),
        };
        assert_eq!(f.payload(b"GET /", &SRC, &mut s), b"web1::GET /");
    }

    #[test]
    fn json_envelope_golden() {
        let mut s = Vec::new();
        let f = Format::Json {
            fields: vec![("env".into(), "prod".into()), ("app".into(), "shop".into())],
        };
        let out = f.payload(b"GET /\"q\"", &SRC, &mut s);
        assert_eq!(
            std::str::from_utf8(out).unwrap(),
            r#"{"line":"GET /\"q\"","encoding":"utf-8","host":"web1","path":"/var/log/a.log","generation":"00000000000000ab","file":"8:42","offset":1234,"read_at_ms":1790000000000,"fields":{"env":"prod","app":"shop"}}"#
        );
    }

    #[test]
    fn json_envelope_base64_for_invalid_utf8() {
        let mut s = Vec::new();
        let out = Format::Json { fields: vec![] }
            .payload(b"\xff\x00ok", &SRC, &mut s)
            .to_vec();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["encoding"], "base64");
        assert_eq!(v["line"], "/wBvaw==");
        assert!(v.get("fields").is_none());
        assert_eq!(
            Format::Json { fields: vec![] }.line_of(&out).unwrap(),
            &b"\xff\x00ok"[..]
        );
    }

    #[test]
    fn line_of_inverts_payload() {
        let mut s = Vec::new();
        for f in [
            Format::Raw,
            Format::Tail2Kafka {
                meta: b"m".to_vec(),
            },
            Format::Json {
                fields: vec![("a".into(), "b".into())],
            },
        ] {
            let v = f.payload(b"GET / 200", &SRC, &mut s).to_vec();
            assert_eq!(f.line_of(&v).unwrap(), &b"GET / 200"[..], "{f:?}");
        }
        assert!(Format::Tail2Kafka {
            meta: b"m".to_vec()
        }
        .line_of(b"x::y")
        .is_none());
    }

    const G: GenerationId = GenerationId(129);

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
