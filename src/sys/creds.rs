//! Credentials and scheduling of the calling process: capabilities, ids
//! and groups, rlimits, io priority, scheduler, personality, umask, prctl
//! flags.

use std::io;

use super::cvt;

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
