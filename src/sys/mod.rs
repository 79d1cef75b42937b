//! The one place with raw syscalls and `unsafe`. Everything above this module
//! speaks in `OwnedFd`s, `Result`s and plain Rust types.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

mod creds;
mod exe;
mod fdio;
mod memory;
mod mounts;
mod process;
#[cfg(test)]
mod tests;
pub use self::creds::*;
pub use self::exe::*;
pub use self::fdio::*;
pub use self::memory::*;
pub use self::mounts::*;
pub use self::process::*;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// dup2: `fd` also at `target` (not close-on-exec there).
pub fn dup_onto(fd: &impl AsRawFd, target: RawFd) -> io::Result<()> {
    nix::unistd::dup2(fd.as_raw_fd(), target)?;
    Ok(())
}

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec.
pub fn dup_above(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg};
    let n = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

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

/// Bytes waiting in a pipe (FIONREAD). Raw: nix's ioctl macros only make
/// unsafe functions.
pub fn unread_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a valid pointer.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } as libc::c_long)?;
    Ok(n.max(0) as usize)
}

pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}
