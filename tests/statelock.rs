//! One logferry per checkpoint directory, end to end against the real
//! Kafka cluster started by scripts/test: a second `logferry ship` on a
//! directory in use exits 2 naming the directory and the holder's pid, and
//! the holder goes on shipping.

mod common;

use std::time::Duration;

use common::*;

fn ship_args<'a>(file: &'a str, topic: &'a str, brokers: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "ship",
        "--file",
        file,
        "--topic",
        topic,
        "--brokers",
        brokers,
        "--checkpoint-dir",
        state,
        "-X",
        "linger.ms=5",
    ]
}

#[test]
fn a_second_logferry_on_the_same_checkpoint_directory_exits_2_naming_the_first() {
    let Some(brokers) = brokers() else { return };
    let topic = topic_name("statelock");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    let (log_s, state_s) = (log.to_str().unwrap(), state.to_str().unwrap());
    let args = ship_args(log_s, &topic, &brokers, state_s);
    let mut w = LogWriter::create(&log);

    let mut first = Logferry::start(&args, &dir.path().join("err1"));
    first.wait_for_log("following", Duration::from_secs(20));
    let first_pid = first.child.as_ref().unwrap().id();

    let mut second = Logferry::start(&args, &dir.path().join("err2"));
    let st = second
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "the second logferry is still running; stderr:\n{}",
                second.stderr()
            )
        });
    second.child = None;
    let err = second.stderr();
    assert_eq!(st.code(), Some(2), "stderr:\n{err}");
    assert!(
        err.contains(&format!(
            "logferry: checkpoint directory {state_s} is in use by another logferry (pid {first_pid})"
        )),
        "stderr:\n{err}"
    );

    // The first one was not disturbed: it is running and still ships.
    assert!(
        first.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the first logferry exited; stderr:\n{}",
        first.stderr()
    );
    w.write_lines((0..500).map(line));
    let mut r = Reader::new(&brokers, &topic);
    r.read_until(500, Duration::from_secs(60));
    let st = first.stop();
    assert!(
        st.success(),
        "exit status {st}; stderr:\n{}",
        first.stderr()
    );
    let got: Vec<usize> = r.payloads().iter().map(|p| line_no(p)).collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());

    // Once the first has exited, the directory is free again.
    let mut third = Logferry::start(&args, &dir.path().join("err3"));
    third.wait_for_log("following", Duration::from_secs(20));
    let st = third.stop();
    assert!(
        st.success(),
        "exit status {st}; stderr:\n{}",
        third.stderr()
    );
}
