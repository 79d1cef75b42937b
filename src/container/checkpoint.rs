//! Checkpoint: the container's processes dumped by CRIU into the directory
//! containerd names (or the options' image path), left running unless the
//! options say exit; TaskCheckpointed once the images are whole. The rootfs
//! diff and the config are containerd's to keep, as with the runc shim.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use containerd_shim_protos::events::task::TaskCheckpointed;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use containerd_shim_protos::topics;
use oci_spec::runtime::Spec;

use super::lifecycle::Status;
use super::{Container, Shim};
use crate::error::TaskError;
use crate::runtime::criu::{self, dump};
use crate::{spec, sys};

impl Shim {
    pub async fn checkpoint(&self, id: &str, path: &str, opts: CheckpointOptions) -> Result<(), TaskError> {
        self.touch();
        let (c, init) = self.process(id, "")?;
        // Said before anything is made (checked again under the lock).
        let (status, _) = init.status().await;
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(TaskError::FailedPrecondition(format!(
                "checkpoint {id}: cannot checkpoint a {status:?} container"
            )));
        }
        let loaded = spec::load(Path::new(&c.bundle)).map_err(|e| TaskError::invalid("checkpoint", id, "config", e))?;
        let spec = loaded.spec;
        if let Some(why) = dump::refusal(&spec, &opts) {
            return Err(TaskError::InvalidArgument(format!("checkpoint {id}: {why}")));
        }
        let images = if opts.image_path.is_empty() { path } else { opts.image_path.as_str() };
        if images.is_empty() {
            return Err(TaskError::InvalidArgument(format!("checkpoint {id}: no image path")));
        }
        let images_path = PathBuf::from(images);
        let images =
            open_dir(&images_path, true).map_err(|e| TaskError::internal("checkpoint", id, "image path", e))?;
        let own_work = opts.work_path.is_empty();
        let work_path = if own_work { c.state_dir.join("criu-work") } else { PathBuf::from(&opts.work_path) };
        if own_work {
            let _ = std::fs::remove_dir_all(&work_path);
        }
        let work = open_dir(&work_path, false).map_err(|e| TaskError::internal("checkpoint", id, "work path", e))?;
        let dumped = init
            .while_live("checkpoint", async {
                let dirs = (images.as_raw_fd(), work.as_raw_fd());
                let facts = facts(&c, &spec, init.pid, dirs).map_err(|e| format!("inspect the container: {e}"))?;
                write_descriptors(&images_path, init.pid).map_err(|e| format!("descriptors.json: {e}"))?;
                let req = dump::request(&spec, &opts, &facts);
                criu::call(&self.reaper, Path::new("criu"), req, Default::default(), |_, _| Ok(()), criu::ignore)
                    .await
                    .map_err(|e| e.to_string())?;
                // Before the lock goes: TaskCheckpointed precedes the exit a
                // dump without leave-running causes.
                let ev = TaskCheckpointed { container_id: id.into(), checkpoint: path.into(), ..Default::default() };
                self.events.publish(topics::TASK_CHECKPOINTED_EVENT_TOPIC, &ev);
                Ok::<(), String>(())
            })
            .await
            .map_err(|e| TaskError::FailedPrecondition(format!("checkpoint {id}: {e}")))?;
        let log = work_path.join(dump::LOG);
        let result = dumped.map_err(|e| {
            // Kept where the runc shim keeps it: the work dir goes now.
            let kept = Path::new(&c.bundle).join("criu-dump.log");
            let excerpt = criu::excerpt(&log);
            let saved = std::fs::copy(&log, &kept).map(|_| format!(" (log: {})", kept.display())).unwrap_or_default();
            TaskError::Internal(format!("checkpoint {id}: {e}{saved}\n{excerpt}"))
        });
        if own_work {
            let _ = std::fs::remove_dir_all(&work_path);
        }
        result
    }
}

/// What the init's fds 0-2 are (`pipe:[N]`, `/dev/null`, a pts), where
/// runc writes them (`descriptors.json` in the images): a restore gives the
/// new stdio in their places.
fn write_descriptors(images: &Path, pid: i32) -> std::io::Result<()> {
    let links: Vec<String> = (0..3)
        .map(|fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).map(|l| l.to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    let json = serde_json::to_vec(&links).map_err(std::io::Error::other)?;
    std::fs::write(images.join("descriptors.json"), json)
}

/// `path` as a directory fd (made 0700 if missing, as runc makes its image
/// dir), close-on-exec: CRIU opens it through this process's /proc.
fn open_dir(path: &Path, private: bool) -> std::io::Result<OwnedFd> {
    let mode = if private { 0o700 } else { 0o755 };
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(path)?;
    Ok(OwnedFd::from(std::fs::File::open(path)?))
}

/// What the dump request needs from the host: the rootfs, the freezer, the
/// masked paths that are files, the namespaces joined by path.
fn facts(c: &Container, spec: &Spec, pid: i32, (images_fd, work_fd): (i32, i32)) -> Result<dump::Facts, String> {
    let root = spec::rootfs_path(spec, Path::new(&c.bundle));
    let freezer = c.cgroup.freezer_dir().map_err(|e| e.to_string())?;
    let in_root = std::fs::File::open(format!("/proc/{pid}/root")).map_err(|e| format!("the init's root: {e}"))?;
    let linux = spec.linux().as_ref();
    let masked_files = linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            // Resolved inside the container's root: a path there is the
            // container's to make, and must not name a host file.
            let fd = sys::open_in_root(std::os::fd::AsFd::as_fd(&in_root), Path::new(p), false);
            fd.is_ok_and(|fd| std::fs::File::from(fd).metadata().is_ok_and(|m| !m.is_dir()))
        })
        .collect();
    let mut joined = Vec::new();
    for (kind, p) in criu::config::external_namespaces(spec) {
        let inode = std::fs::metadata(&p).map_err(|e| format!("namespace {}: {e}", p.display()))?.ino();
        joined.push((kind, inode));
    }
    Ok(dump::Facts { pid, images_fd, work_fd, root, freezer, masked_files, joined })
}
