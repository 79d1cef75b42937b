//! Reading and validating a bundle's config.json: raw-key lint first (serde
//! drops what it does not know), then typed parsing, then value checks. What
//! this runtime cannot enforce yet is refused, never silently skipped.

pub mod lint;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

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
    let spec: Spec = serde_json::from_value(raw).map_err(syntax)?;
    validate(&spec)?;
    Ok(Loaded { spec, warnings: findings })
}

fn invalid(msg: String) -> SpecError {
    SpecError::Invalid(msg)
}

fn validate(spec: &Spec) -> Result<(), SpecError> {
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
    if process.terminal() == Some(true) {
        return Err(invalid("process.terminal: terminals are not supported yet".into()));
    }
    if process.apparmor_profile().as_ref().is_some_and(|p| !p.is_empty()) && apparmor_enabled() {
        return Err(invalid("process.apparmorProfile: AppArmor profiles are not supported yet".into()));
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
        match typ {
            LinuxNamespaceType::User => {
                return Err(invalid(format!("linux.namespaces[{i}]: user namespaces are not supported yet")))
            }
            LinuxNamespaceType::Time => {
                return Err(invalid(format!("linux.namespaces[{i}]: time namespaces are not supported yet")))
            }
            _ => {}
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(format!("linux.namespaces[{i}].path: {p:?} must be an absolute path")));
            }
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(invalid("linux.namespaces: a mount namespace is required".into()));
    }
    if linux.seccomp().is_some() {
        return Err(invalid("linux.seccomp: seccomp is not supported yet".into()));
    }
    if linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(invalid("linux.sysctl: sysctls are not supported yet".into()));
    }
    if let Some(p) = linux.rootfs_propagation() {
        if crate::mountopts::propagation(p).is_none() {
            return Err(invalid(format!("linux.rootfsPropagation: {p:?} is not a propagation mode")));
        }
    }
    Ok(())
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
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
        v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        assert!(err(v).starts_with("linux.seccomp"));
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "user"}]);
        assert!(err(v).contains("user namespaces"));
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
