//! Which namespaces the container gets and how: created by clone3, joined by
//! path, or (cgroup) unshared by the init once it sits in its cgroup.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NsPlan {
    /// CLONE_NEW* flags for clone3.
    pub clone_flags: u64,
    /// Namespaces the init joins with setns (nstype, path), in this order.
    pub join: Vec<(i32, PathBuf)>,
    /// A pid namespace to join: the parent enters it for its children before clone3.
    pub join_pid: Option<PathBuf>,
    /// The init unshares a cgroup namespace after the parent placed it in its cgroup.
    pub new_cgroupns: bool,
    pub new_uts: bool,
    pub new_pid: bool,
}

fn flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

impl NsPlan {
    pub fn from_spec(spec: &Spec) -> NsPlan {
        let mut plan = NsPlan::default();
        let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
        // The mount namespace is joined last: after it, paths of the others may no longer resolve.
        let mut mnt_join = None;
        for ns in namespaces {
            let typ = ns.typ();
            match (typ, ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => plan.join_pid = Some(p.clone()),
                (LinuxNamespaceType::Mount, Some(p)) => mnt_join = Some(p.clone()),
                (_, Some(p)) => plan.join.push((flag(typ), p.clone())),
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroupns = true,
                (_, None) => plan.clone_flags |= flag(typ) as u64,
            }
            if ns.path().is_none() {
                plan.new_uts |= typ == LinuxNamespaceType::Uts;
                plan.new_pid |= typ == LinuxNamespaceType::Pid;
            }
        }
        if let Some(p) = mnt_join {
            plan.join.push((libc::CLONE_NEWNS, p));
        }
        plan
    }

    /// An exec joins every namespace of the container's init, mount last.
    pub fn for_exec(init_pid: i32) -> NsPlan {
        let ns = |name: &str| PathBuf::from(format!("/proc/{init_pid}/ns/{name}"));
        NsPlan {
            join: vec![
                (libc::CLONE_NEWIPC, ns("ipc")),
                (libc::CLONE_NEWUTS, ns("uts")),
                (libc::CLONE_NEWNET, ns("net")),
                (libc::CLONE_NEWCGROUP, ns("cgroup")),
                (libc::CLONE_NEWNS, ns("mnt")),
            ],
            join_pid: Some(ns("pid")),
            ..NsPlan::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "linux": {"namespaces": ns}
        }))
        .expect("spec")
    }

    #[test]
    fn new_namespaces_become_clone_flags_and_cgroup_waits() {
        let p = NsPlan::from_spec(&spec(serde_json::json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"}, {"type": "uts"}
        ])));
        let want = (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS) as u64;
        assert_eq!(p.clone_flags, want);
        assert!(p.new_cgroupns && p.new_uts && p.new_pid);
        assert!(p.join.is_empty() && p.join_pid.is_none());
    }

    #[test]
    fn paths_are_joined_with_mount_last_and_pid_by_the_parent() {
        let p = NsPlan::from_spec(&spec(serde_json::json!([
            {"type": "mount", "path": "/proc/1/ns/mnt"},
            {"type": "network", "path": "/var/run/netns/x"},
            {"type": "pid", "path": "/proc/9/ns/pid"}
        ])));
        assert_eq!(p.clone_flags, 0);
        assert_eq!(p.join_pid, Some(PathBuf::from("/proc/9/ns/pid")));
        assert_eq!(
            p.join,
            vec![
                (libc::CLONE_NEWNET, PathBuf::from("/var/run/netns/x")),
                (libc::CLONE_NEWNS, PathBuf::from("/proc/1/ns/mnt"))
            ]
        );
        assert!(!p.new_pid);
    }

    #[test]
    fn exec_joins_all_of_the_inits_namespaces_mount_last() {
        let p = NsPlan::for_exec(42);
        assert_eq!(p.join_pid, Some(PathBuf::from("/proc/42/ns/pid")));
        assert_eq!(p.join.last(), Some(&(libc::CLONE_NEWNS, PathBuf::from("/proc/42/ns/mnt"))));
        assert_eq!((p.clone_flags, p.new_cgroupns, p.new_uts), (0, false, false));
    }
}
