//! Kill: a signal to the init or an exec, to the whole cgroup with `all`;
//! SIGKILL of a paused container thaws it, as runc does.

use super::lifecycle::Status;
use super::{off_loop, who, Shim, SignalError};
use crate::error::TaskError;

impl Shim {
    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), TaskError> {
        let (c, p) = self.process(id, exec_id)?;
        let sig = signal as i32;
        let status = p.status().await.0;
        // As the runc shim: an exec has no process to signal before Start
        // (ours waits, unexecuted, for it), and a Kill must not end it
        // under the client that is about to start it.
        if !exec_id.is_empty() && status == Status::Created {
            return Err(TaskError::FailedPrecondition(format!(
                "kill {}: the exec has not been started",
                who(id, exec_id)
            )));
        }
        if all && exec_id.is_empty() && status != Status::Stopped {
            let paused = status == Status::Paused;
            c.cgroup.signal_all(sig, paused).map_err(|e| TaskError::internal("kill", id, "signal all", e))?;
        }
        p.signal(sig).await.map_err(|e| match e {
            SignalError::Finished => TaskError::NotFound(format!("kill {}: {e}", who(id, exec_id))),
            SignalError::Failed(..) => TaskError::Internal(format!("kill {}: {e}", who(id, exec_id))),
        })?;
        // A frozen process cannot die: SIGKILL of a paused container thaws
        // it (as runc does); other signals wait for Resume.
        if sig == libc::SIGKILL {
            let cg = c.cgroup.clone();
            c.init
                .thaw_if_paused(async move { off_loop(move || cg.freeze(false)).await })
                .await
                .map_err(|e| TaskError::internal("kill", id, "thaw", e))?;
        }
        Ok(())
    }
}
