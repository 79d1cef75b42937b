//! The first container's init, spawned as the shim starts. containerd
//! writes the bundle's config.json before it runs `start` in the bundle, so
//! the namespaces the init is cloned into are known while containerd is
//! still connecting: the clone (a new network namespace alone is ~0.45 ms
//! here) and the init's exec happen before the Create instead of inside it.
//! The Create hands the init its stdio and its config, as to any other; an
//! early init it cannot use (other namespaces, a restore, a failed Create,
//! no Create at all) is killed.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::prepared::Started;
use super::Shim;
use crate::runtime::namespaces::NsPlan;
use crate::stdio::{Owner, Stdio};
use crate::sys;

/// An init spawned ahead, and what it was cloned into. Killed unless taken.
pub(super) struct Early {
    /// The part of the plan the spawn itself acted on: the CLONE_NEW* flags
    /// and the pid namespace joined by path (the rest comes with the config).
    flags: u64,
    join_pid: Option<PathBuf>,
    started: Option<Started>,
}

impl Early {
    /// The init, if it was cloned into exactly what `plan` asks for; else
    /// it is killed here.
    pub fn take_for(mut self, plan: &NsPlan) -> Option<Started> {
        let (_, exited) = self.started.as_mut()?;
        // One that died meanwhile (killed by someone) is no use either.
        let alive = matches!(exited.try_recv(), Err(tokio::sync::oneshot::error::TryRecvError::Empty));
        if alive && fits(self.flags, self.join_pid.as_deref(), plan) {
            self.started.take()
        } else {
            None
        }
    }
}

/// A new user namespace never fits: its id maps are written between the
/// clone and the exec, from the Create's config.
fn fits(flags: u64, join_pid: Option<&Path>, plan: &NsPlan) -> bool {
    !plan.new_user && plan.clone_flags == flags && plan.join_pid.as_deref() == join_pid
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some((spawned, _)) = self.started.take() {
            // The reaper reaps it (nobody waits for this exit).
            let _ = sys::pidfd_send_signal(spawned.pidfd.as_raw_fd(), libc::SIGKILL);
        }
    }
}

impl Shim {
    /// Spawns the init of the bundle in the working directory, on the
    /// event loop (the reaper must know every child it may reap). Best
    /// effort: whatever is missing or fails here, the Create spawns as
    /// ever, and only the time is lost.
    pub fn spawn_early(&self) {
        let Ok(loaded) = crate::spec::load(Path::new(".")) else { return };
        let plan = NsPlan::from_spec(&loaded.spec);
        if plan.new_user {
            return;
        }
        // No URIs: /dev/null, until the Create's stdio is handed over.
        let owner = Owner { id: "", namespace: &self.ctx.namespace };
        let stdio = Stdio::open("", "", "", &owner).map_err(|e| std::io::Error::other(e.to_string()));
        let spawned = stdio.and_then(|stdio| self.runtime.spawn(&plan, &stdio.container, None, None));
        match spawned {
            Ok(spawned) => {
                let exited = self.reaper.register(spawned.pid);
                let early =
                    Early { flags: plan.clone_flags, join_pid: plan.join_pid, started: Some((spawned, exited)) };
                if let Ok(mut slot) = self.early.lock() {
                    *slot = Some(early);
                }
            }
            Err(e) => log::debug!("early init: {e}"),
        }
    }

    /// The early init, for the shim's first Create only.
    pub(super) fn take_early(&self) -> Option<Early> {
        self.early.lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_namespaces_it_was_cloned_into_fit() {
        let plan = |flags: u64, join_pid: Option<&str>, new_user: bool| NsPlan {
            clone_flags: flags,
            join_pid: join_pid.map(PathBuf::from),
            new_user,
            ..NsPlan::default()
        };
        let net = libc::CLONE_NEWNET as u64;
        let pid = libc::CLONE_NEWPID as u64;
        assert!(fits(net | pid, None, &plan(net | pid, None, false)));
        assert!(!fits(net | pid, None, &plan(pid, None, false)), "a config that joins a network namespace");
        assert!(!fits(pid, None, &plan(net | pid, None, false)));
        let pod = Some(Path::new("/proc/7/ns/pid"));
        assert!(fits(0, pod, &plan(0, Some("/proc/7/ns/pid"), false)));
        assert!(!fits(0, pod, &plan(0, Some("/proc/8/ns/pid"), false)));
        assert!(!fits(0, None, &plan(0, Some("/proc/7/ns/pid"), false)));
        assert!(!fits(net, None, &plan(net, None, true)), "a new user namespace");
    }
}
