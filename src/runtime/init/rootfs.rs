//! The container's filesystem, built inside its mount namespace by the init:
//! propagation, the config's mounts, /dev, pivot_root (`prepare`); masked and
//! read-only paths (`finish`). Every destination is resolved inside the rootfs (symlinks and `..`
//! cannot leave it).

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};

use libc::{MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SLAVE};
use oci_spec::runtime::{Mount, Spec};

use super::{step, InitError};
use crate::{mountopts, sys};

/// Resolves `unsafe_path` as if `root` were `/`: `..` stops at the root and
/// symlinks (absolute or relative) are followed inside it, never out of it.
pub fn resolve_in_root(root: &Path, unsafe_path: &Path) -> Result<PathBuf, InitError> {
    let mut done: Vec<OsString> = Vec::new();
    let mut todo: Vec<OsString> = components(unsafe_path);
    todo.reverse();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str())
            .chain(done.iter().map(|c| c.as_os_str()))
            .collect::<PathBuf>()
            .join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(InitError::Msg(format!("resolve {}: too many symlinks", unsafe_path.display())));
                }
                let target = fs::read_link(&candidate).map_err(step(format!("readlink {}", candidate.display())))?;
                if target.is_absolute() {
                    done.clear();
                }
                todo.extend(components(&target).into_iter().rev());
            }
            _ => done.push(part),
        }
    }
    Ok(done.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// A path `resolve_in_root` returned, as seen from inside the rootfs: what
/// the *_in_root calls open under the rootfs's fd.
pub fn as_in_root(rootfs: &Path, resolved: &Path) -> PathBuf {
    Path::new("/").join(resolved.strip_prefix(rootfs).unwrap_or(resolved))
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// `before_pivot` runs once the mounts and /dev exist (the Create hooks).
/// In a user namespace (`in_userns`) device nodes cannot be made: the
/// host's are bind-mounted instead, as runc does.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    in_userns: bool,
    before_pivot: &mut dyn FnMut() -> Result<(), InitError>,
) -> Result<(), InitError> {
    let linux = spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mountopts::propagation)
        .unwrap_or(MS_SLAVE | MS_REC);
    sys::mount(None, Path::new("/"), None, propagation, None).map_err(step("set propagation of /"))?;
    // pivot_root refuses a new root whose parent mount is shared (as it is
    // under rootfsPropagation "rshared", which CRI sets for a bidirectional
    // mount); that mount is this namespace's copy, so it may be made private.
    make_parent_mount_private(rootfs)?;
    // pivot_root needs the new root to be a mount point.
    sys::mount(Some(&rootfs.to_string_lossy()), rootfs, Some("bind"), MS_BIND | MS_REC, None)
        .map_err(step(format!("bind rootfs {}", rootfs.display())))?;
    let mounts = spec.mounts().clone().unwrap_or_default();
    // Opened once the rootfs is its own mount: every destination is made
    // and opened through it, never walked by path again.
    let root = fs::File::open(rootfs).map_err(step(format!("open rootfs {}", rootfs.display())))?;
    for m in &mounts {
        mount_one(&root, rootfs, m)?;
    }
    let dev_from_host = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev") && mountopts::parse(m.options().as_deref().unwrap_or_default()).is_bind()
    });
    let root_fd = root.as_fd();
    if !dev_from_host {
        super::devices::create_default(root_fd, rootfs, in_userns)?;
    }
    for d in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten() {
        super::devices::create(root_fd, rootfs, d, in_userns)?;
    }
    if !dev_from_host {
        super::devices::create_links(root_fd, rootfs)?;
    }
    before_pivot()?;
    pivot(rootfs)
}

/// The mount holding `rootfs` (often containerd's snapshot mounted right
/// there), made private if shared: the bind of it that becomes the new root
/// is then private too.
fn make_parent_mount_private(rootfs: &Path) -> Result<(), InitError> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(step("read mountinfo"))?;
    let parent = rootfs;
    let holder = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = Path::new(f.get(4)?);
            let shared = f.iter().skip(6).take_while(|o| **o != "-").any(|o| o.starts_with("shared:"));
            parent.starts_with(point).then_some((point.to_path_buf(), shared))
        })
        .max_by_key(|(p, _)| p.as_os_str().len());
    if let Some((point, true)) = holder {
        sys::mount(None, &point, None, libc::MS_PRIVATE, None)
            .map_err(step(format!("make {} private", point.display())))?;
    }
    Ok(())
}

