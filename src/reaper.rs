//! The one reaper. The shim is a child subreaper: its containers' inits and
//! every orphan they leave come back to it. One SIGCHLD-driven loop reaps them
//! all and hands each registered pid's exit code to its waiter. Registration
//! happens right after spawning and before the next await, and this event loop
//! is single-threaded, so no exit can be reaped before its waiter exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use crate::sys;

#[derive(Default)]
pub struct Reaper {
    waiters: Mutex<HashMap<i32, oneshot::Sender<u32>>>,
}

impl Reaper {
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper::default());
        let mut sigchld = signal(SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    pub fn register(&self, pid: i32) -> oneshot::Receiver<u32> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(pid, tx);
        }
        rx
    }

    fn reap_all(&self) {
        loop {
            match sys::reap_any() {
                Ok(Some(exit)) => {
                    let waiter = self.waiters.lock().ok().and_then(|mut w| w.remove(&exit.pid));
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(exit.code);
                        }
                        None => log::debug!("reaped orphan {} ({})", exit.pid, exit.code),
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    log::error!("reap: {e}");
                    return;
                }
            }
        }
    }
}
