//! Mounts and namespaces: mount, bind flags, pivot_root, setns, unshare,
//! device nodes, ownership, host and domain names.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{cpath, cvt};

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    Ok(nix::unistd::pivot_root(new_root, put_old)?)
}

pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let flags = nix::mount::MsFlags::from_bits_retain(flags as libc::c_ulong);
    Ok(nix::mount::mount(source, target, fstype, flags, data)?)
}

pub fn umount_detach(target: &Path) -> io::Result<()> {
    Ok(nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)?)
}

pub fn setns(fd: RawFd, nstype: i32) -> io::Result<()> {
    // SAFETY: setns on an fd we hold.
    cvt(unsafe { libc::setns(fd, nstype) } as libc::c_long)?;
    Ok(())
}

pub fn unshare(flags: i32) -> io::Result<()> {
    Ok(nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(flags))?)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    Ok(nix::unistd::sethostname(name)?)
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live buffer.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)?;
    Ok(())
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

/// openat2's `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `path` opened (O_PATH) inside the tree of `root`: `..` and symlinks
/// resolved as if `root` were `/`, magic links refused (openat2's
/// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, Linux 5.6). Whatever the path
/// has become by now, the fd names something inside the tree.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, dir: bool) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    let how = OpenHow { flags: flags as u64, mode: 0, resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS };
    // SAFETY: root is an open fd, c is NUL-terminated, how lives across the call and its size is passed.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("open {} in the rootfs: {e}", path.display())))?;
    // SAFETY: fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mkdir -p` of `path` inside `root`: each missing directory made with
/// mkdirat in its parent as `open_in_root` found it, so a component
/// swapped for a symlink meanwhile can only lead inside the tree. Returns
/// the directory, opened.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    let mut sofar = PathBuf::from("/");
    let mut cur = open_in_root(root, &sofar, true)?;
    for part in path.components() {
        let Component::Normal(name) = part else {
            if part == Component::ParentDir {
                sofar.push("..");
                cur = open_in_root(root, &sofar, true)?;
            }
            continue;
        };
        sofar.push(name);
        match open_in_root(root, &sofar, true) {
            Ok(fd) => cur = fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let c = CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: cur is an open directory fd; c is NUL-terminated.
                if let Err(e) = cvt(unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) } as libc::c_long) {
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(io::Error::new(e.kind(), format!("mkdir {} in the rootfs: {e}", sofar.display())));
                    }
                }
                cur = open_in_root(root, &sofar, true)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Creates the empty file `name` in directory `dir` if nothing is there
/// (a symlink there is left alone, not followed).
pub fn create_file_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    let c = CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: dir is an open directory fd; c is NUL-terminated.
    match cvt(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o644 as libc::c_uint) } as libc::c_long) {
        // SAFETY: fresh fd, closed at once.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}
