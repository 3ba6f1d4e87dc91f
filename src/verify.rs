//! `logferry verify`: read a topic back and audit it against the source
//! files, using the source attribution of each record (key form or `lf`
//! header: host, file identity, byte offset, read by
//! [`RecordSource::of_message`] as the collector reads it). It answers the question a user of a log shipper should be
//! able to ask at any time: is every line of my files in Kafka, once, in
//! order?
//!
//! A line is identified by (host, generation, start offset). A file on disk
//! does not say which generation it is (inodes are reused, a copy has a new
//! inode, a compressed rotation has none of its own), so each audited file
//! is matched to the generation whose records hold its lines at their
//! offsets; compressed rotations (gz, zst, bz2, xz) are audited through their
//! decompressed content. For each audited file the report counts lines
//! missing from the topic, lines present more than once (expected only
//! after a crash between ack and checkpoint), records out of file order
//! within a partition, and records whose content differs from the file (a
//! file rewritten in place). Records shipped before generations existed are
//! matched by (device, inode).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logferry_tail::compressed::{is_readable_compressed, Decompressed};
use logferry_tail::identity::ReadAt;
use logferry_tail::{Discovery, FileId, Fingerprint, GenerationId, LineFramer, LongLinePolicy};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Attribution, Brokers, InputSettings, ShipSettings};
use crate::wire::{Format, RecordSource};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0:?} does not exist")]
    NoTopic(String),
    #[error("timed out after {0:?} reading the topic to its end (read {1} records)")]
    Timeout(Duration, u64),
    #[error(transparent)]
    Losses(#[from] logferry_tail::CheckpointError),
    #[error("the configuration ships to the embedded broker, which only exists inside `logferry ship`: nothing to read back")]
    Embedded,
    #[error(transparent)]
    Glob(#[from] logferry_tail::DiscoveryError),
}

#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub brokers: String,
    pub topic: String,
    /// The source files to audit (their current identity is what is looked
    /// up in the topic).
    pub files: Vec<PathBuf>,
    /// Only records from this host are considered.
    pub host: String,
    /// How lines were encoded, to compare content.
    pub format: Format,
    pub max_line_bytes: usize,
    pub long_lines: LongLinePolicy,
    /// Whether a `\r` before the newline was stripped when shipping.
    pub strip_cr: bool,
    /// Bound on reading the topic to its end.
    pub timeout: Duration,
    /// Extra librdkafka properties (TLS, SASL).
    pub kafka_props: Vec<(String, String)>,
    /// The agent's checkpoint directory, whose loss record is reported.
    pub checkpoint_dir: Option<PathBuf>,
}

/// The audit of one file.
#[derive(Debug, Clone, Default)]
pub struct FileAudit {
    pub path: PathBuf,
    pub id: Option<FileId>,
    /// The generation whose records hold this file's lines (none when no
    /// line of it is in the topic).
    pub generation: Option<GenerationId>,
    /// Complete lines in the file.
    pub lines: u64,
    /// Lines with no record in the topic.
    pub missing: u64,
    /// File offsets of the first missing lines (at most 10), for the report.
    pub first_missing: Vec<u64>,
    /// Extra copies beyond the first (a line shipped 3 times counts 2).
    pub duplicates: u64,
    /// First copies that came after a later line in the same partition.
    pub out_of_order: u64,
    /// Records at a line's offset whose content differs from the file.
    pub mismatched: u64,
    /// Records for this identity at offsets where no line starts now
    /// (content replaced by truncation).
    pub unmatched: u64,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub files: Vec<FileAudit>,
    pub records: u64,
    /// Records without a readable source in the key or the `lf` header
    /// (shipped with `--attribution off`, or by another producer).
    pub without_source: u64,
    /// Of those, records whose attribution is there but does not decode
    /// (see [`RecordSource`]).
    pub corrupt: u64,
    /// Records from other hosts or other files.
    pub other_sources: u64,
    /// Files of this host that vanished before the agent read them to the
    /// end (from its checkpoint directory).
    pub losses: Vec<logferry_tail::Loss>,
}

