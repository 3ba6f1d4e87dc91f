//! `logferry merge OUT`: flags -> [`MergeSettings`], then the archive in
//! read-time order (and what follows with --follow). Exit 2 for a bad
//! flag (named), 1 when the archive cannot be read.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::MergeArgs;
use crate::fleet::filter::Filter;
use crate::fleet::merge::{self, MergeSettings};
use crate::fleet::print;
use crate::fleet::time;
use crate::shutdown::Shutdown;

pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("logferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let mut out = print::to_stdout(args.format);
    let counts = merge::run(&settings, &shutdown, &mut out)?;
    tracing::debug!(
        printed = counts.printed,
        generations = counts.generations,
        "merge done"
    );
    Ok(ExitCode::SUCCESS)
}

fn settings(a: &MergeArgs) -> Result<MergeSettings, String> {
    let now = time::now_ms();
    let since = a
        .since
        .as_deref()
        .map(|t| time::parse(t, now).map_err(|e| format!("--since {e}")))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|t| time::parse(t, now).map_err(|e| format!("--until {e}")))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(format!(
                "--since ({}) must be before --until ({})",
                time::format_ms(s),
                time::format_ms(u)
            ));
        }
    }
    Ok(MergeSettings {
        out: a.out.clone(),
        filter: Filter::new(a.host.as_deref(), a.path.as_deref(), a.grep.as_deref())
            .map_err(|e| e.to_string())?,
        since,
        until,
        follow: a.follow,
    })
}
