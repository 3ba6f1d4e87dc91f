//! Real tools, end to end: logferry follows log files written by a real
//! nginx (loaded by `ab`) or by an IIS-like writer whose files all start
//! with the same header (`tests/realtools/headerwriter.py`), while the real
//! `logrotate` rotates them every 2-4 s (rename+create, dateext,
//! copytruncate, compress, delaycompress, Debian's nginx configuration),
//! with logferry running, stopped with SIGTERM or killed with SIGKILL
//! across rotations. Then an independent counter
//! (`tests/realtools/count.py`: Python reading every file, gzip included,
//! and the topic through kcat; no logferry code) compares the lines in the
//! files with the records in the topic as multisets.
//!
//! What it proves, per scenario: no line that logrotate kept in a file is
//! missing from the topic, none is there twice (a bounded number after a
//! SIGKILL), nothing from an excluded file is shipped, and nothing is
//! shipped that the writer did not write.
//!
//! Needs nginx (Debian `nginx-light`), logrotate, ab (`apache2-utils`),
//! kcat and python3, which `.ci/run` installs, plus the Kafka cluster of
//! `scripts/test` (LOGFERRY_TEST_BROKERS). Under CI (`CI=true`) a missing
//! tool fails the test; elsewhere the test says it is skipped. Every child
//! (nginx and its workers, ab, the header writer, logrotate, logferry) is
//! killed when a test ends or panics.

mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::tools::{find_tools, Group, Watermarks};
use common::*;

const HOST: &str = "realtools";
/// Requests per `ab` run; between runs the load pauses as long as the run
/// took, so nginx writes about half the time: rotations land both in the
/// middle of writes and in quiet moments, and two scenarios running side
/// by side leave CPU for logferry and the brokers on a 2-core machine.
const BURST: u64 = 500;
/// Upper bound on one scenario's requests, should a test lose its way.
const MAX_REQUESTS: u64 = 2_000_000;
/// Lines per second of the header writer.
const HEADER_RATE: u32 = 2500;
/// No growth of the topic for this long while lines are missing: logferry
/// is not going to ship them (it rescans every 100 ms, waits 2 s for a
/// rotated file to settle and retries produce errors on its own).
const STALL: Duration = Duration::from_secs(15);
/// After the last missing line arrived, the topic must stay unchanged this
/// long before logferry is stopped, so that a late duplicate (a rotated
/// file read again) is counted rather than cut off by the stop.
const QUIET: Duration = Duration::from_secs(3);

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realtools")
}

/// The real tools, found on PATH or in the sbin directories (nginx and
/// logrotate live in /usr/sbin, which a non-root PATH may lack).
struct Tools {
    nginx: PathBuf,
    logrotate: PathBuf,
    ab: PathBuf,
    kcat: PathBuf,
    python3: PathBuf,
}

impl Tools {
    /// All five tools, or None (outside CI) with a skip message; under CI
    /// a missing tool is a failure, never a silent skip.
    fn find() -> Option<Tools> {
        let wanted = [
            ("nginx", "nginx-light"),
            ("logrotate", "logrotate"),
            ("ab", "apache2-utils"),
            ("kcat", "kcat"),
            ("python3", "python3"),
        ];
        let mut f = find_tools(&wanted, "tests/realtools.rs")?.into_iter();
        Some(Tools {
            nginx: f.next().unwrap(),
            logrotate: f.next().unwrap(),
            ab: f.next().unwrap(),
            kcat: f.next().unwrap(),
            python3: f.next().unwrap(),
        })
    }
}