impl VerifyReport {
    /// No line lost and no content changed.
    pub fn ok(&self) -> bool {
        self.losses.is_empty()
            && self
                .files
                .iter()
                .all(|f| f.missing == 0 && f.mismatched == 0)
    }

    pub fn missing(&self) -> u64 {
        self.files.iter().map(|f| f.missing).sum()
    }

    pub fn duplicates(&self) -> u64 {
        self.files.iter().map(|f| f.duplicates).sum()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} records ({} without source attribution, {} from other sources)",
            self.records, self.without_source, self.other_sources
        )?;
        if self.corrupt > 0 {
            write!(
                f,
                "; {} of those without carry an attribution that does not decode",
                self.corrupt
            )?;
        }
        writeln!(f)?;
        for a in &self.files {
            let id = match (a.generation, a.id) {
                (Some(g), _) => format!("generation {g}"),
                (None, Some(i)) => i.to_string(),
                (None, None) => "-".into(),
            };
            writeln!(
                f,
                "{} [{id}]: {} lines, {} missing, {} duplicated, {} out of order, {} mismatched, {} unmatched",
                a.path.display(),
                a.lines,
                a.missing,
                a.duplicates,
                a.out_of_order,
                a.mismatched,
                a.unmatched
            )?;
            if !a.first_missing.is_empty() {
                writeln!(f, "  first missing line offsets: {:?}", a.first_missing)?;
            }
        }
        for l in &self.losses {
            if l.unknown_size {
                writeln!(
                    f,
                    "{} [generation {}]: vanished while logferry was not reading it: lines written after offset {} (how many is not known) lost",
                    l.path, l.generation, l.offset
                )?;
            } else {
                writeln!(
                    f,
                    "{} [generation {}]: vanished before it was read to the end: {} bytes from offset {} lost",
                    l.path, l.generation, l.bytes, l.offset
                )?;
            }
        }
        write!(
            f,
            "{}",
            if self.ok() {
                "OK: no line missing"
            } else {
                "FAILED: lines missing or changed"
            }
        )
    }
}

/// Which file life a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lineage {
    Generation(GenerationId),
    /// Records shipped before generations existed.
    Inode(FileId),
}

/// One record (or one line of a pack) as seen by the audit.
#[derive(Clone, Copy)]
struct Seen {
    partition: i32,
    kafka_offset: i64,
    hash: u64,
}

pub fn verify(settings: &VerifySettings) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    if let Some(dir) = &settings.checkpoint_dir {
        report.losses = logferry_tail::Checkpointer::losses(dir)?
            .into_iter()
            .filter(|l| l.host == settings.host)
            .collect();
    }
    let index = read_topic(settings, &mut report)?;
    let mut used = std::collections::HashSet::new();
    for path in &settings.files {
        let (audit, lineage) = audit_file(settings, path, &index)?;
        used.extend(lineage);
        report.files.push(audit);
    }
    report.other_sources += index
        .records
        .iter()
        .filter(|((l, _), _)| !used.contains(l))
        .map(|(_, v)| v.len() as u64)
        .sum::<u64>();
    Ok(report)
}

/// The topic's records by line, and which lineages hold which content at
/// which offset (to tell which generation a file on disk is).
#[derive(Default)]
struct LineIndex {
    records: HashMap<(Lineage, u64), Vec<Seen>>,
    by_content: HashMap<(u64, u64), Vec<Lineage>>,
}

impl LineIndex {
    /// The line of `lineage` at `offset` was seen (its first copy also
    /// says by content which lineage it is).
    fn note(&mut self, lineage: Lineage, offset: u64, seen: Seen) {
        let copies = self.records.entry((lineage, offset)).or_default();
        if copies.is_empty() {
            self.by_content
                .entry((offset, seen.hash))
                .or_default()
                .push(lineage);
        }
        copies.push(seen);
    }
}

