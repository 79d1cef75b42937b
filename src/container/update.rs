//! Update: new resource limits for a live container's cgroup.

use super::lifecycle::Status;
use super::Shim;
use crate::error::TaskError;

impl Shim {
    /// Update: new `LinuxResources` (JSON, as containerd sends them) for a
    /// live container. The kernel's refusal is the error, and what it
    /// refused keeps its old value.
    pub async fn update(&self, id: &str, resources: &[u8]) -> Result<(), TaskError> {
        let c = self.get(id)?;
        let invalid = |e: String| TaskError::InvalidArgument(format!("update {id}: {e}"));
        let r = crate::spec::parse_resources(resources).map_err(invalid)?;
        if !matches!(c.init.status().await.0, Status::Running | Status::Paused | Status::Created) {
            return Err(TaskError::FailedPrecondition(format!("update {id}: the container is not running")));
        }
        c.cgroup.update(&r).map_err(|e| TaskError::internal("update", id, "cgroup", e))
    }
}
