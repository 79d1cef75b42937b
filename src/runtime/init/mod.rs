//! The container's init: what the re-exec of the shim (from its
//! read-only view, see `runtime::exe`) runs as. It is a
//! fresh single-threaded process already inside the new namespaces and its
//! cgroup; it finishes the namespaces, builds the rootfs, takes on the
//! process's identity, reports Ready, and execs the user's program on Start.

pub(crate) mod caps;
mod devices;
mod process;
pub mod rootfs;
mod seccomp;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use oci_spec::runtime::Spec;

use super::channel::{FromInit, InitConfig, InitEnd, ToInit};
use super::namespaces::NsPlan;
use crate::sys;

/// The fd the parent hands the channel on.
pub const CHANNEL_FD: i32 = 3;

/// Where an exec gets its container init's pidfd (`NsPlan::join_by_pidfd`).
pub const TARGET_PIDFD: i32 = 4;

/// Where the init leaves a terminal's master for the shim to take
/// (pidfd_getfd); close-on-exec, so the program never holds it. High, so no
/// fd the init opens lands there first.
pub const CONSOLE_FD: i32 = 255;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{step}: {source}")]
    Step { step: String, source: std::io::Error },
    #[error("{0}")]
    Msg(String),
}

/// `map_err` adapter that names the failing step.
pub fn step(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let step = what.into();
    move |source| InitError::Step { step, source }
}

pub fn main() -> ! {
    // Until exec nobody may ptrace us or open our /proc/self/exe.
    let _ = sys::set_dumpable(false);
    // Device nodes and mount points get exactly the modes the config asks for.
    sys::set_umask(0);
    let _ = sys::set_cloexec(CHANNEL_FD);
    let _ = sys::set_cloexec(TARGET_PIDFD);
    // Whatever the shim inherited without CLOEXEC (from containerd, or from
    // whoever ran `start`) must not sit in the container's first process.
    let _ = sys::close_from(TARGET_PIDFD as u32 + 1);
    let mut chan = InitEnd(UnixStream::from(sys::adopt_fd(CHANNEL_FD)));
    let cfg = match chan.recv_with_fds() {
        Ok(Some((ToInit::Config(cfg), _))) => cfg,
        // Spawned before its Create: its stdio comes now, then its config.
        Ok(Some((ToInit::Stdio, fds))) => {
            if adopt_early_stdio(fds).is_err() {
                sys::exit_now(1);
            }
            match chan.recv() {
                Ok(Some(ToInit::Config(cfg))) => cfg,
                _ => sys::exit_now(1),
            }
        }
        _ => sys::exit_now(1),
    };
    let target = if cfg.plan.join_by_pidfd != 0 {
        Some(sys::adopt_fd(TARGET_PIDFD))
    } else {
        // Not ours: an fd inherited there.
        let _ = sys::close_from(TARGET_PIDFD as u32);
        None
    };
    let exec = match prepare(&cfg, &mut chan, target) {
        Ok(exec) => exec,
        Err(e) => fail(&mut chan, &format!("{} {}: {e}", if cfg.rootfs.is_some() { "create" } else { "exec" }, cfg.id)),
    };
    if chan.send(&FromInit::Ready).is_err() {
        sys::exit_now(1);
    }
    match chan.recv() {
        Ok(Some(ToInit::Start)) => {}
        _ => sys::exit_now(1),
    }
    let path = match &exec.path {
        Ok(path) => path,
        Err(e) => fail(&mut chan, &format!("start {}: {e}", cfg.id)),
    };
    sys::reset_signals();
    sys::set_umask(exec.umask);
    let err = sys::execve(path, &exec.args, &exec.env);
    fail(&mut chan, &format!("start {}: exec {path:?}: {err}", cfg.id))
}

/// An early init's stdio (`ToInit::Stdio`) put at 0, 1, 2; and, if the shim
/// sent its mount namespace, that namespace copied anew: ours was copied
/// before the Create mounted the rootfs.
fn adopt_early_stdio(fds: Vec<OwnedFd>) -> io::Result<()> {
    let [stdin, stdout, stderr, mnt @ ..] = fds.as_slice() else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "fewer than 3 stdio fds"));
    };
    for (target, fd) in [stdin, stdout, stderr].into_iter().enumerate() {
        sys::dup_onto(fd, target as i32)?;
    }
    if let Some(mnt) = mnt.first() {
        sys::setns(mnt, libc::CLONE_NEWNS)?;
        sys::unshare(libc::CLONE_NEWNS)?;
    }
    Ok(())
}

fn fail(chan: &mut InitEnd, msg: &str) -> ! {
    let _ = chan.send(&FromInit::Failed(msg.to_string()));
    sys::exit_now(1)
}

