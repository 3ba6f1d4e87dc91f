//! The Tailer's side of file-system events: a write wakes its file,
//! anything else asks for a scan; and whether the shipping loop may sleep
//! until the next event.

use std::time::{Duration, Instant};

use super::{ScanOutcome, Tailer, RESCAN_COST_FACTOR, RESCAN_SPACING};
use crate::identity::FileId;

impl Tailer {
    /// Take file-system events (a write wakes its file; anything else asks
    /// for a scan) and scan if one is due. `busy(slot)`: the caller still
    /// holds lines of that stream (retries), so it may not be retired.
    pub fn tick(&mut self, busy: &dyn Fn(usize) -> bool) -> ScanOutcome {
        let now = Instant::now();
        let notices = self.notices.drain();
        self.rescan |= notices.rescan;
        if notices.lost {
            self.wake_after_lost_events();
        }
        for path in notices.modified {
            let slot = self.by_path.get(path);
            match slot.and_then(|slot| self.streams[slot].as_mut().map(|s| (slot, s))) {
                Some((slot, s)) => {
                    s.wake = true;
                    self.ready.push(slot);
                }
                None => self.rescan = true,
            }
        }
        if now >= self.next_scan
            || (self.rescan
                && now.duration_since(self.last_scan)
                    >= RESCAN_SPACING.max(self.scan_cost * RESCAN_COST_FACTOR))
        {
            return self.scan(busy);
        }
        ScanOutcome::default()
    }

    /// Writes went unreported (the kernel's event queue overflowed): any
    /// file may have data to read. Open files are read (a read at the end
    /// costs one `pread`); a parked file is reopened only if its size by
    /// name is not where reading stopped, as a scan would judge it. With
    /// 200,000 files under a 16,384-descriptor budget, reopening every
    /// parked file took seconds (open, `statx`, two `pread`s and a close
    /// each), a `statx` each takes a tenth of that.
    fn wake_after_lost_events(&mut self) {
        for s in self.streams.iter_mut().flatten() {
            s.wake = s.wake
                || match s.parked_at() {
                    Some(at) => std::fs::metadata(&*s.path)
                        .map_or(true, |m| FileId::of(&m) != s.id || m.len() != at),
                    None => true,
                };
        }
        self.ready_stale = true;
    }

    /// Read the file-system events queued so far, to be taken at the next
    /// [`tick`](Self::tick): for a caller busy for long between ticks (a
    /// checkpoint of 200,000 files), so the kernel's queue does not
    /// overflow meanwhile.
    pub fn keep_up(&mut self) {
        self.notices.keep_up();
    }

    /// Sleep until a file-system event or `timeout`: the idle wait, so a
    /// write is read at once rather than at the end of a fixed sleep.
    pub fn wait(&mut self, timeout: Duration) {
        self.notices.wait(timeout);
    }

    /// Nothing waits on time here: every followed directory reports its
    /// writes, no file was woken, and no scan or checkpoint write is asked
    /// for. The caller may then sleep longer between rounds, up to
    /// [`Tailer::until_scan`]; an event still wakes it at once.
    pub fn quiet(&self) -> bool {
        self.notices.active()
            && !self.save_wanted
            && !self.rescan
            && !self.ready_stale
            && self.ready.is_empty()
    }

    /// Time left until the next periodic scan.
    pub fn until_scan(&self) -> Duration {
        self.next_scan.saturating_duration_since(Instant::now())
    }
}
