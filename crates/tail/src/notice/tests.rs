use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// Drain until `done` holds for what was gathered, or fail at a deadline
/// (the kernel queues an event within the system call that causes it, so
/// the deadline is a margin for a loaded machine, not a sleep).
fn drain_until(n: &mut FsNotices, done: impl Fn(&Notices) -> bool) -> Notices {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Notices::default();
    loop {
        let got = n.drain();
        all.modified.extend(got.modified);
        all.rescan |= got.rescan;
        all.lost |= got.lost;
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "not seen in 5 s: {all:?}");
        n.wait(Duration::from_millis(50));
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_write_in_a_watched_directory_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    fs::write(&file, "").unwrap();
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    assert!(n.active());
    append(&file, "one\n");
    let got = drain_until(&mut n, |g| !g.modified.is_empty());
    assert!(got.modified.iter().all(|p| p == &file), "{got:?}");
    // Reading it (opens, reads, closes) is not news.
    let _ = fs::read(&file).unwrap();
    let got = n.drain();
    assert!(got.modified.is_empty() && !got.rescan, "{got:?}");
}

#[test]
fn a_subdirectory_created_after_start_under_a_recursive_watch_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("old")).unwrap();
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), true)]);
    // Existing subdirectories are watched from the start.
    let old = dir.path().join("old/a.log");
    append(&old, "x\n");
    drain_until(&mut n, |g| g.modified.contains(&old));

    let sub = dir.path().join("new/deeper");
    fs::create_dir_all(&sub).unwrap();
    // The creation asks for a scan (files may predate the watch) and
    // gets `new` watched, whose listing finds `deeper`.
    drain_until(&mut n, |g| g.rescan);
    let file = sub.join("b.log");
    append(&file, "y\n");
    drain_until(&mut n, |g| g.modified.contains(&file));
    assert!(n.active());
}

#[test]
fn a_watched_directory_deleted_and_recreated_is_watched_again_after_retry() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let mut n = FsNotices::new(vec![(dir.clone(), false)]);
    assert!(n.active());
    fs::remove_dir(&dir).unwrap();
    drain_until(&mut n, |g| g.rescan);
    // Drain until the watch's end (IN_IGNORED) has been taken too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while n.active() {
        assert!(
            Instant::now() < deadline,
            "the deleted directory is still counted as watched"
        );
        n.wait(Duration::from_millis(50));
        n.drain();
    }
    n.retry_missing();
    assert!(
        !n.active(),
        "a directory that does not exist cannot be watched"
    );

    fs::create_dir(&dir).unwrap();
    n.retry_missing();
    assert!(n.active());
    let file = dir.join("app.log");
    append(&file, "again\n");
    drain_until(&mut n, |g| g.modified.contains(&file));
}

#[test]
fn wait_returns_as_soon_as_an_event_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            append(&file, "wake\n");
        })
    };
    let began = Instant::now();
    n.wait(Duration::from_secs(30));
    let waited = began.elapsed();
    writer.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "waited {waited:?} for an event"
    );
    // What woke it is there to drain.
    let got = n.drain();
    assert!(got.rescan, "the file's creation: {got:?}");
}

#[test]
fn wait_without_events_lasts_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    let began = Instant::now();
    n.wait(Duration::from_millis(200));
    assert!(began.elapsed() >= Duration::from_millis(200));
}

#[test]
fn an_overflowed_queue_says_writes_were_lost() {
    let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if max > 200_000 {
        eprintln!("max_queued_events is {max}: too many writes to overflow it quickly; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    let mut a = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("a"))
        .unwrap();
    let mut b = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("b"))
        .unwrap();
    // Alternating files: the kernel merges only identical consecutive
    // events, so each write queues one.
    for _ in 0..max {
        a.write_all(b"x").unwrap();
        b.write_all(b"y").unwrap();
    }
    let got = n.drain();
    assert!(
        got.lost && got.rescan,
        "rescan {} lost {}",
        got.rescan,
        got.lost
    );
}

/// Network file systems are known by their magic numbers (another host's
/// writes there raise no event); local ones, and FUSE, are not among them.
#[test]
fn network_file_systems_are_not_trusted_to_notify() {
    for nfs_like in [0x6969u64, 0xff53_4d42, 0x00c3_6400, 0x0102_1997] {
        assert!(is_remote_magic(nfs_like), "{nfs_like:#x}");
    }
    // ext4, tmpfs, overlayfs, btrfs, xfs, FUSE.
    for local in [
        0xef53u64,
        0x0102_1994,
        0x794c_7630,
        0x9123_683e,
        0x5846_5342,
        0x6573_5546,
    ] {
        assert!(!is_remote_magic(local), "{local:#x}");
    }
    // statfs(2) gives f_type sign-extended on some targets.
    assert!(is_remote_magic(0xffff_ffff_ff53_4d42));
    let dir = tempfile::tempdir().unwrap();
    assert!(!on_remote_file_system(dir.path()));
    let n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    assert!(
        n.active(),
        "a local directory, watched: notifications are trusted"
    );
}

/// What `keep_up` read (while the caller was busy) is in the next drain,
/// with what came after it.
#[test]
fn events_kept_up_with_are_in_the_next_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    fs::write(&a, "").unwrap();
    fs::write(&b, "").unwrap();
    let mut n = FsNotices::new(vec![(dir.path().to_path_buf(), false)]);
    append(&a, "one\n");
    n.keep_up();
    append(&b, "two\n");
    let got = drain_until(&mut n, |g| g.modified.contains(&b));
    assert!(got.modified.contains(&a), "{got:?}");
}
