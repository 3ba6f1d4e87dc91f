//! `logferry generate`: shell completions and man pages from the CLI
//! definition (clap's own generators), for `scripts/package`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, GenerateArgs, Generated};

pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Generated::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "logferry",
                &mut std::io::stdout(),
            );
        }
        Generated::Man { dir } => {
            for page in man_pages(&dir)? {
                println!("{page}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `logferry.1` and a page per visible subcommand into `dir`
/// (created if missing); the names of the pages written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("logferry") && n.ends_with(".1"))
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        for want in [
            "logferry.1",
            "logferry-ship.1",
            "logferry-check.1",
            "logferry-collect.1",
            "logferry-collect-status.1",
            "logferry-status.1",
            "logferry-verify.1",
        ] {
            assert!(pages.iter().any(|p| p == want), "{want} in {pages:?}");
        }
        assert!(
            !pages.iter().any(|p| p.contains("generate")),
            "the hidden subcommand has no page: {pages:?}"
        );
        let ship = std::fs::read_to_string(dir.path().join("logferry-ship.1")).unwrap();
        assert!(ship.contains("max\\-bytes\\-per\\-sec"), "{ship}");
    }

    #[test]
    fn completions_know_the_subcommands_and_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "logferry", &mut out);
            let text = String::from_utf8(out).unwrap();
            for want in ["ship", "collect", "max-bytes-per-sec", "checkpoint-dir"] {
                assert!(text.contains(want), "{shell}: {want}");
            }
        }
    }

    #[test]
    fn generate_is_hidden_from_help() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("ship"), "{help}");
        assert!(!help.contains("generate"), "{help}");
    }
}
