//! Exec: a process started in a running container's namespaces and cgroup,
//! from the process spec containerd sends. Same re-exec and handshake
//! as the init, minus the rootfs: Exec answers at Ready, Start execs.

use std::sync::Arc;

use containerd_shim_protos::events::task::TaskExecAdded;
use containerd_shim_protos::topics;

use super::lifecycle::Status;
use super::prepared::kill_and_reap;
use super::process::{Logger, Outputs};
use super::{IoPaths, Process, Shim};
use crate::error::TaskError;
use crate::runtime::channel::InitConfig;
use crate::runtime::namespaces::NsPlan;
use crate::stdio::{Owner, Stdio};

pub struct ExecRequest {
    pub id: String,
    pub exec_id: String,
    pub io: IoPaths,
    /// The runtime-spec Process, as JSON.
    pub process: Vec<u8>,
}

impl Shim {
    pub async fn exec(self: &Arc<Self>, req: ExecRequest) -> Result<(), TaskError> {
        self.touch();
        let (id, eid) = (req.id.as_str(), req.exec_id.as_str());
        let who = format!("{id} exec {eid}");
        let invalid =
            |step: &str, e: &dyn std::fmt::Display| TaskError::InvalidArgument(format!("exec {who}: {step}: {e}"));
        let c = self.get(id)?;
        if eid.is_empty() || eid.contains('/') {
            return Err(TaskError::InvalidArgument(format!("exec {id}: invalid exec id {eid:?}")));
        }
        let reserved = self.reserve(format!("{id}/{eid}"));
        if reserved.is_none() || c.execs.lock().map(|m| m.contains_key(eid)).unwrap_or(false) {
            return Err(TaskError::AlreadyExists(format!("exec {who}: already exists")));
        }
        if c.init.status().await.0 != Status::Running {
            return Err(TaskError::FailedPrecondition(format!("exec {who}: container {id} is not running")));
        }
        let process: oci_spec::runtime::Process =
            serde_json::from_slice(&req.process).map_err(|e| invalid("process spec", &e))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(invalid("process spec", &"args: must name the program to run"));
        }
        let process_terminal = process.terminal() == Some(true);
        let owner = Owner { id, namespace: &self.ctx.namespace };
        let stderr = super::stderr_unless_terminal(&req.io, process_terminal);
        let mut stdio =
            Stdio::open(&req.io.stdin, &req.io.stdout, stderr, &owner).map_err(|e| invalid("open stdio", &e))?;
        // Registered before any await. If the exec fails, its output ends
        // close with `stdio` and the logger exits at EOF.
        let logger = stdio.logger.map(|pid| Logger { pid: pid as i32, exited: self.reaper.register(pid as i32) });
        stdio.logger_ready().await.map_err(|e| invalid("open stdio", &e))?;
        let plan = NsPlan::for_exec(c.init.pid);
        let spawned = self
            .runtime
            .spawn(&plan, &stdio.container, None, Some(c.init.pidfd()))
            .map_err(|e| TaskError::Internal(format!("exec {who}: spawn: {e}")))?;
        let exited = self.reaper.register(spawned.pid);
        let cgroup_tasks = c.cgroup.tasks_files();
        if cgroup_tasks.is_empty() {
            if let Err(e) = c.cgroup.enter(spawned.pid, None) {
                kill_and_reap(spawned, exited).await;
                return Err(TaskError::Internal(format!("exec {who}: {e}")));
            }
        }
        let mut spawned = spawned;
        let config =
            InitConfig {
                id: format!("{id}/{eid}"),
                plan,
                rootfs: None,
                process,
                pause_for_hooks: false,
                cgroup_tasks,
                seccomp: c.confinement.seccomp.clone(),
                personality: c.confinement.personality.clone(),
                seccomp_listener: c.confinement.agent_spec.as_deref().and_then(|spec| {
                    super::seccomp_listener(spec, id, "running", (c.init.pid, spawned.pid), &c.bundle)
                }),
            };
        let phase = match spawned.chan.configure(config).await {
            Ok(phase) => phase,
            Err(e) => {
                kill_and_reap(spawned, exited).await;
                return Err(TaskError::Internal(format!("exec {who}: {e}")));
            }
        };
        let console = if process_terminal {
            match super::attach_console(&mut spawned, &req.io.stdin, &req.io.stdout) {
                Ok(c) => Some(c),
                Err(e) => {
                    kill_and_reap(spawned, exited).await;
                    return Err(TaskError::Internal(format!("exec {who}: {e}")));
                }
            }
        } else {
            None
        };
        let stdin = if process_terminal { None } else { stdio.take_stdin_feed() };
        let p = Process::new(spawned, phase, req.io, stdio.into_relays(), Outputs { logger, console, stdin }, true);
        self.publish_exit_on(&p, exited, (id, eid), None, None);
        if let Ok(mut m) = c.execs.lock() {
            m.insert(eid.to_string(), p);
        }
        self.events.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            &TaskExecAdded { container_id: id.to_string(), exec_id: eid.to_string(), ..Default::default() },
        );
        Ok(())
    }
}
