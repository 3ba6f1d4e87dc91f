//! Showing backfill progress: a progress bar (bytes, rate, time left) when
//! stderr is a terminal, else a log line every few seconds, so a month of
//! rotated files shipped by `--backfill` is not a silent wait.
//!
//! Bytes are bytes on disk read so far (compressed bytes for a compressed
//! file: its decoded length is unknown until it is read), as the Tailer
//! counts them ([`logferry_tail::BackfillProgress`]).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logferry_tail::BackfillProgress;

/// Time between log lines off a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Time between looks at the Tailer's progress (a bar redraws no faster).
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// How progress is shown.
enum Display {
    Bar(ProgressBar),
    Log { next: Instant },
}

pub(crate) struct BackfillReport {
    display: Option<Display>,
    started: Instant,
    /// The last progress seen was complete and said so.
    finished: bool,
    next_look: Instant,
}

impl BackfillReport {
    pub(crate) fn new() -> Self {
        BackfillReport {
            display: None,
            started: Instant::now(),
            finished: false,
            next_look: Instant::now(),
        }
    }

    /// Whether to look at progress now (the shipping loop turns far more
    /// often than a bar is drawn).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next_look {
            return false;
        }
        self.next_look = now + LOOK_EVERY;
        true
    }

    /// Show `progress` (None: nothing backfilled yet).
    pub(crate) fn update(&mut self, progress: Option<BackfillProgress>, now: Instant) {
        let Some(p) = progress else {
            return;
        };
        let complete = p.files_done == p.files;
        if complete && self.finished {
            return;
        }
        let display = self.display.get_or_insert_with(|| {
            if std::io::stderr().is_terminal() {
                Display::Bar(bar(p.total))
            } else {
                Display::Log { next: now }
            }
        });
        match display {
            Display::Bar(bar) => {
                bar.set_length(p.total);
                bar.set_position(p.done);
                bar.set_message(format!("{} of {} files", p.files_done, p.files));
                if complete {
                    bar.finish();
                }
            }
            Display::Log { next } => {
                if now >= *next || complete {
                    *next = now + LOG_EVERY;
                    let secs = self.started.elapsed().as_secs_f64().max(0.001);
                    let rate = p.done as f64 / secs;
                    let left = if rate > 0.0 {
                        format!("{:.0}s", p.total.saturating_sub(p.done) as f64 / rate)
                    } else {
                        "unknown".into()
                    };
                    tracing::info!(
                        read = p.done,
                        total = p.total,
                        files_done = p.files_done,
                        files = p.files,
                        bytes_per_sec = rate as u64,
                        time_left = %left,
                        "backfill: {} of {} bytes on disk read, {} of {} files",
                        p.done,
                        p.total,
                        p.files_done,
                        p.files
                    );
                }
            }
        }
        if complete {
            tracing::info!(
                files = p.files,
                bytes = p.total,
                "backfill: every rotated file found was read"
            );
        }
        self.finished = complete;
    }
}

fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "backfill [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left, {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}
