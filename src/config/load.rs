//! Reading a file: TOML to raw structs, serde errors turned into placed
//! problems, then validation.

use std::path::Path;

use super::error::*;
use super::raw::*;
use super::validate::*;
use super::*;

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// A configuration file that passed validation.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: ShipSettings,
    /// Accepted but worth saying (e.g. acks other than all weakens the
    /// no-loss promise): logged by `ship`, printed by `check`.
    pub warnings: Vec<Problem>,
}

/// Read and validate the file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&src, path)
}

/// Validate `src`, the text of the file at `path` (named in errors).
pub fn parse(src: &str, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => return Err(invalid(vec![place(src, describe_toml_error(src, &e))])),
    };
    let mut v = Validator::new(src, Origin::File);
    let settings = v.validate(raw);
    if !v.issues.is_empty() {
        let mut problems: Vec<Problem> = v.issues.into_iter().map(|i| place(src, i)).collect();
        problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
        return Err(invalid(problems));
    }
    let settings = settings.expect("no issues means settings were built");
    Ok(LoadedConfig {
        settings,
        warnings: v.warnings.into_iter().map(|i| place(src, i)).collect(),
    })
}

/// Turn a serde/TOML error into a message that names the key and section.
pub(crate) fn describe_toml_error(src: &str, e: &toml::de::Error) -> Issue {
    let span = e.span();
    let mut msg = e.message().trim().to_string();
    if msg.contains("__toml_private_datetime") {
        // serde's view of a TOML date: say it plainly.
        msg = "a date or time is not a valid value here".into();
    }
    let span_text = span
        .as_ref()
        .and_then(|s| src.get(s.clone()))
        .unwrap_or("")
        .to_string();
    // TOML dates reach serde as maps; a map where no table was written is one.
    if msg.starts_with("invalid type: map") && !span_text.trim_start().starts_with(['{', '[']) {
        msg = msg.replacen("map", "date or time", 1);
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let names = backticked(rest);
        let key = names.first().cloned().unwrap_or(span_text);
        let expected: Vec<&str> = names.iter().skip(1).map(String::as_str).collect();
        let section = section_from_keys(&expected)
            .map(str::to_string)
            .or_else(|| span.as_ref().map(|s| section_at(src, s.start)))
            .unwrap_or_else(|| "the file".into());
        let mut message = format!("unknown key \"{key}\" in {section}");
        if !expected.is_empty() {
            message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        return Issue {
            span,
            key: Some(key),
            message,
        };
    }
    if msg == "duplicate key" {
        return Issue {
            span,
            key: Some(span_text.clone()),
            message: format!("duplicate key \"{span_text}\""),
        };
    }
    // A value that did not fit: name the key it belongs to.
    let key = span.as_ref().and_then(|s| {
        key_before(src, s.start).or_else(|| {
            // A table header where a value was expected: `[inputs]`.
            let t = span_text.trim();
            t.starts_with('[')
                .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        })
    });
    match key {
        Some(key) if !msg.contains("expected `.`, `=`") && !src_is_syntax_error(&msg) => {
            let section = span
                .as_ref()
                .map(|s| section_at(src, s.start))
                .unwrap_or_else(|| "the top level".into());
            let mut message = format!("bad value for \"{key}\" in {section}: {msg}");
            if key == "inputs" && msg.contains("expected a sequence") {
                message.push_str(" (write each input as an [[inputs]] table)");
            }
            Issue {
                span,
                key: Some(key),
                message,
            }
        }
        _ => Issue {
            span,
            key: None,
            message: format!("TOML syntax error: {msg}"),
        },
    }
}

/// Messages from the TOML parser itself (not from serde) are syntax errors.
pub(crate) fn src_is_syntax_error(msg: &str) -> bool {
    !(msg.starts_with("invalid type")
        || msg.starts_with("a date or time")
        || msg.starts_with("invalid value")
        || msg.starts_with("unknown variant")
        || msg.starts_with("invalid length")
        || msg.starts_with("a duration")
        || msg.starts_with("a size")
        || msg.starts_with("duration")
        || msg.starts_with("invalid duration")
        || msg.starts_with("invalid size"))
}

pub(crate) fn backticked(s: &str) -> Vec<String> {
    // `s` starts right after the first backtick.
    let mut out = Vec::new();
    let mut parts = s.split('`');
    if let Some(first) = parts.next() {
        out.push(first.to_string());
    }
    // After the first name: text, name, text, name...
    for (i, p) in parts.enumerate() {
        if i % 2 == 1 {
            out.push(p.to_string());
        }
    }
    out
}

pub(crate) fn section_from_keys(expected: &[&str]) -> Option<&'static str> {
    let same =
        |keys: &[&str]| keys.len() == expected.len() && keys.iter().all(|k| expected.contains(k));
    if same(TOP_KEYS) {
        Some("the top level")
    } else if same(KAFKA_KEYS) {
        Some("[kafka]")
    } else if same(CHECKPOINT_KEYS) {
        Some("[checkpoint]")
    } else if same(METRICS_KEYS) {
        Some("[metrics]")
    } else if same(INPUT_KEYS) {
        Some("[[inputs]]")
    } else if same(MULTILINE_KEYS) {
        Some("[inputs.multiline]")
    } else {
        None
    }
}

/// The `[table]` or `[[array]]` header in force at `offset`.
pub(crate) fn section_at(src: &str, offset: usize) -> String {
    let before = &src[..offset.min(src.len())];
    for line in before.lines().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            let end = t.rfind(']').map_or(t.len(), |i| i + 1);
            return t[..end].to_string();
        }
    }
    "the top level".into()
}

/// The key whose value starts at `offset`: the last `key =` before it, on
/// its line or the lines above (multi-line arrays), stopping at a header.
pub(crate) fn key_before(src: &str, offset: usize) -> Option<String> {
    let re = key_regex();
    let before = &src[..offset.min(src.len())];
    for line in before.rsplit('\n') {
        if line.trim_start().starts_with('[') && !line.contains('=') {
            return None;
        }
        if let Some(c) = re.captures_iter(line).last() {
            return Some(c[1].replace([' ', '\t', '"', '\''], ""));
        }
    }
    None
}

pub(crate) fn key_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r#"(?:^|[\s{,])((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="#,
        )
        .expect("static regex")
    })
}
