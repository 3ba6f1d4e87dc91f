//! The configuration file through the `logferry` binary: `check` exit codes
//! and output, `ship -c` and `$LOGFERRY_CONFIG`, and `check --connect`
//! against the real Kafka cluster (LOGFERRY_TEST_BROKERS, see scripts/test).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn logferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logferry"));
    c.env_remove("LOGFERRY_CONFIG").env("LOGFERRY_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running logferry");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("logferry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_example_file() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logferry.toml");
    let (code, out, err) = run(logferry().arg("check").arg("-c").arg(&example));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains(": valid"), "{out}");
    assert!(out.contains("topics: applogs, weblogs"), "{out}");
}

#[test]
fn check_hides_secrets_and_reads_logferry_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        r#"
[kafka]
brokers = "k1:9092,k2:9092"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "ferry"
"sasl.password" = "correct-horse-battery"
[[inputs]]
include = "/var/log/app/*.log"
topic = "app"
"#,
    );
    let (code, out, err) = run(logferry().arg("check").env("LOGFERRY_CONFIG", &path));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("correct-horse"), "secret printed:\n{out}");
    assert!(out.contains("sasl.password = ***"), "{out}");
    assert!(out.contains("sasl.username = ferry"), "{out}");
    assert!(out.contains("brokers: k1:9092, k2:9092"), "{out}");
}

#[test]
fn check_rejects_a_bad_file_with_exit_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[[inputs]]\ninclude = \"/var/log/a.log\"\ntopc = \"web\"\n",
    );
    let (code, out, err) = run(logferry().arg("check").arg("-c").arg(&path));
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    let want = format!(
        "logferry: {}:3:1: unknown key \"topc\" in [[inputs]] (expected one of: include, exclude, topic,",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(out.is_empty(), "{out}");

    // Several semantic problems are all reported, one line each.
    let path = write_config(
        dir.path(),
        "[[inputs]]\ninclude = \"logs/*.log\"\ntopic = \"web\"\nstart_at = \"end\"\n[inputs.multiline]\nstart = \"(\"\n",
    );
    let (code, _, err) = run(logferry().arg("check").arg("-c").arg(&path));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":2:11: \"include\""), "{err}");
    assert!(err.contains(":6:9: \"start\""), "{err}");

    let (code, _, err) = run(logferry().args(["check", "-c", "/nonexistent/logferry.toml"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/nonexistent/logferry.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn ship_needs_a_config_or_a_file_and_topic() {
    let (code, _, err) = run(logferry().arg("ship"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-c FILE"), "{err}");
    assert!(err.contains("-l FILE -t TOPIC"), "{err}");
    // A file and quick-mode flags do not mix (clap's usage error).
    let (code, _, err) = run(logferry().args(["ship", "-c", "/a.toml", "-l", "/x", "-t", "t"]));
    assert_eq!(code, 2, "{err}");
    // A bad file named by the environment stops ship before it starts.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[[inputs]]\ninclude = \"/a\"\ntopic = \"t\"\nstart_at = \"middle\"\n",
    );
    let (code, _, err) = run(logferry().arg("ship").env("LOGFERRY_CONFIG", &path));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":4:12: bad value for \"start_at\" in [[inputs]]: unknown variant `middle`"),
        "{err}"
    );
}

/// `ship -c` end to end, on the embedded broker (no cluster needed): a glob
/// input, read from the beginning, every line arrives, SIGTERM exits 0.
#[test]
fn ship_from_a_config_file_to_the_embedded_broker() {
    let dir = common::LogDir::new();
    let logs = dir.logs.clone();
    let mut f = std::fs::File::create(logs.join("app.log")).unwrap();
    for i in 0..5 {
        writeln!(f, "config-file line {i}").unwrap();
    }
    std::fs::write(logs.join("skip.log"), "not shipped\n").unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            r#"
scan_interval = "100ms"
[kafka]
brokers = "embedded"
shutdown_timeout = "5s"
[checkpoint]
directory = "{state}"
interval = "200ms"
[[inputs]]
include = "{logs}/*.log"
exclude = "{logs}/skip*"
topic = "cfg"
start_at = "beginning"
"#,
            state = dir.path().join("state").display(),
            logs = logs.display()
        ),
    );
    let mut child = logferry()
        .arg("ship")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::new();
    while received.len() < 5 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("[embedded broker] received") {
                received.push(line);
            }
        }
    }
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(received.len(), 5, "{received:#?}");
    for i in 0..5 {
        assert!(
            received
                .iter()
                .any(|l| l.ends_with(&format!("config-file line {i}"))),
            "{received:#?}"
        );
    }
    assert!(
        received.iter().all(|l| !l.contains("not shipped")),
        "{received:#?}"
    );
    assert!(status.success(), "{status:?}");
}

