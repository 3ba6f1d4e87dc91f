//! The process's descriptor limit against the open-file budget.
//!
//! Services often start with a soft `RLIMIT_NOFILE` of 1024 (systemd's
//! default) and a far higher hard limit. With `max_open_files` at 1024 the
//! log files alone would use the whole soft limit, and librdkafka's sockets
//! and pipes, the inotify descriptor and checkpoint writes would fail with
//! EMFILE. So at start the soft limit is raised (as far as the hard limit
//! allows) to the budget plus a reserve, and the budget is lowered if the
//! hard limit is too low for it.

/// Descriptors kept for everything but log files: librdkafka (a socket or
/// two per broker, wake-up pipes), inotify, the checkpoint file, stdio.
const RESERVED: u64 = 128;

/// The smallest file budget worth running with.
const MIN_BUDGET: u64 = 16;

/// What to do with a soft limit `cur` and hard limit `max` (`None`:
/// unlimited) for a budget of `wanted` files: the soft limit to set, if it
/// must change, and the budget that fits under it.
pub fn plan(wanted: usize, cur: Option<u64>, max: Option<u64>) -> (Option<u64>, usize) {
    let need = wanted as u64 + RESERVED;
    let Some(cur) = cur else {
        return (None, wanted);
    };
    if cur >= need {
        return (None, wanted);
    }
    let target = max.map_or(need, |m| need.min(m));
    let raise = (target > cur).then_some(target);
    let fits = target.max(cur).saturating_sub(RESERVED).max(MIN_BUDGET);
    (raise, fits.min(wanted as u64) as usize)
}

/// Raise the soft descriptor limit for `wanted` open log files if needed;
/// returns the open-file budget that fits.
pub fn fit_open_files(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return wanted;
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    let (raise, budget) = plan(wanted, finite(lim.rlim_cur), finite(lim.rlim_max));
    if let Some(target) = raise {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let err = std::io::Error::last_os_error();
            let budget = lim.rlim_cur.saturating_sub(RESERVED).max(MIN_BUDGET) as usize;
            let budget = budget.min(wanted);
            tracing::warn!(soft_limit = lim.rlim_cur, error = %err, max_open_files = wanted, budget, "cannot raise the descriptor limit; keeping fewer log files open at once");
            return budget;
        }
        tracing::info!(
            from = lim.rlim_cur,
            to = target,
            "raised the soft descriptor limit (RLIMIT_NOFILE) to fit max_open_files"
        );
    }
    if budget < wanted {
        // Only worth a warning when somebody asked for that many.
        if wanted == crate::config::ShipSettings::DEFAULT_MAX_OPEN_FILES {
            tracing::info!(
                hard_limit = lim.rlim_max,
                budget,
                "keeping at most this many log files open (the descriptor hard limit is lower than the default max_open_files)"
            );
        } else {
            tracing::warn!(
                hard_limit = lim.rlim_max,
                max_open_files = wanted,
                budget,
                "the descriptor limit is below max_open_files plus a reserve; keeping fewer log files open at once (raise LimitNOFILE / ulimit -n)"
            );
        }
    }
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_already_changes_nothing() {
        assert_eq!(plan(1024, Some(20_000), Some(20_000)), (None, 1024));
        assert_eq!(plan(1024, None, None), (None, 1024));
    }

    #[test]
    fn systemd_default_is_raised_to_fit() {
        // Soft 1024, hard 524288: raised to the budget plus the reserve.
        assert_eq!(plan(1024, Some(1024), Some(524_288)), (Some(1152), 1024));
        assert_eq!(plan(1024, Some(1024), None), (Some(1152), 1024));
    }

    #[test]
    fn low_hard_limit_lowers_the_budget() {
        assert_eq!(plan(1024, Some(256), Some(1024)), (Some(1024), 896));
        // Nothing to raise: the budget shrinks, never below the minimum.
        assert_eq!(plan(1024, Some(100), Some(100)), (None, 16));
    }
}
