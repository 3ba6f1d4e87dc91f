//! Tests of the ledger: matching files to generations by content.

use super::*;
use crate::identity::ANCHOR_WINDOW;
use crate::identity::FINGERPRINT_WINDOW;
use crate::GenerationId;
use std::io::Write;

fn checkpoint_of(path: &Path, position: u64) -> FileCheckpoint {
    let f = File::open(path).unwrap();
    let meta = f.metadata().unwrap();
    FileCheckpoint {
        generation: GenerationId::new(),
        id: FileId::of(&meta),
        fingerprint: Fingerprint::read(&f, position).unwrap(),
        anchor: Anchor::read(&mut &f, position).unwrap().unwrap(),
        position,
        size: meta.len(),
        path: path.display().to_string(),
        updated: 0,
        born: None,
        unfinished: false,
        seen: None,
        read_to_end: false,
    }
}

const HEADER: &str = "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Date: 2026-12-02 00:00:00\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\n";

fn write(path: &Path, body: &str) {
    let mut f = File::create(path).unwrap();
    f.write_all(HEADER.as_bytes()).unwrap();
    f.write_all(body.as_bytes()).unwrap();
}

/// A new file that shares the old one's long header is not the old one,
/// even on the old one's inode: it is read from 0, not from the old
/// position.
#[test]
fn same_header_on_a_reused_inode_is_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, "2026-12-02 00:00:01 GET /one 200\n");
    let old = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
    // Same inode, same header, other lines (as after the old file was
    // deleted and its inode reused).
    let f = File::options().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    write(
        &path,
        "2026-12-02 00:00:09 GET /two 200\n2026-12-02 00:00:10 GET /three 200\n",
    );
    let mut ledger = Ledger::new(vec![old.clone()], UNFINISHED_TTL);
    let f = File::open(&path).unwrap();
    let size = f.metadata().unwrap().len();
    let head = Head::read(&f).unwrap();
    assert_eq!(
        ledger.resume(&old.id, &head, &f, size).unwrap_err(),
        old.path
    );
    assert!(ledger.has_unfinished(), "looked for elsewhere");
    assert!(
        ledger.take_continued(&head, &f, size, &|_| false).is_none(),
        "not a continuation of the old generation"
    );
}

/// A copy (another inode) of a checkpointed file continues its
/// generation at the saved position.
#[test]
fn copy_continues_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, "2026-12-02 00:00:01 GET /one 200\n");
    let cp = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
    let copy = dir.path().join("a.log.1");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap()
        .write_all(b"2026-12-02 00:00:02 GET /unread 200\n")
        .unwrap();
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    let f = File::open(&copy).unwrap();
    let head = Head::read(&f).unwrap();
    let got = ledger
        .take_continued(&head, &f, f.metadata().unwrap().len(), &|_| false)
        .expect("the copy continues it");
    assert_eq!((got.generation, got.position), (cp.generation, cp.position));
    assert!(!ledger.has_unfinished());
}

/// copytruncate copies, then cuts; lines appended in between were read
/// from the original but are not in the copy. The copy, shorter than
/// what was read, is still recognised (by the trail) and holds nothing
/// to read; a file with the same header but other lines is not taken.
#[test]
fn copy_shorter_than_what_was_read_is_recognised_by_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let body: String = (0..2000)
        .map(|i| format!("2026-12-02 00:00:01 GET /r/{i} 200\n"))
        .collect();
    write(&path, &body);
    let copy = dir.path().join("a.log.1");
    std::fs::copy(&path, &copy).unwrap();
    let other = dir.path().join("other.1");
    write(&other, &body.replace("GET", "PUT"));
    // Appended after the copy, before the cut: read, not in the copy.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"2026-12-02 00:00:02 GET /between 200\n")
        .unwrap();
    let read_to = std::fs::metadata(&path).unwrap().len();
    let cp = checkpoint_of(&path, read_to);
    let f = File::open(&path).unwrap();
    let trail: Vec<Anchor> = [4096u64, 20_000, 40_000]
        .iter()
        .map(|&at| Anchor::read(&mut &f, at).unwrap().unwrap())
        .collect();
    let mut ledger = Ledger::default();
    ledger.unfinish_with_trail(cp.clone(), trail.clone());
    let o = File::open(&other).unwrap();
    let osize = o.metadata().unwrap().len();
    assert!(
        ledger
            .take_continued(&Head::read(&o).unwrap(), &o, osize, &|_| false)
            .is_none(),
        "same header, other lines"
    );
    let c = File::open(&copy).unwrap();
    let size = c.metadata().unwrap().len();
    let got = ledger
        .take_continued(&Head::read(&c).unwrap(), &c, size, &|_| false)
        .expect("the short copy is recognised");
    assert_eq!((got.generation, got.position), (cp.generation, size));
    // Without a trail the short copy cannot be told apart: it would be
    // read as a new file.
    let mut bare = Ledger::default();
    bare.unfinish(cp);
    assert!(bare
        .take_continued(&Head::read(&c).unwrap(), &c, size, &|_| false)
        .is_none());
}

