//! Reloading the configuration on SIGHUP while shipping.
//!
//! The new file goes through the same loading and validation as at start
//! (and as `check`); an invalid one is refused with the same messages and
//! the running configuration stays. A valid one is applied at a quiet
//! moment: reading pauses, every line handed out is acknowledged and
//! checkpointed, then the inputs are changed in place (inputs that stay
//! keep their streams, open files and positions; inputs removed let go of
//! their files, positions kept in the checkpoint; inputs added are scanned
//! at once) and, if the brokers, producer properties or attribution
//! changed, a new producer replaces the old (flushed) one. So no line is
//! lost or sent twice by a reload; reading stops for about one round trip
//! to the brokers.
//!
//! What a reload cannot change (refused, naming the key): the checkpoint
//! directory (it is locked), `[metrics]` (the listener is bound), exactly-
//! once mode and, in it, the producer (a transactional id's epoch), and
//! `max_open_files` (the descriptor budget is sized at start).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{self, Brokers, ShipSettings};
use crate::metrics::ShipExposition;
use crate::shutdown::{ReloadRequest, Shutdown};

use super::{effective, tail_settings, ShipError, Shipper};

/// Where reloads come from, and what is waiting to be applied.
#[derive(Default)]
pub(super) struct Reload {
    request: Option<ReloadRequest>,
    /// The configuration file; None in quick mode (flags only).
    path: Option<PathBuf>,
    /// Validated settings waiting for in-flight lines to settle.
    pub(super) pending: Option<ShipSettings>,
    /// Reload counters, when metrics are on.
    pub(super) exposition: Option<Arc<ShipExposition>>,
}

impl Reload {
    fn refused(&self) {
        if let Some(e) = &self.exposition {
            e.reloads.refused();
        }
    }

    fn applied(&self) {
        if let Some(e) = &self.exposition {
            e.reloads.applied();
        }
    }
}

/// The bootstrap list of `brokers` (a reload cannot switch to or from the
/// embedded broker: refused before this).
fn bootstrap_of(brokers: &Brokers) -> Option<&str> {
    match brokers {
        Brokers::List(b) => Some(b),
        Brokers::Embedded => None,
    }
}

/// Why `new` cannot replace `old` in a running process (keys named as in
/// the file), empty if it can.
fn not_reloadable(old: &ShipSettings, new: &ShipSettings) -> Vec<String> {
    let mut why = Vec::new();
    if old.checkpoint_dir != new.checkpoint_dir {
        why.push("[checkpoint] dir cannot change on reload (the state directory is locked by this process); restart to apply it".to_string());
    }
    if old.metrics != new.metrics {
        why.push("[metrics] cannot change on reload (the listener is bound at start); restart to apply it".to_string());
    }
    if old.exactly_once != new.exactly_once {
        why.push(
            "[kafka] exactly_once and its settings cannot change on reload; restart to apply them"
                .to_string(),
        );
    }
    if old.max_open_files != new.max_open_files {
        why.push("max_open_files cannot change on reload (the descriptor budget is sized at start); restart to apply it".to_string());
    }
    if bootstrap_of(&old.brokers).is_some() != bootstrap_of(&new.brokers).is_some() {
        why.push("brokers cannot switch to or from the embedded broker on reload".to_string());
    }
    if old.exactly_once.is_some()
        && (old.kafka_props != new.kafka_props
            || old.brokers != new.brokers
            || old.attribution != new.attribution
            || old.host != new.host)
    {
        why.push("in exactly-once mode the brokers, [kafka] properties, attribution and host cannot change on reload (a new transactional producer would fence this one); restart to apply them".to_string());
    }
    why
}

/// For each new input, the index of the identical old input, if any (each
/// old input matched once). An input changed in any way is a new one.
fn match_inputs(old: &ShipSettings, new: &ShipSettings) -> Vec<Option<usize>> {
    let mut taken = vec![false; old.inputs.len()];
    new.inputs
        .iter()
        .map(|n| {
            let found = old
                .inputs
                .iter()
                .enumerate()
                .position(|(i, o)| !taken[i] && o == n)?;
            taken[found] = true;
            Some(found)
        })
        .collect()
}

impl Shipper {
    /// Reload `path` when `request` is raised (SIGHUP); without a file
    /// (quick mode) a request is only logged.
    pub fn with_reload(mut self, request: ReloadRequest, path: Option<PathBuf>) -> Self {
        self.reload.request = Some(request);
        self.reload.path = path;
        self
    }

