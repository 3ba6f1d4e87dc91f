//! `logferry generate`: files made from this command-line definition for
//! packages (shell completions, man pages), so they never drift from the
//! flags. Hidden from `--help`: an operator has no use for it.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generated,
}

#[derive(Debug, Subcommand)]
pub enum Generated {
    /// A completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Man pages into DIR: logferry.1 and one per subcommand
    /// (logferry-ship.1, ...).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}