/// Nothing shipped yet and every file starts with the same header: the
/// head and the anchor at 0 prove nothing, and only the proof of the
/// bytes seen (but not shipped) tells the generation's own file from
/// another that starts alike.
#[test]
fn bytes_seen_but_not_shipped_tell_files_with_one_header_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("a.log.1");
    let other = dir.path().join("a.log");
    write(&mine, "2026-12-02 00:00:01 GET /mine 200\n");
    write(&other, "2026-12-02 00:00:01 GET /other 200\nand more\n");
    let f = File::open(&mine).unwrap();
    let size = f.metadata().unwrap().len();
    let mut cp = checkpoint_of(&mine, 0);
    cp.fingerprint = Fingerprint::read(&f, 256).unwrap();
    cp.seen = Anchor::read(&mut &f, size).unwrap();
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    let o = File::open(&other).unwrap();
    let osize = o.metadata().unwrap().len();
    assert!(
        ledger
            .take_continued(&Head::read(&o).unwrap(), &o, osize, &|_| false)
            .is_none(),
        "same header, other bytes where the seen ones were"
    );
    let got = ledger
        .take_continued(&Head::read(&f).unwrap(), &f, size, &|_| false)
        .expect("its own file");
    assert_eq!((got.generation, got.position), (cp.generation, 0));
}

/// `name` in `dir`: the header and `body`, gzipped.
fn gzip_with_header(
    dir: &Path,
    name: &str,
    body: &str,
) -> (std::path::PathBuf, FileId, std::fs::Metadata) {
    use flate2::write::GzEncoder;
    let p = dir.join(name);
    let mut e = GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
    e.write_all(HEADER.as_bytes()).unwrap();
    e.write_all(body.as_bytes()).unwrap();
    e.finish().unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    (p, FileId::of(&meta), meta)
}

/// An unfinished generation found in a gzip file; another compressed
/// file with the same header is not taken for it.
#[test]
fn unfinished_generation_is_found_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, "2026-12-02 00:00:01 GET /one 200\n");
    let cp = checkpoint_of(&path, std::fs::metadata(&path).unwrap().len());
    let gz = |name: &str, body: &str| gzip_with_header(dir.path(), name, body);
    let (other, oid, ometa) = gz("a.log.2.gz", "2026-12-02 00:00:07 GET /other 200\n");
    let (mine, mid, mmeta) = gz(
        "a.log.1.gz",
        "2026-12-02 00:00:01 GET /one 200\n2026-12-02 00:00:02 GET /unread 200\n",
    );
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    assert!(ledger
        .take_from_compressed(&other, oid, &ometa, &[])
        .is_none());
    let got = ledger
        .take_from_compressed(&mine, mid, &mmeta, &[])
        .expect("found in the gzip");
    assert_eq!(got.generation, cp.generation);
}

/// copytruncate loses what the writer appends between the copy and the
/// cut: the copy, plain or compressed, ends before bytes logferry saw in
/// the original, and is still that generation's (soak seed 264413963: a
/// generation cut at offset 0 never found, its whole copy unshipped).
#[test]
fn copy_ending_before_the_bytes_seen_is_the_generation() {
    use flate2::write::GzEncoder;
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("a.log");
    let copied = "2026-12-02 00:00:01 GET /one 200\n2026-12-02 00:00:02 GET /two 200\n";
    write(
        &original,
        &format!("{copied}2026-12-02 00:00:03 GET /after-the-copy 200\n"),
    );
    let f = File::open(&original).unwrap();
    let seen_at = f.metadata().unwrap().len();
    let mut cp = checkpoint_of(&original, 0);
    cp.fingerprint = Fingerprint::read(&f, FINGERPRINT_WINDOW).unwrap();
    cp.seen = Anchor::read(&mut &f, seen_at).unwrap();
    cp.size = seen_at;
    let plain = dir.path().join("a.log.1");
    write(&plain, copied);
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    let p = File::open(&plain).unwrap();
    let psize = p.metadata().unwrap().len();
    let got = ledger
        .take_continued(&Head::read(&p).unwrap(), &p, psize, &|_| false)
        .expect("the plain copy is the generation");
    assert_eq!(got.generation, cp.generation);

    let gz = dir.path().join("a.log.1.gz");
    let mut e = GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    e.write_all(HEADER.as_bytes()).unwrap();
    e.write_all(copied.as_bytes()).unwrap();
    e.finish().unwrap();
    let meta = std::fs::metadata(&gz).unwrap();
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    let got = ledger
        .take_from_compressed(&gz, FileId::of(&meta), &meta, &[])
        .expect("the compressed copy is the generation");
    assert_eq!(got.generation, cp.generation);
}

