//! Mounts and namespaces: mount, bind flags, pivot_root, setns, unshare,
//! device nodes, ownership, host and domain names.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::cvt;

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

/// Joins the namespace(s) behind `fd`: a namespace file, or a pidfd with
/// one or more CLONE_NEW* flags.
pub fn setns(fd: impl AsFd, nstype: i32) -> io::Result<()> {
    Ok(nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_retain(nstype))?)
}

pub fn unshare(flags: i32) -> io::Result<()> {
    Ok(nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(flags))?)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    Ok(nix::unistd::sethostname(name)?)
}

/// Raw: nix has no setdomainname.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live buffer.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)?;
    Ok(())
}

/// The MS_* flags a mount currently has that a bind remount must keep.
pub fn mount_flags(path: &Path) -> io::Result<u64> {
    let flags = nix::sys::statvfs::statvfs(path)?.flags().bits();
    let map = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(map.iter().filter(|(st_flag, _)| flags & st_flag != 0).fold(0, |acc, (_, ms)| acc | ms))
}

/// `path` opened (O_PATH) inside the tree of `root`: `..` and symlinks
/// resolved as if `root` were `/`, magic links refused (openat2's
/// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, Linux 5.6). Whatever the path
/// has become by now, the fd names something inside the tree.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, dir: bool) -> io::Result<OwnedFd> {
    use nix::fcntl::{openat2, OpenHow, ResolveFlag};
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    flags.set(OFlag::O_DIRECTORY, dir);
    let how = OpenHow::new().flags(flags).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_raw_fd(), path, how).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("open {} in the rootfs: {e}", path.display()))
    })?;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
                match nix::sys::stat::mkdirat(Some(cur.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        let e = io::Error::from(e);
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
pub fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::from_bits_truncate(0o644)) {
        // A fresh fd, closed at once (an error closing it would change nothing).
        Ok(fd) => drop(nix::unistd::close(fd)),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The node `name` (a device or fifo: `kind` is S_IFCHR, S_IFBLK or S_IFIFO)
/// made in directory `dir` with exactly `perm` (the init's umask is 0).
pub fn mknod_at(dir: BorrowedFd<'_>, name: &OsStr, kind: libc::mode_t, perm: u32, dev: (u64, u64)) -> io::Result<()> {
    let perm = Mode::from_bits_retain((perm & 0o7777) as libc::mode_t);
    mknodat(Some(dir.as_raw_fd()), name, SFlag::from_bits_retain(kind), perm, makedev(dev.0, dev.1))?;
    Ok(())
}

/// `name` in `dir` given to (uid, gid); a symlink there is changed itself,
/// never what it points to.
pub fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    fchownat(Some(dir.as_raw_fd()), name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Removes `name` from `dir` unless it is a directory (or absent).
pub fn remove_non_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
        Ok(_) => Ok(unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)?),
        Err(_) => Ok(()),
    }
}

/// The symlink `name` -> `target` in `dir`; one already there is kept.
pub fn symlink_at(dir: BorrowedFd<'_>, target: &str, name: &str) -> io::Result<()> {
    match symlinkat(target, Some(dir.as_raw_fd()), name) {
        Err(Errno::EEXIST) => Ok(()),
        r => Ok(r?),
    }
}

// LOOP_CLR_FD, from linux/loop.h (libc does not carry the loop ioctls).
nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);

/// Detaches the loop device `dev` at its last close: one still mounted is
/// only marked (the kernel's lazy detach, as `losetup -d` does), one nobody
/// else holds goes when `dev` is closed.
pub fn loop_clear_on_last_close(dev: &impl AsFd) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument and acts on the device behind
    // an fd the caller keeps open for the call.
    unsafe { loop_clr_fd(dev.as_fd().as_raw_fd()) }?;
    Ok(())
}
