//! Unit tests of loading and validating configuration files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_tail::LongLinePolicy;

use super::error::*;
use super::kafka::*;
use super::raw::*;
use super::*;
use crate::cmd::check::summary;
use crate::config;
use crate::wire::Format;

fn ok(src: &str) -> LoadedConfig {
    match parse(src, Path::new("/etc/logferry.toml")) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid file, got:\n{e}"),
    }
}

fn err(src: &str) -> (String, Vec<Problem>) {
    match parse(src, Path::new("/etc/logferry.toml")) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => (e.to_string(), e.problems().to_vec()),
    }
}

const MINIMAL: &str = r#"
[[inputs]]
include = ["/var/log/app.log"]
topic = "app"
"#;

#[test]
fn minimal_file_gets_the_quick_mode_defaults() {
    let s = ok(MINIMAL).settings;
    assert_eq!(s.brokers, Brokers::List("localhost:9092".into()));
    assert!(s.kafka_props.is_empty());
    assert_eq!(s.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);
    assert_eq!(
        s.max_inflight_bytes,
        ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES
    );
    assert_eq!(s.scan_interval, DEFAULT_SCAN_INTERVAL);
    assert_eq!(s.rotate_grace, DEFAULT_ROTATE_GRACE);
    assert_eq!(s.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(s.max_open_files, ShipSettings::DEFAULT_MAX_OPEN_FILES);
    assert_eq!(s.attribution, Attribution::Key);
    assert_eq!(s.host, config::host_name());
    let i = &s.inputs[0];
    assert_eq!(i.include, ["/var/log/app.log"]);
    assert!(i.exclude.is_empty());
    assert_eq!(i.topic, "app");
    assert_eq!(i.start_at, StartAt::End);
    assert_eq!(i.format, Format::Raw);
    assert_eq!(i.partition_by, PartitionBy::Generation);
    assert_eq!(i.max_line_bytes, ShipSettings::DEFAULT_MAX_LINE_BYTES);
    assert_eq!(i.long_lines, LongLinePolicy::Truncate);
    assert!(!i.strip_cr);
    assert!(i.partial_flush.is_none());
    assert!(i.multiline.is_none());
    assert_eq!(s.max_bytes_per_sec, None);
    assert_eq!(i.max_bytes_per_sec, None);
}

#[test]
fn read_rate_limits_take_sizes_per_second() {
    let loaded = ok(r#"
max_bytes_per_sec = "5MB"
[metrics]
listen = "127.0.0.1:9898"
max_stall = "30s"
top_files = 5
[[inputs]]
include = "/var/log/a.log"
topic = "a"
max_bytes_per_sec = "512KiB"
[[inputs]]
include = "/var/log/b.log"
topic = "b"
max_bytes_per_sec = 1000
"#);
    let s = &loaded.settings;
    assert_eq!(s.max_bytes_per_sec, Some(5_000_000));
    assert_eq!(s.inputs[0].max_bytes_per_sec, Some(512 << 10));
    assert_eq!(s.inputs[1].max_bytes_per_sec, Some(1000));
    // `check` says what they are, and what [metrics] is.
    let out = summary(Path::new("/etc/logferry.toml"), &loaded);
    for want in [
        "read rate: 5MB per second\n",
        "metrics: /metrics and /health on 127.0.0.1:9898, max_stall 30s, top_files 5\n",
        "     read at most 512KiB per second\n",
        "     read at most 1kB per second\n",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    let out = summary(Path::new("/etc/logferry.toml"), &ok(MINIMAL));
    assert!(out.contains("read rate: no limit\n"), "{out}");
    assert!(
        out.contains("metrics: off (no [metrics] listen)\n"),
        "{out}"
    );
    // A value that is no size is refused by the parser, naming the key.
    let (msg, p) =
        err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nmax_bytes_per_sec = \"fast\"\n");
    assert_eq!(p.len(), 1, "{msg}");
    assert!(
        msg.contains("bad value for \"max_bytes_per_sec\" in [[inputs]]")
            && msg.contains("invalid size \"fast\""),
        "{msg}"
    );
    let (msg, _) = err("max_bytes_per_sec = 0\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
    assert!(
        msg.contains(":1:21: \"max_bytes_per_sec\" in the top level: must be at least 1 byte per second (omit it for no limit)"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nmax_bytes_per_sec = 0\n");
    assert!(
        msg.contains(":4:21: \"max_bytes_per_sec\" in [[inputs]] #1: must be at least 1"),
        "{msg}"
    );
}

#[test]
fn full_file_sets_every_key() {
    let s = ok(r#"
host = "web1"
scan_interval = "100ms"
rotate_grace = 5
max_open_files = 64
attribution = "header"

[kafka]
brokers = ["k1:9092", "k2:9093"]
max_inflight_bytes = "32MiB"
shutdown_timeout = "1m"

[kafka.properties]
"compression.type" = "zstd"
linger.ms = 50
security.protocol = "SASL_SSL"

[checkpoint]
directory = "/srv/state"
interval = 0.5

[[inputs]]
include = ["/var/log/nginx/*.log", "/var/log/nginx/**/*.log"]
exclude = ["/var/log/nginx/*.gz"]
topic = "weblogs"
start_at = "beginning"
format = "tail2kafka"
metadata = "web1"
partition_by = "file"
max_line_bytes = "64KiB"
long_lines = "split"
strip_cr = true
partial_flush = "2s"

[inputs.multiline]
start = '^\d{4}-\d{2}-\d{2}'
timeout = "500ms"
max_bytes = 100000

[[inputs]]
include = "/var/log/app.log"
topic = "app"
"#)
    .settings;
    assert_eq!(s.host, "web1");
    assert_eq!(s.scan_interval, Duration::from_millis(100));
    assert_eq!(s.rotate_grace, Duration::from_secs(5));
    assert_eq!(s.max_open_files, 64);
    assert_eq!(s.attribution, Attribution::Header);
    assert_eq!(s.brokers, Brokers::List("k1:9092,k2:9093".into()));
    assert_eq!(s.max_inflight_bytes, 32 << 20);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(
        s.kafka_props,
        [
            ("compression.type".to_string(), "zstd".to_string()),
            ("linger.ms".to_string(), "50".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
        ]
    );
    assert_eq!(s.checkpoint_dir, PathBuf::from("/srv/state"));
    assert_eq!(s.checkpoint_interval, Duration::from_millis(500));
    assert_eq!(s.inputs.len(), 2);
    let i = &s.inputs[0];
    assert_eq!(
        i.include,
        ["/var/log/nginx/*.log", "/var/log/nginx/**/*.log"]
    );
    assert_eq!(i.exclude, ["/var/log/nginx/*.gz"]);
    assert_eq!(i.topic, "weblogs");
    assert_eq!(i.start_at, StartAt::Beginning);
    assert_eq!(
        i.format,
        Format::Tail2Kafka {
            meta: b"web1".to_vec()
        }
    );
    assert_eq!(i.partition_by, PartitionBy::File);
    assert_eq!(i.max_line_bytes, 65536);
    assert_eq!(i.long_lines, LongLinePolicy::Split);
    assert!(i.strip_cr);
    assert_eq!(i.partial_flush, Some(Duration::from_secs(2)));
    let m = i.multiline.as_ref().unwrap();
    assert_eq!(m.start.as_str(), r"^\d{4}-\d{2}-\d{2}");
    assert_eq!(m.timeout, Duration::from_millis(500));
    assert_eq!(m.max_bytes, 100_000);
    assert_eq!(s.inputs[1].include, ["/var/log/app.log"]);
    assert_eq!(s.inputs[1].topic, "app");
}

#[test]
fn the_example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logferry.toml");
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!loaded.settings.inputs.is_empty());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn unknown_key_names_file_line_column_and_section() {
    let (msg, p) = err("[[inputs]]\ninclude = [\"/a\"]\ntopic = \"t\"\n\n[[inputs]]\ninclude = [\"/b\"]\ntopc = \"u\"\n");
    assert_eq!(p[0].line, Some(7));
    assert_eq!(p[0].column, Some(1));
    assert_eq!(p[0].key.as_deref(), Some("topc"));
    assert!(
        msg.starts_with("/etc/logferry.toml:7:1: unknown key \"topc\" in [[inputs]] (expected one of: include, exclude, topic,"),
        "{msg}"
    );
}

#[test]
fn unknown_key_sections_match_the_structs() {
    // Each key list must equal what serde expects, or sections would
    // be misnamed; an unknown key in each place proves it.
    for (src, section) in [
        ("bogus = 1\n", "the top level"),
        ("[kafka]\nbogus = 1\n", "[kafka]"),
        ("[checkpoint]\nbogus = 1\n", "[checkpoint]"),
        ("[[inputs]]\nbogus = 1\n", "[[inputs]]"),
        (
            "[[inputs]]\n[inputs.multiline]\nbogus = 1\n",
            "[inputs.multiline]",
        ),
        (
            "inputs = [{ topic = \"t\", multiline = { bogus = 1 } }]\n",
            "[inputs.multiline]",
        ),
    ] {
        let (msg, p) = err(src);
        assert!(
            msg.contains(&format!("unknown key \"bogus\" in {section} (")),
            "{src:?}: {msg}"
        );
        assert_eq!(p[0].key.as_deref(), Some("bogus"));
    }
}

#[test]
fn static_headers_are_read_and_lf_is_reserved() {
    let s = ok("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.headers]\ndc = \"fra1\"\nteam = \"web\"\n")
        .settings;
    assert_eq!(
        s.inputs[0].headers,
        [("dc".into(), "fra1".into()), ("team".into(), "web".into())]
    );
    let (msg, p) =
        err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.headers]\nlf = \"x\"\n");
    assert_eq!(p[0].key.as_deref(), Some("headers"));
    assert!(
        msg.contains("header name \"lf\" is reserved for the source attribution"),
        "{msg}"
    );
}

#[test]
fn bad_value_names_key_and_line() {
    let (msg, p) = err("[[inputs]]\ninclude = [\"/a\"]\ntopic = \"t\"\nstart_at = \"middle\"\n");
    assert_eq!(p[0].line, Some(4));
    assert_eq!(p[0].column, Some(12));
    assert_eq!(p[0].key.as_deref(), Some("start_at"));
    assert!(msg.starts_with("/etc/logferry.toml:4:12: bad value for \"start_at\" in [[inputs]]: unknown variant `middle`, expected `end` or `beginning`"), "{msg}");

    let (msg, p) =
        err("scan_interval = \"5 fortnights\"\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
    assert_eq!(p[0].key.as_deref(), Some("scan_interval"));
    assert!(
        msg.contains(":1:17: bad value for \"scan_interval\""),
        "{msg}"
    );

    let (msg, p) =
        err("[kafka]\nmax_inflight_bytes = -5\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
    assert_eq!(p[0].key.as_deref(), Some("max_inflight_bytes"));
    assert!(
        msg.contains(
            ":2:22: bad value for \"max_inflight_bytes\" in [kafka]: a size must not be negative"
        ),
        "{msg}"
    );

    let (msg, _) = err("[inputs]\ninclude = \"/a\"\n");
    assert!(msg.contains("[[inputs]]"), "{msg}");
}

#[test]
fn sizes_and_intervals_must_be_positive() {
    let (msg, p) = err("max_open_files = 0\nscan_interval = 0\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nmax_line_bytes = 0\n[kafka]\nmax_inflight_bytes = \"1KiB\"\n");
    let keys: Vec<_> = p.iter().map(|p| p.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "max_open_files",
            "scan_interval",
            "max_line_bytes",
            "max_inflight_bytes"
        ],
        "{msg}"
    );
    assert!(
        msg.contains(":6:18: \"max_line_bytes\" in [[inputs]] #1: must be at least 1, got 0"),
        "{msg}"
    );
}

#[test]
fn bad_regex_is_named() {
    let (msg, p) = err(
        "[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[inputs.multiline]\nstart = \"(unclosed\"\n",
    );
    assert_eq!(p[0].key.as_deref(), Some("start"));
    assert_eq!(p[0].line, Some(5));
    assert!(
        msg.contains("bad regex \"(unclosed\": unclosed group"),
        "{msg}"
    );
}

#[test]
fn relative_glob_is_rejected() {
    let (msg, p) = err("[[inputs]]\ninclude = [\"/ok/*.log\", \"logs/*.log\"]\ntopic = \"t\"\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key.as_deref(), Some("include"));
    assert!(
        msg.contains(":2:25: \"include\" in [[inputs]] #1: \"logs/*.log\" is relative"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a/*.log\"\nexclude = \"*.gz\"\ntopic = \"t\"\n");
    assert!(
        msg.contains(":3:11: \"exclude\" in [[inputs]] #1: \"*.gz\" is relative"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a/[.log\"\ntopic = \"t\"\n");
    assert!(msg.contains("invalid glob"), "{msg}");
}

#[test]
fn missing_and_empty_values() {
    let (msg, _) = err("host = \"h\"\n");
    assert!(msg.contains("no [[inputs]]"), "{msg}");
    let (msg, p) = err("[[inputs]]\ninclude = \"/a\"\n");
    assert_eq!(p[0].key.as_deref(), Some("topic"));
    assert!(
        msg.contains(":1:1: [[inputs]] #1 has no \"topic\""),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"\"\n");
    assert!(
        msg.contains("\"topic\" in [[inputs]] #1: must not be empty"),
        "{msg}"
    );
    let (msg, _) = err("[kafka]\nbrokers = []\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
    assert!(
        msg.contains(":2:11: \"brokers\" in [kafka]: must not be empty"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nformat = \"tail2kafka\"\n");
    assert!(msg.contains("needs \"metadata\""), "{msg}");
    let (msg, _) =
        err("[checkpoint]\ndirectory = \"state\"\n[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n");
    assert!(msg.contains("must be an absolute path"), "{msg}");
}

#[test]
fn brokers_forms() {
    let b = |v: &str| {
        ok(&format!("[kafka]\nbrokers = {v}\n{MINIMAL}"))
            .settings
            .brokers
    };
    assert_eq!(b("\"embedded\""), Brokers::Embedded);
    assert_eq!(b("\"a:1, b:2\""), Brokers::List("a:1,b:2".into()));
    assert_eq!(b("[\"a:1\"]"), Brokers::List("a:1".into()));
    let (msg, _) = err(&format!("[kafka]\nbrokers = [\"a:1\", \"a:1\"]\n{MINIMAL}"));
    assert!(msg.contains("broker \"a:1\" is listed twice"), "{msg}");
    let (msg, _) = err(&format!("[kafka]\nbrokers = \"a:x\"\n{MINIMAL}"));
    assert!(msg.contains("bad port \"x\""), "{msg}");
}

#[test]
fn duplicates_are_flagged() {
    let (msg, p) = err("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n[[inputs]]\ninclude = [\"/b\", \"/a\"]\ntopic = \"u\"\n");
    assert_eq!(p[0].line, Some(5));
    assert!(
        msg.contains("\"/a\" is also included by [[inputs]] #1 (line 2)"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = [\"/a\", \"/a\"]\ntopic = \"t\"\n");
    assert!(msg.contains("is listed twice (first on line 2)"), "{msg}");
    let (msg, p) = err(&format!(
        "[kafka.properties]\n\"linger.ms\" = 5\nlinger.ms = 6\n{MINIMAL}"
    ));
    assert!(
        msg.contains("kafka.properties \"linger.ms\": is set twice (first on line 2)"),
        "{msg}"
    );
    assert_eq!(p[0].line, Some(3));
    let (msg, _) = err(&format!(
        "[kafka.properties]\n\"linger.ms\" = 5\n\"queue.buffering.max.ms\" = 6\n{MINIMAL}"
    ));
    assert!(
        msg.contains(
            "\"linger.ms\" and \"queue.buffering.max.ms\" are the same librdkafka property"
        ),
        "{msg}"
    );
    let (msg, _) = err("host = \"a\"\nhost = \"b\"\n");
    assert!(msg.contains(":2:1: duplicate key \"host\""), "{msg}");
}

#[test]
fn idempotence_with_weak_acks_is_rejected_naming_both_keys() {
    let (msg, p) = err(&format!("[kafka.properties]\nacks = 1\n{MINIMAL}"));
    assert_eq!(p[0].key.as_deref(), Some("acks"));
    assert_eq!(p[0].line, Some(2));
    assert!(
        msg.contains("\"enable.idempotence\" = \"true\" (logferry's default) conflicts with \"acks\" = \"1\""),
        "{msg}"
    );
    let (msg, _) = err(&format!("[kafka.properties]\n\"enable.idempotence\" = true\n\"request.required.acks\" = \"0\"\n{MINIMAL}"));
    assert!(
        msg.contains(
            "\"enable.idempotence\" = \"true\" conflicts with \"request.required.acks\" = \"0\""
        ),
        "{msg}"
    );
    // Turning idempotence off makes acks=1 legal, with a warning.
    let l = ok(&format!(
        "[kafka.properties]\nenable.idempotence = false\nacks = 1\n{MINIMAL}"
    ));
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("no-loss promise"));
    let (msg, _) = err(&format!(
        "[kafka.properties]\nmax.in.flight.requests.per.connection = 10\n{MINIMAL}"
    ));
    assert!(msg.contains("idempotence allows at most 5"), "{msg}");
    let (msg, _) = err(&format!(
        "[kafka.properties]\n\"bootstrap.servers\" = \"x:1\"\n{MINIMAL}"
    ));
    assert!(msg.contains("set \"brokers\" in [kafka] instead"), "{msg}");
}

#[test]
fn librdkafka_checks_each_property() {
    let (msg, p) = err(&format!(
        "[kafka.properties]\n\"linger.msx\" = 5\n{MINIMAL}"
    ));
    assert_eq!(p[0].key.as_deref(), Some("linger.msx"));
    assert_eq!(p[0].line, Some(2));
    assert!(
        msg.contains("kafka.properties \"linger.msx\": No such configuration property"),
        "{msg}"
    );
    let (msg, _) = err(&format!(
        "[kafka.properties]\n\"compression.type\" = \"brotli\"\n{MINIMAL}"
    ));
    assert!(msg.contains("\"compression.type\""), "{msg}");
}

#[test]
fn secrets_are_hidden_in_check_output() {
    let l = ok(&format!(
        "[kafka.properties]\nsecurity.protocol = \"SASL_SSL\"\nsasl.mechanisms = \"PLAIN\"\nsasl.username = \"ferry\"\nsasl.password = \"hunter2\"\n\"ssl.key.password\" = \"kp-secret\"\n\"ssl.key.pem\" = \"-----BEGIN PRIVATE KEY-----abc\"\n{MINIMAL}"
    ));
    let out = summary(Path::new("/etc/logferry.toml"), &l);
    for secret in ["hunter2", "kp-secret", "BEGIN PRIVATE KEY"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("sasl.password = ***"), "{out}");
    assert!(out.contains("ssl.key.password = ***"), "{out}");
    assert!(out.contains("ssl.key.pem = ***"), "{out}");
    assert!(out.contains("sasl.username = ferry"), "{out}");
    assert!(out.contains("acks = all  (default)"), "{out}");
    assert!(out.contains("topics: app"), "{out}");
    for k in [
        "sasl.jaas.config",
        "sasl.oauthbearer.client.secret",
        "ssl.keystore.password",
        "ssl_key.pem",
    ] {
        assert!(is_secret(k), "{k}");
    }
    for k in [
        "sasl.username",
        "security.protocol",
        "ssl.ca.location",
        "acks",
    ] {
        assert!(!is_secret(k), "{k}");
    }
    // A bad secret value is not echoed by errors either.
    let (msg, _) = err(&format!(
        "[kafka.properties]\n\"ssl.key.password\" = [\"hunter2\"]\n{MINIMAL}"
    ));
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn durations_and_sizes_parse() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("-1s").is_err());
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("42"), Ok(42));
    assert!(parse_size("12 parsecs").is_err());
}

#[test]
fn exactly_once_keys_are_read_with_their_defaults() {
    let s = ok(MINIMAL).settings;
    assert_eq!(s.exactly_once, None, "at least once by default");
    let s = ok(&format!("[kafka]\nexactly_once = true\n{MINIMAL}")).settings;
    assert_eq!(
        s.exactly_once,
        Some(ExactlyOnceSettings {
            positions_topic: "logferry-positions".into(),
            transaction_interval: Duration::from_secs(1),
            transactional_id: None,
        })
    );
    let s = ok(&format!(
        "[kafka]\nexactly_once = true\npositions_topic = \"pos\"\ntransaction_interval = \"250ms\"\ntransactional_id = \"agent-7\"\n{MINIMAL}"
    ))
    .settings;
    let eo = s.exactly_once.unwrap();
    assert_eq!(eo.positions_topic, "pos");
    assert_eq!(eo.transaction_interval, Duration::from_millis(250));
    assert_eq!(eo.transactional_id.as_deref(), Some("agent-7"));
}

#[test]
fn bad_exactly_once_values_are_named() {
    let (text, _) = err(&format!(
        "[kafka]\nexactly_once = true\npositions_topic = \"bad topic\"\n{MINIMAL}"
    ));
    assert!(text.contains("positions_topic"), "{text}");
    let (text, _) = err(&format!(
        "[kafka]\nexactly_once = true\ntransaction_interval = \"0s\"\n{MINIMAL}"
    ));
    assert!(
        text.contains("transaction_interval") && text.contains("above zero"),
        "{text}"
    );
    let (text, _) = err(&format!(
        "[kafka]\nexactly_once = true\ntransactional_id = \" \"\n{MINIMAL}"
    ));
    assert!(text.contains("transactional_id"), "{text}");
}

#[test]
fn rotated_globs_and_backfill() {
    let l = ok("[[inputs]]\ninclude = \"/a/app.log\"\nrotated = [\"/a/archive/app-*\", \"/a/@*\"]\nbackfill = true\ntopic = \"t\"\n");
    let i = &l.settings.inputs[0];
    assert_eq!(i.rotated, ["/a/archive/app-*", "/a/@*"]);
    assert!(i.backfill);
    let i = &ok(MINIMAL).settings.inputs[0];
    assert!(i.rotated.is_empty() && !i.backfill);
    let (msg, p) =
        err("[[inputs]]\ninclude = \"/a/app.log\"\nrotated = \"archive/*\"\ntopic = \"t\"\n");
    assert_eq!(p[0].key.as_deref(), Some("rotated"));
    assert!(
        msg.contains(":3:11: \"rotated\" in [[inputs]] #1: \"archive/*\" is relative"),
        "{msg}"
    );
    let (msg, _) =
        err("[[inputs]]\ninclude = \"/a/app.log\"\nrotated = \"/a/[x\"\ntopic = \"t\"\n");
    assert!(
        msg.contains("invalid glob") && msg.contains("rotated"),
        "{msg}"
    );
    let (msg, _) = err("[[inputs]]\ninclude = \"/a/app.log\"\nbackfill = \"yes\"\ntopic = \"t\"\n");
    assert!(msg.contains("backfill"), "{msg}");
}

#[test]
fn pack_bytes_takes_a_size_and_refuses_what_a_pack_cannot_be() {
    let input = |extra: &str| format!("[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\n{extra}\n");
    let s = ok(&input("pack_bytes = \"64KiB\"")).settings;
    assert_eq!(s.inputs[0].pack_bytes, 65536);
    assert_eq!(
        ok(&input("pack_bytes = 0")).settings.inputs[0].pack_bytes,
        0
    );
    assert_eq!(ok(MINIMAL).settings.inputs[0].pack_bytes, 0);
    for (extra, why) in [
        ("pack_bytes = 2000000", "above 1000000"),
        (
            "max_line_bytes = 1000\npack_bytes = 4096",
            "above max_line_bytes (1000)",
        ),
        (
            "pack_bytes = 4096\nformat = \"json\"",
            "needs format = \"raw\"",
        ),
        ("pack_bytes = 4096\nstrip_cr = true", "strip_cr"),
        (
            "pack_bytes = 4096\npartition_by = \"pattern\"\nkey_pattern = \"(x)\"",
            "partition_by = \"pattern\"",
        ),
        (
            "pack_bytes = 4096\n[inputs.multiline]\nstart = \"^x\"",
            "[inputs.multiline]",
        ),
    ] {
        let src = input(extra);
        let (msg, p) = err(&src);
        assert_eq!(p[0].key.as_deref(), Some("pack_bytes"), "{msg}");
        assert!(msg.contains("pack_bytes") && msg.contains(why), "{msg}");
        let line = src.lines().position(|l| l.starts_with("pack_bytes"));
        assert_eq!(p[0].line, line.map(|i| i + 1), "{msg}");
    }
}
