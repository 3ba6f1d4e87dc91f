//! `logferry verify`: audit a topic against the source files, or every
//! input of a configuration file against its topics.

use std::process::ExitCode;

use anyhow::Context;

use super::report_config_error;
use crate::cli::{VerifyArgs, VerifyInput};
use crate::config;

/// `logferry verify`: 0 when no line is missing, 1 otherwise, 2 for bad
/// arguments or configuration.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.into_input() {
        Ok(VerifyInput::Flags(s)) => s,
        Ok(VerifyInput::Config {
            path,
            timeout,
            checkpoint_dir,
            read_uncommitted,
        }) => return run_config(&path, timeout, checkpoint_dir, read_uncommitted),
        Err(crate::cli::VerifyArgError::Invalid(e)) => {
            report_config_error(&e);
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("logferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = crate::verify::verify(&settings)
        .with_context(|| format!("verifying topic {}", settings.topic))?;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `verify -c FILE`: one audit per input and topic; every one must pass.
fn run_config(
    path: &std::path::Path,
    timeout: std::time::Duration,
    checkpoint_dir: Option<std::path::PathBuf>,
    read_uncommitted: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => {
            report_config_error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    // The agent's own state directory, when this machine has it: its loss
    // record counts as missing lines.
    let checkpoint_dir = checkpoint_dir.or_else(|| {
        let dir = &loaded.settings.checkpoint_dir;
        dir.is_dir().then(|| dir.clone())
    });
    let mut plan = crate::verify::plan_config(&loaded.settings, timeout, checkpoint_dir)
        .with_context(|| format!("planning the audit of {}", path.display()))?;
    if read_uncommitted {
        let (k, v) = crate::cli::READ_UNCOMMITTED;
        for audit in &mut plan.audits {
            audit.settings.kafka_props.push((k.into(), v.into()));
        }
    }
    for note in &plan.notes {
        println!("{note}");
    }
    let mut ok = true;
    for audit in &plan.audits {
        let s = &audit.settings;
        println!("input #{} -> topic {}:", audit.input, s.topic);
        match crate::verify::verify(s) {
            Ok(report) => {
                ok &= report.ok();
                println!("{report}");
            }
            Err(e) => {
                ok = false;
                println!("FAILED: cannot verify topic {}: {e}", s.topic);
            }
        }
    }
    println!(
        "{}",
        if ok {
            "verify: OK: every audited input complete"
        } else {
            "verify: FAILED: lines missing or changed, or a topic could not be read"
        }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
