//! What the adapter does itself on v1 hierarchies, found by one pass over
//! mountinfo: the directories, the device rules (the only limits most
//! configs carry), listing and removal. libcgroups' v1 manager finds each
//! controller's hierarchy by reading mountinfo and /proc/self/cgroup through
//! a private procfs of its own, twelve times over: ~2 ms of CPU per manager,
//! measured here, paid by Create and again by containerd's `delete` after
//! every container. It is made only for the limits it alone applies.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use oci_spec::runtime::LinuxDeviceCgroup;

/// The v1 controllers libcgroups manages (rdma, misc and named hierarchies
/// are not among them: a directory made there would never be removed).
const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Controller name -> the mount point of its hierarchy.
pub type V1Mounts = HashMap<String, PathBuf>;

/// The v1 hierarchies' mount points, read once from one pass over
/// mountinfo: they do not move while a shim lives. (libcgroups' own lookup
/// opens procfs twice per controller: ~1.3 ms per Create, measured.)
pub fn v1_mounts() -> Result<&'static V1Mounts, String> {
    static MOUNTS: OnceLock<V1Mounts> = OnceLock::new();
    if let Some(m) = MOUNTS.get() {
        return Ok(m);
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    Ok(MOUNTS.get_or_init(|| parse_v1_mounts(&info)))
}

/// mountinfo: `id parent dev root mountpoint opts [optional...] - fstype source superopts`.
/// The first mount of each controller wins, as in libcgroups.
pub fn parse_v1_mounts(mountinfo: &str) -> V1Mounts {
    let mut out = V1Mounts::new();
    for line in mountinfo.lines() {
        let Some((head, tail)) = line.split_once(" - ") else { continue };
        let mut tail = tail.split(' ');
        let (Some("cgroup"), Some(_), Some(superopts)) = (tail.next(), tail.next(), tail.next()) else { continue };
        let Some(mount_point) = head.split(' ').nth(4) else { continue };
        for opt in superopts.split(',').filter(|o| V1_CONTROLLERS.contains(o)) {
            out.entry(opt.to_string()).or_insert_with(|| PathBuf::from(mount_point));
        }
    }
    out
}

/// The directory of `path` in each v1 hierarchy libcgroups manages, once
/// per hierarchy (co-mounted controllers share one).
pub fn v1_dirs(mounts: &V1Mounts, path: &Path) -> Vec<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let unique: BTreeSet<PathBuf> = mounts.values().map(|m| m.join(rel)).collect();
    unique.into_iter().collect()
}

pub fn v1_stats(mounts: &V1Mounts, path: &Path) -> Result<libcgroups::stats::Stats, String> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    super::read::v1_stats(|controller| mounts.get(controller).map(|m| m.join(rel)))
}

/// A v1 cpuset cgroup takes no task until cpus and mems are set: each
/// directory from the hierarchy root down to `path` inherits its parent's.
pub fn fill_cpuset(mount: &Path, path: &Path) -> std::io::Result<()> {
    let mut dir = mount.to_path_buf();
    for part in path.strip_prefix("/").unwrap_or(path).components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if std::fs::read_to_string(dir.join(file))?.trim().is_empty() {
                std::fs::write(dir.join(file), std::fs::read_to_string(parent.join(file))?.trim())?;
            }
        }
    }
    Ok(())
}

/// Writes the rules, in order, to the hierarchy's devices.allow/deny.
pub fn write_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> io::Result<()> {
    for (file, rule) in device_writes(rules) {
        let path = dir.join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, rule.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {rule}: {e}", path.display())))?;
    }
    Ok(())
}

/// Each rule as the kernel takes it, and the file it goes to.
fn device_writes(rules: &[LinuxDeviceCgroup]) -> Vec<(&'static str, String)> {
    rules.iter().map(|r| (if r.allow() { "devices.allow" } else { "devices.deny" }, r.to_string())).collect()
}

/// The processes of the cgroup at `dir` and of the cgroups below it.
pub fn pids(dir: &Path) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let procs = d.join("cgroup.procs");
        let text = std::fs::read_to_string(&procs)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
        for line in text.lines() {
            let pid =
                line.trim().parse().map_err(|e| io::Error::other(format!("{}: {line:?}: {e}", procs.display())))?;
            out.push(pid);
        }
        for entry in std::fs::read_dir(&d)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Removes the directories; an empty cgroup can still be busy for a moment
