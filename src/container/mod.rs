//! Containers served by this shim: the registry and the lifecycle verbs. Each
//! verb reads guard -> act -> persist -> events; OS work goes through the
//! runtime, cgroups, stdio and state modules.

mod create;
pub mod lifecycle;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{TaskDelete, TaskExit, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics;
use tokio::sync::{watch, Notify};

pub use create::CreateRequest;
use lifecycle::{Exit, Lifecycle, Status};

use crate::cgroups::Cgroup;
use crate::error::TaskError;
use crate::events::EventSink;
use crate::reaper::Reaper;
use crate::runtime::channel::{Observed, ParentEnd, Phase, ToInit};
use crate::runtime::Runtime;
use crate::stdio::Keepers;
use crate::{state, sys};

/// What the shim was started for: fixed for its lifetime.
pub struct ShimContext {
    pub namespace: String,
    pub address: String,
    pub state_root: PathBuf,
}

pub struct Shim {
    pub ctx: ShimContext,
    runtime: Runtime,
    reaper: Arc<Reaper>,
    events: Arc<dyn EventSink>,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    pub shutdown: Arc<Notify>,
}

pub struct IoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

pub struct Container {
    pub id: String,
    pub bundle: String,
    pub pid: i32,
    pidfd: OwnedFd,
    cgroup: Cgroup,
    rootfs_mount: Option<PathBuf>,
    state_dir: PathBuf,
    pub io: IoPaths,
    keepers: Mutex<Keepers>,
    inner: tokio::sync::Mutex<Inner>,
    exited: watch::Sender<Option<Exit>>,
}

struct Inner {
    life: Lifecycle,
    chan: Option<(ParentEnd, Phase)>,
}

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

fn no_exec(verb: &str, exec_id: &str) -> Result<(), TaskError> {
    if exec_id.is_empty() {
        Ok(())
    } else {
        Err(TaskError::NotFound(format!(
            "{verb}: exec {exec_id} not found"
        )))
    }
}

impl Shim {
    pub fn new(ctx: ShimContext, reaper: Arc<Reaper>, events: Arc<dyn EventSink>) -> Shim {
        Shim {
            ctx,
            runtime: Runtime::default(),
            reaper,
            events,
            containers: Mutex::new(HashMap::new()),
            shutdown: Arc::new(Notify::new()),
        }
    }

    pub fn get(&self, id: &str) -> Result<Arc<Container>, TaskError> {
        self.containers
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| TaskError::NotFound(format!("container {id} not found")))
    }

    pub fn is_empty(&self) -> bool {
        self.containers
            .lock()
            .map(|m| m.is_empty())
            .unwrap_or(false)
    }

