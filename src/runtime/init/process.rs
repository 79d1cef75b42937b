//! The container process's identity, in runc's order: rlimits, io priority
//! and scheduler; the seccomp filter here if there is no no_new_privs;
//! bounding set dropped while still root; groups, gid, uid with caps kept;
//! cwd; the capability sets and no_new_privs; the executable looked up;
//! personality; the seccomp filter last if there is no_new_privs.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, LinuxSeccomp, PosixRlimitType, Process, Scheduler,
};

use super::caps::{self, cap_mask};
use super::seccomp;
use super::{step, InitError};
use crate::sys;

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// What the init applies besides the process itself.
pub struct Confinement<'a> {
    pub seccomp: Option<&'a LinuxSeccomp>,
    pub personality: Option<&'a LinuxPersonality>,
    /// Connected before any namespace was joined (the socket is a host
    /// path), and the message that goes with the notify fd.
    pub agent: Option<(&'a std::os::unix::net::UnixStream, &'a [u8])>,
}

/// Applies everything but the exec; returns what to exec.
pub fn setup(p: &Process, conf: &Confinement) -> Result<Exec, InitError> {
    if let Some(adj) = p.oom_score_adj() {
        // Lowering it takes CAP_SYS_RESOURCE; the kernel's EACCES says so.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(step(format!("set oom_score_adj to {adj}: write /proc/self/oom_score_adj")))?;
    }
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        apply_apparmor(profile)?;
    }
    for r in p.rlimits().iter().flatten() {
        sys::set_rlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .map_err(step(format!("setrlimit {:?}", r.typ())))?;
    }
    // While still root: real-time classes need CAP_SYS_NICE/CAP_SYS_ADMIN.
    if let Some(io) = p.io_priority() {
        set_io_priority(io)?;
    }
    if let Some(s) = p.scheduler() {
        set_scheduler(s)?;
    }
    let nnp = p.no_new_privileges() == Some(true);
    let filter = conf.seccomp.map(seccomp::build).transpose()?;
    // Without no_new_privs loading a filter takes CAP_SYS_ADMIN, so it goes
    // in before the capabilities are dropped (as runc does).
    if let (Some(f), false) = (&filter, nnp) {
        load_filter(f, conf)?;
    }
    let caps = p.capabilities().as_ref();
    if let Some(c) = caps {
        let bounding = cap_mask(c.bounding(), "bounding")?;
        for cap in 0..=caps::last_cap() {
            if bounding & (1 << cap) == 0 {
                sys::drop_bounding_cap(cap).map_err(step(format!("drop capability {cap} from the bounding set")))?;
            }
        }
    }
    let user = p.user();
    sys::set_keep_caps(true).map_err(step("keep capabilities"))?;
    let gids: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    sys::set_groups(&gids).map_err(step(format!("setgroups {gids:?}")))?;
    sys::set_ids(user.uid(), user.gid()).map_err(step(format!("set uid {} gid {}", user.uid(), user.gid())))?;
    sys::set_keep_caps(false).map_err(step("clear keep-capabilities"))?;
    std::env::set_current_dir(p.cwd()).map_err(step(format!("chdir to cwd {}", p.cwd().display())))?;
    if let Some(c) = caps {
        let (e, pm, i) = (
            cap_mask(c.effective(), "effective")?,
            cap_mask(c.permitted(), "permitted")?,
            cap_mask(c.inheritable(), "inheritable")?,
        );
        sys::capset(e, pm, i).map_err(step("set capabilities"))?;
        // Only what the kernel allows (spec::ambient_not_raised warned of the rest).
        let ambient = cap_mask(c.ambient(), "ambient")? & i & pm;
        for cap in (0..64).filter(|b| ambient & (1 << b) != 0) {
            sys::raise_ambient_cap(cap).map_err(step(format!("raise ambient capability {}", caps::name(cap))))?;
        }
    }
    if nnp {
        sys::set_no_new_privs().map_err(step("set no_new_privs"))?;
    }
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let args: Vec<String> = p.args().clone().unwrap_or_default();
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| InitError::Msg(format!("process.{what}: contains a NUL byte")))
    };
    let path = match find_executable(args.first().map(String::as_str).unwrap_or(""), &env) {
        Ok(path) => Ok(cstr(&path.to_string_lossy(), "args")?),
        Err(e) => Err(e.to_string()),
    };
    let exec = Exec {
        path,
        args: args.iter().map(|a| cstr(a, "args")).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstr(e, "env")).collect::<Result<_, _>>()?,
        umask: user.umask().unwrap_or(0o022),
    };
    if let Some(persona) = conf.personality {
        sys::set_personality(personality(persona)?).map_err(step("set personality"))?;
    }
    // With no_new_privs, as late as possible: the fewer syscalls after it,
    // the fewer a profile must allow (here: the Ready/Start messages, signal
    // resets, umask and execve).
    if let (Some(f), true) = (&filter, nnp) {
        load_filter(f, conf)?;
    }
    Ok(exec)
}

