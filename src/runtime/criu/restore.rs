//! The restore request for a checkpoint made by `dump`: the same mounts
//! named external, now mapped to what the new container has on the host,
//! and its stdio pipes handed in where descriptors.json says the dumped
//! init had pipes. No I/O here.

use std::path::PathBuf;

use oci_spec::runtime::Spec;
use rust_criu::rust_criu_protobuf::rpc;

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
}

/// The RESTORE request: the restored init a child of the caller
/// (`rst_sibling`), notifications on (the caller learns its pid before
/// it runs).
pub fn request(spec: &Spec, facts: &Facts) -> rpc::Criu_req {
    let mut o = rpc::Criu_opts::new();
    o.set_images_dir_fd(facts.images_fd);
    o.set_work_dir_fd(facts.work_fd);
    o.set_log_file(LOG.into());
    o.set_log_level(4);
    o.set_root(facts.root.to_string_lossy().into_owned());
    o.set_rst_sibling(true);
    o.set_manage_cgroups(true);
    o.set_notify_scripts(true);
    let mut external: Vec<(String, String)> = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let typ = m.typ().as_deref().unwrap_or_default();
        let opts = m.options().clone().unwrap_or_default();
        let dest = m.destination().to_string_lossy().into_owned();
        if typ == "cgroup" || typ == "cgroup2" {
            external.push((dest, facts.cgroup_dir.to_string_lossy().into_owned()));
        } else if typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind") {
            let source = m.source().as_ref().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            external.push((dest, source));
        }
    }
    // The masked files were dumped as bound over by "/dev/null".
    external.push(("/dev/null".into(), "/dev/null".into()));
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default();
    external.extend(devices.iter().map(|d| d.path().to_string_lossy().into_owned()).map(|p| (p.clone(), p)));
    for (fd, what) in facts.descriptors.iter().enumerate().take(3) {
        if what.starts_with("pipe:") {
            let mut i = rpc::Inherit_fd::new();
            i.set_key(what.clone());
            i.set_fd(fd as i32);
            o.inherit_fd.push(i);
        }
    }
    super::request(rpc::Criu_req_type::RESTORE, o, external)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_maps_each_external_mount_to_the_new_containers_and_hands_in_its_pipes() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/h", "options": ["rbind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ]
        }))
        .expect("spec");
        let facts = Facts {
            images_fd: 7,
            work_fd: 8,
            root: PathBuf::from("/run/b/rootfs"),
            cgroup_dir: PathBuf::from("/sys/fs/cgroup/ns/c2"),
            descriptors: vec!["/dev/null".into(), "pipe:[123]".into(), "pipe:[124]".into()],
        };
        let req = request(&spec, &facts);
        assert_eq!(req.type_(), rpc::Criu_req_type::RESTORE);
        let o = req.opts.as_ref().expect("opts");
        assert!(o.rst_sibling() && o.notify_scripts() && o.manage_cgroups());
        assert_eq!((o.images_dir_fd(), o.work_dir_fd(), o.root()), (7, 8, "/run/b/rootfs"));
        let ext: Vec<(&str, &str)> = o.ext_mnt.iter().map(|m| (m.key(), m.val())).collect();
        assert_eq!(ext, [("/etc/hosts", "/h"), ("/sys/fs/cgroup", "/sys/fs/cgroup/ns/c2"), ("/dev/null", "/dev/null")]);
        let fds: Vec<(&str, i32)> = o.inherit_fd.iter().map(|i| (i.key(), i.fd())).collect();
        assert_eq!(fds, [("pipe:[123]", 1), ("pipe:[124]", 2)]);
    }
}
