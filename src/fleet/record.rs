//! What `logferry tail` reads from one consumed record: its source
//! attribution (through the one decoder, [`RecordSource`]) and its line.

use std::borrow::Cow;

use rdkafka::message::Message;

use crate::wire::{Format, RecordSource, Source, SourceDecodeError};

/// The record's source attribution: `Ok(None)` when it has none, `Err`
/// when it has one that does not decode (the rules are
/// [`RecordSource`]'s, the same for every reader of a topic).
pub fn attribution<M: Message>(m: &M) -> Result<Option<Source>, SourceDecodeError> {
    match RecordSource::of_message(m) {
        RecordSource::Attributed(src) => Ok(Some(src)),
        RecordSource::Unattributed => Ok(None),
        RecordSource::Corrupt(e) => Err(e),
    }
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
