//! Pause and Resume: the cgroup's freezer, off the event loop, then
//! TaskPaused or TaskResumed.

use containerd_shim_protos::events::task::{TaskPaused, TaskResumed};
use containerd_shim_protos::topics;

use super::process::StepError;
use super::{off_loop, Shim};
use crate::error::TaskError;

impl Shim {
    /// Pause (`paused`) or Resume: the cgroup's freezer; TaskPaused or
    /// TaskResumed once it holds.
    pub async fn pause(&self, id: &str, paused: bool) -> Result<(), TaskError> {
        let c = self.get(id)?;
        let verb = if paused { "pause" } else { "resume" };
        c.init
            .set_paused(paused, {
                let cg = c.cgroup.clone();
                async move { off_loop(move || cg.freeze(paused)).await.map_err(|e| e.to_string()) }
            })
            .await
            .map_err(|e| match e {
                // Pause of a paused (or stopped) container: the client's mistake.
                StepError::Illegal(e) => TaskError::FailedPrecondition(format!("{verb} {id}: {e}")),
                StepError::Failed(e) => TaskError::internal(verb, id, "freezer", e),
            })?;
        if paused {
            self.events.publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                &TaskPaused { container_id: id.into(), ..Default::default() },
            );
        } else {
            self.events.publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                &TaskResumed { container_id: id.into(), ..Default::default() },
            );
        }
        Ok(())
    }
}
