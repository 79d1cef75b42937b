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
    /// An exec's: the namespaces (CLONE_NEW* flags) the init enters through
    /// the container init's pidfd, handed to it at `init::TARGET_PIDFD`:
    /// `setns(pidfd, flags)` joins them all at once, and only while that
    /// very process lives (a /proc/<pid>/ns path would name a stranger's
    /// once the pid is reused). The parent enters its pid namespace the
    /// same way.
    pub join_by_pidfd: i32,
    /// The init unshares a cgroup namespace after the parent placed it in its cgroup.
    pub new_cgroupns: bool,
    pub new_uts: bool,
    pub new_pid: bool,
    /// A new user namespace: the parent writes its id maps, then the init
    /// becomes its root.
    pub new_user: bool,
    /// In a user namespace other than the shim's (new or joined): no mknod.
    pub in_userns: bool,
    /// A new time namespace, with these offsets (timens_offsets lines): the
    /// init unshares it and its exec moves the program into it.
    pub new_time: Option<String>,
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
        // The mount namespace is joined last: after it, paths of the others
        // may no longer resolve. A user namespace first: it owns the others.
        let mut mnt_join = None;
        for ns in namespaces {
            let typ = ns.typ();
            match (typ, ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => plan.join_pid = Some(p.clone()),
                (LinuxNamespaceType::Mount, Some(p)) => mnt_join = Some(p.clone()),
                (LinuxNamespaceType::User, Some(p)) => plan.join.insert(0, (libc::CLONE_NEWUSER, p.clone())),
                (_, Some(p)) => plan.join.push((flag(typ), p.clone())),
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroupns = true,
                (LinuxNamespaceType::Time, None) => plan.new_time = Some(time_offsets(spec)),
                (_, None) => plan.clone_flags |= flag(typ) as u64,
            }
            if ns.path().is_none() {
                plan.new_uts |= typ == LinuxNamespaceType::Uts;
                plan.new_pid |= typ == LinuxNamespaceType::Pid;
                plan.new_user |= typ == LinuxNamespaceType::User;
            }
            plan.in_userns |= typ == LinuxNamespaceType::User;
        }
        if let Some(p) = mnt_join {
            plan.join.push((libc::CLONE_NEWNS, p));
        }
        plan
    }

    /// An exec joins every namespace of the container's init that is not
    /// the shim's own (joining one of those could only fail: once in the
    /// container's user namespace, the host's are out of reach), through
    /// the init's pidfd (see `join_by_pidfd`).
    pub fn for_exec(init_pid: i32) -> NsPlan {
        let theirs = not_ours(init_pid);
        NsPlan {
            join_by_pidfd: theirs.iter().fold(0, |flags, (t, _)| flags | t),
            in_userns: theirs.iter().any(|(t, _)| *t == libc::CLONE_NEWUSER),
            ..NsPlan::default()
        }
    }
}

/// The namespaces of process `pid` that are not the shim's own, user first,
/// mount last (the order to join them by path), pid apart. Which they are
/// is all this tells: `pid` may be anyone's by now, so a caller that joins
/// them checks, after opening, that its pidfd still names a live process.
pub fn not_ours(pid: i32) -> Vec<(i32, PathBuf)> {
    let theirs = |name: &str| PathBuf::from(format!("/proc/{pid}/ns/{name}"));
    let differs = |name: &str| {
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        theirs(name).exists() && !crate::sys::same_file(&theirs(name), &ours)
    };
    let order = [
        (libc::CLONE_NEWUSER, "user"),
        (libc::CLONE_NEWIPC, "ipc"),
        (libc::CLONE_NEWUTS, "uts"),
        (libc::CLONE_NEWNET, "net"),
        (libc::CLONE_NEWCGROUP, "cgroup"),
        (libc::CLONE_NEWTIME, "time"),
        (libc::CLONE_NEWNS, "mnt"),
    ];
    order.iter().filter(|(_, n)| differs(n)).map(|(t, n)| (*t, theirs(n))).collect()
}

fn time_offsets(spec: &Spec) -> String {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref());
    let mut clocks: Vec<_> = offsets.into_iter().flatten().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    clocks
        .iter()
        .map(|(clock, o)| format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)))
        .collect()
}

/// The id maps of a new user namespace, as /proc/PID/{uid,gid}_map take them.
pub struct IdMaps {
    pub uid: String,
    pub gid: String,
}

impl IdMaps {
    pub fn from_spec(spec: &Spec) -> Option<IdMaps> {
        let linux = spec.linux().as_ref()?;
        let text = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            m.iter()
                .flatten()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        };
        Some(IdMaps { uid: text(linux.uid_mappings()), gid: text(linux.gid_mappings()) })
    }

    /// Written by the parent (root in the shim's namespace) before the init
    /// is told to go on; each map file takes one write.
    pub fn write(&self, pid: i32) -> std::io::Result<()> {
        for (file, map) in [("uid_map", &self.uid), ("gid_map", &self.gid)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, map).map_err(|e| std::io::Error::new(e.kind(), format!("write {path}: {e}")))?;
        }
        Ok(())
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
    fn exec_joins_only_namespaces_that_are_not_its_own() {
        // Our own process: every namespace is the shim's, nothing to join.
        let p = NsPlan::for_exec(std::process::id() as i32);
        assert_eq!(p.join_by_pidfd, 0);
        assert!(p.join.is_empty() && p.join_pid.is_none() && !p.in_userns);
        assert_eq!((p.clone_flags, p.new_cgroupns, p.new_uts), (0, false, false));
    }
}
