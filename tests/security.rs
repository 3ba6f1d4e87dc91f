//! Shipping to a secured cluster: TLS with certificate and hostname
//! verification, SASL PLAIN and SCRAM-SHA-256/512, against the SASL_SSL
//! listener that `scripts/kafka start` opens on every node (ports 19292..),
//! and client certificates against its mutual TLS listener (19392..).
//!
//! Where the listener is: LOGFERRY_TEST_SASL_BROKERS, LOGFERRY_TEST_CA,
//! LOGFERRY_TEST_UNTRUSTED_CA, LOGFERRY_TEST_SASL_USER and
//! LOGFERRY_TEST_SASL_PASSWORD when set, otherwise what `scripts/kafka
//! security` prints for the running test cluster. logferry always ships over
//! SASL_SSL here, with certificate and hostname verification on; records are
//! read back over the PLAINTEXT listener (LOGFERRY_TEST_BROKERS), except in
//! the SCRAM-SHA-512 test, whose reader logs in over SASL_SSL with
//! SCRAM-SHA-256.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The SASL_SSL listener of the test cluster.
struct Secured {
    /// PLAINTEXT bootstrap list of the same cluster (topics, read-back).
    plaintext: String,
    /// SASL_SSL bootstrap list.
    sasl: String,
    /// PEM file of the CA that signed the brokers' certificate.
    ca: String,
    /// PEM file of a CA that signed nothing the brokers present.
    untrusted_ca: String,
    user: String,
    password: String,
    /// Bootstrap list of the SSL listener that requires a client
    /// certificate signed by `ca`.
    mtls: String,
    /// PEM client certificate and key signed by `ca`.
    client_cert: String,
    client_key: String,
}

const VARS: &[&str] = &[
    "LOGFERRY_TEST_SASL_BROKERS",
    "LOGFERRY_TEST_CA",
    "LOGFERRY_TEST_UNTRUSTED_CA",
    "LOGFERRY_TEST_SASL_USER",
    "LOGFERRY_TEST_SASL_PASSWORD",
    "LOGFERRY_TEST_MTLS_BROKERS",
    "LOGFERRY_TEST_CLIENT_CERT",
    "LOGFERRY_TEST_CLIENT_KEY",
];

/// The listener's settings, or None (skip) without a cluster outside CI.
/// Under CI=true a missing listener is a failure, never a skip.
fn secured() -> Option<Secured> {
    let plaintext = brokers()?;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut vars: HashMap<String, String> = VARS
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if !vars.contains_key("LOGFERRY_TEST_SASL_BROKERS") {
        // Not exported: ask the script that started the cluster.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka");
        let out = Command::new(script).arg("security").output();
        match out {
            Ok(o) if o.status.success() => {
                for l in String::from_utf8_lossy(&o.stdout).lines() {
                    if let Some((k, v)) = l.split_once('=') {
                        vars.entry(k.to_string()).or_insert_with(|| v.to_string());
                    }
                }
            }
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                if ci {
                    panic!("no SASL_SSL listener under CI: `scripts/kafka security` says: {why}");
                }
                eprintln!("skipping: no SASL_SSL listener ({why})");
                return None;
            }
            Err(e) => panic!("running scripts/kafka security: {e}"),
        }
        if let Some(p) = vars.get("LOGFERRY_TEST_PLAINTEXT_BROKERS") {
            assert_eq!(
                p, &plaintext,
                "LOGFERRY_TEST_BROKERS is not the cluster `scripts/kafka security` describes (KAFKA_RUN differs?)"
            );
        }
    }
    let mut get = |k: &str| {
        vars.remove(k)
            .unwrap_or_else(|| panic!("{k} missing from the SASL_SSL listener settings"))
    };
    Some(Secured {
        plaintext,
        sasl: get("LOGFERRY_TEST_SASL_BROKERS"),
        ca: get("LOGFERRY_TEST_CA"),
        untrusted_ca: get("LOGFERRY_TEST_UNTRUSTED_CA"),
        user: get("LOGFERRY_TEST_SASL_USER"),
        password: get("LOGFERRY_TEST_SASL_PASSWORD"),
        mtls: get("LOGFERRY_TEST_MTLS_BROKERS"),
        client_cert: get("LOGFERRY_TEST_CLIENT_CERT"),
        client_key: get("LOGFERRY_TEST_CLIENT_KEY"),
    })
}

