//! loggen: writes synthetic access-log lines for the benchmark.
//!
//! Every line carries `id=FILE:SEQ ts=MICROS` (see `logferry_bench::line`), so
//! a consumer can check completeness and compute append-to-Kafka latency.
//! It writes at a fixed total rate (`--rate-mb`, or `--lines-per-sec`) or as
//! fast as possible, to one file or to `--files N` files in a directory, and
//! can rotate logrotate-style (rename to `NAME.1`, then create `NAME`).
//! On exit it writes a JSON summary (`--stats`) the driver uses as the
//! expected line counts.

use anyhow::{bail, Context, Result};
use clap::Parser;
use logferry_bench::{line::LineGen, now_us};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "loggen",
    about = "Write benchmark access-log lines at a fixed rate or as fast as possible"
)]
struct Args {
    /// Output file (with --files 1) or directory (files app-00000.log ...).
    #[arg(long)]
    out: PathBuf,
    /// Number of files the lines are spread over, round-robin.
    #[arg(long, default_value_t = 1)]
    files: u32,
    /// Total write rate in MB/s (10^6 bytes). Without a rate: as fast as possible.
    #[arg(long, conflicts_with = "lines_per_sec")]
    rate_mb: Option<f64>,
    /// Total write rate in lines per second, over all files.
    #[arg(long)]
    lines_per_sec: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after about this many bytes (the line that crosses it is the last).
    #[arg(long)]
    bytes: Option<u64>,
    /// Stop after this many lines.
    #[arg(long)]
    lines: Option<u64>,
    /// Rotate every file (rename to NAME.1, create NAME) every this many seconds.
    #[arg(long)]
    rotate_every_secs: Option<f64>,
    /// Rotate every file after this many lines written to it.
    #[arg(long)]
    rotate_every_lines: Option<u64>,
    /// Write the JSON summary here at exit.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// PRNG seed: the same seed gives the same line contents (timestamps aside).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Serialize, Debug, Default)]
struct Stats {
    /// Lines written per file index (the FILE of the marker).
    lines_per_file: Vec<u64>,
    lines: u64,
    bytes: u64,
    rotations: u64,
    start_us: u64,
    end_us: u64,
    /// Achieved rate, to spot a generator that could not keep up.
    mb_per_s: f64,
}

/// One output file and the lines written to it.
struct Out {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    seq: u64,
    lines_since_rotate: u64,
}

impl Out {
    fn open(path: PathBuf) -> Result<Self> {
        let file = open_append(&path)?;
        Ok(Out {
            path,
            file,
            buf: Vec::with_capacity(1 << 16),
            seq: 0,
            lines_since_rotate: 0,
        })
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .with_context(|| format!("writing {}", self.path.display()))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// logrotate's default (no copytruncate): rename away, create anew.
    fn rotate(&mut self) -> Result<()> {
        self.flush()?;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        std::fs::rename(&self.path, &rotated)
            .with_context(|| format!("rotating {}", self.path.display()))?;
        self.file = open_append(&self.path)?;
        self.lines_since_rotate = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("loggen: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if args.duration.is_none() && args.bytes.is_none() && args.lines.is_none() {
        bail!("give a stop condition: --duration, --bytes or --lines");
    }
    if args.files == 0 {
        bail!("--files must be at least 1");
    }
    for (name, v) in [
        ("--rate-mb", args.rate_mb),
        ("--lines-per-sec", args.lines_per_sec),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} must be a positive number, got {v}");
            }
        }
    }
    let paths: Vec<PathBuf> = if args.files == 1 {
        vec![args.out.clone()]
    } else {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        (0..args.files)
            .map(|i| args.out.join(format!("app-{i:05}.log")))
            .collect()
    };
    let mut outs = paths
        .into_iter()
        .map(Out::open)
        .collect::<Result<Vec<_>>>()?;

