//! One `[[inputs]]` table of the agent's file: raw -> [`InputSettings`],
//! every problem reported (split from `validate.rs`, which does the rest
//! of the file).

use std::collections::HashMap;

use logferry_tail::{Discovery, LongLinePolicy};
use toml::Spanned;

use super::super::raw::*;
use super::super::*;
use super::*;
use crate::wire::Format;

impl Validator<'_> {
    pub(super) fn input(
        &mut self,
        n: usize,
        raw: Spanned<RawInput>,
        seen_globs: &mut HashMap<String, (usize, usize)>,
    ) -> Option<InputSettings> {
        let table_span = raw.span();
        let sect = format!("[[inputs]] #{n}");
        let raw = raw.into_inner();
        let before = self.issues.len();

        let include = match &raw.include {
            Some(l) => items(l),
            None => {
                self.err(
                    Some(table_span.clone()),
                    "include",
                    format!(
                        "{sect} has no \"include\" (absolute paths or globs of the files to ship)"
                    ),
                );
                Vec::new()
            }
        };
        if raw.include.is_some() && include.is_empty() {
            self.err(
                raw.include.as_ref().map(|l| l.span()),
                "include",
                format!("\"include\" in {sect} is empty"),
            );
        }
        let exclude = raw.exclude.as_ref().map(items).unwrap_or_default();
        let rotated = raw.rotated.as_ref().map(items).unwrap_or_default();
        for (what, list) in [
            ("include", &include),
            ("exclude", &exclude),
            ("rotated", &rotated),
        ] {
            let mut local: HashMap<&str, usize> = HashMap::new();
            for (g, span) in list.iter() {
                if !g.starts_with('/') {
                    self.err(
                        Some(span.clone()),
                        what,
                        format!("\"{what}\" in {sect}: \"{g}\" is relative; patterns must be absolute paths (start with /)"),
                    );
                    continue;
                }
                let (inc, exc) = if what == "exclude" {
                    (vec![], vec![g.clone()])
                } else {
                    (vec![g.clone()], vec![])
                };
                if let Err(e) = Discovery::new(&inc, &exc) {
                    let msg = self.say(what, &sect, e);
                    self.err(Some(span.clone()), what, msg);
                    continue;
                }
                if let Some(first) = local.insert(g.as_str(), self.line_of(span)) {
                    self.err(
                        Some(span.clone()),
                        what,
                        format!(
                            "\"{what}\" in {sect}: \"{g}\" is listed twice (first on line {first})"
                        ),
                    );
                } else if what == "include" {
                    if let Some((other, line)) =
                        seen_globs.insert(g.clone(), (n, self.line_of(span)))
                    {
                        self.err(
                            Some(span.clone()),
                            what,
                            format!("\"include\" in {sect}: \"{g}\" is also included by [[inputs]] #{other} (line {line}); its files would be shipped twice"),
                        );
                    }
                }
            }
        }

        let topic = match &raw.topic {
            Some(t) => {
                if let Err(why) = check_topic(t.get_ref()) {
                    let msg = self.say("topic", &sect, why);
                    self.err(Some(t.span()), "topic", msg);
                }
                t.get_ref().clone()
            }
            None => {
                self.err(
                    Some(table_span.clone()),
                    "topic",
                    format!("{sect} has no \"topic\""),
                );
                String::new()
            }
        };

        let format = match (raw.format.as_ref().map(|f| *f.get_ref()), &raw.metadata) {
            (Some(RawFormat::Tail2kafka), Some(m)) if m.get_ref().is_empty() => {
                let msg = self.say("metadata", &sect, "must not be empty");
                self.err(Some(m.span()), "metadata", msg);
                Format::Raw
            }
            (Some(RawFormat::Tail2kafka), Some(m)) => Format::Tail2Kafka {
                meta: m.get_ref().clone().into_bytes(),
            },
            (Some(RawFormat::Tail2kafka), None) => {
                self.err(
                    raw.format.as_ref().map(|f| f.span()),
                    "metadata",
                    format!("format = \"tail2kafka\" in {sect} needs \"metadata\" (the META of META::line)"),
                );
                Format::Raw
            }
            (_, Some(m)) => {
                self.err(
                    Some(m.span()),
                    "metadata",
                    format!("\"metadata\" in {sect} is only used with format = \"tail2kafka\""),
                );
                Format::Raw
            }
            (Some(RawFormat::Json), None) => Format::Json {
                fields: raw
                    .fields
                    .as_ref()
                    .map(|f| {
                        f.get_ref()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            (_, None) => Format::Raw,
        };
        let mut headers = Vec::new();
        if let Some(h) = &raw.headers {
            for (name, value) in h.get_ref() {
                match crate::wire::check_static_header(name) {
                    Ok(()) => headers.push((name.clone(), value.clone())),
                    Err(why) => {
                        let msg = self.say("headers", &sect, why);
                        self.err(Some(h.span()), "headers", msg);
                    }
                }
            }
        }
        if let (Some(f), false) = (&raw.fields, matches!(format, Format::Json { .. })) {
            self.err(
                Some(f.span()),
                "fields",
                format!("\"fields\" in {sect} is only used with format = \"json\""),
            );
        }

        let max_line_bytes = self.size(
            &raw.max_line_bytes,
            "max_line_bytes",
            &sect,
            1,
            ShipSettings::DEFAULT_MAX_LINE_BYTES,
        );
        let max_bytes_per_sec = self.rate(&raw.max_bytes_per_sec, &sect);
        let partial_flush = match &raw.partial_flush {
            Some(d) if d.get_ref().0.is_zero() => {
                self.err(
                    Some(d.span()),
                    "partial_flush",
                    format!("\"partial_flush\" in {sect} must be above zero (omit it to wait for the newline)"),
                );
                None
            }
            Some(d) => Some(d.get_ref().0),
            None => None,
        };

        // A regex is compiled here, once: settings hold it built.
        let multiline = raw.multiline.as_ref().and_then(|m| {
            let msect = format!("[inputs.multiline] of {sect}");
            let m_span = m.span();
            let m = m.get_ref();
            let start = match &m.start {
                Some(s) => match Pattern::new(s.get_ref()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let msg = self.say(
                            "start",
                            &msect,
                            format!("bad regex \"{}\": {}", s.get_ref(), regex_error(&e)),
                        );
                        self.err(Some(s.span()), "start", msg);
                        None
                    }
                },
                None => {
                    self.err(
                        Some(m_span),
                        "start",
                        format!(
                            "{msect} has no \"start\" (the regex a record's first line matches)"
                        ),
                    );
                    None
                }
            };
            let timeout = self.positive(&m.timeout, "timeout", &msect, DEFAULT_MULTILINE_TIMEOUT);
            let max_bytes = self.size(&m.max_bytes, "max_bytes", &msect, 1, max_line_bytes);
            start.map(|start| MultilineSettings {
                start,
                timeout,
                max_bytes,
            })
        });
        let partition_by = match raw.partition_by {
            Some(RawPartitionBy::File) => PartitionBy::File,
            Some(RawPartitionBy::Host) => PartitionBy::Host,
            Some(RawPartitionBy::Pattern) => match &raw.key_pattern {
                Some(p) => match Pattern::new(p.get_ref()) {
                    Ok(compiled) => PartitionBy::Pattern(compiled),
                    Err(e) => {
                        let msg = self.say(
                            "key_pattern",
                            &sect,
                            format!("bad regex \"{}\": {}", p.get_ref(), regex_error(&e)),
                        );
                        self.err(Some(p.span()), "key_pattern", msg);
                        PartitionBy::None
                    }
                },
                None => {
                    self.err(
                        Some(table_span.clone()),
                        "key_pattern",
                        format!("partition_by = \"pattern\" in {sect} needs \"key_pattern\" (a regex whose group `key` or 1 is the key)"),
                    );
                    PartitionBy::None
                }
            },
            Some(RawPartitionBy::None) => PartitionBy::None,
            Some(RawPartitionBy::Generation) | None => PartitionBy::Generation,
        };

        let pack_bytes = self.pack_bytes(&raw, &sect, max_line_bytes, &format, &partition_by);

        if self.issues.len() > before {
            return None;
        }
        Some(InputSettings {
            include: include.into_iter().map(|(g, _)| g).collect(),
            exclude: exclude.into_iter().map(|(g, _)| g).collect(),
            topic,
            start_at: match raw.start_at {
                Some(RawStartAt::Beginning) => StartAt::Beginning,
                Some(RawStartAt::End) | None => StartAt::End,
            },
            format,
            partition_by,
            max_line_bytes,
            long_lines: match raw.long_lines {
                Some(RawLongLines::Split) => LongLinePolicy::Split,
                Some(RawLongLines::Truncate) | None => LongLinePolicy::Truncate,
            },
            strip_cr: raw.strip_cr.unwrap_or(false),
            pack_bytes,
            partial_flush,
            max_bytes_per_sec,
            multiline,
            headers,
            rotated: rotated.into_iter().map(|(g, _)| g).collect(),
            backfill: raw.backfill.unwrap_or(false),
        })
    }

    /// `pack_bytes`: 0 (or absent) for a record a line; else at most
    /// `max_line_bytes` and Kafka's default record limit, and only where a
    /// record's value is the file's bytes and nothing reads line by line
    /// on the way (each refusal names what stands in the way).
    fn pack_bytes(
        &mut self,
        raw: &RawInput,
        sect: &str,
        max_line_bytes: usize,
        format: &Format,
        partition_by: &PartitionBy,
    ) -> usize {
        let Some(given) = &raw.pack_bytes else {
            return 0;
        };
        let n = given.get_ref().0;
        if n == 0 {
            return 0;
        }
        let span = Some(given.span());
        let refuse = |v: &mut Self, why: String| {
            let msg = v.say("pack_bytes", sect, why);
            v.err(span.clone(), "pack_bytes", msg);
            0
        };
        if n > MAX_PACK_BYTES {
            return refuse(self, format!("is {n}, above {MAX_PACK_BYTES} (the producer's default message.max.bytes): a pack that large would be refused"));
        }
        if n > max_line_bytes as u64 {
            return refuse(self, format!("is {n}, above max_line_bytes ({max_line_bytes}): a pack holds lines that max_line_bytes lets through whole"));
        }
        if !matches!(format, Format::Raw) {
            return refuse(self, "needs format = \"raw\": a pack's value is the file's bytes, with no per-line envelope".into());
        }
        if raw.multiline.is_some() {
            return refuse(self, "cannot be used with [inputs.multiline]: a multiline record is already several lines".into());
        }
        if raw.strip_cr == Some(true) {
            return refuse(
                self,
                "cannot be used with strip_cr = true: a pack keeps the file's bytes, CRs included"
                    .into(),
            );
        }
        if matches!(partition_by, PartitionBy::Pattern(_)) {
            return refuse(
                self,
                "cannot be used with partition_by = \"pattern\": the key is taken from each line"
                    .into(),
            );
        }
        n as usize
    }
}

/// The largest `pack_bytes`: the producer's default `message.max.bytes`.
const MAX_PACK_BYTES: u64 = 1_000_000;
