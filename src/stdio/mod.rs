//! The container's stdio. containerd hands us fifo paths (or a `file://` or
//! `binary://` URI); the container gets pipes, never a host fifo or file
//! (see `relay`). stdin is copied from containerd's fifo into a pipe (see
//! `StdinFeed`), so containerd's writer closing, CloseIO or the exit end the
//! input. stdout and stderr go into pipes the shim relays to the fifos, which
//! it holds until Delete as the runc shim holds its fifo writers: a client
//! whose reader opens late (ctr opens its fifos from a goroutine) still finds
//! a writer and the output, and Delete closes them only once containerd has
//! read the last byte.
//!
//! The other URIs containerd uses: `file:///path` (the shim appends to the
//! file, created 0600), and `binary:///path?k=v` (a logging binary: see
//! `logger`; the container writes into the binary's pipes, and the process's
//! exit is reported once the binary has drained them and exited). An empty
//! URI is /dev/null, as the runc shim leaves it.

mod logger;
mod relay;

pub use self::logger::logger_command;
pub use self::relay::Relays;
use self::relay::{Pending, Sink};

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("stdio {which} {path:?}: {detail}")]
pub struct StdioError {
    which: &'static str,
    path: String,
    detail: String,
}

pub struct Stdio {
    /// stdin, stdout, stderr as the container gets them.
    pub container: [OwnedFd; 3],
    stdin_feed: Option<StdinFeed>,
    /// The output pipes' read ends and where they go, started with the
    /// process (`into_relays`).
    relays: Vec<Pending>,
    /// The logging binary of a `binary://` URI, started (see `logger_ready`).
    pub logger: Option<u32>,
    /// Its ready pipe and the URI, until `logger_ready` has seen it.
    logger_ready: Option<(OwnedFd, String)>,
}

/// containerd's stdin fifo (our non-blocking reader) and the pipe the
/// process reads: copied until containerd's writer closes, which is then the
/// end of input, as with the runc shim (`echo data | ctr task exec ID cat`
/// ends without a CloseIO). Readiness on a fifo reader appears only once a
/// writer has come, so a writer that has not connected yet is no EOF.
pub struct StdinFeed {
    pub fifo: OwnedFd,
    pub pipe: OwnedFd,
}

/// Who the output is for, as a logging binary is told.
pub struct Owner<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
}

/// How long a logging binary may take to say it is ready (containerd
/// waits without a limit; a shim must not hang on a bad logger).
const LOGGER_READY: std::time::Duration = std::time::Duration::from_secs(10);

impl Stdio {
    pub fn open(stdin: &str, stdout: &str, stderr: &str, owner: &Owner) -> Result<Stdio, StdioError> {
        let (i, stdin_feed) = open_stdin(stdin)?;
        if let Some(rest) = stdout.strip_prefix("binary://") {
            if !stderr.is_empty() && stderr != stdout {
                let detail = "stdout is a logging binary, so stderr must be the same URI or empty".to_string();
                return Err(StdioError { which: "stderr", path: stderr.to_string(), detail });
            }
            let (o, e, pid, ready) = logger::start(rest, owner).map_err(|detail| StdioError {
                which: "stdout",
                path: stdout.to_string(),
                detail,
            })?;
            return Ok(Stdio {
                container: [i, o, e],
                stdin_feed,
                relays: Vec::new(),
                logger: Some(pid),
                logger_ready: Some((ready, stdout.to_string())),
            });
        }
        let mut relays = Vec::new();
        let o = open_output("stdout", stdout, &mut relays)?;
        // One pipe for both when they name the same place: the order of
        // what the two streams write is kept.
        let e = if stderr == stdout && !stdout.is_empty() {
            o.try_clone().map_err(|e| StdioError {
                which: "stderr",
                path: stderr.to_string(),
                detail: e.to_string(),
            })?
        } else {
            open_output("stderr", stderr, &mut relays)?
        };
        Ok(Stdio { container: [i, o, e], stdin_feed, relays, logger: None, logger_ready: None })
    }

