//! The container's output goes into pipes the shim made; the shim moves it
//! on to containerd's fifo (splice: the bytes never pass through our
//! memory) or to a `file://` log. A container never holds a host fifo or a
//! host file, which its root could fchown, fchmod, ftruncate or reopen
//! through /proc/self/fd; it holds a pipe, as under the runc shim.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use crate::sys;

/// Where a pipe's bytes go.
pub enum Sink {
    /// containerd's fifo, opened read-write: it never blocks on open, and
    /// while we hold it the container never sees EPIPE, nor the reader EOF.
    Fifo(OwnedFd),
    /// A log file, opened for appending.
    File(File),
}

/// A pipe's read end and its sink, not moving yet (no runtime needed).
pub struct Pending {
    pub pipe: OwnedFd,
    pub sink: Sink,
}

type Counted = Arc<dyn AsRawFd + Send + Sync>;

/// The running copies of one process's output.
#[derive(Default)]
pub struct Relays {
    /// Copies into fifos, on the event loop.
    tasks: Vec<JoinHandle<()>>,
    /// Copies into log files, each on a helper thread until its pipe ends.
    threads: Vec<JoinHandle<()>>,
    /// The pipes, and the fifos: the bytes in them are not yet read by
    /// containerd. Held here too, so a fifo stays open (no EOF for its
    /// reader) until `close`, even once its pipe has ended.
    counted: Vec<Counted>,
}

impl Relays {
    /// Starts moving each pipe's bytes to its sink. One that cannot start
    /// is logged and dropped: its writer then gets EPIPE, never a hang.
    pub fn start(pending: Vec<Pending>) -> Relays {
        let mut relays = Relays::default();
        for p in pending {
            if let Err(e) = relays.start_one(p) {
                log::warn!("stdio: cannot relay the output: {e}");
            }
        }
        relays
    }

    fn start_one(&mut self, p: Pending) -> io::Result<()> {
        match p.sink {
            Sink::Fifo(fifo) => {
                sys::set_nonblocking(p.pipe.as_raw_fd(), true)?;
                sys::set_nonblocking(fifo.as_raw_fd(), true)?;
                let pipe = Arc::new(sys::async_fd(p.pipe)?);
                let fifo = Arc::new(sys::async_fd(fifo)?);
                self.counted.extend([pipe.clone() as Counted, fifo.clone() as Counted]);
                self.tasks.push(tokio::spawn(async move {
                    if let Err(e) = splice_all(&pipe, &fifo).await {
                        log::warn!("stdio: copy to containerd's fifo: {e}");
                    }
                }));
            }
            Sink::File(file) => {
                // Writes to a file can block on the disk, and splice(2)
                // refuses O_APPEND: a blocking copy on a helper thread.
                let pipe = Arc::new(File::from(p.pipe));
                self.counted.push(pipe.clone() as Counted);
                self.threads.push(tokio::task::spawn_blocking(move || {
                    if let Err(e) = io::copy(&mut &*pipe, &mut &file) {
                        log::warn!("stdio: copy to the log file: {e}");
                    }
                }));
            }
        }
        Ok(())
    }

    /// Output written but not yet read by containerd (or the log file).
    pub fn unread(&self) -> usize {
        self.counted.iter().map(|f| sys::unread_bytes(f.as_raw_fd()).unwrap_or(0)).sum()
    }

    /// Whether every pipe has ended: nobody is left to write (a process
    /// that outlives an exec, holding its stdout, keeps it going).
    pub fn ended(&self) -> bool {
        self.tasks.iter().chain(&self.threads).all(JoinHandle::is_finished)
    }

    /// Stops the copies and closes the fifos, so their readers see EOF once
    /// this returns. A file copy that still has a writer (a process that
    /// outlived an exec) is left to end with it: a thread cannot be
    /// aborted, and waiting for it would hold Delete up.
    pub async fn close(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Moves the pipe's bytes into the fifo until the pipe ends (every writer
/// gone and nothing left in it).
async fn splice_all(pipe: &AsyncFd<OwnedFd>, fifo: &AsyncFd<OwnedFd>) -> io::Result<()> {
    let waiting = || sys::unread_bytes(pipe.get_ref().as_raw_fd());
    loop {
        let mut from = pipe.readable().await?;
        loop {
            match sys::splice_some(pipe.get_ref(), fifo.get_ref()) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // EAGAIN: the pipe is empty, or the fifo full (no reader yet,
                // or a slow one). Readiness is cleared before the check that
                // follows, so a write in between is not missed.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if waiting()? == 0 {
                        from.clear_ready();
                        if waiting()? == 0 {
                            break;
                        }
                    } else {
                        fifo.writable().await?.clear_ready();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
