//! What CRIU must be told of a container's config, read the same way for
//! a dump and for its restore: the mounts whose source lies outside the
//! container (made as the init makes them), and the namespaces it joins
//! by path. Pure.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// A mount CRIU cannot dump and must be told is external.
#[derive(Debug, PartialEq, Eq)]
pub enum External {
    /// A bind mount of this host path.
    Bind(PathBuf),
    /// The cgroup mount: a bind of the container's host cgroup.
    Cgroup,
}

/// Each external mount's destination in the container and what it is, in
/// the config's order.
pub fn external_mounts(spec: &Spec) -> Vec<(String, External)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let dest = m.destination().to_string_lossy().into_owned();
        let typ = m.typ().as_deref().unwrap_or_default();
        if typ == "cgroup" || typ == "cgroup2" {
            out.push((dest, External::Cgroup));
        } else if crate::mountopts::parse(m.options().as_deref().unwrap_or_default()).is_bind() {
            out.push((dest, External::Bind(m.source().clone().unwrap_or_default())));
        }
    }
    out
}

/// The device nodes: each a bind of the host's at the same path.
pub fn devices(spec: &Spec) -> Vec<String> {
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default();
    devices.iter().map(|d| d.path().to_string_lossy().into_owned()).collect()
}

/// The namespaces the config joins by path, with CRIU's (and runc's) name
/// for each kind.
pub fn joined_by_path(spec: &Spec) -> Vec<(&'static str, PathBuf)> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    namespaces.iter().filter_map(|ns| Some((ns_name(ns.typ()), ns.path().clone()?))).collect()
}

/// Those of them CRIU leaves external (as runc: the network's and the
/// pid's); the others it joins itself at a restore.
pub fn external_namespaces(spec: &Spec) -> Vec<(&'static str, PathBuf)> {
    joined_by_path(spec).into_iter().filter(|(name, _)| is_external(name)).collect()
}

pub fn is_external(ns: &str) -> bool {
    ns == "net" || ns == "pid"
}

fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// A config for the request tests: `extra`'s top-level keys replace the
/// base's.
#[cfg(test)]
pub fn test_spec(extra: serde_json::Value) -> Spec {
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/h", "options": ["rbind", "ro"]},
            {"destination": "/data", "type": "none", "source": "/d", "options": ["bind"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                  "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
    });
    if let (Some(base), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    serde_json::from_value(v).expect("spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_mounts_are_the_binds_and_the_cgroup_mount() {
        let spec = test_spec(serde_json::json!({}));
        let want = [
            ("/etc/hosts".to_string(), External::Bind("/h".into())),
            ("/data".to_string(), External::Bind("/d".into())),
            ("/sys/fs/cgroup".to_string(), External::Cgroup),
        ];
        assert_eq!(external_mounts(&spec), want);
        assert_eq!(devices(&spec), ["/dev/fuse"]);
    }

    #[test]
    fn namespaces_by_path_are_named_as_criu_names_them() {
        let spec = test_spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "pid"}, {"type": "network", "path": "/n"}, {"type": "ipc", "path": "/i"}, {"type": "mount", "path": "/m"}
        ]}}));
        let names: Vec<&str> = joined_by_path(&spec).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["net", "ipc", "mnt"]);
        assert_eq!(external_namespaces(&spec), [("net", PathBuf::from("/n"))]);
    }
}