fn read_topic(s: &VerifySettings, report: &mut VerifyReport) -> Result<LineIndex, VerifyError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.brokers)
        .set("group.id", "logferry-verify")
        .set("enable.auto.commit", "false")
        // As read_committed consumers see the topic (librdkafka's default,
        // said here because exactly_once depends on it);
        // --read-uncommitted overrides it.
        .set("isolation.level", "read_committed");
    for (k, v) in &s.kafka_props {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create()?;
    let md = consumer.fetch_metadata(Some(&s.topic), Duration::from_secs(10))?;
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == s.topic && t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| VerifyError::NoTopic(s.topic.clone()))?;
    // Read each partition up to its high watermark as of now.
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in topic.partitions() {
        let (lo, hi) = consumer.fetch_watermarks(&s.topic, p.id(), Duration::from_secs(10))?;
        if hi > lo {
            ends.insert(p.id(), hi);
            tpl.add_partition_offset(&s.topic, p.id(), Offset::Beginning)?;
        }
    }
    let mut index = LineIndex::default();
    if ends.is_empty() {
        return Ok(index);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + s.timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(VerifyError::Timeout(s.timeout, report.records));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = msg?;
        let (partition, offset) = (m.partition(), m.offset());
        if ends.get(&partition).is_some_and(|&hi| offset >= hi - 1) {
            ends.remove(&partition);
        }
        report.records += 1;
        let src = match RecordSource::of_message(&m) {
            RecordSource::Attributed(src) => src,
            RecordSource::Unattributed => {
                report.without_source += 1;
                continue;
            }
            RecordSource::Corrupt(_) => {
                report.without_source += 1;
                report.corrupt += 1;
                continue;
            }
        };
        if src.host != s.host {
            report.other_sources += 1;
            continue;
        }
        let payload = m.payload().unwrap_or_default();
        let lineage = match src.generation {
            Some(g) => Lineage::Generation(g),
            None => Lineage::Inode(src.id),
        };
        let at = Seen {
            partition,
            kafka_offset: offset,
            hash: 0,
        };
        if src.packed {
            // Several whole lines (`pack_bytes`, raw format): each is
            // audited at its own offset.
            let mut line_at = src.offset;
            for line in payload.split(|&b| b == b'\n') {
                let hash = Fingerprint::of_bytes(line).hash;
                index.note(lineage, line_at, Seen { hash, ..at });
                line_at += line.len() as u64 + 1;
            }
            continue;
        }
        // Compare the line inside the record, whatever its format; a value
        // that is not of the format cannot match (hash of nothing sensible).
        let hash = match s.format.line_of(payload) {
            Some(line) => Fingerprint::of_bytes(&line).hash,
            None => !Fingerprint::of_bytes(payload).hash,
        };
        index.note(lineage, src.offset, Seen { hash, ..at });
    }
    Ok(index)
}

/// A file to audit: plain, or read through its decompressed content.
enum Audited {
    Plain(File),
    Gz(Box<Decompressed>),
}

impl Audited {
    fn read(&mut self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        match self {
            Audited::Plain(f) => f.read(buf),
            Audited::Gz(g) => g.read_at(buf, pos),
        }
    }
}

