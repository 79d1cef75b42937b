//! Raw fd I/O: pipes, fd passing, terminals, readiness, and the logging
//! binary's fd layout. Part of `sys`: every `unsafe` lives under it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::cvt;

/// One message with fds attached (SCM_RIGHTS).
pub fn send_with_fds(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let sent = sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)?;
    if sent != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", bytes.len())));
    }
    Ok(())
}

/// Each of fds 0-2 that is a /dev/null (by its device number) made the
/// /dev/null of the current root instead, as runc's init does: the shim's
/// is a file on a mount the container does not have, which CRIU cannot
/// dump. Best effort: a root without /dev/null keeps the fds it was given.
pub fn reopen_dev_null() {
    use nix::sys::stat::{fstat, SFlag};
    let Ok(null) = std::fs::File::options().read(true).write(true).custom_flags(libc::O_CLOEXEC).open("/dev/null")
    else {
        return;
    };
    let Ok(ours) = fstat(null.as_raw_fd()) else {
        return;
    };
    let is_char = |mode: libc::mode_t| SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    for fd in 0..3 {
        let null_from_outside = fstat(fd).is_ok_and(|st| {
            is_char(st.st_mode) && st.st_rdev == ours.st_rdev && (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino)
        });
        if null_from_outside {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

/// A connected SOCK_SEQPACKET pair, both ends close-on-exec, the first
/// non-blocking (ours, on the event loop), the second blocking (CRIU's:
/// it waits on its reads).
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    set_nonblocking(ours.as_raw_fd(), true)?;
    Ok((ours, theirs))
}

/// The next packet whole, however long (its length peeked first), and the
/// fd it carries, if one (SCM_RIGHTS, received close-on-exec); empty at the
/// peer's close.
pub fn recv_packet(fd: RawFd) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    use nix::sys::socket::{recv, MsgFlags};
    let len = recv(fd, &mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)?;
    let mut buf = vec![0u8; len];
    let (n, mut fds) = recv_with_fds(fd, &mut buf)?;
    buf.truncate(n.min(len));
    Ok((buf, fds.pop()))
}

/// Reads what a stream socket has into `buf` (at least one byte, or 0 at
/// EOF), with the fds sent along with it (at most 4), close-on-exec.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(got) = c {
            // SAFETY: SCM_RIGHTS gave this process these fds; nothing else
            // owns them.
            fds.extend(got.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds))
}

/// O_NONBLOCK on (`on`) or off.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    let mut flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

/// Raw: nix's write wants an `AsFd`, and the callers hold bare fd numbers
/// (an `AsyncFd`'s, a terminal master's).
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

/// TIOCSWINSZ. Raw: nix's ioctl macros only make unsafe functions.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: a valid winsize for the ioctl to read.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } as libc::c_long)?;
    Ok(())
}

/// A copy of another process's fd (pidfd_getfd(2)): how the shim takes the
/// pty master the init made inside the container. Raw: nix has no pidfds.
pub fn pidfd_getfd(pidfd: RawFd, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; on success the result is a fresh fd
    // (close-on-exec) that nothing else owns, so the OwnedFd may close it.
    unsafe {
        let fd = cvt(libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0))?;
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// The init's terminal: a pty from the container's /dev/ptmx, its slave made
/// the controlling terminal and fds 0, 1, 2 of a new session, the master
/// moved to `master_at` (close-on-exec).
pub fn make_console(master_at: RawFd, rows: u16, cols: u16) -> io::Result<()> {
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
    // SAFETY: TIOCSCTTY on the slave we just opened; its argument is an
    // integer (0: do not steal). nix has no wrapper for it.
    cvt(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long)?;
    // The standard fds and `master_at` are numbers this process reserves.
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target)?;
    }
    nix::unistd::dup3(master.as_raw_fd(), master_at, OFlag::O_CLOEXEC)?;
    Ok(())
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
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
    // SAFETY: the closure only calls dup2 (nix's is the bare syscall and an
    // errno read: async-signal-safe, no allocation); the fds stay open in
    // the parent until spawn returns, and dup2 clears close-on-exec on the
    // copies.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                nix::unistd::dup2(*fd, 3 + i as libc::c_int)?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    Ok(OwnedFd::from(fd))
}

/// A non-blocking, close-on-exec inotify fd watching `path` for writes
/// (cgroup v2 control files signal their changes this way).
pub fn inotify_modify(path: &Path) -> io::Result<OwnedFd> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    ino.add_watch(path, AddWatchFlags::IN_MODIFY)?;
    // nix's Inotify does not give its fd up: a close-on-exec duplicate of it
    // (the same instance, O_NONBLOCK included) outlives the original.
    ino.as_fd().try_clone_to_owned()
}

/// USER_HZ, the unit of cgroup v1's cpuacct.stat.
pub fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
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
