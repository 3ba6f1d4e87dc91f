//! Finding the files to follow: include globs minus exclude globs, expanded
//! by walking only the directories a pattern can reach. Symlinks are followed
//! (a symlinked log is a log), and callers dedupe by [`FileId`] so one target
//! reached through two names is read once.
//!
//! Errors on one path (permission denied, a directory that vanished) never
//! stop the scan; each distinct failure is logged once and retried on the
//! next scan.
//!
//! Following symlinked directories makes loops possible (`/d/a/loop -> /d`
//! under `/d/**`): a directory whose (device, inode) is already on the path
//! being walked is not entered again. Two such loops made the walk branch
//! without end, and a scan that never returns stops every input. The work
//! of one scan is bounded besides ([`MAX_DEPTH`], [`MAX_DIRS_PER_SCAN`]) so
//! that no tree, however odd, can stall the shipping loop.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
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

/// Deepest directory level below a pattern's literal root that a scan lists.
/// Real log trees are a few levels deep; this only stops a tree made deep by
/// symlinks that are not loops (a chain of links to ever deeper places).
pub const MAX_DEPTH: usize = 32;

/// Directories one scan lists at most, over all of a discovery's patterns.
/// A scan runs inside the shipping loop: symlinks that are not loops can
/// still reach the same directories by exponentially many paths (each
/// level linking twice to the next), and listing them all would stall every
/// input. Generous: a listing costs tens of microseconds.
pub const MAX_DIRS_PER_SCAN: usize = 20_000;

/// Why a path was skipped, for logging each distinct problem once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Problem {
    Io(io::ErrorKind),
    /// A directory that leads back to one of its own ancestors.
    Loop,
    /// A directory deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A directory on the path being walked: its identity, to spot a loop, and
/// its path, to name the loop's target.
#[derive(Debug)]
struct Ancestor {
    dev: u64,
    ino: u64,
    path: PathBuf,
}

