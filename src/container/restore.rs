//! Create from a checkpoint: instead of spawning an init, CRIU restores the
//! dumped processes into the new container's rootfs and cgroup, with its
//! stdio pipes where the dumped init had pipes. The restored init is the
//! shim's child (`rst_sibling`), registered with the reaper when CRIU names
//! it, before its tasks resume; it needs no handshake, so Start only makes
//! it Running.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use tokio::sync::oneshot;

use super::create::CreateRequest;
use super::hooks::run_kinds;
use super::prepared::{Init, Prepared, Started, Undo};
use super::Shim;
use crate::error::TaskError;
use crate::hooks::{self, Kind};
use crate::reaper::Reaper;
use crate::runtime::channel::{ParentEnd, Phase};
use crate::runtime::criu::{self, restore};
use crate::runtime::Spawned;
use crate::sys;

/// What a restore of `images` into a container of `spec` is refused for,
/// said before anything is made; else the images' descriptors.json.
pub fn check(spec: &Spec, images: &Path) -> Result<Vec<String>, String> {
    if let Some(why) = restore::refusal(spec) {
        return Err(why.into());
    }
    if !images.join("inventory.img").exists() {
        return Err(format!("{}: no inventory.img: not a CRIU checkpoint", images.display()));
    }
    let path = images.join("descriptors.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Shim {
    /// The restored init, in place of a spawned one: recorded (and the
    /// cgroup undone) before CRIU makes anything, then adopted as a spawn
    /// is; Ready already (no handshake: Start only makes it Running).
    pub(super) async fn restore_init(
        &self,
        req: &CreateRequest,
        bundle: &Path,
        spec: &Spec,
        p: &Prepared,
        descriptors: Vec<String>,
        undo: &mut Undo,
    ) -> Result<Init, TaskError> {
        let id = req.id.as_str();
        p.write_record(id, bundle, undo, 0)?;
        let restored = self.restore(id, Path::new(&req.checkpoint), descriptors, spec, p, bundle).await?;
        p.adopt(id, bundle, restored, undo)?;
        let (spawned, exited) = undo.take_init(id)?;
        Ok((spawned, exited, Phase::Execed))
    }

    /// The restored init, as a spawn gives one, and its reaper's receiver.
    async fn restore(
        &self,
        id: &str,
        images: &Path,
        descriptors: Vec<String>,
        spec: &Spec,
        p: &Prepared,
        bundle: &Path,
    ) -> Result<Started, TaskError> {
        let fail = |step: &str, e: String| TaskError::internal("create", id, step, e);
        let images_dir = std::fs::File::open(images).map_err(|e| fail("checkpoint", e.to_string()))?;
        let work = p.state_dir.join("criu-restore");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| fail("restore work dir", e.to_string()))?;
        let work_dir = std::fs::File::open(&work).map_err(|e| fail("restore work dir", e.to_string()))?;
        let cgroup_dir = p.cgroup.freezer_dir().map_err(|e| fail("cgroup", e.to_string()))?;
        make_mount_points(spec, &p.rootfs).map_err(|e| fail("restore mount points", e.to_string()))?;
        // CRIU's root must be a mount point whose parent is not mounted
        // over (a plain directory rootfs is neither): a bind of it, as runc.
        let root = work.join("root");
        std::fs::create_dir_all(&root).map_err(|e| fail("restore root", e.to_string()))?;
        let rootfs = p.rootfs.to_string_lossy().into_owned();
        sys::mount(Some(&rootfs), &root, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| fail("restore root", format!("bind {rootfs}: {e}")))?;
        let unbind = Unbind(root.clone());
        // The namespaces it joins, handed to criu in this order.
        let mut joined = Vec::new();
        let mut ns_fds = Vec::new();
        for (kind, path) in criu::config::external_namespaces(spec) {
            let f = std::fs::File::open(&path).map_err(|e| fail("restore", format!("{}: {e}", path.display())))?;
            joined.push(kind);
            ns_fds.push(OwnedFd::from(f));
        }
        let facts = restore::Facts {
            images_fd: images_dir.as_raw_fd(),
            work_fd: work_dir.as_raw_fd(),
            root: root.clone(),
            cgroup_dir,
            descriptors,
            joined,
        };
        let req = restore::request(spec, &facts);
        let stdio = dup3(&p.stdio.container).map_err(|e| fail("stdio", e.to_string()))?;
        let mut restored: Option<(i32, oneshot::Receiver<u32>)> = None;
        let mut console: Option<OwnedFd> = None;
        let (cgroup, resources, reaper) = (&p.cgroup, p.resources.as_ref(), &self.reaper);
        let answer = criu::call(
            reaper,
            Path::new("criu"),
            req,
            criu::Handed { stdio: Some(stdio), fds: ns_fds },
            |criu_pid, req| {
                cgroup.enter(criu_pid, resources).map_err(|e| e.to_string())?;
                // The processes go where criu is: the new container's cgroup.
                let proc = format!("/proc/{criu_pid}/cgroup");
                let text = std::fs::read_to_string(&proc).map_err(|e| format!("{proc}: {e}"))?;
                let path = restore::cgroup_of(&text).ok_or_else(|| format!("{proc}: no cgroup in {text:?}"))?;
                restore::set_cgroup_root(req, path);
                Ok(())
            },
            |script, pid, fd| -> criu::Notified<'_> {
                match script {
                    // In its namespaces, nothing of it run yet: where runc
                    // runs these two kinds on a restore.
                    "setup-namespaces" => Box::pin(restore_hooks(reaper, spec, id, bundle, pid)),
                    "post-restore" if restored.is_none() => {
                        // Its tasks are still stopped: no exit can come first.
                        restored = Some((pid, reaper.register(pid)));
                        criu::ignore(script, pid, fd)
                    }
                    // A terminal's new master: the old one was this shim's.
                    "orphan-pts-master" => {
                        console = fd;
                        criu::ignore(script, pid, None)
                    }
                    _ => criu::ignore(script, pid, fd),
                }
            },
        )
        .await;
        drop(unbind);
        let log = work.join(restore::LOG);
        let (pid, exited) = match (answer, restored) {
            (Ok(_), Some(r)) => r,
            (answer, restored) => {
                if let Some((pid, exited)) = restored {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    let _ = exited.await;
                }
                let why = answer.err().map_or("CRIU named no restored process".to_string(), |e| e.to_string());
                return Err(fail("restore", format!("{why}\n{}", criu::excerpt(&log))));
            }
        };
        let pidfd = sys::pidfd_open(pid).map_err(|e| fail("restore", format!("pidfd of {pid}: {e}")))?;
        let chan = ParentEnd::unused().map_err(|e| fail("restore", e.to_string()))?;
        let _ = std::fs::remove_dir_all(&work);
        Ok((Spawned { pid, pidfd, chan, console }, exited))
    }
}