#[test]
fn check_connect_against_the_real_cluster() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let topic = common::topic_name("check");
    common::create_topic(&brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let config = |brokers: &str, topics: &[&str]| {
        let mut s = format!("[kafka]\nbrokers = [{brokers}]\n");
        for (i, t) in topics.iter().enumerate() {
            s.push_str(&format!(
                "[[inputs]]\ninclude = \"/var/log/x{i}.log\"\ntopic = \"{t}\"\n"
            ));
        }
        write_config(dir.path(), &s)
    };

    // Every broker answers and the topic exists.
    let path = config(&list.join(", "), &[&topic]);
    let (code, out, err) = run(logferry()
        .args(["check", "--connect", "--timeout", "15", "-c"])
        .arg(&path));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("topic {topic}: exists, 2 partitions")),
        "{out}"
    );

    // A topic that does not exist is named, exit 1, and is not created.
    let missing = common::topic_name("check-missing");
    let path = config(&list.join(", "), &[&topic, &missing]);
    let (code, out, err) = run(logferry()
        .args(["check", "--connect", "--timeout", "15", "-c"])
        .arg(&path));
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains(&format!("topic \"{missing}\" does not exist")),
        "{err}"
    );
    let (code, _, err) = run(logferry()
        .args(["check", "--connect", "--timeout", "15", "-c"])
        .arg(&path));
    assert_eq!(code, 1, "checking must not create the topic: {err}");

    // A broker that does not answer is named, exit 1.
    let path = config(&format!("{}, \"127.0.0.1:1\"", list.join(", ")), &[&topic]);
    let (code, out, err) = run(logferry()
        .args(["check", "--connect", "--timeout", "3", "-c"])
        .arg(&path));
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("broker 127.0.0.1:1 did not answer within 3s"),
        "{err}"
    );
}

/// The problem lines (`logferry: ...`) a command printed on stderr.
fn problem_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("logferry: "))
        .collect()
}

