//! What a client reads of a container without changing it: Stats, Wait,
//! State's process status, Pids.

use std::sync::Arc;

use super::lifecycle::{Exit, Status};
use super::{who, Container, Process, Shim};
use crate::error::TaskError;

impl Shim {
    /// Stats: the container's cgroup figures as containerd's metrics type.
    /// Returns the metrics type URL and the encoded message.
    pub fn stats(&self, id: &str) -> Result<(&'static str, Vec<u8>), TaskError> {
        let c = self.get(id)?;
        let s = c.cgroup.stats().map_err(|e| TaskError::internal("stats", id, "cgroup", e))?;
        crate::metrics::encode(&s).map_err(|e| TaskError::internal("stats", id, "metrics", e))
    }

    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        let (_, p) = self.process(id, exec_id)?;
        p.wait_exit().await.ok_or_else(|| TaskError::Internal(format!("wait {}: exit lost", who(id, exec_id))))
    }

    pub async fn status(
        &self,
        id: &str,
        exec_id: &str,
    ) -> Result<(Arc<Container>, Arc<Process>, Status, Option<Exit>), TaskError> {
        let (c, p) = self.process(id, exec_id)?;
        let (status, exit) = p.status().await;
        Ok((c, p, status, exit))
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>, TaskError> {
        let c = self.get(id)?;
        c.cgroup.pids().map_err(|e| TaskError::internal("pids", id, "list", e))
    }
}
