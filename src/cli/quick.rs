//! tail2kafka's quick-mode flags (`ship -l FILE -t TOPIC ...`) as the raw
//! configuration of a file with one input, checked by the file's validator
//! (`crate::config::quick`), so a value means the same in both and a
//! problem names the flag.

use std::path::PathBuf;

use logferry_tail::LongLinePolicy;
use toml::Spanned;

use super::ShipArgs;
use crate::config::quick::{given, FlagNames};
use crate::config::raw::{
    self, PropTable, PropValue, RawCheckpoint, RawConfig, RawDuration, RawFormat, RawInput,
    RawKafka, RawLongLines, RawMetrics, RawPartitionBy, RawSize, RawStartAt, StringList,
};
use crate::config::{self, Attribution, ConfigError, LoadedConfig, PartitionBy};

/// Quick-mode flags that cannot be shipped from.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("ship needs a configuration file (-c FILE, or $LOGFERRY_CONFIG) or a file and a topic (-l FILE -t TOPIC); see `logferry ship --help`")]
    NoInput,
    /// Values the validator (or their conversion) refused, each naming its
    /// flag.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl ShipArgs {
    /// The configuration file to ship from: `-c`, else `env_config` (the
    /// value of $LOGFERRY_CONFIG) unless quick-mode `--file` was given.
    /// None: quick mode ([`Self::into_settings`]).
    pub fn config_path(&self, env_config: Option<std::ffi::OsString>) -> Option<PathBuf> {
        if let Some(c) = &self.config {
            return Some(c.clone());
        }
        if self.file.is_some() {
            return None;
        }
        env_config.filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// The quick-mode flags as the raw configuration of a file with one
    /// input, validated by the same validator as a file (warnings
    /// included). Problems name the flag.
    pub fn into_settings(self) -> Result<LoadedConfig, ArgError> {
        let (Some(file), Some(topic)) = (self.file, self.topic) else {
            return Err(ArgError::NoInput);
        };
        let mut flags = FlagNames::default();
        let mut problems = Vec::new();
        flags.set("include", "--file");
        flags.set("inputs", "--file");
        flags.set("topic", "--topic");
        flags.set("host", "--host");
        flags.set("metadata", "--metadata");
        flags.set("headers", "--header");
        flags.set("max_line_bytes", "--max-line-bytes");
        flags.set("pack_bytes", "--pack-bytes");
        flags.set("max_inflight_bytes", "--max-inflight-bytes");
        flags.set("shutdown_timeout", "--shutdown-timeout");
        flags.set("directory", "--checkpoint-dir");
        flags.set("listen", "--metrics-listen");
        flags.set("max_stall", "--max-stall");
        flags.set("max_bytes_per_sec", "--max-bytes-per-sec");
        flags.set("rotated", "--rotated");
        let brokers = match (self.brokers, self.broker_host) {
            (Some(b), _) => {
                flags.set("brokers", "--brokers");
                Some(b)
            }
            (None, Some(h)) => {
                flags.set("brokers", "--host-broker");
                Some(format!("{h}:{}", self.broker_port.unwrap_or(9092)))
            }
            (None, None) => None,
        };

        // -b and -w are librdkafka properties by other names; each
        // property is given once, as in a file.
        let mut props: Vec<(Spanned<String>, PropValue)> = Vec::new();
        let given_x = |k: &str| self.properties.iter().any(|(pk, _)| pk == k);
        if let Some(n) = self.batch_size {
            const KEY: &str = "batch.num.messages";
            flags.set(KEY, "--batch-size");
            if n == 0 {
                problems.push(flags.problem(KEY, "must be at least 1"));
            } else if given_x(KEY) {
                problems.push(
                    flags.problem(KEY, format!("sets {KEY}, and so does -X {KEY}; give one")),
                );
            }
            props.push((given(KEY.into()), PropValue::Scalar(n.to_string())));
        }
        if let Some(w) = self.batch_time {
            const KEY: &str = "linger.ms";
            flags.set(KEY, "--batch-time");
            match raw::seconds(w) {
                Err(why) => problems.push(flags.problem(KEY, why)),
                Ok(_) if given_x(KEY) => problems.push(
                    flags.problem(KEY, format!("sets {KEY}, and so does -X {KEY}; give one")),
                ),
                Ok(d) => props.push((
                    given(KEY.into()),
                    PropValue::Scalar(d.as_millis().to_string()),
                )),
            }
        }
        for (k, v) in self.properties {
            props.push((given(k), PropValue::Scalar(v)));
        }
        let shutdown_timeout = match self.shutdown_timeout.map(raw::seconds) {
            Some(Err(why)) => {
                problems.push(flags.problem("shutdown_timeout", why));
                None
            }
            Some(Ok(d)) => Some(given(RawDuration(d))),
            None => None,
        };
        let mut absolute = |key: &str, path: &PathBuf| match std::path::absolute(path) {
            Ok(p) => Some(p.to_string_lossy().into_owned()),
            Err(e) => {
                problems.push(flags.problem(
                    key,
                    format!("{}: cannot make the path absolute: {e}", path.display()),
                ));
                None
            }
        };
        // The path is a literal, not a glob: escape glob metacharacters.
        let include = absolute("include", &file).map(|f| globset_escape(&f));
        // Globs, made absolute against the working directory as --file is.
        let rotated: Vec<Spanned<String>> = self
            .rotated
            .iter()
            .filter_map(|g| absolute("rotated", &PathBuf::from(g)).map(given))
            .collect();
        let directory = self
            .checkpoint_dir
            .as_ref()
            .and_then(|d| absolute("directory", d));
        if !problems.is_empty() {
            return Err(ConfigError::Flags { problems }.into());
        }
        let mut headers = std::collections::BTreeMap::new();
        for (name, value) in self.headers {
            if headers.insert(name.clone(), value).is_some() {
                problems.push(flags.problem("headers", format!("{name} is given twice")));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Flags { problems }.into());
        }
        let input = RawInput {
            include: include.map(|i| given(StringList(vec![given(i)]))),
            exclude: None,
            topic: Some(given(topic)),
            start_at: self.from_beginning.then_some(RawStartAt::Beginning),
            format: self
                .metadata
                .is_some()
                .then(|| given(RawFormat::Tail2kafka)),
            metadata: self.metadata.map(given),
            partition_by: self.partition_by.map(|p| match p {
                PartitionBy::Generation => RawPartitionBy::Generation,
                PartitionBy::None => RawPartitionBy::None,
                PartitionBy::File => RawPartitionBy::File,
                PartitionBy::Host => RawPartitionBy::Host,
                PartitionBy::Pattern(_) => unreachable!("--partition-by has no pattern"),
            }),
            fields: None,
            headers: (!headers.is_empty()).then(|| given(headers)),
            max_line_bytes: self.max_line_bytes.map(|n| given(RawSize(n))),
            long_lines: self.long_lines.map(|l| match l {
                LongLinePolicy::Truncate => RawLongLines::Truncate,
                LongLinePolicy::Split => RawLongLines::Split,
            }),
            strip_cr: None,
            pack_bytes: self.pack_bytes.map(|n| given(RawSize(n))),
            partial_flush: None,
            max_bytes_per_sec: None,
            multiline: None,
            key_pattern: None,
            rotated: (!rotated.is_empty()).then(|| given(StringList(rotated))),
            backfill: None,
        };
        let raw = RawConfig {
            host: self.host.map(given),
            scan_interval: None,
            rotate_grace: None,
            max_open_files: None,
            attribution: if self.no_source_header {
                Some(Attribution::Off)
            } else {
                self.attribution
            },
            max_bytes_per_sec: self.max_bytes_per_sec.map(|n| given(RawSize(n))),
            kafka: Some(RawKafka {
                brokers: brokers.map(|b| given(StringList(vec![given(b)]))),
                properties: (!props.is_empty()).then(|| given(PropTable(props))),
                max_inflight_bytes: self.max_inflight_bytes.map(|n| given(RawSize(n))),
                shutdown_timeout,
                exactly_once: self.exactly_once.then(|| given(true)),
                ..RawKafka::default()
            }),
            checkpoint: directory.map(|d| RawCheckpoint {
                directory: Some(given(d)),
                interval: None,
            }),
            metrics: self.metrics_listen.map(|addr| RawMetrics {
                listen: Some(given(addr)),
                max_stall: self.max_stall.map(|d| given(RawDuration(d))),
                top_files: None,
            }),
            inputs: Some(vec![given(input)]),
        };
        Ok(config::quick::validate(raw, &flags)?)
    }
}

