//! Create: validate, mount the rootfs, open stdio, spawn the init into its
//! namespaces and cgroup, run the handshake to Ready. Any failure undoes
//! every step taken, so a failed Create leaves nothing behind.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::early::Early;
use super::hooks::run_kinds;
use super::prepared::{Init, Prepared, Undo};
use super::process::{Logger, Outputs};
use super::{stderr_unless_terminal, Confinement, Container, IoPaths, Process, Shim};
use crate::cgroups::{self, Cgroup};
use crate::error::TaskError;
use crate::hooks::{self, Kind};
use crate::options::ShimOptions;
use crate::runtime::channel::{InitConfig, Phase, RootfsSetup};
use crate::runtime::namespaces::{IdMaps, NsPlan};
use crate::runtime::Spawned;
use crate::stdio::{Owner, Stdio};
use crate::{spec, state};
use containerd_shim_protos::api::Mount;
use containerd_shim_protos::events::task::{TaskCreate, TaskIO};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics;
use oci_spec::runtime::Spec;

pub struct CreateRequest {
    pub id: String,
    pub bundle: String,
    pub rootfs: Vec<Mount>,
    pub io: IoPaths,
    pub options: ShimOptions,
    /// A checkpoint directory to restore from instead of starting anew.
    pub checkpoint: String,
}

fn check_id(id: &str) -> Result<(), TaskError> {
    let ok = !id.is_empty() && id.len() <= 1024 && !id.contains('/') && id != "." && id != "..";
    if ok {
        Ok(())
    } else {
        Err(TaskError::InvalidArgument(format!("create: invalid container id {id:?}")))
    }
}

impl Shim {
    pub async fn create(self: &Arc<Self>, req: CreateRequest) -> Result<i32, TaskError> {
        self.touch();
        // Taken by the first Create whatever happens: unused, it is killed.
        let early = self.take_early();
        let id = req.id.as_str();
        check_id(id)?;
        // Reserved before the first await: two Creates of one id at once
        // must not both run.
        let reserved = self.reserve(id.to_string());
        if reserved.is_none() || self.get(id).is_ok() {
            return Err(TaskError::AlreadyExists(format!("create {id}: container already exists")));
        }
        let bundle = PathBuf::from(&req.bundle);
        let loaded = spec::load(&bundle).map_err(|e| TaskError::invalid("create", id, "config.json", e))?;
        for w in &loaded.warnings {
            log::warn!("create {id}: config.json: {}", w.message);
        }
        if let Some(path) = &req.options.shim_cgroup {
            cgroups::move_self(Path::new(path))
                .map_err(|e| TaskError::invalid("create", id, "runc option ShimCgroup", e))?;
        }
        if req.options.hooks_strict {
            let hook_keys: Vec<&str> =
                loaded.warnings.iter().filter(|w| w.about_hooks()).map(|w| w.message.as_str()).collect();
            if !hook_keys.is_empty() {
                let what = hook_keys.join("; ");
                return Err(TaskError::invalid("create", id, "config.json (hooks strict mode)", what));
            }
        }
        let mut undo = Undo::default();
        match self.create_steps(&req, &bundle, loaded.spec, early, &mut undo).await {
            Ok(c) => {
                let pid = c.init.pid;
                self.events.publish(
                    topics::TASK_CREATE_EVENT_TOPIC,
                    &TaskCreate {
                        container_id: id.to_string(),
                        bundle: req.bundle.clone(),
                        rootfs: req.rootfs.clone(),
                        io: MessageField::some(TaskIO {
                            stdin: req.io.stdin.clone(),
                            stdout: req.io.stdout.clone(),
                            stderr: req.io.stderr.clone(),
                            terminal: req.io.terminal,
                            ..Default::default()
                        }),
                        pid: pid as u32,
                        ..Default::default()
                    },
                );
                Ok(pid)
            }
            Err(e) => {
                let poststop = undo.poststop.take();
                undo.run().await;
                if let Some(spec) = poststop {
                    let _ = run_kinds(&self.reaper, &spec, &[Kind::Poststop], id, &bundle, None).await;
                }
                Err(e)
            }
        }
    }

    async fn create_steps(
        self: &Arc<Self>,
        req: &CreateRequest,
        bundle: &Path,
        spec: Spec,
        early: Option<Early>,
        undo: &mut Undo,
    ) -> Result<Arc<Container>, TaskError> {
        let id = req.id.as_str();
        // A restore's images are checked before anything is made.
        let restoring = match req.checkpoint.as_str() {
            "" => None,
            dir => Some(
                super::restore::check(&spec, Path::new(dir))
                    .map_err(|e| TaskError::invalid("create", id, "checkpoint", e))?,
            ),
        };
        let (p, plan) = self.before_init(req, bundle, &spec, undo).await?;
        let (spawned, exited, phase) = match restoring {
            None => self.start_init(req, bundle, spec, (plan, early), &p, undo).await?,
            Some(descriptors) => {
                drop(early);
                self.restore_init(req, bundle, &spec, &p, descriptors, undo).await?
            }
        };
        self.finish(req, p, (spawned, exited, phase), undo)
    }

