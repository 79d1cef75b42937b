//! Ending what runs in a container's cgroup: a signal to all, the rest
//! after an init's exit, and the kill-and-remove at Delete, each only in a
//! cgroup this shim made.

use std::time::{Duration, Instant};

use libcgroups::common::CgroupManager;

use super::{v1, v1_host, Cgroup, CgroupError};

impl Cgroup {
    /// Signals every process in the cgroup, those outside the container's
    /// pid namespace tree too. SIGKILL through v2's cgroup.kill where the
    /// kernel has it (5.14+); otherwise the cgroup is frozen while it is
    /// listed and signalled, so nothing forks past the list, and thawed
    /// after unless it was `paused` (a frozen process takes the signal on
    /// Resume; SIGKILL's caller thaws).
    pub fn signal_all(&self, sig: i32, paused: bool) -> Result<(), CgroupError> {
        if sig == libc::SIGKILL && !v1_host() {
            let kill = self.v2_dir().join("cgroup.kill");
            if kill.exists() {
                return std::fs::write(&kill, "1").map_err(|e| self.err("kill all", e));
            }
        }
        // Without a freezer the signal still goes, to the processes listed.
        let froze = !paused && self.freeze(true).is_ok();
        let listed = self.pids();
        for pid in listed.as_deref().unwrap_or_default() {
            let _ = crate::sys::kill(*pid, sig);
        }
        if froze {
            self.freeze(false)?;
        }
        listed.map(|_| ())
    }

    /// Removes the cgroup if this shim made it; with `kill_all`, SIGKILLs
    /// what is left in it first and waits (bounded) for it to go. Whether to
    /// kill is the caller's: as runc, only where the container shares a pid
    /// namespace (otherwise its init's death ended the rest) or where the
    /// shim died and the init may live. A cgroup that is not there
    /// (containerd's `delete` after a clean Delete) costs a few stats.
    pub fn destroy(&self, kill_all: bool, deadline: Duration) -> Result<(), CgroupError> {
        if !self.owned {
            log::debug!("cgroup {}: not made by this shim; left as it is", self.path.display());
            return Ok(());
        }
        let dirs = if v1_host() { self.v1_dirs()? } else { vec![self.v2_dir()] };
        if !dirs.iter().any(|d| d.exists()) {
            return Ok(());
        }
        if kill_all {
            self.kill_until_empty(deadline)?;
        }
        if self.systemd.is_some() {
            // Stopping the scope removes its cgroup.
            return self.manager()?.remove().map_err(|e| self.err("stop the scope", e));
        }
        v1::remove(&dirs).map_err(|e| self.err("remove", e))
    }

    /// SIGKILLs what is in the cgroup now, without waiting or freezing (it
    /// runs on the event loop at an init's exit): v2's cgroup.kill, else a
    /// few rounds of list and kill. Delete's `destroy` finishes the job.
    pub fn kill_rest(&self) -> Result<(), CgroupError> {
        if !self.owned {
            return Ok(());
        }
        if !v1_host() {
            let kill = self.v2_dir().join("cgroup.kill");
            if kill.exists() {
                return std::fs::write(&kill, "1").map_err(|e| self.err("kill the rest", e));
            }
        }
        for _ in 0..3 {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = crate::sys::kill(pid, libc::SIGKILL);
            }
        }
        Ok(())
    }

    fn kill_until_empty(&self, deadline: Duration) -> Result<(), CgroupError> {
        let start = Instant::now();
        loop {
            let pids = self.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = crate::sys::kill(pid, libc::SIGKILL);
            }
            // A frozen process cannot die (a paused container, or a shim
            // that died while it was paused): thaw after the signal.
            let _ = self.freeze(false);
            if start.elapsed() > deadline {
                return Err(self.err("remove", "processes still present after SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}
