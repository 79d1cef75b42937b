//! /dev contents and the cgroup filesystem view inside the container.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use libc::{MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT};

use super::{step, InitError};
use crate::mountopts::MountOptions;
use crate::sys;

/// The nodes every container gets, in runc's order (in a user namespace they
/// are bind mounts, and their order shows): name, major, minor.
const DEFAULT_NODES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("random", 1, 8), ("full", 1, 7), ("tty", 5, 0), ("zero", 1, 5), ("urandom", 1, 9)];

/// A directory of the rootfs, opened inside it (`sys::open_in_root`): the
/// nodes and links below are made by name in it (mknodat, symlinkat,
/// unlinkat, fchownat), so a component swapped for a symlink meanwhile (a
/// volume another container writes to) never leads them onto the host.
struct InRoot<'a> {
    root: BorrowedFd<'a>,
    /// Its path inside the rootfs, symlinks resolved (`resolve_in_root`).
    rel: PathBuf,
    fd: OwnedFd,
}

impl<'a> InRoot<'a> {
    /// The directory `path` of the rootfs, made (0755, as runc) if missing.
    fn dir(root: BorrowedFd<'a>, rootfs: &Path, path: &Path) -> Result<InRoot<'a>, InitError> {
        let resolved = super::rootfs::resolve_in_root(rootfs, path)?;
        let rel = super::rootfs::as_in_root(rootfs, &resolved);
        let fd = sys::mkdir_all_in_root(root, &rel).map_err(step(format!("mkdir {}", path.display())))?;
        Ok(InRoot { root, rel, fd })
    }

    /// The directory holding `path` and the name in it.
    fn parent_of(root: BorrowedFd<'a>, rootfs: &Path, path: &Path) -> Result<(InRoot<'a>, OsString), InitError> {
        let name = path.file_name().ok_or_else(|| InitError::Msg(format!("{}: not a file name", path.display())))?;
        let dir = InRoot::dir(root, rootfs, path.parent().unwrap_or(Path::new("/")))?;
        Ok((dir, name.to_os_string()))
    }

    /// `name` removed if the image shipped something there (but a directory).
    fn clear(&self, name: &OsStr) -> Result<(), InitError> {
        sys::remove_non_dir_at(self.fd.as_fd(), name)
            .map_err(step(format!("replace {}", self.rel.join(name).display())))
    }

    fn link(&self, target: &str, name: &str) -> Result<(), InitError> {
        sys::symlink_at(self.fd.as_fd(), target, name)
            .map_err(step(format!("symlink {} -> {target}", self.rel.join(name).display())))
    }

    fn exists(&self, rel: &str) -> bool {
        sys::open_in_root(self.root, &self.rel.join(rel), false).is_ok()
    }
}

/// The nodes every container gets; the config's devices come after them.
pub fn create_default(root: BorrowedFd, rootfs: &Path, in_userns: bool) -> Result<(), InitError> {
    // Inside the rootfs: an image whose /dev is a symlink to a host
    // directory must not get nodes made (or files replaced) on the host.
    let dev = InRoot::dir(root, rootfs, Path::new("/dev"))?;
    for (name, major, minor) in DEFAULT_NODES {
        let name = OsStr::new(name);
        if in_userns {
            bind_node(&dev, name, &Path::new("/dev").join(name))?;
        } else {
            make_node(&dev, name, libc::S_IFCHR, 0o666, (*major, *minor), (0, 0))?;
        }
    }
    Ok(())
}

/// One of the config's devices at `path`: the node, or in a user namespace
/// (where mknod is refused) the host's node bind-mounted, as runc does.
pub fn create(root: BorrowedFd, rootfs: &Path, d: &LinuxDevice, in_userns: bool) -> Result<(), InitError> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(InitError::Msg(format!("linux.devices: {}: type a is not a node", d.path().display())))
        }
    };
    let (dir, name) = InRoot::parent_of(root, rootfs, d.path())?;
    if in_userns {
        return bind_node(&dir, &name, d.path());
    }
    let ids = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
    make_node(&dir, &name, kind, d.file_mode().unwrap_or(0o666), (d.major() as u64, d.minor() as u64), ids)
}