    /// Everything the init needs before it exists: the rootfs mounted, the
    /// cgroup claimed, stdio opened (a logger started); and the namespace
    /// plan a new init is spawned by.
    async fn before_init(
        &self,
        req: &CreateRequest,
        bundle: &Path,
        spec: &Spec,
        undo: &mut Undo,
    ) -> Result<(Prepared, NsPlan), TaskError> {
        let id = req.id.as_str();
        if spec.process().is_none() {
            return Err(TaskError::invalid("create", id, "config.json", "process: must be set"));
        }
        let rootfs = crate::spec::rootfs_path(spec, bundle);
        let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
        if !req.rootfs.is_empty() {
            // Off the event loop: an overlay mount on a busy disk can take long.
            let (mounts, target) = (req.rootfs.clone(), rootfs.clone());
            super::off_loop(move || super::rootfs::mount(&mounts, &target))
                .await
                .map_err(|e| TaskError::internal("create", id, "mount rootfs", e))?;
            undo.rootfs = Some(rootfs.clone());
        }
        let linux = spec.linux().as_ref();
        let cg_path = cgroups::path_for(linux.and_then(|l| l.cgroups_path().as_deref()), &self.ctx.namespace, id)
            .map_err(|e| TaskError::invalid("create", id, "linux.cgroupsPath", e))?;
        let cgroup = Cgroup::claim(cg_path).map_err(|e| TaskError::invalid("create", id, "linux.cgroupsPath", e))?;
        let owner = Owner { id, namespace: &self.ctx.namespace };
        let mut stdio = Stdio::open(&req.io.stdin, &req.io.stdout, stderr_unless_terminal(&req.io, terminal), &owner)
            .map_err(|e| TaskError::invalid("create", id, "open stdio", e))?;
        // Registered before any await: the reaper cannot miss its exit.
        undo.logger = stdio.logger.map(|pid| Logger { pid: pid as i32, exited: self.reaper.register(pid as i32) });
        stdio.logger_ready().await.map_err(|e| TaskError::invalid("create", id, "open stdio", e))?;
        let plan = NsPlan::from_spec(spec);
        let hooked = Kind::ALL.iter().any(|k| !hooks::planned(spec, &[*k]).is_empty());
        let confinement = Confinement {
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            personality: linux.and_then(|l| l.personality().clone()),
            agent_spec: linux
                .and_then(|l| l.seccomp().as_ref())
                .and_then(|sc| sc.listener_path().as_ref())
                .map(|_| Arc::new(spec.clone())),
        };
        let p = Prepared {
            rootfs,
            terminal,
            cgroup,
            stdio,
            shared_pidns: !plan.new_pid,
            hooks_spec: hooked.then(|| Arc::new(spec.clone())),
            resources: linux.and_then(|l| l.resources().clone()),
            confinement,
            state_dir: state::dir(&self.ctx.state_root, &self.ctx.address, &self.ctx.namespace, id),
        };
        Ok((p, plan))
    }

    /// A new init: spawned into its namespaces, recorded, in its cgroup,
    /// through the handshake to Ready.
    async fn start_init(
        &self,
        req: &CreateRequest,
        bundle: &Path,
        spec: Spec,
        (plan, early): (NsPlan, Option<Early>),
        p: &Prepared,
        undo: &mut Undo,
    ) -> Result<Init, TaskError> {
        let id = req.id.as_str();
        let reused = early.and_then(|e| e.take_for(&plan));
        // An early init has /dev/null until it is handed the Create's stdio.
        let stdio = reused.is_some().then_some(&p.stdio.container);
        let (spawned, exited) = match reused {
            Some(started) => started,
            None => {
                let spawned = self
                    .runtime
                    .spawn(&plan, &p.stdio.container, IdMaps::from_spec(&spec).as_ref(), None)
                    .map_err(|e| TaskError::internal("create", id, "spawn init", e))?;
                // Registered before any await: the reaper cannot miss this exit.
                let exited = self.reaper.register(spawned.pid);
                (spawned, exited)
            }
        };
        let pid = spawned.pid;
        // Recorded before the cgroup is made: a shim that dies from here on
        // leaves the `delete` cleanup all it needs to undo, and only that.
        p.adopt(id, bundle, (spawned, exited), undo)?;
        // The cgroup is made and limited while the init loads (on the other
        // core): the init joins it only once it has its config, below. In a
        // user namespace the init cannot write the host's cgroup files: the
        // shim moves it instead.
        let cgroup_tasks = if plan.in_userns {
            Vec::new()
        } else {
            p.cgroup.prepare().map_err(|e| TaskError::internal("create", id, "cgroup", e))?
        };
        let into_cgroup = if cgroup_tasks.is_empty() {
            p.cgroup.enter(pid, p.resources.as_ref())
        } else {
            p.cgroup.limit(p.resources.as_ref())
        };
        into_cgroup.map_err(|e| TaskError::internal("create", id, "cgroup", e))?;
        let (mut spawned, exited) = undo.take_init(id)?;
        let seccomp_listener = super::seccomp_listener(&spec, id, "creating", (pid, pid), &req.bundle);
        let config = InitConfig {
            id: id.to_string(),
            plan,
            process: spec.process().clone().unwrap_or_default(), // checked by before_init
            pause_for_hooks: !hooks::planned(&spec, &CREATE_HOOKS).is_empty(),
            rootfs: Some(RootfsSetup { path: p.rootfs.clone(), spec }),
            cgroup_tasks,
            seccomp: p.confinement.seccomp.clone(),
            personality: p.confinement.personality.clone(),
            seccomp_listener,
        };
        match self.handshake(&mut spawned, (config, stdio), p.hooks_spec.as_deref(), bundle).await {
            Ok(phase) => Ok((spawned, exited, phase)),
            Err(e) => {
                undo.init = Some((spawned, exited));
                Err(TaskError::Internal(format!("create {id}: {e}")))
            }
        }
    }

