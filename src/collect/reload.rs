//! Reloading the collector's configuration file on SIGHUP.
//!
//! The file is read and validated as at start (and as `check`): an invalid
//! one is refused with the same messages, and collection goes on as it was.
//! A valid one ends the consumer session the way a shutdown does (outputs
//! fsynced, offsets committed), and a new session starts with the new
//! settings: topics added are subscribed to, topics removed let go, and
//! the brokers, consumer properties, commit interval, gap timeout,
//! metadata prefix, max_hole, archive housekeeping and index topic take
//! their new values. Nothing is lost or written twice: the new consumer
//! resumes from the offsets just committed, and a record written again
//! would rewrite the same bytes anyway.
//!
//! Not reloadable (refused, naming the key): `out` (the archive is opened
//! and locked at start), `group` (a new group would start from its own
//! offsets), and `[metrics]` (the listener is bound at start).

use std::path::PathBuf;
use std::sync::Arc;

use super::observe::CollectExposition;
use crate::config::collect::{load_collect, CollectSettings};
use crate::shutdown::ReloadRequest;

/// Where the collector's reloads come from.
pub struct CollectReload {
    pub request: ReloadRequest,
    /// The configuration file; None when started with flags only.
    pub path: Option<PathBuf>,
}

/// Why `new` cannot replace `old` in a running collector, empty if it can.
fn not_reloadable(old: &CollectSettings, new: &CollectSettings) -> Vec<&'static str> {
    let mut why = Vec::new();
    if old.out != new.out {
        why.push("\"out\" in [collect] cannot change on reload (the archive is opened and locked at start); restart to apply it");
    }
    if old.group != new.group {
        why.push("\"group\" in [collect] cannot change on reload (a new group would start from its own offsets); restart to apply it");
    }
    if old.metrics != new.metrics {
        why.push("[metrics] cannot change on reload (the listener is bound at start); restart to apply it");
    }
    why
}

impl CollectReload {
    /// If a reload was asked for: the new settings when the file is valid
    /// and only changes what can change live; None (said in the log, and
    /// counted) otherwise.
    pub(super) fn poll(
        &self,
        current: &CollectSettings,
        exposition: Option<&Arc<CollectExposition>>,
    ) -> Option<CollectSettings> {
        if !self.request.take() {
            return None;
        }
        let Some(path) = &self.path else {
            tracing::warn!("received SIGHUP: started without a configuration file (flags only), so there is no file to re-read; nothing changed");
            return None;
        };
        tracing::info!(path = %path.display(), "received SIGHUP: reloading the configuration");
        let refused = || {
            if let Some(x) = exposition {
                x.reloads.refused();
            }
        };
        let new = match load_collect(path) {
            Ok(new) => new,
            Err(e) => {
                for line in e.to_string().lines() {
                    tracing::error!("reload refused, the running configuration is kept: {line}");
                }
                refused();
                return None;
            }
        };
        let why = not_reloadable(current, &new);
        if !why.is_empty() {
            for line in why {
                tracing::error!(
                    "reload refused, the running configuration is kept: {}: {line}",
                    path.display()
                );
            }
            refused();
            return None;
        }
        if let Some(x) = exposition {
            x.reloads.applied();
        }
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::collect::parse_collect;

    fn settings(collect: &str) -> CollectSettings {
        parse_collect(
            &format!("[collect]\ntopics = [\"a\"]\n{collect}"),
            std::path::Path::new("/c.toml"),
        )
        .unwrap()
    }

    #[test]
    fn out_group_and_metrics_cannot_change_live() {
        let old = settings("out = \"/o\"\n");
        let live = settings("out = \"/o\"\ncommit_interval = \"5s\"\nmax_hole = \"1GiB\"\n");
        assert!(not_reloadable(&old, &live).is_empty());
        let why = not_reloadable(&old, &settings("out = \"/p\"\ngroup = \"g2\"\n"));
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].starts_with("\"out\"") && why[1].starts_with("\"group\""));
        let why = not_reloadable(
            &old,
            &settings("out = \"/o\"\n[metrics]\nlisten = \"127.0.0.1:1\"\n"),
        );
        assert_eq!(why.len(), 1, "{why:?}");
    }
}
