//! The restore request for a checkpoint made by `dump`: the same mounts
//! named external, now mapped to what the new container has on the host,
//! and its stdio pipes handed in where descriptors.json says the dumped
//! init had pipes. No I/O here.

use std::path::PathBuf;

use oci_spec::runtime::Spec;
use rust_criu::rust_criu_protobuf::rpc;

use super::config::{self, External};

/// The log CRIU writes in its work directory.
pub const LOG: &str = "restore.log";

/// What the caller read from the host and the images.
pub struct Facts {
    /// This process's fds of the image and work directories.
    pub images_fd: i32,
    pub work_fd: i32,
    /// The new container's rootfs as the host sees it.
    pub root: PathBuf,
    /// The new container's cgroup directory (its cgroup mount's source).
    pub cgroup_dir: PathBuf,
    /// descriptors.json: what the dumped init's fds 0-2 were.
    pub descriptors: Vec<String>,
    /// The namespaces the new container joins by path, in the order their
    /// fds are handed to criu (CRIU's names: "net", "pid").
    pub joined: Vec<&'static str>,
}

/// The RESTORE request: the restored init a child of the caller
/// (`rst_sibling`), notifications on (the caller learns its pid before
/// it runs).
pub fn request(spec: &Spec, facts: &Facts) -> rpc::Criu_req {
    let mut o = super::options(facts.images_fd, facts.work_fd, &facts.root, LOG);
    o.set_rst_sibling(true);
    o.set_notify_scripts(true);
    // Each to what the new container has on the host there.
    let host = |what: External| match what {
        External::Bind(source) => source,
        External::Cgroup => facts.cgroup_dir.clone(),
    };
    let mut external: Vec<(String, String)> = config::external_mounts(spec)
        .into_iter()
        .map(|(dest, what)| (dest, host(what).to_string_lossy().into_owned()))
        .collect();
    // The masked files were dumped as bound over by "/dev/null".
    external.push(("/dev/null".into(), "/dev/null".into()));
    external.extend(config::devices(spec).into_iter().map(|p| (p.clone(), p)));
    for (fd, what) in facts.descriptors.iter().enumerate().take(3) {
        if what.starts_with("pipe:") {
            let mut i = rpc::Inherit_fd::new();
            i.set_key(what.clone());
            i.set_fd(fd as i32);
            o.inherit_fd.push(i);
        }
    }
    // The other namespaces the new config joins, joined by CRIU as runc
    // asks it (the cgroup's is refused before: CRIU cannot).
    for (name, path) in config::joined_by_path(spec).into_iter().filter(|(n, _)| !config::is_external(n)) {
        let mut j = rpc::Join_namespace::new();
        j.set_ns(name.into());
        j.set_ns_file(path.to_string_lossy().into_owned());
        o.join_ns.push(j);
    }
    // The dump named them external by these keys: the new ones are
    // handed in under the same.
    for (i, kind) in facts.joined.iter().enumerate() {
        let mut f = rpc::Inherit_fd::new();
        f.set_key(rust_criu::criu_ns_to_key(kind));
        f.set_fd(super::FIRST_HANDED_FD + i as i32);
        o.inherit_fd.push(f);
    }
    super::request(rpc::Criu_req_type::RESTORE, o, external)
}

/// Why a config cannot be restored into, if so: checked before anything
/// is made.
pub fn refusal(spec: &Spec) -> Option<&'static str> {
    let joins_cgroup = config::joined_by_path(spec).iter().any(|(name, _)| *name == "cgroup");
    joins_cgroup.then_some("CRIU cannot restore into a cgroup namespace joined by path")
}

/// Names `cgroup` as the root the dumped cgroup is restored under (a new
/// container's is not the dumped one's): CRIU's default root, as it
/// applies to every controller.
pub fn set_cgroup_root(req: &mut rpc::Criu_req, cgroup: &str) {
    let mut root = rpc::Cgroup_root::new();
    root.set_path(cgroup.to_string());
    req.opts.mut_or_insert_default().cg_root.push(root);
}

