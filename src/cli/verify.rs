//! `logferry verify`'s flags: how the records were shipped (topic, host,
//! metadata, max line bytes, brokers) is the raw configuration of a file
//! with one input, checked by ship's validator, so a value means what it
//! means to `ship` and every problem is reported at once, at its flag.
//! `-X` properties are the consumer's, checked by librdkafka.

use std::time::Duration;

use toml::Spanned;

use super::quick::globset_escape;
use super::{VerifyArgs, VerifyInput, READ_UNCOMMITTED};
use crate::config::quick::{given, FlagNames};
use crate::config::raw::{RawConfig, RawFormat, RawInput, RawKafka, RawSize, StringList};
use crate::config::{self, Brokers, ConfigError};

/// Why `logferry verify`'s arguments cannot be audited.
#[derive(Debug, thiserror::Error)]
pub enum VerifyArgError {
    #[error("verify needs a configuration file (-c FILE) or a topic and files (-t TOPIC FILE...); see `logferry verify --help`")]
    NoInput,
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl VerifyArgs {
    pub fn into_input(self) -> Result<VerifyInput, VerifyArgError> {
        let timeout = Duration::from_secs(self.timeout);
        if let Some(path) = self.config {
            return Ok(VerifyInput::Config {
                path,
                timeout,
                checkpoint_dir: self.checkpoint_dir,
                read_uncommitted: self.read_uncommitted,
            });
        }
        let Some(topic) = self.topic.filter(|_| !self.files.is_empty()) else {
            return Err(VerifyArgError::NoInput);
        };
        let mut flags = FlagNames::default();
        for (key, flag) in [
            ("include", "FILE"),
            ("inputs", "FILE"),
            ("topic", "--topic"),
            ("host", "--host"),
            ("metadata", "--metadata"),
            ("max_line_bytes", "--max-line-bytes"),
            ("brokers", "--brokers"),
        ] {
            flags.set(key, flag);
        }
        let mut problems = Vec::new();
        // The files audited are given one by one; the validator sees the
        // first as the input's path (it checks one the same way as all).
        let include = match std::path::absolute(&self.files[0]) {
            Ok(p) => Some(globset_escape(&p.to_string_lossy())),
            Err(e) => {
                problems.push(flags.problem(
                    "include",
                    format!(
                        "{}: cannot make the path absolute: {e}",
                        self.files[0].display()
                    ),
                ));
                None
            }
        };
        for (k, v) in &self.properties {
            let mut cfg = rdkafka::ClientConfig::new();
            cfg.set(k, v);
            if let Err(e) = cfg.create_native_config() {
                problems.push(flags.problem(k, format!("librdkafka refuses \"{k}\": {e}")));
            }
        }
        let input = RawInput {
            include: include.map(|i| given(StringList(vec![given(i)]))),
            topic: Some(given(topic.clone())),
            format: self
                .metadata
                .is_some()
                .then(|| given(RawFormat::Tail2kafka)),
            metadata: self.metadata.map(given),
            max_line_bytes: self.max_line_bytes.map(|n| given(RawSize(n))),
            ..RawInput::default()
        };
        let raw = RawConfig {
            host: self.host.map(given),
            kafka: Some(RawKafka {
                brokers: Some(given(StringList(vec![given(self.brokers)]))),
                ..RawKafka::default()
            }),
            inputs: Some(vec![Spanned::new(0..0, input)]),
            ..RawConfig::default()
        };
        let settings = match config::quick::validate(raw, &flags) {
            Ok(loaded) if problems.is_empty() => loaded.settings,
            Ok(_) => return Err(ConfigError::Flags { problems }.into()),
            Err(ConfigError::Flags { problems: more }) => {
                problems.extend(more);
                return Err(ConfigError::Flags { problems }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let input = &settings.inputs[0];
        let mut kafka_props = self.properties;
        if self.read_uncommitted {
            kafka_props.push((READ_UNCOMMITTED.0.into(), READ_UNCOMMITTED.1.into()));
        }
        Ok(VerifyInput::Flags(crate::verify::VerifySettings {
            brokers: match &settings.brokers {
                Brokers::List(b) => b.clone(),
                Brokers::Embedded => unreachable!("verify's --brokers is a list"),
            },
            topic: input.topic.clone(),
            files: self.files,
            host: settings.host.clone(),
            format: input.format.clone(),
            max_line_bytes: input.max_line_bytes,
            long_lines: input.long_lines,
            strip_cr: input.strip_cr,
            timeout,
            kafka_props,
            checkpoint_dir: self.checkpoint_dir,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn verify(args: &[&str]) -> Result<VerifyInput, VerifyArgError> {
        let mut v = vec!["logferry", "verify"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Verify(a) => a.into_input(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_are_checked_as_ship_checks_them_every_problem_at_once() {
        let e = verify(&[
            "-t",
            "bad topic!",
            "--max-line-bytes",
            "0",
            "--brokers",
            "",
            "-X",
            "no.such.property=1",
            "/var/log/a.log",
        ])
        .unwrap_err();
        let text = e.to_string();
        for flag in [
            "--topic: ",
            "--max-line-bytes: ",
            "--brokers: ",
            "-X no.such.property: ",
        ] {
            assert!(text.contains(flag), "{flag} missing from:\n{text}");
        }
        let VerifyArgError::Invalid(e) = e else {
            panic!("{text}")
        };
        assert_eq!(e.problems().len(), 4, "{text}");
    }

    #[test]
    fn good_flags_keep_their_meaning() {
        let VerifyInput::Flags(s) = verify(&[
            "-t",
            "web",
            "--host",
            "h1",
            "-m",
            "web1",
            "--max-line-bytes",
            "1KiB",
            "--brokers",
            "k1:9092",
            "/var/log/a.log",
            "/var/log/a.log.1",
        ])
        .unwrap() else {
            panic!("not flags")
        };
        assert_eq!((s.topic.as_str(), s.host.as_str()), ("web", "h1"));
        assert_eq!(s.max_line_bytes, 1024);
        assert_eq!(s.files.len(), 2);
        assert_eq!(
            s.format,
            crate::wire::Format::Tail2Kafka {
                meta: b"web1".to_vec()
            }
        );
    }
}
