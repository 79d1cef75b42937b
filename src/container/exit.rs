//! A process's exit as containerd hears it: TaskExit, after the OOM
//! events of its container and, where the pid namespace is shared, after the
//! rest of the container's cgroup is killed.

use std::sync::Arc;

use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::topics;

use super::{oom, timestamp, Process, Shim};
use crate::cgroups::Cgroup;

impl Shim {
    /// TaskExit for `p` of container `id` (its exec id, or the container id for the init).
    /// `oom`: the init's container's OOM watch, drained first so TaskOOM
    /// precedes the TaskExit of an OOM-killed init.
    pub(super) fn publish_exit_on(
        &self,
        p: &Arc<Process>,
        rx: tokio::sync::oneshot::Receiver<u32>,
        (id, exec_id): (&str, &str),
        oom: Option<Arc<oom::OomWatch>>,
        rest: Option<Cgroup>,
    ) {
        let events = self.events.clone();
        let rx = match rest {
            None => rx,
            Some(cgroup) => {
                // Killed before anything waits on the output: the rest may
                // hold the fifos or the terminal open.
                let (tx, after) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let code = rx.await;
                    if let Err(e) = cgroup.kill_rest() {
                        log::warn!("{e}");
                    }
                    if let Ok(code) = code {
                        let _ = tx.send(code);
                    }
                });
                after
            }
        };
        let (container_id, event_id, pid) =
            (id.to_string(), if exec_id.is_empty() { id } else { exec_id }.to_string(), p.pid as u32);
        p.watch_exit(rx, move |exit| {
            if let Some(w) = &oom {
                w.drain();
            }
            events.publish(
                topics::TASK_EXIT_EVENT_TOPIC,
                &TaskExit {
                    container_id,
                    id: event_id,
                    pid,
                    exit_status: exit.code,
                    exited_at: timestamp(exit.at),
                    ..Default::default()
                },
            );
        });
    }
}
