//! SIGHUP, SIGUSR1 and SIGUSR2 never kill `logferry ship` (their default
//! action would, without a last checkpoint): each is logged (SIGHUP, a
//! reload, has no file to re-read in quick mode) and changes nothing,
//! and SIGTERM still stops it cleanly with every line shipped. Against the
//! real Kafka cluster started by scripts/test.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hup_usr1_usr2_are_logged_and_ignored_then_sigterm_stops_cleanly() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("signals");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let mut w = LogWriter::create(&log);
    let mut lf = Logferry::start(
        &[
            "ship",
            "--file",
            log.to_str().unwrap(),
            "--topic",
            &topic,
            "--brokers",
            &brokers,
            "--checkpoint-dir",
            state.to_str().unwrap(),
            "-X",
            "linger.ms=5",
        ],
        &dir.path().join("err"),
    );
    lf.wait_for_log("following", Duration::from_secs(20));
    w.write_lines((0..1000).map(line));

    let warnings = [
        (
            libc::SIGHUP,
            "received SIGHUP: started without a configuration file (flags only), so there is no file to re-read; nothing changed",
        ),
        (libc::SIGUSR1, "received SIGUSR1; ignoring it"),
        (libc::SIGUSR2, "received SIGUSR2; ignoring it"),
    ];
    for (sig, warning) in warnings {
        lf.signal(sig);
        lf.wait_for_log(warning, Duration::from_secs(10));
    }
    assert!(
        lf.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "logferry exited on a signal it should ignore; stderr:\n{}",
        lf.stderr()
    );
    // Still shipping after them.
    w.write_lines((1000..2000).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(2000, Duration::from_secs(60));

    let st = lf.stop();
    let err = lf.stderr();
    assert_eq!(st.code(), Some(0), "stderr:\n{err}");
    let got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    assert_eq!(topic_count(&brokers, &topic), 2000, "extra records");
    for (_, warning) in warnings {
        assert_eq!(err.matches(warning).count(), 1, "stderr:\n{err}");
    }
    // stderr is a file here, not a terminal: no colour codes in the log.
    assert!(!err.contains('\x1b'), "ANSI escapes in stderr:\n{err}");
}