fn load_filter(f: &libseccomp::ScmpFilterContext, conf: &Confinement) -> Result<(), InitError> {
    let notifies = conf.seccomp.is_some_and(seccomp::notifies);
    let Some(fd) = seccomp::load(f, notifies)? else {
        return Ok(());
    };
    let Some((agent, message)) = conf.agent else {
        return Err(InitError::Msg("seccomp: SCMP_ACT_NOTIFY without a listenerPath".into()));
    };
    use std::os::fd::AsRawFd;
    sys::send_with_fds(agent.as_raw_fd(), message, &[fd.as_raw_fd()])
        .map_err(step("send the notify fd to the seccomp agent"))
}

/// Asks AppArmor to confine the next exec. Without AppArmor the write fails
/// and so does the container, as with runc: a profile is never dropped.
fn apply_apparmor(profile: &str) -> Result<(), InitError> {
    let new = std::path::Path::new("/proc/self/attr/apparmor/exec");
    let path = if new.exists() { new } else { std::path::Path::new("/proc/self/attr/exec") };
    std::fs::write(path, format!("exec {profile}"))
        .map_err(step(format!("apply apparmor profile {profile:?}: write {}", path.display())))
}

fn set_io_priority(io: &LinuxIOPriority) -> Result<(), InitError> {
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = u32::try_from(io.priority())
        .ok()
        .filter(|l| *l <= 7)
        .ok_or_else(|| InitError::Msg(format!("process.ioPriority.priority: {} is not 0..7", io.priority())))?;
    sys::set_io_priority(class, level).map_err(step(format!("set io priority {:?} {level}", io.class())))
}

/// The scheduler settings as the kernel's sched_attr.
pub fn sched_attr(s: &Scheduler) -> sys::SchedAttr {
    use LinuxSchedulerFlag::*;
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => 4,
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            SchedResetOnFork => 0x01,
            SchedFlagReclaim => 0x02,
            SchedFlagDLOverrun => 0x04,
            SchedFlagKeepPolicy => 0x08,
            SchedFlagKeepParams => 0x10,
            SchedFlagUtilClampMin => 0x20,
            SchedFlagUtilClampMax => 0x40,
        }
    });
    sys::SchedAttr {
        size: 0,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }
}

fn set_scheduler(s: &Scheduler) -> Result<(), InitError> {
    sys::sched_setattr(&mut sched_attr(s)).map_err(step(format!("set scheduler {:?}", s.policy())))
}

/// PER_LINUX / PER_LINUX32; the spec defines no flags yet.
pub fn personality(p: &LinuxPersonality) -> Result<libc::c_ulong, InitError> {
    if let Some(f) = p.flags().as_ref().and_then(|f| f.first()) {
        return Err(InitError::Msg(format!("linux.personality.flags: {f:?} is not a known flag")));
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

pub struct Exec {
    /// The program, or why it cannot be found: the caller decides whether
    /// that fails now (a container's init: Create, as with runc) or at
    /// Start (an exec: the runc shim's `runc exec` runs only then).
    pub path: Result<CString, String>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub umask: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// execvp's lookup, done before Ready: a missing binary fails a container's
/// Create (as with runc) or an exec's Start (as with the runc shim) instead
/// of surfacing as exit 127.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, InitError> {
    let is_exec = sys::is_executable;
    if name.contains('/') {
        return match std::fs::metadata(name) {
            Err(e) => Err(InitError::Msg(format!("exec: {name:?}: {e}"))),
            Ok(_) if !is_exec(Path::new(name)) => Err(InitError::Msg(format!("exec: {name:?}: permission denied"))),
            Ok(_) => Ok(PathBuf::from(name)),
        };
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
        .find(|p| is_exec(p))
        .ok_or_else(|| InitError::Msg(format!("exec: {name:?}: executable file not found in $PATH")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_found_on_path_or_refused() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).expect("sh").ends_with("sh"));
        let e = find_executable("no-such-binary-xyz", &env).unwrap_err().to_string();
        assert_eq!(e, "exec: \"no-such-binary-xyz\": executable file not found in $PATH");
        let e = find_executable("/no/such/file", &env).unwrap_err().to_string();
        assert!(e.starts_with("exec: \"/no/such/file\": No such file"), "{e}");
        assert!(find_executable("/etc/passwd", &env).unwrap_err().to_string().contains("permission denied"));
    }
}
