//! The executable every init is exec'd from: our own binary, seen so that a
//! container cannot write it through `/proc/self/exe` (CVE-2019-5736).
//!
//! As runc 1.2 does: the binary opened through a read-only overlayfs that is
//! never attached to any mount namespace (`sys::readonly_view`). Nothing is
//! copied and nothing is shared with another process, so there is nothing to
//! trust: each shim makes its own view (one fsopen/fsmount, ~0.1 ms). Where
//! overlayfs cannot be had (no module, a path it cannot carry), a sealed
//! memfd copy of the binary, private to the shim.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::sys;

/// The empty directory under the state root that serves as the view's
/// second lower layer.
const EMPTY: &str = "empty";

/// A read-only executable of this binary for the inits.
pub fn acquire(root: &Path) -> io::Result<OwnedFd> {
    view_or_copy(&std::fs::read_link("/proc/self/exe")?, root)
}

/// The view of `binary` if it is the file this process runs, else a copy.
fn view_or_copy(binary: &Path, root: &Path) -> io::Result<OwnedFd> {
    let empty = root.join(EMPTY);
    let view = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&empty)
        .and_then(|()| sys::readonly_view(binary, &empty));
    match view {
        Ok(fd) if same_binary(&fd) => Ok(fd),
        Ok(_) => fallback(&format!("the view of {} is another file", binary.display())),
        Err(e) => fallback(&format!("read-only overlayfs view of {}: {e}", binary.display())),
    }
}

/// Whether the view shows the file this process runs (the binary may have
/// been replaced on disk since we started: an init of another version would
/// not speak our handshake). Overlayfs keeps a lower file's inode number.
fn same_binary(fd: &OwnedFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(sys::fd_link(fd)), std::fs::metadata("/proc/self/exe")) {
        (Ok(v), Ok(o)) => {
            (v.ino(), v.size(), v.mtime(), v.mtime_nsec()) == (o.ino(), o.size(), o.mtime(), o.mtime_nsec())
        }
        _ => false,
    }
}

fn fallback(why: &str) -> io::Result<OwnedFd> {
    log::info!("{why}; the inits run from a sealed copy instead");
    sys::sealed_self_copy()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_view_is_our_binary_and_cannot_be_written() {
        let root = crate::scratch_dir("exe-view");
        let fd = acquire(&root).expect("view");
        let path = sys::fd_link(&fd);
        let (ours, view) = (std::fs::metadata("/proc/self/exe").expect("exe"), std::fs::metadata(&path).expect("view"));
        assert_eq!((view.size(), view.ino()), (ours.size(), ours.ino()), "not our binary");
        let target = std::fs::read_link(&path).expect("link");
        assert!(!target.to_string_lossy().starts_with("/memfd:"), "fell back to a copy: {target:?}");
        let w = std::fs::OpenOptions::new().write(true).open(&path);
        assert_eq!(w.err().and_then(|e| e.raw_os_error()), Some(libc::EROFS), "the view opens for writing");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounts.contains(&root.join(EMPTY).to_string_lossy().to_string()), "the view is attached somewhere");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn without_a_view_the_inits_run_from_a_sealed_private_copy() {
        let root = crate::scratch_dir("exe-copy");
        // A directory overlayfs's lowerdir cannot name.
        let odd = root.join("a:b");
        std::fs::create_dir_all(&odd).expect("dir");
        let fd = view_or_copy(&odd.join("bin"), &root).expect("copy");
        let path = sys::fd_link(&fd);
        let target = std::fs::read_link(&path).expect("link");
        assert!(target.to_string_lossy().starts_with("/memfd:myshim-init"), "{target:?}");
        let ours = std::fs::metadata("/proc/self/exe").expect("exe");
        assert_eq!(std::fs::metadata(&path).expect("copy").size(), ours.size(), "not a whole copy");
        let w = std::fs::OpenOptions::new().write(true).open(&path).and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"x")
        });
        assert_eq!(w.err().and_then(|e| e.raw_os_error()), Some(libc::EPERM), "the copy can be written");
        let _ = std::fs::remove_dir_all(&root);
    }
}
