//! The dump request for one container: what CRIU must be told so that the
//! container's tree, as this runtime built it, can be dumped (and later
//! restored), from the config, the checkpoint options and a few facts the
//! caller read from the host. No I/O here.

use std::path::PathBuf;

use containerd_shim_protos::shim::oci::CheckpointOptions;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rust_criu::rust_criu_protobuf::rpc;

use super::config;

/// The log CRIU writes in its work directory.
pub const LOG: &str = "dump.log";

/// What the caller read from the host for the request.
pub struct Facts {
    /// The container's init.
    pub pid: i32,
    /// This process's fds of the image and work directories.
    pub images_fd: i32,
    pub work_fd: i32,
    /// Its rootfs as the host sees it.
    pub root: PathBuf,
    /// The cgroup directory whose freezer holds the container.
    pub freezer: PathBuf,
    /// Masked paths that are files in the container (a /dev/null bound over
    /// each): CRIU must be told they are external.
    pub masked_files: Vec<String>,
    /// Namespaces the container joined by path, with the inode of each:
    /// (CRIU's name for the kind, inode).
    pub joined: Vec<(&'static str, u64)>,
}

/// Why a container of this config cannot be checkpointed by myshim, if
/// so (`check` says it too).
pub fn unsupported(spec: &Spec) -> Option<&'static str> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    if namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User) {
        return Some("a container in a user namespace cannot be checkpointed by myshim");
    }
    None
}

/// Refusals that need no CRIU: said before anything is frozen.
pub fn refusal(spec: &Spec, opts: &CheckpointOptions) -> Option<String> {
    if let Some(why) = unsupported(spec) {
        return Some(why.into());
    }
    if let Some(other) = opts.empty_namespaces.iter().find(|n| n.as_str() != "network") {
        return Some(format!("empty namespace {other:?}: only \"network\" can be left empty"));
    }
    if cgroups_mode(&opts.cgroups_mode).is_err() {
        return Some(format!("cgroups mode {:?} (known: soft, full, strict, ignore)", opts.cgroups_mode));
    }
    None
}

fn cgroups_mode(mode: &str) -> Result<Option<rpc::Criu_cg_mode>, ()> {
    Ok(Some(match mode {
        "" => return Ok(None),
        "soft" => rpc::Criu_cg_mode::SOFT,
        "full" => rpc::Criu_cg_mode::FULL,
        "strict" => rpc::Criu_cg_mode::STRICT,
        "ignore" => rpc::Criu_cg_mode::IGNORE,
        _ => return Err(()),
    }))
}

/// The DUMP request (runc's choices where containerd's options are silent).
pub fn request(spec: &Spec, opts: &CheckpointOptions, facts: &Facts) -> rpc::Criu_req {
    let mut o = super::options(facts.images_fd, facts.work_fd, &facts.root, LOG);
    o.set_pid(facts.pid);
    o.set_freeze_cgroup(facts.freezer.to_string_lossy().into_owned());
    o.set_leave_running(!opts.exit);
    o.set_tcp_established(opts.open_tcp);
    o.set_ext_unix_sk(opts.external_unix_sockets);
    o.set_shell_job(opts.terminal);
    o.set_file_locks(opts.file_locks);
    if let Ok(Some(mode)) = cgroups_mode(&opts.cgroups_mode) {
        o.set_manage_cgroups_mode(mode);
    }
    o.set_notify_scripts(false);
    // As runc: the network's devices are not the runtime's to dump (CNI
    // makes them again), so its namespace is restored empty.
    o.set_empty_ns(libc::CLONE_NEWNET as u32);
    for (kind, inode) in &facts.joined {
        o.external.push(format!("{kind}[{inode}]:{}", rust_criu::criu_ns_to_key(kind)));
    }
    // Each named by its destination; a restore maps it to the new source.
    let mut external: Vec<(String, String)> =
        config::external_mounts(spec).into_iter().map(|(dest, _)| (dest.clone(), dest)).collect();
    external.extend(facts.masked_files.iter().map(|p| (p.clone(), "/dev/null".to_string())));
    external.extend(config::devices(spec).into_iter().map(|p| (p.clone(), p)));
    super::request(rpc::Criu_req_type::DUMP, o, external)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::criu::config::test_spec as spec;

    fn facts() -> Facts {
        Facts {
            pid: 42,
            images_fd: 14,
            work_fd: 15,
            root: PathBuf::from("/run/b/rootfs"),
            freezer: PathBuf::from("/sys/fs/cgroup/ns/c1"),
            masked_files: vec!["/proc/kcore".into()],
            joined: vec![("net", 4026532000)],
        }
    }

    #[test]
    fn the_dump_names_the_tree_its_root_and_every_external_mount() {
        let req = request(&spec(serde_json::json!({})), &CheckpointOptions::default(), &facts());
        assert_eq!(req.type_(), rpc::Criu_req_type::DUMP);
        let o = req.opts.as_ref().expect("opts");
        assert_eq!((o.pid(), o.root(), o.images_dir_fd(), o.work_dir_fd()), (42, "/run/b/rootfs", 14, 15));
        assert!(o.leave_running(), "left running unless told to exit");
        assert!(o.manage_cgroups() && o.orphan_pts_master() && !o.shell_job());
        assert_eq!(o.freeze_cgroup(), "/sys/fs/cgroup/ns/c1");
        assert_eq!(o.empty_ns(), libc::CLONE_NEWNET as u32);
        assert_eq!(o.external, ["net[4026532000]:extRootNetNS"]);
        let ext: Vec<(&str, &str)> = o.ext_mnt.iter().map(|m| (m.key(), m.val())).collect();
        assert_eq!(
            ext,
            [
                ("/etc/hosts", "/etc/hosts"),
                ("/data", "/data"),
                ("/sys/fs/cgroup", "/sys/fs/cgroup"),
                ("/proc/kcore", "/dev/null"),
                ("/dev/fuse", "/dev/fuse")
            ]
        );
    }

    #[test]
    fn the_options_become_criu_flags() {
        let opts = CheckpointOptions {
            exit: true,
            open_tcp: true,
            external_unix_sockets: true,
            terminal: true,
            file_locks: true,
            cgroups_mode: "strict".into(),
            ..Default::default()
        };
        let req = request(&spec(serde_json::json!({})), &opts, &facts());
        let o = req.opts.as_ref().expect("opts");
        assert!(!o.leave_running() && o.tcp_established() && o.ext_unix_sk() && o.shell_job() && o.file_locks());
        assert_eq!(o.manage_cgroups_mode(), rpc::Criu_cg_mode::STRICT);
    }

    #[test]
    fn what_cannot_be_dumped_is_refused_before_criu_runs() {
        let userns = spec(serde_json::json!({"linux": {"namespaces": [{"type": "user"}]}}));
        assert!(refusal(&userns, &CheckpointOptions::default()).expect("refused").contains("user namespace"));
        let plain = spec(serde_json::json!({}));
        let ipc = CheckpointOptions { empty_namespaces: vec!["ipc".into()], ..Default::default() };
        assert!(refusal(&plain, &ipc).expect("refused").contains("\"ipc\""));
        let net = CheckpointOptions { empty_namespaces: vec!["network".into()], ..Default::default() };
        assert_eq!(refusal(&plain, &net), None);
        let mode = CheckpointOptions { cgroups_mode: "loose".into(), ..Default::default() };
        assert!(refusal(&plain, &mode).expect("refused").contains("\"loose\""));
    }
}
