//! `logferry status`: where every file stands, from the checkpoint store
//! and the files themselves. It only reads (no directory created, no
//! lock taken), so it runs beside an agent that holds the directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use logferry_tail::{Checkpointer, FileCheckpoint};
use serde::Serialize;

use super::report_config_error;
use crate::cli::StatusArgs;
use crate::config;

/// One file as `status` shows it.
#[derive(Debug, Serialize)]
pub struct FileRow {
    pub path: String,
    pub generation: String,
    /// Device and inode when last seen (`dev:ino`).
    pub id: String,
    /// The file's size now when it is still there under `path`, else the
    /// size the agent last knew of.
    pub size: u64,
    /// End of the acknowledged prefix: what the agent resumes from.
    pub position: u64,
    pub lag_bytes: u64,
    /// When the agent last saved this entry (seconds since the epoch):
    /// the position was acknowledged by then.
    pub updated: u64,
    /// `present` (the file under `path` is this one), `moved` (another
    /// file is there now), `gone` (nothing is).
    pub state: &'static str,
}

fn row(cp: &FileCheckpoint) -> FileRow {
    let (size, state) = match std::fs::metadata(&cp.path) {
        Ok(m) if m.dev() == cp.id.dev && m.ino() == cp.id.ino => {
            (m.len().max(cp.position), "present")
        }
        Ok(_) => (cp.size.max(cp.position), "moved"),
        Err(_) => (cp.size.max(cp.position), "gone"),
    };
    FileRow {
        path: cp.path.clone(),
        generation: cp.generation.to_string(),
        id: cp.id.to_string(),
        size,
        position: cp.position,
        lag_bytes: size - cp.position,
        updated: cp.updated,
        state,
    }
}

/// The rows for the checkpoint store in `dir`, by path.
pub fn rows(dir: &Path) -> Result<Vec<FileRow>, logferry_tail::CheckpointError> {
    let path = Checkpointer::file_in(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(logferry_tail::CheckpointError::Read { path, source }),
    };
    let mut rows: Vec<FileRow> = Checkpointer::decode(&path, &text)?
        .iter()
        .map(row)
        .collect();
    rows.sort_by(|a, b| (&a.path, a.updated).cmp(&(&b.path, b.updated)));
    Ok(rows)
}

fn table(rows: &[FileRow]) -> String {
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:<16}  {:>12}  {:>12}  {:>10}  {:<19}  STATE\n",
        "PATH", "GENERATION", "SIZE", "ACKED", "LAG", "SAVED (UTC)"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<width$}  {:<16}  {:>12}  {:>12}  {:>10}  {:<19}  {}\n",
            r.path,
            r.generation,
            r.size,
            r.position,
            r.lag_bytes,
            utc(r.updated),
            r.state
        ));
    }
    let lag: u64 = rows.iter().map(|r| r.lag_bytes).sum();
    out.push_str(&format!("{} files, {lag} bytes behind\n", rows.len()));
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, without a date crate (civil from days,
/// after Howard Hinnant's algorithm).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let dir: PathBuf = match (&args.config, &args.checkpoint_dir) {
        (_, Some(d)) => d.clone(),
        (Some(c), None) => match config::load(c) {
            Ok(loaded) => loaded.settings.checkpoint_dir,
            Err(e) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
        },
        (None, None) => config::default_checkpoint_dir(),
    };
    if let Some(secs) = args.watch {
        if !(secs.is_finite() && secs > 0.0) {
            eprintln!("logferry: --watch: must be a number of seconds above 0, got {secs}");
            return Ok(ExitCode::from(2));
        }
    }
    loop {
        let rows = rows(&dir).with_context(|| format!("reading {}", dir.display()))?;
        let out = if args.json {
            serde_json::to_string_pretty(&rows)? + "\n"
        } else {
            table(&rows)
        };
        match args.watch {
            None => {
                print!("{out}");
                return Ok(ExitCode::SUCCESS);
            }
            Some(secs) => {
                // Clear the screen and home the cursor, then redraw.
                print!("\x1b[2J\x1b[H{}  (every {secs} s)\n{out}", dir.display());
                std::thread::sleep(Duration::from_secs_f64(secs));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13:20");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }
}