    /// Waits for the logging binary to say it is ready: a byte on its fd 5,
    /// or fd 5 closed (EOF), as containerd accepts. Awaited, not polled: one
    /// shim serves a whole pod, and a slow logger must not stall the other
    /// containers' RPCs. The caller registers the logger with the reaper
    /// first; one not ready in time is killed.
    pub async fn logger_ready(&mut self) -> Result<(), StdioError> {
        let Some((fd, uri)) = self.logger_ready.take() else {
            return Ok(());
        };
        let err = |detail: String| StdioError { which: "stdout", path: uri.clone(), detail };
        let ready = crate::sys::set_nonblocking(fd.as_raw_fd(), true)
            .and_then(|()| crate::sys::async_fd(fd))
            .map_err(|e| err(format!("logging binary: {e}")))?;
        match tokio::time::timeout(LOGGER_READY, ready.readable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(err(format!("logging binary: {e}"))),
            Err(_) => {
                if let Some(pid) = self.logger {
                    let _ = crate::sys::kill(pid as i32, libc::SIGKILL);
                }
                Err(err(format!("logging binary: not ready after {} s", LOGGER_READY.as_secs())))
            }
        }
    }

    /// Starts relaying the output. The container's ends are no longer
    /// ours once the process has them: dropped here, so a pipe ends when
    /// the last process holding it does.
    pub fn into_relays(self) -> Relays {
        Relays::start(self.relays)
    }

    pub fn take_stdin_feed(&mut self) -> Option<StdinFeed> {
        self.stdin_feed.take()
    }
}

/// The fifo a plain path or `fifo://` URI names; anything else is refused.
pub fn fifo_path<'a>(which: &str, uri: &'a str) -> Result<&'a str, String> {
    let path = match uri.split_once("://") {
        None => uri,
        Some(("fifo", p)) => p,
        Some((scheme, _)) => return Err(format!("{scheme}:// is not a stdio URI the shim knows for {which}")),
    };
    let md = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !md.file_type().is_fifo() {
        return Err("not a fifo".into());
    }
    Ok(path)
}

fn open_stdin(uri: &str) -> Result<(OwnedFd, Option<StdinFeed>), StdioError> {
    let err = |detail: String| StdioError { which: "stdin", path: uri.to_string(), detail };
    if uri.is_empty() {
        return dev_null("stdin").map(|f| (f, None));
    }
    let path = fifo_path("stdin", uri).map_err(err)?;
    let fifo = open(path, true, false, true).map_err(|e| err(e.to_string()))?;
    let (r, w) = crate::sys::pipe().map_err(|e| err(e.to_string()))?;
    crate::sys::set_nonblocking(w.as_raw_fd(), true).map_err(|e| err(e.to_string()))?;
    Ok((r, Some(StdinFeed { fifo: fifo.into(), pipe: w })))
}

fn dev_null(which: &'static str) -> Result<OwnedFd, StdioError> {
    let f = OpenOptions::new().read(true).write(true).open("/dev/null");
    f.map(OwnedFd::from).map_err(|e| StdioError { which, path: String::new(), detail: e.to_string() })
}

/// The container's end of a new pipe whose bytes go where `uri` says.
fn open_output(which: &'static str, uri: &str, relays: &mut Vec<Pending>) -> Result<OwnedFd, StdioError> {
    let err = |detail: String| StdioError { which, path: uri.to_string(), detail };
    if uri.is_empty() {
        return dev_null(which);
    }
    let sink = match uri.strip_prefix("file://") {
        Some(p) => Sink::File(append_to(p).map_err(err)?),
        None => {
            let path = fifo_path(which, uri).map_err(err)?;
            // O_RDWR on a fifo never blocks and counts as both a reader
            // and a writer.
            Sink::Fifo(open(path, true, true, true).map_err(|e| err(e.to_string()))?.into())
        }
    };
    let (pipe, end) = crate::sys::pipe().map_err(|e| err(e.to_string()))?;
    relays.push(Pending { pipe, sink });
    Ok(end)
}

/// `file://`: appended to (created 0600, its directory made if missing),
/// as containerd's shims do.
fn append_to(path: &str) -> Result<File, String> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err("file:// needs an absolute path".into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(|e| e.to_string())
}

