//! One logferry per state directory. Two processes sharing a checkpoint
//! directory would overwrite each other's checkpoints: each saves only the
//! files it follows, so the other's positions vanish and, after a restart,
//! their files are read again from wherever the start policy says (lines
//! lost or shipped twice). A [`StateLock`] holds an exclusive `flock` on
//! `DIR/lock` for the life of the process that took it.
//!
//! `flock` rather than a pid file alone: the kernel drops the lock when its
//! holder dies, even by `kill -9`, so a crash never leaves a stale lock
//! behind. The file holds the holder's pid only so the refusal can name it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILE_NAME: &str = "lock";

/// How long a refused process waits for the holder's pid to appear: the
/// holder writes it right after taking the lock, so an empty file is only
/// ever seen in that instant.
const PID_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create checkpoint directory {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: io::Error },
    #[error("cannot open lock file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot write the pid into lock file {}: {source}", path.display())]
    WritePid { path: PathBuf, source: io::Error },
    #[error(
        "checkpoint directory {} is in use by another logferry ({}); give each configuration its own [checkpoint] directory (--checkpoint-dir)",
        dir.display(),
        match holder { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_string() }
    )]
    InUse {
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        holder: Option<u32>,
    },
}

/// Exclusive use of a state directory, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    /// Open for as long as the lock is held: closing it releases the lock.
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Take `dir` (created 0700 if missing) for this process, or say who
    /// holds it. Never waits for a holder to let go.
    pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
        if !dir.exists() {
            // Mode at creation, not chmod after: no moment where the
            // directory (which names log paths) is readable by others.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| LockError::CreateDir {
                    dir: dir.to_path_buf(),
                    source,
                })?;
        }
        let path = dir.join(FILE_NAME);
        // Not truncated on open: if someone else holds the lock, the file
        // holds their pid, which the refusal reports.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        loop {
            // SAFETY: flock(2) on a descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    return Err(LockError::InUse {
                        dir: dir.to_path_buf(),
                        holder: read_holder(&mut file),
                    })
                }
                _ => return Err(LockError::Lock { path, source: e }),
            }
        }
        let write_pid = |f: &mut File| -> io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
            f.flush()
        };
        write_pid(&mut file).map_err(|source| LockError::WritePid {
            path: path.clone(),
            source,
        })?;
        Ok(StateLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The pid goes with the lock, so the file never names a process
        // that no longer holds it (the file itself stays: removing it would
        // let a process that opened it just before lock a deleted inode
        // while a third locks a new file). Closing `file` releases the lock.
        let _ = self.file.set_len(0);
    }
}

/// The pid in a lock file someone else holds, waiting briefly for the
/// holder to write it. None when it never appears (or is not a pid).
fn read_holder(file: &mut File) -> Option<u32> {
    let deadline = Instant::now() + PID_WAIT;
    loop {
        let mut text = String::new();
        let parsed = file
            .rewind()
            .and_then(|()| file.read_to_string(&mut text))
            .ok()
            .and_then(|_| text.trim().parse().ok());
        if parsed.is_some() || Instant::now() >= deadline {
            return parsed;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_with_the_holders_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/nested");
        let held = StateLock::acquire(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(held.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pid = std::process::id();
        assert_eq!(fs::read_to_string(held.path()).unwrap(), format!("{pid}\n"));
        // flock locks belong to an open file description, so a second
        // open and flock in this same process conflicts like another
        // process would.
        let err = StateLock::acquire(&dir).unwrap_err();
        assert!(
            matches!(err, LockError::InUse { holder: Some(p), .. } if p == pid),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("(pid {pid})")), "{msg}");
        // The refusal did not disturb the holder's pid.
        assert_eq!(fs::read_to_string(held.path()).unwrap(), format!("{pid}\n"));

        drop(held);
        let again = StateLock::acquire(&dir).expect("free again once dropped");
        assert_eq!(
            fs::read_to_string(again.path()).unwrap(),
            format!("{pid}\n")
        );
    }

    #[test]
    fn a_stale_pid_left_by_a_dead_holder_does_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        // What a process killed with -9 leaves: the file with its pid, and
        // no lock (the kernel released it).
        fs::write(tmp.path().join(FILE_NAME), "999999999\n").unwrap();
        let lock = StateLock::acquire(tmp.path()).unwrap();
        assert_eq!(
            fs::read_to_string(lock.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
    }
}
