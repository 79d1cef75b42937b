//! Processes: clone3 into namespaces and exec, pidfds, reaping, the daemon's
//! fork, spawning into a container's namespaces, exec and exit.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::cvt;

/// Everything the child needs between clone and exec, prepared up front so the
/// child itself allocates nothing and takes no locks.
pub struct ExecPlan {
    pub exe: RawFd,
    /// fds placed at 0, 1, 2, 3, 4 in the child (a negative one: nothing
    /// there); each must be >= 5 so the dup2s cannot clobber one another.
    pub fds: [RawFd; 5],
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// For a new user namespace: the child waits for one byte here (the
    /// parent has written the id maps), becomes the namespace's root, and
    /// only then execs, so the exec keeps its capabilities in there.
    pub userns_go: Option<RawFd>,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 into new namespaces and immediately exec the init executable. The shim is
/// multi-threaded, so the child runs only async-signal-safe dup2/execveat/_exit.
/// Returns the child's pid and a pidfd for it.
pub fn clone_exec(ns_flags: u64, plan: &ExecPlan) -> io::Result<(i32, OwnedFd)> {
    let argv: Vec<*const libc::c_char> =
        plan.argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        plan.envp.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    let empty = c"";
    // SAFETY: clone3 without CLONE_VM gives the child a copy-on-write image;
    // in the child we only call async-signal-safe functions on data prepared
    // above, and never return.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if ret == 0 {
        // SAFETY: child side; see above.
        unsafe {
            if let Some(go) = plan.userns_go {
                let mut byte = 0u8;
                loop {
                    let n = libc::read(go, (&mut byte as *mut u8).cast(), 1);
                    if n == 1 {
                        break;
                    }
                    if n < 0 && *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    libc::_exit(125);
                }
                // Raw syscalls: glibc's wrappers would try to tell the
                // parent's other threads, which do not exist here.
                let zero: libc::c_long = 0;
                if libc::syscall(libc::SYS_setresgid, zero, zero, zero) != 0
                    || libc::syscall(libc::SYS_setgroups, zero, std::ptr::null::<libc::gid_t>()) != 0
                    || libc::syscall(libc::SYS_setresuid, zero, zero, zero) != 0
                {
                    libc::_exit(124);
                }
            }
            for (target, fd) in plan.fds.iter().enumerate() {
                if *fd >= 0 && libc::dup2(*fd, target as libc::c_int) < 0 {
                    libc::_exit(126);
                }
            }
            libc::syscall(
                libc::SYS_execveat,
                plan.exe,
                empty.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::_exit(127);
        }
    }
    let pid = cvt(ret)? as i32;
    // SAFETY: CLONE_PIDFD stored a fresh fd (O_CLOEXEC by kernel default).
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// A pidfd for `pid` (close-on-exec, as pidfds always are). The shim gets
/// its inits' from clone3; a child std spawned (criu) and tests need this.
/// Raw, as every pidfd call here: nix has none.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; on success the result is a fresh fd that
    // nothing else owns, so the OwnedFd may close it.
    unsafe {
        let fd = cvt(libc::syscall(libc::SYS_pidfd_open, pid, 0))?;
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo.
    cvt(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, std::ptr::null::<u8>(), 0) })?;
    Ok(())
}

/// One exited child: its pid and its wait status as an exit code (128+signal
/// for a signal death, as shells and containerd report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    pub pid: i32,
    pub code: u32,
}

/// Reaps one exited child if there is one. Never blocks. Raw: nix's
/// waitpid fails (EINVAL) on a child killed by a signal its `Signal` enum
/// lacks (any realtime one), after the child is already reaped.
pub fn reap_any() -> io::Result<Option<ChildExit>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid with WNOHANG and a valid status pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid < 0 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ECHILD) { Ok(None) } else { Err(err) };
    }
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(ChildExit { pid, code: exit_code(status) }))
}

pub fn exit_code(status: libc::c_int) -> u32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status) as u32
    } else {
        libc::WEXITSTATUS(status) as u32
    }
}

pub fn set_child_subreaper() -> io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

/// Closes every fd from `first` up. Only for a process that has just
/// started and owns nothing above `first` itself (the init). Raw: nix has
/// no close_range.
pub fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: closes fds no Rust object of this fresh process owns.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) })?;
    Ok(())
}

/// Restores default dispositions and an empty mask: ignored signals (Rust
/// ignores SIGPIPE) would otherwise survive exec into the user's process.
/// The dispositions stay raw: nix's signal() is unsafe and its `Signal`
/// has no realtime signals.
pub fn reset_signals() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL for a signal number; failures (reserved numbers) are harmless.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// execve that only returns on failure. For the init, a process of its own
/// (nix builds the NULL-terminated arrays on the heap, as this did).
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    match nix::unistd::execve(path, argv, envp) {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

/// `kill(2)` for pids read from a cgroup, where no pidfd exists. Raw: nix's
/// kill takes its `Signal`, which has no realtime signals.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain kill.
    cvt(unsafe { libc::kill(pid, sig) } as libc::c_long)?;
    Ok(())
}

/// Adopts an inherited fd number (the listener handed over by `start`).
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller names an fd it was handed and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Raw: nix 0.29 has no _exit.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers, which belong to the parent's image.
    unsafe { libc::_exit(code) }
}

/// Forks the serving daemon off `start`: one exec fewer than re-running the
/// binary (its loading and relocation are a third of `start`'s time). Only
/// for a single-threaded process, so the child may do anything; it gets its
/// own session and /dev/null as stdio (containerd reads `start`'s stdout to
/// its end). Returns the child's pid in the parent, None in the child.
pub fn fork_daemon() -> io::Result<Option<u32>> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!("{threads} threads: a copy of this process would be unsafe")));
    }
    let null = File::options().read(true).write(true).open("/dev/null")?;
    // SAFETY: the process has one thread (checked above), so the child is a
    // consistent copy and may run any code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // dup2 onto the stdio fds, which this process owns; setsid, which
            // only a process group leader is refused (a forked child is none).
            for fd in 0..3 {
                if nix::unistd::dup2(null.as_raw_fd(), fd).is_err() {
                    exit_now(1);
                }
            }
            if nix::unistd::setsid().is_err() {
                exit_now(1);
            }
            Ok(None)
        }
        pid => Ok(Some(pid as u32)),
    }
}

/// setsid(2): a process that is no group leader (a fresh child) leads a new
/// session and process group.
pub fn new_session() -> io::Result<()> {
    nix::unistd::setsid()?;
    Ok(())
}

/// Spawns `cmd` inside the namespaces behind `join` ((nstype, fd), mount
/// last). The forked child is single-threaded, so it may enter a mount
/// namespace; it only calls setns before exec.
pub fn spawn_in_namespaces(
    cmd: &mut std::process::Command,
    join: Vec<(i32, RawFd)>,
    cwd: &Path,
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // Made before the fork: the child may not allocate.
    let cwd = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(cwd.as_os_str()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the closure only calls setns and chdir, which are
    // async-signal-safe, on fds the parent keeps open until spawn returns.
    // The chdir comes after setns(CLONE_NEWNS), which resets the cwd.
    unsafe {
        cmd.pre_exec(move || {
            for (nstype, fd) in &join {
                if libc::setns(*fd, *nstype) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::chdir(cwd.as_ptr()) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The spawned child is SIGKILLed if the shim dies first: a hook must not
/// outlive the shim that waits for it (containerd's cleanup cannot reach it).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
