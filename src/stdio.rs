//! The container's stdio. containerd hands us fifo paths; the container gets
//! the fifos themselves (no copy loop, no copy thread), and the shim keeps an
//! extra read-write handle on each so the container never sees EPIPE or a
//! premature EOF while containerd's end is closed (e.g. during a restart).
//! The stdin handle goes when the process exits or on CloseIO (so a reader
//! in the container sees EOF); the output handles stay until Delete, as the
//! runc shim keeps its fifo writers: a client whose reader opens late (ctr
//! opens its fifos from a goroutine) still finds a writer and the output,
//! and Delete closes them only once containerd has read the last byte.

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

    /// Output written but not yet read by containerd.
    pub fn unread(&self) -> usize {
        self.out.iter().map(|k| crate::sys::unread_bytes(k.as_raw_fd()).unwrap_or(0)).sum()
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
    fn unread_output_is_counted_and_the_reader_sees_eof_after_release() {
        let out = mkfifo("drain");
        let mut r = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&out).expect("reader");
        let Stdio { container: [_, o, _], stdin_keeper, out_keepers } = Stdio::open("", &out, "").expect("open");
        let mut k = Keepers { stdin: stdin_keeper, out: out_keepers };
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
        let e = Stdio::open("", "binary:///usr/bin/logger", "").err().expect("refused").to_string();
        assert_eq!(e, "stdio stdout \"binary:///usr/bin/logger\": binary:// stdio is not supported yet");
        let e = Stdio::open("/no/such/fifo", "", "").err().expect("refused").to_string();
        assert!(e.starts_with("stdio stdin \"/no/such/fifo\": No such file"), "{e}");
    }
}
