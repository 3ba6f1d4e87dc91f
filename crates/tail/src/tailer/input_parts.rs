//! What the Tailer builds for one input from its settings: the listings
//! of its current, rotated and compressed names, its own `rotated` globs,
//! and its line framer (at start, and for inputs added by a reload).

use super::rotated_globs::RotatedGlobs;
use super::{TailInput, TailerError};
use crate::discover::Discovery;
use crate::frame::LineFramer;

/// Suffixes of rotated files that are compressed: never read as text; the
/// readable ones ([`crate::compressed`]) are searched for generations with
/// unread bytes.
const COMPRESSED: &[&str] = &["gz", "bz2", "xz", "zst", "zip", "lz4", "Z"];

fn rotated_names(patterns: &[String]) -> Vec<String> {
    patterns
        .iter()
        .flat_map(|p| [format!("{p}.*"), format!("{p}-*")])
        .collect()
}

/// What the Tailer builds for one input: its three listings and framer.
pub(crate) struct InputParts {
    pub(super) current: Discovery,
    pub(super) rotated: RotatedGlobs,
    pub(super) compressed: Discovery,
    pub(super) own_rotated: Option<RotatedGlobs>,
    pub(super) framer: LineFramer,
}

impl InputParts {
    /// `i`: the input's index, named in errors.
    pub(crate) fn build(i: usize, input: &TailInput) -> Result<Self, TailerError> {
        let err = |source| TailerError::Discovery { input: i, source };
        let current = Discovery::new(&input.include, &input.exclude).map_err(err)?;
        // Exclude means exclude: an excluded file's rotated names are
        // excluded too.
        let mut excluded = input.exclude.clone();
        excluded.extend(rotated_names(&input.exclude));
        let mut rotated_exclude = excluded.clone();
        for p in &input.include {
            rotated_exclude.extend(COMPRESSED.iter().map(|c| format!("{p}*.{c}")));
        }
        let rotated = RotatedGlobs::siblings(&rotated_names(&input.include), &rotated_exclude)
            .map_err(err)?;
        let compressed_include: Vec<String> = rotated_names(&input.include)
            .iter()
            .flat_map(|p| {
                crate::compressed::READABLE_SUFFIXES
                    .iter()
                    .map(move |c| format!("{p}.{c}"))
            })
            .collect();
        let compressed = Discovery::new(&compressed_include, &excluded).map_err(err)?;
        let own_rotated = RotatedGlobs::new(&input.rotated, &excluded).map_err(err)?;
        // A multiline joiner takes lines one at a time: packs are for the
        // inputs without one.
        let pack = match input.multiline {
            Some(_) => 0,
            None => input.pack_bytes,
        };
        let framer = LineFramer::new(0, input.max_line_bytes, input.long_lines, input.strip_cr)
            .packing(pack);
        Ok(InputParts {
            current,
            rotated,
            compressed,
            own_rotated,
            framer,
        })
    }
}