/// librdkafka properties for SASL_SSL with `mechanism`; certificate and
/// hostname verification on (both are librdkafka's defaults, set here
/// explicitly so that a changed default cannot weaken the test).
fn sasl_props(mechanism: &str, user: &str, password: &str, ca: &str) -> Vec<(String, String)> {
    [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
        ("ssl.ca.location", ca),
        ("enable.ssl.certificate.verification", "true"),
        ("ssl.endpoint.identification.algorithm", "https"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// librdkafka properties for TLS with a client certificate (when given),
/// verification on as in `sasl_props`.
fn mtls_props(ca: &str, client: Option<(&str, &str)>) -> Vec<(String, String)> {
    let mut props = vec![
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca),
        ("enable.ssl.certificate.verification", "true"),
        ("ssl.endpoint.identification.algorithm", "https"),
    ];
    if let Some((cert, key)) = client {
        props.push(("ssl.certificate.location", cert));
        props.push(("ssl.key.location", key));
    }
    props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `logferry ship` arguments for one file over the SASL_SSL listener.
fn ship_args(
    file: &Path,
    topic: &str,
    brokers: &str,
    state: &Path,
    props: &[(String, String)],
) -> Vec<String> {
    let mut a: Vec<String> = [
        "ship",
        "--file",
        file.to_str().unwrap(),
        "--topic",
        topic,
        "--brokers",
        brokers,
        "--checkpoint-dir",
        state.to_str().unwrap(),
        // Records stuck behind a failed login are not waited for long at
        // stop; they are re-read from the checkpoint at the next start.
        "--shutdown-timeout",
        "2",
        "-X",
        "linger.ms=5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, v) in props {
        a.push("-X".into());
        a.push(format!("{k}={v}"));
    }
    a
}

fn start(args: &[String], stderr: &Path) -> Logferry {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Logferry::start(&args, stderr)
}

/// Record `i` is line `i`, byte for byte, and there are `expected` of them;
/// `stderr` (logferry's) is shown when not.
fn assert_exactly_once_in_order(payloads: &[Vec<u8>], expected: usize, stderr: &str) {
    assert_eq!(
        payloads.len(),
        expected,
        "records read back; logferry's stderr:\n{stderr}"
    );
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(
            line_no(p),
            i,
            "record {i} is line {}: lost, duplicated or reordered",
            line_no(p)
        );
        assert_eq!(p, line(i).as_bytes(), "record {i} is not byte-identical");
    }
}

/// No secret in logferry's output, whatever happened.
fn assert_no_secret(output: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !output.contains(s),
            "a password appears in logferry's output:\n{output}"
        );
    }
}

/// Read `topic` over the SASL_SSL listener, from the beginning of
/// partition 0, until `n` records or the deadline.
fn read_over_sasl(s: &Secured, mechanism: &str, topic: &str, n: usize) -> Vec<Vec<u8>> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.sasl)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false");
    for (k, v) in sasl_props(mechanism, &s.user, &s.password, &s.ca) {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().expect("SASL_SSL consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(m.payload().unwrap_or_default().to_vec()),
            Some(Err(e)) => eprintln!("SASL_SSL reader: {e}"),
            None => {}
        }
    }
    got
}

