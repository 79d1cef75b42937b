//! The sealed copy of the shim binary that every init is exec'd from
//! (CVE-2019-5736: the container's /proc/self/exe is then a file nobody can
//! write), shared by the shims of a host.
//!
//! Making a copy is 5-6 MB of copying, and freeing it as much again: the
//! largest single cost of a container's start. A copy is immutable and the
//! same for every shim of one binary, so the shims share one. Each shim
//! holding a copy has a record in `<root>/sealed/`, named by its pid: its
//! start time and fd number, and the identity of the binary (a symlink's
//! target, so that writing one is a single atomic call that allocates no
//! data block). A new shim takes a holder's fd with pidfd_getfd and adds its
//! own record; it takes it only when
//!  - the binary named is the one it runs, unchanged since (device, inode,
//!    size, change time);
//!  - the holder is the process the record names: its start time is read
//!    while a pidfd pins the pid, and the fd is taken through that pidfd,
//!    which fails if the process has died, so a reused pid cannot pass;
//!  - what it gets is a memfd of the binary's size, sealed against writes.
//!
//! Anything else (no record, the holders gone, ptrace refused by an LSM or
//! Yama) and it makes its own. Records of dead shims are removed by whoever
//! finds them. A record is trusted as far as its writer: it lives under the
//! shim's root, which only root can write and no container sees.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::sys;

const RECORDS: &str = "sealed";

/// Which binary a copy was made from, and in which state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        Identity { dev: m.dev(), ino: m.ino(), size: m.size(), ctime: m.ctime(), ctime_nsec: m.ctime_nsec() }
    }

    /// The binary this process runs.
    fn of_self() -> io::Result<Identity> {
        Ok(Identity::of(&std::fs::metadata("/proc/self/exe")?))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Record {
    pid: i32,
    start: u64,
    fd: RawFd,
    exe: Identity,
}

impl Record {
    /// The link's target; the pid is the link's name.
    fn render(&self) -> String {
        let e = &self.exe;
        format!("{} {} {} {} {} {} {}", self.start, self.fd, e.dev, e.ino, e.size, e.ctime, e.ctime_nsec)
    }

    fn parse(name: &str, text: &str) -> Option<Record> {
        let mut f = text.split_ascii_whitespace();
        let mut next = || f.next();
        let rec = Record {
            pid: name.parse().ok()?,
            start: next()?.parse().ok()?,
            fd: next()?.parse().ok()?,
            exe: Identity {
                dev: next()?.parse().ok()?,
                ino: next()?.parse().ok()?,
                size: next()?.parse().ok()?,
                ctime: next()?.parse().ok()?,
                ctime_nsec: next()?.parse().ok()?,
            },
        };
        (next().is_none() && rec.pid > 0 && rec.fd >= 0).then_some(rec)
    }
}

/// A process's start time in clock ticks since boot (/proc/PID/stat, field
/// 22): with the pid, it names one process for the life of the system.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// A sealed copy of our binary: the one a live sibling holds if a record
/// names one that passes every check, else a new one. Either way this
/// process then has a record of its own.
pub fn acquire(root: &Path) -> io::Result<OwnedFd> {
    let me = Identity::of_self()?;
    let dir = root.join(RECORDS);
    // One shim at a time looks and, finding nothing, makes a copy: shims
    // started together then share the first copy instead of each making one
    // and holding it for its life.
    let _locked = lock(&dir);
    let fd = match borrow(&dir, &me) {
        Some(fd) => fd,
        None => sys::sealed_self_copy()?,
    };
    if let Err(e) = publish(&dir, &me, fd.as_raw_fd()) {
        log::debug!("record of this shim's sealed copy in {}: {e}", dir.display());
    }
    Ok(fd)
}

/// The records' directory, locked (unlocked when the file closes). Without
/// the lock (a read-only root) each shim still finds or makes a copy.
fn lock(dir: &Path) -> Option<File> {
    std::fs::create_dir_all(dir).ok()?;
    let f = File::open(dir).ok()?;
    sys::lock_exclusive(f.as_raw_fd()).ok()?;
    Some(f)
}

/// What one record turned out to be.
enum Found {
    Copy(OwnedFd),
    /// The process it names is gone: the record can go too.
    Dead,
    /// Not usable by us (another binary, an fd that fails the checks).
    Unusable,
}

fn borrow(dir: &Path, me: &Identity) -> Option<OwnedFd> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(rec) = std::fs::read_link(entry.path()).ok().and_then(|t| Record::parse(name.to_str()?, t.to_str()?))
        else {
            continue;
        };
        match check(&rec, me) {
            Found::Copy(fd) => return Some(fd),
            Found::Dead => {
                let _ = std::fs::remove_file(entry.path());
            }
            Found::Unusable => {}
        }
    }
    None
}

/// Liveness first, so a dead shim's record goes whatever binary it names.
fn check(rec: &Record, me: &Identity) -> Found {
    let Ok(pidfd) = sys::pidfd_open(rec.pid) else { return Found::Dead };
    if start_time(rec.pid) != Some(rec.start) {
        return Found::Dead;
    }
    if rec.exe != *me {
        return Found::Unusable;
    }
    // Succeeds only if the pinned process still lives, so the start time
    // just read was its own.
    let Ok(fd) = sys::pidfd_getfd(pidfd.as_raw_fd(), rec.fd) else { return Found::Unusable };
    let sealed = sys::seals(fd.as_raw_fd()).is_ok_and(|s| s & sys::SEALED == sys::SEALED);
    let file = File::from(fd);
    if sealed && file.metadata().is_ok_and(|m| m.len() == me.size) {
        Found::Copy(OwnedFd::from(file))
    } else {
        Found::Unusable
    }
}

