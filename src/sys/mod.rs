//! The one place with raw syscalls and `unsafe`. Everything above this module
//! speaks in `OwnedFd`s, `Result`s and plain Rust types.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

mod exe;
mod fdio;
pub use self::exe::*;
pub use self::fdio::*;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

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

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec.
pub fn dup_above(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl F_DUPFD_CLOEXEC on a caller-provided fd.
    let n = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) } as libc::c_long)?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(n as RawFd) })
}

/// A pidfd for `pid` (close-on-exec, as pidfds always are). The shim gets
/// its children's from clone3; tests make their own.
#[cfg(test)]
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a fresh fd.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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

/// Reaps one exited child if there is one. Never blocks.
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
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

pub fn set_keep_caps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

pub fn drop_bounding_cap(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

pub fn raise_ambient_cap(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe {
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, cap as libc::c_ulong, 0, 0)
    } as libc::c_long)?;
    Ok(())
}

/// Sets effective, permitted and inheritable capability masks (64-bit, v3 ABI).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header { version: 0x2008_0522, pid: 0 };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data { effective: lo(effective), permitted: lo(permitted), inheritable: lo(inheritable) },
        Data { effective: hi(effective), permitted: hi(permitted), inheritable: hi(inheritable) },
    ];
    // SAFETY: header and two data structs as the v3 capset ABI requires.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) })?;
    Ok(())
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let (a, b) = (cpath(new_root)?, cpath(put_old)?);
    // SAFETY: two valid C strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) })?;
    Ok(())
}

pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(CString::new).transpose().map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fst = fstype.map(CString::new).transpose().map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dat = data.map(CString::new).transpose().map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let tgt = cpath(target)?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are valid C strings or null, as mount(2) allows.
    cvt(
        unsafe { libc::mount(p(&src), tgt.as_ptr(), p(&fst), flags as libc::c_ulong, p(&dat) as *const libc::c_void) }
            as libc::c_long,
    )?;
    Ok(())
}

pub fn umount_detach(target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } as libc::c_long)?;
    Ok(())
}

pub fn setns(fd: RawFd, nstype: i32) -> io::Result<()> {
    // SAFETY: setns on an fd we hold.
    cvt(unsafe { libc::setns(fd, nstype) } as libc::c_long)?;
    Ok(())
}

pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: integer flags.
    cvt(unsafe { libc::unshare(flags) } as libc::c_long)?;
    Ok(())
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live str.
    cvt(unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) } as libc::c_long)?;
    Ok(())
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live buffer.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)?;
    Ok(())
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self): libc has no wrapper.
pub fn set_io_priority(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let prio = ((class << 13) | level) as libc::c_long;
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, prio) })?;
    Ok(())
}

/// The kernel's `struct sched_attr` (sched_setattr(2)).
#[repr(C)]
#[derive(Default, Debug, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

pub fn sched_setattr(attr: &mut SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: a sched_attr whose size field says how much the kernel may read.
    cvt(unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0 as libc::c_long, attr as *mut SchedAttr, 0 as libc::c_long)
    })?;
    Ok(())
}

pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: integer argument; returns the previous persona or -1.
    cvt(unsafe { libc::personality(persona) } as libc::c_long)?;
    Ok(())
}

pub fn mknod(path: &Path, kind: libc::mode_t, perm: u32, major: u64, minor: u64) -> io::Result<()> {
    let p = cpath(path)?;
    let dev = libc::makedev(major as u32, minor as u32);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(p.as_ptr(), kind | perm as libc::mode_t, dev) } as libc::c_long)?;
    Ok(())
}

pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: valid rlimit struct.
    cvt(unsafe { libc::setrlimit(resource as _, &lim) } as libc::c_long)?;
    Ok(())
}

pub fn set_groups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length of a live slice.
    cvt(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } as libc::c_long)?;
    Ok(())
}

pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer ids; setresgid before setresuid so we still may.
    cvt(unsafe { libc::setresgid(gid, gid, gid) } as libc::c_long)?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(uid, uid, uid) } as libc::c_long)?;
    Ok(())
}

pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Marks every fd from `first` up close-on-exec, so nothing of the runtime
/// leaks into the container's process.
/// Closes every fd from `first` up. Only for a process that has just
/// started and owns nothing above `first` itself (the init).
pub fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: closes fds no Rust object of this fresh process owns.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) })?;
    Ok(())
}

/// Restores default dispositions and an empty mask: ignored signals (Rust
/// ignores SIGPIPE) would otherwise survive exec into the user's process.
pub fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL for a signal number; failures (reserved numbers) are harmless.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// execve that only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let a: Vec<*const libc::c_char> =
        argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let e: Vec<*const libc::c_char> =
        envp.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: NULL-terminated arrays of valid C strings.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Clears O_NONBLOCK so a reader/writer in the container blocks as usual.
/// Whether `path` is a file someone may execute (execvp's test).
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether two paths name the same file (namespace files included).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Bytes waiting in a pipe (FIONREAD).
pub fn unread_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a valid pointer.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } as libc::c_long)?;
    Ok(n.max(0) as usize)
}

pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on a caller-provided fd.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)?;
    Ok(())
}

/// `kill(2)` for pids read from a cgroup, where no pidfd exists.
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

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers, which belong to the parent's image.
    unsafe { libc::_exit(code) }
}

/// The MS_* flags a mount currently has that a bind remount must keep.
pub fn mount_flags(path: &Path) -> io::Result<u64> {
    let p = cpath(path)?;
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    cvt(unsafe { libc::statvfs(p.as_ptr(), &mut st) } as libc::c_long)?;
    let map = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(map.iter().filter(|(st_flag, _)| st.f_flag & st_flag != 0).fold(0, |acc, (_, ms)| acc | ms))
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::lchown(p.as_ptr(), uid, gid) } as libc::c_long)?;
    Ok(())
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
            for fd in 0..3 {
                // SAFETY: dup2 onto the stdio fds, which this process owns.
                if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                    exit_now(1);
                }
            }
            // SAFETY: plain setsid; the child is not a group leader.
            if unsafe { libc::setsid() } < 0 {
                exit_now(1);
            }
            Ok(None)
        }
        pid => Ok(Some(pid as u32)),
    }
}

/// Gives back memory an idle shim does not need resident: the page-table
/// entries of its read-only file mappings (code, rodata; the pages stay in
/// the page cache, shared, and come back as minor faults) and free heap.
/// A mapping qualifies only if it is not writable and has no anonymous
/// (copy-on-write) pages: relocated data would otherwise be lost.
pub fn release_idle_memory() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize, bool)> = None;
    let flush = |m: Option<(usize, usize, bool)>| {
        if let Some((lo, hi, true)) = m {
            // SAFETY: a read-only private file mapping with no private pages:
            // dropping its PTEs only makes later accesses refault from the file.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            flush(current.take());
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else { continue };
            let eligible =
                perms.starts_with('r') && !perms.contains('w') && perms.ends_with('p') && path.starts_with('/');
            current = Some((lo, hi, eligible));
        } else if first == "Anonymous:" && f.next() != Some("0") {
            if let Some(m) = current.as_mut() {
                m.2 = false;
            }
        }
    }
    flush(current);
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
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
