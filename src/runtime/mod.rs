//! Starting a container's init: the parent's half of the runtime. The init is
//! the shim binary re-exec'd from a read-only view of itself (see `exe`) straight out
//! of clone3 into the new namespaces; it does the rest itself (see `init`).

pub mod channel;
pub mod criu;
mod exe;
pub mod init;
pub mod namespaces;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use channel::ParentEnd;
use namespaces::{IdMaps, NsPlan};

use crate::sys;

/// A started init, stopped at the handshake's first step.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub chan: ParentEnd,
    /// A terminal's master the shim already holds (a restored one, handed
    /// over by CRIU); else a spawned init's is taken from it.
    pub console: Option<OwnedFd>,
}

/// Holds the read-only view of our binary the inits are exec'd from, one
/// for the shim's life (see `exe`).
pub struct Runtime {
    root: PathBuf,
    exe: Mutex<Option<OwnedFd>>,
}

impl Runtime {
    /// `root`: the shim's state root, where the holder of a copy is named.
    pub fn new(root: PathBuf) -> Runtime {
        Runtime { root, exe: Mutex::new(None) }
    }

    /// Gets the executable now, while containerd is still connecting, rather
    /// than inside the first Create.
    pub fn prepare(&self) -> io::Result<()> {
        self.with_exe(|_| Ok(()))
    }

    fn with_exe<T>(&self, f: impl FnOnce(RawFd) -> io::Result<T>) -> io::Result<T> {
        let mut slot = self.exe.lock().map_err(|_| io::Error::other("init executable: poisoned lock"))?;
        if slot.is_none() {
            *slot = Some(exe::acquire(&self.root)?);
        }
        f(slot.as_ref().map_or(-1, |fd| fd.as_raw_fd()))
    }

    /// The shim's last container is gone: lets the executable go beside the
    /// event loop (the view's detached mount is torn down with its last fd;
    /// a fallback copy's pages are freed).
    pub fn retire(&self) {
        if let Some(fd) = self.exe.lock().ok().and_then(|mut s| s.take()) {
            free_later(fd);
        }
    }

    /// clone3 into the planned namespaces and exec the init with `stdio` as
    /// its 0, 1, 2 and the channel as fd 3. A new user namespace gets `maps`
    /// written before the init may exec.
    /// An exec passes its container init's pidfd as `target` (see
    /// `NsPlan::join_by_pidfd`).
    pub fn spawn(
        &self,
        plan: &NsPlan,
        stdio: &[OwnedFd; 3],
        maps: Option<&IdMaps>,
        target: Option<BorrowedFd<'_>>,
    ) -> io::Result<Spawned> {
        self.with_exe(|exe| spawn_from(exe, plan, stdio, maps, target))
    }
}

/// `Runtime::spawn` from the executable at `exe`.
fn spawn_from(
    exe: RawFd,
    plan: &NsPlan,
    stdio: &[OwnedFd; 3],
    maps: Option<&IdMaps>,
    target: Option<BorrowedFd<'_>>,
) -> io::Result<Spawned> {
    let (parent, child) = UnixStream::pair()?;
    // Above 4 so the child's dup2 onto 0..4 can never clobber a source.
    let high: Vec<OwnedFd> = stdio
        .iter()
        .map(|f| f.as_raw_fd())
        .chain(std::iter::once(child.as_raw_fd()))
        .chain(target.map(|t| t.as_raw_fd()))
        .map(|fd| sys::dup_above(fd, init::TARGET_PIDFD + 1))
        .collect::<io::Result<_>>()?;
    let exec = sys::ExecPlan {
        exe,
        fds: [
            high[0].as_raw_fd(),
            high[1].as_raw_fd(),
            high[2].as_raw_fd(),
            high[3].as_raw_fd(),
            high.get(4).map_or(-1, |f| f.as_raw_fd()),
        ],
        argv: vec![CString::new(init::ARG0).map_err(io::Error::other)?],
        envp: Vec::new(),
        userns_go: None,
    };
    let go = if plan.new_user { Some(sys::pipe()?) } else { None };
    let exec = sys::ExecPlan { userns_go: go.as_ref().map(|(r, _)| r.as_raw_fd()), ..exec };
    let clone = || sys::clone_exec(plan.clone_flags, &exec);
    let (pid, pidfd) = match (target, &plan.join_pid) {
        // setns through a pidfd: that very process's pid namespace, or ESRCH.
        (Some(t), _) => in_pid_namespace(t, &"of the container's init", clone)?,
        (None, Some(path)) => {
            let ns = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
            in_pid_namespace(ns.as_fd(), &path.display(), clone)?
        }
        (None, None) => clone()?,
    };
    if let Some((_, go)) = go {
        // On failure the write end closes unwritten and the child exits.
        let maps = maps.ok_or_else(|| io::Error::other("a new user namespace without id maps"))?;
        maps.write(pid)?;
        nix::unistd::write(&go, b"1")?;
    }
    drop(high);
    drop(child);
    parent.set_nonblocking(true)?;
    Ok(Spawned { pid, pidfd, chan: ParentEnd(tokio::net::UnixStream::from_std(parent)?), console: None })
}

/// Freeing a copy's pages takes about as long as making them, and whoever
/// drops the last reference pays: a short-lived thread drops it beside the
/// event loop (inline if no thread can be had: the refused closure is
/// dropped here).
fn free_later(fd: OwnedFd) {
    let _ = std::thread::Builder::new().stack_size(64 << 10).spawn(move || drop(fd));
}

/// Runs `f` with this thread's children created in the pid namespace `ns`
/// (a namespace fd, or a pidfd: that process's), then switches back (setns
/// for pid only changes where children go).
pub(crate) fn in_pid_namespace<T>(
    ns: BorrowedFd<'_>,
    what: &dyn std::fmt::Display,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let own = File::open("/proc/thread-self/ns/pid_for_children")?;
    sys::setns(ns, libc::CLONE_NEWPID)
        .map_err(|e| io::Error::new(e.kind(), format!("join pid namespace {what}: {e}")))?;
    let r = f();
    if let Err(e) = sys::setns(&own, libc::CLONE_NEWPID) {
        // Every later child of the shim would start in the container's pid
        // namespace: nothing the shim does after this can be trusted.
        log::error!("return to the shim's own pid namespace: {e}; aborting");
        std::process::abort();
    }
    r
}
