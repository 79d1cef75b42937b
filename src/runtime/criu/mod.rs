//! CRIU through its RPC (`criu swrk`): one request, its notifications
//! acknowledged, one answer. The messages are rust-criu's; the transport is
//! ours: rust-criu's keeps its socket inheritable for the whole call, while
//! a pod's shim spawns hooks and loggers meanwhile, and it waits for criu
//! itself, which our one reaper would race. Here criu is spawned on the
//! event loop and registered with the reaper before the next await, its end
//! of the socket is laid out at fd 3 in the child only, and the call is
//! async. The image and work directories stay ours: CRIU opens the fds a
//! request names through /proc/<the socket's creator>/fd, so they are this
//! process's fd numbers and are never inherited.

pub mod config;
pub mod dump;
mod log;
pub mod restore;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc;
use tokio::io::unix::AsyncFd;

pub use self::log::excerpt;
use crate::reaper::Reaper;
use crate::sys;

/// Where criu finds its end of the socket.
const SOCKET_FD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("run {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("talk to criu: {0}")]
    Io(#[from] std::io::Error),
    #[error("criu's message: {0}")]
    Protocol(#[from] protobuf::Error),
    #[error("criu ended (status {0}) without answering")]
    Died(u32),
    #[error("before the request: {0}")]
    Prepare(String),
    #[error("at criu's {0} notification: {1}")]
    Notified(String, String),
    #[error("criu answered {0:?}, not the request's answer")]
    Unexpected(rpc::Criu_req_type),
    #[error("criu {request:?} failed (errno {errno}){message}")]
    Failed { request: rpc::Criu_req_type, errno: i32, message: String },
}

/// What criu is handed besides its socket.
#[derive(Default)]
pub struct Handed {
    /// Its fds 0-2, which a restored process inherits (none: /dev/null).
    pub stdio: Option<[OwnedFd; 3]>,
    /// Laid out at `FIRST_HANDED_FD` on, for a request to name by number.
    pub fds: Vec<OwnedFd>,
}

/// Where criu finds the first of `Handed::fds`.
pub const FIRST_HANDED_FD: i32 = SOCKET_FD + 1;

/// Runs `req` through a fresh `criu swrk` (the binary `criu`). The fds the
/// request names must stay open until it returns; `handed` go to criu's
/// child only. `before` runs with criu's pid before the request is sent
/// and may complete it (a restore puts criu in the container's cgroup and
/// names that cgroup as the root), `notified` with each notification's script, pid and the fd
/// it carries, awaited before criu goes on (a restore's `setup-namespaces`
/// runs hooks there, its `orphan-pts-master` hands over a restored
/// terminal's new master, its `post-restore` names the restored init while
/// its tasks are still stopped); its error fails the request.
pub async fn call<'a>(
    reaper: &Reaper,
    criu: &Path,
    mut req: rpc::Criu_req,
    handed: Handed,
    before: impl FnOnce(i32, &mut rpc::Criu_req) -> Result<(), String>,
    notified: impl FnMut(&str, i32, Option<OwnedFd>) -> Notified<'a>,
) -> Result<rpc::Criu_resp, CriuError> {
    let (ours, theirs) = sys::seqpacket_pair()?;
    // Above every target, so the child's dup2s cannot clobber a source.
    let top = FIRST_HANDED_FD + handed.fds.len() as i32;
    let high = sys::dup_above(theirs.as_raw_fd(), top)?;
    let mut layout = vec![high.as_raw_fd()];
    let moved = handed.fds.iter().map(|f| sys::dup_above(f.as_raw_fd(), top)).collect::<Result<Vec<_>, _>>()?;
    layout.extend(moved.iter().map(AsRawFd::as_raw_fd));
    let mut cmd = Command::new(criu);
    cmd.arg("swrk").arg(SOCKET_FD.to_string());
    match handed.stdio {
        Some([i, o, e]) => cmd.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e)),
        None => cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
    };
    sys::die_with_parent(&mut cmd);
    let child = sys::spawn_with_fds(&mut cmd, layout).map_err(|e| CriuError::Spawn(criu.display().to_string(), e))?;
    let pid = child.id() as i32;
    // Registered (and pinned) before any await: the reaper cannot miss it.
    let exited = reaper.register(pid);
    let pidfd = sys::pidfd_open(pid);
    drop((high, theirs, moved, handed.fds, child, cmd));
    let answer = match before(pid, &mut req) {
        Ok(()) => converse(ours, req, notified).await,
        Err(e) => Err(CriuError::Prepare(e)),
    };
    if answer.as_ref().is_err_and(|e| !matches!(e, CriuError::Failed { .. })) {
        if let Ok(fd) = &pidfd {
            let _ = sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGKILL);
        }
    }
    // criu serves until its socket closes, which `converse` has dropped.
    let code = exited.await.unwrap_or(u32::MAX);
    match answer {
        Ok(Some(resp)) => Ok(resp),
        Ok(None) => Err(CriuError::Died(code)),
        Err(e) => Err(e),
    }
}

