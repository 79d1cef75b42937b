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
    #[error("criu answered {0:?}, not the request's answer")]
    Unexpected(rpc::Criu_req_type),
    #[error("criu {request:?} failed (errno {errno}){message}")]
    Failed { request: rpc::Criu_req_type, errno: i32, message: String },
}

/// Runs `req` through a fresh `criu swrk` (the binary `criu`). The fds the
/// request names must stay open until it returns. `stdio` become criu's
/// fds 0-2 (a restored process inherits them; none: /dev/null); `before`
/// runs with criu's pid before the request is sent (a restore puts criu in
/// the container's cgroup), `notified` with each notification's script
/// and pid (a restore's `post-restore` names the restored init while its
/// tasks are still stopped).
pub async fn call(
    reaper: &Reaper,
    criu: &Path,
    req: rpc::Criu_req,
    stdio: Option<[OwnedFd; 3]>,
    before: impl FnOnce(i32) -> Result<(), String>,
    notified: impl FnMut(&str, i32),
) -> Result<rpc::Criu_resp, CriuError> {
    let (ours, theirs) = sys::seqpacket_pair()?;
    // Above 3, so the child's dup2 onto 3 cannot clobber it.
    let high = sys::dup_above(theirs.as_raw_fd(), SOCKET_FD + 1)?;
    let mut cmd = Command::new(criu);
    cmd.arg("swrk").arg(SOCKET_FD.to_string());
    match stdio {
        Some([i, o, e]) => cmd.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e)),
        None => cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
    };
    sys::die_with_parent(&mut cmd);
    let child = sys::spawn_with_fds(&mut cmd, vec![high.as_raw_fd()])
        .map_err(|e| CriuError::Spawn(criu.display().to_string(), e))?;
    let pid = child.id() as i32;
    // Registered (and pinned) before any await: the reaper cannot miss it.
    let exited = reaper.register(pid);
    let pidfd = sys::pidfd_open(pid);
    drop((high, theirs, child, cmd));
    let answer = match before(pid) {
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
async fn converse(
    sock: OwnedFd,
    req: rpc::Criu_req,
    mut notified: impl FnMut(&str, i32),
) -> Result<Option<rpc::Criu_resp>, CriuError> {
    let request = req.type_();
    let sock = sys::async_fd(sock)?;
    send(&sock, &req.write_to_bytes()?).await?;
    loop {
        let packet = recv(&sock).await?;
        if packet.is_empty() {
            return Ok(None);
        }
        let resp = rpc::Criu_resp::parse_from_bytes(&packet)?;
        if !resp.success() {
            let message = Some(resp.cr_errmsg()).filter(|m| !m.is_empty()).map(|m| format!(": {m}"));
            return Err(CriuError::Failed { request, errno: resp.cr_errno(), message: message.unwrap_or_default() });
        }
        match resp.type_() {
            rpc::Criu_req_type::NOTIFY => {
                ::log::debug!("criu: {} (pid {})", resp.notify.script(), resp.notify.pid());
                notified(resp.notify.script(), resp.notify.pid());
                let mut ack = rpc::Criu_req::new();
                ack.set_type(rpc::Criu_req_type::NOTIFY);
                ack.set_notify_success(true);
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

async fn recv(sock: &AsyncFd<OwnedFd>) -> std::io::Result<Vec<u8>> {
    loop {
        let mut ready = sock.readable().await?;
        if let Ok(r) = ready.try_io(|s| sys::recv_packet(s.as_raw_fd())) {
            return r;
        }
    }
}
