//! `logferry collect status`: what the collectors sharing an output
//! directory have written, per source generation: its output file,
//! "complete up to byte N", and every open hole with its byte range and
//! age. A hole older than the gap timeout is a gap, and makes the command
//! fail: this is how a user proves that nothing was lost between the
//! servers and the archive.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::completeness::Hole;
use super::custody::CustodyState;
use super::index::{Archived, IndexError, Store};

#[derive(Debug, Clone, Serialize)]
pub struct GenerationStatus {
    pub host: String,
    pub generation: String,
    pub source_path: String,
    /// Relative to OUT.
    pub output: String,
    pub complete_up_to: u64,
    /// End of the last byte written.
    pub written_up_to: u64,
    pub holes: Vec<Hole>,
    /// Holes older than the gap timeout.
    pub gaps: usize,
    pub live: bool,
    pub archived: Option<Archived>,
    pub last_write: u64,
    /// Custody of a generation kept in one partition (see
    /// `collect::custody`): `writing`, `rebuilding`, `held`,
    /// `handed_over`, `unfinished`, or `interrupted` (writing or
    /// rebuilding when no collector runs on OUT); None when not tracked.
    pub custody: Option<String>,
    /// Whether this output holds the generation whole: every record of
    /// it through the partition offset this OUT consumed (`writing`) or
    /// let the partition go at (`held`), with a collector running on OUT
    /// to mark the copy `handed_over` when another member continues it.
    /// A copy that is not whole may be partial. None when not tracked.
    pub whole: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnattributedStatus {
    /// `TOPIC/PARTITION`.
    pub partition: String,
    pub next_offset: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub out: String,
    pub gap_timeout_secs: u64,
    pub generations: Vec<GenerationStatus>,
    pub unattributed: Vec<UnattributedStatus>,
    pub gaps: usize,
    /// Whether a collector runs on OUT now.
    pub running: bool,
}

/// Read the index of `out`; `gap_timeout` overrides the collectors' own.
pub fn status(out: &Path, gap_timeout: Option<Duration>) -> Result<StatusReport, IndexError> {
    let index = Store::read(out)?;
    let timeout = gap_timeout.map_or(index.gap_timeout_secs, |d| d.as_secs());
    let now = super::now_secs();
    let running = Store::is_running(out);
    let generations: Vec<GenerationStatus> = index
        .generations
        .values()
        .map(|e| {
            let holes = if e.archived == Some(Archived::Deleted) {
                Vec::new()
            } else {
                e.completeness.holes(now)
            };
            GenerationStatus {
                host: e.host.clone(),
                generation: e.generation.clone(),
                source_path: e.source_path.clone(),
                output: e.output.clone(),
                complete_up_to: e.completeness.complete_up_to(),
                written_up_to: e.completeness.end(),
                gaps: holes.iter().filter(|h| h.age_secs >= timeout).count(),
                holes,
                live: !e.is_closed(),
                archived: e.archived,
                last_write: e.last_write,
                custody: e.custody.as_ref().map(|c| {
                    match (&c.state, running) {
                        (CustodyState::Writing | CustodyState::Rebuilding, false) => "interrupted",
                        (s, _) => s.name(),
                    }
                    .to_string()
                }),
                whole: e
                    .custody
                    .as_ref()
                    .map(|c| running && c.state.whole() && e.archived != Some(Archived::Deleted)),
            }
        })
        .collect();
    Ok(StatusReport {
        out: out.display().to_string(),
        gap_timeout_secs: timeout,
        gaps: generations.iter().map(|g| g.gaps).sum(),
        generations,
        running,
        unattributed: index
            .unattributed
            .iter()
            .map(|(k, p)| UnattributedStatus {
                partition: k.clone(),
                next_offset: p.next_offset,
                bytes: p.len,
            })
            .collect(),
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for g in &self.generations {
            let state = match (g.archived, g.live) {
                (Some(Archived::Compressed), _) => "compressed",
                (Some(Archived::Deleted), _) => "deleted by retention",
                (None, true) => "live",
                (None, false) => "closed",
            };
            let custody = match (&g.custody, g.whole) {
                (Some(c), Some(true)) => format!(", {c}: whole"),
                (Some(c), _) => format!(", {c}: may be partial"),
                (None, _) => String::new(),
            };
            writeln!(
                f,
                "{} [{} generation {}] -> {} ({state}{custody}): complete up to byte {}, written up to {}",
                g.source_path, g.host, g.generation, g.output, g.complete_up_to, g.written_up_to
            )?;
            for h in &g.holes {
                let what = if h.age_secs >= self.gap_timeout_secs {
                    "GAP"
                } else {
                    "hole"
                };
                writeln!(
                    f,
                    "  {what}: bytes {}..{} missing for {} s",
                    h.start, h.end, h.age_secs
                )?;
            }
        }
        for u in &self.unattributed {
            writeln!(
                f,
                "_unattributed {}: {} bytes, next offset {}",
                u.partition, u.bytes, u.next_offset
            )?;
        }
        if self.gaps == 0 {
            write!(
                f,
                "OK: {} generations, no hole open longer than {} s",
                self.generations.len(),
                self.gap_timeout_secs
            )
        } else {
            write!(
                f,
                "FAILED: {} gaps (holes open longer than {} s)",
                self.gaps, self.gap_timeout_secs
            )
        }
    }
}