/// After pivot_root (and the sysctls): read-only, then masked paths, then
/// the root itself read-only. Each path is opened inside the new root
/// (openat2 RESOLVE_IN_ROOT) and mounted over through that fd, never walked
/// again by path.
pub fn finish(spec: &Spec) -> Result<(), InitError> {
    if let Some(l) = spec.linux() {
        let root = fs::File::open("/").map_err(step("open /"))?;
        // runc's order, so a path in both lists ends up the same way.
        for p in l.readonly_paths().iter().flatten() {
            readonly(root.as_fd(), Path::new(p))?;
        }
        for p in l.masked_paths().iter().flatten() {
            mask(root.as_fd(), Path::new(p))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_ro(Path::new("/"), false).map_err(step("remount / read-only"))?;
    }
    Ok(())
}

/// One of the config's mounts. The destination is created and opened inside
/// the rootfs through `root` (openat2 RESOLVE_IN_ROOT, mkdirat in parents
/// opened so), and the mount made onto that fd's /proc/self/fd link: a directory
/// swapped for a symlink between the check and the mount (a volume another
/// container writes to; the CVE-2021-30465 class) can only ever lead back
/// inside the rootfs.
fn mount_one(root: &fs::File, rootfs: &Path, m: &Mount) -> Result<(), InitError> {
    use std::os::fd::AsFd;
    let dest = resolve_in_root(rootfs, m.destination())?;
    let shown = m.destination().display();
    // What the destination resolved to (no symlink left in it, unless one
    // was swapped in since), made and opened through the rootfs's fd.
    let rel = as_in_root(rootfs, &dest);
    let root = root.as_fd();
    let in_root = |e: std::io::Error| InitError::Msg(format!("mount {shown}: {e}"));
    let typ = m.typ().as_deref().unwrap_or("none");
    let opts = mountopts::parse(m.options().as_deref().unwrap_or_default());
    if typ == "proc" || typ == "sysfs" {
        real_directory(rootfs, m.destination(), &dest)
            .map_err(|why| InitError::Msg(format!("mount {typ} on {shown}: {why}")))?;
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return super::devices::mount_cgroups(root, &rel, &opts).map_err(step(format!("mount cgroup on {shown}")));
    }
    if opts.is_bind() {
        let source =
            m.source().as_ref().ok_or_else(|| InitError::Msg(format!("mount {shown}: bind mount without a source")))?;
        let md = fs::metadata(source).map_err(step(format!("mount {shown}: source {}", source.display())))?;
        let target = if md.is_dir() {
            sys::mkdir_all_in_root(root, &rel).map_err(in_root)?
        } else {
            let parent = sys::mkdir_all_in_root(root, rel.parent().unwrap_or(Path::new("/"))).map_err(in_root)?;
            if let Some(name) = rel.file_name() {
                sys::create_file_at(parent.as_fd(), name).map_err(in_root)?;
            }
            sys::open_in_root(root, &rel, false).map_err(in_root)?
        };
        let src = source.to_string_lossy();
        sys::mount(Some(&src), &sys::fd_link(&target), None, opts.flags & (MS_BIND | MS_REC), None)
            .map_err(step(format!("bind {src} on {shown}")))?;
        let extra = opts.flags & !(MS_BIND | MS_REC | MS_REMOUNT);
        if extra != 0 {
            // The fd names what lies under the new mount: open it again.
            let target = sys::open_in_root(root, &rel, false).map_err(in_root)?;
            sys::mount(None, &sys::fd_link(&target), None, MS_REMOUNT | MS_BIND | extra, None)
                .map_err(step(format!("remount {shown} with {:?}", m.options().as_deref().unwrap_or_default())))?;
        }
    } else {
        let target = sys::mkdir_all_in_root(root, &rel).map_err(in_root)?;
        let source = m.source().as_ref().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| typ.to_string());
        sys::mount(Some(&source), &sys::fd_link(&target), Some(typ), opts.flags, opts.data_string().as_deref())
            .map_err(step(format!("mount {typ} on {shown}")))?;
    }
    if opts.propagation != 0 {
        let target = sys::open_in_root(root, &rel, false).map_err(in_root)?;
        sys::mount(None, &sys::fd_link(&target), None, opts.propagation, None)
            .map_err(step(format!("set propagation of {shown}")))?;
    }
    Ok(())
}

/// /proc and /sys only go onto real directories of the rootfs (runc's rule
/// since CVE-2019-19921): a symlink there is refused, not followed.
fn real_directory(rootfs: &Path, dest: &Path, resolved: &Path) -> Result<(), String> {
    let lexical = rootfs.join(dest.strip_prefix("/").unwrap_or(dest));
    if lexical != resolved {
        return Err(format!("{} in the rootfs is or passes through a symlink; refusing", dest.display()));
    }
    match fs::symlink_metadata(resolved) {
        Ok(md) if !md.is_dir() => Err(format!("{} in the rootfs is not a directory", dest.display())),
        _ => Ok(()),
    }
}

