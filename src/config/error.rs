//! Configuration errors: every problem placed at file, line, column and key.

use std::ops::Range;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column of the offending key or value, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key concerned (`start_at`, `kafka.properties."acks"`...).
    pub key: Option<String>,
    /// For quick-mode flags (no file): the flag concerned (`--topic`,
    /// `-X acks`), where a file's problem has its line and column.
    pub flag: Option<String>,
    pub message: String,
}

impl Problem {
    /// Where the problem is, for a message: `FILE:LINE` or the flag.
    pub fn location(&self, path: Option<&Path>) -> String {
        match (&self.flag, path) {
            (Some(flag), _) => flag.clone(),
            (None, Some(path)) => match self.line {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            },
            (None, None) => "logferry".into(),
        }
    }
}

/// Why a configuration file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line per problem: `FILE:LINE:COLUMN: message`.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    /// Quick-mode flags: one line per problem, `FLAG: message`.
    #[error("{}", render_flag_problems(problems))]
    Flags { problems: Vec<Problem> },
}

impl ConfigError {
    /// The problems found (empty for a file that could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } | ConfigError::Flags { problems } => problems,
        }
    }
}

pub(crate) fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&path.display().to_string());
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
            if let Some(col) = p.column {
                out.push_str(&format!(":{col}"));
            }
        }
        out.push_str(": ");
        out.push_str(&p.message);
    }
    out
}

pub(crate) fn render_flag_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.location(None), p.message))
        .collect();
    lines.join("\n")
}

/// A problem before it is placed in the file: a byte span and a message.
pub(crate) struct Issue {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

/// Byte offset -> 1-based (line, column in characters).
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

pub(crate) fn place(src: &str, issue: Issue) -> Problem {
    let (line, column) = match issue.span {
        Some(s) => {
            let (l, c) = line_col(src, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    Problem {
        line,
        column,
        key: issue.key,
        flag: None,
        message: issue.message,
    }
}
