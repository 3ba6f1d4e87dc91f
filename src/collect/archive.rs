//! Housekeeping of closed generations: a generation is closed once a newer
//! generation of the same source path holds the live name (only the newest
//! one does). A closed generation with no write for `compress_after` is
//! compressed (zstd or gzip) next to itself and the original removed;
//! retention deletes closed generations by age and, oldest first, while all
//! outputs together exceed `retention_bytes`. A live generation is never
//! touched, so `tail -F` on the live name keeps working.
//!
//! Each step is crash-safe: the compressed file is written under a
//! temporary name, fsynced and renamed; only then does the index point at
//! it, and only then is the original removed. A crash in between leaves at
//! most a spare file, never an index entry without its data.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::collect::{ArchiveSettings, Compression};

use super::index::{io_err, sync_dir, Archived, IndexError, Store};

/// How often housekeeping looks at the index (at most).
const CHECK_EVERY: Duration = Duration::from_secs(10);

pub struct Archive {
    settings: ArchiveSettings,
    next: Instant,
}

impl Archive {
    pub fn new(settings: ArchiveSettings) -> Self {
        Archive {
            settings,
            next: Instant::now() + CHECK_EVERY,
        }
    }

    /// Compress and expire what is due (at most every [`CHECK_EVERY`]).
    pub fn tick(&mut self, store: &Store) -> Result<(), IndexError> {
        if Instant::now() < self.next {
            return Ok(());
        }
        self.next = Instant::now() + CHECK_EVERY.min(self.settings.compress_after);
        let now = super::now_secs();
        if self.settings.compress != Compression::None {
            for (id, output) in self.due_for_compression(store, now)? {
                compress_one(store, &id, &output, self.settings.compress)?;
            }
        }
        self.expire(store, now)
    }

    fn due_for_compression(
        &self,
        store: &Store,
        now: u64,
    ) -> Result<Vec<(String, String)>, IndexError> {
        let after = self.settings.compress_after.as_secs();
        let locked = store.locked()?;
        Ok(locked
            .index
            .generations
            .iter()
            .filter(|(_, e)| {
                e.archived.is_none() && e.is_closed() && now.saturating_sub(e.last_write) >= after
            })
            .map(|(id, e)| (id.clone(), e.output.clone()))
            .collect())
    }

    /// Delete closed generations past the age limit, then the oldest
    /// closed ones while the total size is over the limit.
    fn expire(&self, store: &Store, now: u64) -> Result<(), IndexError> {
        if self.settings.retention.is_none() && self.settings.retention_bytes.is_none() {
            return Ok(());
        }
        let mut locked = store.locked()?;
        let root = store.root().to_path_buf();
        let size = |rel: &str| std::fs::metadata(root.join(rel)).map_or(0, |m| m.len());
        let mut total: u64 = locked
            .index
            .generations
            .values()
            .filter(|e| e.archived != Some(Archived::Deleted))
            .map(|e| size(&e.output))
            .sum();
        let mut closed: Vec<(u64, String)> = locked
            .index
            .generations
            .iter()
            .filter(|(_, e)| e.is_closed() && e.archived != Some(Archived::Deleted))
            .map(|(id, e)| (e.last_write, id.clone()))
            .collect();
        closed.sort();
        let max_age = self.settings.retention.map(|d| d.as_secs());
        let mut doomed = Vec::new();
        for (last_write, id) in closed {
            let too_old = max_age.is_some_and(|a| now.saturating_sub(last_write) >= a);
            let too_big = self.settings.retention_bytes.is_some_and(|b| total > b);
            if !(too_old || too_big) {
                continue;
            }
            if let Some(e) = locked.index.generations.get_mut(&id) {
                total = total.saturating_sub(size(&e.output));
                e.archived = Some(Archived::Deleted);
                doomed.push(e.output.clone());
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        // The index first: a crash after it leaves a file too many, never an
        // entry pointing at nothing.
        locked.save()?;
        for rel in doomed {
            let path = root.join(&rel);
            tracing::info!(file = %path.display(), "retention: deleted a closed generation");
            match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(path.parent().unwrap_or(&root)).map_err(io_err(&path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }
}

fn compress_one(store: &Store, id: &str, output: &str, how: Compression) -> Result<(), IndexError> {
    let ext = match how {
        Compression::Zstd => "zst",
        Compression::Gzip => "gz",
        Compression::None => return Ok(()),
    };
    let root = store.root();
    let src = root.join(output);
    let rel = format!("{output}.{ext}");
    let dst = root.join(&rel);
    let tmp = root.join(format!("{rel}.tmp"));
    // Compressing happens outside the index lock (it can take a while);
    // the entry is checked again before it is changed.
    compress_file(&src, &tmp, how).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(&src)(e)
    })?;
    std::fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    let dir = dst.parent().unwrap_or(root);
    sync_dir(dir).map_err(io_err(dir))?;
    let mut locked = store.locked()?;
    match locked.index.generations.get_mut(id) {
        Some(e) if e.output == output && e.archived.is_none() => {
            e.output = rel;
            e.archived = Some(Archived::Compressed);
        }
        _ => {
            drop(locked);
            let _ = std::fs::remove_file(&dst);
            return Ok(());
        }
    }
    locked.save()?;
    drop(locked);
    std::fs::remove_file(&src).map_err(io_err(&src))?;
    sync_dir(dir).map_err(io_err(dir))?;
    tracing::info!(file = %dst.display(), "compressed a closed generation");
    Ok(())
}

fn compress_file(src: &Path, dst: &Path, how: Compression) -> std::io::Result<()> {
    let mut input = BufReader::new(File::open(src)?);
    let out = File::create(dst)?;
    let out = match how {
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(out, 3)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        Compression::None => out,
    };
    let mut out = out;
    out.flush()?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::index::GenKey;
    use std::io::Read;

    fn key(g: u64) -> GenKey {
        GenKey::test_generation(g)
    }

    #[test]
    fn closed_generations_are_compressed_live_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut l = store.locked().unwrap();
        l.register(&key(1), b"/x.log", 0, 0).unwrap();
        std::fs::create_dir_all(dir.path().join("h")).unwrap();
        std::fs::write(dir.path().join("h/x.log"), "old\n").unwrap();
        l.register(&key(2), b"/x.log", 0, 1000).unwrap();
        drop(l);
        std::fs::write(dir.path().join("h/x.log"), "new\n").unwrap();
        let mut a = Archive::new(ArchiveSettings {
            compress_after: Duration::from_secs(1),
            compress: Compression::Zstd,
            retention: None,
            retention_bytes: None,
        });
        a.next = Instant::now();
        a.tick(&store).unwrap();
        let idx = Store::read(dir.path()).unwrap();
        let old = &idx.generations["h/0000000000000001"];
        assert_eq!(old.archived, Some(Archived::Compressed));
        let mut text = String::new();
        zstd::stream::Decoder::new(File::open(dir.path().join(&old.output)).unwrap())
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "old\n");
        assert_eq!(std::fs::read(dir.path().join("h/x.log")).unwrap(), b"new\n");
        assert_eq!(idx.generations["h/0000000000000002"].archived, None);
    }
}