#[test]
fn expired_unfinished_generations_are_reported() {
    let mut ledger = Ledger::default();
    let cp = FileCheckpoint {
        generation: GenerationId(5),
        id: FileId { dev: 1, ino: 2 },
        fingerprint: Fingerprint::default(),
        anchor: Anchor::default(),
        position: 10,
        size: 30,
        path: "/x".into(),
        updated: 0,
        born: None,
        unfinished: false,
        seen: None,
        read_to_end: false,
    };
    ledger.unfinish(cp.clone());
    assert!(ledger.expire(Instant::now()).is_empty());
    let later = Instant::now() + UNFINISHED_TTL + Duration::from_secs(1);
    assert_eq!(ledger.expire(later), vec![cp]);
    assert!(!ledger.has_unfinished());
}

/// Numbered request lines, 35 bytes each.
fn lines(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("2026-12-02 00:00:01 GET /r/{i:04} 200\n"))
        .collect()
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn take(ledger: &mut Ledger, path: &Path) -> Option<FileCheckpoint> {
    let f = File::open(path).unwrap();
    ledger.take_continued(&Head::read(&f).unwrap(), &f, size_of(path), &|_| false)
}

/// A generation cut after it was read to its end, as the tailer keeps it:
/// the first trail anchor where the first read ended (in the header), and
/// the last bytes read.
fn cut_at_end(path: &Path) -> (FileCheckpoint, Vec<Anchor>, Vec<u8>) {
    let read_to = size_of(path);
    let f = File::open(path).unwrap();
    let trail = vec![Anchor::read(&mut &f, 64).unwrap().unwrap()];
    let mut last = vec![0u8; ANCHOR_WINDOW as usize];
    crate::identity::read_full(&mut &f, &mut last, read_to - ANCHOR_WINDOW).unwrap();
    (checkpoint_of(path, read_to), trail, last)
}

/// A copy that ends before what was read is recognised by a trail anchor,
/// which proves nothing past itself: one taken in a header that every file
/// shares matches any of them. Where the file ends among the last bytes
/// read, it must hold them up to its end; a file that shares only the
/// header is not taken for a copy (its lines would never be read).
#[test]
fn short_copy_must_hold_the_last_bytes_read_up_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, &lines(0..6));
    let (cp, trail, last) = cut_at_end(&path);
    let other = dir.path().join("a.log.1");
    write(&other, &lines(100..101));
    let copy = dir.path().join("a.log.2");
    write(&copy, &lines(0..5));
    assert!(size_of(&other) > cp.position - ANCHOR_WINDOW);
    let mut ledger = Ledger::default();
    ledger.unfinish_cut(cp.clone(), trail.clone(), last);
    assert!(
        take(&mut ledger, &other).is_none(),
        "shares the header only"
    );
    let got = take(&mut ledger, &copy).expect("the short copy");
    assert_eq!(
        (got.generation, got.position),
        (cp.generation, size_of(&copy))
    );
    // Without the last bytes (a file cut while closed under the budget),
    // only the trail is left, and it cannot tell them apart.
    let mut bare = Ledger::default();
    bare.unfinish_with_trail(cp, trail);
    assert!(take(&mut bare, &other).is_some());
}

