//! `logferry verify`: audit a topic against the source files.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::VerifyArgs;

/// `logferry verify`: audit a topic against the source files.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = args.into_settings();
    let report = crate::verify::verify(&settings)
        .with_context(|| format!("verifying topic {}", settings.topic))?;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
