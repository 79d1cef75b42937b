//! Task errors: what went wrong, for which container, at which step. They are
//! mapped to ttrpc codes once, in `service`.

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Internal(String),
}

impl TaskError {
    /// "`verb` `id`: `step`: cause", the shape of every error a user sees.
    pub fn internal(verb: &str, id: &str, step: &str, cause: impl std::fmt::Display) -> TaskError {
        TaskError::Internal(format!("{verb} {id}: {step}: {cause}"))
    }

    pub fn invalid(verb: &str, id: &str, step: &str, cause: impl std::fmt::Display) -> TaskError {
        TaskError::InvalidArgument(format!("{verb} {id}: {step}: {cause}"))
    }

    pub fn code(&self) -> containerd_shim_protos::ttrpc::Code {
        match self {
            TaskError::NotFound(_) => containerd_shim_protos::ttrpc::Code::NOT_FOUND,
            TaskError::AlreadyExists(_) => containerd_shim_protos::ttrpc::Code::ALREADY_EXISTS,
            TaskError::FailedPrecondition(_) => containerd_shim_protos::ttrpc::Code::FAILED_PRECONDITION,
            TaskError::InvalidArgument(_) => containerd_shim_protos::ttrpc::Code::INVALID_ARGUMENT,
            TaskError::Internal(_) => containerd_shim_protos::ttrpc::Code::INTERNAL,
        }
    }
}

impl From<TaskError> for containerd_shim_protos::ttrpc::Error {
    fn from(e: TaskError) -> Self {
        containerd_shim_protos::ttrpc::Error::RpcStatus(containerd_shim_protos::ttrpc::get_status(
            e.code(),
            e.to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let e = TaskError::internal("create", "c1", "mount rootfs", "EPERM");
        assert_eq!(e.to_string(), "create c1: mount rootfs: EPERM");
        assert_eq!(e.code(), containerd_shim_protos::ttrpc::Code::INTERNAL);
        let cases = [
            (TaskError::NotFound(String::new()), containerd_shim_protos::ttrpc::Code::NOT_FOUND),
            (TaskError::AlreadyExists(String::new()), containerd_shim_protos::ttrpc::Code::ALREADY_EXISTS),
            (TaskError::FailedPrecondition(String::new()), containerd_shim_protos::ttrpc::Code::FAILED_PRECONDITION),
            (TaskError::invalid("create", "c", "s", "x"), containerd_shim_protos::ttrpc::Code::INVALID_ARGUMENT),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code);
        }
        match containerd_shim_protos::ttrpc::Error::from(TaskError::NotFound("gone".into())) {
            containerd_shim_protos::ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), containerd_shim_protos::ttrpc::Code::NOT_FOUND);
                assert_eq!(s.message(), "gone");
            }
            other => panic!("{other:?}"),
        }
    }
}