/// What a notification's handler does before criu is answered.
pub type Notified<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// A handler for notifications that need nothing done.
pub fn ignore(_script: &str, _pid: i32, _fd: Option<OwnedFd>) -> Notified<'static> {
    Box::pin(async { Ok(()) })
}

/// What every request of this runtime's says: the image and work
/// directories (this process's fds), CRIU's `log` in the work directory at
/// level 4 (runc's), the container's `root` as the host sees it, cgroups
/// managed, and a terminal's slave allowed without its master, which is
/// the shim's (a restore gets a new one handed over).
fn options(images_fd: i32, work_fd: i32, root: &Path, log: &str) -> rpc::Criu_opts {
    let mut o = rpc::Criu_opts::new();
    o.set_images_dir_fd(images_fd);
    o.set_work_dir_fd(work_fd);
    o.set_log_file(log.into());
    o.set_log_level(4);
    o.set_root(root.to_string_lossy().into_owned());
    o.set_manage_cgroups(true);
    o.set_orphan_pts_master(true);
    o
}

/// A request of `kind` with `opts`, its external mounts (key, value) added.
fn request(kind: rpc::Criu_req_type, mut opts: rpc::Criu_opts, external: Vec<(String, String)>) -> rpc::Criu_req {
    for (key, val) in external {
        let mut m = rpc::Ext_mount_map::new();
        m.set_key(key);
        m.set_val(val);
        opts.ext_mnt.push(m);
    }
    let mut req = rpc::Criu_req::new();
    req.set_type(kind);
    req.opts = protobuf::MessageField::some(opts);
    req
}

/// The request, then criu's packets until its answer; `None` if it closed
/// the socket first.
async fn converse<'a>(
    sock: OwnedFd,
    req: rpc::Criu_req,
    mut notified: impl FnMut(&str, i32, Option<OwnedFd>) -> Notified<'a>,
) -> Result<Option<rpc::Criu_resp>, CriuError> {
    let request = req.type_();
    let sock = sys::async_fd(sock)?;
    send(&sock, &req.write_to_bytes()?).await?;
    // A handler's failure is the reason, not CRIU's answer to the refusal.
    let mut refused: Option<CriuError> = None;
    loop {
        let (packet, fd) = recv(&sock).await?;
        if packet.is_empty() {
            return refused.map_or(Ok(None), Err);
        }
        let resp = rpc::Criu_resp::parse_from_bytes(&packet)?;
        if let Some(e) = refused {
            return Err(e);
        }
        if !resp.success() {
            let message = Some(resp.cr_errmsg()).filter(|m| !m.is_empty()).map(|m| format!(": {m}"));
            return Err(CriuError::Failed { request, errno: resp.cr_errno(), message: message.unwrap_or_default() });
        }
        match resp.type_() {
            rpc::Criu_req_type::NOTIFY => {
                ::log::debug!("criu: {} (pid {})", resp.notify.script(), resp.notify.pid());
                let script = resp.notify.script();
                let done = notified(script, resp.notify.pid(), fd).await;
                let mut ack = rpc::Criu_req::new();
                ack.set_type(rpc::Criu_req_type::NOTIFY);
                ack.set_notify_success(done.is_ok());
                refused = done.err().map(|e| CriuError::Notified(script.to_string(), e));
                send(&sock, &ack.write_to_bytes()?).await?;
            }
            t if t == request => return Ok(Some(resp)),
            t => return Err(CriuError::Unexpected(t)),
        }
    }
}

async fn send(sock: &AsyncFd<OwnedFd>, packet: &[u8]) -> std::io::Result<()> {
    loop {
        let mut ready = sock.writable().await?;
        if let Ok(r) = ready.try_io(|s| sys::write_fd(s.as_raw_fd(), packet)) {
            return r.map(drop);
        }
    }
}

async fn recv(sock: &AsyncFd<OwnedFd>) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    loop {
        let mut ready = sock.readable().await?;
        if let Ok(r) = ready.try_io(|s| sys::recv_packet(s.as_raw_fd())) {
            return r;
        }
    }
}
