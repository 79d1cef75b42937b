//! The container's stdio. containerd hands us fifo paths; the container gets
//! the fifos themselves (no copy loop, no copy thread), and the shim keeps an
//! extra read-write handle on each so the container never sees EPIPE or a
//! premature EOF while containerd's end is closed (e.g. during a restart).
//! The handles go when the process exits (stdout/stderr: so containerd's
//! reader sees EOF) or on CloseIO (stdin: so the reader sees EOF).

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
    stdin_keeper: Option<OwnedFd>,
    out_keepers: Vec<OwnedFd>,
}

impl Stdio {
    pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<Stdio, StdioError> {
        let mut keepers = Vec::new();
        let (i, stdin_keeper) = open_one("stdin", stdin, false)?;
        let (o, k) = open_one("stdout", stdout, true)?;
        keepers.extend(k);
        let (e, k) = open_one("stderr", stderr, true)?;
        keepers.extend(k);
        Ok(Stdio { container: [i, o, e], stdin_keeper, out_keepers: keepers })
    }

    /// The container's ends are no longer ours once the init has them.
    pub fn into_keepers(self) -> Keepers {
        Keepers { stdin: self.stdin_keeper, out: self.out_keepers }
    }
}

pub struct Keepers {
    stdin: Option<OwnedFd>,
    out: Vec<OwnedFd>,
}

impl Keepers {
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn release(&mut self) {
        self.stdin = None;
        self.out.clear();
    }
}

fn open_one(which: &'static str, uri: &str, write: bool) -> Result<(OwnedFd, Option<OwnedFd>), StdioError> {
    let err = |detail: String| StdioError { which, path: uri.to_string(), detail };
    if uri.is_empty() {
        let f = OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| err(e.to_string()))?;
        return Ok((f.into(), None));
    }
    let path = match uri.split_once("://") {
        None => uri,
        Some(("fifo", p)) => p,
        Some((scheme, _)) => return Err(err(format!("{scheme}:// stdio is not supported yet"))),
    };
    let md = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !md.file_type().is_fifo() {
        return Err(err("not a fifo".into()));
    }
    // O_RDWR on a fifo never blocks and counts as both a reader and a writer.
    let keeper = open(path, true, true, false).map_err(|e| err(e.to_string()))?;
    let end = open(path, !write, write, true).map_err(|e| err(e.to_string()))?;
    crate::sys::set_blocking(end.as_raw_fd()).map_err(|e| err(e.to_string()))?;
    Ok((end.into(), Some(keeper.into())))
}

fn open(path: &str, read: bool, write: bool, nonblock: bool) -> std::io::Result<File> {
    let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
    OpenOptions::new().read(read).write(write).custom_flags(flags).open(Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn mkfifo(name: &str) -> String {
        let p = std::env::temp_dir().join(format!("myshim-stdio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn output_survives_a_missing_reader_and_reaches_a_late_one() {
        let out = mkfifo("out");
        let s = Stdio::open("", &out, "").expect("open");
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
    fn bad_uris_are_named() {
        let e = Stdio::open("", "binary:///usr/bin/logger", "").err().expect("refused").to_string();
        assert_eq!(e, "stdio stdout \"binary:///usr/bin/logger\": binary:// stdio is not supported yet");
        let e = Stdio::open("/no/such/fifo", "", "").err().expect("refused").to_string();
        assert!(e.starts_with("stdio stdin \"/no/such/fifo\": No such file"), "{e}");
    }
}
