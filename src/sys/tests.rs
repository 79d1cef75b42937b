//! The wrappers' errors keep their errno (and so their io::ErrorKind), and
//! the fds they hand out have the flags their docs promise.

use std::io;

use super::*;

#[test]
fn rlimits_round_trip_and_unknown_ones_are_einval() {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).expect("getrlimit");
    set_rlimit(libc::RLIMIT_CORE, soft, hard).expect("same limits again");
    let e = set_rlimit(999, 1, 1).expect_err("no such resource");
    assert_eq!((e.raw_os_error(), e.kind()), (Some(libc::EINVAL), io::ErrorKind::InvalidInput));
    // soft above hard: the kernel's EINVAL comes back as the same io::Error.
    let e = set_rlimit(libc::RLIMIT_CORE, 2, 1).expect_err("soft above hard");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn pipes_are_cloexec_and_nonblocking_reads_say_wouldblock() {
    use std::os::fd::AsRawFd;
    let (r, w) = pipe().expect("pipe");
    for fd in [&r, &w] {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
    set_nonblocking(r.as_raw_fd(), true).expect("nonblocking");
    let mut buf = [0u8; 8];
    let e = read_fd(r.as_raw_fd(), &mut buf).expect_err("empty pipe");
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(write_fd(w.as_raw_fd(), b"abc").expect("write"), 3);
    assert_eq!(unread_bytes(r.as_raw_fd()).expect("fionread"), 3);
    assert_eq!(read_fd(r.as_raw_fd(), &mut buf).expect("read"), 3);
    set_nonblocking(r.as_raw_fd(), false).expect("blocking again");
    let fl = nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
    assert_eq!(fl & libc::O_NONBLOCK, 0);
    let e = read_fd(-1, &mut buf).expect_err("bad fd");
    assert_eq!(e.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn dup_above_lands_at_or_above_its_minimum() {
    use std::os::fd::AsRawFd;
    let (r, _w) = pipe().expect("pipe");
    let d = dup_above(r.as_raw_fd(), 100).expect("dup");
    assert!(d.as_raw_fd() >= 100);
    let flags = nix::fcntl::fcntl(d.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
    assert_eq!(dup_above(-1, 100).expect_err("bad fd").raw_os_error(), Some(libc::EBADF));
}

#[test]
fn eventfd_and_inotify_are_nonblocking_and_cloexec() {
    use std::os::fd::AsRawFd;
    let dir = crate::scratch_dir("sys-inotify");
    let file = dir.join("watched");
    std::fs::write(&file, b"0").expect("file");
    let ev = eventfd().expect("eventfd");
    let ino = inotify_modify(&file).expect("inotify");
    for fd in [&ev, &ino] {
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        let fd_flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
    }
    let mut buf = [0u8; 256];
    assert_eq!(read_fd(ino.as_raw_fd(), &mut buf).expect_err("no event yet").kind(), io::ErrorKind::WouldBlock);
    std::fs::write(&file, b"1").expect("modify");
    assert!(read_fd(ino.as_raw_fd(), &mut buf).expect("an event") > 0);
    let e = inotify_modify(&dir.join("missing")).expect_err("missing");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clock_ticks_is_user_hz() {
    assert_eq!(clock_ticks(), 100);
}

#[test]
fn the_self_copy_carries_all_four_seals() {
    use std::os::fd::AsRawFd;
    let fd = sealed_self_copy().expect("copy");
    let seals = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS).expect("seals");
    let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    assert_eq!(seals, want);
}

#[test]
fn the_rootfs_helpers_stay_inside_and_keep_their_errnos() {
    use std::os::fd::AsFd;
    let root = crate::scratch_dir("sys-in-root");
    let outside = crate::scratch_dir("sys-in-root-outside");
    std::os::unix::fs::symlink(&outside, root.join("escape")).expect("symlink");
    // The same path inside the root, where an absolute symlink leads there.
    let inner = root.join(outside.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(&inner).expect("inner");
    let rootfd = std::fs::File::open(&root).expect("root");
    let d = mkdir_all_in_root(rootfd.as_fd(), Path::new("escape/a/b")).expect("mkdir -p");
    assert!(inner.join("a/b").is_dir());
    assert!(std::fs::read_dir(&outside).expect("outside").next().is_none(), "escaped the root");
    mkdir_all_in_root(rootfd.as_fd(), Path::new("escape/a/b")).expect("again: EEXIST is fine");
    let e = open_in_root(rootfd.as_fd(), Path::new("missing"), false).expect_err("missing");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("open missing in the rootfs"), "{e}");
    // create_file_at: EEXIST is fine, and a symlink there is not followed.
    create_file_at(d.as_fd(), "f".as_ref()).expect("create");
    create_file_at(d.as_fd(), "f".as_ref()).expect("exists");
    std::os::unix::fs::symlink(outside.join("target"), inner.join("a/b/link")).expect("symlink");
    create_file_at(d.as_fd(), "link".as_ref()).expect("a symlink is left alone");
    assert!(!outside.join("target").exists(), "followed the symlink");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&outside);
}

#[test]
fn mount_flags_are_the_ms_flags_of_the_mount() {
    let dir = crate::scratch_dir("sys-mount-flags");
    let want = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME;
    mount(Some("tmpfs"), &dir, Some("tmpfs"), want, Some("size=64k")).expect("mount");
    let got = mount_flags(&dir);
    umount_detach(&dir).expect("umount");
    assert_eq!(got.expect("statvfs") & want, want);
    assert_eq!(mount_flags(Path::new("/no/such/path")).expect_err("missing").kind(), io::ErrorKind::NotFound);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn setns_into_our_own_namespace_and_errnos() {
    let own = std::fs::File::open("/proc/self/ns/uts").expect("ns");
    setns(&own, libc::CLONE_NEWUTS).expect("same namespace");
    let e = setns(&own, libc::CLONE_NEWNET).expect_err("wrong type");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn a_failed_execve_returns_its_errno() {
    let e = execve(c"/no/such/program", &[c"x".to_owned()], &[]);
    assert_eq!((e.raw_os_error(), e.kind()), (Some(libc::ENOENT), io::ErrorKind::NotFound));
}
