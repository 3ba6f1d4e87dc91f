//! Changing the inputs of a running Tailer (a configuration reload):
//! inputs that stay keep their streams, open files and positions; inputs
//! removed let go of their files, whose positions rest in the ledger (kept
//! in the checkpoint, so the input added back resumes where it stopped);
//! inputs added are scanned at once.

use std::time::Instant;

use super::{now_unix, InputParts, TailCounters, TailSettings, Tailer, TailerError};

/// Why a reconfiguration was not done (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    #[error(transparent)]
    Input(#[from] TailerError),
    #[error("{lines} lines of removed inputs are not acknowledged yet")]
    InFlight { lines: usize },
    #[error("kept input {old} does not exist or is kept twice (there are {inputs} inputs)")]
    NoSuchInput { old: usize, inputs: usize },
    #[error("{kept} inputs mapped for {inputs} inputs")]
    Mismatch { kept: usize, inputs: usize },
}

impl Tailer {
    /// Follow `settings.inputs` from now on. `kept[i]` is, for the new
    /// input `i`, the index of the old input it is (unchanged), or None for
    /// an input added. Old inputs not named in `kept` are removed: none of
    /// their lines may be unacknowledged (stop reading and wait for the
    /// acks first), or nothing is changed. Returns the slots of the streams
    /// let go (the caller forgets their routes).
    pub fn reconfigure(
        &mut self,
        settings: TailSettings,
        kept: &[Option<usize>],
    ) -> Result<Vec<usize>, ReconfigureError> {
        let old_inputs = self.settings.inputs.len();
        if kept.len() != settings.inputs.len() {
            return Err(ReconfigureError::Mismatch {
                kept: kept.len(),
                inputs: settings.inputs.len(),
            });
        }
        let twice = |o: usize| kept.iter().filter(|k| **k == Some(o)).count() > 1;
        if let Some(&old) = kept
            .iter()
            .flatten()
            .find(|&&o| o >= old_inputs || twice(o))
        {
            return Err(ReconfigureError::NoSuchInput {
                old,
                inputs: old_inputs,
            });
        }
        let stays = |old: usize| kept.contains(&Some(old));
        let lines: usize = self
            .streams
            .iter()
            .flatten()
            .filter(|s| !stays(s.input))
            .map(|s| s.tracker.in_flight())
            .sum();
        if lines > 0 {
            return Err(ReconfigureError::InFlight { lines });
        }
        // Build every added input first: a bad glob changes nothing.
        let mut added = Vec::new();
        for (i, input) in settings.inputs.iter().enumerate() {
            if kept[i].is_none() {
                added.push((i, InputParts::build(i, input)?));
            }
        }
        let released = self.release_removed(&stays);
        // Kept inputs' parts move to their new index; streams follow.
        let mut old_parts: Vec<Option<InputParts>> = std::mem::take(&mut self.discoveries)
            .into_iter()
            .zip(std::mem::take(&mut self.rotated))
            .zip(std::mem::take(&mut self.compressed))
            .zip(std::mem::take(&mut self.own_rotated))
            .zip(std::mem::take(&mut self.framers))
            .map(
                |((((current, rotated), compressed), own_rotated), framer)| {
                    Some(InputParts {
                        current,
                        rotated,
                        compressed,
                        own_rotated,
                        framer,
                    })
                },
            )
            .collect();
        self.rotated_compressed.clear();
        let mut added = added.into_iter().peekable();
        let mut counters = Vec::with_capacity(kept.len());
        let mut watch_dirs = Vec::new();
        for (i, k) in kept.iter().enumerate() {
            let parts = match k {
                Some(old) => old_parts[*old].take().expect("each old input kept once"),
                None => {
                    let (at, parts) = added.next().expect("built above");
                    debug_assert_eq!(at, i);
                    watch_dirs.extend(parts.current.watch_dirs());
                    watch_dirs.extend(parts.own_rotated.iter().flat_map(|r| r.watch_dirs()));
                    parts
                }
            };
            self.discoveries.push(parts.current);
            self.rotated.push(parts.rotated);
            self.compressed.push(parts.compressed);
            self.own_rotated.push(parts.own_rotated);
            // Listed again at the next scan.
            self.rotated_compressed.push(Vec::new());
            self.framers.push(parts.framer);
            counters.push(k.map_or_else(TailCounters::default, |old| self.counters[old]));
        }
        debug_assert!(added.peek().is_none());
        for s in self.streams.iter_mut().flatten() {
            s.input = kept
                .iter()
                .position(|k| *k == Some(s.input))
                .expect("streams of removed inputs were released");
        }
        self.counters = counters;
        self.notices.watch(watch_dirs);
        self.settings = settings;
        // The added inputs' files are looked for at once.
        self.rescan = true;
        self.next_scan = Instant::now();
        self.absent_stale = true;
        self.ready_stale = true;
        Ok(released)
    }

    /// Resting generations whose file is still where it was last seen, a
    /// name no input follows (under its current, rotated or compressed
    /// names): nothing vanished, the file is merely not followed any more.
    /// (One moved away while logferry was down is still looked for.)
    pub(super) fn unfollowed_resting(&self) -> Vec<crate::identity::FileId> {
        self.ledger
            .entries()
            .into_iter()
            .filter(|cp| !cp.unfinished)
            .filter(|cp| {
                let path = std::path::Path::new(&cp.path);
                let followed = |d: &[crate::discover::Discovery]| d.iter().any(|d| d.matches(path));
                !(followed(&self.discoveries)
                    || self.rotated.iter().any(|r| r.matches(path))
                    || self.own_rotated.iter().flatten().any(|r| r.matches(path))
                    || followed(&self.compressed))
                    && cp.id.is_at(path)
            })
            .map(|cp| cp.id)
            .collect()
    }

    /// Close the streams of inputs that do not stay; their positions rest
    /// in the ledger (and so in the checkpoint).
    fn release_removed(&mut self, stays: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut released = Vec::new();
        for slot in 0..self.streams.len() {
            if !matches!(&self.streams[slot], Some(s) if !stays(s.input)) {
                continue;
            }
            let mut s = self.streams[slot].take().expect("checked above");
            s.refresh_anchor();
            s.widen_head();
            s.note_seen();
            s.park(&mut self.descriptors, &mut self.events);
            self.by_id.remove(&s.id);
            self.by_path.remove_if(std::path::Path::new(&*s.path), slot);
            self.free_slots.push(slot);
            released.push(slot);
            tracing::info!(path = %s.path, generation = %s.generation, offset = s.tracker.position(), "input removed: file no longer followed (its position is kept)");
            self.ledger.rest(s.checkpoint(now_unix()));
        }
        released
    }
}
