//! Counters and gauges, exported over HTTP: Prometheus text at `/metrics`,
//! a health verdict at `/health`, on one listener that is off by default.
//!
//! The program's loops never touch a metrics type on their hot path: a
//! loop fills a plain snapshot a few times a second, and the exporter turns
//! the latest snapshot into metric families when it is scraped. So the
//! cost is a few hundred integer reads per update, not a call per line.
//!
//! # Layout
//! - `server.rs`: [`MetricsServer`], the HTTP listener (`/metrics`, `/health`).
//! - `ship.rs`: [`ShipSnapshot`] and [`ShipExposition`], what `ship` exports.
//! - `health.rs`: [`HealthTracker`], the stall rule behind `/health`.
//! - `top.rs`: [`top_n`], the bounded per-file view.
//! - `reload.rs`: [`ReloadStatus`], configuration reloads applied and refused.
//!
//! Another subcommand (the collector) exports the same way: implement
//! [`Exposition`] over its own snapshot and start a [`MetricsServer`] with it.

mod health;
mod reload;
mod server;
mod ship;
mod top;

pub use health::HealthTracker;
pub use prometheus_client::registry::Registry;
pub use reload::ReloadStatus;
pub use server::{MetricsError, MetricsServer};
pub use ship::{BrokerSnapshot, FileLag, InputSnapshot, ShipExposition, ShipSnapshot};
pub use top::top_n;

/// What a metrics listener serves: families registered afresh at each
/// scrape from the exporter's latest snapshot, and a health verdict.
pub trait Exposition: Send + Sync + 'static {
    /// Register the current values (called once per `/metrics` request,
    /// on a fresh registry).
    fn register(&self, registry: &mut Registry);
    /// `Err(reason)` (one line) when the program is not doing its job.
    fn health(&self) -> Result<(), String>;
}

/// Helpers for [`Exposition::register`]: one family from rows of labels
/// and values.
pub mod family {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use std::sync::atomic::AtomicU64;

    use super::Registry;

    /// Labels of one series.
    pub type Labels = Vec<(String, String)>;

    /// A counter family; `name` without `_total`, which the encoder adds.
    pub fn counters(
        registry: &mut Registry,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        let f = Family::<Labels, Counter<u64, AtomicU64>>::default();
        for (labels, v) in rows {
            f.get_or_create(&labels).inc_by(v);
        }
        registry.register(name, help, f);
    }

    /// A gauge family.
    pub fn gauges(
        registry: &mut Registry,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, v) in rows {
            f.get_or_create(&labels).set(v);
        }
        registry.register(name, help, f);
    }

    /// Labels from pairs.
    pub fn labels<const N: usize>(pairs: [(&str, String); N]) -> Labels {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
