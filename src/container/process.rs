//! One process of a container, its init or an exec: its pid and pidfd, its
//! stdio handles, its lifecycle, the handshake with it until it execs, and
//! its exit. The caller decides which events a transition means.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use super::lifecycle::{Exit, Illegal, Lifecycle, Status};
use crate::console::Console;
use crate::runtime::channel::{ParentEnd, Phase};
use crate::runtime::Spawned;
use crate::stdio::{Relays, StdinFeed};
use crate::sys;

/// How long Delete waits for containerd to read a process's last output.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// A reader that takes nothing for this long is taken to be gone. 50 ms
/// lost the tail of 10 MB when the machine was busy (ctr closes its reader
/// once Delete returns).
const DRAIN_STALL: Duration = Duration::from_millis(500);

pub struct IoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

pub struct Process {
    pub pid: i32,
    pidfd: OwnedFd,
    /// An exec rather than a container's init: one that never ran has no
    /// exit of its own (see `watch_exit`).
    is_exec: bool,
    pub io: IoPaths,
    /// The copies of its output to containerd's fifos (or log file).
    relays: Mutex<Relays>,
    /// A `binary://` logging binary: the exit is reported once it drained.
    logger: Mutex<Option<Logger>>,
    /// A terminal's copy loops (`process.terminal`).
    console: Mutex<Option<Console>>,
    /// The copy of containerd's stdin fifo into the process's stdin pipe.
    stdin_feed: Mutex<Option<tokio::task::AbortHandle>>,
    /// A reader of containerd's stdin fifo held until Delete, as the runc
    /// shim holds it: containerd's stdin copy outlives the process (a
    /// client types on after the exit) and a write with no reader would
    /// be EPIPE, logged by containerd as a failed redirect.
    _stdin_reader: Option<OwnedFd>,
    /// Read and moved without waiting, never across an await: State and
    /// Kill answer even while a Start waits on a process that does not
    /// answer (stopped, or stuck before its exec).
    life: Mutex<Lifecycle>,
    /// Held by Start (with the handshake's channel), Pause and Resume and
    /// the exit's handling, so what they queue keeps its order: TaskStart
    /// before TaskExit, a freeze before a thaw.
    order: tokio::sync::Mutex<Option<(ParentEnd, Phase)>>,
    exited: watch::Sender<Option<Exit>>,
}

/// What the process's stdio goes through besides containerd's fifos.
#[derive(Default)]
pub struct Outputs {
    pub logger: Option<Logger>,
    pub console: Option<Console>,
    pub stdin: Option<StdinFeed>,
}

/// Copies containerd's stdin fifo into the process's pipe until the writer
/// goes; the pipe's end then is the process's end of input.
fn feed_stdin(feed: StdinFeed) -> Option<tokio::task::AbortHandle> {
    let (fifo, pipe) = match (sys::async_fd(feed.fifo), sys::async_fd(feed.pipe)) {
        (Ok(f), Ok(p)) => (f, p),
        (Err(e), _) | (_, Err(e)) => {
            log::warn!("stdin: {e}");
            return None;
        }
    };
    Some(tokio::spawn(async move { crate::pump::copy(&fifo, &pipe).await }).abort_handle())
}

/// A running logging binary (`binary://` stdio) and its exit.
pub struct Logger {
    pub pid: i32,
    pub exited: oneshot::Receiver<u32>,
}

impl Logger {
    /// How long a logger may take to drain once the process's output is
    /// closed, before it is asked to stop (containerd allows 12 s too).
    const DRAIN: Duration = Duration::from_secs(12);

    /// Waits for the logger to read the last output (it exits at EOF); one
    /// that does not is sent SIGTERM, then SIGKILL.
    pub async fn drained(mut self) {
        for sig in [libc::SIGTERM, libc::SIGKILL] {
            let limit = if sig == libc::SIGTERM { Self::DRAIN } else { Duration::from_secs(2) };
            if tokio::time::timeout(limit, &mut self.exited).await.is_ok() {
                return;
            }
            log::warn!("logging binary {} still running; sending signal {sig}", self.pid);
            let _ = sys::kill(self.pid, sig);
        }
        let _ = self.exited.await;
    }

    /// For a process that will never run: no output to wait for.
    pub async fn stop(self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        let _ = self.exited.await;
    }
}

