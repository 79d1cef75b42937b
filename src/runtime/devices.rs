//! /dev contents and the cgroup filesystem view inside the container.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use libc::{MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT};

use super::init::{step, InitError};
use crate::mountopts::MountOptions;
use crate::sys;

/// The nodes every container gets, in runc's order (in a user namespace they
/// are bind mounts, and their order shows): name, major, minor.
const DEFAULT_NODES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("random", 1, 8), ("full", 1, 7), ("tty", 5, 0), ("zero", 1, 5), ("urandom", 1, 9)];

/// The nodes every container gets; the config's devices come after them.
pub fn create_default(rootfs: &Path, in_userns: bool) -> Result<(), InitError> {
    // Resolved inside the rootfs: an image whose /dev is a symlink to a host
    // directory must not get nodes made (or files replaced) on the host.
    let dev = super::rootfs::resolve_in_root(rootfs, Path::new("/dev"))?;
    fs::create_dir_all(&dev).map_err(step("mkdir /dev"))?;
    for (name, major, minor) in DEFAULT_NODES {
        if in_userns {
            bind_node(&dev.join(name), &Path::new("/dev").join(name))?;
        } else {
            make_node(&dev.join(name), libc::S_IFCHR, 0o666, *major, *minor, Some(0), Some(0))?;
        }
    }
    Ok(())
}

/// The links of /dev, made after the config's devices, in runc's order:
/// /dev/ptmx becomes the link to the container's devpts even where the
/// config lists the host's /dev/ptmx node (a privileged container's device
/// list does); the other links only where no device took the name.
pub fn create_links(rootfs: &Path) -> Result<(), InitError> {
    let dev = super::rootfs::resolve_in_root(rootfs, Path::new("/dev"))?;
    let links: &[(&str, &str)] = &[
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    for (target, name) in links {
        link(target, &dev.join(name))?;
    }
    if Path::new("/proc/kcore").exists() {
        link("/proc/kcore", &dev.join("core"))?;
    }
    if dev.join("pts/ptmx").exists() {
        let ptmx = dev.join("ptmx");
        // Never through a link: what is replaced is /dev/ptmx itself.
        if fs::symlink_metadata(&ptmx).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&ptmx).map_err(step(format!("replace {}", ptmx.display())))?;
        }
        link("pts/ptmx", &ptmx)?;
    }
    Ok(())
}

fn link(target: &str, at: &Path) -> Result<(), InitError> {
    match symlink(target, at) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r.map_err(step(format!("symlink {} -> {target}", at.display()))),
    }
}

pub fn make_node(
    path: &Path,
    kind: libc::mode_t,
    mode: u32,
    major: u64,
    minor: u64,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), InitError> {
    let shown = path.display();
    if let Some(parent) = path.parent() {
        mkdir_755(parent)?;
    }
    // A node shipped in the image may be anything; replace it with the real one.
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path).map_err(step(format!("replace {shown}")))?;
    }
    sys::mknod(path, kind, mode & 0o7777, major, minor).map_err(step(format!("mknod {shown}")))?;
    sys::chown(path, uid.unwrap_or(0), gid.unwrap_or(0)).map_err(step(format!("chown {shown}")))
}

/// A device's missing parents, 0755 as runc makes them (the init's umask is 0).
fn mkdir_755(dir: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(step(format!("mkdir {}", dir.display())))
}

/// The host's device `host` bind-mounted at `path` (an empty file made for
/// it): what a user namespace gets instead of mknod.
pub fn bind_node(path: &Path, host: &Path) -> Result<(), InitError> {
    let shown = path.display();
    if let Some(parent) = path.parent() {
        mkdir_755(parent)?;
    }
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path).map_err(step(format!("replace {shown}")))?;
    }
    fs::File::create(path).map_err(step(format!("create {shown}")))?;
    let src = host.to_string_lossy();
    sys::mount(Some(&src), path, None, MS_BIND, None).map_err(step(format!("bind {src} on {shown}")))
}

/// One cgroup v1 hierarchy as the host mounts it.
struct Hierarchy {
    mount_point: PathBuf,
    root: PathBuf,
    controllers: String,
}

/// Mounts the container's own cgroups read-only at `dest`: a tmpfs holding a
/// bind of the container's directory in each v1 hierarchy (runc's layout), or
/// of its v2 directory. The container never sees the host's other cgroups.
pub fn mount_cgroups(dest: &Path, opts: &MountOptions) -> io::Result<()> {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    fs::create_dir_all(dest)?;
    let ro = opts.flags & MS_RDONLY;
    let keep = opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    let unified =
        parse_hierarchies(&mountinfo, "cgroup2").into_iter().find(|h| h.mount_point == Path::new("/sys/fs/cgroup"));
    if let Some(h) = unified {
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
        return bind(&h.mount_point.join(relative(path, &h.root)), dest, ro | keep);
    }
    sys::mount(Some("tmpfs"), dest, Some("tmpfs"), keep, Some("mode=755"))?;
    for h in parse_hierarchies(&mountinfo, "cgroup") {
        let Some(path) = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            (ctrls == h.controllers).then_some(path)
        }) else {
            continue;
        };
        let Some(name) = h.mount_point.file_name() else {
            continue;
        };
        let at = dest.join(name);
        fs::create_dir_all(&at)?;
        bind(&h.mount_point.join(relative(path, &h.root)), &at, ro | keep)?;
    }
    if ro != 0 {
        sys::mount(None, dest, None, MS_REMOUNT | MS_RDONLY | keep, Some("mode=755"))?;
    }
    Ok(())
}

fn relative<'a>(path: &'a str, root: &Path) -> &'a str {
    let root = root.to_str().unwrap_or("/");
    path.strip_prefix(root).unwrap_or(path).trim_start_matches('/')
}

fn bind(src: &Path, dest: &Path, flags: u64) -> io::Result<()> {
    sys::mount(Some(&src.to_string_lossy()), dest, None, MS_BIND | MS_REC, None)?;
    if flags != 0 {
        sys::mount(None, dest, None, MS_BIND | MS_REMOUNT | flags, None)?;
    }
    Ok(())
}

/// Cgroup mounts of `fstype` from mountinfo: mount point, root, and the
/// controller list as /proc/self/cgroup names it.
fn parse_hierarchies(mountinfo: &str, fstype: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mut post = post.split(' ');
            if post.next()? != fstype {
                return None;
            }
            let superopts = post.nth(1).unwrap_or("");
            let pre: Vec<&str> = pre.split(' ').collect();
            let controllers = superopts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro")
                        && !o.contains("xattr")
                        && *o != "nsdelegate"
                        && *o != "memory_recursiveprot"
                })
                .collect::<Vec<_>>()
                .join(",");
            Some(Hierarchy { root: PathBuf::from(pre.get(3)?), mount_point: PathBuf::from(pre.get(4)?), controllers })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime shared:8 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn v1_hierarchies_are_found_with_their_controllers() {
        let h = parse_hierarchies(MOUNTINFO, "cgroup");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(h[0].controllers, "memory");
        assert_eq!(h[1].controllers, "name=systemd");
        assert_eq!(parse_hierarchies(MOUNTINFO, "cgroup2")[0].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn cgroup_paths_are_made_relative_to_the_mount_root() {
        assert_eq!(relative("/default/c1", Path::new("/")), "default/c1");
        assert_eq!(relative("/kubepods/c1", Path::new("/kubepods")), "c1");
    }
}