/// Prestart and createRuntime for the restored init, `pid`, in its
/// namespaces before any of it runs again.
async fn restore_hooks(reaper: &Reaper, spec: &Spec, id: &str, bundle: &Path, pid: i32) -> Result<(), String> {
    const KINDS: [Kind; 2] = [Kind::Prestart, Kind::CreateRuntime];
    if hooks::planned(spec, &KINDS).is_empty() {
        return Ok(());
    }
    let pidfd = sys::pidfd_open(pid).map_err(|e| format!("pidfd of {pid}: {e}"))?;
    run_kinds(reaper, spec, &KINDS, id, bundle, Some((pid, pidfd.as_fd()))).await
}

/// The mount points CRIU mounts onto must exist in the new rootfs (a fresh
/// snapshot lacks those the dumped init made): each mount's destination
/// that lies under no other mount's (those come with their parent, a
/// tmpfs /dev's or a sysfs's), made inside the root as runc makes them.
fn make_mount_points(spec: &Spec, rootfs: &Path) -> std::io::Result<()> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let dests: Vec<&Path> = mounts.iter().map(|m| m.destination().as_path()).collect();
    let root = std::fs::File::open(rootfs)?;
    for m in &mounts {
        let dest = m.destination().as_path();
        if dests.iter().any(|o| *o != dest && dest.starts_with(o)) {
            continue;
        }
        let rel = dest.strip_prefix("/").unwrap_or(dest);
        let is_file = m.source().as_ref().is_some_and(|s| std::fs::metadata(s).is_ok_and(|md| !md.is_dir()))
            && crate::mountopts::parse(m.options().as_deref().unwrap_or_default()).is_bind();
        match (is_file, rel.parent(), rel.file_name()) {
            (true, Some(parent), Some(name)) => {
                let dir = sys::mkdir_all_in_root(root.as_fd(), parent)?;
                match sys::create_file_at(dir.as_fd(), name) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            _ => {
                sys::mkdir_all_in_root(root.as_fd(), rel)?;
            }
        }
    }
    Ok(())
}

fn dup3(fds: &[OwnedFd; 3]) -> std::io::Result<[OwnedFd; 3]> {
    Ok([fds[0].try_clone()?, fds[1].try_clone()?, fds[2].try_clone()?])
}

/// The bind of the rootfs CRIU restores into, undone however the restore
/// ends (the restored mount namespace keeps its own).
struct Unbind(PathBuf);

impl Drop for Unbind {
    fn drop(&mut self) {
        if let Err(e) = sys::umount_detach(&self.0) {
            log::warn!("restore: unmount {}: {e}", self.0.display());
        }
    }
}
