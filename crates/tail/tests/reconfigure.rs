//! `Tailer::reconfigure`: inputs that stay keep their streams (same slot,
//! the file still open, reading on from where it was, even once its name
//! is gone); inputs removed let go of their files with their positions
//! kept (an input added back resumes there); inputs added are read; a
//! removed input with unacknowledged lines changes nothing.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use logferry_tail::{
    Line, LineSink, LongLinePolicy, ReconfigureError, StartAt, StreamInfo, TailInput, TailSettings,
    Tailer,
};

fn input(path: &Path) -> TailInput {
    TailInput {
        include: vec![path.to_string_lossy().into_owned()],
        exclude: vec![],
        start_at: StartAt::Beginning,
        max_line_bytes: 1 << 20,
        long_lines: LongLinePolicy::Truncate,
        strip_cr: false,
        pack_bytes: 0,
        partial_flush: None,
        multiline: None,
        rotated: vec![],
        backfill: false,
    }
}

fn settings(inputs: Vec<TailInput>) -> TailSettings {
    TailSettings {
        inputs,
        scan_interval: Duration::from_millis(1),
        rotate_grace: Duration::from_secs(3600),
        max_open_files: 100,
        unfinished_ttl: Duration::from_secs(3600),
    }
}

/// Lines read: (input, slot, text); acks to give back.
#[derive(Default)]
struct Sink {
    lines: Vec<(usize, usize, String)>,
    acks: Vec<(usize, u64)>,
}

impl LineSink for Sink {
    fn room(&self, _input: usize, _slot: usize) -> usize {
        usize::MAX / 2
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, line: Line<'_>) {
        self.acks.push((stream.slot, seq));
        let text = String::from_utf8(line.bytes.to_vec()).unwrap();
        self.lines.push((stream.input, stream.slot, text));
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Scan and read a few rounds; with `ack`, acknowledge what was read.
fn pump(t: &mut Tailer, sink: &mut Sink, ack: bool) {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..8 {
        t.tick(&|_| false);
        t.scan(&|_| false);
        t.read_round(&mut buf, sink);
        // A new generation waits to be in a checkpoint before its lines
        // are handed out, as the shipping loop writes one.
        if t.wants_save() {
            t.checkpoint_entries();
            t.saved();
        }
        t.wait(Duration::from_millis(2));
        if ack {
            for (slot, seq) in sink.acks.drain(..) {
                t.ack(slot, seq);
            }
        }
    }
}

#[test]
fn kept_inputs_keep_their_streams_removed_ones_their_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("c.log"),
    );
    append(&a, "a1\n");
    append(&b, "b1\n");
    append(&c, "c1\n");
    let mut t = Tailer::new(settings(vec![input(&a), input(&b)]), vec![], true).unwrap();
    let mut sink = Sink::default();
    pump(&mut t, &mut sink, false);
    let slot_of = |sink: &Sink, text: &str| {
        sink.lines
            .iter()
            .find(|(_, _, l)| l == text)
            .map(|(i, s, _)| (*i, *s))
    };
    let (_, a_slot) = slot_of(&sink, "a1").expect("a1 read");
    assert!(slot_of(&sink, "b1").is_some());

    // b is removed while its line is not acknowledged: refused, nothing
    // changed.
    let next = settings(vec![input(&c), input(&a)]);
    let err = t.reconfigure(next.clone(), &[None, Some(0)]).unwrap_err();
    assert!(
        matches!(err, ReconfigureError::InFlight { lines: 1 }),
        "{err}"
    );
    for (slot, seq) in sink.acks.drain(..) {
        t.ack(slot, seq);
    }
    // a's file is renamed away before the change: only its open descriptor
    // reaches it now.
    let a_moved = dir.path().join("a.moved");
    std::fs::rename(&a, &a_moved).unwrap();
    append(&a_moved, "a2\n");
    append(&b, "b2\n");
    let released = t.reconfigure(next, &[None, Some(0)]).unwrap();
    assert_eq!(released.len(), 1, "b's stream let go");
    sink.lines.clear();
    pump(&mut t, &mut sink, true);
    // a (now input 1) goes on in the same stream, through its descriptor;
    // c (input 0) is read; nothing more of b.
    assert_eq!(slot_of(&sink, "a2"), Some((1, a_slot)), "{:?}", sink.lines);
    assert_eq!(slot_of(&sink, "c1").map(|(i, _)| i), Some(0));
    assert!(slot_of(&sink, "b2").is_none(), "{:?}", sink.lines);
    // b's position is kept: resting in the checkpoint after "b1\n".
    let b_entry = t
        .checkpoint_entries()
        .into_iter()
        .find(|e| Path::new(&e.path) == b)
        .expect("b kept in the checkpoint");
    assert_eq!(b_entry.position, 3);

    // b added back: it resumes after b1.
    let back = settings(vec![input(&c), input(&a), input(&b)]);
    t.reconfigure(back, &[Some(0), Some(1), None]).unwrap();
    sink.lines.clear();
    pump(&mut t, &mut sink, true);
    let texts: Vec<&str> = sink.lines.iter().map(|(_, _, l)| l.as_str()).collect();
    assert_eq!(texts, ["b2"], "{:?}", sink.lines);
}

#[test]
fn a_bad_mapping_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let mut t = Tailer::new(settings(vec![input(&a)]), vec![], true).unwrap();
    let two = settings(vec![input(&a), input(&a)]);
    assert!(t.reconfigure(two.clone(), &[Some(0)]).is_err());
    assert!(t.reconfigure(two.clone(), &[Some(0), Some(0)]).is_err());
    assert!(t.reconfigure(two, &[Some(0), Some(3)]).is_err());
    assert_eq!(t.inputs(), 1);
}

#[test]
fn a_removed_inputs_files_are_not_reported_lost_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, "a1\n");
    append(&b, "b1\n");
    let mut t = Tailer::new(settings(vec![input(&a), input(&b)]), vec![], true).unwrap();
    let mut sink = Sink::default();
    pump(&mut t, &mut sink, true);
    t.reconfigure(settings(vec![input(&a)]), &[Some(0)])
        .unwrap();
    append(&b, "b2\n");
    let saved = t.checkpoint_entries();
    assert!(
        saved.iter().any(|e| Path::new(&e.path) == b),
        "b's position kept"
    );
    drop(t);

    // Restarted with the new file: b.log is followed by no input. It is
    // neither read nor looked for (and so never declared lost).
    let mut restarted = settings(vec![input(&a)]);
    restarted.unfinished_ttl = Duration::ZERO;
    let mut t = Tailer::new(restarted, saved, false).unwrap();
    let mut lost = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    sink.lines.clear();
    for _ in 0..5 {
        lost.extend(t.scan(&|_| false).lost);
        t.read_round(&mut buf, &mut sink);
        if t.wants_save() {
            t.checkpoint_entries();
            t.saved();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(lost.is_empty(), "declared lost: {lost:?}");
    assert!(sink.lines.is_empty(), "{:?}", sink.lines);
    let entry = t
        .checkpoint_entries()
        .into_iter()
        .find(|e| Path::new(&e.path) == b)
        .expect("b's position still kept");
    assert!(!entry.unfinished && entry.position == 3, "{entry:?}");
}