/// A copy shorter than what was read holds none of what may follow it:
/// taking it does not end the search, and a full copy found later is still
/// recognised (read as a new file, its lines would go out twice).
#[test]
fn short_copy_does_not_end_the_search_for_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, &lines(0..6));
    let (cp, trail, last) = cut_at_end(&path);
    let short = dir.path().join("a.log.1");
    write(&short, &lines(0..5));
    let full = dir.path().join("a.log.2");
    write(&full, &lines(0..7));
    let mut ledger = Ledger::default();
    ledger.unfinish_cut(cp.clone(), trail, last);
    let got = take(&mut ledger, &short).expect("the short copy");
    assert_eq!(got.position, size_of(&short));
    let got = take(&mut ledger, &full).expect("the full copy");
    assert_eq!((got.generation, got.position), (cp.generation, cp.position));
}

/// The compressed copy of a generation, shorter than what was read (the
/// writer appended between logrotate's copy and its cut, and `compress`
/// ran before a scan saw the plain copy), is a copy of what was shipped:
/// known, not a file never seen, which would be shipped again from its
/// start (tests/realtools.rs, nginx with copytruncate and compress, once
/// its .gz counted as new). One that shares only the header is unknown.
#[test]
fn compressed_short_copy_is_known_by_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, &lines(0..6));
    let (cp, trail, last) = cut_at_end(&path);
    let gz = |name: &str, body: &str| gzip_with_header(dir.path(), name, body);
    let (other, oid, ometa) = gz("a.log.2.gz", &lines(100..101));
    let (copy, cid, cmeta) = gz("a.log.1.gz", &lines(0..5));
    let mut ledger = Ledger::default();
    ledger.unfinish_cut(cp.clone(), trail, last);
    assert_eq!(
        ledger.classify_compressed(&other, oid, &ometa, &[], true),
        Compressed::Unknown,
        "shares the header only"
    );
    assert_eq!(
        ledger.classify_compressed(&copy, cid, &cmeta, &[], true),
        Compressed::Known,
        "the short copy holds nothing unread"
    );
    // The generation is still looked for: a longer copy may follow.
    assert!(ledger.has_unfinished());
}

/// One generation read to different positions in different files (the
/// original and a shorter copy of it): every line before the furthest was
/// shipped, so that is where its rest is looked for, whichever of them was
/// let go first.
#[test]
fn unfinished_generation_keeps_the_furthest_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    write(&path, &lines(0..3));
    let far = checkpoint_of(&path, size_of(&path));
    let near = FileCheckpoint {
        generation: far.generation,
        ..checkpoint_of(&path, size_of(&path) - 35)
    };
    for order in [[&far, &near], [&near, &far]] {
        let mut ledger = Ledger::default();
        for cp in order {
            ledger.unfinish(cp.clone());
        }
        let positions: Vec<u64> = ledger.entries().iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![far.position]);
    }
}

/// A compressed file that repeats a file being read as far as it was read,
/// while that file holds more (or was not read at all yet), may be that
/// file compressed after it was renamed, still read through its
/// descriptor: it is judged again once that file was read on, not taken
/// now for an unfinished generation it also repeats (files sharing a
/// header), which would read its lines twice.
#[test]
fn compressed_file_waits_for_a_file_being_read_that_it_may_be() {
    use flate2::write::GzEncoder;
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("a.log.1.gz");
    let mut e = GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    e.write_all(format!("{HEADER}{}", lines(0..1)).as_bytes())
        .unwrap();
    e.finish().unwrap();
    let meta = std::fs::metadata(&gz).unwrap();
    let id = FileId::of(&meta);
    // An unfinished generation of which only the header was read.
    let path = dir.path().join("a.log");
    write(&path, "");
    let cp = checkpoint_of(&path, HEADER.len() as u64);
    let unread = LiveProof {
        fingerprint: Fingerprint::default(),
        anchor: Anchor::of_bytes(b"", 0),
        settled: false,
        finished: false,
    };
    let header_read = LiveProof {
        fingerprint: Fingerprint::of_bytes(&HEADER.as_bytes()[..FINGERPRINT_WINDOW as usize]),
        anchor: Anchor::of_bytes(HEADER.as_bytes(), HEADER.len() as u64),
        settled: false,
        finished: false,
    };
    let mut ledger = Ledger::default();
    ledger.unfinish(cp.clone());
    assert!(ledger
        .take_from_compressed(&gz, id, &meta, &[unread])
        .is_none());
    assert!(ledger
        .take_from_compressed(&gz, id, &meta, &[header_read])
        .is_none());
    // Read to its end, holding the header only: not what was compressed.
    let header_only = LiveProof {
        settled: true,
        ..header_read
    };
    let got = ledger.take_from_compressed(&gz, id, &meta, &[header_only]);
    assert_eq!(got.map(|c| c.generation), Some(cp.generation));
}