/// after its last process exited, so each is retried a few times.
pub fn remove(dirs: &[PathBuf]) -> io::Result<()> {
    for dir in dirs {
        let mut delay = Duration::from_millis(5);
        for attempt in 0.. {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if attempt == 5 => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
                Err(_) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hierarchies_come_from_mountinfo_once_per_hierarchy() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/rdma rw,relatime - cgroup cgroup rw,rdma
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 23 0:32 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
";
        let mounts = parse_v1_mounts(info);
        let mut names: Vec<&str> = mounts.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["cpu", "cpuacct", "memory"]);
        assert_eq!(mounts["memory"], PathBuf::from("/sys/fs/cgroup/memory"), "the first mount wins");
        assert_eq!(
            v1_dirs(&mounts, Path::new("/ns/c1")),
            [PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ns/c1"), PathBuf::from("/sys/fs/cgroup/memory/ns/c1")]
        );
    }

    #[test]
    fn cpuset_directories_inherit_cpus_and_mems_down_the_path() {
        let root = crate::scratch_dir("cpuset");
        std::fs::create_dir_all(root.join("ns/c1")).expect("mkdir");
        std::fs::write(root.join("cpuset.cpus"), "0-1\n").expect("root cpus");
        std::fs::write(root.join("cpuset.mems"), "0\n").expect("root mems");
        std::fs::write(root.join("ns/cpuset.cpus"), "1\n").expect("set cpus");
        for f in ["ns/cpuset.mems", "ns/c1/cpuset.cpus", "ns/c1/cpuset.mems"] {
            std::fs::write(root.join(f), "\n").expect("empty");
        }
        fill_cpuset(&root, Path::new("/ns/c1")).expect("fill");
        let read = |f: &str| std::fs::read_to_string(root.join(f)).expect("read");
        assert_eq!(read("ns/cpuset.cpus").trim(), "1", "a value already set stays");
        assert_eq!(read("ns/cpuset.mems"), "0");
        assert_eq!(read("ns/c1/cpuset.cpus"), "1");
        assert_eq!(read("ns/c1/cpuset.mems"), "0");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn device_rules_go_to_allow_or_deny_in_order() {
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}
        ]}))
        .expect("resources");
        let rules = super::super::with_default_devices(&r).devices().clone().expect("rules");
        let writes = device_writes(&rules);
        assert_eq!(writes[0], ("devices.deny", "a *:* rwm".to_string()));
        assert_eq!(writes[1], ("devices.allow", "c 10:200 rw".to_string()));
        assert_eq!(writes[2], ("devices.allow", "c *:* m".to_string()));
        assert!(writes.contains(&("devices.allow", "c 1:3 rwm".to_string())));
        assert!(writes.contains(&("devices.allow", "c 136:* rwm".to_string())));
        assert!(writes[1..].iter().all(|(f, _)| *f == "devices.allow"));
    }

    #[test]
    fn pids_include_nested_cgroups_and_removal_takes_what_is_there() {
        let root = crate::scratch_dir("v1-pids");
        std::fs::create_dir_all(root.join("c1/sub")).expect("mkdir");
        std::fs::write(root.join("c1/cgroup.procs"), "12\n34\n").expect("procs");
        std::fs::write(root.join("c1/sub/cgroup.procs"), "56\n").expect("procs");
        let mut got = pids(&root.join("c1")).expect("pids");
        got.sort_unstable();
        assert_eq!(got, [12, 34, 56]);
        std::fs::write(root.join("c1/sub/cgroup.procs"), "x\n").expect("procs");
        assert!(pids(&root.join("c1")).expect_err("garbled").to_string().contains("cgroup.procs"));
        std::fs::remove_dir_all(root.join("c1")).expect("empty it");
        std::fs::create_dir_all(root.join("c2")).expect("mkdir");
        remove(&[root.join("c1"), root.join("c2")]).expect("a missing one is fine");
        assert!(!root.join("c2").exists());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
