//! Starting a container's init: the parent's half of the runtime. The init is
//! the shim binary re-exec'd from a sealed memfd straight out of clone3 into
//! the new namespaces; it does the rest itself (see `init`).

mod caps;
pub mod channel;
mod devices;
pub mod init;
pub mod namespaces;
mod process;
pub mod rootfs;
mod seccomp;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use channel::ParentEnd;
use namespaces::{IdMaps, NsPlan};

use crate::sys;

/// A started init, stopped at the handshake's first step.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub chan: ParentEnd,
    /// The sealed copy it runs from, kept until it execs the program (see
    /// `free_later`).
    pub exe: OwnedFd,
}

/// Holds the sealed copy of our binary for the next spawn. A copy is 4-5 MB
/// of shmem charged to the shim, so each serves one spawn and is let go
/// once the child has exec'd the program: a shim holds none while its
/// containers run. The first is made before containerd's first Create.
#[derive(Default)]
pub struct Runtime {
    sealed: Mutex<Option<OwnedFd>>,
}

impl Runtime {
    /// Makes the sealed copy now, while containerd is still connecting, rather
    /// than inside the first Create.
    pub fn prepare(&self) -> io::Result<()> {
        let copy = sys::sealed_self_copy()?;
        if let Ok(mut slot) = self.sealed.lock() {
            *slot = Some(copy);
        }
        Ok(())
    }

    fn take_prepared(&self) -> Option<OwnedFd> {
        self.sealed.lock().ok().and_then(|mut s| s.take())
    }

    /// Lets a prepared copy nobody used go (an idle shim).
    pub fn release(&self) {
        if let Some(fd) = self.take_prepared() {
            free_later(fd);
        }
    }

    /// clone3 into the planned namespaces and exec the init with `stdio` as
    /// its 0, 1, 2 and the channel as fd 3. A new user namespace gets `maps`
    /// written before the init may exec.
    pub fn spawn(&self, plan: &NsPlan, stdio: &[OwnedFd; 3], maps: Option<&IdMaps>) -> io::Result<Spawned> {
        let exe = match self.take_prepared() {
            Some(fd) => fd,
            None => sys::sealed_self_copy()?,
        };
        let (parent, child) = UnixStream::pair()?;
        // Above 3 so the child's dup2 onto 0..3 can never clobber a source.
        let high: Vec<OwnedFd> = stdio
            .iter()
            .map(|f| f.as_raw_fd())
            .chain(std::iter::once(child.as_raw_fd()))
            .map(|fd| sys::dup_above(fd, 4))
            .collect::<io::Result<_>>()?;
        let exec = sys::ExecPlan {
            exe: exe.as_raw_fd(),
            fds: [high[0].as_raw_fd(), high[1].as_raw_fd(), high[2].as_raw_fd(), high[3].as_raw_fd()],
            argv: vec![CString::new(init::ARG0).map_err(io::Error::other)?],
            envp: Vec::new(),
            userns_go: None,
        };
        let go = if plan.new_user { Some(sys::pipe()?) } else { None };
        let exec = sys::ExecPlan { userns_go: go.as_ref().map(|(r, _)| r.as_raw_fd()), ..exec };
        let (pid, pidfd) = match &plan.join_pid {
            None => sys::clone_exec(plan.clone_flags, &exec)?,
            Some(path) => in_pid_namespace(path, || sys::clone_exec(plan.clone_flags, &exec))?,
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
        Ok(Spawned { pid, pidfd, chan: ParentEnd(tokio::net::UnixStream::from_std(parent)?), exe })
    }
}

/// Freeing a copy's pages takes about as long as making them (~0.7 ms for
/// 4.5 MB), and whoever drops the last reference pays. The shim keeps one
/// until the child has exec'd the program (else the program's own exec would
/// pay), then a short-lived thread drops it beside the event loop (inline if
/// no thread can be had: the refused closure is dropped here).
pub fn free_later(fd: OwnedFd) {
    let _ = std::thread::Builder::new().stack_size(64 << 10).spawn(move || drop(fd));
}

/// Runs `f` with this thread's children created in the pid namespace at
/// `path` (setns for pid only changes where children go), then switches back.
pub(crate) fn in_pid_namespace<T>(path: &std::path::Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let own = File::open("/proc/thread-self/ns/pid_for_children")?;
    let target = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    sys::setns(target.as_raw_fd(), libc::CLONE_NEWPID)
        .map_err(|e| io::Error::new(e.kind(), format!("join pid namespace {}: {e}", path.display())))?;
    let r = f();
    sys::setns(own.as_raw_fd(), libc::CLONE_NEWPID)?;
    r
}
