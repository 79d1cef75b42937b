//! Credentials and scheduling of the calling process: capabilities, ids
//! and groups, rlimits, io priority, scheduler, personality, umask, prctl
//! flags.

use std::io;

use super::cvt;

pub fn set_dumpable(on: bool) -> io::Result<()> {
    Ok(nix::sys::prctl::set_dumpable(on)?)
}

pub fn set_keep_caps(on: bool) -> io::Result<()> {
    Ok(nix::sys::prctl::set_keepcaps(on)?)
}

pub fn set_no_new_privs() -> io::Result<()> {
    Ok(nix::sys::prctl::set_no_new_privs()?)
}

// nix has no wrapper for the capability prctls: these two stay raw.
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

/// `persona` is the whole personality(2) word: the execution domain in its
/// low byte (PER_LINUX32) and any flags above it, passed on as they are.
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    use nix::sys::personality::{self, Persona};
    personality::set(Persona::from_bits_retain(persona as libc::c_int))?;
    Ok(())
}

/// `resource` is one of libc's RLIMIT_* numbers; one nix does not know is
/// EINVAL, as the kernel answers for it.
pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    let resource = match resource {
        libc::RLIMIT_CPU => Resource::RLIMIT_CPU,
        libc::RLIMIT_FSIZE => Resource::RLIMIT_FSIZE,
        libc::RLIMIT_DATA => Resource::RLIMIT_DATA,
        libc::RLIMIT_STACK => Resource::RLIMIT_STACK,
        libc::RLIMIT_CORE => Resource::RLIMIT_CORE,
        libc::RLIMIT_RSS => Resource::RLIMIT_RSS,
        libc::RLIMIT_NPROC => Resource::RLIMIT_NPROC,
        libc::RLIMIT_NOFILE => Resource::RLIMIT_NOFILE,
        libc::RLIMIT_MEMLOCK => Resource::RLIMIT_MEMLOCK,
        libc::RLIMIT_AS => Resource::RLIMIT_AS,
        libc::RLIMIT_LOCKS => Resource::RLIMIT_LOCKS,
        libc::RLIMIT_SIGPENDING => Resource::RLIMIT_SIGPENDING,
        libc::RLIMIT_MSGQUEUE => Resource::RLIMIT_MSGQUEUE,
        libc::RLIMIT_NICE => Resource::RLIMIT_NICE,
        libc::RLIMIT_RTPRIO => Resource::RLIMIT_RTPRIO,
        libc::RLIMIT_RTTIME => Resource::RLIMIT_RTTIME,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    Ok(setrlimit(resource, soft, hard)?)
}

pub fn set_groups(gids: &[u32]) -> io::Result<()> {
    let gids: Vec<nix::unistd::Gid> = gids.iter().map(|&g| nix::unistd::Gid::from_raw(g)).collect();
    Ok(nix::unistd::setgroups(&gids)?)
}

pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    // setresgid before setresuid, so we still may.
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setresgid(gid, gid, gid)?;
    setresuid(uid, uid, uid)?;
    Ok(())
}

pub fn set_umask(mask: u32) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_retain(mask as libc::mode_t));
}
