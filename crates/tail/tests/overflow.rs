//! The kernel's file-system event queue overflows (more writes than
//! `fs.inotify.max_queued_events` between two reads): which files were
//! written is lost. Every line must still be read, and a file closed under
//! the descriptor budget is reopened only if it grew: with 200,000 files,
//! reopening every one took seconds.

use std::io::Write;
use std::time::{Duration, Instant};

use logferry_tail::tailer::TailEvent;
use logferry_tail::{
    Line, LineSink, LongLinePolicy, StartAt, StreamInfo, TailInput, TailSettings, Tailer,
};

#[derive(Default)]
struct Sink {
    lines: usize,
    acks: Vec<(usize, u64)>,
}

impl LineSink for Sink {
    fn room(&self, _input: usize, _slot: usize) -> usize {
        usize::MAX / 2
    }

    fn line(&mut self, stream: &StreamInfo<'_>, seq: u64, _line: Line<'_>) {
        self.acks.push((stream.slot, seq));
        self.lines += 1;
    }
}

/// Tick, read, checkpoint and acknowledge until `want` lines were read,
/// within `limit`.
fn read_until(t: &mut Tailer, sink: &mut Sink, want: usize, limit: Duration) {
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + limit;
    while sink.lines < want {
        assert!(
            Instant::now() < deadline,
            "read {} of {want} lines",
            sink.lines
        );
        t.tick(&|_| false);
        t.read_round(&mut buf, sink);
        if t.wants_save() {
            t.checkpoint_entries();
            t.saved();
        }
        for (slot, seq) in sink.acks.drain(..) {
            t.ack(slot, seq);
        }
        t.wait(Duration::from_millis(2));
    }
}

fn max_queued_events() -> usize {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .expect("inotify's queue length (/proc/sys/fs/inotify/max_queued_events)")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn after_an_overflow_only_closed_files_that_grew_are_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let files = 12;
    let path = |i: usize| dir.path().join(format!("f{i:02}.log"));
    for i in 0..files {
        std::fs::write(path(i), format!("file {i} line 0\n")).unwrap();
    }
    let settings = TailSettings {
        inputs: vec![TailInput {
            include: vec![dir.path().join("*.log").to_string_lossy().into_owned()],
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
        }],
        // Notified: the periodic scan runs every 40 of these (10 s).
        scan_interval: Duration::from_millis(250),
        rotate_grace: Duration::from_secs(3600),
        max_open_files: 2,
        unfinished_ttl: Duration::from_secs(3600),
    };
    let mut t = Tailer::new(settings, vec![], true).unwrap();
    let mut sink = Sink::default();
    read_until(&mut t, &mut sink, files, Duration::from_secs(30));

    // Two files written alternately (consecutive events on one file would
    // be merged by the kernel) until the queue overflows.
    let writes = max_queued_events() + 100;
    t.record_events();
    let mut a = std::fs::OpenOptions::new()
        .append(true)
        .open(path(0))
        .unwrap();
    let mut b = std::fs::OpenOptions::new()
        .append(true)
        .open(path(1))
        .unwrap();
    for n in 0..writes {
        let f = if n % 2 == 0 { &mut a } else { &mut b };
        f.write_all(format!("line {n}\n").as_bytes()).unwrap();
    }
    // Well before the periodic scan (10 s) would find what is left: a
    // file closed under the budget holding more than one read (64 KiB)
    // is read on until its end, not closed again after the first read.
    read_until(&mut t, &mut sink, files + writes, Duration::from_secs(5));

    let reopened: std::collections::HashSet<_> = t
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            TailEvent::Reopened { generation } => Some(generation),
            _ => None,
        })
        .collect();
    assert!(
        reopened.len() <= 2,
        "{} files reopened after the overflow; only the 2 written grew",
        reopened.len()
    );
    assert_eq!(sink.lines, files + writes);
}
