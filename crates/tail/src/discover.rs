//! Finding the files to follow: include globs minus exclude globs, expanded
//! by walking only the directories a pattern can reach. Symlinks are followed
//! (a symlinked log is a log), and callers dedupe by [`FileId`] so one target
//! reached through two names is read once.
//!
//! Errors on one path (permission denied, a directory that vanished) never
//! stop the scan; each distinct failure is logged once and retried on the
//! next scan.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::identity::FileId;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid glob {pattern:?}: {source}")]
    Glob {
        pattern: String,
        source: globset::Error,
    },
    #[error("glob {pattern:?} must be an absolute path")]
    Relative { pattern: String },
}

/// One file found by a scan.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub id: FileId,
    pub meta: Metadata,
}

#[derive(Debug)]
struct Root {
    /// The literal directory the pattern starts from.
    dir: PathBuf,
    /// How many components below `dir` the pattern can match (None: `**`).
    depth: Option<usize>,
}

#[derive(Debug)]
pub struct Discovery {
    roots: Vec<Root>,
    include: GlobSet,
    exclude: GlobSet,
    /// Failures already logged, so a permanently unreadable file is reported
    /// once and not on every scan.
    reported: HashSet<(PathBuf, io::ErrorKind)>,
}

fn glob(pattern: &str) -> Result<Glob, DiscoveryError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| DiscoveryError::Glob {
            pattern: pattern.to_string(),
            source,
        })
}

fn is_glob_component(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Discovery {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, DiscoveryError> {
        let mut inc = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for pattern in include {
            if !pattern.starts_with('/') {
                return Err(DiscoveryError::Relative {
                    pattern: pattern.clone(),
                });
            }
            inc.add(glob(pattern)?);
            let mut dir = PathBuf::from("/");
            let mut rest = Vec::new();
            for comp in Path::new(pattern).components() {
                if let Component::Normal(c) = comp {
                    let c = c.to_string_lossy();
                    if rest.is_empty() && !is_glob_component(&c) {
                        dir.push(&*c);
                    } else {
                        rest.push(c.into_owned());
                    }
                }
            }
            let depth = if rest.iter().any(|c| c.contains("**")) {
                None
            } else {
                Some(rest.len())
            };
            // A literal path: the file itself is the root, to be stat'ed.
            roots.push(Root { dir, depth });
        }
        let mut exc = GlobSetBuilder::new();
        for pattern in exclude {
            exc.add(glob(pattern)?);
        }
        let build = |b: GlobSetBuilder, pattern: &str| {
            b.build().map_err(|source| DiscoveryError::Glob {
                pattern: pattern.to_string(),
                source,
            })
        };
        Ok(Discovery {
            roots,
            include: build(inc, "include")?,
            exclude: build(exc, "exclude")?,
            reported: HashSet::new(),
        })
    }

    /// Directories whose changes can add, remove or grow a matching file,
    /// with whether their subdirectories matter too: what a file-system
    /// watcher should watch.
    pub fn watch_dirs(&self) -> Vec<(PathBuf, bool)> {
        self.roots
            .iter()
            .map(|r| match r.depth {
                // A literal path: its directory sees it created and renamed.
                Some(0) => (
                    r.dir.parent().unwrap_or(Path::new("/")).to_path_buf(),
                    false,
                ),
                Some(1) => (r.dir.clone(), false),
                _ => (r.dir.clone(), true),
            })
            .collect()
    }

    /// Whether `path` is one this discovery follows (included, not
    /// excluded).
    pub fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Every regular file that currently matches.
    pub fn scan(&mut self) -> Vec<Found> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..self.roots.len() {
            let dir = self.roots[i].dir.clone();
            let depth = self.roots[i].depth;
            self.walk(&dir, depth, &mut out, &mut seen);
        }
        out
    }

    fn walk(
        &mut self,
        path: &Path,
        depth: Option<usize>,
        out: &mut Vec<Found>,
        seen: &mut HashSet<PathBuf>,
    ) {
        if depth == Some(0) {
            self.consider(path, out, seen);
            return;
        }
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                self.report(path, &e);
                return;
            }
        };
        self.reported.retain(|(p, _)| p != path);
        for entry in entries.flatten() {
            let child = entry.path();
            // The entry's type comes with the directory listing on most
            // file systems: no stat per file just to learn it is not a
            // directory (with 10,000 files, scans were mostly stats). Only
            // a symlink, or a file system without types, needs a stat.
            let is_dir = || match entry.file_type() {
                Ok(t) if !t.is_symlink() => t.is_dir(),
                _ => fs::metadata(&child).map(|m| m.is_dir()).unwrap_or(false),
            };
            match depth {
                Some(d) if d > 1 => {
                    if is_dir() {
                        self.walk(&child, Some(d - 1), out, seen)
                    }
                }
                Some(_) => self.consider(&child, out, seen),
                None => {
                    if is_dir() {
                        self.walk(&child, None, out, seen)
                    } else {
                        self.consider(&child, out, seen)
                    }
                }
            }
        }
    }

    fn consider(&mut self, path: &Path, out: &mut Vec<Found>, seen: &mut HashSet<PathBuf>) {
        if !self.include.is_match(path)
            || self.exclude.is_match(path)
            || !seen.insert(path.to_path_buf())
        {
            return;
        }
        // stat, not lstat: a symlink stands for its target.
        match fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                // Readability is left to the caller's open: opening every
                // file on every scan would cost thousands of syscalls a
                // second with many files.
                if !self.reported.is_empty() {
                    self.reported.retain(|(p, _)| p != path);
                }
                out.push(Found {
                    path: path.to_path_buf(),
                    id: FileId::of(&meta),
                    meta,
                });
            }
            Ok(_) => {}
            Err(e) => self.report(path, &e),
        }
    }

    fn report(&mut self, path: &Path, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            // Waiting for a file that does not exist yet is normal for a
            // log shipper; the caller says so once at start.
            return;
        }
        if self.reported.insert((path.to_path_buf(), e.kind())) {
            tracing::warn!(path = %path.display(), error = %e, "cannot read; will retry on the next scan");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[Found]) -> Vec<String> {
        let mut v: Vec<String> = found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn include_exclude_and_literal() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in ["a.log", "b.log", "c.txt", "skip.log"] {
            fs::write(d.join(n), b"x\n").unwrap();
        }
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/d.log"), b"x\n").unwrap();
        let inc = vec![format!("{}/*.log", d.display())];
        let exc = vec![format!("{}/skip.log", d.display())];
        let mut disc = Discovery::new(&inc, &exc).unwrap();
        assert_eq!(names(&disc.scan()), ["a.log", "b.log"]);

        let mut deep = Discovery::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        assert_eq!(names(&deep.scan()), ["a.log", "b.log", "d.log", "skip.log"]);

        let mut lit = Discovery::new(&[format!("{}/c.txt", d.display())], &[]).unwrap();
        assert_eq!(names(&lit.scan()), ["c.txt"]);
    }

    #[test]
    fn relative_glob_is_rejected() {
        let err = Discovery::new(&["logs/*.log".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("logs/*.log"));
    }
}
