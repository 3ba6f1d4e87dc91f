//! The `logferry` binary: parse arguments, set up logging and signals, run.
//! Exit codes: 0 after a clean stop, 2 for bad arguments or configuration,
//! 1 for a fatal runtime error.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use logferry::cli::{CheckArgs, Cli, Command, DemoArgs, ShipArgs};
use logferry::config::{Brokers, InputSettings, PartitionBy, ShipSettings, StartAt};
use logferry::config_file::{self, ConfigError};
use logferry::embedded::{EmbeddedBroker, Printer, LABEL};
use logferry::ship::Shipper;
use logferry::shutdown::{IgnoredSignals, Shutdown};
use logferry::wire::Format;
use logferry_tail::{LongLinePolicy, StateLock};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: in journald, files
        // and pipes they are noise around every level and field.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOGFERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let result = match cli.command {
        Command::Ship(args) => ship(*args),
        Command::Check(args) => check(args),
        Command::Demo(args) => demo(args),
        Command::Verify(args) => verify(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logferry: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Print a configuration error, one `logferry: FILE:LINE:COL: ...` line per
/// problem.
fn report_config_error(e: &ConfigError) {
    for line in e.to_string().lines() {
        eprintln!("logferry: {line}");
    }
}

fn ship(args: ShipArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.config_path(std::env::var_os(config_file::CONFIG_ENV)) {
        Some(path) => match config_file::load(&path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}:{}: {}", path.display(), w.line.unwrap_or(0), w.message);
                }
                loaded.settings
            }
            Err(e) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
        },
        None => match args.into_settings() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("logferry: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    // Before anything else touches the directory: a second logferry on it
    // would overwrite this one's checkpoints. Held until this function
    // returns, after the last checkpoint.
    let _state_lock = match StateLock::acquire(&settings.checkpoint_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("logferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let _ignored_signals = IgnoredSignals::install().context("installing signal handlers")?;
    let topics: Vec<String> = settings.inputs.iter().map(|i| i.topic.clone()).collect();
    let (embedded, printer, bootstrap) = match &settings.brokers {
        Brokers::List(b) => (None, None, b.clone()),
        Brokers::Embedded => {
            eprintln!("logferry: starting an {LABEL}");
            let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let broker =
                EmbeddedBroker::start(&topic_refs).context("starting the embedded broker")?;
            let bootstrap = broker.bootstrap();
            let printer =
                Printer::start(&bootstrap, &topics[0]).context("reading the embedded broker")?;
            (Some(broker), Some(printer), bootstrap)
        }
    };
    let shipper = Shipper::new(settings, &bootstrap)?;
    shipper.run(&shutdown)?;
    drop(printer);
    drop(embedded);
    Ok(ExitCode::SUCCESS)
}

/// `logferry check`: 0 valid, 2 invalid, 1 when `--connect` finds a broker
/// that does not answer or a topic that does not exist.
fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        eprintln!(
            "logferry: --timeout must be a positive number of seconds, got {}",
            args.timeout
        );
        return Ok(ExitCode::from(2));
    }
    let loaded = match config_file::load(&args.config) {
        Ok(l) => l,
        Err(e) => {
            report_config_error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    print!("{}", config_file::summary(&args.config, &loaded));
    if args.connect {
        let timeout = Duration::from_secs_f64(args.timeout);
        match config_file::connect_check(&loaded.settings, timeout) {
            Ok(report) => {
                for line in &report.lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("logferry: {line}");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `logferry verify`: audit a topic against the source files.
fn verify(args: logferry::cli::VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = args.into_settings();
    let report = logferry::verify::verify(&settings)
        .with_context(|| format!("verifying topic {}", settings.topic))?;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The quick start: a sample access log written while logferry ships it to
/// the embedded broker, with a logrotate-style rotation half way.
fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
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
            partition_by: PartitionBy::None,
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
        host: logferry::config::host_name(),
        attribution: logferry::config::Attribution::Key,
        scan_interval: Duration::from_millis(100),
        rotate_grace: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(5),
        max_open_files: ShipSettings::DEFAULT_MAX_OPEN_FILES,
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
