//! What Create makes before the init exists (`Prepared`), and the list of
//! what it has done so far (`Undo`), run backwards if a later step fails:
//! a failed Create (or restore) leaves nothing behind.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::runtime::Spec;

use super::process::Logger;
use super::Confinement;
use crate::cgroups::Cgroup;
use crate::error::TaskError;
use crate::runtime::channel::Phase;
use crate::runtime::Spawned;
use crate::stdio::Stdio;
use crate::{state, sys};

/// A started process and its reaper's receiver.
pub(super) type Started = (Spawned, tokio::sync::oneshot::Receiver<u32>);

/// An init that is the container's: its pid's handle, its reaper's
/// receiver and where its handshake stands.
pub(super) type Init = (Spawned, tokio::sync::oneshot::Receiver<u32>, Phase);

/// What Create made before the init exists (see `Shim::before_init`).
pub(super) struct Prepared {
    pub rootfs: PathBuf,
    pub terminal: bool,
    pub cgroup: Cgroup,
    pub stdio: Stdio,
    pub shared_pidns: bool,
    pub hooks_spec: Option<Arc<Spec>>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    pub confinement: Confinement,
    pub state_dir: PathBuf,
}

impl Prepared {
    /// The state record of the container with init `pid` (0: none yet).
    fn record(&self, id: &str, bundle: &Path, undo: &Undo, pid: i32) -> state::Record {
        state::Record {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            rootfs_mount: undo.rootfs.clone(),
            cgroup: self.cgroup.placement().path,
            systemd_unit: self.cgroup.placement().systemd,
            cgroup_owned: self.cgroup.owned(),
            shared_pidns: self.shared_pidns,
            pid,
        }
    }

    /// `init` made the container's: undone with it from here on (killed,
    /// poststop, the cgroup, the state record), and recorded.
    pub fn adopt(&self, id: &str, bundle: &Path, init: Started, undo: &mut Undo) -> Result<(), TaskError> {
        let pid = init.0.pid;
        undo.init = Some(init);
        undo.poststop = self.hooks_spec.clone();
        self.write_record(id, bundle, undo, pid)
    }

    /// The state record written (with `pid`, 0 before the init exists),
    /// and undone with the cgroup on a failure from here on.
    pub fn write_record(&self, id: &str, bundle: &Path, undo: &mut Undo, pid: i32) -> Result<(), TaskError> {
        undo.state_dir = Some(self.state_dir.clone());
        state::write(&self.state_dir, &self.record(id, bundle, undo, pid))
            .map_err(|e| TaskError::internal("create", id, "write state", e))?;
        undo.cgroup = Some((self.cgroup.clone(), self.shared_pidns));
        Ok(())
    }
}

/// What Create has done so far, to be undone if a later step fails.
#[derive(Default)]
pub(super) struct Undo {
    pub(super) rootfs: Option<PathBuf>,
    pub(super) init: Option<Started>,
    /// The cgroup, and whether what is left in it is killed (a shared pid
    /// namespace: the init's death does not end the rest).
    pub(super) cgroup: Option<(Cgroup, bool)>,
    pub(super) state_dir: Option<PathBuf>,
    /// Once the init exists, a failed Create still ends with poststop.
    pub(super) poststop: Option<Arc<Spec>>,
    pub(super) logger: Option<Logger>,
}

/// Kills a spawned process that will not be kept and waits until it is reaped.
pub async fn kill_and_reap(spawned: Spawned, exited: tokio::sync::oneshot::Receiver<u32>) {
    let _ = sys::pidfd_send_signal(spawned.pidfd.as_raw_fd(), libc::SIGKILL);
    let _ = exited.await;
}

impl Undo {
    /// The init back from the undo list, once nothing can fail before the
    /// caller keeps it.
    pub(super) fn take_init(&mut self, id: &str) -> Result<Started, TaskError> {
        self.init.take().ok_or_else(|| TaskError::Internal(format!("create {id}: init lost")))
    }

    pub(super) async fn run(self) {
        if let Some((spawned, exited)) = self.init {
            kill_and_reap(spawned, exited).await;
        }
        if let Some(l) = self.logger {
            l.stop().await;
        }
        if let Some((cg, kill_all)) = self.cgroup {
            if let Err(e) = super::off_loop(move || cg.destroy(kill_all, std::time::Duration::from_secs(3))).await {
                log::warn!("create rollback: {e}");
            }
        }
        if let Some(root) = self.rootfs {
            if let Err(e) = sys::umount_detach(&root) {
                log::warn!("create rollback: unmount {}: {e}", root.display());
            }
        }
        if let Some(dir) = self.state_dir {
            let _ = state::remove(&dir);
        }
    }
}
