//! Terminals: the shim's side. The init makes the pty inside the container
//! (the container's devpts, so the process sees its own /dev/pts/N) and
//! leaves the master at `runtime::init::CONSOLE_FD`; the shim takes it with pidfd_getfd
//! before the exec and copies between it and containerd's fifos: stdin into
//! the master, the master into stdout. The process's exit is reported once
//! the master has given its last byte (EIO when the last slave closes).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::sys;

/// ^D: what CloseIO sends, since a terminal has no EOF of its own.
const VEOF: u8 = 0x04;

/// How long the exit report waits for the last output of the master.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

pub struct Console {
    master: Arc<AsyncFd<OwnedFd>>,
    stdin: Option<AbortHandle>,
    /// containerd's stdin fifo, held open until the console is dropped
    /// (Delete) once the copy ends, as the runc shim holds it: what the
    /// client types after the exit is not a write without a reader.
    _stdin_reader: Option<OwnedFd>,
    drained: Option<oneshot::Receiver<()>>,
}

impl Console {
    /// Starts copying: `stdin` (a fifo path, may be empty) into the master,
    /// the master into `stdout` (a fifo path, may be empty).
    pub fn start(master: OwnedFd, stdin: &str, stdout: &str) -> io::Result<Console> {
        sys::set_nonblocking(master.as_raw_fd(), true)?;
        let master = Arc::new(sys::async_fd(master)?);
        let (done_tx, drained) = oneshot::channel();
        let out = open_fifo(stdout, true)?;
        let m = master.clone();
        tokio::spawn(async move {
            if let Some(out) = out {
                let _ = crate::pump::copy(&m, &out).await;
            }
            let _ = done_tx.send(());
        });
        let input = open_fifo(stdin, false)?;
        let reader = match &input {
            Some(i) => Some(i.get_ref().try_clone()?),
            None => None,
        };
        let stdin = input.map(|input| {
            let m = master.clone();
            tokio::spawn(async move { crate::pump::copy(&input, &m).await }).abort_handle()
        });
        Ok(Console { master, stdin, _stdin_reader: reader, drained: Some(drained) })
    }

    pub fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        sys::set_winsize(self.master.get_ref().as_raw_fd(), height as u16, width as u16)
    }

    /// CloseIO: no more input; the program reads end-of-file (^D).
    pub fn close_stdin(&mut self) {
        if let Some(task) = self.stdin.take() {
            task.abort();
            let _ = sys::write_all_fd(self.master.get_ref().as_raw_fd(), &[VEOF]);
        }
    }

    /// Waits (bounded) until the master's last output went to stdout.
    pub fn take_drained(&mut self) -> Option<impl std::future::Future<Output = ()>> {
        let rx = self.drained.take()?;
        Some(async move {
            let _ = tokio::time::timeout(DRAIN_LIMIT, rx).await;
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(task) = self.stdin.take() {
            task.abort();
        }
    }
}

fn open_fifo(path: &str, write: bool) -> io::Result<Option<AsyncFd<OwnedFd>>> {
    if path.is_empty() {
        return Ok(None);
    }
    let which = if write { "stdout" } else { "stdin" };
    let path = crate::stdio::fifo_path(which, path).map_err(|e| io::Error::other(format!("{which} {path}: {e}")))?;
    // O_RDWR: never blocks on open, never EOF or EPIPE while containerd's
    // end comes and goes.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{which} fifo {path}: {e}")))?;
    Ok(Some(sys::async_fd(OwnedFd::from(f))?))
}
