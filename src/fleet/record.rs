//! What `logferry tail` reads from one consumed record: its source
//! attribution (through the one decoder, [`RecordSourceRef`], borrowed
//! from the record so a record filtered out costs no allocation) and its
//! line.

use std::borrow::Cow;

use crate::consume::Record;
use crate::wire::{Format, RecordSourceRef, SourceDecodeError, SourceRef};

/// The `lf` header's name as librdkafka wants it.
const SOURCE_HEADER: &std::ffi::CStr = c"lf";

/// The record's source attribution: `Ok(None)` when it has none, `Err`
/// when it has one that does not decode (the rules are
/// [`RecordSourceRef`]'s, the same for every reader of a topic).
pub fn attribution<'b>(r: &Record<'b>) -> Result<Option<SourceRef<'b>>, SourceDecodeError> {
    match RecordSourceRef::of_record(r.key(), || r.header(SOURCE_HEADER)) {
        RecordSourceRef::Attributed(src) => Ok(Some(src)),
        RecordSourceRef::Unattributed => Ok(None),
        RecordSourceRef::Corrupt(e) => Err(e),
    }
}

/// The line inside a value: without `META::` when `meta` is given and the
/// value has it, the line of a JSON envelope that names this very source,
/// else the value itself.
pub fn line_of<'a>(
    value: &'a [u8],
    src: Option<&SourceRef<'_>>,
    meta: Option<&Format>,
) -> Cow<'a, [u8]> {
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
fn is_envelope_of(value: &[u8], src: &SourceRef<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        host: Cow<'a, str>,
        offset: u64,
    }
    serde_json::from_slice::<Head<'_>>(value)
        .is_ok_and(|h| h.host == src.host && h.offset == src.offset)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_header_name_is_the_wire_one() {
        assert_eq!(
            super::SOURCE_HEADER.to_bytes(),
            crate::wire::SOURCE_HEADER.as_bytes()
        );
    }
}