    pub async fn start(&self, id: &str, exec_id: &str) -> Result<i32, TaskError> {
        no_exec("start", exec_id)?;
        let c = self.get(id)?;
        let mut inner = c.inner.lock().await;
        inner
            .life
            .start()
            .map_err(|e| TaskError::FailedPrecondition(format!("start {id}: {e}")))?;
        let Some((mut chan, phase)) = inner.chan.take() else {
            return Err(TaskError::FailedPrecondition(format!(
                "start {id}: init is gone"
            )));
        };
        let result = async {
            chan.send(&ToInit::Start).await.map_err(|e| e.to_string())?;
            let phase = phase
                .advance(Observed::SentStart)
                .map_err(|e| e.to_string())?;
            let seen = chan.recv().await.map_err(|e| e.to_string())?;
            let observed = seen.as_ref().map_or(Observed::Eof, Observed::Message);
            phase.advance(observed).map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(_) => {
                self.events.publish(
                    topics::TASK_START_EVENT_TOPIC,
                    &TaskStart {
                        container_id: id.to_string(),
                        pid: c.pid as u32,
                        ..Default::default()
                    },
                );
                Ok(c.pid)
            }
            Err(e) => {
                // The init reports and exits; its TaskExit follows as usual.
                let _ = sys::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL);
                Err(TaskError::Internal(if e.starts_with("start ") {
                    e
                } else {
                    format!("start {id}: {e}")
                }))
            }
        }
    }

    pub async fn kill(
        &self,
        id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), TaskError> {
        no_exec("kill", exec_id)?;
        let c = self.get(id)?;
        if !c.inner.lock().await.life.signalable() {
            return Err(TaskError::NotFound(format!(
                "kill {id}: process already finished"
            )));
        }
        let sig = signal as i32;
        if all {
            c.cgroup
                .signal_all(sig)
                .map_err(|e| TaskError::internal("kill", id, "signal all", e))?;
        }
        match sys::pidfd_send_signal(c.pidfd.as_raw_fd(), sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(TaskError::NotFound(format!(
                "kill {id}: process already finished"
            ))),
            r => r.map_err(|e| TaskError::internal("kill", id, &format!("signal {sig}"), e)),
        }
    }

    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        no_exec("wait", exec_id)?;
        let c = self.get(id)?;
        c.wait_exit()
            .await
            .ok_or_else(|| TaskError::Internal(format!("wait {id}: exit lost")))
    }

    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<(i32, Exit), TaskError> {
        no_exec("delete", exec_id)?;
        let c = self.get(id)?;
        if c.inner.lock().await.life.status() == Status::Created {
            // containerd deletes a task that never started (a failed start,
            // or `ctr run` giving up): kill it and wait for its exit first.
            let _ = sys::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL);
            c.wait_exit().await;
        }
        let exit = c
            .inner
            .lock()
            .await
            .life
            .delete()
            .map_err(|e| TaskError::FailedPrecondition(format!("delete {id}: {e}")))?;
        c.destroy();
        if let Ok(mut m) = self.containers.lock() {
            m.remove(id);
        }
        self.events.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            &TaskDelete {
                container_id: id.to_string(),
                pid: c.pid as u32,
                exit_status: exit.code,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        Ok((c.pid, exit))
    }

    pub async fn status(
        &self,
        id: &str,
        exec_id: &str,
    ) -> Result<(Arc<Container>, Status, Option<Exit>), TaskError> {
        no_exec("state", exec_id)?;
        let c = self.get(id)?;
        let (status, exit) = {
            let inner = c.inner.lock().await;
            (inner.life.status(), inner.life.exit())
        };
        Ok((c, status, exit))
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>, TaskError> {
        let c = self.get(id)?;
        c.cgroup
            .pids()
            .map_err(|e| TaskError::internal("pids", id, "list", e))
    }

    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), TaskError> {
        no_exec("close io", exec_id)?;
        let c = self.get(id)?;
        if let Ok(mut k) = c.keepers.lock() {
            k.close_stdin();
        }
        Ok(())
    }

    /// Turns the reaper's report into the container's exit: stdio handles
    /// dropped (containerd's readers see EOF after the last byte), then one
    /// TaskExit, then Wait released.
    fn watch_exit(self: &Arc<Self>, c: Arc<Container>, rx: tokio::sync::oneshot::Receiver<u32>) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let code = rx.await.unwrap_or(128 + libc::SIGKILL as u32);
            let exit = Exit {
                code,
                at: SystemTime::now(),
            };
            if let Ok(mut k) = c.keepers.lock() {
                k.release();
            }
            let mut inner = c.inner.lock().await;
            inner.chan = None;
            if inner.life.exited(exit) {
                events.publish(
                    topics::TASK_EXIT_EVENT_TOPIC,
                    &TaskExit {
                        container_id: c.id.clone(),
                        id: c.id.clone(),
                        pid: c.pid as u32,
                        exit_status: code,
                        exited_at: timestamp(exit.at),
                        ..Default::default()
                    },
                );
            }
            drop(inner);
            c.exited.send_replace(Some(exit));
        });
    }
}

impl Container {
    async fn wait_exit(&self) -> Option<Exit> {
        let mut rx = self.exited.subscribe();
        rx.wait_for(Option::is_some).await.ok().and_then(|e| *e)
    }

    /// Everything the container held on the host, best effort and logged: the
    /// init is already dead, so nothing here can be refused by it.
    fn destroy(&self) {
        if let Err(e) = self.cgroup.destroy(Duration::from_secs(3)) {
            log::warn!("delete {}: {e}", self.id);
        }
        if let Some(root) = &self.rootfs_mount {
            if let Err(e) = sys::umount_detach(root) {
                log::warn!("delete {}: unmount {}: {e}", self.id, root.display());
            }
        }
        if let Err(e) = state::remove(&self.state_dir) {
            log::warn!(
                "delete {}: remove state {}: {e}",
                self.id,
                self.state_dir.display()
            );
        }
    }
}
