//! `logferry collect`: consume until a signal, rebuilding the servers' files
//! under OUT; `logferry collect status`: report completeness and gaps.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::report_config_error;
use crate::cli::{CollectAction, CollectArgs, CollectStatusArgs};
use crate::collect;
use crate::collect::observe::CollectExposition;
use crate::config::collect::load_collect;
use crate::metrics::MetricsServer;
use crate::shutdown::{IgnoredSignals, ReloadRequest, Shutdown};

pub fn run(args: CollectArgs) -> anyhow::Result<ExitCode> {
    if let Some(CollectAction::Status(s)) = args.action {
        return status(s);
    }
    let config_path = args.config.clone();
    let flag = if args.config.is_some() {
        "[metrics] listen"
    } else {
        "--metrics-listen"
    };
    let settings = match &args.config {
        Some(path) => match load_collect(path) {
            Ok(s) => s,
            Err(e) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
        },
        None => match args.into_settings() {
            Ok(s) => s,
            Err(e) => {
                report_config_error(&e);
                return Ok(ExitCode::from(2));
            }
        },
    };
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let _ignored_signals = IgnoredSignals::install().context("installing signal handlers")?;
    let reload = collect::reload::CollectReload {
        request: ReloadRequest::install().context("installing signal handlers")?,
        path: config_path,
    };
    tracing::info!(
        topics = ?settings.topics,
        group = %settings.group,
        out = %settings.out.display(),
        metrics = ?settings.metrics.map(|m| m.listen),
        "collecting"
    );
    // Kept until the collector returned: /health answers to the end.
    let (exposition, _metrics_server) = match settings.metrics {
        Some(m) => {
            let exposition = Arc::new(CollectExposition::new(m.max_stall));
            match MetricsServer::start(m.listen, flag, exposition.clone()) {
                Ok(server) => (Some(exposition), Some(server)),
                Err(e) => {
                    eprintln!("logferry: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        None => (None, None),
    };
    collect::run(&settings, &shutdown, exposition, Some(&reload))?;
    Ok(ExitCode::SUCCESS)
}

fn status(args: CollectStatusArgs) -> anyhow::Result<ExitCode> {
    let report = collect::status::status(&args.out, args.gap_timeout)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.gaps == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
