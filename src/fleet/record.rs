//! What `logferry tail` reads from one consumed record: its source
//! attribution and its line. This is the only call into the wire decoder
//! from `fleet/`, so switching to a shared entry point is one edit.

use std::borrow::Cow;

use rdkafka::message::{Headers, Message};

use crate::wire::{
    decode_source, partition_key_of, Format, Source, SourceDecodeError, SOURCE_HEADER,
};

/// The record's source attribution: `Ok(None)` when it has none, `Err`
/// when it has one that does not decode. The key form is tried first: it
/// needs no header parse (librdkafka allocates for that), and a key that
/// decodes as an attribution is one.
pub fn attribution<M: Message>(m: &M) -> Result<Option<Source>, SourceDecodeError> {
    let keyed = m.key().filter(|k| partition_key_of(k).is_some());
    if let Some(Ok(src)) = keyed.map(decode_source) {
        return Ok(Some(src));
    }
    if let Some(h) = m
        .headers()
        .and_then(|hs| hs.iter().find(|h| h.key == SOURCE_HEADER))
    {
        return decode_source(h.value.unwrap_or_default()).map(Some);
    }
    keyed.map(decode_source).transpose()
}

/// The line inside a value: without `META::` when `meta` is given and the
/// value has it, the line of a JSON envelope that names this very source,
/// else the value itself.
pub fn line_of<'a>(value: &'a [u8], src: Option<&Source>, meta: Option<&Format>) -> Cow<'a, [u8]> {
    if let Some(l) = meta.and_then(|f| f.line_of(value)) {
        return l;
    }
    if let Some(src) = src.filter(|_| value.starts_with(b"{\"line\":")) {
        if is_envelope_of(value, src) {
            if let Some(l) = (Format::Json { fields: Vec::new() }).line_of(value) {
                return Cow::Owned(l.into_owned());
            }
        }
    }
    Cow::Borrowed(value)
}

/// A raw line that merely looks like an envelope does not carry its own
/// record's host and offset.
fn is_envelope_of(value: &[u8], src: &Source) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        host: Cow<'a, str>,
        offset: u64,
    }
    serde_json::from_slice::<Head<'_>>(value)
        .is_ok_and(|h| h.host == src.host && h.offset == src.offset)
}
