//! Containers served by this shim: the registry and the lifecycle verbs. Each
//! verb reads guard -> act -> persist -> events; OS work goes through the
//! runtime, cgroups, stdio and state modules.

mod checkpoint;
mod create;
mod delete;
mod early;
mod exec;
mod exit;
pub mod hooks;
mod inspect;
mod io;
mod kill;
pub mod lifecycle;
mod oom;
mod pause;
mod prepared;
mod process;
mod restore;
mod rootfs;
mod start;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_running;
mod update;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use tokio::sync::Notify;

pub use create::CreateRequest;
pub use exec::ExecRequest;
pub use process::{IoPaths, Process, SignalError};

use crate::cgroups::Cgroup;
use crate::error::TaskError;
use crate::events::EventSink;
use crate::reaper::Reaper;
use crate::runtime::Runtime;

/// What the shim was started for: fixed for its lifetime.
pub struct ShimContext {
    pub namespace: String,
    pub address: String,
    pub state_root: PathBuf,
}

pub struct Shim {
    pub ctx: ShimContext,
    runtime: Runtime,
    reaper: Arc<Reaper>,
    events: Arc<dyn EventSink>,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Containers (`id`) and execs (`id/exec`) being created: a second
    /// Create or Exec of the same id meanwhile is refused, not run twice.
    creating: Mutex<std::collections::HashSet<String>>,
    pub shutdown: Arc<Notify>,
    /// Poked by every lifecycle verb; the idle trimmer waits for quiet.
    pub activity: Arc<Notify>,
    /// The first Create's init, spawned as the shim started (`early`).
    early: Mutex<Option<early::Early>>,
}

pub struct Container {
    pub id: String,
    pub bundle: String,
    /// The config, kept only when it has hooks (Start and Delete need them).
    spec: Option<Arc<oci_spec::runtime::Spec>>,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    cgroup: Cgroup,
    /// Not in a pid namespace of its own: what is left in its cgroup is
    /// killed when the init exits and at Delete.
    shared_pidns: bool,
    rootfs_mount: Option<PathBuf>,
    state_dir: PathBuf,
    confinement: Confinement,
    oom: Option<oom::Oom>,
}

/// The stderr to open: none with a terminal, which has one output stream.
/// containerd's Go client (`cio.WithTerminal`) names a stderr fifo it never
/// creates; the runc shim ignores it, and so do we.
fn stderr_unless_terminal(io: &IoPaths, terminal: bool) -> &str {
    if terminal {
        ""
    } else {
        &io.stderr
    }
}

/// Takes the pty master the init left at CONSOLE_FD (before it execs: the
/// fd is close-on-exec) and starts copying it to and from the fifos.
fn attach_console(
    spawned: &mut crate::runtime::Spawned,
    stdin: &str,
    stdout: &str,
) -> Result<crate::console::Console, String> {
    use std::os::fd::AsRawFd;
    let master = match spawned.console.take() {
        Some(held) => held,
        None => crate::sys::pidfd_getfd(spawned.pidfd.as_raw_fd(), crate::runtime::init::CONSOLE_FD)
            .map_err(|e| format!("take the terminal from the init: {e}"))?,
    };
    crate::console::Console::start(master, stdin, stdout).map_err(|e| format!("terminal: {e}"))
}

/// The container's seccomp filter and persona, which its execs get too.
pub struct Confinement {
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// The config, kept only when a seccomp agent gets each process's state.
    pub agent_spec: Option<Arc<oci_spec::runtime::Spec>>,
}

/// The container process state a seccomp agent receives with the notify fd
/// (config-linux.md, "listenerPath"): the process's pid and the container's
/// state.
pub fn seccomp_listener(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    status: &str,
    (container_pid, process_pid): (i32, i32),
    bundle: &str,
) -> Option<crate::runtime::channel::SeccompListener> {
    let sc = spec.linux().as_ref()?.seccomp().as_ref()?;
    let path = sc.listener_path().clone()?;
    let state: serde_json::Value =
        serde_json::from_slice(&crate::hooks::state_json(spec, id, status, container_pid, bundle)).ok()?;
    let message = serde_json::json!({
        "ociVersion": spec.version(),
        "fds": ["seccompFd"],
        "pid": process_pid,
        "metadata": sc.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    Some(crate::runtime::channel::SeccompListener { path, message: serde_json::to_vec(&message).ok()? })
}

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() })
}

/// "c1" or "c1 exec e1", for messages.
fn who(id: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        id.to_string()
    } else {
        format!("{id} exec {exec_id}")
    }
}

impl Shim {
    pub fn new(ctx: ShimContext, reaper: Arc<Reaper>, events: Arc<dyn EventSink>) -> Shim {
        Shim {
            runtime: Runtime::new(ctx.state_root.clone()),
            ctx,
            reaper,
            events,
            containers: Mutex::new(HashMap::new()),
            creating: Mutex::default(),
            shutdown: Arc::new(Notify::new()),
            activity: Arc::new(Notify::new()),
            early: Mutex::new(None),
        }
    }

    /// Reserves `key` for a Create or Exec under way, until the guard drops.
    fn reserve(&self, key: String) -> Option<Reservation<'_>> {
        let fresh = self.creating.lock().ok()?.insert(key.clone());
        // Made only when taken: a refused one dropped here would release
        // the other's claim.
        fresh.then(|| Reservation { shim: self, key })
    }

    pub fn touch(&self) {
        self.activity.notify_one();
    }

    /// Lets go of what a shim with nothing to do need not hold: the heap's
    /// free pages, the page tables of read-only mappings.
    pub fn release_idle(&self) {
        crate::sys::release_idle_memory();
    }

    /// Lets go of the init executable once nothing is left to spawn from it.
    pub fn retire(&self) {
        drop(self.take_early());
        self.runtime.retire();
    }

    pub fn prepare(&self) {
        if let Err(e) = self.runtime.prepare() {
            log::warn!("init executable: {e} (retried at the first Create)");
        }
    }

    pub fn get(&self, id: &str) -> Result<Arc<Container>, TaskError> {
        self.containers
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| TaskError::NotFound(format!("container {id} not found")))
    }

    /// The init (empty `exec_id`) or an exec of container `id`.
    pub fn process(&self, id: &str, exec_id: &str) -> Result<(Arc<Container>, Arc<Process>), TaskError> {
        let c = self.get(id)?;
        if exec_id.is_empty() {
            let p = c.init.clone();
            return Ok((c, p));
        }
        let p = c.execs.lock().ok().and_then(|m| m.get(exec_id).cloned());
        match p {
            Some(p) => Ok((c, p)),
            None => Err(TaskError::NotFound(format!("exec {exec_id} of container {id} not found"))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.containers.lock().map(|m| m.is_empty()).unwrap_or(false)
    }
}

/// A Create's or Exec's claim on its id; let go when it ends either way.
struct Reservation<'a> {
    shim: &'a Shim,
    key: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.shim.creating.lock() {
            set.remove(&self.key);
        }
    }
}

impl Container {
    pub fn exec_pids(&self) -> Vec<(i32, String)> {
        self.execs.lock().map(|m| m.iter().map(|(id, p)| (p.pid, id.clone())).collect()).unwrap_or_default()
    }
}

/// Runs a step that blocks (sleeps between retries, waits on the kernel)
/// on a helper thread: one shim serves a whole pod and all its RPCs share
/// one thread, so a freezer that takes seconds must not stall a State.
/// Nothing run here forks: the reaper relies on children being spawned
/// on the event loop.
pub(crate) async fn off_loop<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("helper thread: {e}")),
    }
}
