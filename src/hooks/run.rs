//! Running one hook: its own process group, exactly its env, the state on
//! stdin (never blocking on a hook that does not read it), stdout discarded,
//! the last 4 KiB of stderr kept, and on timeout the whole group killed.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

use super::Kind;
use crate::reaper::Reaper;
use crate::runtime::namespaces;
use crate::sys;

const STDERR_TAIL: usize = 4096;
/// How long a hook without a timeout may run before it is killed anyway.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
#[error("{kind} hook #{index} ({path}): {what}{}", tail(stderr))]
pub struct HookError {
    pub kind: &'static str,
    pub index: usize,
    pub path: String,
    pub what: String,
    pub stderr: String,
}

fn tail(stderr: &str) -> String {
    let s = stderr.trim_end();
    if s.is_empty() {
        String::new()
    } else {
        format!("; stderr: {s}")
    }
}

/// The namespaces of a container's init, opened so a hook can enter them.
pub struct ContainerNs {
    pid_ns: OwnedFd,
    join: Vec<(i32, OwnedFd)>,
}

impl ContainerNs {
    /// Opened by path under /proc/`init_pid`, then checked through
    /// `init_pidfd`: if that very process still lives, the pid was not
    /// reused before the opens, and they are its namespaces, not a
    /// stranger's that took the pid.
    pub fn open(init_pid: i32, init_pidfd: BorrowedFd<'_>) -> std::io::Result<ContainerNs> {
        let join = namespaces::not_ours(init_pid)
            .iter()
            .map(|(t, p)| Ok((*t, File::open(p)?.into())))
            .collect::<std::io::Result<_>>()?;
        let pid_ns = File::open(format!("/proc/{init_pid}/ns/pid"))?.into();
        match sys::pidfd_send_signal(init_pidfd.as_raw_fd(), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Err(std::io::Error::other(format!("the container's init (pid {init_pid}) is gone")))
            }
            r => r.map(|()| ContainerNs { pid_ns, join }),
        }
    }
}

pub struct Invocation<'a> {
    pub kind: Kind,
    pub index: usize,
    pub hook: &'a Hook,
    pub state: &'a [u8],
    /// The working directory, in the namespaces the hook runs in.
    pub cwd: &'a Path,
}

pub async fn run(inv: Invocation<'_>, ns: Option<&ContainerNs>, reaper: &Reaper) -> Result<(), HookError> {
    let hook = inv.hook;
    let fail = |what: String, stderr: String| HookError {
        kind: inv.kind.key(),
        index: inv.index,
        path: hook.path().display().to_string(),
        what,
        stderr,
    };
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    sys::die_with_parent(&mut cmd);
    if ns.is_none() {
        cmd.current_dir(inv.cwd);
    }
    let spawned = match ns {
        None => cmd.spawn(),
        Some(ns) => {
            let fds: Vec<(i32, i32)> = ns.join.iter().map(|(t, fd)| (*t, fd.as_raw_fd())).collect();
            let pid_ns = ns.pid_ns.as_fd();
            crate::runtime::in_pid_namespace(pid_ns, &"of the container's init", || {
                sys::spawn_in_namespaces(&mut cmd, fds, inv.cwd)
            })
        }
    };
    let mut child = spawned.map_err(|e| fail(format!("could not run: {e}"), String::new()))?;
    let pid = child.id() as i32;
    // Registered before any await: the reaper cannot miss this exit.
    let mut exited = reaper.register(pid);
    if let Some(stdin) = child.stdin.take() {
        let fd = OwnedFd::from(stdin);
        sys::write_nonblocking(fd.as_raw_fd(), inv.state);
    }
    let mut stderr_tail = Vec::new();
    let mut stderr =
        child.stderr.take().and_then(|e| tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(e)).ok());
    let limit = hook.timeout().map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.max(1) as u64));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut buf = [0u8; 4096];
    let code = loop {
        tokio::select! {
            code = &mut exited => break code.ok(),
            n = async { stderr.as_mut().expect("guarded").readable().await }, if stderr.is_some() => {
                let r = n.and_then(|_| stderr.as_mut().expect("guarded").try_read(&mut buf));
                match r {
                    Ok(0) => stderr = None,
                    Ok(n) => keep_tail(&mut stderr_tail, &buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => stderr = None,
                }
            }
            _ = &mut deadline => {
                let _ = sys::kill(-pid, libc::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut exited).await;
                let msg = format!("timed out after {}s (its process group was killed)", limit.as_secs());
                return Err(fail(msg, String::from_utf8_lossy(&stderr_tail).into_owned()));
            }
        }
    };
    // What the hook wrote just before it exited.
    while let Some(Ok(n)) = stderr.as_ref().map(|s| s.try_read(&mut buf)) {
        if n == 0 {
            break;
        }
        keep_tail(&mut stderr_tail, &buf[..n]);
    }
    let stderr = String::from_utf8_lossy(&stderr_tail).into_owned();
    match code {
        Some(0) => Ok(()),
        Some(c) if c > 128 => Err(fail(format!("killed by signal {} (status {c})", c - 128), stderr)),
        Some(c) => Err(fail(format!("exited with status {c}"), stderr)),
        None => Err(fail("exit status lost".into(), stderr)),
    }
}

fn keep_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(more);
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard on hooks' namespaces (createContainer, startContainer): a
    /// pid in hand that now names a stranger (the init died, its pid went
    /// to another process) never yields the stranger's namespaces, which a
    /// path under /proc/<pid>/ns alone would. Needs root (unshare).
    #[test]
    fn a_stranger_at_the_init_pid_never_lends_its_namespaces() {
        use std::os::fd::AsFd;
        let mut init = Command::new("sleep").arg("30").spawn().expect("init");
        let pidfd = sys::pidfd_open(init.id() as i32).expect("pidfd");
        let _ = init.kill();
        let _ = init.wait();
        // A uts namespace of its own: one that differs from ours, to join.
        let mut stranger = Command::new("unshare").args(["--uts", "sleep", "30"]).spawn().expect("stranger");
        let pid = stranger.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while namespaces::not_ours(pid).is_empty() {
            assert!(std::time::Instant::now() < deadline, "unshare made no namespace");
            std::thread::sleep(Duration::from_millis(10));
        }
        let refused = ContainerNs::open(pid, pidfd.as_fd()).err().map(|e| e.to_string()).unwrap_or_default();
        let own = sys::pidfd_open(pid).expect("stranger's pidfd");
        let opened = ContainerNs::open(pid, own.as_fd()).map(|ns| ns.join.len());
        let _ = stranger.kill();
        let _ = stranger.wait();
        assert!(refused.ends_with("is gone"), "opened a stranger's namespaces: {refused:?}");
        assert!(matches!(opened, Ok(n) if n >= 1), "the live process's own: {opened:?}");
    }

    #[test]
    fn the_stderr_tail_is_bounded() {
        let mut t = Vec::new();
        keep_tail(&mut t, &[b'a'; 3000]);
        keep_tail(&mut t, &[b'b'; 3000]);
        assert_eq!(t.len(), STDERR_TAIL);
        assert_eq!(t.last(), Some(&b'b'));
        assert_eq!(t.first(), Some(&b'a'));
    }

    #[test]
    fn errors_name_kind_index_path_status_and_stderr() {
        let e = HookError {
            kind: "createRuntime",
            index: 1,
            path: "/usr/bin/net-setup".into(),
            what: "exited with status 3".into(),
            stderr: "no bridge\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "createRuntime hook #1 (/usr/bin/net-setup): exited with status 3; stderr: no bridge"
        );
    }
}