/// Why Start, Pause or Resume did not happen: the process is not in a
/// state that allows it (the client's mistake: FAILED_PRECONDITION), or the
/// step itself failed (INTERNAL).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Illegal(#[from] Illegal),
    #[error("{0}")]
    Failed(String),
}

/// The process is gone; a signal has nobody to reach.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("process already finished")]
    Finished,
    #[error("signal {0}: {1}")]
    Failed(i32, std::io::Error),
}

impl Process {
    /// A spawned process that answered Ready.
    pub fn new(
        spawned: Spawned,
        phase: Phase,
        io: IoPaths,
        relays: Relays,
        out: Outputs,
        is_exec: bool,
    ) -> Arc<Process> {
        Arc::new(Process {
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            is_exec,
            io,
            relays: Mutex::new(relays),
            logger: Mutex::new(out.logger),
            console: Mutex::new(out.console),
            _stdin_reader: out.stdin.as_ref().and_then(|f| f.fifo.try_clone().ok()),
            stdin_feed: Mutex::new(out.stdin.and_then(feed_stdin)),
            life: Mutex::new(Lifecycle::default()),
            order: tokio::sync::Mutex::new(Some((spawned.chan, phase))),
            exited: watch::channel(None).0,
        })
    }

    /// The process, pinned: namespaces joined through it are its own.
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }

    fn life(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.life.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets the process exec. `on_started` runs with the order lock still
    /// held, so whatever it queues (TaskStart) precedes whatever the exit
    /// queues. The process is Running only once its program runs.
    pub async fn start(&self, on_started: impl FnOnce()) -> Result<(), StepError> {
        let mut order = self.order.lock().await;
        self.life().may_start()?;
        let Some((mut chan, phase)) = order.take() else {
            return Err(StepError::Failed("the process is gone".into()));
        };
        match chan.start(phase).await {
            Ok(_) => {
                // The exit's handling waits on the order lock: nothing
                // moved the process out of Created meanwhile.
                self.life().start()?;
                on_started();
                Ok(())
            }
            Err(e) => {
                // It never ran its program: Created still (as the runc
                // shim's exec stays). It reports and exits; its exit is
                // handled as any other.
                let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
                Err(StepError::Failed(e))
            }
        }
    }

    pub async fn signal(&self, sig: i32) -> Result<(), SignalError> {
        if !self.life().signalable() {
            return Err(SignalError::Finished);
        }
        match sys::pidfd_send_signal(self.pidfd.as_raw_fd(), sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(SignalError::Finished),
            r => r.map_err(|e| SignalError::Failed(sig, e)),
        }
    }

    /// Running <-> Paused, with `freeze` (the cgroup's freezer) done under
    /// the order lock, so an exit or a thaw comes after it.
    pub async fn set_paused(
        &self,
        paused: bool,
        freeze: impl std::future::Future<Output = Result<(), String>>,
    ) -> Result<(), StepError> {
        let _order = self.order.lock().await;
        if paused { self.life().pause() } else { self.life().resume() }?;
        if let Err(e) = freeze.await {
            // Back to where it was: the freezer did not change.
            let _ = if paused { self.life().resume() } else { self.life().pause() };
            return Err(StepError::Failed(e));
        }
        Ok(())
    }

    /// Runs `step` under the order lock if the process is Running or Paused
    /// (Checkpoint): an exit the step causes is handled after it, so what the
    /// step publishes comes first, and a Pause or Resume waits for it.
    pub async fn while_live<T>(
        &self,
        action: &'static str,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, Illegal> {
        let _order = self.order.lock().await;
        let from = self.life().status();
        if !matches!(from, Status::Running | Status::Paused) {
            return Err(Illegal { action, from });
        }
        Ok(step.await)
    }

    /// Runs `thaw` if the process is Paused, after any Pause or Resume in
    /// progress (a thaw under a freeze still being made would be undone).
    pub async fn thaw_if_paused(
        &self,
        thaw: impl std::future::Future<Output = Result<(), String>>,
    ) -> Result<(), String> {
        let _order = self.order.lock().await;
        if self.life().status() == Status::Paused {
            thaw.await?;
        }
        Ok(())
    }

    pub async fn status(&self) -> (Status, Option<Exit>) {
        let life = self.life();
        (life.status(), life.exit())
    }

    pub async fn wait_exit(&self) -> Option<Exit> {
        let mut rx = self.exited.subscribe();
        rx.wait_for(Option::is_some).await.ok().and_then(|e| *e)
    }

    /// CloseIO (and the exit): the program reads end of input.
    pub fn close_stdin(&self) {
        if let Some(feed) = self.stdin_feed.lock().ok().and_then(|mut f| f.take()) {
            feed.abort();
        }
        if let Ok(Some(c)) = self.console.lock().as_deref_mut() {
            c.close_stdin();
        }
    }

    /// ResizePty; a process without a terminal has nothing to resize.
    /// A process without a terminal has nothing to resize: a no-op, as with
    /// the runc shim (clients resize unconditionally).
    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        match self.console.lock().as_deref() {
            Ok(Some(c)) => c.resize(width, height).map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// Stopped -> Deleted; one that never started is killed and awaited first.
    pub async fn delete(&self) -> Result<Exit, Illegal> {
        if self.life().status() == Status::Created {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            self.wait_exit().await;
        }
        let exit = self.life().delete()?;
        self.drain_output().await;
        Ok(exit)
    }

    /// Waits until containerd's readers have taken the process's last output
    /// (clients such as ctr close their fifo readers once Delete returns),
    /// then closes the relays so those readers see EOF. A reader that makes
    /// no progress for DRAIN_STALL is taken to be gone.
    async fn drain_output(&self) {
        self.output_read(DRAIN_LIMIT, false).await;
        let left = self.relays.lock().map_or(0, |r| r.unread());
        if left > 0 {
            log::warn!("pid {}: {left} bytes of output unread by containerd; letting go of the fifos", self.pid);
        }
        self.close_relays().await;
    }

    /// At exit: closes the relays once their pipes have ended and the
    /// readers have taken the output, so they see EOF before the client
    /// hears of the exit (ctr 1.6 exits right after Delete and drops what
    /// its copier read but had not yet written). Output nobody is reading
    /// (containerd restarting), or a pipe still held by a process that
    /// outlived an exec, stays relayed until Delete.
    async fn release_read_output(&self) {
        if self.output_read(DRAIN_STALL, true).await {
            self.close_relays().await;
        }
    }

    async fn close_relays(&self) {
        let relays = self.relays.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        relays.close().await;
    }

    /// Whether the output not yet read reached zero (and, with `ended`,
    /// every pipe ended) within `limit`, the readers never pausing longer
    /// than DRAIN_STALL.
    async fn output_read(&self, limit: Duration, ended: bool) -> bool {
        let left = || self.relays.lock().map_or((0, true), |r| (r.unread(), r.ended()));
        let (start, mut last, mut progress) = (Instant::now(), usize::MAX, Instant::now());
        loop {
            let (n, done) = left();
            if n == 0 && (done || !ended) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            if n < last {
                (last, progress) = (n, Instant::now());
            } else if progress.elapsed() > DRAIN_STALL {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Turns the reaper's report into the exit: the stdin handle dropped (the
    /// output ones wait for Delete), `on_exit` run once under the lock
    /// (TaskExit), then Wait released.
    pub fn watch_exit(self: &Arc<Self>, rx: oneshot::Receiver<u32>, on_exit: impl FnOnce(Exit) + Send + 'static) {
        let p = self.clone();
        tokio::spawn(async move {
            let code = rx.await.unwrap_or(128 + libc::SIGKILL as u32);
            let exit = Exit { code, at: SystemTime::now() };
            p.close_stdin();
            let logger = p.logger.lock().ok().and_then(|mut l| l.take());
            if let Some(l) = logger {
                l.drained().await;
            }
            let console = p.console.lock().ok().and_then(|mut c| c.as_mut().and_then(Console::take_drained));
            if let Some(drained) = console {
                drained.await;
            }
            p.release_read_output().await;
            let mut order = p.order.lock().await;
            *order = None;
            // An exec that never ran its program (deleted before Start, or
            // its Start failed) has no exit of its own, as under the runc
            // shim, whose exec process exists only from Start: status 0
            // and no TaskExit. An init's exit is always reported.
            let (first, exit) = {
                let mut life = p.life();
                let ran = !p.is_exec || life.status() != Status::Created;
                let exit = if ran { exit } else { Exit { code: 0, ..exit } };
                (life.exited(exit) && ran, exit)
            };
            if first {
                on_exit(exit);
            }
            drop(order);
            p.exited.send_replace(Some(exit));
        });
    }
}
