//! containerd's Task API v2 over ttrpc: protocol only. Each RPC unpacks its
//! request, calls the container layer, packs the answer; errors become ttrpc
//! statuses here and nowhere else.

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::{self, Empty, ProcessInfo, Status as ProtoStatus};
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;

use crate::container::lifecycle::Status;
use crate::container::{timestamp, CreateRequest, ExecRequest, IoPaths, Shim};
use crate::error::TaskError;
use crate::options;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::ProcessDetails;

pub struct TaskService {
    pub shim: Arc<Shim>,
}

type R<T> = containerd_shim_protos::ttrpc::Result<T>;

fn fail<T>(e: TaskError) -> R<T> {
    log::debug!("rpc error: {e}");
    Err(e.into())
}

fn proto_status(s: Status) -> ProtoStatus {
    match s {
        Status::Created => ProtoStatus::CREATED,
        Status::Running => ProtoStatus::RUNNING,
        Status::Paused => ProtoStatus::PAUSED,
        Status::Stopped | Status::Deleted => ProtoStatus::STOPPED,
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(&self, _: &TtrpcContext, req: api::CreateTaskRequest) -> R<api::CreateTaskResponse> {
        self.shim.touch();
        let options = match options::parse(req.options.as_ref()) {
            Ok(o) => o,
            Err(e) => return fail(TaskError::invalid("create", &req.id, "runtime options", e)),
        };
        let r = CreateRequest {
            id: req.id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            io: IoPaths { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            options,
            checkpoint: req.checkpoint,
        };
        match self.shim.create(r).await {
            Ok(pid) => Ok(api::CreateTaskResponse { pid: pid as u32, ..Default::default() }),
            Err(e) => fail(e),
        }
    }

    async fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> R<api::StartResponse> {
        self.shim.touch();
        match self.shim.start(&req.id, &req.exec_id).await {
            Ok(pid) => Ok(api::StartResponse { pid: pid as u32, ..Default::default() }),
            Err(e) => fail(e),
        }
    }

    async fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> R<api::StateResponse> {
        self.shim.touch();
        let (c, p, status, exit) = match self.shim.status(&req.id, &req.exec_id).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() { c.id.clone() } else { req.exec_id.clone() },
            bundle: c.bundle.clone(),
            pid: p.pid as u32,
            status: proto_status(status).into(),
            stdin: p.io.stdin.clone(),
            stdout: p.io.stdout.clone(),
            stderr: p.io.stderr.clone(),
            terminal: p.io.terminal,
            exec_id: req.exec_id.clone(),
            exit_status: exit.map_or(0, |e| e.code),
            exited_at: exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            ..Default::default()
        })
    }

    async fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> R<api::WaitResponse> {
        self.shim.touch();
        match self.shim.wait(&req.id, &req.exec_id).await {
            Ok(exit) => {
                Ok(api::WaitResponse { exit_status: exit.code, exited_at: timestamp(exit.at), ..Default::default() })
            }
            Err(e) => fail(e),
        }
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> R<Empty> {
        self.shim.touch();
        match self.shim.kill(&req.id, &req.exec_id, req.signal, req.all).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn delete(&self, _: &TtrpcContext, req: api::DeleteRequest) -> R<api::DeleteResponse> {
        self.shim.touch();
        match self.shim.delete(&req.id, &req.exec_id).await {
            Ok((pid, exit)) => Ok(api::DeleteResponse {
                pid: pid as u32,
                exit_status: exit.code,
                exited_at: timestamp(exit.at),
                ..Default::default()
            }),
            Err(e) => fail(e),
        }
    }

    async fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> R<api::PidsResponse> {
        self.shim.touch();
        let (pids, execs) = match (self.shim.pids(&req.id), self.shim.get(&req.id)) {
            (Ok(pids), Ok(c)) => (pids, c.exec_pids()),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        };
        // Exec pids carry their exec id, as containerd's `ctr task ps` shows.
        let info = |pid: i32| {
            execs.iter().find(|(p, _)| *p == pid).map(|(_, exec_id)| {
                let details = ProcessDetails { exec_id: exec_id.clone(), ..Default::default() };
                let value = details.write_to_bytes().unwrap_or_default();
                Any { type_url: "containerd.runc.v1.ProcessDetails".into(), value, ..Default::default() }
            })
        };
        let processes = pids
            .into_iter()
            .map(|p| ProcessInfo { pid: p as u32, info: info(p).into(), ..Default::default() })
            .collect();
        Ok(api::PidsResponse { processes, ..Default::default() })
    }

    async fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> R<Empty> {
        self.shim.touch();
        match self.shim.close_stdin(&req.id, &req.exec_id) {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn connect(&self, _: &TtrpcContext, req: api::ConnectRequest) -> R<api::ConnectResponse> {
        self.shim.touch();
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: self.shim.get(&req.id).map_or(0, |c| c.init.pid as u32),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _: &TtrpcContext, _req: api::ShutdownRequest) -> R<Empty> {
        self.shim.touch();
        // containerd asks after every Delete; we go only once nothing is left.
        if self.shim.is_empty() {
            self.shim.shutdown.notify_one();
        }
        Ok(Empty::new())
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> R<Empty> {
        self.shim.touch();
        match self.shim.pause(&req.id, true).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> R<Empty> {
        self.shim.touch();
        match self.shim.pause(&req.id, false).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn checkpoint(&self, _: &TtrpcContext, req: api::CheckpointTaskRequest) -> R<Empty> {
        let options = match options::checkpoint(req.options.as_ref()) {
            Ok(o) => o,
            Err(e) => return fail(TaskError::invalid("checkpoint", &req.id, "options", e)),
        };
        match self.shim.checkpoint(&req.id, &req.path, options).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> R<Empty> {
        self.shim.touch();
        let r = ExecRequest {
            id: req.id,
            exec_id: req.exec_id,
            io: IoPaths { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            process: req.spec.map(|s| s.value).unwrap_or_default(),
        };
        match self.shim.exec(r).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> R<Empty> {
        self.shim.touch();
        match self.shim.resize_pty(&req.id, &req.exec_id, req.width, req.height) {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> R<Empty> {
        self.shim.touch();
        let resources = req.resources.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
        match self.shim.update(&req.id, resources).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) => fail(e),
        }
    }

    async fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> R<api::StatsResponse> {
        self.shim.touch();
        match self.shim.stats(&req.id) {
            Ok((type_url, value)) => {
                let any = Any { type_url: type_url.into(), value, ..Default::default() };
                Ok(api::StatsResponse {
                    stats: containerd_shim_protos::protobuf::MessageField::some(any),
                    ..Default::default()
                })
            }
            Err(e) => fail(e),
        }
    }
}