/// The quick-mode flags pass the same validator as a file: the same value
/// is refused for the same reason, exit 2, the flag named where a file's
/// problem names its line, column and key.
#[test]
fn quick_mode_flags_are_refused_as_the_file_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let log = log.to_str().unwrap();
    let cases: [(&[&str], &str, &str, &str); 3] = [
        (
            &["-t", "bad topic!"],
            "--topic",
            "topic = \"bad topic!\"\n",
            "\"topic\" in [[inputs]] #1",
        ),
        (
            &["-t", "t", "--max-line-bytes", "0"],
            "--max-line-bytes",
            "topic = \"t\"\nmax_line_bytes = 0\n",
            "\"max_line_bytes\" in [[inputs]] #1",
        ),
        (
            &["-t", "t", "--host", ""],
            "--host",
            "topic = \"t\"\n",
            "\"host\" in the top level",
        ),
    ];
    for (flags, flag, input, subject) in cases {
        let (code, _, err) = run(logferry().args(["ship", "-l", log]).args(flags));
        assert_eq!(code, 2, "{flags:?}: {err}");
        let lines = problem_lines(&err);
        assert_eq!(lines.len(), 1, "{flags:?}: {err}");
        let reason = lines[0]
            .strip_prefix(&format!("logferry: {flag}: "))
            .unwrap_or_else(|| panic!("{flags:?}: the flag is not named: {err}"));
        // The same value in a file: the same reason, after line and key.
        let host = if flag == "--host" {
            "host = \"\"\n"
        } else {
            ""
        };
        let path = write_config(
            dir.path(),
            &format!("{host}[[inputs]]\ninclude = \"{log}\"\n{input}"),
        );
        let (code, _, ferr) = run(logferry().arg("check").arg("-c").arg(&path));
        assert_eq!(code, 2, "{ferr}");
        let flines = problem_lines(&ferr);
        assert_eq!(flines.len(), 1, "{ferr}");
        assert!(
            flines[0].ends_with(&format!("{subject}: {reason}")),
            "file: {ferr}\nflags: {err}"
        );
    }
    // A conflict librdkafka would refuse at start is refused here, exit 2.
    let (code, _, err) = run(logferry().args(["ship", "-l", log, "-t", "t", "-X", "acks=1"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("logferry: -X acks: kafka.properties \"enable.idempotence\" = \"true\" (logferry's default) conflicts with \"acks\" = \"1\""),
        "{err}"
    );
}

/// `-X acks=1` (with idempotence off) is accepted with the warning the
/// file gives, logged as a warning at the flag.
#[test]
fn quick_mode_weak_acks_warn_as_the_file_does() {
    let dir = common::LogDir::new();
    let log = dir.logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let warning = |args: Vec<String>, location: &str, name: &str| -> String {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut lf = common::Logferry::start(&args, &dir.path().join(name));
        // Said after the signal handlers are in place, so SIGTERM stops
        // it cleanly.
        lf.wait_for_log("starting an embedded", Duration::from_secs(30));
        assert!(lf.stop().success(), "{}", lf.stderr());
        let err = lf.stderr();
        let line = err
            .lines()
            .find(|l| l.contains("no-loss promise"))
            .unwrap()
            .to_string();
        assert!(line.contains("WARN"), "not a warning: {line}");
        let at = line
            .find(&format!("{location}: "))
            .unwrap_or_else(|| panic!("{location} not named: {line}"));
        line[at + location.len() + 2..].to_string()
    };
    let state = dir.path().join("state-flags");
    let flags = warning(
        [
            "ship",
            "-l",
            log.to_str().unwrap(),
            "-t",
            "t",
            "--brokers",
            "embedded",
            "--checkpoint-dir",
            state.to_str().unwrap(),
            "-X",
            "enable.idempotence=false",
            "-X",
            "acks=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "-X acks",
        "err-flags",
    );
    let path = write_config(
        dir.path(),
        &format!(
            "[kafka]\nbrokers = \"embedded\"\n[kafka.properties]\n\"enable.idempotence\" = false\nacks = 1\n[checkpoint]\ndirectory = \"{}\"\n[[inputs]]\ninclude = \"{}\"\ntopic = \"t\"\n",
            dir.path().join("state-file").display(),
            log.display()
        ),
    );
    let file = warning(
        vec!["ship".into(), "-c".into(), path.to_str().unwrap().into()],
        &format!("{}:5", path.display()),
        "err-file",
    );
    assert_eq!(flags, file);
}

/// A topic template is rendered for this host (and, over the file, for
/// each file that exists) before it is looked up.
#[test]
fn check_connect_renders_topic_templates() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let prefix = common::topic_name("ctmpl");
    common::create_topic(&brokers, &format!("{prefix}-checkhost"), 1);
    let dir = common::LogDir::new();
    let list: Vec<String> = brokers.split(',').map(|b| format!("\"{b}\"")).collect();
    let config = |extra: &str| {
        write_config(
            dir.path(),
            &format!(
                "host = \"checkhost\"\n[kafka]\nbrokers = [{}]\n[[inputs]]\ninclude = \"/var/log/x.log\"\ntopic = \"{prefix}-{{host}}\"\n{extra}",
                list.join(", ")
            ),
        )
    };
    let check = |path: &Path| {
        run(logferry()
            .args(["check", "--connect", "--timeout", "15", "-c"])
            .arg(path))
    };
    let (code, out, err) = check(&config(""));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("topic {prefix}-checkhost: exists")),
        "{out}"
    );

    // Over the file: no file yet is said, not called missing...
    let by_file = format!(
        "[[inputs]]\ninclude = \"{}/*.log\"\ntopic = \"{prefix}.{{file_stem}}\"\n",
        dir.logs.display()
    );
    let path = config(&by_file);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("depends on the file name; cannot be checked before a file matching"),
        "{out}"
    );
    // ...each file's topic is checked once files exist.
    std::fs::write(dir.logs.join("alpha.log"), "").unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("topic \"{prefix}.alpha\" does not exist")),
        "{err}"
    );
    common::create_topic(&brokers, &format!("{prefix}.alpha"), 1);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("topic {prefix}.alpha: exists")),
        "{out}"
    );
}
