//! OOM events: TaskOOM when the kernel's OOM killer acts in the container's
//! cgroup, and always before the TaskExit of an init it killed: the exit
//! path drains the notification itself before it queues TaskExit (the
//! kernel signals the fd before the victim's exit reaches the reaper). The
//! fd is v1's oom_control eventfd or an inotify watch on v2's
//! memory.events; both counters are an `oom_kill N` line.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::topics;
use tokio::io::unix::AsyncFd;
use tokio::task::AbortHandle;

use crate::cgroups::OomSource;
use crate::events::EventSink;
use crate::sys;

/// Room for an eventfd counter or a few inotify events (one without a
/// name is 16 bytes; a smaller buffer is EINVAL).
const DRAIN: usize = 256;

pub struct OomWatch {
    fd: AsyncFd<OwnedFd>,
    events: Arc<dyn EventSink>,
    id: String,
    /// memory.oom_control (v1) or memory.events (v2): its `oom_kill`
    /// counter tells a kill from the other moments the fd fires for.
    counter: std::path::PathBuf,
    kills: std::sync::atomic::AtomicU64,
}

/// The watch and its background task (stopped before the cgroup goes: v1
/// signals its event listeners when a cgroup is removed).
pub struct Oom {
    pub watch: Arc<OomWatch>,
    task: AbortHandle,
}

impl Oom {
    pub fn start(source: OomSource, events: Arc<dyn EventSink>, id: &str) -> std::io::Result<Oom> {
        let OomSource { fd, counter } = source;
        let kills = std::sync::atomic::AtomicU64::new(oom_kills(&counter).unwrap_or(0));
        let watch = Arc::new(OomWatch { fd: sys::async_fd(fd)?, events, id: id.to_string(), counter, kills });
        let w = watch.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(mut guard) = w.fd.readable().await else { return };
                let mut buf = [0u8; DRAIN];
                match guard.try_io(|fd| sys::read_fd(fd.get_ref().as_raw_fd(), &mut buf)) {
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
        let mut buf = [0u8; DRAIN];
        let _ = sys::read_fd(self.fd.get_ref().as_raw_fd(), &mut buf);
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
        if let Some(now) = oom_kills(&self.counter) {
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

/// `oom_kill N` from memory.oom_control (v1, kernels since 4.13) or
/// memory.events (v2).
fn oom_kills(counter: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(counter).ok()?;
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

    struct Topics(std::sync::Mutex<Vec<&'static str>>);
    impl crate::events::EventSink for Topics {
        fn publish(&self, topic: &'static str, _: &dyn containerd_shim_protos::protobuf::MessageDyn) {
            self.0.lock().expect("lock").push(topic);
        }
    }

    /// cgroup v2: memory.events changes (a fixture file here, written as
    /// the kernel does), the inotify watch fires, one TaskOOM per new kill.
    #[tokio::test]
    async fn v2_memory_events_kills_become_task_oom() {
        let p = std::env::temp_dir().join(format!("myshim-memory-events-{}", std::process::id()));
        let events = |kills: u32| format!("low 0\nhigh 0\nmax 4\noom 1\noom_kill {kills}\noom_group_kill 0\n");
        std::fs::write(&p, events(0)).expect("write");
        let sink = std::sync::Arc::new(Topics(Default::default()));
        let source =
            crate::cgroups::OomSource { fd: crate::sys::inotify_modify(&p).expect("inotify"), counter: p.clone() };
        let oom = super::Oom::start(source, sink.clone(), "c1").expect("start");
        std::fs::write(&p, events(0).replace("max 4", "max 9")).expect("write");
        std::fs::write(&p, events(1)).expect("write");
        let published = || sink.0.lock().expect("lock").clone();
        for _ in 0..100 {
            if !published().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(published(), vec![containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC], "one kill, one TaskOOM");
        std::fs::write(&p, events(2)).expect("write");
        oom.watch.drain();
        assert_eq!(published().len(), 2, "drain publishes a kill not yet seen");
        oom.stop();
        std::fs::remove_file(&p).expect("cleanup");
    }
}
