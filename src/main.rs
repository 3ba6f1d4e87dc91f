//! The `logferry` binary: parse arguments, set up logging, run the
//! subcommand (see `logferry::cmd`). Exit codes: 0 after a clean stop, 2
//! for bad arguments or configuration, 1 for a fatal runtime error.

use std::process::ExitCode;

use clap::Parser;
use logferry::cli::{Cli, Command, LogFormat};
use logferry::cmd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGFERRY_LOG")
        .unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        // One JSON object per line with the fields flat at the top, so a
        // collector indexes `path`, `generation`, ... without unpacking.
        LogFormat::Json => logs.json().flatten_event(true).init(),
        // Colour codes only for a person at a terminal: in journald, files
        // and pipes they are noise around every level and field.
        LogFormat::Human => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let result = match cli.command {
        Command::Ship(args) => cmd::ship::run(*args),
        Command::Check(args) => cmd::check::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Collect(args) => cmd::collect::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Tail(args) => cmd::tail::run(args),
        Command::Merge(args) => cmd::merge::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logferry: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
