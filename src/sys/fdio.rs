//! Raw fd I/O: pipes, fd passing, terminals, readiness, and the logging
//! binary's fd layout. Part of `sys`: every `unsafe` lives under it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use std::path::Path;

use super::{cpath, cvt};

/// One message with one fd attached (SCM_RIGHTS).
pub fn send_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(bytes)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)?;
    if sent != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", bytes.len())));
    }
    Ok(())
}

/// O_NONBLOCK on (`on`) or off.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl get/set flags on a caller-provided fd.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) } as libc::c_long)? as libc::c_int;
    let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } as libc::c_long)?;
    Ok(())
}

pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    Ok(cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)? as usize)
}

pub fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: bytes is valid for bytes.len() bytes.
    Ok(cvt(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) } as libc::c_long)? as usize)
}

/// For a few bytes into a terminal: retried on EINTR, no more.
pub fn write_all_fd(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match write_fd(fd, &bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Registers an fd with the event loop (read and write readiness).
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd stays open while the AsyncFd owns it, and its
    // as_raw_fd always returns that same fd.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// TIOCSWINSZ.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: a valid winsize for the ioctl to read.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } as libc::c_long)?;
    Ok(())
}

/// A copy of another process's fd (pidfd_getfd(2)): how the shim takes the
/// pty master the init made inside the container.
pub fn pidfd_getfd(pidfd: RawFd, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a fresh fd (close-on-exec).
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The init's terminal: a pty from the container's /dev/ptmx, its slave made
/// the controlling terminal and fds 0, 1, 2 of a new session, the master
/// moved to `master_at` (close-on-exec).
pub fn make_console(master_at: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .map_err(|e| io::Error::new(e.kind(), format!("open {name}: {e}")))?;
    if rows > 0 || cols > 0 {
        set_winsize(master.as_raw_fd(), rows, cols)?;
    }
    nix::unistd::setsid()?;
    // SAFETY: ioctl on the slave we just opened.
    cvt(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long)?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        cvt(unsafe { libc::dup2(slave.as_raw_fd(), target) } as libc::c_long)?;
    }
    // SAFETY: dup3 onto a number this process reserves for the master.
    cvt(unsafe { libc::dup3(master.as_raw_fd(), master_at, libc::O_CLOEXEC) } as libc::c_long)?;
    Ok(())
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two fds pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Moves what one pipe holds into another without copying it through
/// userspace; EAGAIN when the source is empty or the target full, 0 once
/// the source has ended.
pub fn splice_some(from: &OwnedFd, to: &OwnedFd) -> io::Result<usize> {
    use nix::fcntl::{splice, SpliceFFlags};
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    Ok(splice(from, None, to, None, 1 << 20, flags)?)
}

/// Spawns `cmd` with `fds` as its fds 3, 4, 5 ... (the logging binary's
/// stdout, stderr and ready pipes). Each source must be above the targets.
pub fn spawn_with_fds(cmd: &mut std::process::Command, fds: Vec<RawFd>) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 is async-signal-safe; the fds stay open in the parent
    // until spawn returns, and dup2 clears close-on-exec on the copies.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as libc::c_int) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a fresh fd.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) } as libc::c_long)?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A non-blocking, close-on-exec inotify fd watching `path` for writes
/// (cgroup v2 control files signal their changes this way).
pub fn inotify_modify(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: integer flags; the result is a fresh fd.
    let fd = cvt(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) } as libc::c_long)?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: a valid fd and NUL-terminated path.
    cvt(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } as libc::c_long)?;
    Ok(fd)
}

/// USER_HZ, the unit of cgroup v1's cpuacct.stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

/// Writes what fits into a pipe without blocking, then leaves it: a reader
/// that never reads must not stall the shim.
pub fn write_nonblocking(fd: RawFd, bytes: &[u8]) {
    if set_nonblocking(fd, true).is_err() {
        return;
    }
    let mut rest = bytes;
    while let Ok(n @ 1..) = write_fd(fd, rest) {
        rest = &rest[n..];
        if rest.is_empty() {
            break;
        }
    }
}

/// The /proc/self/fd link of `fd`: what opens or mounts through it reaches
/// exactly that inode, wherever its path may point by now.
pub fn fd_link(fd: &impl std::os::fd::AsFd) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}
