//! Shutdown on SIGINT/SIGTERM. The first signal asks the shipping loop to
//! stop reading, drain and checkpoint; a second one exits at once (for an
//! operator who does not want to wait for a broker that is down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
