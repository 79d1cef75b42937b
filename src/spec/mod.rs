//! Reading and validating a bundle's config.json: raw-key lint first (serde
//! drops what it does not know), then typed parsing, then value checks. What
//! this runtime cannot enforce yet is refused, never silently skipped.

pub mod lint;
mod schema;
#[cfg(test)]
mod table_tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, LinuxSeccompAction, Spec};

pub use lint::{Finding, Severity};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parse {path}: {source}")]
    Syntax { path: PathBuf, source: serde_json::Error },
    #[error("{0}")]
    Invalid(String),
}

pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<Finding>,
}

pub fn load(bundle: &Path) -> Result<Loaded, SpecError> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Read { path: path.clone(), source })?;
    parse(&bytes).map_err(|e| match e {
        SpecError::Syntax { source, .. } => SpecError::Syntax { path, source },
        other => other,
    })
}

/// The container's rootfs as the runtime sees it: `root.path`, relative to
/// the bundle unless absolute.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> PathBuf {
    bundle.join(spec.root().as_ref().map_or_else(|| PathBuf::from("rootfs"), |r| r.path().clone()))
}

pub fn parse(bytes: &[u8]) -> Result<Loaded, SpecError> {
    let syntax = |source| SpecError::Syntax { path: PathBuf::from("config.json"), source };
    let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(syntax)?;
    let findings = lint::lint(&raw);
    if let Some(err) = findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(SpecError::Invalid(err.message.clone()));
    }
    // serde_path_to_error names the JSON path of a value of the wrong type
    // or an unknown enum name (a namespace type, capability, rlimit ...).
    let spec: Spec = serde_path_to_error::deserialize(raw)
        .map_err(|e| SpecError::Invalid(type_error(&e.path().to_string(), &e.inner().to_string())))?;
    validate(&spec)?;
    let mut warnings = findings;
    warnings.extend(ambient_not_raised(&spec));
    Ok(Loaded { spec, warnings })
}

/// Ambient capabilities the kernel will not raise: one must be permitted
/// and inheritable too (`runc spec`'s own default lists three that are
/// not inheritable). As runc, the init raises the rest and goes on: fewer
/// privileges, never more; this says which were left out.
fn ambient_not_raised(spec: &Spec) -> Option<Finding> {
    let c = spec.process().as_ref()?.capabilities().as_ref()?;
    let has = |set: &Option<oci_spec::runtime::Capabilities>, cap| set.as_ref().is_some_and(|s| s.contains(cap));
    let mut lost: Vec<String> = c
        .ambient()
        .iter()
        .flatten()
        .filter(|cap| !has(c.inheritable(), cap) || !has(c.permitted(), cap))
        .map(|cap| format!("CAP_{cap}"))
        .collect();
    if lost.is_empty() {
        return None;
    }
    lost.sort();
    Some(Finding {
        severity: Severity::Warning,
        path: "process.capabilities.ambient".into(),
        message: format!(
            "process.capabilities.ambient: {} not raised: an ambient capability must also be inheritable and permitted",
            lost.join(", ")
        ),
    })
}

/// `LinuxResources` from an Update: JSON paths in errors, and the values
/// no kernel takes refused before any is written.
pub fn parse_resources(bytes: &[u8]) -> Result<oci_spec::runtime::LinuxResources, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r: oci_spec::runtime::LinuxResources =
        serde_path_to_error::deserialize(&mut de).map_err(|e| format!("resources.{}: {}", e.path(), e.inner()))?;
    let limit = |what: &str, v: Option<i64>| match v {
        Some(n) if n < -1 => Err(format!("resources.{what}: {n} is not a limit (-1 is unlimited)")),
        _ => Ok(()),
    };
    if let Some(m) = r.memory() {
        limit("memory.limit", m.limit())?;
        limit("memory.reservation", m.reservation())?;
        limit("memory.swap", m.swap())?;
    }
    if let Some(c) = r.cpu() {
        limit("cpu.quota", c.quota())?;
    }
    if let Some(p) = r.pids() {
        limit("pids.limit", Some(p.limit()))?;
    }
    Ok(r)
}

/// oci-spec parses capability names itself and says "no variant for X
/// (converted to Y)"; users need the name they wrote.
fn type_error(path: &str, inner: &str) -> String {
    match inner.strip_prefix("no variant for ").and_then(|r| r.split(" (").next()) {
        Some(name) if path.starts_with("process.capabilities.") => format!("{path}: unknown capability {name:?}"),
        _ => format!("{path}: {inner}"),
    }
}