/// The links of /dev, made after the config's devices, in runc's order:
/// /dev/ptmx becomes the link to the container's devpts even where the
/// config lists the host's /dev/ptmx node (a privileged container's device
/// list does); the other links only where no device took the name.
pub fn create_links(root: BorrowedFd, rootfs: &Path) -> Result<(), InitError> {
    let dev = InRoot::dir(root, rootfs, Path::new("/dev"))?;
    let links: &[(&str, &str)] = &[
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    for (target, name) in links {
        dev.link(target, name)?;
    }
    if Path::new("/proc/kcore").exists() {
        dev.link("/proc/kcore", "core")?;
    }
    if dev.exists("pts/ptmx") {
        // Never through a link: what is replaced is /dev/ptmx itself.
        dev.clear(OsStr::new("ptmx"))?;
        dev.link("pts/ptmx", "ptmx")?;
    }
    Ok(())
}

fn make_node(
    dir: &InRoot,
    name: &OsStr,
    kind: libc::mode_t,
    mode: u32,
    (major, minor): (u64, u64),
    (uid, gid): (u32, u32),
) -> Result<(), InitError> {
    let shown = dir.rel.join(name);
    let shown = shown.display();
    // A node shipped in the image may be anything; replace it with the real one.
    dir.clear(name)?;
    sys::mknod_at(dir.fd.as_fd(), name, kind, mode, (major, minor)).map_err(step(format!("mknod {shown}")))?;
    sys::chown_at(dir.fd.as_fd(), name, uid, gid).map_err(step(format!("chown {shown}")))
}

/// The host's device `host` bind-mounted at `name` in `dir` (an empty file
/// made for it): what a user namespace gets instead of mknod.
fn bind_node(dir: &InRoot, name: &OsStr, host: &Path) -> Result<(), InitError> {
    let rel = dir.rel.join(name);
    dir.clear(name)?;
    sys::create_file_at(dir.fd.as_fd(), name).map_err(step(format!("create {}", rel.display())))?;
    let target = sys::open_in_root(dir.root, &rel, false).map_err(step(format!("open {}", rel.display())))?;
    let src = host.to_string_lossy();
    sys::mount(Some(&src), &sys::fd_link(&target), None, MS_BIND, None)
        .map_err(step(format!("bind {src} on {}", rel.display())))
}

/// One cgroup v1 hierarchy as the host mounts it.
struct Hierarchy {
    mount_point: PathBuf,
    root: PathBuf,
    controllers: String,
}

/// Mounts the container's own cgroups read-only at `rel` in the rootfs: a
/// tmpfs holding a bind of the container's directory in each v1 hierarchy
/// (runc's layout), or of its v2 directory. The container never sees the
/// host's other cgroups. Every target is made and opened inside the rootfs
/// and mounted through its fd, as `rootfs::mount_one` does.
pub fn mount_cgroups(root: BorrowedFd, rel: &Path, opts: &MountOptions) -> io::Result<()> {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let ro = opts.flags & MS_RDONLY;
    let keep = opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    let unified =
        parse_hierarchies(&mountinfo, "cgroup2").into_iter().find(|h| h.mount_point == Path::new("/sys/fs/cgroup"));
    if let Some(h) = unified {
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
        return bind(&h.mount_point.join(relative(path, &h.root)), root, rel, ro | keep);
    }
    let target = sys::mkdir_all_in_root(root, rel)?;
    sys::mount(Some("tmpfs"), &sys::fd_link(&target), Some("tmpfs"), keep, Some("mode=755"))?;
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
        bind(&h.mount_point.join(relative(path, &h.root)), root, &rel.join(name), ro | keep)?;
    }
    if ro != 0 {
        // Opened again: the fd above names what lies under the tmpfs.
        let tmpfs = sys::open_in_root(root, rel, true)?;
        sys::mount(None, &sys::fd_link(&tmpfs), None, MS_REMOUNT | MS_RDONLY | keep, Some("mode=755"))?;
    }
    Ok(())
}

fn relative<'a>(path: &'a str, root: &Path) -> &'a str {
    let root = root.to_str().unwrap_or("/");
    path.strip_prefix(root).unwrap_or(path).trim_start_matches('/')
}

/// `src` bound at `rel` in the rootfs (made if missing), then remounted with
/// `flags` through a fresh fd on the new mount.
fn bind(src: &Path, root: BorrowedFd, rel: &Path, flags: u64) -> io::Result<()> {
    let target = sys::mkdir_all_in_root(root, rel)?;
    sys::mount(Some(&src.to_string_lossy()), &sys::fd_link(&target), None, MS_BIND | MS_REC, None)?;
    if flags != 0 {
        let target = sys::open_in_root(root, rel, true)?;
        sys::mount(None, &sys::fd_link(&target), None, MS_BIND | MS_REMOUNT | flags, None)?;
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
