//! What the inits are exec'd from (CVE-2019-5736): the shim's own binary
//! through a read-only overlayfs view that no mount namespace holds, made
//! by each shim for itself; nothing is copied, shared or taken on trust.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, StartRequest};

use crate::direct::*;
use crate::harness::*;

/// A state root of the test's own, so that no other test's shims take part.
fn private_root(name: &str) -> PathBuf {
    let root = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("root");
    root
}

/// Starts a shim under `root` and creates `id` (`sleep 30`) without
/// starting it: the shim's pid, its client and the init's pid.
async fn created(root: &Path, id: &str) -> (u32, containerd_shim_protos::shim_async::TaskClient, u32) {
    let b = checked_bundle(id, &["sleep", "30"]);
    let addr = text(&start_in(root, &b, id, None));
    let c = client(addr.trim()).await;
    let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
    let req = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
    let init = c.create(ctx(), &req).await.expect("Create").pid;
    (shim, c, init)
}

/// The shim's fds that are memfds (a copy of the binary would be one).
fn memfds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("/memfd:"))
        .collect()
}

#[test]
fn inits_run_from_a_read_only_view_of_the_shim_binary() {
    let root = private_root("init-exe");
    let id = "init-exe";
    let bin = std::fs::metadata(shim_binary()).expect("shim binary");
    rt().block_on(async {
        let (shim, c, init) = created(&root, id).await;
        let exe = format!("/proc/{init}/exe");
        let m = std::fs::metadata(&exe).expect("the init's exe");
        assert_eq!((m.ino(), m.size()), (bin.ino(), bin.size()), "the init does not run the shim's binary");
        let w = std::fs::OpenOptions::new().write(true).open(&exe);
        assert_eq!(w.err().and_then(|e| e.raw_os_error()), Some(libc::EROFS), "the init's exe opens for writing");
        assert_eq!(memfds(shim), Vec::<String>::new(), "the shim holds a copy of its binary");
        // Never attached: neither the host nor the shim sees the view.
        for pid in [std::process::id(), shim] {
            let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
            let at = root.join("empty").to_string_lossy().into_owned();
            assert!(!mounts.contains(&at), "the view is mounted in {pid}'s namespace");
        }
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
    let _ = std::fs::remove_dir_all(&root);
}

/// Guards against trust coming back: a record in the layout shims once used
/// to share a sealed copy, naming a live process (this one) that holds a
/// sealed memfd of the binary's size with foreign content, is never used.
#[test]
fn a_record_offering_a_foreign_copy_is_never_executed() {
    let root = private_root("init-exe-forged");
    let records = root.join("sealed");
    std::fs::create_dir_all(&records).expect("records");
    let bin = std::fs::metadata(shim_binary()).expect("shim binary");
    // Close-on-exec: the other test's shim, started from this process,
    // must not inherit it.
    let flags = nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING | nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC;
    let fake = nix::sys::memfd::memfd_create(c"myshim-init", flags).expect("memfd");
    let f = std::fs::File::from(fake.try_clone().expect("dup"));
    std::io::copy(&mut std::fs::File::open("/bin/busybox").expect("busybox"), &mut &f).expect("copy");
    f.set_len(bin.size()).expect("size");
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    nix::fcntl::fcntl(
        f.as_raw_fd(),
        nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(seals)),
    )
    .expect("seal");
    let me = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).expect("stat");
    let start_time = stat[stat.rfind(')').expect("comm") + 1..].split_whitespace().nth(19).expect("field 22");
    let target = format!(
        "{start_time} {} {} {} {} {} {}",
        fake.as_raw_fd(),
        bin.dev(),
        bin.ino(),
        bin.size(),
        bin.ctime(),
        bin.ctime_nsec()
    );
    std::os::unix::fs::symlink(&target, records.join(me.to_string())).expect("record");
    let fake_ino = std::fs::metadata(format!("/proc/self/fd/{}", fake.as_raw_fd())).expect("fake").ino();
    let id = "init-exe-forged";
    rt().block_on(async {
        let (shim, c, init) = created(&root, id).await;
        let exe = std::fs::metadata(format!("/proc/{init}/exe")).expect("exe");
        assert_ne!(exe.ino(), fake_ino, "the init runs from the offered copy");
        assert_eq!(exe.ino(), bin.ino(), "the init does not run the shim's binary");
        assert_eq!(memfds(shim), Vec::<String>::new(), "the shim took or made a copy");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
    let _ = std::fs::remove_dir_all(&root);
}