fn open(path: &str, read: bool, write: bool, nonblock: bool) -> std::io::Result<File> {
    let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
    OpenOptions::new().read(read).write(write).custom_flags(flags).open(Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    fn mkfifo(name: &str) -> String {
        let p = std::env::temp_dir().join(format!("myshim-stdio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        p.to_string_lossy().into_owned()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// What the container's fd is: a pipe, never the host's fifo or file.
    fn is_pipe(fd: &OwnedFd) -> bool {
        let link = std::fs::read_link(crate::sys::fd_link(fd)).expect("readlink");
        link.to_string_lossy().starts_with("pipe:[")
    }

    const OWNER: Owner = Owner { id: "c1", namespace: "ns" };

    /// Guard: the container holds pipes only (issue 22, host files).
    #[test]
    fn file_uris_append_to_a_new_private_file_through_one_pipe() {
        let dir = std::env::temp_dir().join(format!("myshim-stdio-file-{}", std::process::id()));
        let path = dir.join("sub/out.log");
        let uri = format!("file://{}", path.display());
        rt().block_on(async {
            for line in ["one\n", "two\n"] {
                let mut s = Stdio::open("", &uri, &uri, &OWNER).expect("open");
                let [_, o, e] = std::mem::replace(&mut s.container, [dev_null("t")?, dev_null("t")?, dev_null("t")?]);
                assert!(is_pipe(&o) && is_pipe(&e));
                let relays = s.into_relays();
                File::from(o).write_all(line.as_bytes()).expect("write");
                drop(e);
                while !relays.ended() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                relays.close().await;
            }
            Ok::<(), StdioError>(())
        })
        .expect("stdio");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// The container's stdout is a pipe; what it writes reaches a reader
    /// that opens late, is counted until read, and the reader sees EOF
    /// once the relays are closed.
    #[test]
    fn output_waits_for_a_late_reader_is_counted_and_ends_at_close() {
        let out = mkfifo("out");
        rt().block_on(async {
            let mut s = Stdio::open("", &out, "", &OWNER).expect("open");
            let o = std::mem::replace(&mut s.container[1], dev_null("t").expect("null"));
            assert!(is_pipe(&o), "the container's stdout is a pipe");
            let relays = s.into_relays();
            File::from(o).write_all(b"hello\n").expect("no EPIPE without a reader");
            while !relays.ended() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert_eq!(relays.unread(), 6, "in the fifo, for the reader to come");
            let mut r = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&out).expect("reader");
            let mut buf = [0u8; 6];
            r.read_exact(&mut buf).expect("read");
            assert_eq!(&buf, b"hello\n");
            assert_eq!(relays.unread(), 0);
            relays.close().await;
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).expect("EOF once the relays are closed");
            assert!(rest.is_empty());
        });
        std::fs::remove_file(&out).expect("cleanup");
    }

    /// More than a pipe and a fifo hold: the relay waits for the reader
    /// rather than dropping or spinning.
    #[test]
    fn a_megabyte_crosses_a_slow_reader_intact() {
        let out = mkfifo("mb");
        let path = out.clone();
        let reader = std::thread::spawn(move || {
            let mut r = File::open(&path).expect("reader");
            let mut got = Vec::new();
            std::thread::sleep(std::time::Duration::from_millis(50));
            r.read_to_end(&mut got).expect("read");
            got
        });
        let sent: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        rt().block_on(async {
            let mut s = Stdio::open("", &out, "", &OWNER).expect("open");
            let o = std::mem::replace(&mut s.container[1], dev_null("t").expect("null"));
            let relays = s.into_relays();
            let data = sent.clone();
            let writer = std::thread::spawn(move || File::from(o).write_all(&data).expect("write"));
            while !relays.ended() || relays.unread() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            writer.join().expect("writer");
            relays.close().await;
        });
        assert!(reader.join().expect("reader") == sent, "every byte, in order");
        std::fs::remove_file(&out).expect("cleanup");
    }

    #[test]
    fn bad_uris_are_named() {
        let e = Stdio::open("", "binary:///no/such/logger", "", &OWNER).err().expect("refused").to_string();
        assert_eq!(e, "stdio stdout \"binary:///no/such/logger\": logging binary /no/such/logger: No such file or directory (os error 2)");
        let e = Stdio::open("", "tcp://1.2.3.4:5", "", &OWNER).err().expect("refused").to_string();
        assert_eq!(e, "stdio stdout \"tcp://1.2.3.4:5\": tcp:// is not a stdio URI the shim knows for stdout");
        let e = Stdio::open("", "file://relative.log", "", &OWNER).err().expect("refused").to_string();
        assert_eq!(e, "stdio stdout \"file://relative.log\": file:// needs an absolute path");
        let e = Stdio::open("/no/such/fifo", "", "", &OWNER).err().expect("refused").to_string();
        assert!(e.starts_with("stdio stdin \"/no/such/fifo\": No such file"), "{e}");
    }
}
