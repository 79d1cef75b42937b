//! The executable the containers' inits are exec'd from: our own binary,
//! seen so that nobody can write it through `/proc/<pid>/exe`
//! (CVE-2019-5736). Part of `sys`: every `unsafe` lives under it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::cvt;

/// The seals that make a memfd immutable for good.
const SEALED: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// `binary` opened (O_PATH) through a read-only overlayfs made with the new
/// mount API and never attached anywhere: no copy, no mount any process can
/// see, and the file reached through it cannot be opened for writing by
/// anyone (EROFS). The mount lives as long as the returned fd. `empty` is
/// the second lower layer that kernels before 6.7 ask for when there is no
/// upper one; it sits below the binary's directory, so it can hide nothing.
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
    // SAFETY: constant NUL-terminated name and flags; the result is a fresh fd.
    let fs = cvt(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), libc::FSOPEN_CLOEXEC) })?;
    // SAFETY: fresh fd that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
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
    // SAFETY: integer arguments on our fs context; the result is a fresh fd.
    let mnt = cvt(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, attrs) })?;
    // SAFETY: fresh fd that nothing else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    let name = CString::new(name.as_bytes()).map_err(io::Error::other)?;
    let flags = libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: mnt is our mount's root; name is NUL-terminated.
    let fd = cvt(unsafe { libc::openat(mnt.as_raw_fd(), name.as_ptr(), flags) } as libc::c_long)?;
    // SAFETY: fresh fd; it keeps the detached mount alive once `mnt` closes.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A sealed, read-only in-memory copy of our own executable: where no
/// overlayfs can be made (5-6 MB of shmem per shim, and its copying).
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