fn pivot(rootfs: &Path) -> Result<(), InitError> {
    // The old root, held open: after pivot_root "." is still the new root
    // (only the old root's own users are moved), and making that a slave
    // would undo the config's shared and private mounts.
    let old_root = fs::File::open("/").map_err(step("open /"))?;
    std::env::set_current_dir(rootfs).map_err(step(format!("chdir {}", rootfs.display())))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching
    // it then leaves only the new root, with no directory to hold the old one.
    sys::pivot_root(Path::new("."), Path::new(".")).map_err(step("pivot_root"))?;
    nix::unistd::fchdir(old_root.as_raw_fd()).map_err(std::io::Error::from).map_err(step("chdir to the old root"))?;
    drop(old_root);
    sys::mount(None, Path::new("."), None, MS_SLAVE | MS_REC, None).map_err(step("make old root a slave"))?;
    sys::umount_detach(Path::new(".")).map_err(step("detach old root"))?;
    std::env::set_current_dir("/").map_err(step("chdir /"))?;
    Ok(())
}

/// `path` opened inside the root; None if missing (nothing to protect:
/// runc skips it too).
fn open_existing(root: BorrowedFd, path: &Path) -> Result<Option<fs::File>, InitError> {
    match sys::open_in_root(root, path, false) {
        Ok(fd) => Ok(Some(fd.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InitError::Msg(e.to_string())),
    }
}

fn mask(root: BorrowedFd, path: &Path) -> Result<(), InitError> {
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    let at = sys::fd_link(&target);
    let is_dir = fs::metadata(&at).is_ok_and(|m| m.is_dir());
    let r = if is_dir {
        sys::mount(Some("tmpfs"), &at, Some("tmpfs"), MS_RDONLY, None)
    } else {
        sys::mount(Some("/dev/null"), &at, None, MS_BIND, None)
    };
    r.map_err(step(format!("mask {}", path.display())))
}

fn readonly(root: BorrowedFd, path: &Path) -> Result<(), InitError> {
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    let at = sys::fd_link(&target);
    let s = path.to_string_lossy();
    let src = at.to_string_lossy();
    sys::mount(Some(&src), &at, None, MS_BIND | MS_REC, None).map_err(step(format!("bind {s} read-only")))?;
    // Opened again: the fd above names what lies under the new bind.
    let Some(target) = open_existing(root, path)? else {
        return Err(InitError::Msg(format!("{s} went away under its read-only bind")));
    };
    remount_ro(&sys::fd_link(&target), true).map_err(step(format!("remount {s} read-only")))
}

/// Remounts read-only, keeping the flags the mount already has (nosuid,
/// nodev, noexec) so making it read-only never makes it weaker elsewhere.
fn remount_ro(path: &Path, rec: bool) -> std::io::Result<()> {
    let keep = sys::mount_flags(path)?;
    let rec = if rec { MS_REC } else { 0 };
    sys::mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | rec | keep, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = crate::scratch_dir(&format!("rootfs-{name}"));
        fs::create_dir_all(d.join("etc")).expect("mkdir");
        d
    }

    #[test]
    fn dotdot_stops_at_the_root() {
        let r = tmp("dotdot");
        assert_eq!(resolve_in_root(&r, Path::new("/../../etc/passwd")).expect("ok"), r.join("etc/passwd"));
        assert_eq!(resolve_in_root(&r, Path::new("/a/../../b")).expect("ok"), r.join("b"));
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn symlinks_stay_inside() {
        let r = tmp("links");
        symlink("/etc", r.join("abs")).expect("symlink");
        symlink("../../../../etc", r.join("etc/rel")).expect("symlink");
        symlink("/", r.join("etc/top")).expect("symlink");
        assert_eq!(resolve_in_root(&r, Path::new("/abs/x")).expect("ok"), r.join("etc/x"));
        assert_eq!(resolve_in_root(&r, Path::new("/etc/rel/y")).expect("ok"), r.join("etc/y"));
        assert_eq!(resolve_in_root(&r, Path::new("/etc/top/data")).expect("ok"), r.join("data"));
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn symlink_loops_fail() {
        let r = tmp("loop");
        symlink("/loop", r.join("loop")).expect("symlink");
        assert!(resolve_in_root(&r, Path::new("/loop/x")).is_err());
        fs::remove_dir_all(&r).expect("cleanup");
    }
}
