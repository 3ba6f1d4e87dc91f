//! Spawning the tools under test and measuring them.
//!
//! Every process is a direct child of the driver (pipelines are built by the
//! driver, not by a shell), so `wait4` hands back each one's exact rusage:
//! user+system CPU of all its threads and reaped children, and its peak RSS.
//! While a process runs, `/proc/PID/stat` (utime+stime) and
//! `/proc/PID/status` (VmHWM) are sampled as well, so a live reading exists
//! too and the two sources can be compared.

use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub peak_rss_kb: u64,
}

/// A spawned process. `std`'s `wait` is never used on it: reaping goes
/// through `wait4` so that the rusage is not lost.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    exit: Option<(i32, Usage)>,
    live: Usage,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

impl Proc {
    /// Spawns `cmd`, with stderr (and stdout unless the caller set it) going
    /// to `log`. The child gets SIGKILL if the driver dies, so an aborted
    /// benchmark leaves nothing running.
    /// `stdin`: where input comes from (default /dev/null); `pipe_stdout`:
    /// keep stdout as a pipe for the next process of a pipeline.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        stdin: Option<Stdio>,
        pipe_stdout: bool,
    ) -> Result<Proc> {
        let f =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(f.try_clone()?);
        }
        cmd.stderr(f).stdin(stdin.unwrap_or_else(Stdio::null));
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let mut p = Proc {
            name: name.to_string(),
            child,
            exit: None,
            live: Usage::default(),
        };
        p.sample();
        Ok(p)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Reaps the process if it has exited, else reads /proc. Cheap; call it
    /// every few hundred milliseconds.
    pub fn sample(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let pid = self.pid();
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid value; wait4 only writes to it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child; pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            let usage = Usage {
                cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
                peak_rss_kb: ru.ru_maxrss.max(0) as u64,
            };
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            self.exit = Some((code, usage));
            return;
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the parenthesised command name; utime and stime are
            // fields 14 and 15 of the whole line, i.e. 12 and 13 after ')'.
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 13 {
                    let ticks: f64 =
                        f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
                    self.live.cpu_s = self.live.cpu_s.max(ticks / clk_tck());
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.live.peak_rss_kb = self.live.peak_rss_kb.max(kb);
            }
        }
    }

    pub fn exited(&mut self) -> bool {
        self.sample();
        self.exit.is_some()
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.exit.map(|(c, _)| c)
    }

    /// Best reading. CPU: the rusage at exit if reaped (it includes the last
    /// moments /proc sampling missed), the /proc samples otherwise.
    /// Peak RSS: VmHWM from /proc only. `ru_maxrss` is not usable here: exec
    /// folds the pre-exec image's high-water mark into it, i.e. the driver's
    /// own RSS at fork time, so a 5 MB `tail` would report the driver's 40 MB.
    pub fn usage(&self) -> Usage {
        match self.exit {
            Some((_, u)) => Usage {
                cpu_s: u.cpu_s.max(self.live.cpu_s),
                peak_rss_kb: self.live.peak_rss_kb,
            },
            None => self.live,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        if self.exit.is_none() {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid(), sig);
            }
        }
    }

    /// Waits up to `timeout` for exit, sampling as it goes.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.exited()
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns true if it exited on SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.exited() {
            return true;
        }
        self.signal(libc::SIGTERM);
        if self.wait_timeout(grace) {
            return true;
        }
        eprintln!(
            "lfbench: {} ignored SIGTERM for {grace:?}, killing it",
            self.name
        );
        self.signal(libc::SIGKILL);
        self.wait_timeout(Duration::from_secs(10));
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited() {
            self.signal(libc::SIGKILL);
            self.wait_timeout(Duration::from_secs(5));
        }
    }
}
