//! `logferry ship`: follow files and ship their lines until a signal.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use logferry_tail::StateLock;

use super::report_config_error;
use crate::cli::{ArgError, ShipArgs};
use crate::config::{self, Brokers};
use crate::embedded::{EmbeddedBroker, Printer, LABEL};
use crate::metrics::{MetricsServer, ShipExposition};
use crate::ship::Shipper;
use crate::shutdown::{IgnoredSignals, ReloadRequest, Shutdown};

pub fn run(args: ShipArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.config_path(std::env::var_os(config::CONFIG_ENV));
    let args_were_quick = config_path.is_none();
    let backfill = args.backfill;
    let loaded = match &config_path {
        Some(path) => match config::load(path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}: {}", w.location(Some(path)), w.message);
                }
                loaded
            }
            Err(e) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
        },
        None => match args.into_settings() {
            // The same warnings as from a file, placed at the flag.
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}: {}", w.location(None), w.message);
                }
                loaded
            }
            Err(ArgError::Invalid(e)) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
            Err(e) => {
                eprintln!("logferry: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut settings = loaded.settings;
    if backfill {
        for input in &mut settings.inputs {
            input.backfill = true;
        }
    }
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
    let reload = ReloadRequest::install().context("installing signal handlers")?;
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
    // The start line: what this process ships where (no property values:
    // they may hold secrets).
    let inputs: Vec<String> = settings
        .inputs
        .iter()
        .map(|i| format!("{} -> {}", i.include.join(","), i.topic))
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        inputs = ?inputs,
        brokers = %bootstrap,
        attribution = settings.attribution.as_str(),
        host = %settings.host,
        checkpoint_dir = %settings.checkpoint_dir.display(),
        metrics = ?settings.metrics.as_ref().map(|m| m.listen),
        "logferry ship starting"
    );
    let metrics = settings.metrics.clone();
    let mut shipper = Shipper::new(settings, &bootstrap)?.with_reload(reload, config_path);
    // Kept until the shipper returned: /health answers through the drain.
    let _metrics_server = match metrics {
        Some(m) => {
            let exposition = Arc::new(ShipExposition::new(m.max_stall));
            let flag = if args_were_quick {
                "--metrics-listen"
            } else {
                "[metrics] listen"
            };
            let server = match MetricsServer::start(m.listen, flag, exposition.clone()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("logferry: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            shipper = shipper.with_metrics(exposition, m.top_files);
            Some(server)
        }
        None => None,
    };
    shipper.run(&shutdown)?;
    drop(printer);
    drop(embedded);
    Ok(ExitCode::SUCCESS)
}
