//! Mounts and namespaces: mount, bind flags, pivot_root, setns, unshare,
//! device nodes, ownership, host and domain names.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;

use super::{cpath, cvt};

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

pub fn mknod(path: &Path, kind: libc::mode_t, perm: u32, major: u64, minor: u64) -> io::Result<()> {
    let p = cpath(path)?;
    let dev = libc::makedev(major as u32, minor as u32);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(p.as_ptr(), kind | perm as libc::mode_t, dev) } as libc::c_long)?;
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

pub fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::lchown(p.as_ptr(), uid, gid) } as libc::c_long)?;
    Ok(())
}