    /// The container made of a Ready (or restored) init: its console, its
    /// Process, the OOM watch, its exit's publication, its registry entry.
    fn finish(
        &self,
        req: &CreateRequest,
        p: Prepared,
        (mut spawned, exited, phase): Init,
        undo: &mut Undo,
    ) -> Result<Arc<Container>, TaskError> {
        let id = req.id.as_str();
        let console = if p.terminal {
            match super::attach_console(&mut spawned, &req.io.stdin, &req.io.stdout) {
                Ok(c) => Some(c),
                Err(e) => {
                    undo.init = Some((spawned, exited));
                    return Err(TaskError::Internal(format!("create {id}: {e}")));
                }
            }
        } else {
            None
        };
        let io = IoPaths {
            stdin: req.io.stdin.clone(),
            stdout: req.io.stdout.clone(),
            stderr: req.io.stderr.clone(),
            terminal: p.terminal,
        };
        let mut stdio = p.stdio;
        // A terminal's input goes through the console instead.
        let stdin = if p.terminal { None } else { stdio.take_stdin_feed() };
        let out = Outputs { logger: undo.logger.take(), console, stdin };
        let init = Process::new(spawned, phase, io, stdio.into_relays(), out, false);
        let oom = match p.cgroup.oom_source() {
            Ok(Some(source)) => super::oom::Oom::start(source, self.events.clone(), id)
                .map_err(|e| log::warn!("create {id}: watch oom: {e}"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                log::warn!("create {id}: {e}");
                None
            }
        };
        let oom_watch = oom.as_ref().map(|o| o.watch.clone());
        let c = Arc::new(Container {
            id: id.to_string(),
            bundle: req.bundle.clone(),
            spec: p.hooks_spec,
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            cgroup: p.cgroup.clone(),
            shared_pidns: p.shared_pidns,
            rootfs_mount: undo.rootfs.take(),
            state_dir: p.state_dir,
            confinement: p.confinement,
            oom,
        });
        *undo = Undo::default();
        // As the runc shim: where the pid namespace is not the container's
        // own, the init's death does not end the rest; the cgroup does.
        let rest = (p.shared_pidns && p.cgroup.owned()).then_some(p.cgroup);
        self.publish_exit_on(&init, exited, (id, ""), oom_watch, rest);
        if let Ok(mut m) = self.containers.lock() {
            m.insert(id.to_string(), c.clone());
        }
        Ok(c)
    }
}

/// The hooks Create runs while the init waits before pivot_root.
const CREATE_HOOKS: [Kind; 3] = [Kind::Prestart, Kind::CreateRuntime, Kind::CreateContainer];

impl Shim {
    /// [Stdio, to an early init] -> Config -> [RunHooks: prestart, createRuntime, createContainer -> HooksDone] -> Ready.
    async fn handshake(
        &self,
        spawned: &mut Spawned,
        (config, stdio): (InitConfig, Option<&[OwnedFd; 3]>),
        spec: Option<&Spec>,
        bundle: &Path,
    ) -> Result<Phase, String> {
        let id = config.id.clone();
        if let Some(stdio) = stdio {
            // Its mount namespace predates the rootfs's mount: it copies the
            // shim's again.
            let new_mounts = config.plan.clone_flags & libc::CLONE_NEWNS as u64 != 0;
            spawned.chan.send_stdio(stdio, new_mounts).await.map_err(|e| format!("hand the init its stdio: {e}"))?;
        }
        let mut phase = spawned.chan.configure(config).await?;
        if phase == Phase::HooksRequested {
            let spec = spec.ok_or("the init asked for hooks that do not exist")?;
            let init = Some((spawned.pid, std::os::fd::AsFd::as_fd(&spawned.pidfd)));
            run_kinds(&self.reaper, spec, &CREATE_HOOKS, &id, bundle, init).await?;
            phase = spawned.chan.hooks_done(phase).await?;
        }
        Ok(phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("c1").is_ok());
        for bad in ["", "..", ".", "a/b"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
