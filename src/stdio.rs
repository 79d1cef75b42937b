//! The container's stdio. containerd hands us fifo paths; the container gets
//! the fifos themselves (no copy loop, no copy thread), and the shim keeps an
//! extra read-write handle on each so the container never sees EPIPE or a
//! premature EOF while containerd's end is closed (e.g. during a restart).
//! stdin is copied into a pipe instead (see `StdinFeed`), so containerd's
//! writer closing, CloseIO or the exit end the input; the output handles
//! stay until Delete, as the
//! runc shim keeps its fifo writers: a client whose reader opens late (ctr
//! opens its fifos from a goroutine) still finds a writer and the output,
//! and Delete closes them only once containerd has read the last byte.
//!
//! The other URIs containerd uses: `file:///path` (the container appends to
//! the file itself, created 0600), and `binary:///path?k=v` (a logging
//! binary, started as containerd's shims start it: pipes on its fds 3 and 4,
//! readiness on fd 5, CONTAINER_ID and CONTAINER_NAMESPACE in its env; the
//! container writes into the pipes, and the process's exit is reported once
//! the binary has drained them and exited).

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
    out_keepers: Vec<OwnedFd>,
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
            let (o, e, pid, ready) = start_logger(rest, owner).map_err(|detail| StdioError {
                which: "stdout",
                path: stdout.to_string(),
                detail,
            })?;
            return Ok(Stdio {
                container: [i, o, e],
                stdin_feed,
                out_keepers: Vec::new(),
                logger: Some(pid),
                logger_ready: Some((ready, stdout.to_string())),
            });
        }
        let mut keepers = Vec::new();
        let (o, k) = open_one("stdout", stdout, true)?;
        keepers.extend(k);
        let (e, k) = open_one("stderr", stderr, true)?;
        keepers.extend(k);
        Ok(Stdio { container: [i, o, e], stdin_feed, out_keepers: keepers, logger: None, logger_ready: None })
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

    /// The container's ends are no longer ours once the init has them.
    pub fn into_keepers(self) -> Keepers {
        Keepers { out: self.out_keepers }
    }

    pub fn take_stdin_feed(&mut self) -> Option<StdinFeed> {
        self.stdin_feed.take()
    }
}

pub struct Keepers {
    out: Vec<OwnedFd>,
}

impl Keepers {
    pub fn release(&mut self) {
        self.out.clear();
    }

    /// Output written but not yet read by containerd.
    pub fn unread(&self) -> usize {
        self.out.iter().map(|k| crate::sys::unread_bytes(k.as_raw_fd()).unwrap_or(0)).sum()
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
        return open_one("stdin", uri, false).map(|(f, _)| (f, None));
    }
    let path = fifo_path("stdin", uri).map_err(err)?;
    let fifo = open(path, true, false, true).map_err(|e| err(e.to_string()))?;
    let (r, w) = crate::sys::pipe().map_err(|e| err(e.to_string()))?;
    crate::sys::set_nonblocking(w.as_raw_fd(), true).map_err(|e| err(e.to_string()))?;
    Ok((r, Some(StdinFeed { fifo: fifo.into(), pipe: w })))
}

fn open_one(which: &'static str, uri: &str, write: bool) -> Result<(OwnedFd, Option<OwnedFd>), StdioError> {
    let err = |detail: String| StdioError { which, path: uri.to_string(), detail };
    if uri.is_empty() {
        let f = OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| err(e.to_string()))?;
        return Ok((f.into(), None));
    }
    if let Some(p) = uri.strip_prefix("file://").filter(|_| write) {
        return append_to(p).map(|f| (f, None)).map_err(err);
    }
    let path = fifo_path(which, uri).map_err(err)?;
    // O_RDWR on a fifo never blocks and counts as both a reader and a writer.
    let keeper = open(path, true, true, false).map_err(|e| err(e.to_string()))?;
    let end = open(path, !write, write, true).map_err(|e| err(e.to_string()))?;
    crate::sys::set_nonblocking(end.as_raw_fd(), false).map_err(|e| err(e.to_string()))?;
    Ok((end.into(), Some(keeper.into())))
}

/// `file://`: the process appends to the file itself (created 0600, its
/// directory made if missing), as containerd's shims do.
fn append_to(path: &str) -> Result<OwnedFd, String> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err("file:// needs an absolute path".into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    let f = OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(|e| e.to_string())?;
    Ok(f.into())
}