fn render(template: &str, subst: &[(&str, &str)], to: &Path) {
    let mut text = fs::read_to_string(assets().join(template))
        .unwrap_or_else(|e| panic!("reading tests/realtools/{template}: {e}"));
    for (k, v) in subst {
        text = text.replace(k, v);
    }
    fs::write(to, text).unwrap();
    // logrotate refuses a configuration writable by group or others.
    fs::set_permissions(to, fs::Permissions::from_mode(0o644)).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real nginx on a free loopback port, logging into `logs/`.
struct Nginx {
    group: Group,
    port: u16,
    pidfile: PathBuf,
}

impl Nginx {
    fn start(tools: &Tools, dir: &Path, logs: &Path) -> Nginx {
        for sub in ["www", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("www/ok.txt"), "ok\n").unwrap();
        let pidfile = dir.join("nginx.pid");
        let conf = dir.join("nginx.conf");
        let error_log = logs.join("error.log");
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        // The port is free when picked but may be taken before nginx binds
        // it (another test picking ports too): then nginx exits and we try
        // another one.
        for _attempt in 0..3 {
            let port = free_port();
            render(
                "nginx.conf",
                &[
                    ("@DIR@", dir.to_str().unwrap()),
                    ("@LOGS@", logs.to_str().unwrap()),
                    ("@PORT@", &port.to_string()),
                    ("@USER@", user),
                ],
                &conf,
            );
            let mut cmd = Command::new(&tools.nginx);
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("nginx.out")).unwrap());
            let mut group = Group::spawn(cmd, "nginx");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(st) = group.try_exited() {
                    eprintln!(
                        "nginx exited at start ({st}), retrying on another port: {}",
                        fs::read_to_string(&error_log).unwrap_or_default()
                    );
                    break;
                }
                let has_pid = fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty());
                if has_pid && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                {
                    return Nginx {
                        group,
                        port,
                        pidfile,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not answer on {addr} within 15 s: {}",
                    fs::read_to_string(&error_log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("nginx could not bind a free port in 3 attempts");
    }
}

/// `ab` runs against nginx, back to back with pauses (see BURST), from a
/// thread, until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64, String>>>,
}

impl Load {
    /// `paths` are requested in turn, one per run.
    fn start(ab: &Path, port: u16, paths: &[&str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let urls: Vec<String> = paths
            .iter()
            .map(|p| format!("http://127.0.0.1:{port}{p}"))
            .collect();
        let (ab, s) = (ab.to_path_buf(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut total = 0u64;
            let mut i = 0;
            while !s.load(Ordering::Relaxed) && total < MAX_REQUESTS {
                let started = Instant::now();
                // -k: keep-alive, so a run costs a few connections, not 500
                // sockets in TIME_WAIT; -r: a socket error does not abort
                // the run half way, the counts below then fail the test.
                let out = Command::new(&ab)
                    .args(["-q", "-k", "-r", "-s", "10", "-c", "2", "-n"])
                    .arg(BURST.to_string())
                    .arg(&urls[i % urls.len()])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("running ab: {e}"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let field = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                };
                // A failed request may or may not have been logged, and the
                // count of lines written must be exact.
                match (field("Complete requests:"), field("Failed requests:")) {
                    (Some(n), Some(0)) if out.status.success() && n == BURST => total += n,
                    _ => {
                        return Err(format!(
                            "ab did not complete {BURST} requests without failure ({}): {text}{}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        ))
                    }
                }
                i += 1;
                std::thread::sleep(started.elapsed().min(Duration::from_millis(250)));
            }
            Ok(total)
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop after the current run; the number of requests nginx answered,
    /// which is the number of access-log lines it wrote.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let res = self.handle.take().unwrap().join().expect("load thread");
        res.unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // The current ab run is bounded (BURST requests, -s 10), so the
        // join is too, and no ab outlives the test.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// tests/realtools/headerwriter.py writing `logs/w3c.log`.
struct HeaderWriter {
    group: Group,
    out: PathBuf,
    pidfile: PathBuf,
}

impl HeaderWriter {
    fn start(tools: &Tools, dir: &Path, log: &Path) -> HeaderWriter {
        let pidfile = dir.join("headerwriter.pid");
        let out = dir.join("headerwriter.out");
        let mut cmd = Command::new(&tools.python3);
        cmd.arg(assets().join("headerwriter.py"))
            .arg("--path")
            .arg(log)
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["--rate", &HEADER_RATE.to_string()])
            // Its own bounds, should the test not stop it: 2 minutes.
            .args(["--max-seconds", "120"])
            .args(["--max-lines", &(HEADER_RATE * 120).to_string()])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(dir.join("headerwriter.err")).unwrap());
        let mut group = Group::spawn(cmd, "headerwriter.py");
        // The writer creates the pid file once its log exists.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !pidfile.exists() {
            assert!(
                group.try_exited().is_none(),
                "headerwriter.py exited at start: {}",
                fs::read_to_string(dir.join("headerwriter.err")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "headerwriter.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        HeaderWriter {
            group,
            out,
            pidfile,
        }
    }

    /// SIGTERM; the number of lines it wrote, headers included.
    fn finish(mut self) -> u64 {
        self.group.signal(libc::SIGTERM);
        let st = self
            .group
            .wait_timeout(Duration::from_secs(15))
            .expect("headerwriter.py did not exit within 15 s of SIGTERM");
        assert!(st.success(), "headerwriter.py: {st}");
        let text = fs::read_to_string(&self.out).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("headerwriter.py output {text:?}: {e}"));
        v["written_total"].as_u64().unwrap()
    }
}

/// What writes the logs. Fields drop in order: the load stops before
/// nginx is killed.
enum Workload {
    Nginx { load: Load, nginx: Nginx },
    Header(HeaderWriter),
}

impl Workload {
    fn nginx(scene: &Scene, paths: &[&str]) -> Workload {
        let nginx = Nginx::start(&scene.tools, scene.dir.path(), &scene.logs);
        let load = Load::start(&scene.tools.ab, nginx.port, paths);
        Workload::Nginx { load, nginx }
    }

    fn header(scene: &Scene) -> Workload {
        let log = scene.logs.join("w3c.log");
        Workload::Header(HeaderWriter::start(&scene.tools, scene.dir.path(), &log))
    }

    /// The name every file of this writer starts with, rotated or not.
    fn prefix(&self) -> &'static str {
        match self {
            Workload::Nginx { .. } => "access.log",
            Workload::Header(_) => "w3c.log",
        }
    }

    fn pidfile(&self) -> &Path {
        match self {
            Workload::Nginx { nginx, .. } => &nginx.pidfile,
            Workload::Header(w) => &w.pidfile,
        }
    }

    /// Stop writing; how many lines were written in all (whatever
    /// logrotate kept of them).
    fn finish(self) -> u64 {
        match self {
            Workload::Nginx { load, mut nginx } => {
                let written = load.finish();
                let exited = nginx.group.try_exited();
                assert!(exited.is_none(), "nginx died during the load: {exited:?}");
                written
            }
            Workload::Header(w) => w.finish(),
        }
    }
}

/// The real logrotate with a configuration from tests/realtools/.
struct Rotator {
    logrotate: PathBuf,
    conf: PathBuf,
    state: PathBuf,
    rng: Lcg,
    done: usize,
}

impl Rotator {
    fn new(scene: &Scene, template: &str, pidfile: &Path) -> Rotator {
        let conf = scene.dir.path().join("logrotate.conf");
        render(
            template,
            &[
                ("@LOGS@", scene.logs.to_str().unwrap()),
                ("@PIDFILE@", pidfile.to_str().unwrap()),
            ],
            &conf,
        );
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("{}: rotation cadence seed {seed}", scene.name);
        Rotator {
            logrotate: scene.tools.logrotate.clone(),
            conf,
            state: scene.dir.path().join("logrotate.state"),
            rng: Lcg(seed),
            done: 0,
        }
    }

    /// Wait 2-4 s (the schedule a busy server's rotations are squeezed
    /// into, not a synchronisation), then rotate.
    fn rotate_after_pause(&mut self) {
        std::thread::sleep(Duration::from_millis(2000 + self.rng.below(2000)));
        self.rotate();
    }

    fn rotate(&mut self) {
        let out = Command::new(&self.logrotate)
            .arg("-f")
            .arg("-s")
            .arg(&self.state)
            .arg(&self.conf)
            .stdin(Stdio::null())
            .output()
            .expect("run logrotate");
        assert!(
            out.status.success(),
            "logrotate failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.done += 1;
    }
}

/// The counter's answer (tests/realtools/count.py), kept whole for
/// printing.
struct Counts(serde_json::Value);

impl Counts {
    fn get(&self, key: &str) -> u64 {
        self.0[key]
            .as_u64()
            .unwrap_or_else(|| panic!("count.py gave no {key:?}: {}", self.0))
    }

    fn files(&self) -> usize {
        self.0["files"].as_array().map_or(0, Vec::len)
    }
}

/// One scenario's world: a fresh topic, a directory with `logs/`, and a
/// logferry configuration following `logs/*.log` except error.log.
struct Scene {
    name: &'static str,
    tools: Tools,
    brokers: String,
    topic: String,
    dir: tempfile::TempDir,
    logs: PathBuf,
    cfg: PathBuf,
    started: Instant,
    logferry_runs: usize,
}

impl Scene {
    /// None only where a skip is allowed (see [`Tools::find`], `brokers`).
    fn new(name: &'static str) -> Option<Scene> {
        let tools = Tools::find()?;
        let brokers = brokers()?;
        let started = Instant::now();
        let topic = topic_name(name);
        create_topic(&brokers, &topic, 3);
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).unwrap();
        let cfg = config_toml(
            dir.path(),
            &brokers,
            HOST,
            &topic,
            &format!("{}/*.log", logs.display()),
            "",
            &format!("exclude = [\"{}/error.log\"]", logs.display()),
        );
        Some(Scene {
            name,
            tools,
            brokers,
            topic,
            dir,
            logs,
            cfg,
            started,
            logferry_runs: 0,
        })
    }

    /// Start logferry and wait until it follows a file.
    fn logferry(&mut self) -> Logferry {
        self.logferry_runs += 1;
        let err = self
            .dir
            .path()
            .join(format!("logferry-{}.err", self.logferry_runs));
        let lf = Logferry::start(&["ship", "-c", self.cfg.to_str().unwrap()], &err);
        lf.wait_for_log("following", Duration::from_secs(30));
        lf
    }

    fn count_py(&self, prefix: &str, extra: &[&str]) -> Counts {
        let out = Command::new(&self.tools.python3)
            .arg(assets().join("count.py"))
            .arg("--dir")
            .arg(&self.logs)
            .args(["--prefix", prefix])
            .arg("--kcat")
            .arg(&self.tools.kcat)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run count.py");
        assert!(
            out.status.success(),
            "count.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Counts(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "count.py output {:?}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        }))
    }

    /// Lines now in the files, topic not read.
    fn file_lines(&self, prefix: &str) -> u64 {
        self.count_py(prefix, &["--files-only"]).get("file_lines")
    }

    /// Files against topic.
    fn count(&self, prefix: &str, forbid: Option<&str>) -> Counts {
        let mut extra = vec!["--brokers", &self.brokers, "--topic", &self.topic];
        if let Some(f) = forbid {
            extra.extend(["--forbid-prefix", f]);
        }
        self.count_py(prefix, &extra)
    }

    /// Wait (with deadlines) until the counter finds no file line missing
    /// from the topic, or the topic stops growing; then watch a quiet
    /// window for late duplicates, stop logferry with SIGTERM (it must
    /// exit 0) and count the final topic.
    fn settle(&self, lf: &mut Logferry, prefix: &str, forbid: Option<&str>) -> Counts {
        let target = self.file_lines(prefix) as i64;
        let deadline = Instant::now() + Duration::from_secs(180);
        let watermarks = Watermarks::new(&self.brokers, &self.topic);
        let mut last = -1;
        let mut last_change = Instant::now();
        let mut audited = -1;
        loop {
            let n = watermarks.records().unwrap_or(last);
            if n != last {
                (last, last_change) = (n, Instant::now());
            }
            // The topic count is cheap; the full count (kcat) runs only
            // once the topic could hold every line, and again on growth.
            if n >= target && n != audited {
                audited = n;
                if self.count(prefix, forbid).get("lost") == 0 {
                    break;
                }
            }
            if last_change.elapsed() > STALL || Instant::now() > deadline {
                eprintln!(
                    "{}: topic stuck at {n} records (files hold {target} lines) for {:?}",
                    self.name,
                    last_change.elapsed()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let quiet_deadline = Instant::now() + Duration::from_secs(30);
        last_change = Instant::now();
        while last_change.elapsed() < QUIET && Instant::now() < quiet_deadline {
            std::thread::sleep(Duration::from_millis(250));
            let n = watermarks.records().unwrap_or(last);
            if n != last {
                (last, last_change) = (n, Instant::now());
            }
        }
        let st = lf.stop();
        assert!(st.success(), "logferry exited with {st}:\n{}", lf.stderr());
        self.count(prefix, forbid)
    }

    /// logferry's warnings and errors from every run, for a failure message.
    fn logferry_warnings(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.logferry_runs {
            let p = self.dir.path().join(format!("logferry-{run}.err"));
            let text = fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            out += &format!("-- logferry run {run}: {} warnings/errors\n", lines.len());
            for l in lines.iter().rev().take(15).rev() {
                out += &strip_ansi(l);
                out.push('\n');
            }
        }
        out
    }
}

/// A log line without its terminal colours (logferry colours its log
/// even into a file).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Scene {
    /// A failed scenario keeps its directory (logs, rotated files,
    /// logferry's stderr and checkpoints, the configurations) to look at.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "{}: kept {} for inspection",
                self.name,
                self.dir.path().display()
            );
        }
    }
}

/// What happens to logferry, in order, while the writer writes.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Wait 2-4 s, run logrotate.
    Rotate,
    /// SIGTERM logferry (clean stop, last checkpoint written), once it
    /// follows the live file the last rotation created.
    Stop,
    /// Count the lines written in the 2 s before, then SIGKILL logferry.
    Kill,
    /// Start logferry again on its checkpoint.
    Start,
}

struct Outcome {
    counts: Counts,
    /// Lines the writer wrote (nginx: requests answered).
    written: u64,
    /// Lines written in the 2 s before a SIGKILL.
    kill_window: Option<u64>,
}

/// How many times this logferry run started following `live` (once per
/// generation it found there).
fn followed(lf: &Logferry, live: &Path) -> usize {
    let needle = format!("following path={} ", live.display());
    strip_ansi(&lf.stderr()).matches(&needle).count()
}

fn count_lines(path: &Path) -> u64 {
    let data = fs::read(path).unwrap_or_default();
    memchr::memchr_iter(b'\n', &data).count() as u64
}

/// Run one scenario: the writer writes, logferry follows from the start,
/// `steps` happen, the writer stops, logferry catches up and is stopped,
/// count.py counts. Prints one summary line.
fn run(
    scene: &mut Scene,
    workload: Workload,
    template: &str,
    steps: &[Step],
    forbid: Option<&str>,
) -> Outcome {
    let prefix = workload.prefix();
    let mut rot = Rotator::new(scene, template, workload.pidfile());
    let mut lf = Some(scene.logferry());
    let mut rotations_at_start = 0;
    let mut kill_window = None;
    for step in steps {
        match step {
            Step::Rotate => rot.rotate_after_pause(),
            Step::Stop => {
                let mut l = lf.take().expect("logferry is running");
                // A stop within milliseconds of a rotation, before logferry
                // ever saw the new file, leaves that generation unknown to
                // the checkpoint; if it is compressed while logferry is
                // down it is not found again. That is a separate, narrower
                // case than "stopped across rotations": wait until the new
                // file is followed (one "following" of the live path per
                // generation this run has seen).
                let live = scene.logs.join(prefix);
                let want = rot.done - rotations_at_start + 1;
                let deadline = Instant::now() + Duration::from_secs(30);
                while followed(&l, &live) < want {
                    assert!(
                        Instant::now() < deadline,
                        "logferry did not follow the new {} within 30 s:\n{}",
                        live.display(),
                        strip_ansi(&l.stderr())
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                // And until it has shipped past the live file's first lines:
                // a file of which logferry knows only a header that every
                // file starts with is not told apart from the others once
                // it is renamed and compressed while logferry is down (the
                // docs/DELIVERY.md says so). Checkpoints are written every second.
                // (By inode: a renamed file's entry keeps its old path
                // until logferry notices the rename.)
                let state = scene.dir.path().join("state");
                let past_header = || {
                    use std::os::unix::fs::MetadataExt;
                    let Ok(ino) = std::fs::metadata(&live).map(|m| m.ino()) else {
                        return false;
                    };
                    let Ok(text) = std::fs::read_to_string(state.join("checkpoints.json")) else {
                        return false;
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                        return false;
                    };
                    v["files"].as_array().is_some_and(|files| {
                        files.iter().any(|f| {
                            f["id"]["ino"].as_u64() == Some(ino)
                                && f["position"].as_u64().is_some_and(|p| p > 4096)
                        })
                    })
                };
                while !past_header() {
                    assert!(
                        Instant::now() < deadline,
                        "logferry did not ship past the start of {} within 30 s",
                        live.display()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                let st = l.stop();
                assert!(st.success(), "logferry exited with {st}:\n{}", l.stderr());
            }
            Step::Kill => {
                let l = lf.take().expect("logferry is running");
                let live = scene.logs.join(prefix);
                let before = count_lines(&live);
                // The window the duplicates are bounded by (a schedule,
                // not a synchronisation); no rotation happens inside it.
                std::thread::sleep(Duration::from_secs(2));
                let at_kill = count_lines(&live);
                l.signal(libc::SIGKILL);
                drop(l);
                kill_window = Some(at_kill.saturating_sub(before));
            }
            Step::Start => {
                assert!(lf.is_none(), "logferry is already running");
                lf = Some(scene.logferry());
                rotations_at_start = rot.done;
            }
        }
    }
    let written = workload.finish();
    let mut lf = lf.expect("the steps end with logferry running");
    let counts = scene.settle(&mut lf, prefix, forbid);
    eprintln!(
        "realtools RESULT {}: written={written} files={} file_lines={} topic={} lost={} duplicated={} unexpected={}{}{} rotations={} wall={:.1}s",
        scene.name,
        counts.files(),
        counts.get("file_lines"),
        counts.get("topic_records"),
        counts.get("lost"),
        counts.get("duplicated"),
        counts.get("unexpected"),
        forbid.map_or(String::new(), |_| format!(
            " forbidden={} (of {} excluded lines)",
            counts.get("forbidden"),
            counts.get("forbidden_file_lines")
        )),
        kill_window.map_or(String::new(), |w| format!(" kill_window={w}")),
        rot.done,
        scene.started.elapsed().as_secs_f64(),
    );
    // The harness itself: every rotation made a file, and the counter saw
    // them all.
    assert_eq!(
        counts.files(),
        rot.done + 1,
        "{} rotations should leave {} files: {}",
        rot.done,
        rot.done + 1,
        counts.0
    );
    assert!(
        counts.get("file_lines") > 1000,
        "the writer wrote too little to prove anything: {}",
        counts.0
    );
    Outcome {
        counts,
        written,
        kill_window,
    }
}

/// Nothing lost, nothing twice (or at most `max_dup`), and nothing
/// shipped that the writer did not write: a record matching no file line
/// can only be a line logrotate itself dropped from the files (written
/// after copytruncate's copy, or to the old file after gzip read it),
/// so there are at most `written - file_lines` of them.
fn assert_outcome(scene: &Scene, o: &Outcome, max_dup: u64) {
    let c = &o.counts;
    let msg = || {
        format!(
            "{}: {}\nwritten {}\n{}",
            scene.name,
            c.0,
            o.written,
            scene.logferry_warnings()
        )
    };
    assert_eq!(c.get("lost"), 0, "lines lost: {}", msg());
    assert!(
        c.get("duplicated") <= max_dup,
        "lines duplicated (at most {max_dup} allowed): {}",
        msg()
    );
    let dropped_by_logrotate = o.written.saturating_sub(c.get("file_lines"));
    assert!(
        c.get("unexpected") <= dropped_by_logrotate,
        "records that are no line the writer wrote: {}",
        msg()
    );
}

/// The common shape: nginx under load, five rotations with logferry
/// running, exactly once.
fn nginx_rotating(name: &'static str, template: &str) {
    let Some(mut scene) = Scene::new(name) else {
        return;
    };
    let workload = Workload::nginx(&scene, &["/ok.txt"]);
    let o = run(&mut scene, workload, template, &[Step::Rotate; 5], None);
    assert_outcome(&scene, &o, 0);
}

#[test]
fn nginx_create_compress() {
    nginx_rotating("nginx_create_compress", "create-compress.conf");
}

#[test]
fn nginx_create_compress_delaycompress() {
    nginx_rotating(
        "nginx_create_compress_delaycompress",
        "create-compress-delaycompress.conf",
    );
}

#[test]
fn nginx_create_dateext_compress() {
    nginx_rotating(
        "nginx_create_dateext_compress",
        "create-dateext-compress.conf",
    );
}

#[test]
fn nginx_copytruncate_compress() {
    nginx_rotating("nginx_copytruncate_compress", "copytruncate-compress.conf");
}

#[test]
fn nginx_copytruncate_compress_delaycompress() {
    nginx_rotating(
        "nginx_copytruncate_compress_delaycompress",
        "copytruncate-compress-delaycompress.conf",
    );
}

/// Every generation starts with the same 293 bytes: identity by first
/// bytes would take a new file for the old one.
#[test]
fn header_writer_create_compress() {
    let Some(mut scene) = Scene::new("header_writer_create_compress") else {
        return;
    };
    let workload = Workload::header(&scene);
    let o = run(
        &mut scene,
        workload,
        "create-compress.conf",
        &[Step::Rotate; 5],
        None,
    );
    assert_outcome(&scene, &o, 0);
}

/// Two rotations while logferry is stopped (Debian's compress +
/// delaycompress): at the restart the generation it was reading is in
/// `.2.gz`, the next one in `.1`, and all of them start with the same
/// header as the live file.
#[test]
fn header_writer_rotated_while_stopped() {
    let Some(mut scene) = Scene::new("header_writer_rotated_while_stopped") else {
        return;
    };
    let workload = Workload::header(&scene);
    let o = run(
        &mut scene,
        workload,
        "create-compress-delaycompress.conf",
        &[
            Step::Rotate,
            Step::Stop,
            Step::Rotate,
            Step::Rotate,
            Step::Start,
            Step::Rotate,
        ],
        None,
    );
    assert_outcome(&scene, &o, 0);
}

/// Debian's nginx logrotate configuration; logferry SIGKILLed, two
/// rotations while it is down (the file it was reading is compressed by
/// the second), restarted. Duplicates are allowed for lines acknowledged
/// but not yet checkpointed at the kill, so at most the lines of the last
/// 2 s.
#[test]
fn nginx_killed_across_two_rotations() {
    let Some(mut scene) = Scene::new("nginx_killed_across_two_rotations") else {
        return;
    };
    let workload = Workload::nginx(&scene, &["/ok.txt"]);
    let o = run(
        &mut scene,
        workload,
        "debian-nginx.conf",
        &[
            Step::Rotate,
            Step::Rotate,
            Step::Kill,
            Step::Rotate,
            Step::Rotate,
            Step::Start,
            Step::Rotate,
        ],
        None,
    );
    let window = o.kill_window.unwrap();
    eprintln!(
        "nginx_killed_across_two_rotations: {} duplicates after SIGKILL (bound: {window} lines written in the 2 s before it)",
        o.counts.get("duplicated")
    );
    assert_outcome(&scene, &o, window);
}

/// error.log matches the include glob but is excluded; nginx writes to it
/// (a request for a missing file logs an error) and logrotate rotates it
/// with access.log (Debian's `*.log` block). None of its lines, live or
/// rotated, may reach the topic.
#[test]
fn exclude_with_rotation() {
    let Some(mut scene) = Scene::new("exclude_with_rotation") else {
        return;
    };
    let workload = Workload::nginx(&scene, &["/ok.txt", "/no-such-file"]);
    let o = run(
        &mut scene,
        workload,
        "debian-nginx.conf",
        &[Step::Rotate; 4],
        Some("error.log"),
    );
    let c = &o.counts;
    assert!(
        c.get("forbidden_file_lines") > 1000,
        "nginx wrote too few error lines to prove anything: {}",
        c.0
    );
    assert!(
        c.0["forbidden_files"].as_array().map_or(0, Vec::len) > 1,
        "error.log was never rotated: {}",
        c.0
    );
    assert_eq!(
        c.get("forbidden"),
        0,
        "lines of the excluded error.log were shipped: {}",
        c.0
    );
    assert_outcome(&scene, &o, 0);
}