fn invalid(msg: String) -> SpecError {
    SpecError::Invalid(msg)
}

fn validate(spec: &Spec) -> Result<(), SpecError> {
    crate::hooks::validate(spec).map_err(SpecError::Invalid)?;
    if spec.version().is_empty() {
        return Err(invalid("ociVersion: must be set".into()));
    }
    if spec.root().is_none() {
        return Err(invalid("root: must be set".into()));
    }
    let process = spec.process().as_ref().ok_or_else(|| invalid("process: must be set".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args: must name the program to run".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(format!("process.cwd: {:?} must be an absolute path", process.cwd())));
    }
    if let Some(rlimits) = process.rlimits() {
        for (i, r) in rlimits.iter().enumerate() {
            if r.soft() > r.hard() {
                return Err(invalid(format!(
                    "process.rlimits[{i}]: soft limit {} exceeds hard limit {}",
                    r.soft(),
                    r.hard()
                )));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(format!("mounts[{i}].destination: {:?} must be an absolute path", m.destination())));
        }
    }
    // Labels mean nothing without SELinux (accepted, as the spec allows);
    // with it, an unapplied label would be a weaker container.
    let labelled = process.selinux_label().as_ref().is_some_and(|l| !l.is_empty())
        || spec.linux().as_ref().and_then(|l| l.mount_label().as_ref()).is_some_and(|l| !l.is_empty());
    if labelled && selinux_enabled() {
        return Err(invalid("process.selinuxLabel: SELinux labels are not supported yet".into()));
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(format!("process.oomScoreAdj: {adj} is not in -1000..1000")));
        }
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(invalid(format!("process.ioPriority.priority: {} is not in 0..7", io.priority())));
        }
    }
    let Some(linux) = spec.linux() else {
        return Err(invalid("linux: must be set on Linux".into()));
    };
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let typ = ns.typ();
        if !seen.insert(typ) {
            return Err(invalid(format!("linux.namespaces[{i}]: duplicate namespace {typ}")));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(format!("linux.namespaces[{i}].path: {p:?} must be an absolute path")));
            }
        }
    }
    let new_userns =
        linux.namespaces().iter().flatten().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let mapped = |m: &Option<Vec<_>>| m.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    let maps = [("uidMappings", mapped(linux.uid_mappings())), ("gidMappings", mapped(linux.gid_mappings()))];
    for (key, present) in maps {
        if new_userns && !present {
            return Err(invalid(format!("linux.{key}: a new user namespace needs its id mappings")));
        }
        if !new_userns && present {
            return Err(invalid(format!("linux.{key}: mappings without a new user namespace would not apply")));
        }
    }
    if let Some(offsets) = linux.time_offsets() {
        if !seen.contains(&LinuxNamespaceType::Time) && !offsets.is_empty() {
            return Err(invalid("linux.timeOffsets: offsets without a time namespace would not apply".into()));
        }
        if let Some(clock) = offsets.keys().find(|k| *k != "monotonic" && *k != "boottime") {
            return Err(invalid(format!("linux.timeOffsets.{clock}: only monotonic and boottime clocks have offsets")));
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(invalid("linux.namespaces: a mount namespace is required".into()));
    }
    if let Some(sc) = linux.seccomp() {
        validate_seccomp(sc)?;
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        check_sysctl(key, linux.namespaces().as_deref().unwrap_or_default())?;
    }
    if let Some(f) = linux.personality().as_ref().and_then(|p| p.flags().as_ref()).and_then(|f| f.first()) {
        return Err(invalid(format!("linux.personality.flags: {f:?} is not a known flag")));
    }
    if let Some(p) = linux.cgroups_path().as_deref().map(Path::to_string_lossy) {
        let systemd = !p.starts_with('/') && p.split(':').count() == 3;
        if !systemd && !p.is_empty() && !p.split('/').any(|c| !c.is_empty() && c != "." && c != "..") {
            // Delete would kill and remove whatever the host runs there.
            return Err(invalid(format!(
                "linux.cgroupsPath: {p:?} is the root of the cgroup hierarchy; a container needs a cgroup of its own"
            )));
        }
    }
    if let Some(p) = linux.rootfs_propagation() {
        if crate::mountopts::propagation(p).is_none() {
            return Err(invalid(format!("linux.rootfsPropagation: {p:?} is not a propagation mode")));
        }
    }
    Ok(())
}

