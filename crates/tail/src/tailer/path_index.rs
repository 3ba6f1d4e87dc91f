//! Which stream a notified path belongs to. Every write to a followed file
//! arrives as an event naming its path, so this lookup runs for each one
//! (20,000 a second with 10,000 files written twice a second). A `Path`
//! hashes by parsing its components; here only the file name's bytes are
//! hashed (paths that are equal have equal names, so lookups stay exact)
//! and equality is still the `Path`'s own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(PathBuf);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.file_name().map(|n| n.as_encoded_bytes()).hash(state);
    }
}

#[derive(Debug, Default)]
pub(crate) struct PathIndex(HashMap<Key, usize>);

impl PathIndex {
    pub(crate) fn insert(&mut self, path: PathBuf, slot: usize) {
        self.0.insert(Key(path), slot);
    }

    /// The slot last registered under `path` (taken by value: events own
    /// their paths, so no copy is made).
    pub(crate) fn get(&self, path: PathBuf) -> Option<usize> {
        self.0.get(&Key(path)).copied()
    }

    /// Forget `path` if it still points at `slot` (a newer stream may have
    /// taken the name since).
    pub(crate) fn remove_if(&mut self, path: &Path, slot: usize) {
        let key = Key(path.to_path_buf());
        if self.0.get(&key) == Some(&slot) {
            self.0.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_paths_find_their_slot_and_same_names_in_other_dirs_do_not_mix() {
        let mut idx = PathIndex::default();
        idx.insert("/var/log/a/app.log".into(), 1);
        idx.insert("/var/log/b/app.log".into(), 2);
        assert_eq!(idx.get("/var/log/a/app.log".into()), Some(1));
        // Equal as paths, spelled differently.
        assert_eq!(idx.get("/var/log//b/app.log".into()), Some(2));
        assert_eq!(idx.get("/var/log/c/app.log".into()), None);
        idx.remove_if(Path::new("/var/log/a/app.log"), 7);
        assert_eq!(idx.get("/var/log/a/app.log".into()), Some(1));
        idx.remove_if(Path::new("/var/log/a/app.log"), 1);
        assert_eq!(idx.get("/var/log/a/app.log".into()), None);
    }
}