    // SIGTERM/SIGINT end the run cleanly, with the summary still written.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        install_flag(sig, &stop);
    }

    let mut gen = LineGen::new(args.seed);
    let mut stats = Stats {
        lines_per_file: vec![0; outs.len()],
        start_us: now_us(),
        ..Default::default()
    };
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let rotate_every = args
        .rotate_every_secs
        .map(|s| Duration::from_secs_f64(s.max(0.001)));
    let mut next_rotate = rotate_every.map(|d| started + d);
    // Rate-limited: each tick writes what the clock says is owed. Unlimited:
    // each round fills ~1 MiB per file buffer before writing.
    let tick = Duration::from_millis(if outs.len() > 1 { 50 } else { 5 });
    let mut next_file = 0usize;

    'outer: loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
            break;
        }
        let elapsed = now.duration_since(started).as_secs_f64();
        // How many bytes / lines this round may write.
        let (byte_budget, line_budget) = match (args.rate_mb, args.lines_per_sec) {
            (Some(mb), _) => (
                ((mb * 1e6 * elapsed) as u64).saturating_sub(stats.bytes),
                u64::MAX,
            ),
            (None, Some(lps)) => (
                u64::MAX,
                ((lps * elapsed) as u64).saturating_sub(stats.lines),
            ),
            (None, None) => (1 << 20, u64::MAX),
        };
        let ts = now_us();
        let (mut wrote_bytes, mut wrote_lines) = (0u64, 0u64);
        while wrote_bytes < byte_budget && wrote_lines < line_budget {
            if args.lines.is_some_and(|n| stats.lines >= n)
                || args.bytes.is_some_and(|n| stats.bytes >= n)
            {
                flush_all(&mut outs)?;
                break 'outer;
            }
            let i = next_file;
            next_file = (next_file + 1) % outs.len();
            let out = &mut outs[i];
            let before = out.buf.len();
            gen.push_line(&mut out.buf, i as u32, out.seq, ts);
            let n = (out.buf.len() - before) as u64;
            out.seq += 1;
            out.lines_since_rotate += 1;
            stats.lines_per_file[i] += 1;
            stats.lines += 1;
            stats.bytes += n;
            wrote_bytes += n;
            wrote_lines += 1;
            if out.buf.len() >= 1 << 20 {
                out.flush()?;
            }
            if args
                .rotate_every_lines
                .is_some_and(|k| out.lines_since_rotate >= k)
            {
                out.rotate()?;
                stats.rotations += 1;
            }
        }
        flush_all(&mut outs)?;
        if let (Some(at), Some(every)) = (next_rotate, rotate_every) {
            if Instant::now() >= at {
                for out in &mut outs {
                    out.rotate()?;
                    stats.rotations += 1;
                }
                next_rotate = Some(at + every);
            }
        }
        if args.rate_mb.is_some() || args.lines_per_sec.is_some() {
            std::thread::sleep(tick);
        }
    }
    flush_all(&mut outs)?;
    stats.end_us = now_us();
    let secs = (stats.end_us.saturating_sub(stats.start_us)) as f64 / 1e6;
    stats.mb_per_s = if secs > 0.0 {
        stats.bytes as f64 / 1e6 / secs
    } else {
        0.0
    };
    let json = serde_json::to_string_pretty(&stats)?;
    match &args.stats {
        Some(p) => std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?,
        None => eprintln!("{json}"),
    }
    Ok(())
}

fn flush_all(outs: &mut [Out]) -> Result<()> {
    outs.iter_mut().try_for_each(Out::flush)
}

static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if let Some(f) = FLAG.get() {
        f.store(true, Ordering::Relaxed);
    }
}

/// Minimal async-signal-safe handler: it only stores to an atomic.
fn install_flag(sig: libc::c_int, flag: &Arc<AtomicBool>) {
    let _ = FLAG.set(flag.clone());
    // SAFETY: the handler only performs an atomic store, which is
    // async-signal-safe; `signal` is called before any other thread exists.
    unsafe {
        libc::signal(
            sig,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}
