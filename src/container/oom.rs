//! OOM events: TaskOOM when the kernel's OOM killer acts in the container's
//! cgroup, and always before the TaskExit of an init it killed: the exit
//! path drains the notification itself before it queues TaskExit (the
//! kernel signals the eventfd before the victim's exit reaches the reaper).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::topics;
use tokio::io::unix::AsyncFd;
use tokio::task::AbortHandle;

use crate::events::EventSink;
use crate::sys;

pub struct OomWatch {
    fd: AsyncFd<OwnedFd>,
    events: Arc<dyn EventSink>,
    id: String,
    /// memory.oom_control: its `oom_kill` counter tells a kill from the
    /// other moments the cgroup is under OOM (the eventfd fires for each).
    control: std::path::PathBuf,
    kills: std::sync::atomic::AtomicU64,
}

/// The watch and its background task (stopped before the cgroup goes: v1
/// signals its event listeners when a cgroup is removed).
pub struct Oom {
    pub watch: Arc<OomWatch>,
    task: AbortHandle,
}

impl Oom {
    pub fn start(
        (fd, control): (OwnedFd, std::path::PathBuf),
        events: Arc<dyn EventSink>,
        id: &str,
    ) -> std::io::Result<Oom> {
        let kills = std::sync::atomic::AtomicU64::new(oom_kills(&control).unwrap_or(0));
        let watch = Arc::new(OomWatch { fd: sys::async_fd(fd)?, events, id: id.to_string(), control, kills });
        let w = watch.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(mut guard) = w.fd.readable().await else { return };
                let mut count = [0u8; 8];
                match guard.try_io(|fd| sys::read_fd(fd.get_ref().as_raw_fd(), &mut count)) {
                    Ok(_) => w.notified().await,
                    Err(_would_block) => continue,
                }
            }
        })
        .abort_handle();
        Ok(Oom { watch, task })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl OomWatch {
    /// Before an init's TaskExit: publishes TaskOOM if the killer acted
    /// since the last one; never blocks.
    pub fn drain(&self) {
        let mut count = [0u8; 8];
        let _ = sys::read_fd(self.fd.get_ref().as_raw_fd(), &mut count);
        self.publish_new_kills();
    }

    /// A notification: the cgroup is under OOM. The kill (and its counter)
    /// may follow a moment later, so a notification without a new kill is
    /// looked at again shortly.
    async fn notified(&self) {
        if !self.publish_new_kills() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            self.publish_new_kills();
        }
    }

    /// One TaskOOM per kill, by memory.oom_control's `oom_kill` counter
    /// (without it, per notification). Returns whether it published.
    fn publish_new_kills(&self) -> bool {
        use std::sync::atomic::Ordering;
        if let Some(now) = oom_kills(&self.control) {
            if now <= self.kills.load(Ordering::SeqCst) {
                return false;
            }
            self.kills.store(now, Ordering::SeqCst);
        }
        log::info!("{}: the OOM killer acted in the container's cgroup", self.id);
        let event = TaskOOM { container_id: self.id.clone(), ..Default::default() };
        self.events.publish(topics::TASK_OOM_EVENT_TOPIC, &event);
        true
    }
}

/// `oom_kill N` from memory.oom_control (kernels since 4.13).
fn oom_kills(control: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(control).ok()?;
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kill_counter_is_read_from_oom_control() {
        let p = std::env::temp_dir().join(format!("myshim-oom-control-{}", std::process::id()));
        std::fs::write(&p, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").expect("write");
        assert_eq!(super::oom_kills(&p), Some(3));
        std::fs::write(&p, "oom_kill_disable 0\nunder_oom 1\n").expect("write");
        assert_eq!(super::oom_kills(&p), None, "an older kernel: every notification counts");
        std::fs::remove_file(&p).expect("cleanup");
    }
}