    /// A reload was asked for: read and validate the file; keep the result
    /// to be applied once nothing is in flight.
    pub(super) fn poll_reload(&mut self) {
        if !self
            .reload
            .request
            .as_ref()
            .is_some_and(ReloadRequest::take)
        {
            return;
        }
        let Some(path) = self.reload.path.clone() else {
            tracing::warn!("received SIGHUP: started without a configuration file (flags only), so there is no file to re-read; nothing changed");
            return;
        };
        tracing::info!(path = %path.display(), "received SIGHUP: reloading the configuration");
        let loaded = match config::load(&path) {
            Ok(loaded) => loaded,
            Err(e) => {
                for line in e.to_string().lines() {
                    tracing::error!("reload refused, the running configuration is kept: {line}");
                }
                self.reload.refused();
                return;
            }
        };
        for w in &loaded.warnings {
            tracing::warn!("{}: {}", w.location(Some(&path)), w.message);
        }
        let new = effective(loaded.settings);
        let why = not_reloadable(&self.settings, &new);
        if !why.is_empty() {
            for line in why {
                tracing::error!(
                    "reload refused, the running configuration is kept: {}: {line}",
                    path.display()
                );
            }
            self.reload.refused();
            return;
        }
        if self.reload.pending.replace(new).is_some() {
            tracing::info!("a newer reload replaces the one not applied yet");
        }
        tracing::info!(
            unacked = self.tailer.unacked(),
            "configuration valid; reading pauses until the lines in flight are acknowledged, then it is applied"
        );
    }

    /// Apply the pending reload if nothing is in flight any more (in
    /// exactly-once mode, after a commit).
    pub(super) fn apply_reload(&mut self, shutdown: &Shutdown) -> Result<(), ShipError> {
        if self.reload.pending.is_none() {
            return Ok(());
        }
        if self.txn.is_some() {
            // The boundary waits for the acks and commits the positions.
            self.boundary(shutdown)?;
        }
        if self.tailer.unacked() > 0 || self.outbox.inflight() > 0 || self.outbox.has_retries() {
            return Ok(());
        }
        let new = self.reload.pending.take().expect("checked above");
        let kept = match_inputs(&self.settings, &new);
        let bootstrap = bootstrap_of(&new.brokers)
            .unwrap_or(self.outbox.bootstrap())
            .to_string();
        let producer = match self.outbox.producer_for(&new, &bootstrap) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("reload refused, the running configuration is kept: {e}");
                self.reload.refused();
                return Ok(());
            }
        };
        let released = match self.tailer.reconfigure(tail_settings(&new), &kept) {
            Ok(released) => released,
            Err(e) => {
                tracing::error!("reload refused, the running configuration is kept: {e}");
                self.reload.refused();
                return Ok(());
            }
        };
        for slot in released {
            self.outbox.forget(slot);
        }
        let new_producer = producer.is_some();
        self.outbox
            .reconfigure(new.clone(), &bootstrap, &kept, producer);
        let per_input: Vec<Option<u64>> = new.inputs.iter().map(|i| i.max_bytes_per_sec).collect();
        self.throttle =
            super::Throttle::new(new.max_bytes_per_sec, &per_input, std::time::Instant::now());
        let removed: Vec<String> = self
            .settings
            .inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| !kept.contains(&Some(*i)))
            .map(|(_, i)| format!("{} -> {}", i.include.join(","), i.topic))
            .collect();
        let added: Vec<String> = new
            .inputs
            .iter()
            .zip(&kept)
            .filter(|(_, k)| k.is_none())
            .map(|(i, _)| format!("{} -> {}", i.include.join(","), i.topic))
            .collect();
        self.settings = new;
        // Removed inputs' positions (now resting) are saved at once.
        if self.txn.is_none() {
            self.checkpoint();
        }
        self.reload.applied();
        tracing::info!(
            kept = kept.iter().flatten().count(),
            added = ?added,
            removed = ?removed,
            new_producer,
            "configuration reloaded"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra_top: &str, inputs: &[(&str, &str)]) -> ShipSettings {
        let mut text = format!(
            "{extra_top}\n[kafka]\nbrokers = \"k1:9092\"\n[checkpoint]\ndirectory = \"/var/lib/lf\"\n"
        );
        for (include, topic) in inputs {
            text.push_str(&format!(
                "[[inputs]]\ninclude = \"{include}\"\ntopic = \"{topic}\"\n"
            ));
        }
        config::parse(&text, std::path::Path::new("/etc/lf.toml"))
            .unwrap()
            .settings
    }

    #[test]
    fn inputs_are_matched_whole_and_once() {
        let old = settings("", &[("/a", "t"), ("/b", "t"), ("/d", "t")]);
        let new = settings("", &[("/c", "t"), ("/d", "t"), ("/b", "u"), ("/a", "t")]);
        // /b changed its topic: a new input; the others moved.
        assert_eq!(match_inputs(&old, &new), [None, Some(2), None, Some(0)]);
    }

    #[test]
    fn what_cannot_change_live_is_named() {
        let old = settings("", &[("/a", "t")]);
        assert!(not_reloadable(&old, &settings("", &[("/b", "u")])).is_empty());
        assert!(not_reloadable(
            &old,
            &settings("max_bytes_per_sec = \"1MiB\"", &[("/a", "t")])
        )
        .is_empty());
        let why = not_reloadable(&old, &settings("max_open_files = 7", &[("/a", "t")]));
        assert_eq!(why.len(), 1);
        assert!(why[0].starts_with("max_open_files"), "{why:?}");
        let mut moved = old.clone();
        moved.checkpoint_dir = "/elsewhere".into();
        moved.brokers = Brokers::Embedded;
        let why = not_reloadable(&old, &moved);
        assert_eq!(why.len(), 2, "{why:?}");
    }
}
