//! `logferry tail`: flags -> [`TailSettings`], then the live view until
//! Ctrl-C. Exit 2 for a bad flag (named), 1 when the topic cannot be read.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::TailArgs;
use crate::fleet::filter::Filter;
use crate::fleet::print;
use crate::fleet::tail::{self, StartAt, TailSettings};
use crate::fleet::time;
use crate::shutdown::Shutdown;
use crate::wire::Format;

pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("logferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let mut out = print::to_stdout(args.format);
    let counts = tail::run(&settings, &shutdown, &mut out)?;
    tracing::debug!(
        records = counts.records,
        printed = counts.printed,
        "tail stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// The settings the flags describe; the message names the flag at fault.
fn settings(a: &TailArgs) -> Result<TailSettings, String> {
    if a.topics.iter().any(String::is_empty) {
        return Err("--topic must not be empty".into());
    }
    let start = match a.from.trim() {
        "beginning" => StartAt::Beginning,
        "end" => StartAt::End,
        other => {
            StartAt::Time(time::parse(other, time::now_ms()).map_err(|e| format!("--from {e}"))?)
        }
    };
    let filter = Filter::new(a.host.as_deref(), a.path.as_deref(), a.grep.as_deref())
        .map_err(|e| e.to_string())?;
    let mut kafka_props = Vec::new();
    for (k, v) in &a.properties {
        let v = crate::config::resolve_value(v).map_err(|e| format!("-X {k}: {e}"))?;
        kafka_props.push((k.clone(), v));
    }
    if a.read_uncommitted {
        let (k, v) = crate::cli::READ_UNCOMMITTED;
        kafka_props.push((k.into(), v.into()));
    }
    Ok(TailSettings {
        brokers: a.brokers.clone(),
        topics: a.topics.clone(),
        kafka_props,
        start,
        filter,
        metadata: a.metadata.as_ref().map(|m| Format::Tail2Kafka {
            meta: m.clone().into_bytes(),
        }),
    })
}
