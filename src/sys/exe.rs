//! The executable the containers' inits are exec'd from: our own binary,
//! seen so that nobody can write it through `/proc/<pid>/exe`
//! (CVE-2019-5736). Part of `sys`: every `unsafe` lives under it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, SealFlag};

use super::cvt;

/// The seals that make a memfd immutable for good.
const SEALED: SealFlag =
    SealFlag::F_SEAL_SEAL.union(SealFlag::F_SEAL_SHRINK).union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_WRITE);

/// `binary` opened (O_PATH) through a read-only overlayfs made with the new
/// mount API and never attached anywhere: no copy, no mount any process can
/// see, and the file reached through it cannot be opened for writing by
/// anyone (EROFS). The mount lives as long as the returned fd. `empty` is
/// the second lower layer that kernels before 6.7 ask for when there is no
/// upper one; it sits below the binary's directory, so it can hide nothing.
/// fsopen, fsconfig and fsmount stay raw: nix has no new mount API.
pub fn readonly_view(binary: &Path, empty: &Path) -> io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (binary.parent(), binary.file_name()) else {
        return Err(io::Error::other(format!("{}: not a file path", binary.display())));
    };
    let layers = [dir, empty].map(|p| p.as_os_str().as_bytes().to_vec());
    // lowerdir's separators (`:` and `,`) and its escape would need quoting.
    if layers.iter().any(|l| l.iter().any(|b| matches!(b, b':' | b',' | b'\\'))) {
        return Err(io::Error::other(format!("{}: a path overlayfs options cannot carry", dir.display())));
    }
    let lower = CString::new([&layers[0][..], b":", &layers[1][..]].concat()).map_err(io::Error::other)?;
    // SAFETY: constant NUL-terminated name and flags; on success the result
    // is a fresh fd that nothing else owns, so the OwnedFd may close it.
    let fs = unsafe {
        let fd = cvt(libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), libc::FSOPEN_CLOEXEC))?;
        OwnedFd::from_raw_fd(fd as RawFd)
    };
    let set = |key: &std::ffi::CStr, value: Option<&CString>| {
        let (cmd, v) = match value {
            Some(v) => (libc::FSCONFIG_SET_STRING, v.as_ptr()),
            None => (libc::FSCONFIG_CMD_CREATE, std::ptr::null()),
        };
        let key = if value.is_some() { key.as_ptr() } else { std::ptr::null() };
        // SAFETY: fs is our fs context; key and value are NUL-terminated or null as the command asks.
        cvt(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key, v, 0) })
    };
    set(c"lowerdir", Some(&lower)).map_err(|e| io::Error::new(e.kind(), format!("overlay lowerdir: {e}")))?;
    set(c"", None).map_err(|e| io::Error::new(e.kind(), format!("overlay create: {e}")))?;
    let attrs = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOSUID;
    // SAFETY: integer arguments on our fs context; on success the result is
    // a fresh fd that nothing else owns, so the OwnedFd may close it.
    let mnt = unsafe {
        let fd = cvt(libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, attrs))?;
        OwnedFd::from_raw_fd(fd as RawFd)
    };
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::openat(Some(mnt.as_raw_fd()), name, flags, nix::sys::stat::Mode::empty())?;
    // SAFETY: openat returned a fresh fd that nothing else owns; it keeps
    // the detached mount alive once `mnt` closes.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A sealed, read-only in-memory copy of our own executable: where no
/// overlayfs can be made (5-6 MB of shmem per shim, and its copying).
pub fn sealed_self_copy() -> io::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let memfd = memfd_create(c"myshim-init", MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING)?;
    let mut src = File::open("/proc/self/exe")?;
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst)?;
    nix::fcntl::fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(SEALED))?;
    Ok(OwnedFd::from(dst))
}