fn prepare(cfg: &InitConfig, chan: &mut InitEnd, target: Option<OwnedFd>) -> Result<process::Exec, InitError> {
    let plan = &cfg.plan;
    // The agent's socket is a host path: connect while the host's mounts are
    // still what this process sees.
    let agent = match &cfg.seccomp_listener {
        Some(l) => Some(
            UnixStream::connect(&l.path)
                .map_err(step(format!("connect to the seccomp agent at {}", l.path.display())))?,
        ),
        None => None,
    };
    // First, while /sys/fs/cgroup is still the host's: nothing this process
    // does from here on is charged outside the container's cgroup.
    for tasks in &cfg.cgroup_tasks {
        std::fs::write(tasks, "0").map_err(step(format!("join cgroup {}", tasks.display())))?;
    }
    join_namespaces(plan)?;
    if let Some(target) = target {
        // All at once, and ESRCH if the container's init is gone.
        sys::setns(&target, plan.join_by_pidfd).map_err(step("join the container init's namespaces"))?;
    }
    if let Some(offsets) = &plan.new_time {
        sys::unshare(libc::CLONE_NEWTIME).map_err(step("unshare time namespace"))?;
        if !offsets.is_empty() {
            std::fs::write("/proc/self/timens_offsets", offsets)
                .map_err(step(format!("write time offsets {:?}", offsets.trim())))?;
        }
        // unshare only made it the namespace of children to come; enter it
        // now (offsets are fixed from here on) so the program runs in it.
        let ns = std::fs::File::open("/proc/self/ns/time_for_children").map_err(step("open time namespace"))?;
        sys::setns(&ns, libc::CLONE_NEWTIME).map_err(step("enter time namespace"))?;
    }
    if let Some(root) = &cfg.rootfs {
        if plan.new_cgroupns {
            sys::unshare(libc::CLONE_NEWCGROUP).map_err(step("unshare cgroup namespace"))?;
        }
        let mut before_pivot = || {
            if !cfg.pause_for_hooks {
                return Ok(());
            }
            chan.send(&FromInit::RunHooks).map_err(step("ask for the Create hooks"))?;
            match chan.recv() {
                Ok(Some(ToInit::HooksDone)) => Ok(()),
                _ => sys::exit_now(1),
            }
        };
        rootfs::prepare(&root.spec, &root.path, plan.in_userns, &mut before_pivot)?;
        set_names(&root.spec, plan)?;
        write_sysctls(&root.spec)?;
        rootfs::finish(&root.spec)?;
    }
    if cfg.process.terminal() == Some(true) {
        // After pivot_root (or joining the mount namespace): the container's
        // /dev/ptmx, so the program sees a pts of its own devpts.
        let (rows, cols) =
            cfg.process.console_size().as_ref().map_or((0, 0), |b| (b.height() as u16, b.width() as u16));
        sys::make_console(CONSOLE_FD, rows, cols).map_err(step("make the terminal"))?;
    } else {
        // A session of its own, as runc gives every container process:
        // CRIU dumps no tree whose session leader is outside its pid
        // namespace (the shim, else).
        sys::new_session().map_err(step("start a session"))?;
        sys::reopen_dev_null();
    }
    let conf = process::Confinement {
        seccomp: cfg.seccomp.as_ref(),
        personality: cfg.personality.as_ref(),
        agent: agent.as_ref().zip(cfg.seccomp_listener.as_ref().map(|l| l.message.as_slice())),
    };
    let exec = process::setup(&cfg.process, &conf)?;
    match (&exec.path, &cfg.rootfs) {
        (Err(e), Some(_)) => Err(InitError::Msg(e.clone())),
        _ => Ok(exec),
    }
}

fn join_namespaces(plan: &NsPlan) -> Result<(), InitError> {
    for (nstype, path) in &plan.join {
        let f = std::fs::File::open(path).map_err(step(format!("open namespace {}", path.display())))?;
        sys::setns(&f, *nstype).map_err(step(format!("join namespace {}", path.display())))?;
    }
    Ok(())
}

fn set_names(spec: &Spec, plan: &NsPlan) -> Result<(), InitError> {
    let names = [("hostname", spec.hostname()), ("domainname", spec.domainname())];
    for (what, name) in names {
        let Some(name) = name.as_deref().filter(|h| !h.is_empty()) else {
            continue;
        };
        if !plan.new_uts {
            return Err(InitError::Msg(format!("{what}: setting it needs a new uts namespace")));
        }
        match what {
            "hostname" => sys::sethostname(name),
            _ => sys::setdomainname(name),
        }
        .map_err(step(format!("set {what} {name:?}")))?;
    }
    Ok(())
}

/// After pivot_root, so /proc/sys is the container's; before the read-only
/// and masked paths cover it. Which keys are allowed was checked at load.
fn write_sysctls(spec: &Spec) -> Result<(), InitError> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        let path = std::path::Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(step(format!("sysctl {key}={value}: write {}", path.display())))?;
    }
    Ok(())
}

/// The argv[0] the init runs under; `main` dispatches on it.
pub const ARG0: &str = "myshim-init";