pub fn globset_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// collect
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::{Brokers, StartAt};
    use crate::wire::Format;
    use clap::Parser;

    fn ship(args: &[&str]) -> ShipArgs {
        let mut v = vec!["logferry", "ship"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Ship(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn tail2kafka_flags_mean_what_they_meant() {
        let s = ship(&[
            "-l",
            "/var/log/a.log",
            "-t",
            "web",
            "-s",
            "kafka1",
            "-p",
            "9093",
            "-m",
            "web1",
            "-b",
            "500",
            "-w",
            "2",
        ])
        .into_settings()
        .unwrap()
        .settings;
        assert_eq!(s.brokers, Brokers::List("kafka1:9093".into()));
        let i = &s.inputs[0];
        assert_eq!(i.include, ["/var/log/a.log"]);
        assert_eq!(i.topic, "web");
        assert_eq!(
            i.format,
            Format::Tail2Kafka {
                meta: b"web1".to_vec()
            }
        );
        assert_eq!(i.start_at, StartAt::End);
        assert!(s
            .kafka_props
            .contains(&("batch.num.messages".into(), "500".into())));
        assert!(s.kafka_props.contains(&("linger.ms".into(), "2000".into())));
    }

    #[test]
    fn long_forms_and_passthrough() {
        let s = ship(&[
            "--file",
            "/x/a.log",
            "--topic",
            "t",
            "--brokers",
            "h1:1,h2:2",
            "-X",
            "compression.type=zstd",
            "--batch-time",
            "0.05",
        ])
        .into_settings()
        .unwrap()
        .settings;
        assert_eq!(s.brokers, Brokers::List("h1:1,h2:2".into()));
        assert!(s
            .kafka_props
            .contains(&("compression.type".into(), "zstd".into())));
        assert!(s.kafka_props.contains(&("linger.ms".into(), "50".into())));
    }

    #[test]
    fn default_port_and_glob_escaping() {
        let s = ship(&["-l", "/x/a[1].log", "-t", "t", "-s", "k"])
            .into_settings()
            .unwrap()
            .settings;
        assert_eq!(s.brokers, Brokers::List("k:9092".into()));
        assert_eq!(s.inputs[0].include, ["/x/a[[]1[]].log"]);
    }

    #[test]
    fn rotated_globs_are_made_absolute_and_backfill_is_a_run_flag() {
        let s = ship(&[
            "-l",
            "/x/a.log",
            "-t",
            "t",
            "--rotated",
            "/x/archive/a-*",
            "--rotated",
            "old/a-*.gz",
        ])
        .into_settings()
        .unwrap()
        .settings;
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            s.inputs[0].rotated,
            [
                "/x/archive/a-*".to_string(),
                cwd.join("old/a-*.gz").to_string_lossy().into_owned()
            ]
        );
        // --backfill goes with a configuration file too (it applies to
        // every input), unlike the quick-mode flags.
        let a = ship(&["-c", "/etc/logferry.toml", "--backfill"]);
        assert!(a.backfill);
        let mut v = vec!["logferry", "ship", "-c", "/etc/l.toml", "--rotated", "/x/*"];
        assert!(Cli::try_parse_from(v.drain(..)).is_err());
    }

    /// The messages of the problems the quick-mode flags `args` give.
    fn problems(args: &[&str]) -> Vec<String> {
        match ship(args).into_settings() {
            Err(ArgError::Invalid(e)) => e.to_string().lines().map(str::to_string).collect(),
            Err(e) => panic!("{args:?}: expected invalid flags, got {e}"),
            Ok(_) => panic!("{args:?}: expected invalid flags"),
        }
    }

    #[test]
    fn flags_pass_the_file_validator_and_name_the_flag() {
        let q = |extra: &[&str]| {
            let mut v = vec!["-l", "/x/a.log", "-t", "t"];
            v.extend_from_slice(extra);
            problems(&v)
        };
        assert_eq!(
            problems(&["-l", "/x", "-t", "bad topic!"]),
            ["--topic: \"bad topic!\": a topic name may only contain letters, digits, '.', '_' and '-', not ' '"]
        );
        assert_eq!(
            problems(&["-l", "/x", "-t", ""]),
            ["--topic: must not be empty"]
        );
        assert_eq!(
            q(&["--max-line-bytes", "0"]),
            ["--max-line-bytes: must be at least 1, got 0"]
        );
        assert_eq!(
            q(&["--host", ""]),
            ["--host: must not be empty (omit it to use this machine's name)"]
        );
        assert_eq!(
            q(&["--max-inflight-bytes", "1000"]),
            ["--max-inflight-bytes: must be at least 65536, got 1000"]
        );
        assert_eq!(q(&["-m", ""]), ["--metadata: must not be empty"]);
        assert_eq!(
            q(&["--brokers", "k:x"]),
            ["--brokers: broker \"k:x\": bad port \"x\""]
        );
        // librdkafka checks each -X; conflicts are named as in a file.
        let p = q(&["-X", "linger.msx=5"]);
        assert!(p[0].starts_with("-X linger.msx: "), "{p:?}");
        let p = q(&["-X", "acks=1"]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("-X acks: kafka.properties \"enable.idempotence\" = \"true\" (logferry's default) conflicts with \"acks\" = \"1\""), "{p:?}");
        assert_eq!(
            q(&["-X", "a.b=1", "-X", "linger.ms=1", "-X", "linger.ms=2"]).len(),
            2
        );
        assert!(q(&["-X", "linger.ms=1", "-X", "linger.ms=2"])
            .contains(&"-X linger.ms: is set twice".to_string()));
        assert_eq!(
            q(&["-X", "bootstrap.servers=k:1"]),
            ["-X bootstrap.servers: give --brokers instead"]
        );
        assert_eq!(
            q(&["-w", "1", "-X", "linger.ms=5"]),
            ["--batch-time: sets linger.ms, and so does -X linger.ms; give one"]
        );
        assert_eq!(q(&["-b", "0"]), ["--batch-size: must be at least 1"]);
        assert_eq!(
            q(&["--batch-time=-1"]),
            ["--batch-time: a duration must be a non-negative number of seconds, got -1"]
        );
        assert_eq!(
            q(&["-H", "a=1", "-H", "a=2"]),
            ["--header: a is given twice"]
        );
        // Every problem at once, as for a file.
        assert_eq!(
            problems(&[
                "-l",
                "/x",
                "-t",
                "bad topic!",
                "--max-line-bytes",
                "0",
                "--host",
                ""
            ])
            .len(),
            3
        );
    }

    #[test]
    fn rate_limit_and_max_stall_flags() {
        let s = ship(&[
            "-l",
            "/x",
            "-t",
            "t",
            "--max-bytes-per-sec",
            "5MB",
            "--metrics-listen",
            "127.0.0.1:9898",
            "--max-stall",
            "15s",
        ])
        .into_settings()
        .unwrap()
        .settings;
        assert_eq!(s.max_bytes_per_sec, Some(5_000_000));
        assert_eq!(
            s.metrics.unwrap().max_stall,
            std::time::Duration::from_secs(15)
        );
        let q = |extra: &[&str]| {
            let mut v = vec!["-l", "/x", "-t", "t"];
            v.extend_from_slice(extra);
            problems(&v)
        };
        assert_eq!(
            q(&["--max-bytes-per-sec", "0"]),
            ["--max-bytes-per-sec: must be at least 1 byte per second (omit it for no limit)"]
        );
        assert_eq!(
            q(&["--metrics-listen", "127.0.0.1:1", "--max-stall", "0"]),
            ["--max-stall: must be above zero"]
        );
        for bad in [&["--max-bytes-per-sec", "fast"][..], &["--max-stall", "5s"]] {
            let mut v = vec!["logferry", "ship", "-l", "/x", "-t", "t"];
            v.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn weak_acks_warn_as_in_a_file() {
        let l = ship(&[
            "-l",
            "/x",
            "-t",
            "t",
            "-X",
            "acks=1",
            "-X",
            "enable.idempotence=false",
        ])
        .into_settings()
        .unwrap();
        let file = crate::config::parse(
            "[kafka.properties]\n\"enable.idempotence\" = false\nacks = 1\n[[inputs]]\ninclude = \"/x\"\ntopic = \"t\"\n",
            std::path::Path::new("/etc/logferry.toml"),
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 1);
        assert_eq!(l.warnings[0].message, file.warnings[0].message);
        assert_eq!(l.warnings[0].location(None), "-X acks");
        assert!(l.warnings[0].message.contains("no-loss promise"));
    }

    #[test]
    fn flags_and_file_give_the_same_defaults() {
        let flags = ship(&["-l", "/x", "-t", "t"])
            .into_settings()
            .unwrap()
            .settings;
        let file = crate::config::parse(
            "[[inputs]]\ninclude = \"/x\"\ntopic = \"t\"\n",
            std::path::Path::new("/etc/logferry.toml"),
        )
        .unwrap()
        .settings;
        assert_eq!(format!("{flags:?}"), format!("{file:?}"));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x"]).is_err(),
            "topic is required"
        );
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x", "-t", "t", "-X", "novalue"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["logferry", "ship", "-l", "/x", "-t", "t", "-p", "1"]).is_err(),
            "-p needs -s"
        );
    }
}
