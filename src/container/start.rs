//! Start: the init or an exec runs its program; the startContainer hooks
//! before, poststart after (runtime.md), TaskStart or TaskExecStarted
//! queued before any exit can be.

use std::path::Path;

use containerd_shim_protos::events::task::{TaskExecStarted, TaskStart};
use containerd_shim_protos::topics;

use super::lifecycle::Status;
use super::process::StepError;
use super::{hooks, who, Shim};
use crate::error::TaskError;
use crate::hooks::Kind;

impl Shim {
    pub async fn start(&self, id: &str, exec_id: &str) -> Result<i32, TaskError> {
        self.touch();
        let (c, p) = self.process(id, exec_id)?;
        // As runc: its frozen process could never answer the handshake.
        if !exec_id.is_empty() && c.init.status().await.0 == Status::Paused {
            let msg = format!("start {}: cannot exec in a paused container", who(id, exec_id));
            return Err(TaskError::FailedPrecondition(msg));
        }
        let spec = if exec_id.is_empty() { c.spec.clone() } else { None };
        let failed = |e: String| TaskError::Internal(format!("start {id}: {e}"));
        if let Some(spec) = &spec {
            if p.status().await.0 == Status::Created {
                if let Err(e) = hooks::run_kinds(
                    &self.reaper,
                    spec,
                    &[Kind::StartContainer],
                    id,
                    Path::new(&c.bundle),
                    Some((p.pid, p.pidfd())),
                )
                .await
                {
                    let _ = p.signal(libc::SIGKILL).await;
                    return Err(failed(e));
                }
            }
        }
        let events = &self.events;
        let pid = p.pid as u32;
        let announce = || {
            if exec_id.is_empty() {
                events.publish(
                    topics::TASK_START_EVENT_TOPIC,
                    &TaskStart { container_id: id.into(), pid, ..Default::default() },
                );
            } else {
                let ev =
                    TaskExecStarted { container_id: id.into(), exec_id: exec_id.into(), pid, ..Default::default() };
                events.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, &ev);
            }
        };
        p.start(announce).await.map_err(|e| match e {
            // A second Start, or one after the exit: the client's mistake.
            StepError::Illegal(e) => TaskError::FailedPrecondition(format!("start {}: {e}", who(id, exec_id))),
            StepError::Failed(e) => TaskError::Internal(format!("start {}: {e}", who(id, exec_id))),
        })?;
        if let Some(spec) = &spec {
            if let Err(e) = hooks::run_kinds(
                &self.reaper,
                spec,
                &[Kind::Poststart],
                id,
                Path::new(&c.bundle),
                Some((p.pid, p.pidfd())),
            )
            .await
            {
                // runtime.md (v1.3): a failed poststart stops the container.
                let _ = p.signal(libc::SIGKILL).await;
                return Err(failed(e));
            }
        }
        Ok(p.pid)
    }
}
