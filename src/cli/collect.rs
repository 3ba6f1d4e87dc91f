//! `logferry collect`'s quick flags as the raw form of a collector's file,
//! checked by the file's validator (`crate::config::validate::collect`),
//! so a value means the same in both and every problem is reported at
//! once, each naming its flag.

use toml::Spanned;

use super::CollectArgs;
use super::READ_UNCOMMITTED;
use crate::config::collect::{
    validate_flags, CollectSettings, RawCollect, RawCollectFile, RawCollectMetrics, RawIndexTopic,
};
use crate::config::quick::{given, FlagNames};
use crate::config::raw::{PropTable, PropValue, RawDuration, RawKafka, RawSize, StringList};
use crate::config::ConfigError;

impl CollectArgs {
    /// The settings the flags describe; every problem, each at its flag.
    pub fn into_settings(self) -> Result<CollectSettings, ConfigError> {
        let mut flags = FlagNames::default();
        for (key, flag) in [
            ("topics", "--topic"),
            ("out", "--out"),
            ("group", "--group"),
            ("gap_timeout", "--gap-timeout"),
            ("commit_interval", "--commit-interval"),
            ("metadata", "--metadata"),
            ("max_hole", "--max-hole"),
            ("index_topic", "--index-topic"),
            ("brokers", "--brokers"),
            ("listen", "--metrics-listen"),
            ("max_stall", "--max-stall"),
        ] {
            flags.set(key, flag);
        }
        let mut problems = Vec::new();
        let out = match self.out.map(|o| o.into_os_string().into_string()) {
            Some(Ok(o)) => Some(given(o)),
            Some(Err(_)) => {
                problems.push(flags.problem("out", "must be valid UTF-8"));
                None
            }
            None => None,
        };
        let duration = |d: Option<std::time::Duration>| d.map(|d| given(RawDuration(d)));
        let props: Vec<(Spanned<String>, PropValue)> = self
            .properties
            .into_iter()
            .map(|(k, v)| (given(k), PropValue::Scalar(v)))
            .collect();
        let raw = RawCollectFile {
            kafka: Some(RawKafka {
                brokers: self.brokers.map(|b| given(StringList(vec![given(b)]))),
                properties: (!props.is_empty()).then(|| given(PropTable(props))),
                ..RawKafka::default()
            }),
            collect: Some(given(RawCollect {
                topics: Some(given(StringList(
                    self.topics.into_iter().map(given).collect(),
                ))),
                group: self.group.map(given),
                out,
                gap_timeout: duration(self.gap_timeout),
                commit_interval: duration(self.commit_interval),
                metadata: self.metadata.map(given),
                max_hole: self.max_hole.map(|n| given(RawSize(n))),
                index_topic: match (self.no_index_topic, self.index_topic) {
                    (true, _) => Some(given(RawIndexTopic::Off(false))),
                    (false, t) => t.map(|t| given(RawIndexTopic::Name(t))),
                },
                ..RawCollect::default()
            })),
            metrics: self.metrics_listen.map(|listen| {
                given(RawCollectMetrics {
                    listen: Some(given(listen)),
                    max_stall: duration(self.max_stall),
                })
            }),
        };
        let mut settings = match validate_flags(raw, &flags) {
            Ok(s) if problems.is_empty() => s,
            Ok(_) => return Err(ConfigError::Flags { problems }),
            Err(ConfigError::Flags { problems: more }) => {
                problems.extend(more);
                return Err(ConfigError::Flags { problems });
            }
            Err(e) => return Err(e),
        };
        if self.read_uncommitted {
            settings
                .kafka_props
                .push((READ_UNCOMMITTED.0.into(), READ_UNCOMMITTED.1.into()));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::config::ConfigError;

    fn flags(args: &[&str]) -> Result<crate::config::collect::CollectSettings, ConfigError> {
        let mut v = vec!["logferry", "collect"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Collect(a) => a.into_settings(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_problem_of_the_flags_is_reported_at_its_flag() {
        let e = flags(&[
            "-t",
            "",
            "--gap-timeout",
            "0s",
            "--commit-interval",
            "0s",
            "--max-hole",
            "0",
            "--group",
            "",
            "--metrics-listen",
            "localhost:1",
            "--max-stall",
            "0s",
            "-X",
            "enable.auto.commit=true",
            "-X",
            "no.such.property=1",
        ])
        .unwrap_err();
        let text = e.to_string();
        for want in [
            "--topic: ",
            "--out: the output directory is required",
            "--gap-timeout: must be more than 0",
            "--commit-interval: must be more than 0",
            "--max-hole: must be more than 0",
            "--group: cannot be empty",
            "--metrics-listen: must be IP:PORT",
            "--max-stall: must be more than 0",
            "-X enable.auto.commit: ",
            "-X no.such.property: librdkafka refuses",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert_eq!(e.problems().len(), 10, "{text}");
        // Flags' messages do not speak of the file's sections.
        assert!(!text.contains("[collect]"), "{text}");
    }

    #[test]
    fn good_flags_make_the_same_settings_as_a_file() {
        let s = flags(&[
            "-t",
            "a",
            "-t",
            "b",
            "-o",
            "/srv/logs",
            "--commit-interval",
            "500ms",
            "--no-index-topic",
            "--read-uncommitted",
        ])
        .unwrap();
        let f = crate::config::collect::parse_collect(
            "[collect]\ntopics = [\"a\", \"b\"]\nout = \"/srv/logs\"\ncommit_interval = \"500ms\"\nindex_topic = false\n[kafka.properties]\n\"isolation.level\" = \"read_uncommitted\"\n",
            std::path::Path::new("/c.toml"),
        )
        .unwrap();
        assert_eq!(format!("{s:?}"), format!("{f:?}"));
    }
}