/// The lineage holding most of `lines` (start offset, content hash) at
/// their offsets; a lineage read from the file's own inode wins ties.
fn lineage_of(lines: &[(u64, u64)], index: &LineIndex, id: FileId) -> Option<Lineage> {
    let mut votes: HashMap<Lineage, u64> = HashMap::new();
    for key in lines {
        for l in index.by_content.get(key).into_iter().flatten() {
            *votes.entry(*l).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|(l, n)| (*n, *l == Lineage::Inode(id)))
        .map(|(l, _)| l)
}

fn audit_file(
    s: &VerifySettings,
    path: &Path,
    index: &LineIndex,
) -> Result<(FileAudit, Option<Lineage>), VerifyError> {
    let io_err = |source| VerifyError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let id = FileId::of(&file.metadata().map_err(io_err)?);
    let mut body = if is_readable_compressed(path) {
        Audited::Gz(Box::new(Decompressed::open(path).map_err(io_err)?))
    } else {
        Audited::Plain(file)
    };
    let mut audit = FileAudit {
        path: path.to_path_buf(),
        id: Some(id),
        ..FileAudit::default()
    };
    let mut framer = LineFramer::new(0, s.max_line_bytes, s.long_lines, s.strip_cr);
    let mut buf = vec![0u8; 1 << 20];
    // (start offset, content hash) of every line.
    let mut lines: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    loop {
        let n = body.read(&mut buf, pos).map_err(io_err)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        framer.push(&buf[..n], |line| {
            lines.push((line.start, Fingerprint::of_bytes(line.bytes).hash));
        });
    }
    let lineage = lineage_of(&lines, index, id);
    if let Some(Lineage::Generation(g)) = lineage {
        audit.generation = Some(g);
    }
    // (partition, Kafka offset, line offset) of each line's first copy.
    let mut placed: Vec<(i32, i64, u64)> = Vec::new();
    let mut starts = std::collections::HashSet::new();
    for &(start, want) in &lines {
        audit.lines += 1;
        starts.insert(start);
        match lineage.and_then(|l| index.records.get(&(l, start))) {
            None => {
                audit.missing += 1;
                if audit.first_missing.len() < 10 {
                    audit.first_missing.push(start);
                }
            }
            Some(seen) => {
                audit.duplicates += seen.len() as u64 - 1;
                if seen[0].hash != want {
                    audit.mismatched += 1;
                }
                let first = seen
                    .iter()
                    .min_by_key(|x| x.kafka_offset)
                    .expect("non-empty");
                placed.push((first.partition, first.kafka_offset, start));
            }
        }
    }
    // In Kafka order within each partition, a file's lines must ascend.
    placed.sort_unstable();
    let mut prev: Option<(i32, u64)> = None;
    for (partition, _, start) in placed {
        if let Some((p, high)) = prev {
            if p == partition && start < high {
                audit.out_of_order += 1;
                continue;
            }
        }
        prev = Some((partition, start));
    }
    audit.unmatched = index
        .records
        .iter()
        .filter(|((l, off), _)| Some(*l) == lineage && !starts.contains(off))
        .map(|(_, v)| v.len() as u64)
        .sum();
    Ok((audit, lineage))
}

// ---------------------------------------------------------------------------
// A configuration file: one audit per input and topic
// ---------------------------------------------------------------------------

/// Compressed suffixes logrotate may give a rotation that verify cannot
/// read (it reads [`logferry_tail::compressed::READABLE_SUFFIXES`]): such
/// files are left out of an audit, not compared byte for byte.
const UNREADABLE_COMPRESSED: &[&str] = &["zip", "lz4", "Z"];

/// One audit of a configuration file: files of one input against the topic
/// their lines went to.
#[derive(Debug, Clone)]
pub struct InputAudit {
    /// 1-based, as `check` numbers inputs.
    pub input: usize,
    pub settings: VerifySettings,
}

/// What `verify -c` audits, and what it cannot.
#[derive(Debug, Clone, Default)]
pub struct ConfigPlan {
    pub audits: Vec<InputAudit>,
    /// One line per input (or part of one) left out, saying why.
    pub notes: Vec<String>,
}

/// Plan the audit of every input of `ship`: each input's files (those its
/// include globs match now, and their rotated names `PATTERN.*` and
/// `PATTERN-*`, readable compressed ones included), grouped by the topic
/// each was shipped to (a template rendered for the file's current name), with
/// the input's format, long-line policy and line bound and the file's
/// host. Losses from `checkpoint_dir` are reported by the first audit.
pub fn plan_config(
    ship: &ShipSettings,
    timeout: Duration,
    checkpoint_dir: Option<PathBuf>,
) -> Result<ConfigPlan, VerifyError> {
    let Brokers::List(brokers) = &ship.brokers else {
        return Err(VerifyError::Embedded);
    };
    let mut plan = ConfigPlan::default();
    if ship.attribution == Attribution::Off {
        plan.notes.push(
            "attribution = \"off\": records carry no source attribution, nothing can be audited"
                .into(),
        );
        return Ok(plan);
    }
    for (i, input) in ship.inputs.iter().enumerate() {
        let n = i + 1;
        if input.multiline.is_some() {
            // A record joins several lines; verify compares line by line.
            plan.notes.push(format!(
                "input #{n}: multiline records cannot be audited line by line; skipped"
            ));
            continue;
        }
        let mut by_topic: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (file, name) in input_files(input)? {
            if has_suffix(&file, UNREADABLE_COMPRESSED) {
                plan.notes.push(format!(
                    "input #{n}: {}: compressed in a format verify cannot read; skipped",
                    file.display()
                ));
                continue;
            }
            by_topic
                .entry(input.topic_for(&ship.host, &name))
                .or_default()
                .push(file);
        }
        if by_topic.is_empty() {
            plan.notes.push(format!(
                "input #{n}: no file matches {}; nothing to audit",
                input.include.join(", ")
            ));
        }
        for (topic, files) in by_topic {
            plan.audits.push(InputAudit {
                input: n,
                settings: VerifySettings {
                    brokers: brokers.clone(),
                    topic,
                    files,
                    host: ship.host.clone(),
                    format: input.format.clone(),
                    max_line_bytes: input.max_line_bytes,
                    long_lines: input.long_lines,
                    strip_cr: input.strip_cr,
                    timeout,
                    kafka_props: ship.kafka_props.clone(),
                    checkpoint_dir: None,
                },
            });
        }
    }
    if let Some(first) = plan.audits.first_mut() {
        first.settings.checkpoint_dir = checkpoint_dir;
    }
    Ok(plan)
}

fn has_suffix(path: &Path, suffixes: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| suffixes.contains(&e))
}

