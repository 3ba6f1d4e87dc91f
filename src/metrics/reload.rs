//! Configuration reloads (SIGHUP), for `ship` and `collect` alike: how many
//! were applied or refused, and whether the last one was applied. Shared
//! with the loop through atomics (a reload is rare; no snapshot needed).

use std::sync::atomic::{AtomicU64, Ordering};

use super::family::{counters, gauges, labels, Labels};
use super::Registry;

#[derive(Debug, Default)]
pub struct ReloadStatus {
    applied: AtomicU64,
    refused: AtomicU64,
    /// 1 after an applied reload (or none yet), 0 after a refused one.
    last_failed: AtomicU64,
    /// Seconds since the epoch of the last reload attempt (0: none).
    last_at: AtomicU64,
}

impl ReloadStatus {
    pub fn applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
        self.last_failed.store(0, Ordering::Relaxed);
        self.stamp();
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.last_failed.store(1, Ordering::Relaxed);
        self.stamp();
    }

    fn stamp(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_at.store(now, Ordering::Relaxed);
    }

    /// Register `logferry_config_reloads_total{result}`,
    /// `logferry_config_last_reload_success` and
    /// `logferry_config_last_reload_timestamp_seconds`.
    pub fn register(&self, r: &mut Registry) {
        counters(
            r,
            "logferry_config_reloads",
            "Configuration reloads asked for by SIGHUP, by result (applied, refused: the running configuration was kept)",
            [
                (
                    labels([("result", "applied".to_string())]),
                    self.applied.load(Ordering::Relaxed),
                ),
                (
                    labels([("result", "refused".to_string())]),
                    self.refused.load(Ordering::Relaxed),
                ),
            ],
        );
        gauges(
            r,
            "logferry_config_last_reload_success",
            "1 when the last reload was applied (or none was asked for), 0 when it was refused",
            [(
                Labels::new(),
                1.0 - self.last_failed.load(Ordering::Relaxed) as f64,
            )],
        );
        gauges(
            r,
            "logferry_config_last_reload_timestamp_seconds",
            "When the last reload was asked for (seconds since the epoch; 0: never)",
            [(Labels::new(), self.last_at.load(Ordering::Relaxed) as f64)],
        );
    }
}
