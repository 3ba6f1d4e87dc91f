//! Which record came from where: the one reading of a Kafka record's
//! source attribution, for every reader of a topic (the collector, verify,
//! and any later one). The rules, in order:
//!
//! 1. A key in the key form (its version byte and partitioning key parse)
//!    that decodes whole is the attribution; the headers are not looked at.
//!    The default (`attribution = "key"`) then costs no header lookup, and
//!    asking librdkafka for a record's headers parses them, allocating,
//!    even when there are none (a tenth of the collector's CPU). A key
//!    that decodes is an attribution: header-form records carry a plain
//!    partitioning key, which does not start with a key-form version byte
//!    followed by a valid encoding.
//! 2. Otherwise an `lf` header, if there is one, is the attribution: it
//!    decodes, or the record is [`RecordSource::Corrupt`] (an `lf` header
//!    without a value included). Header-form records carry a plain
//!    partitioning key, so their key never gets past rule 1.
//! 3. Otherwise a key that looked like the key form but does not decode
//!    makes the record [`RecordSource::Corrupt`].
//! 4. Otherwise the record has no attribution ([`RecordSource::Unattributed`]): a
//!    plain key, no key, or another producer's records.
//!
//! So "corrupt" means: logferry's attribution is claimed (an `lf` header,
//! or a key whose first bytes parse as the key form) and does not decode.
//! Corrupt and unattributed records are the caller's to keep apart (the
//! collector appends both to `_unattributed` and counts corrupt ones).

use super::attribution::{
    decode_source_ref, partition_key_of, Source, SourceDecodeError, SourceRef,
};
use super::SOURCE_HEADER;

/// What a record says about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    /// Decoded: host, path, generation, file identity, byte offset.
    Attributed(Source),
    /// No attribution: a plain key or none, and no `lf` header.
    Unattributed,
    /// An attribution is claimed (an `lf` header, or a key in the key
    /// form) but does not decode.
    Corrupt(SourceDecodeError),
}

impl RecordSource {
    /// The attribution of a record with `key`; `lf_header` is asked only
    /// when the key does not settle it and returns the value of the `lf`
    /// header when there is one (`Some(&[])` for a header without value).
    pub fn of_record<'h>(
        key: Option<&[u8]>,
        lf_header: impl FnOnce() -> Option<&'h [u8]>,
    ) -> RecordSource {
        // The closure shortens the header's lifetime to the key's; passed
        // as it is, the key would have to live as long as the header.
        #[allow(clippy::redundant_closure)]
        RecordSourceRef::of_record(key, || lf_header()).to_owned()
    }

    /// [`RecordSource::of_record`] for a record consumed with rdkafka.
    pub fn of_message<M: rdkafka::message::Message>(m: &M) -> RecordSource {
        use rdkafka::message::Headers;
        RecordSource::of_record(m.key(), || {
            let hs = m.headers()?;
            hs.iter()
                .find(|h| h.key == SOURCE_HEADER)
                .map(|h| h.value.unwrap_or_default())
        })
    }

    /// The source, when the record has one that decodes.
    pub fn source(self) -> Option<Source> {
        match self {
            RecordSource::Attributed(s) => Some(s),
            RecordSource::Unattributed | RecordSource::Corrupt(_) => None,
        }
    }
}

/// [`RecordSource`] borrowed from the record's key or header, for readers
/// that only look at most records (`logferry tail`): the same rules, no
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSourceRef<'a> {
    Attributed(SourceRef<'a>),
    Unattributed,
    Corrupt(SourceDecodeError),
}

