//! Record values: how a line's bytes become what a consumer reads, and the
//! line back out of a value (for audits).

use logferry_tail::{FileId, GenerationId};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
