//! The sealed copy of the shim binary that inits run from: one per host,
//! shared by the shims through their records under the state root, and
//! taken from a record only when it passes every check.

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

/// The inode of the sealed copy `shim` holds.
fn held_copy(shim: u32) -> u64 {
    let fds = std::fs::read_dir(format!("/proc/{shim}/fd")).expect("fds");
    let copies: Vec<u64> = fds
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:myshim-init")))
        .map(|e| std::fs::metadata(e.path()).expect("stat").ino())
        .collect();
    assert_eq!(copies.len(), 1, "shim {shim} holds {} sealed copies", copies.len());
    copies[0]
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

fn exe_inode(pid: u32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/exe")).expect("exe").ino()
}

#[test]
fn the_shims_of_a_host_run_their_inits_from_one_copy() {
    let root = private_root("sealed-shared");
    let records = root.join("sealed");
    rt().block_on(async {
        let (shim_a, a, init_a) = created(&root, "sealed-a").await;
        let (shim_b, b, init_b) = created(&root, "sealed-b").await;
        let copy = held_copy(shim_a);
        assert_eq!(held_copy(shim_b), copy, "the second shim made a copy of its own");
        assert_eq!(exe_inode(init_a), copy);
        assert_eq!(exe_inode(init_b), copy, "the second init does not run from the shared copy");
        for shim in [shim_a, shim_b] {
            assert!(records.join(shim.to_string()).is_symlink(), "no record of shim {shim}");
        }
        for (c, id, shim) in [(&a, "sealed-a", shim_a), (&b, "sealed-b", shim_b)] {
            c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
            kill_delete_shutdown(c, id, shim).await;
            assert!(!records.join(shim.to_string()).is_symlink(), "shim {shim} left its record");
        }
    });
    for id in ["sealed-a", "sealed-b"] {
        assert_no_leftovers(id);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A record naming a live process and the right binary, but an fd that is
/// not sealed (it could be written after the check): the shim makes its own.
#[test]
fn a_record_of_an_unsealed_file_is_not_followed() {
    let root = private_root("sealed-forged");
    let records = root.join("sealed");
    std::fs::create_dir_all(&records).expect("records");
    let bin = std::fs::metadata(shim_binary()).expect("shim binary");
    let fake =
        nix::sys::memfd::memfd_create(c"myshim-init", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC).expect("memfd");
    std::fs::File::from(fake.try_clone().expect("dup")).set_len(bin.size()).expect("size");
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
    let record = records.join(me.to_string());
    std::os::unix::fs::symlink(&target, &record).expect("record");
    let fake_ino = std::fs::metadata(format!("/proc/self/fd/{}", fake.as_raw_fd())).expect("fake").ino();
    rt().block_on(async {
        let (shim, c, init) = created(&root, "sealed-forged").await;
        assert_ne!(exe_inode(init), fake_ino, "the init runs from an unsealed file");
        assert_ne!(held_copy(shim), fake_ino);
        c.start(ctx(), &StartRequest { id: "sealed-forged".into(), ..Default::default() }).await.expect("Start");
        kill_delete_shutdown(&c, "sealed-forged", shim).await;
    });
    assert!(record.is_symlink(), "the record of a live process was removed");
    assert_no_leftovers("sealed-forged");
    let _ = std::fs::remove_dir_all(&root);
}
