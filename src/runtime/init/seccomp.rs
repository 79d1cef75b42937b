//! The config's `linux.seccomp` as a filter, built with libseccomp and loaded
//! by the init (see `process::setup` for when). Rules follow runc so a
//! profile means the same under both runtimes: syscall names the kernel or
//! libseccomp does not know are skipped (profiles list newer syscalls), a
//! rule whose action is the default is left out, and conditions on the same
//! argument are alternatives (one rule each) while conditions on different
//! arguments must all hold (one rule).

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::InitError;

/// EPERM, libseccomp's and runc's errno when a profile gives none.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

fn err(what: String) -> impl FnOnce(libseccomp::error::SeccompError) -> InitError {
    move |e| InitError::Msg(format!("seccomp: {what}: {e}"))
}

pub fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, InitError> {
    use LinuxSeccompAction::*;
    Ok(match a {
        ScmpActKill | ScmpActKillThread => ScmpAction::KillThread,
        ScmpActKillProcess => ScmpAction::KillProcess,
        ScmpActTrap => ScmpAction::Trap,
        ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(DEFAULT_ERRNO) as i32),
        ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(DEFAULT_ERRNO) as u16),
        ScmpActLog => ScmpAction::Log,
        ScmpActAllow => ScmpAction::Allow,
        ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    use LinuxSeccompOperator::*;
    let op = match arg.op() {
        ScmpCmpNe => ScmpCompareOp::NotEqual,
        ScmpCmpLt => ScmpCompareOp::Less,
        ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        ScmpCmpEq => ScmpCompareOp::Equal,
        ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: value is the mask, valueTwo the value compared after masking.
        ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// The rules for one syscall entry: one with every condition when each
/// names a different argument, else one per condition.
pub fn condition_sets(args: &[LinuxSeccompArg]) -> Vec<Vec<ScmpArgCompare>> {
    let mut seen = std::collections::HashSet::new();
    let distinct = args.iter().all(|a| seen.insert(a.index()));
    if args.is_empty() || distinct {
        vec![args.iter().map(compare).collect()]
    } else {
        args.iter().map(|a| vec![compare(a)]).collect()
    }
}

fn arch(a: oci_spec::runtime::Arch) -> Result<ScmpArch, InitError> {
    let name = serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    name.parse().map_err(err(format!("architecture {name}")))
}

/// Builds the filter; nothing is loaded yet.
pub fn build(cfg: &LinuxSeccomp) -> Result<ScmpFilterContext, InitError> {
    let default = action(cfg.default_action(), cfg.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(err("create filter".into()))?;
    // no_new_privs is the config's choice (process.noNewPrivileges), not
    // something loading a filter may turn on behind its back.
    ctx.set_ctl_nnp(false).map_err(err("leave no_new_privs alone".into()))?;
    for a in cfg.architectures().iter().flatten() {
        let arch = arch(*a)?;
        // The native architecture is always there; adding it again is EEXIST.
        if !ctx.is_arch_present(arch).map_err(err(format!("architecture {a:?}")))? {
            ctx.add_arch(arch).map_err(err(format!("add architecture {a:?}")))?;
        }
    }
    for f in cfg.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(err(format!("flag {f:?}")))?;
    }
    for (i, call) in cfg.syscalls().iter().flatten().enumerate() {
        let act = action(call.action(), call.errno_ret())?;
        if act == default {
            continue;
        }
        let sets = condition_sets(call.args().as_deref().unwrap_or_default());
        for name in call.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            for conds in &sets {
                ctx.add_rule_conditional(act, nr, conds).map_err(err(format!("linux.seccomp.syscalls[{i}] {name}")))?;
            }
        }
    }
    Ok(ctx)
}

/// Loads the filter; returns its notify fd when a rule notifies.
pub fn load(ctx: &ScmpFilterContext, notifies: bool) -> Result<Option<std::os::fd::OwnedFd>, InitError> {
    ctx.load().map_err(err("load filter".into()))?;
    if !notifies {
        return Ok(None);
    }
    let fd = ctx.get_notify_fd().map_err(err("get the notify fd".into()))?;
    // SAFETY: libseccomp hands over the listener fd the kernel just made.
    Ok(Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
}

pub fn notifies(cfg: &LinuxSeccomp) -> bool {
    cfg.default_action() == LinuxSeccompAction::ScmpActNotify
        || cfg.syscalls().iter().flatten().any(|c| c.action() == LinuxSeccompAction::ScmpActNotify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("profile")
    }

    #[test]
    fn actions_map_like_runc() {
        assert_eq!(action(LinuxSeccompAction::ScmpActErrno, None).expect("a"), ScmpAction::Errno(libc::EPERM));
        assert_eq!(action(LinuxSeccompAction::ScmpActErrno, Some(38)).expect("a"), ScmpAction::Errno(38));
        assert_eq!(action(LinuxSeccompAction::ScmpActKill, None).expect("a"), ScmpAction::KillThread);
        assert_eq!(action(LinuxSeccompAction::ScmpActKillProcess, None).expect("a"), ScmpAction::KillProcess);
        assert_eq!(action(LinuxSeccompAction::ScmpActNotify, None).expect("a"), ScmpAction::Notify);
    }

    #[test]
    fn same_argument_conditions_are_alternatives() {
        let args: Vec<LinuxSeccompArg> = serde_json::from_value(json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}
        ]))
        .expect("args");
        let sets = condition_sets(&args);
        assert_eq!(sets.len(), 2);
        assert!(sets.iter().all(|s| s.len() == 1));
        let args: Vec<LinuxSeccompArg> = serde_json::from_value(json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}
        ]))
        .expect("args");
        let sets = condition_sets(&args);
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 2);
        let none = condition_sets(&[]);
        assert_eq!(none.len(), 1);
        assert!(none[0].is_empty());
    }

    #[test]
    fn a_profile_builds_and_exports() {
        let ctx = build(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_KILL",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]}
            ]
        })))
        .expect("build");
        let path = std::env::temp_dir().join(format!("myshim-bpf-{}", std::process::id()));
        let out = std::fs::File::create(&path).expect("tmp");
        let _ = std::fs::remove_file(&path);
        ctx.export_bpf(&out).expect("bpf");
        assert!(out.metadata().expect("stat").len() > 0);
    }
}
