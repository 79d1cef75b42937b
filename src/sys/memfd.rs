//! The sealed copy of our executable and what it takes to borrow one from
//! another process. Part of `sys`: every `unsafe` lives under it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// The seals that make a memfd immutable for good.
pub const SEALED: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// A sealed, read-only in-memory copy of our own executable. The container's
/// init is exec'd from it, so `/proc/<pid>/exe` inside the container points at
/// a file nobody can write (CVE-2019-5736).
pub fn sealed_self_copy() -> io::Result<OwnedFd> {
    let name = c"myshim-init";
    // SAFETY: name is a valid NUL-terminated string; flags are constants.
    let fd = cvt(unsafe {
        libc::syscall(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut src = File::open("/proc/self/exe")?;
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst)?;
    // SAFETY: plain fcntl on an fd we own.
    cvt(unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, SEALED) } as libc::c_long)?;
    Ok(OwnedFd::from(dst))
}

/// The seals on `fd`; an error for anything but a memfd (or shmem file).
pub fn seals(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: plain fcntl on a caller-provided fd.
    Ok(cvt(unsafe { libc::fcntl(fd, libc::F_GET_SEALS) } as libc::c_long)? as libc::c_int)
}

/// A pidfd for `pid` (pidfd_open(2)), close-on-exec. It pins the process it
/// found: if that one dies, calls through the pidfd fail, whoever gets the pid.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a fresh fd.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits for an exclusive lock on `fd`'s file (flock(2)), held until every
/// copy of the fd is closed.
pub fn lock_exclusive(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: plain flock on a caller-provided fd.
        match cvt(unsafe { libc::flock(fd, libc::LOCK_EX) } as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}
