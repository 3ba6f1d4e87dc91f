//! `logferry ship`: follow files and ship their lines until a signal.

use std::process::ExitCode;

use anyhow::Context;
use logferry_tail::StateLock;

use super::report_config_error;
use crate::cli::{ArgError, ShipArgs};
use crate::config::{self, Brokers};
use crate::embedded::{EmbeddedBroker, Printer, LABEL};
use crate::ship::Shipper;
use crate::shutdown::{IgnoredSignals, Shutdown};

pub fn run(args: ShipArgs) -> anyhow::Result<ExitCode> {
    let loaded = match args.config_path(std::env::var_os(config::CONFIG_ENV)) {
        Some(path) => match config::load(&path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}: {}", w.location(Some(&path)), w.message);
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
    let settings = loaded.settings;
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
