//! The container process's identity, in runc's order: rlimits; bounding set
//! dropped while still root; groups, gid, uid with caps kept; cwd; then the
//! capability sets and no_new_privs; finally the executable looked up.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use super::init::{step, InitError};
use crate::sys;

/// Capability names in kernel number order (capability.h).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The set as a bit mask; unknown names are an error, never dropped.
pub fn cap_mask(set: &Option<Capabilities>, what: &str) -> Result<u64, InitError> {
    let mut mask = 0u64;
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let bit = CAPS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| InitError::Msg(format!("process.capabilities.{what}: unknown capability {name:?}")))?;
        mask |= 1 << bit;
    }
    Ok(mask)
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAPS.len() as u32 - 1)
}

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

/// Applies everything but the exec; returns what to exec.
pub fn setup(p: &Process) -> Result<Exec, InitError> {
    for r in p.rlimits().iter().flatten() {
        sys::set_rlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .map_err(step(format!("setrlimit {:?}", r.typ())))?;
    }
    let caps = p.capabilities().as_ref();
    if let Some(c) = caps {
        let bounding = cap_mask(c.bounding(), "bounding")?;
        for cap in 0..=last_cap() {
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
        let ambient = cap_mask(c.ambient(), "ambient")?;
        for cap in (0..64).filter(|b| ambient & (1 << b) != 0) {
            sys::raise_ambient_cap(cap).map_err(step(format!("raise ambient capability {}", CAPS[cap as usize])))?;
        }
    }
    if p.no_new_privileges() == Some(true) {
        sys::set_no_new_privs().map_err(step("set no_new_privs"))?;
    }
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let args: Vec<String> = p.args().clone().unwrap_or_default();
    let path = find_executable(args.first().map(String::as_str).unwrap_or(""), &env)?;
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| InitError::Msg(format!("process.{what}: contains a NUL byte")))
    };
    Ok(Exec {
        path: cstr(&path.to_string_lossy(), "args")?,
        args: args.iter().map(|a| cstr(a, "args")).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstr(e, "env")).collect::<Result<_, _>>()?,
        umask: user.umask().unwrap_or(0o022),
    })
}

pub struct Exec {
    pub path: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub umask: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// execvp's lookup, done before Create returns so a missing binary fails
/// Create (as with runc) instead of surfacing as exit 127 after Start.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, InitError> {
    let is_exec = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
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

/// Names in a set, for tests.
#[cfg(test)]
fn cap_names(mask: u64) -> std::collections::HashSet<&'static str> {
    CAPS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn capability_masks_follow_kernel_numbers() {
        let set: Capabilities =
            serde_json::from_value(serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"])).expect("caps");
        let m = cap_mask(&Some(set), "bounding").expect("mask");
        assert_eq!(m, (1 << 0) | (1 << 5) | (1 << 21));
        assert_eq!(cap_names(m), HashSet::from(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]));
        assert_eq!(cap_mask(&None, "effective").expect("none"), 0);
    }

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
