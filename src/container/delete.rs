//! Delete: an exec forgotten, or a container's init reaped and everything
//! it held let go: cgroup, rootfs mount, poststop hooks, then the state
//! record last, then TaskDelete.

use std::path::Path;
use std::time::Duration;

use containerd_shim_protos::events::task::TaskDelete;
use containerd_shim_protos::topics;

use super::lifecycle::Exit;
use super::{timestamp, who, Container, Shim};
use crate::error::TaskError;
use crate::{state, sys};

impl Shim {
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<(i32, Exit), TaskError> {
        self.touch();
        let (c, p) = self.process(id, exec_id)?;
        // An exec that never ran reports 0 (see Process::watch_exit).
        let exit =
            p.delete().await.map_err(|e| TaskError::FailedPrecondition(format!("delete {}: {e}", who(id, exec_id))))?;
        if !exec_id.is_empty() {
            if let Ok(mut m) = c.execs.lock() {
                m.remove(exec_id);
            }
            return Ok((p.pid, exit));
        }
        c.release().await;
        if let Some(spec) = &c.spec {
            self.poststop(spec, id, Path::new(&c.bundle), &c.state_dir).await;
        }
        c.forget();
        if let Ok(mut m) = self.containers.lock() {
            m.remove(id);
        }
        if self.is_empty() {
            self.retire();
        }
        self.events.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            &TaskDelete {
                container_id: id.to_string(),
                pid: p.pid as u32,
                exit_status: exit.code,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        Ok((p.pid, exit))
    }
}

impl Container {
    /// Everything the container held on the host but its state, best effort
    /// and logged: the init is already dead, so nothing here can be refused by it.
    async fn release(&self) {
        if let Some(oom) = &self.oom {
            oom.stop();
        }
        let (cg, kill_all) = (self.cgroup.clone(), self.shared_pidns);
        // Side by side, as neither needs the other: the unmount waits out an
        // RCU grace period (1.2 ms of a pod container's Delete, measured), the
        // cgroup's removal takes 0.35 more. `join!` polls the helper's future
        // first, so the removal is under way before the unmount blocks this
        // thread.
        let (removed, ()) =
            tokio::join!(super::off_loop(move || cg.destroy(kill_all, Duration::from_secs(3))), async {
                if let Some(root) = &self.rootfs_mount {
                    if let Err(e) = sys::umount_detach(root) {
                        log::warn!("delete {}: unmount {}: {e}", self.id, root.display());
                    }
                }
            });
        if let Err(e) = removed {
            log::warn!("delete {}: {e}", self.id);
        }
    }

    /// The state record goes last: until then the `delete` cleanup can finish the job.
    fn forget(&self) {
        if let Err(e) = state::remove(&self.state_dir) {
            log::warn!("delete {}: remove state {}: {e}", self.id, self.state_dir.display());
        }
    }
}
