//! Shutdown on SIGINT/SIGTERM. The first signal asks the shipping loop to
//! stop reading, drain and checkpoint; a second one exits at once (for an
//! operator who does not want to wait for a broker that is down).
//!
//! SIGHUP asks for a configuration reload: the handler only sets a flag
//! ([`ReloadRequest`]) that the main loop polls, and the loop does the
//! work. SIGUSR1 and SIGUSR2 are caught and logged, never obeyed: their
//! default action kills the process on the spot, with no last checkpoint,
//! and a stray one must not do that.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};

use signal_hook::iterator::{Handle, Signals};

#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Install handlers for SIGINT and SIGTERM that trigger this shutdown.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the conditional exit is registered first, so it
            // only fires when the flag is already set (the second signal).
            signal_hook::flag::register_conditional_shutdown(
                sig,
                130,
                Arc::clone(&self.requested),
            )?;
            signal_hook::flag::register(sig, Arc::clone(&self.requested))?;
        }
        Ok(())
    }

    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}

/// A configuration reload asked for (SIGHUP): a flag set by the signal
/// handler and taken by the main loop, which does the work.
#[derive(Clone, Debug, Default)]
pub struct ReloadRequest {
    requested: Arc<AtomicBool>,
}

impl ReloadRequest {
    /// Catch SIGHUP from now on: it sets this flag (and no longer kills).
    pub fn install() -> std::io::Result<Self> {
        let r = ReloadRequest::default();
        signal_hook::flag::register(SIGHUP, Arc::clone(&r.requested))?;
        Ok(r)
    }

    /// Ask for a reload (as SIGHUP does).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a reload was asked for since the last call (several signals
    /// before the loop looked make one reload).
    pub fn take(&self) -> bool {
        self.requested.swap(false, Ordering::SeqCst)
    }
}

/// Catches SIGUSR1 and SIGUSR2 and logs each one received, from a
/// thread of its own: no loop reacts to them.
/// Dropping it stops the thread; the signals stay caught (and now ignored)
/// until the process exits, so a late one still cannot kill it mid-shutdown.
pub struct IgnoredSignals {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    /// Signals received and logged so far.
    received: Arc<AtomicUsize>,
}

impl IgnoredSignals {
    pub fn install() -> std::io::Result<Self> {
        // Registered here, before the thread starts: from this call on the
        // default (fatal) action no longer applies.
        let mut signals = Signals::new([SIGUSR1, SIGUSR2])?;
        let handle = signals.handle();
        let received = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&received);
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    log_ignored(sig);
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })?;
        Ok(IgnoredSignals {
            handle,
            thread: Some(thread),
            received,
        })
    }

    /// How many of these signals were received (and logged) so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

/// One warning per signal received.
fn log_ignored(sig: i32) {
    match sig {
        SIGUSR1 => tracing::warn!("received SIGUSR1; ignoring it"),
        SIGUSR2 => tracing::warn!("received SIGUSR2; ignoring it"),
        other => tracing::warn!("received signal {other}; ignoring it"),
    }
}

impl Drop for IgnoredSignals {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn usr_signals_are_logged_and_do_not_kill() {
        let ignored = IgnoredSignals::install().unwrap();
        for sig in [SIGUSR1, SIGUSR2] {
            // SAFETY: raise(3) on this process; the handler is installed.
            assert_eq!(unsafe { libc::raise(sig) }, 0);
        }
        // Still alive here; wait for the thread to have seen all three.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ignored.received() < 2 {
            assert!(
                Instant::now() < deadline,
                "only {} of 2 signals seen",
                ignored.received()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(ignored);
        // Closed: still caught, so still not fatal.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(SIGUSR1) }, 0);
    }

    #[test]
    fn hup_sets_the_reload_flag_once() {
        let reload = ReloadRequest::install().unwrap();
        assert!(!reload.take());
        // SAFETY: raise(3) on this process; the handler is installed.
        assert_eq!(unsafe { libc::raise(SIGHUP) }, 0);
        assert_eq!(unsafe { libc::raise(SIGHUP) }, 0);
        // The handler ran before raise returned (same thread).
        assert!(reload.take());
        assert!(!reload.take());
    }
}
