//! The rule behind `/health`: shipping works while acknowledgements keep
//! coming for the lines that wait, and checkpoints keep being written.

use std::time::{Duration, Instant};

/// Remembers when acknowledgements last moved; judges a stall.
#[derive(Debug)]
pub struct HealthTracker {
    max_stall: Duration,
    /// Last time acknowledgements moved, or nothing waited for one.
    progress_at: Instant,
    acked: u64,
}

impl HealthTracker {
    pub fn new(max_stall: Duration, now: Instant) -> Self {
        HealthTracker {
            max_stall,
            progress_at: now,
            acked: 0,
        }
    }

    /// Take one observation: `acked` lines acknowledged since start,
    /// `waiting` lines read and not acknowledged, and since when the
    /// checkpoint could not be written (with the last error), if it
    /// cannot. `Err` holds the one-line reason for a 503.
    pub fn observe(
        &mut self,
        now: Instant,
        acked: u64,
        waiting: u64,
        checkpoint_failing: Option<(Instant, &str)>,
    ) -> Result<(), String> {
        if acked != self.acked || waiting == 0 {
            self.progress_at = now;
        }
        self.acked = acked;
        let stalled = now.saturating_duration_since(self.progress_at);
        if stalled >= self.max_stall {
            return Err(format!(
                "no acknowledgement from Kafka for {} s while {waiting} lines wait (max_stall {} s)",
                stalled.as_secs(),
                self.max_stall.as_secs_f64()
            ));
        }
        if let Some((since, error)) = checkpoint_failing {
            let failing = now.saturating_duration_since(since);
            if failing >= self.max_stall {
                return Err(format!(
                    "checkpoint not written for {} s: {error}",
                    failing.as_secs()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waiting_without_acks_turns_unhealthy_after_max_stall() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(10 * S, t0);
        assert!(h.observe(t0, 0, 0, None).is_ok());
        assert!(h.observe(t0 + 5 * S, 0, 100, None).is_ok());
        let err = h.observe(t0 + 11 * S, 0, 100, None).unwrap_err();
        assert!(err.contains("100 lines wait"), "{err}");
        // An acknowledgement is progress.
        assert!(h.observe(t0 + 12 * S, 1, 100, None).is_ok());
    }

    #[test]
    fn idle_is_healthy() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(10 * S, t0);
        assert!(h.observe(t0 + 100 * S, 0, 0, None).is_ok());
    }

    #[test]
    fn a_checkpoint_failing_for_max_stall_is_unhealthy() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(10 * S, t0);
        assert!(h.observe(t0 + 5 * S, 0, 0, Some((t0, "disk full"))).is_ok());
        let err = h
            .observe(t0 + 10 * S, 0, 0, Some((t0, "disk full")))
            .unwrap_err();
        assert!(err.contains("disk full"), "{err}");
    }
}
