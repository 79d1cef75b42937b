//! `delete`: what containerd runs when a shim died. From the state record
//! (never from a bare config.json) it kills whatever is left in the cgroup
//! the shim made for the container, removes that cgroup, unmounts the rootfs, removes the
//! state, and prints a DeleteResponse with exit status 137. It succeeds when
//! there is nothing left to clean.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::args::ShimArgs;
use crate::bootstrap::{socket_path, state_root};
use crate::cgroups::{Cgroup, Placement};
use crate::container::hooks::{run_kinds, POSTSTOP_MARKER};
use crate::container::timestamp;
use crate::hooks::Kind;
use crate::reaper::Reaper;
use crate::{state, sys};

pub fn run(args: &ShimArgs) -> Result<Vec<u8>, String> {
    crate::logger::init(args.debug, &args.id, true);
    let bundle = match &args.bundle {
        Some(b) => PathBuf::from(b),
        None => std::env::current_dir().map_err(|e| format!("delete: cwd: {e}"))?,
    };
    let root = state_root();
    let dir = state::dir(&root, &args.address, &args.namespace, &args.id);
    let record = state::read(&dir).ok();
    // Only what the record says the shim made: no record, no cgroup work
    // (the shim writes it before it makes the cgroup).
    if let Some(r) = &record {
        end_processes(r);
    }
    let rootfs = record.as_ref().and_then(|r| r.rootfs_mount.clone()).unwrap_or_else(|| bundle.join("rootfs"));
    if is_mount_point(&rootfs) {
        sys::umount_detach(&rootfs).map_err(|e| format!("delete {}: unmount {}: {e}", args.id, rootfs.display()))?;
    }
    if dir.exists() && !dir.join(POSTSTOP_MARKER).exists() {
        run_poststop(&bundle, &dir, &args.id);
    }
    state::remove(&dir).map_err(|e| format!("delete {}: remove state: {e}", args.id))?;
    let socket = socket_path(&root, &args.address, &args.namespace, &args.id);
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        let _ = std::fs::remove_file(&socket);
    }
    let resp = DeleteResponse {
        pid: record.map_or(0, |r| r.pid as u32),
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: timestamp(SystemTime::now()),
        ..Default::default()
    };
    resp.write_to_bytes().map_err(|e| format!("delete {}: encode response: {e}", args.id))
}

/// Poststop hooks of a container whose shim died before Delete ran them: the
/// container is gone by now, as runtime.md wants it before poststop. The
/// marker first, so a second cleanup never runs them again.
fn run_poststop(bundle: &Path, dir: &Path, id: &str) {
    let Ok(loaded) = crate::spec::load(bundle) else { return };
    if crate::hooks::planned(&loaded.spec, &[Kind::Poststop]).is_empty() {
        return;
    }
    if let Err(e) = std::fs::write(dir.join(POSTSTOP_MARKER), b"") {
        log::warn!("delete {id}: poststop marker: {e}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::warn!("delete {id}: poststop hooks not run: {e}");
            return;
        }
    };
    rt.block_on(async {
        match Reaper::start() {
            Ok(reaper) => {
                let _ = run_kinds(&reaper, &loaded.spec, &[Kind::Poststop], id, bundle, None).await;
            }
            Err(e) => log::warn!("delete {id}: poststop hooks not run: {e}"),
        }
    });
}

/// The container's processes ended and its cgroup removed, as far as the
/// record allows. A cgroup the shim made was empty when it was made, so all
/// in it is the container's: killed, whatever its pid namespace (the init
/// may outlive its shim). One it did not make is left as it is; only the
/// init, found in it by its recorded pid, is killed, which ends a pid
/// namespace of its own.
fn end_processes(r: &state::Record) {
    let placement = Placement { path: r.cgroup.clone(), systemd: r.systemd_unit.clone() };
    let cgroup = Cgroup::recorded(placement, r.cgroup_owned);
    if r.cgroup_owned {
        if let Err(e) = cgroup.destroy(true, Duration::from_secs(3)) {
            log::warn!("delete {}: {e}", r.id);
        }
    } else if r.pid > 0 && cgroup.pids().is_ok_and(|p| p.contains(&r.pid)) {
        let _ = sys::kill(r.pid, libc::SIGKILL);
    }
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}