/// (a) TLS + SCRAM-SHA-512: 1000 lines arrive exactly once, in order.
#[test]
fn scram_sha_512_over_tls_ships_every_line_once_in_order() {
    let Some(s) = secured() else { return };
    let topic = topic_name("scram512");
    create_topic(&s.plaintext, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("app.log"), dir.path().join("state"));
    let mut w = LogWriter::create(&log);
    let props = sasl_props("SCRAM-SHA-512", &s.user, &s.password, &s.ca);
    let mut lf = start(
        &ship_args(&log, &topic, &s.sasl, &state, &props),
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    let total = 1000;
    let mut n = 0;
    while n < total {
        let burst = (1 + n % 97).min(total - n);
        w.write_lines((n..n + burst).map(line));
        n += burst;
    }
    // Read back over SASL_SSL too, logging in with the other SCRAM variant.
    let got = read_over_sasl(&s, "SCRAM-SHA-256", &topic, total);
    let st = lf.stop();
    let err = lf.stderr();
    assert!(st.success(), "exit status {st}; stderr:\n{err}");
    assert_exactly_once_in_order(&got, total, &err);
    assert_eq!(topic_count(&s.plaintext, &topic), total as i64);
    assert!(!err.contains("ERROR"), "errors while shipping:\n{err}");
    assert_no_secret(&err, &[&s.password]);
}

/// (b) SASL PLAIN over TLS.
#[test]
fn sasl_plain_over_tls_round_trip() {
    let Some(s) = secured() else { return };
    let topic = topic_name("plain");
    create_topic(&s.plaintext, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("app.log"), dir.path().join("state"));
    let mut w = LogWriter::create(&log);
    let props = sasl_props("PLAIN", &s.user, &s.password, &s.ca);
    let mut lf = start(
        &ship_args(&log, &topic, &s.sasl, &state, &props),
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..200).map(line));
    let mut r = Reader::new(&s.plaintext, &topic);
    r.read_until(200, Duration::from_secs(60));
    let st = lf.stop();
    let err = lf.stderr();
    assert!(st.success(), "exit status {st}; stderr:\n{err}");
    assert_exactly_once_in_order(&r.payloads(), 200, &err);
    assert_eq!(topic_count(&s.plaintext, &topic), 200);
    assert!(!err.contains("ERROR"), "errors while shipping:\n{err}");
    assert_no_secret(&err, &[&s.password]);
}

/// docs/CONFIGURATION.md's configuration-file form ("TLS and SASL"): SCRAM-SHA-256 in
/// `[kafka.properties]`; `check --connect` logs in with it and hides the
/// password; `ship -c` ships over it.
#[test]
fn scram_sha_256_from_the_config_file_checks_and_ships() {
    let Some(s) = secured() else { return };
    let topic = topic_name("scram256");
    create_topic(&s.plaintext, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("app.log"), dir.path().join("state"));
    let mut w = LogWriter::create(&log);
    let brokers: Vec<String> = s.sasl.split(',').map(|b| format!("\"{b}\"")).collect();
    let config = |password: &str| {
        format!(
            r#"[kafka]
brokers = [{brokers}]
shutdown_timeout = "2s"

[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "SCRAM-SHA-256"
"sasl.username" = "{user}"
"sasl.password" = "{password}"
"ssl.ca.location" = "{ca}"
"linger.ms" = 5

[checkpoint]
directory = "{state}"

[[inputs]]
include = "{log}"
topic = "{topic}"
"#,
            brokers = brokers.join(", "),
            user = s.user,
            ca = s.ca,
            state = state.display(),
            log = log.display(),
        )
    };
    let path = dir.path().join("logferry.toml");
    std::fs::write(&path, config(&s.password)).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["check", "--connect", "--timeout", "20", "-c"])
        .arg(&path)
        .env_remove("LOGFERRY_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "check --connect over SASL_SSL failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("topic {topic}: exists")),
        "{stdout}"
    );
    assert!(stdout.contains("sasl.password = ***"), "{stdout}");
    assert_no_secret(&format!("{stdout}{stderr}"), &[&s.password]);

    let mut lf = start(
        &["ship".to_string(), "-c".into(), path.display().to_string()],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..200).map(line));
    let mut r = Reader::new(&s.plaintext, &topic);
    r.read_until(200, Duration::from_secs(60));
    let st = lf.stop();
    let err = lf.stderr();
    assert!(st.success(), "exit status {st}; stderr:\n{err}");
    assert_exactly_once_in_order(&r.payloads(), 200, &err);
    assert_eq!(topic_count(&s.plaintext, &topic), 200);
    assert_no_secret(&err, &[&s.password]);
}

