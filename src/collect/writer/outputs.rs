//! The writer's open outputs, by generation key, with the output of the
//! last run remembered.
//!
//! Lines of one generation arrive in runs (a partition carries one file's
//! lines in order), and the caller numbers each run (see
//! `record::LastKey`): one number is only ever given with one key. The
//! first line of a run finds its output by hashing the key; the rest of
//! the run finds it by comparing the run number with the remembered one.
//!
//! Outputs live in slots that never move while they are open: opening
//! one appends a slot, and only closing (`clear`, `retain`) moves or
//! drops slots, which forgets the remembered run. So the output found by
//! run is always the one the key lookup would find.

use crate::collect::index::GenKey;

pub(super) struct Outputs<T> {
    slot_of: foldhash::HashMap<GenKey, usize>,
    slots: Vec<(GenKey, T)>,
    /// The last run looked up by number and the slot of its output.
    last: Option<(u64, usize)>,
}

impl<T> Default for Outputs<T> {
    fn default() -> Self {
        Outputs {
            slot_of: Default::default(),
            slots: Vec::new(),
            last: None,
        }
    }
}

impl<T> Outputs<T> {
    pub(super) fn get(&self, key: &GenKey) -> Option<&T> {
        self.slot_of.get(key).map(|&s| &self.slots[s].1)
    }

    /// The output of `key`, whose line belongs to run `run` (None: a line
    /// outside any run, looked up by key and remembered for no run).
    pub(super) fn get_mut(&mut self, key: &GenKey, run: Option<u64>) -> Option<&mut T> {
        let slot = match (run, self.last) {
            (Some(r), Some((last, slot))) if r == last => {
                debug_assert!(self.slots[slot].0 == *key, "run {r} given with two keys");
                slot
            }
            _ => {
                let slot = *self.slot_of.get(key)?;
                if let Some(r) = run {
                    self.last = Some((r, slot));
                }
                slot
            }
        };
        Some(&mut self.slots[slot].1)
    }

    /// Open `key`'s output (replacing one already open under it).
    pub(super) fn insert(&mut self, key: GenKey, out: T) {
        match self.slot_of.get(&key) {
            Some(&s) => self.slots[s].1 = out,
            None => {
                self.slot_of.insert(key.clone(), self.slots.len());
                self.slots.push((key, out));
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&GenKey, &T)> {
        self.slots.iter().map(|(k, o)| (k, o))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&GenKey, &mut T)> {
        self.slots.iter_mut().map(|(k, o)| (&*k, o))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|(_, o)| o)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().map(|(_, o)| o)
    }

    /// Close every output.
    pub(super) fn clear(&mut self) {
        self.slot_of.clear();
        self.slots.clear();
        self.last = None;
    }

    /// Keep only the outputs `keep` says yes to. Slots move: the
    /// remembered run is forgotten.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&GenKey, &T) -> bool) {
        let before = self.slots.len();
        self.slots.retain(|(k, o)| keep(k, o));
        if self.slots.len() == before {
            return;
        }
        self.last = None;
        self.slot_of.clear();
        for (i, (k, _)) in self.slots.iter().enumerate() {
            self.slot_of.insert(k.clone(), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: u64) -> GenKey {
        GenKey::test_generation(g)
    }

    #[test]
    fn a_run_finds_its_own_output_after_others_open_and_close() {
        let mut o = Outputs::default();
        o.insert(key(1), "a");
        o.insert(key(2), "b");
        assert_eq!(o.get_mut(&key(2), Some(7)), Some(&mut "b"));
        o.insert(key(3), "c");
        assert_eq!(o.get_mut(&key(2), Some(7)), Some(&mut "b"));
        // Closing 1 moves 2 and 3 down a slot: run 7 must not find slot 1
        // (now 3's).
        o.retain(|k, _| *k != key(1));
        assert_eq!(o.get_mut(&key(2), Some(7)), Some(&mut "b"));
        assert_eq!(o.get_mut(&key(3), Some(8)), Some(&mut "c"));
        o.clear();
        assert_eq!(o.get_mut(&key(3), Some(8)), None);
        o.insert(key(1), "a2");
        assert_eq!(o.get_mut(&key(1), Some(8 + 1)), Some(&mut "a2"));
        // A lookup outside a run leaves the remembered run alone.
        o.insert(key(4), "d");
        assert_eq!(o.get_mut(&key(4), None), Some(&mut "d"));
        assert_eq!(o.get_mut(&key(1), Some(9)), Some(&mut "a2"));
        assert_eq!(o.get(&key(4)), Some(&"d"));
        assert_eq!(o.len(), 2);
    }
}
