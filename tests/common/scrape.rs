//! Reading a metrics listener in tests: plain HTTP/1.0 GETs, series by
//! name, and waiting for a scrape to satisfy a condition.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Logferry;

/// (status code, body) of `GET path`.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// Every series of `name` (any labels), as (labels, value).
pub fn series<'a>(body: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| {
            let (head, v) = l.rsplit_once(' ')?;
            Some((&head[name.len()..], v.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of `name` (any labels).
pub fn sum(body: &str, name: &str) -> f64 {
    series(body, name).iter().map(|(_, v)| v).sum()
}

/// Wait until `cond` holds of a scrape; returns that scrape.
pub fn until(addr: &str, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, body) = get(addr, "/metrics");
        if cond(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address a metrics listener bound (asked for port 0), from the log.
pub fn metrics_addr(lf: &Logferry) -> String {
    lf.wait_for_log("metrics at /metrics", Duration::from_secs(30));
    let err = lf.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("metrics at /metrics"))
        .unwrap();
    let at = line.find("addr=").expect("the log line names the address") + 5;
    line[at..].split_whitespace().next().unwrap().to_string()
}