fn publish(dir: &Path, me: &Identity, fd: RawFd) -> io::Result<()> {
    let pid = std::process::id() as i32;
    let start = start_time(pid).ok_or_else(|| io::Error::other("no start time in /proc/self/stat"))?;
    let rec = Record { pid, start, fd, exe: me.clone() };
    let path = dir.join(pid.to_string());
    // A dead shim's record under our pid, if nobody removed it yet.
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink(rec.render(), &path)
}

/// Removes this process's record (it is about to let its copy go).
pub fn withdraw(root: &Path) {
    let _ = std::fs::remove_file(root.join(RECORDS).join(std::process::id().to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn root(name: &str) -> PathBuf {
        let d = crate::scratch_dir(&format!("sealed-{name}"));
        std::fs::create_dir_all(d.join(RECORDS)).expect("root");
        d
    }

    fn ino(fd: &OwnedFd) -> u64 {
        File::from(fd.try_clone().expect("dup")).metadata().expect("fstat").ino()
    }

    fn record_for(fd: RawFd, exe: Identity) -> Record {
        let pid = std::process::id() as i32;
        Record { pid, start: start_time(pid).expect("start time"), fd, exe }
    }

    fn write(dir: &Path, rec: &Record) -> PathBuf {
        let path = dir.join(rec.pid.to_string());
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(rec.render(), &path).expect("record");
        path
    }

    /// A memfd of `size` bytes with no seals.
    fn unsealed(size: u64) -> io::Result<OwnedFd> {
        let fd = nix::sys::memfd::memfd_create(c"unsealed", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)?;
        File::from(fd.try_clone()?).set_len(size)?;
        Ok(fd)
    }

    #[test]
    fn a_record_reads_back_and_nothing_else_parses() {
        let rec = record_for(7, Identity::of_self().expect("identity"));
        assert_eq!(Record::parse(&rec.pid.to_string(), &rec.render()), Some(rec));
        for (name, target) in
            [("1", ""), ("1", "2 3"), ("1", "2 3 4 5 6 7 8 9"), ("x", "2 3 4 5 6 7 8"), ("0", "2 3 4 5 6 7 8")]
        {
            assert_eq!(Record::parse(name, target), None, "{name} -> {target:?}");
        }
        assert_eq!(Record::parse("1", "2 -3 4 5 6 7 8"), None);
    }

    #[test]
    fn the_next_shim_gets_the_same_copy() {
        let root = root("share");
        let first = acquire(&root).expect("first copy");
        let ours = root.join(RECORDS).join(std::process::id().to_string());
        assert!(ours.is_symlink(), "no record after acquire");
        let second = acquire(&root).expect("second");
        assert_eq!(ino(&first), ino(&second), "the second acquire made a copy of its own");
        assert_eq!(sys::seals(second.as_raw_fd()).expect("seals") & sys::SEALED, sys::SEALED);
        withdraw(&root);
        assert!(!ours.is_symlink(), "withdraw left our record");
        let third = acquire(&root).expect("third");
        assert_ne!(ino(&first), ino(&third), "a withdrawn copy was handed out");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn shims_started_together_share_the_first_copy() {
        let root = root("together");
        let go = std::sync::Barrier::new(4);
        let copies: Vec<OwnedFd> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        go.wait();
                        acquire(&root).expect("copy")
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().expect("racer")).collect()
        });
        let first = ino(&copies[0]);
        assert!(copies.iter().all(|c| ino(c) == first), "copies made side by side");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_record_failing_any_check_is_not_followed() {
        let dir = root("checks").join(RECORDS);
        let me = Identity::of_self().expect("identity");
        let good = sys::sealed_self_copy().expect("copy");

        let path = write(&dir, &record_for(good.as_raw_fd(), me.clone()));
        assert!(borrow(&dir, &me).is_some(), "the good record itself was refused");

        let changed = Identity { ctime_nsec: me.ctime_nsec + 1, ..me.clone() };
        write(&dir, &record_for(good.as_raw_fd(), changed));
        assert!(borrow(&dir, &me).is_none(), "a copy of a changed binary was taken");
        assert!(path.is_symlink(), "the record of a live shim of another binary was removed");

        let plain = File::open("/proc/self/exe").expect("exe");
        write(&dir, &record_for(plain.as_raw_fd(), me.clone()));
        assert!(borrow(&dir, &me).is_none(), "a plain file was taken for a sealed copy");

        let open = unsealed(me.size).expect("memfd");
        write(&dir, &record_for(open.as_raw_fd(), me.clone()));
        assert!(borrow(&dir, &me).is_none(), "a writable memfd was taken for a sealed copy");

        let later = record_for(0, me.clone()).start + 1;
        write(&dir, &Record { start: later, ..record_for(good.as_raw_fd(), me.clone()) });
        assert!(borrow(&dir, &me).is_none(), "a record naming another process under our pid was followed");
        assert!(!path.is_symlink(), "a dead shim's record was left behind");

        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id() as i32;
        child.wait().expect("wait");
        let dead = write(&dir, &Record { pid: gone, ..record_for(good.as_raw_fd(), me.clone()) });
        assert!(borrow(&dir, &me).is_none(), "a record naming a dead process was followed");
        assert!(!dead.is_symlink(), "a dead shim's record was left behind");

        write(&dir, &Record { pid: gone, ..record_for(good.as_raw_fd(), me.clone()) });
        write(&dir, &record_for(good.as_raw_fd(), me.clone()));
        let got = borrow(&dir, &me).expect("the live record among dead ones");
        assert_eq!(ino(&got), ino(&good));
        let _ = std::fs::remove_dir_all(dir.parent().expect("root"));
    }
}