/// State of one scan.
#[derive(Debug, Default)]
struct Walk {
    out: Vec<Found>,
    /// Paths already considered, so overlapping patterns report a file once.
    seen: HashSet<PathBuf>,
    /// The directories from the filesystem root down to the one being
    /// listed.
    ancestors: Vec<Ancestor>,
    /// Directories listed so far.
    dirs: usize,
    /// The scan stopped listing at [`MAX_DIRS_PER_SCAN`].
    capped: bool,
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
    /// Failures already logged, so a permanently unreadable file (or a
    /// directory loop) is reported once and not on every scan.
    reported: HashSet<(PathBuf, Problem)>,
    /// The last scan hit [`MAX_DIRS_PER_SCAN`] and said so; said again only
    /// after a scan that did not.
    capped_reported: bool,
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
            capped_reported: false,
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
        self.scan_with(&mut || {})
    }

    /// [`scan`](Self::scan), calling `listed` after each directory is
    /// listed: a scan of many files takes long enough for the caller's
    /// file-system event queue to overflow unless it is read meanwhile.
    pub fn scan_with(&mut self, listed: &mut dyn FnMut()) -> Vec<Found> {
        let mut walk = Walk::default();
        for i in 0..self.roots.len() {
            let dir = self.roots[i].dir.clone();
            let depth = self.roots[i].depth;
            if depth != Some(0) {
                // The root's own ancestors count too: a link under it to
                // `/` or to its parent is a loop as well, caught before the
                // walk lists the whole file system once through it.
                walk.ancestors = dir
                    .ancestors()
                    .skip(1)
                    .filter_map(|a| {
                        let m = fs::metadata(a).ok()?;
                        Some(Ancestor {
                            dev: m.dev(),
                            ino: m.ino(),
                            path: a.to_path_buf(),
                        })
                    })
                    .collect();
                walk.ancestors.reverse();
            }
            self.walk(&dir, depth, 0, &mut walk, listed);
        }
        if walk.capped && !self.capped_reported {
            let roots: Vec<String> = self
                .roots
                .iter()
                .map(|r| r.dir.display().to_string())
                .collect();
            tracing::warn!(
                roots = %roots.join(", "),
                limit = MAX_DIRS_PER_SCAN,
                "scan stopped after listing the most directories one scan may list; files beyond them are not followed (narrow the include globs)"
            );
        }
        self.capped_reported = walk.capped;
        walk.out
    }

    /// List `path` (or consider it as a file when `depth` is `Some(0)`),
    /// `level` directories below its pattern's root.
    fn walk(
        &mut self,
        path: &Path,
        depth: Option<usize>,
        level: usize,
        walk: &mut Walk,
        listed: &mut dyn FnMut(),
    ) {
        if depth == Some(0) {
            self.consider(path, walk);
            return;
        }
        if walk.dirs >= MAX_DIRS_PER_SCAN {
            walk.capped = true;
            return;
        }
        // stat, not lstat: the identity of what a symlink leads to.
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.report(path, &e);
                return;
            }
        };
        if let Some(a) = walk
            .ancestors
            .iter()
            .find(|a| a.dev == meta.dev() && a.ino == meta.ino())
        {
            if self.reported.insert((path.to_path_buf(), Problem::Loop)) {
                tracing::warn!(path = %path.display(), target = %a.path.display(), "directory loop: this path leads back to a directory above it; not descending into it");
            }
            return;
        }
        if level > MAX_DEPTH {
            if self.reported.insert((path.to_path_buf(), Problem::TooDeep)) {
                tracing::warn!(path = %path.display(), limit = MAX_DEPTH, "directory nested deeper than a scan descends; not descending into it");
            }
            return;
        }
        walk.dirs += 1;
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                self.report(path, &e);
                return;
            }
        };
        self.reported.retain(|(p, _)| p != path);
        walk.ancestors.push(Ancestor {
            dev: meta.dev(),
            ino: meta.ino(),
            path: path.to_path_buf(),
        });
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
                        self.walk(&child, Some(d - 1), level + 1, walk, listed)
                    }
                }
                Some(_) => self.consider(&child, walk),
                None => {
                    if is_dir() {
                        self.walk(&child, None, level + 1, walk, listed)
                    } else {
                        self.consider(&child, walk)
                    }
                }
            }
        }
        walk.ancestors.pop();
        listed();
    }

    fn consider(&mut self, path: &Path, walk: &mut Walk) {
        if !self.include.is_match(path)
            || self.exclude.is_match(path)
            || !walk.seen.insert(path.to_path_buf())
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
                walk.out.push(Found {
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
        if self
            .reported
            .insert((path.to_path_buf(), Problem::Io(e.kind())))
        {
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

    /// Paths of what a scan found, relative to `root`, sorted.
    fn rel_paths(found: &[Found], root: &Path) -> Vec<String> {
        let mut v: Vec<String> = found
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    /// Run a scan on another thread and fail (instead of hanging the test
    /// run) when it does not return within `limit`.
    fn scan_within(mut disc: Discovery, limit: std::time::Duration) -> (Discovery, Vec<Found>) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let found = disc.scan();
            let _ = tx.send((disc, found));
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("scan did not return within {limit:?}"))
    }

    #[test]
    fn two_symlink_loops_under_double_star_end_and_find_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir_all(d.join("a")).unwrap();
        fs::create_dir_all(d.join("b")).unwrap();
        fs::write(d.join("top.log"), b"x\n").unwrap();
        fs::write(d.join("a/x.log"), b"x\n").unwrap();
        fs::write(d.join("b/y.log"), b"x\n").unwrap();
        // One absolute loop, one relative: with both, the walk branched
        // at every level and never ended.
        std::os::unix::fs::symlink(&d, d.join("a/loop")).unwrap();
        std::os::unix::fs::symlink("..", d.join("b/up")).unwrap();
        let disc = Discovery::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        let limit = std::time::Duration::from_secs(30);
        let (disc, found) = scan_within(disc, limit);
        assert_eq!(rel_paths(&found, &d), ["a/x.log", "b/y.log", "top.log"]);
        // Each loop is reported once, and not again on the next scan.
        let (disc, found) = scan_within(disc, limit);
        assert_eq!(found.len(), 3);
        let mut loops: Vec<&Path> = disc
            .reported
            .iter()
            .filter(|(_, p)| *p == Problem::Loop)
            .map(|(p, _)| p.as_path())
            .collect();
        loops.sort();
        assert_eq!(loops, [d.join("a/loop"), d.join("b/up")]);
    }

    #[test]
    fn a_link_to_an_ancestor_of_the_root_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("a.log"), b"x\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), d.join("parent")).unwrap();
        let disc = Discovery::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        let (_, found) = scan_within(disc, std::time::Duration::from_secs(30));
        assert_eq!(rel_paths(&found, &d), ["a.log"]);
    }

    #[test]
    fn symlinked_directories_and_files_that_are_not_loops_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(root.join("real")).unwrap();
        fs::create_dir_all(elsewhere.join("deep")).unwrap();
        fs::write(root.join("real/r.log"), b"x\n").unwrap();
        fs::write(elsewhere.join("deep/w.log"), b"x\n").unwrap();
        fs::write(elsewhere.join("target.txt"), b"x\n").unwrap();
        // A directory linked in from outside, a sibling linked twice (not
        // a loop: neither link leads to an ancestor), and a linked file.
        std::os::unix::fs::symlink(&elsewhere, root.join("ext")).unwrap();
        std::os::unix::fs::symlink("real", root.join("alias")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("target.txt"), root.join("l.log")).unwrap();
        let mut disc = Discovery::new(&[format!("{}/**/*.log", root.display())], &[]).unwrap();
        let found = disc.scan();
        assert_eq!(
            rel_paths(&found, &root),
            ["alias/r.log", "ext/deep/w.log", "l.log", "real/r.log"]
        );
        // One file under two names: the same identity, for callers to
        // dedupe.
        let id = |p: &str| found.iter().find(|f| f.path == root.join(p)).unwrap().id;
        assert_eq!(id("alias/r.log"), id("real/r.log"));
        assert!(disc.reported.is_empty(), "{:?}", disc.reported);
    }

    #[test]
    fn links_that_multiply_paths_are_bounded_per_scan() {
        // Each level links twice to the next: 2^24 paths to the bottom
        // without a loop anywhere. A scan lists at most MAX_DIRS_PER_SCAN
        // directories and returns.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let levels = 24;
        for i in 0..levels {
            let n = root.join(format!("n{i}"));
            fs::create_dir_all(&n).unwrap();
            if i + 1 < levels {
                for link in ["x", "y"] {
                    std::os::unix::fs::symlink(format!("../n{}", i + 1), n.join(link)).unwrap();
                }
            }
        }
        fs::write(root.join(format!("n{}/f.log", levels - 1)), b"x\n").unwrap();
        let disc = Discovery::new(&[format!("{}/**/*.log", root.display())], &[]).unwrap();
        let (disc, found) = scan_within(disc, std::time::Duration::from_secs(60));
        assert!(disc.capped_reported, "the scan should have hit the cap");
        assert!(found.iter().any(|f| f.path.ends_with("f.log")));
    }

    #[test]
    fn directories_deeper_than_the_limit_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let mut p = root.clone();
        for i in 0..=MAX_DEPTH + 1 {
            p.push(format!("{i}"));
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("f.log"), b"x\n").unwrap();
        }
        let mut disc = Discovery::new(&[format!("{}/**/*.log", root.display())], &[]).unwrap();
        let found = disc.scan();
        // Levels 1..=MAX_DEPTH are listed; the one below is not.
        assert_eq!(found.len(), MAX_DEPTH);
        assert_eq!(
            disc.reported
                .iter()
                .filter(|(_, p)| *p == Problem::TooDeep)
                .count(),
            1
        );
    }

    #[test]
    fn relative_glob_is_rejected() {
        let err = Discovery::new(&["logs/*.log".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("logs/*.log"));
    }
}