/// `binary:///path?k=v&flag`: the path, and the query as arguments
/// (`k v flag`), percent-decoded.
pub fn logger_command(rest: &str) -> Result<(String, Vec<String>), String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path)?;
    if !path.starts_with('/') {
        return Err("binary:// needs an absolute path".into());
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(percent_decode(k)?);
        if !v.is_empty() {
            args.push(percent_decode(v)?);
        }
    }
    Ok((path, args))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad percent escape in {s:?}"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Starts the logging binary; returns the container's ends of the stdout
/// and stderr pipes, the binary's pid and the read end of its ready pipe.
fn start_logger(rest: &str, owner: &Owner) -> Result<(OwnedFd, OwnedFd, u32, OwnedFd), String> {
    use std::os::fd::AsFd;
    let (path, args) = logger_command(rest)?;
    std::fs::metadata(&path).map_err(|e| format!("logging binary {path}: {e}"))?;
    if !crate::sys::is_executable(Path::new(&path)) {
        return Err(format!("logging binary {path}: not an executable file"));
    }
    let (out_r, out_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    let (err_r, err_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    let (ready_r, ready_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    // Sources above 5, so the child's dup2 onto 3, 4, 5 cannot clobber one.
    let high = [&out_r, &err_r, &ready_w]
        .iter()
        .map(|f| crate::sys::dup_above(f.as_fd().as_raw_fd(), 6))
        .collect::<std::io::Result<Vec<OwnedFd>>>()
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", owner.id)
        .env("CONTAINER_NAMESPACE", owner.namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = crate::sys::spawn_with_fds(&mut cmd, high.iter().map(|f| f.as_raw_fd()).collect())
        .map_err(|e| format!("start logging binary {path}: {e}"))?;
    drop((high, out_r, err_r, ready_w));
    Ok((out_w, err_w, child.id(), ready_r))
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

    const OWNER: Owner = Owner { id: "c1", namespace: "ns" };

    #[test]
    fn logger_uris_become_a_path_and_arguments() {
        assert_eq!(
            logger_command("/usr/bin/log?tag=web%201&debug").expect("ok"),
            ("/usr/bin/log".to_string(), vec!["tag".to_string(), "web 1".to_string(), "debug".to_string()])
        );
        assert_eq!(logger_command("/l").expect("ok"), ("/l".to_string(), vec![]));
        assert!(logger_command("relative").is_err());
        assert!(logger_command("/l?x=%zz").is_err());
    }

    #[test]
    fn file_uris_append_to_a_new_private_file() {
        let dir = std::env::temp_dir().join(format!("myshim-stdio-file-{}", std::process::id()));
        let path = dir.join("sub/out.log");
        let uri = format!("file://{}", path.display());
        for line in ["one\n", "two\n"] {
            let s = Stdio::open("", &uri, &uri, &OWNER).expect("open");
            let [_, o, _] = s.container;
            File::from(o).write_all(line.as_bytes()).expect("write");
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn output_survives_a_missing_reader_and_reaches_a_late_one() {
        let out = mkfifo("out");
        let s = Stdio::open("", &out, "", &OWNER).expect("open");
        let [_, o, _] = s.container;
        let mut w = File::from(o);
        w.write_all(b"hello\n").expect("no EPIPE without a reader");
        let mut r = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&out).expect("reader");
        let mut buf = [0u8; 6];
        r.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hello\n");
        std::fs::remove_file(&out).expect("cleanup");
    }

    #[test]
    fn unread_output_is_counted_and_the_reader_sees_eof_after_release() {
        let out = mkfifo("drain");
        let mut r = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&out).expect("reader");
        let Stdio { container: [_, o, _], out_keepers, .. } = Stdio::open("", &out, "", &OWNER).expect("open");
        let mut k = Keepers { out: out_keepers };
        File::from(o).write_all(b"tail\n").expect("write");
        assert_eq!(k.unread(), 5);
        let mut got = [0u8; 5];
        r.read_exact(&mut got).expect("read");
        assert_eq!(k.unread(), 0);
        k.release();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).expect("EOF once the writers are gone");
        assert!(rest.is_empty());
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
