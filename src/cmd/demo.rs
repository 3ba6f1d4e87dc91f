//! `logferry demo`: the whole pipeline on the embedded broker. Two
//! simulated hosts (`web1`, `web2`) write access logs, each rotated half
//! way (rename + create), and ship them with logferry; a collector rebuilds
//! every file under one directory (the rotated generation compressed once
//! idle); `merge` prints both hosts interleaved by the time each line was
//! read; and the rebuilt files are compared byte for byte with the sources
//! (exit 1 if any differs).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::collect::index::{Archived, Store};
use crate::config::collect::CollectSettings;
use crate::config::ShipSettings;
use crate::embedded::{EmbeddedBroker, LABEL};
use crate::fleet::filter::Filter;
use crate::fleet::merge::{self, MergeSettings};
use crate::fleet::print::{OutputFormat, Printer};
use crate::ship::Shipper;
use crate::shutdown::Shutdown;

const TOPIC: &str = "demo";
const HOSTS: [&str; 2] = ["web1", "web2"];
/// Bound on the collector catching up after the last line was written.
const SETTLE: Duration = Duration::from_secs(30);

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = demo_dir()?;
    let total = args.lines.max(2);
    println!("logferry demo: two hosts ship rotated access logs to an {LABEL}; a collector rebuilds them in {}", dir.join("out").display());
    let broker = EmbeddedBroker::start(&[TOPIC]).context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap();
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let ship_stop = Shutdown::new();
    let mut shippers = Vec::new();
    let mut writers = Vec::new();
    for (i, host) in HOSTS.iter().enumerate() {
        let log = dir.join(host).join("access.log");
        std::fs::create_dir_all(log.parent().expect("has a parent"))?;
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let shipper = Shipper::new(ship_settings(&dir, host, &log)?, &bootstrap)?;
        let stop = ship_stop.clone();
        shippers.push(std::thread::spawn(move || shipper.run(&stop)));
        // Different paces, so the two hosts' lines interleave in time.
        writers.push(write_sample(
            log,
            host,
            total,
            Duration::from_millis(60 + 35 * i as u64),
        ));
    }
    let out = dir.join("out");
    let collect_stop = Shutdown::new();
    let collector = {
        let settings = collect_settings(&bootstrap, &out)?;
        let stop = collect_stop.clone();
        std::thread::spawn(move || crate::collect::run(&settings, &stop, None, None))
    };
    for w in writers {
        w.join()
            .map_err(|_| anyhow::anyhow!("sample writer panicked"))??;
    }
    println!(
        "logferry demo: {total} lines written per host (rotated once); waiting for the collector"
    );
    let deadline = Instant::now() + SETTLE;
    let mut check = compare(&dir, &out);
    while !check.as_ref().is_ok_and(Check::done)
        && Instant::now() < deadline
        && !shutdown.is_requested()
    {
        std::thread::sleep(Duration::from_millis(200));
        check = compare(&dir, &out);
    }
    ship_stop.request();
    for s in shippers {
        s.join()
            .map_err(|_| anyhow::anyhow!("shipper panicked"))??;
    }
    collect_stop.request();
    collector
        .join()
        .map_err(|_| anyhow::anyhow!("collector panicked"))??;
    drop(broker);

    println!(
        "logferry demo: `logferry merge {}` (both hosts, in the order their lines were read):",
        out.display()
    );
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal();
    let mut printer = Printer::new(
        std::io::BufWriter::new(stdout.lock()),
        OutputFormat::Text,
        colour,
    );
    let settings = MergeSettings {
        out: out.clone(),
        filter: Filter::default(),
        since: None,
        until: None,
        follow: false,
    };
    let merged = merge::run(&settings, &shutdown, &mut printer)?;
    printer.flush()?;
    drop(printer);
    let check = check?;
    let code = if check.done() {
        println!("logferry demo: {} lines merged; byte-exact check passed: {} rebuilt files ({} compressed) identical to their sources", merged.printed, check.identical, check.compressed);
        let _ = std::fs::remove_dir_all(&dir);
        ExitCode::SUCCESS
    } else {
        println!(
            "logferry demo: byte-exact check FAILED: {}; files kept in {}",
            check.problems.join("; "),
            dir.display()
        );
        ExitCode::from(1)
    };
    Ok(code)
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A host's agent, configured as a file would configure it (and checked by
/// the same validator: the demo shows what a file means).
fn ship_settings(dir: &Path, host: &str, log: &Path) -> anyhow::Result<ShipSettings> {
    let text = format!(
        r#"host = {host}
scan_interval = "100ms"
rotate_grace = "500ms"

[kafka]
brokers = "embedded"
shutdown_timeout = "5s"

[kafka.properties]
"linger.ms" = 5

[checkpoint]
directory = {state}
interval = "500ms"

[[inputs]]
include = [{log}]
topic = "{TOPIC}"
start_at = "beginning"
"#,
        host = toml_string(host),
        state = toml_string(&dir.join(host).join("state").to_string_lossy()),
        log = toml_string(&crate::cli::globset_escape(&log.to_string_lossy())),
    );
    let path = dir.join(host).join("logferry.toml");
    let loaded = crate::config::parse(&text, &path).context("the demo's agent configuration")?;
    Ok(loaded.settings)
}

