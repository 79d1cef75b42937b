//! Issue 22 (part): a mount destination is made and opened inside the
//! rootfs, and mounted through that fd, so a directory swapped for a
//! symlink between the check and the mount (a volume another container
//! writes to: the CVE-2021-30465 class) never takes a mount to the host.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use containerd_shim_protos::api::{DeleteRequest, KillRequest, WaitRequest};
use serde_json::json;

use crate::direct::*;
use crate::harness::*;

/// Creates against a swapper thread. Each takes a few ms; the old
/// path-based mount lost this race within the first few hundred.
const CREATES: usize = 400;

/// Guard: `sys::open_in_root` / `mkdir_all_in_root` and the mount onto
/// /proc/self/fd/N in `rootfs::mount_one`; mknodat in a directory opened so
/// for the config's devices (`devices::create`). A createContainer hook, which
/// runs in the container's mount namespace before pivot_root (while the
/// host's tree is still there to see), fails the Create if the host
/// directory the symlink names was mounted over; every other Create either
/// succeeds or fails cleanly.
#[test]
fn a_destination_swapped_for_a_symlink_never_mounts_over_the_host() {
    let id = "mount-race";
    let root = rootfs(id);
    let src = work_dir().join("mount-race-src");
    let victim = work_dir().join("mount-race-victim");
    for d in [&src, &victim] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).expect("dir");
    }
    let hook = work_dir().join("mount-race-hook");
    let script = format!(
        "#!/bin/sh\nif /bin/grep -q ' {} ' /proc/self/mountinfo; then echo 'the host directory was mounted over' >&2; exit 1; fi\n",
        victim.display()
    );
    std::fs::write(&hook, script).expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // /data a directory, /data.alt a symlink to the host directory: the
    // swapper exchanges the two names for as long as the Creates run.
    let (data, alt) = (root.join("data"), root.join("data.alt"));
    std::os::unix::fs::symlink(&victim, &alt).expect("symlink");
    let mut s = spec(id, &root, &["sleep", "1000"]);
    s["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]
    }));
    // A device under the volume too: its node is made by name in a
    // directory opened inside the rootfs (`devices::InRoot`), never by path.
    let devices = s["linux"].as_object_mut().expect("linux").entry("devices").or_insert(json!([]));
    devices.as_array_mut().expect("devices").push(json!({
        "path": "/data/racedev", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0
    }));
    s["hooks"] = json!({"createContainer": [{"path": hook}]});
    let b = bundle(&format!("bundle-{id}"));
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (a, b) = (
            std::ffi::CString::new(data.to_string_lossy().as_bytes()).expect("path"),
            std::ffi::CString::new(alt.to_string_lossy().as_bytes()).expect("path"),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two valid NUL-terminated paths.
                let r = unsafe {
                    libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
                };
                assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let addr = text(&start(&b, id, None));
    let (mut created, mut refused, mut reasons) = (0, 0, std::collections::BTreeSet::new());
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim =
            c.connect(ctx(), &containerd_shim_protos::api::ConnectRequest::default()).await.expect("Connect").shim_pid;
        for _ in 0..CREATES {
            match c.create(ctx(), &create_request(id, &b)).await {
                Ok(_) => {
                    created += 1;
                    let kill = KillRequest { id: id.into(), signal: 9, ..Default::default() };
                    c.kill(ctx(), &kill).await.expect("Kill");
                    c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
                    c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
                }
                Err(containerd_shim_protos::ttrpc::Error::RpcStatus(st)) => {
                    assert!(!st.message.contains("mounted over"), "after {created} Creates: {}", st.message);
                    refused += 1;
                    reasons.insert(st.message.trim_start_matches("create mount-race: ").to_string());
                }
                Err(e) => panic!("Create: {e:?}"),
            }
        }
        shutdown(&c, shim).await;
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!("{created} created, {refused} refused cleanly ({reasons:?}), {swaps} swaps");
    assert!(created > 0, "no Create got through the race: {reasons:?}");
    assert_eq!(std::fs::read_dir(&victim).expect("victim").count(), 0, "something was made in the host directory");
    assert_no_leftovers(id);
}
