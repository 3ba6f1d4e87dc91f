//! tail2kafka's quick-mode flags through the one validator. The command
//! line (`crate::cli::ShipArgs`) is turned into the raw configuration a
//! file with one input would give, and checked by the same [`Validator`],
//! so `-t 'bad topic!'`, `--max-line-bytes 0` or `-X acks=1` mean what they
//! mean in a file. Problems name the flag instead of a line and column.

use toml::Spanned;

use super::error::*;
use super::raw::*;
use super::validate::*;
use super::*;

/// A value given by a flag: it has no place in any file. The validator's
/// spans are only used to place file problems; flags are placed by key.
pub(crate) fn given<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Which flag gave which key, for messages: the keys of the raw
/// configuration (`topic`, `max_line_bytes`...) and librdkafka property
/// names. A property not listed came from `-X`.
#[derive(Debug, Default)]
pub(crate) struct FlagNames(Vec<(String, String)>);

impl FlagNames {
    pub(crate) fn set(&mut self, key: &str, flag: &str) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), flag.to_string()));
    }

    fn of(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| format!("-X {key}"), |(_, f)| f.clone())
    }

    /// A problem found before validation (a value that does not convert).
    pub(crate) fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            line: None,
            column: None,
            key: Some(key.to_string()),
            flag: Some(self.of(key)),
            message: message.into(),
        }
    }
}

/// Validate the raw configuration built from flags; `flags` names the flag
/// behind each key.
pub(crate) fn validate(raw: RawConfig, flags: &FlagNames) -> Result<LoadedConfig, ConfigError> {
    let mut v = Validator::new("", Origin::Flags);
    let settings = v.validate(raw);
    let place = |i: Issue| {
        let key = i.key.unwrap_or_default();
        flags.problem(&key, i.message)
    };
    if !v.issues.is_empty() {
        return Err(ConfigError::Flags {
            problems: v.issues.into_iter().map(place).collect(),
        });
    }
    Ok(LoadedConfig {
        settings: settings.expect("no issues means settings were built"),
        warnings: v.warnings.into_iter().map(place).collect(),
    })
}
