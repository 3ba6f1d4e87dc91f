//! `logferry demo`: the quick start, against the embedded broker.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use logferry_tail::LongLinePolicy;

use crate::cli::DemoArgs;
use crate::config::{Brokers, InputSettings, PartitionBy, ShipSettings, StartAt};
use crate::embedded::{EmbeddedBroker, Printer, LABEL};
use crate::ship::Shipper;
use crate::shutdown::Shutdown;
use crate::wire::Format;

/// The quick start: a sample access log written while logferry ships it to
/// the embedded broker, with a logrotate-style rotation half way.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile_dir()?;
    let log = dir.join("access.log");
    let total = args.lines.max(1);
    println!(
        "logferry demo: following {} and shipping it to an {LABEL}",
        log.display()
    );
    let broker = EmbeddedBroker::start(&["demo"]).context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap();
    let printer = Printer::start(&bootstrap, "demo").context("reading the embedded broker")?;
    let settings = ShipSettings {
        inputs: vec![InputSettings {
            include: vec![log.to_string_lossy().into_owned()],
            exclude: vec![],
            topic: "demo".into(),
            start_at: StartAt::Beginning,
            format: Format::Raw,
            partition_by: PartitionBy::Generation,
            max_line_bytes: ShipSettings::DEFAULT_MAX_LINE_BYTES,
            long_lines: LongLinePolicy::Truncate,
            strip_cr: false,
            partial_flush: None,
            multiline: None,
            headers: Vec::new(),
        }],
        brokers: Brokers::Embedded,
        kafka_props: vec![("linger.ms".into(), "5".into())],
        checkpoint_dir: dir.join("state"),
        checkpoint_interval: Duration::from_millis(500),
        max_inflight_bytes: ShipSettings::DEFAULT_MAX_INFLIGHT_BYTES,
        host: crate::config::host_name(),
        attribution: crate::config::Attribution::Key,
        scan_interval: Duration::from_millis(100),
        rotate_grace: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(5),
        max_open_files: ShipSettings::DEFAULT_MAX_OPEN_FILES,
        metrics: None,
    };
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?;
            for i in 1..=total {
                if i == total / 2 + 1 {
                    // logrotate's rename+create: the old file is drained by
                    // identity, the new one is picked up by name.
                    std::fs::rename(&log, log.with_extension("log.1"))?;
                    f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)?;
                }
                writeln!(
                    f,
                    "203.0.113.{} - - [24/Nov/2026:20:00:{:02} +0000] \"GET /item/{i} HTTP/1.1\" 200 {}",
                    i % 250,
                    i % 60,
                    100 + i
                )?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        })
    };
    let watcher = {
        let shutdown = shutdown.clone();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let printer = std::sync::Arc::new(printer);
        let p = std::sync::Arc::clone(&printer);
        let r = std::sync::Arc::clone(&received);
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while p.received() < u64::from(total)
                && Instant::now() < deadline
                && !shutdown.is_requested()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            r.store(p.received(), std::sync::atomic::Ordering::Relaxed);
            shutdown.request();
        });
        (handle, received, printer)
    };
    let shipper = Shipper::new(settings, &bootstrap)?;
    let report = shipper.run(&shutdown)?;
    let (handle, received, printer) = watcher;
    let _ = handle.join();
    drop(printer);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("sample writer panicked"))??;
    drop(broker);
    let received = received.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "logferry demo: wrote {total} lines (rotated once), logferry shipped {} and the broker acknowledged {}; {received} read back.",
        report.lines_sent, report.lines_acked
    );
    let _ = std::fs::remove_dir_all(&dir);
    if received == u64::from(total) {
        println!(
            "logferry demo: every line arrived. Next: point it at a real cluster, see README.md."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "logferry demo: {} line(s) missing",
            u64::from(total).saturating_sub(received)
        );
        Ok(ExitCode::from(1))
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("logferry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