fn validate_seccomp(sc: &LinuxSeccomp) -> Result<(), SpecError> {
    // The init makes syscalls after loading the filter (the Ready message,
    // execve): with a notifying default they would wait on the agent.
    if sc.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action".into()));
    }
    let notify = sc.syscalls().iter().flatten().any(|c| c.action() == LinuxSeccompAction::ScmpActNotify);
    match sc.listener_path() {
        None if notify => {
            return Err(invalid("linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listener for its fd".into()))
        }
        Some(p) if !p.is_absolute() => {
            return Err(invalid(format!("linux.seccomp.listenerPath: {p:?} must be an absolute path")))
        }
        _ => {}
    }
    for (i, call) in sc.syscalls().iter().flatten().enumerate() {
        if call.names().is_empty() {
            return Err(invalid(format!("linux.seccomp.syscalls[{i}].names: must name at least one syscall")));
        }
        for (j, arg) in call.args().iter().flatten().enumerate() {
            if arg.index() > 5 {
                return Err(invalid(format!(
                    "linux.seccomp.syscalls[{i}].args[{j}].index: {} is not a syscall argument (0..5)",
                    arg.index()
                )));
            }
        }
    }
    Ok(())
}

/// Only sysctls of a namespace the container has its own of, as runc
/// allows them: ipc (kernel.msg*, sem, shm*, fs.mqueue.*), net (net.*, not
/// the host's network namespace), uts (kernel.domainname).
fn check_sysctl(key: &str, namespaces: &[LinuxNamespace]) -> Result<(), SpecError> {
    let at = format!("linux.sysctl.{key}");
    if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return Err(invalid(format!("{at}: not a sysctl name")));
    }
    let own = |t: LinuxNamespaceType| namespaces.iter().find(|n| n.typ() == t);
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return match own(LinuxNamespaceType::Ipc) {
            Some(_) => Ok(()),
            None => Err(invalid(format!("{at}: not allowed in the host's ipc namespace"))),
        };
    }
    if key.starts_with("net.") {
        return match own(LinuxNamespaceType::Network) {
            Some(ns)
                if ns.path().as_ref().is_some_and(|p| crate::sys::same_file(p, Path::new("/proc/self/ns/net"))) =>
            {
                Err(invalid(format!("{at}: not allowed in the host's network namespace")))
            }
            Some(_) => Ok(()),
            None => Err(invalid(format!("{at}: not allowed in the host's network namespace"))),
        };
    }
    match (key, own(LinuxNamespaceType::Uts)) {
        ("kernel.domainname", Some(_)) => Ok(()),
        ("kernel.hostname", Some(_)) => Err(invalid(format!("{at}: set the hostname with the hostname field"))),
        _ => Err(invalid(format!("{at}: not in a namespace of the container's own"))),
    }
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn err(v: serde_json::Value) -> String {
        match parse(v.to_string().as_bytes()) {
            Ok(_) => panic!("accepted {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_minimal_config_loads() {
        let l = parse(base().to_string().as_bytes()).expect("valid");
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let e = match parse(b"{\"ociVersion\": ") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        assert!(e.contains("EOF"), "{e}");
    }

    #[test]
    fn value_errors_name_the_json_path() {
        let mut v = base();
        v["process"]["args"] = json!([]);
        assert_eq!(err(v), "process.args: must name the program to run");
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "mount"}]);
        assert_eq!(err(v), "linux.namespaces[1]: duplicate namespace mnt");
        let mut v = base();
        v["mounts"] = json!([{"destination": "data", "type": "bind", "source": "/x"}]);
        assert_eq!(err(v), "mounts[0].destination: \"data\" must be an absolute path");
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert_eq!(err(v), "process.rlimits[0]: soft limit 10 exceeds hard limit 5");
    }

    #[test]
    fn unsupported_security_settings_fail_closed() {
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "user"}]);
        assert_eq!(err(v), "linux.uidMappings: a new user namespace needs its id mappings");
    }

    #[test]
    fn miscased_security_key_fails() {
        let mut v = base();
        v["Linux"] = v["linux"].take();
        v.as_object_mut().map(|o| o.remove("linux"));
        assert!(err(v).contains("did you mean linux?"));
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let mut v = base();
        v["x-extension"] = json!(true);
        let l = parse(v.to_string().as_bytes()).expect("valid");
        assert_eq!(l.warnings.len(), 1);
    }
}
