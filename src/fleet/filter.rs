//! What a person asked to see: a host glob and a path glob, matched on the
//! source attribution (before the value is looked at), and a regex on the
//! line.

use globset::{Glob, GlobBuilder, GlobMatcher};
use regex::bytes::Regex;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{flag} {pattern:?}: not a glob: {source}")]
    Glob {
        flag: &'static str,
        pattern: String,
        source: globset::Error,
    },
    #[error("--grep {pattern:?}: not a regular expression: {source}")]
    Regex {
        pattern: String,
        source: regex::Error,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    host: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
    grep: Option<Regex>,
}

impl Filter {
    /// Host globs match the whole name (`web*`); path globs are shell-like,
    /// `*` stops at `/` and `**` crosses it (`/var/log/**/*.log`).
    pub fn new(
        host: Option<&str>,
        path: Option<&str>,
        grep: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let host = host
            .map(|p| {
                Glob::new(p)
                    .map(|g| g.compile_matcher())
                    .map_err(|source| FilterError::Glob {
                        flag: "--host",
                        pattern: p.into(),
                        source,
                    })
            })
            .transpose()?;
        let path = path
            .map(|p| {
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map(|g| g.compile_matcher())
                    .map_err(|source| FilterError::Glob {
                        flag: "--path",
                        pattern: p.into(),
                        source,
                    })
            })
            .transpose()?;
        let grep = grep
            .map(|p| {
                Regex::new(p).map_err(|source| FilterError::Regex {
                    pattern: p.into(),
                    source,
                })
            })
            .transpose()?;
        Ok(Filter { host, path, grep })
    }

    /// Whether only attributed records can match (a host or path glob).
    pub fn needs_source(&self) -> bool {
        self.host.is_some() || self.path.is_some()
    }

    pub fn wants_source(&self, host: &str, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.host.as_ref().is_none_or(|g| g.is_match(host))
            && self
                .path
                .as_ref()
                .is_none_or(|g| g.is_match(std::ffi::OsStr::from_bytes(path)))
    }

    pub fn wants_line(&self, line: &[u8]) -> bool {
        self.grep.as_ref().is_none_or(|r| r.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_grep() {
        let f = Filter::new(Some("web[12]"), Some("/var/log/*.log"), Some("GET /a")).unwrap();
        assert!(f.needs_source());
        assert!(f.wants_source("web1", b"/var/log/x.log"));
        assert!(!f.wants_source("web3", b"/var/log/x.log"));
        assert!(
            !f.wants_source("web1", b"/var/log/nginx/x.log"),
            "* stops at /"
        );
        assert!(f.wants_line(b"1.2.3.4 GET /a/b"));
        assert!(!f.wants_line(b"POST /a"));
        let any = Filter::new(None, Some("/var/**/*.log"), None).unwrap();
        assert!(!any.needs_source() || any.wants_source("h", b"/var/log/nginx/x.log"));
        assert!(Filter::default().wants_line(b"\xff"));
    }

    #[test]
    fn bad_patterns_name_their_flag() {
        let e = Filter::new(Some("web[1"), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--host \"web[1\""), "{e}");
        let e = Filter::new(None, None, Some("(")).unwrap_err().to_string();
        assert!(e.starts_with("--grep \"(\""), "{e}");
    }
}