impl<'a> RecordSourceRef<'a> {
    /// The rules of this module, in their order: the one place they are
    /// written ([`RecordSource::of_record`] copies what this finds).
    pub fn of_record(
        key: Option<&'a [u8]>,
        lf_header: impl FnOnce() -> Option<&'a [u8]>,
    ) -> RecordSourceRef<'a> {
        let keyed = key.filter(|k| partition_key_of(k).is_some());
        let from_key = keyed.map(decode_source_ref);
        if let Some(Ok(src)) = from_key {
            return RecordSourceRef::Attributed(src);
        }
        if let Some(h) = lf_header() {
            return match decode_source_ref(h) {
                Ok(src) => RecordSourceRef::Attributed(src),
                Err(e) => RecordSourceRef::Corrupt(e),
            };
        }
        match from_key {
            Some(Err(e)) => RecordSourceRef::Corrupt(e),
            _ => RecordSourceRef::Unattributed,
        }
    }

    pub fn to_owned(&self) -> RecordSource {
        match self {
            RecordSourceRef::Attributed(s) => RecordSource::Attributed(s.to_source()),
            RecordSourceRef::Unattributed => RecordSource::Unattributed,
            RecordSourceRef::Corrupt(e) => RecordSource::Corrupt(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_source;
    use crate::wire::{encode_source, encode_source_key, source_tail};
    use logferry_tail::{FileId, GenerationId};
    use proptest::prelude::*;

    fn key_form(host: &str, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let tail = source_tail(host, b"/a.log");
        let id = FileId { dev: 1, ino: 2 };
        encode_source_key(&mut out, b"pk", GenerationId(7), id, offset, false, &tail);
        out
    }

    fn header_form(host: &str, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let tail = source_tail(host, b"/a.log");
        let id = FileId { dev: 1, ino: 2 };
        encode_source(&mut out, GenerationId(7), id, offset, false, &tail);
        out
    }

    fn host_of(a: RecordSource) -> Option<String> {
        a.source().map(|s| s.host)
    }

    #[test]
    fn a_decoding_key_wins_and_the_header_is_not_asked() {
        let key = key_form("k", 1);
        let a = RecordSource::of_record(Some(&key), || panic!("header looked up"));
        assert_eq!(host_of(a), Some("k".into()));
    }

    /// The borrowed reading copies nothing: host and path are the key's
    /// own bytes, and the owned reading is its copy.
    #[test]
    fn the_borrowed_source_is_the_keys_bytes() {
        let key = key_form("web1", 9);
        let RecordSourceRef::Attributed(src) = RecordSourceRef::of_record(Some(&key), || None)
        else {
            panic!("key form not read");
        };
        let inside = key.as_ptr_range();
        assert!(inside.contains(&src.host.as_ptr()) && inside.contains(&src.path.as_ptr()));
        assert_eq!(
            (src.host, src.path, src.offset),
            ("web1", &b"/a.log"[..], 9)
        );
        assert_eq!(
            RecordSource::of_record(Some(&key), || None),
            RecordSource::Attributed(src.to_source())
        );
    }

    #[test]
    fn a_plain_key_with_a_header_is_the_header_form() {
        let h = header_form("h", 3);
        let a = RecordSource::of_record(Some(b"web1"), || Some(&h));
        assert_eq!(host_of(a), Some("h".into()));
        // Both present and the key is corrupt: the header decides.
        let mut cut = key_form("k", 1);
        cut.truncate(cut.len() - 1);
        assert_eq!(
            host_of(RecordSource::of_record(Some(&cut), || Some(&h))),
            Some("h".into())
        );
    }

    #[test]
    fn what_counts_as_corrupt() {
        let mut cut = key_form("k", 1);
        cut.truncate(cut.len() - 1);
        // A key in the key form that does not decode, no header.
        assert_eq!(
            RecordSource::of_record(Some(&cut), || None),
            RecordSource::Corrupt(SourceDecodeError::Short)
        );
        // An lf header that does not decode, whatever the key.
        assert_eq!(
            RecordSource::of_record(Some(b"plain"), || Some(&[9, 0][..])),
            RecordSource::Corrupt(SourceDecodeError::Version(9))
        );
        assert_eq!(
            RecordSource::of_record(None, || Some(&[][..])),
            RecordSource::Corrupt(SourceDecodeError::Empty)
        );
        // The header is corrupt and the key is too: still corrupt.
        assert!(matches!(
            RecordSource::of_record(Some(&cut), || Some(&[9][..])),
            RecordSource::Corrupt(_)
        ));
    }

    #[test]
    fn without_a_claim_there_is_no_attribution() {
        assert_eq!(
            RecordSource::of_record(None, || None),
            RecordSource::Unattributed
        );
        assert_eq!(
            RecordSource::of_record(Some(b"request-42"), || None),
            RecordSource::Unattributed
        );
        // A version byte alone does not make a key the key form.
        assert_eq!(
            RecordSource::of_record(Some(&[3]), || None),
            RecordSource::Unattributed
        );
    }

    #[test]
    fn of_message_reads_key_and_lf_header() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let h = header_form("hdr", 5);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "other",
                value: Some(&b"x"[..]),
            })
            .insert(Header {
                key: SOURCE_HEADER,
                value: Some(&h),
            });
        let m = |key: Option<Vec<u8>>, headers: Option<OwnedHeaders>| {
            OwnedMessage::new(
                None,
                key,
                "t".into(),
                Timestamp::NotAvailable,
                0,
                0,
                headers,
            )
        };
        let with_header = m(Some(b"plain".to_vec()), Some(headers.clone()));
        assert_eq!(
            host_of(RecordSource::of_message(&with_header)),
            Some("hdr".into())
        );
        let keyed = m(Some(key_form("key", 1)), Some(headers));
        assert_eq!(
            host_of(RecordSource::of_message(&keyed)),
            Some("key".into())
        );
        let empty = OwnedHeaders::new().insert(Header::<&[u8]> {
            key: SOURCE_HEADER,
            value: None,
        });
        assert_eq!(
            RecordSource::of_message(&m(None, Some(empty))),
            RecordSource::Corrupt(SourceDecodeError::Empty)
        );
        assert_eq!(
            RecordSource::of_message(&m(None, None)),
            RecordSource::Unattributed
        );
    }

    proptest! {
        /// Arbitrary bytes never panic, and the rules hold: a decoding
        /// key is the answer whatever the header says.
        #[test]
        fn arbitrary_key_and_header_never_panic(
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            header in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let a = RecordSource::of_record(key.as_deref(), || header.as_deref());
            let key_decodes = key
                .as_deref()
                .filter(|k| partition_key_of(k).is_some())
                .map(decode_source);
            if let Some(Ok(src)) = key_decodes {
                prop_assert_eq!(a, RecordSource::Attributed(src));
            } else if let Some(h) = &header {
                prop_assert_eq!(a.clone().source().is_some(), decode_source(h).is_ok());
                prop_assert!(a != RecordSource::Unattributed);
            } else if key_decodes.is_some() {
                prop_assert!(matches!(a, RecordSource::Corrupt(_)));
            } else {
                prop_assert_eq!(a, RecordSource::Unattributed);
            }
        }
    }
}