/// The collector, configured as its file would configure it.
fn collect_settings(bootstrap: &str, out: &Path) -> anyhow::Result<CollectSettings> {
    // The rotated generation is compressed once idle for a second, so the
    // merge reads a compressed generation too. One collector on one output
    // directory: no shared index needed.
    let text = format!(
        r#"[kafka]
brokers = [{brokers}]

[collect]
topics = ["{TOPIC}"]
group = "logferry-demo"
out = {out}
commit_interval = "200ms"
compress_after = "1s"
compress = "zstd"
index_topic = false
"#,
        brokers = toml_string(bootstrap),
        out = toml_string(&out.to_string_lossy()),
    );
    crate::config::collect::parse_collect(&text, &out.join("collect.toml"))
        .context("the demo's collector configuration")
}

/// A host's access log, rotated (rename to `.1`, create) half way.
fn write_sample(
    log: PathBuf,
    host: &'static str,
    total: u32,
    pace: Duration,
) -> JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        let open = |p: &Path| std::fs::OpenOptions::new().append(true).open(p);
        let mut f = open(&log)?;
        for i in 1..=total {
            if i == total / 2 + 1 {
                std::fs::rename(&log, log.with_extension("log.1"))?;
                std::fs::File::create(&log)?;
                f = open(&log)?;
            }
            writeln!(
                f,
                "198.51.100.{} - - \"GET /{host}/item/{i} HTTP/1.1\" 200 {}",
                i % 250,
                100 + i
            )?;
            std::thread::sleep(pace);
        }
        Ok(())
    })
}

/// The byte-exact check: each host's two source files against the
/// collector's two generations (older one: the rotated file).
struct Check {
    identical: usize,
    compressed: usize,
    problems: Vec<String>,
}

impl Check {
    fn done(&self) -> bool {
        self.problems.is_empty()
            && self.identical == 2 * HOSTS.len()
            && self.compressed == HOSTS.len()
    }
}

fn compare(dir: &Path, out: &Path) -> anyhow::Result<Check> {
    let index = Store::read(out)?;
    let mut check = Check {
        identical: 0,
        compressed: 0,
        problems: Vec::new(),
    };
    for host in HOSTS {
        let mut gens: Vec<_> = index
            .generations
            .values()
            .filter(|e| e.host == host)
            .collect();
        gens.sort_by_key(|e| e.first_record_ms());
        let log = dir.join(host).join("access.log");
        let sources = [log.with_extension("log.1"), log];
        if gens.len() != sources.len() {
            check.problems.push(format!(
                "{host}: {} generations collected, 2 expected",
                gens.len()
            ));
            continue;
        }
        for (e, src) in gens.iter().zip(&sources) {
            let path = out.join(&e.output);
            let rebuilt = match e.archived {
                Some(Archived::Compressed) => {
                    check.compressed += 1;
                    std::fs::File::open(&path).and_then(zstd::stream::decode_all)
                }
                _ => std::fs::read(&path),
            };
            let source =
                std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
            match rebuilt {
                Ok(b) if b == source => check.identical += 1,
                Ok(b) => check.problems.push(format!(
                    "{} ({} bytes) differs from {} ({} bytes)",
                    path.display(),
                    b.len(),
                    src.display(),
                    source.len()
                )),
                Err(e) => check.problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    Ok(check)
}

fn demo_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("logferry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
