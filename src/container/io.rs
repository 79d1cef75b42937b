//! A process's stdio after its start: CloseIO and ResizePty.

use super::{who, Shim};
use crate::error::TaskError;

impl Shim {
    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), TaskError> {
        let (_, p) = self.process(id, exec_id)?;
        p.close_stdin();
        Ok(())
    }

    pub fn resize_pty(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<(), TaskError> {
        let (_, p) = self.process(id, exec_id)?;
        p.resize(width, height)
            .map_err(|e| TaskError::FailedPrecondition(format!("resize pty {}: {e}", who(id, exec_id))))
    }
}