/// The cgroup criu is in, from its /proc/<pid>/cgroup after the caller
/// moved it into the container's: the freezer's where v1 hierarchies are
/// used (this runtime's cgroup has one path in each), else v2's one line.
pub fn cgroup_of(proc_cgroup: &str) -> Option<&str> {
    let lines = proc_cgroup.lines().filter_map(|l| {
        let mut f = l.splitn(3, ':');
        Some((f.next()?, f.next()?, f.next()?))
    });
    let mut unified = None;
    for (_, controllers, path) in lines {
        if controllers.split(',').any(|c| c == "freezer") {
            return Some(path);
        }
        if controllers.is_empty() {
            unified = Some(path);
        }
    }
    unified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_root_is_the_v1_freezers_else_the_unified_one() {
        let v2 = "0::/system.slice/myshim-ns-c2.scope\n";
        assert_eq!(cgroup_of(v2), Some("/system.slice/myshim-ns-c2.scope"));
        let hybrid = "12:cpu,cpuacct:/ns/c2\n7:freezer:/ns/c2\n1:name=systemd:/init.scope\n0::/\n";
        assert_eq!(cgroup_of(hybrid), Some("/ns/c2"));
        assert_eq!(cgroup_of("garbage"), None);
        let mut req = rpc::Criu_req::new();
        set_cgroup_root(&mut req, "/ns/c2");
        let roots: Vec<(Option<&str>, &str)> = req.opts.cg_root.iter().map(|r| (r.ctrl.as_deref(), r.path())).collect();
        assert_eq!(roots, [(None, "/ns/c2")]);
    }

    #[test]
    fn the_restore_maps_each_external_mount_to_the_new_containers_and_hands_in_its_pipes() {
        let spec = crate::runtime::criu::config::test_spec(serde_json::json!({
            "linux": {"namespaces": [{"type": "ipc", "path": "/proc/9/ns/ipc"}, {"type": "network", "path": "/n"}]}
        }));
        let facts = Facts {
            images_fd: 7,
            work_fd: 8,
            root: PathBuf::from("/run/b/rootfs"),
            cgroup_dir: PathBuf::from("/sys/fs/cgroup/ns/c2"),
            descriptors: vec!["/dev/null".into(), "pipe:[123]".into(), "pipe:[124]".into()],
            joined: vec!["net"],
        };
        let req = request(&spec, &facts);
        assert_eq!(req.type_(), rpc::Criu_req_type::RESTORE);
        let o = req.opts.as_ref().expect("opts");
        assert!(o.rst_sibling() && o.notify_scripts() && o.manage_cgroups() && o.orphan_pts_master());
        assert_eq!((o.images_dir_fd(), o.work_dir_fd(), o.root()), (7, 8, "/run/b/rootfs"));
        let ext: Vec<(&str, &str)> = o.ext_mnt.iter().map(|m| (m.key(), m.val())).collect();
        assert_eq!(
            ext,
            [
                ("/etc/hosts", "/h"),
                ("/data", "/d"),
                ("/sys/fs/cgroup", "/sys/fs/cgroup/ns/c2"),
                ("/dev/null", "/dev/null")
            ]
        );
        let fds: Vec<(&str, i32)> = o.inherit_fd.iter().map(|i| (i.key(), i.fd())).collect();
        assert_eq!(fds, [("pipe:[123]", 1), ("pipe:[124]", 2), ("extRootNetNS", 4)]);
        let joins: Vec<(&str, &str)> = o.join_ns.iter().map(|j| (j.ns(), j.ns_file())).collect();
        assert_eq!(joins, [("ipc", "/proc/9/ns/ipc")], "net is handed in, not joined");
        assert_eq!(refusal(&spec), None);
        let mut cg = spec.clone();
        let ns = oci_spec::runtime::LinuxNamespaceBuilder::default()
            .typ(oci_spec::runtime::LinuxNamespaceType::Cgroup)
            .path("/proc/9/ns/cgroup")
            .build()
            .expect("ns");
        cg.linux_mut().as_mut().expect("linux").set_namespaces(Some(vec![ns]));
        assert!(refusal(&cg).is_some_and(|r| r.contains("cgroup namespace")));
    }
}
