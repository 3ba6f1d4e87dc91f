//! An input's own rotated names (its `rotated` globs): where writers put
//! rotated files under names `PATTERN.*` and `PATTERN-*` do not reach
//! (log4j2's `filePattern` in another directory, multilog's `@4000...s`,
//! a date before the extension). A name says nothing about compression
//! there, so each file's first bytes decide whether it is read as text or
//! through a decoder.

use std::collections::HashMap;
use std::path::Path;

use crate::compressed::Content;
use crate::discover::{Discovery, DiscoveryError, Found};
use crate::follow::open_log;
use crate::identity::FileId;

/// What one listing of the `rotated` globs found, by content.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) plain: Vec<Found>,
    pub(crate) compressed: Vec<Found>,
}

#[derive(Debug)]
pub(crate) struct RotatedGlobs {
    discovery: Discovery,
    /// Content verdicts by identity: a file's first bytes do not change
    /// while it keeps its inode and has at least a signature's worth, so
    /// each file is opened once, not on every scan.
    content: HashMap<FileId, bool>,
    /// A file whose content is not decided yet (empty: `cp` creates a
    /// copy empty, then fills it) is listed as plain, as rotated names
    /// always were: copytruncate's copies are recognised while written.
    undecided_plain: bool,
}

impl RotatedGlobs {
    /// An input's `rotated` globs; None without any. Undecided files wait.
    pub(crate) fn new(
        globs: &[String],
        exclude: &[String],
    ) -> Result<Option<RotatedGlobs>, DiscoveryError> {
        if globs.is_empty() {
            return Ok(None);
        }
        Ok(Some(RotatedGlobs {
            discovery: Discovery::new(globs, exclude)?,
            content: HashMap::new(),
            undecided_plain: false,
        }))
    }

    /// The rotated names every input has (`PATTERN.*`, `PATTERN-*`, minus
    /// names that say compressed): a name that says nothing is judged by
    /// content (a `compresscmd` without `compressext`), and an undecided
    /// file is plain.
    pub(crate) fn siblings(
        globs: &[String],
        exclude: &[String],
    ) -> Result<RotatedGlobs, DiscoveryError> {
        Ok(RotatedGlobs {
            discovery: Discovery::new(globs, exclude)?,
            content: HashMap::new(),
            undecided_plain: true,
        })
    }

    /// Whether `path` is one of these names.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.discovery.matches(path)
    }

    /// Directories to watch for files appearing under these names.
    pub(crate) fn watch_dirs(&self) -> Vec<(std::path::PathBuf, bool)> {
        self.discovery.watch_dirs()
    }

    /// Every file these globs match now, split by content; files whose
    /// content is not decided yet (empty, or a compressor's first bytes)
    /// are left for a later listing.
    pub(crate) fn list(&mut self, current: &Discovery) -> Listing {
        let mut out = Listing::default();
        let found = self.discovery.scan();
        let ids: std::collections::HashSet<FileId> = found.iter().map(|f| f.id).collect();
        self.content.retain(|id, _| ids.contains(id));
        for f in found {
            // A name the include globs match is a current file.
            if current.matches(&f.path) {
                continue;
            }
            let compressed = match self.content.get(&f.id) {
                Some(&c) => c,
                None => match decide(&f.path) {
                    Some(c) => {
                        if f.meta.len() >= crate::compressed::MAGIC_LEN as u64 {
                            self.content.insert(f.id, c);
                        }
                        c
                    }
                    None if self.undecided_plain => false,
                    None => continue,
                },
            };
            if compressed {
                out.compressed.push(f);
            } else {
                out.plain.push(f);
            }
        }
        out
    }
}

impl super::Tailer {
    /// A generation of an input without `rotated` globs was lost from its
    /// current name: its writer may rotate to names logferry does not
    /// watch, and then the generations born while logferry was stopped
    /// went there too, unseen and unreported. Said once per input.
    pub(super) fn warn_unwatched_rotation(&mut self, cp: &crate::checkpoint::FileCheckpoint) {
        let path = std::path::Path::new(&cp.path);
        for (input, settings) in self.settings.inputs.iter().enumerate() {
            if settings.rotated.is_empty()
                && self.discoveries[input].matches(path)
                && self.rotation_warned.insert(input)
            {
                tracing::warn!(path = %cp.path, include = ?settings.include, "a file followed under this input's name vanished without being found under its rotated names (PATTERN.* and PATTERN-*): if its writer rotates to other names (another directory, another form), files rotated while logferry was stopped went there and were neither shipped nor counted; list where they go in this input's `rotated` setting (globs; compressed or not)");
            }
        }
    }
}

/// Whether the file at `path` is compressed; None while undecided or
/// unreadable (an open failure is reported when it is opened to be read).
fn decide(path: &Path) -> Option<bool> {
    let file = open_log(path).ok()?;
    match Content::of(&file).ok()? {
        Content::Compressed(_) => Some(true),
        Content::Plain => Some(false),
        Content::Undecided => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(found: &[Found]) -> Vec<String> {
        let mut v: Vec<String> = found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn content_not_name_says_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs_write(&d.join("app-1.log"), b"plain line\n");
        // gzip under a name that says nothing, and text under `.gz`.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"compressed line\n").unwrap();
        fs_write(&d.join("app-2.log"), &gz.finish().unwrap());
        fs_write(&d.join("app-3.log.gz"), b"text after all\n");
        // Empty: undecided, left for a later listing.
        fs_write(&d.join("app-4.log"), b"");
        // The current file is never a rotated one.
        fs_write(&d.join("app-current"), b"x\n");
        let current = Discovery::new(&[format!("{}/app-current", d.display())], &[]).unwrap();
        let mut globs = RotatedGlobs::new(&[format!("{}/app-*", d.display())], &[])
            .unwrap()
            .unwrap();
        let listing = globs.list(&current);
        assert_eq!(names(&listing.plain), ["app-1.log", "app-3.log.gz"]);
        assert_eq!(names(&listing.compressed), ["app-2.log"]);
        assert!(RotatedGlobs::new(&[], &[]).unwrap().is_none());
    }

    fn fs_write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }
}