/// An input's files, each with the name it was shipped under: its own for
/// a current file; for a rotated one, the longest name before a `.` or `-`
/// that the include globs match (`app.log` for `app.log.2.gz`).
fn input_files(input: &InputSettings) -> Result<Vec<(PathBuf, PathBuf)>, VerifyError> {
    let rotated_names = |patterns: &[String]| -> Vec<String> {
        patterns
            .iter()
            .flat_map(|p| [format!("{p}.*"), format!("{p}-*")])
            .collect()
    };
    let discovery = |include: &[String], exclude: &[String]| {
        Discovery::new(include, exclude).map_err(VerifyError::Glob)
    };
    let mut current = discovery(&input.include, &input.exclude)?;
    // Exclude means exclude: an excluded file's rotated names too.
    let mut excluded = input.exclude.clone();
    excluded.extend(rotated_names(&input.exclude));
    let mut rotated = discovery(&rotated_names(&input.include), &excluded)?;
    let mut out: Vec<(PathBuf, PathBuf)> = current
        .scan()
        .into_iter()
        .map(|f| (f.path.clone(), f.path))
        .collect();
    let seen: std::collections::HashSet<PathBuf> = out.iter().map(|(p, _)| p.clone()).collect();
    for f in rotated.scan() {
        if seen.contains(&f.path) {
            continue;
        }
        let text = f.path.to_string_lossy().into_owned();
        let name = text
            .char_indices()
            .rev()
            .filter(|&(i, c)| (c == '.' || c == '-') && i > 0)
            .map(|(i, _)| PathBuf::from(&text[..i]))
            .find(|p| current.matches(p))
            .unwrap_or_else(|| f.path.clone());
        out.push((f.path, name));
    }
    out.sort();
    Ok(out)
}