/// Run logferry with `bad` brokers and properties until it logs `symptom`, with lines
/// written before and during the failure; check nothing was shipped; stop
/// it, write more while it is stopped; then restart with `good` and check
/// every line arrives exactly once, in order. Returns both runs' stderr.
fn fails_clearly_then_ships_everything(
    s: &Secured,
    name: &str,
    (bad_brokers, bad): (&str, &[(String, String)]),
    (good_brokers, good): (&str, &[(String, String)]),
    symptom: &str,
) -> (String, String) {
    let topic = topic_name(name);
    create_topic(&s.plaintext, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("app.log"), dir.path().join("state"));
    let mut w = LogWriter::create(&log);
    let mut lf = start(
        &ship_args(&log, &topic, bad_brokers, &state, bad),
        &dir.path().join("err-bad"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..300).map(line));
    lf.wait_for_log(symptom, Duration::from_secs(30));
    w.write_lines((300..400).map(line));
    // Nothing can have been shipped: no connection got past the failure.
    assert_eq!(
        topic_count(&s.plaintext, &topic),
        0,
        "shipped despite the failure"
    );
    let st = lf.stop();
    let bad_err = lf.stderr();
    assert!(st.success(), "exit status {st}; stderr:\n{bad_err}");
    // Written while logferry is stopped.
    w.write_lines((400..500).map(line));

    let mut lf = start(
        &ship_args(&log, &topic, good_brokers, &state, good),
        &dir.path().join("err-good"),
    );
    let mut r = Reader::new(&s.plaintext, &topic);
    r.read_until(500, Duration::from_secs(60));
    let st = lf.stop();
    let good_err = lf.stderr();
    assert!(st.success(), "exit status {st}; stderr:\n{good_err}");
    assert_exactly_once_in_order(&r.payloads(), 500, &good_err);
    // A clean stop flushed everything in flight: nothing beyond the 500.
    assert_eq!(
        topic_count(&s.plaintext, &topic),
        500,
        "duplicates in the topic"
    );
    assert!(
        !good_err.contains(symptom),
        "still failing after the fix:\n{good_err}"
    );
    (bad_err, good_err)
}

/// (c) A wrong password: a clear authentication error, no line lost.
#[test]
fn wrong_password_fails_clearly_and_loses_nothing() {
    let Some(s) = secured() else { return };
    let wrong = format!("not-{}", s.password);
    let bad = sasl_props("SCRAM-SHA-512", &s.user, &wrong, &s.ca);
    let good = sasl_props("SCRAM-SHA-512", &s.user, &s.password, &s.ca);
    let (bad_err, good_err) = fails_clearly_then_ships_everything(
        &s,
        "badpw",
        (&s.sasl, &bad),
        (&s.sasl, &good),
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
    );
    assert!(
        bad_err.contains("SASL authentication error"),
        "no authentication error logged:\n{bad_err}"
    );
    // (e) Neither password is ever printed.
    assert_no_secret(&bad_err, &[&s.password, &wrong]);
    assert_no_secret(&good_err, &[&s.password, &wrong]);
}

/// (d) A CA that did not sign the brokers' certificate: a clear
/// verification error, no line lost, shipped once the right CA is given.
#[test]
fn untrusted_certificate_fails_clearly_and_loses_nothing() {
    let Some(s) = secured() else { return };
    let bad = sasl_props("SCRAM-SHA-512", &s.user, &s.password, &s.untrusted_ca);
    let good = sasl_props("SCRAM-SHA-512", &s.user, &s.password, &s.ca);
    let (bad_err, good_err) = fails_clearly_then_ships_everything(
        &s,
        "badca",
        (&s.sasl, &bad),
        (&s.sasl, &good),
        "certificate verify failed",
    );
    assert!(
        bad_err.contains("SSL handshake failed"),
        "no TLS error logged:\n{bad_err}"
    );
    // (e)
    assert_no_secret(&bad_err, &[&s.password]);
    assert_no_secret(&good_err, &[&s.password]);
}

/// Hostname verification is on: the brokers' certificate names 127.0.0.1
/// and localhost, so the same brokers reached as `127.1` (another spelling
/// of 127.0.0.1 for the resolver, but not a name in the certificate) are
/// refused with the right CA and password; reached by a name the
/// certificate holds, every line is shipped.
#[test]
fn a_name_not_in_the_certificate_is_refused() {
    let Some(s) = secured() else { return };
    let ports: Vec<&str> = s
        .sasl
        .split(',')
        .map(|b| {
            b.strip_prefix("127.0.0.1:")
                .unwrap_or_else(|| panic!("SASL_SSL broker {b} is not on 127.0.0.1"))
        })
        .collect();
    let by = |host: &str| {
        ports
            .iter()
            .map(|p| format!("{host}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let props = sasl_props("SCRAM-SHA-512", &s.user, &s.password, &s.ca);
    let (bad_err, good_err) = fails_clearly_then_ships_everything(
        &s,
        "badname",
        (&by("127.1"), &props),
        (&by("localhost"), &props),
        "certificate verify failed",
    );
    assert!(
        bad_err.contains("sasl_ssl://127.1:"),
        "the failing broker is not named:\n{bad_err}"
    );
    // (e)
    assert_no_secret(&bad_err, &[&s.password]);
    assert_no_secret(&good_err, &[&s.password]);
}

/// The password comes from the environment (`${env:NAME}`), so it is
/// neither in the command line nor in a config file.
#[test]
fn password_from_the_environment_ships() {
    let Some(s) = secured() else { return };
    let topic = topic_name("envpw");
    create_topic(&s.plaintext, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("app.log"), dir.path().join("state"));
    let mut w = LogWriter::create(&log);
    let props = sasl_props(
        "SCRAM-SHA-512",
        &s.user,
        "${env:LF_TEST_KAFKA_PASSWORD}",
        &s.ca,
    );
    let args = ship_args(&log, &topic, &s.sasl, &state, &props);
    assert!(
        !args.iter().any(|a| a.contains(&s.password)),
        "no password on the command line"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut lf = Logferry::start_with_env(
        &args,
        &[("LF_TEST_KAFKA_PASSWORD", s.password.as_str())],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..300).map(line));
    let got = read_over_sasl(&s, "SCRAM-SHA-512", &topic, 300);
    let st = lf.stop();
    let err = lf.stderr();
    assert!(st.success(), "stderr:\n{err}");
    assert_exactly_once_in_order(&got, 300, &err);
    assert_no_secret(&err, &[&s.password]);
}

/// Mutual TLS: the MTLS listener requires a client certificate signed by
/// the test CA. Without one, the brokers refuse the handshake and logferry
/// says so, shipping nothing and losing nothing; with the certificate and
/// its key, every line arrives once, in order.
#[test]
fn client_certificate_required_refused_without_it_then_ships_everything() {
    let Some(s) = secured() else { return };
    let bad = mtls_props(&s.ca, None);
    let good = mtls_props(&s.ca, Some((&s.client_cert, &s.client_key)));
    // The brokers answer a handshake without a certificate with TLS alert
    // 42, which librdkafka reports as "alert bad certificate".
    fails_clearly_then_ships_everything(
        &s,
        "mtls",
        (&s.mtls, &bad),
        (&s.mtls, &good),
        "alert bad certificate",
    );
}
