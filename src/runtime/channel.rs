//! The parent <-> init handshake over a socketpair: length-prefixed JSON
//! messages, and a phase machine that rejects anything out of order.
//!
//! parent: (an early init only)  --Stdio--->  init: its fds 0, 1, 2
//! parent: spawn, join cgroup   --Config-->  init: namespaces, mounts
//! parent: Create hooks        <--RunHooks-  init: waits before pivot_root
//!   (only when there are any) --HooksDone->  init: pivot_root, creds
//! parent: Create returns       <--Ready---  init: waits
//! parent: Start RPC            --Start--->  init: exec (the socket is
//!                                            close-on-exec: EOF = exec'd)

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxPersonality, LinuxSeccomp, Process, Spec};

use super::namespaces::NsPlan;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the init is to do: a container's init builds the rootfs; an exec
/// only joins the running container's namespaces.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    pub plan: NsPlan,
    pub rootfs: Option<RootfsSetup>,
    pub process: Process,
    /// Stop before pivot_root so the Create hooks can run.
    pub pause_for_hooks: bool,
    /// cgroup v1 `tasks` files to write "0" to before anything else.
    pub cgroup_tasks: Vec<PathBuf>,
    /// The container's filter and persona: execs get them too.
    pub seccomp: Option<LinuxSeccomp>,
    pub personality: Option<LinuxPersonality>,
    /// Where the filter's notify fd goes (`linux.seccomp.listenerPath`).
    pub seccomp_listener: Option<SeccompListener>,
}

/// The seccomp agent's socket and the container process state sent to it
/// with the notify fd (config-linux.md, "listenerPath").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeccompListener {
    pub path: PathBuf,
    pub message: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RootfsSetup {
    pub path: PathBuf,
    pub spec: Spec,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// For an init spawned before its Create (`container::early`): its
    /// stdio, sent along as SCM_RIGHTS, to put at 0, 1, 2, and the shim's
    /// mount namespace if the init's own must be copied again. Before Config.
    Stdio,
    Config(Box<InitConfig>),
    HooksDone,
    Start,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromInit {
    RunHooks,
    Ready,
    Failed(String),
}

const MAX_FRAME: usize = 16 << 20;

fn encode<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(msg)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

fn frame_len(hdr: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(hdr) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    Ok(len)
}

/// Init side: blocking.
pub struct InitEnd(pub UnixStream);

impl InitEnd {
    /// `Ok(None)` on EOF: the parent went away, so the init gives up.
    pub fn recv(&mut self) -> io::Result<Option<ToInit>> {
        Ok(self.recv_with_fds()?.map(|(msg, _)| msg))
    }

    /// A message and the fds sent along with it (which arrive with its
    /// first byte).
    pub fn recv_with_fds(&mut self) -> io::Result<Option<(ToInit, Vec<OwnedFd>)>> {
        let mut hdr = [0u8; 4];
        let (n, fds) = crate::sys::recv_with_fds(self.0.as_raw_fd(), &mut hdr)?;
        if n == 0 {
            return Ok(None);
        }
        match self.0.read_exact(&mut hdr[n..]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut body = vec![0u8; frame_len(hdr)?];
        self.0.read_exact(&mut body)?;
        Ok(Some((serde_json::from_slice(&body)?, fds)))
    }

    pub fn send(&mut self, msg: &FromInit) -> io::Result<()> {
        self.0.write_all(&encode(msg)?)
    }
}

/// Parent side: async, so a slow init never blocks the shim's event loop.
pub struct ParentEnd(pub tokio::net::UnixStream);

impl ParentEnd {
    /// A channel nobody answers, for a process that needs no handshake (a
    /// restored one, whose phase is already `Execed`).
    pub fn unused() -> io::Result<ParentEnd> {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        Ok(ParentEnd(tokio::net::UnixStream::from_std(ours)?))
    }

    pub async fn send(&mut self, msg: &ToInit) -> io::Result<()> {
        self.0.write_all(&encode(msg)?).await
    }

    /// `ToInit::Stdio` with `stdio` attached and, with `new_mounts`, this
    /// thread's mount namespace for the init to copy anew (see
    /// `init::main`): a few bytes into an empty socket, so they go whole or
    /// not at all.
    pub async fn send_stdio(&mut self, stdio: &[OwnedFd; 3], new_mounts: bool) -> io::Result<()> {
        let mnt = match new_mounts {
            true => Some(OwnedFd::from(
                std::fs::File::open("/proc/thread-self/ns/mnt")
                    .map_err(|e| io::Error::new(e.kind(), format!("open the mount namespace: {e}")))?,
            )),
            false => None,
        };
        let bytes = encode(&ToInit::Stdio)?;
        let fds: Vec<_> = stdio.iter().chain(&mnt).map(|f| f.as_raw_fd()).collect();
        let sock = self.0.as_raw_fd();
        self.0.async_io(tokio::io::Interest::WRITABLE, || crate::sys::send_with_fds(sock, &bytes, &fds)).await
    }

    /// `Ok(None)` on EOF: after Start it means the exec happened.
    pub async fn recv(&mut self) -> io::Result<Option<FromInit>> {
        let mut hdr = [0u8; 4];
        match self.0.read_exact(&mut hdr).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut body = vec![0u8; frame_len(hdr)?];
        self.0.read_exact(&mut body).await?;
        Ok(Some(serde_json::from_slice(&body)?))
    }
}

impl ParentEnd {
    /// Sends the config and waits for the init's answer: Ready, or (when
    /// `pause_for_hooks`) HooksRequested. The same for an init and an exec.
    pub async fn configure(&mut self, cfg: InitConfig) -> Result<Phase, String> {
        self.send(&ToInit::Config(Box::new(cfg))).await.map_err(|e| format!("send config to init: {e}"))?;
        self.next(Phase::ConfigSent).await
    }

    /// After the Create hooks: lets the init go on to Ready.
    pub async fn hooks_done(&mut self, phase: Phase) -> Result<Phase, String> {
        self.send(&ToInit::HooksDone).await.map_err(|e| format!("resume init: {e}"))?;
        let phase = phase.advance(Observed::SentHooksDone).map_err(|e| e.to_string())?;
        self.next(phase).await
    }

    /// Lets the init exec its program. Its answer is the exec itself (the
    /// channel closes with it) or why it could not.
    pub async fn start(&mut self, phase: Phase) -> Result<Phase, String> {
        if phase == Phase::Execed {
            // A restored process: its program runs already.
            return Ok(phase);
        }
        self.send(&ToInit::Start).await.map_err(|e| e.to_string())?;
        let phase = phase.advance(Observed::SentStart).map_err(|e| e.to_string())?;
        let seen = self.recv().await.map_err(|e| match e.kind() {
            // It died with Start unread (killed while it waited).
            io::ErrorKind::ConnectionReset => "the process ended before it could start".to_string(),
            _ => e.to_string(),
        })?;
        phase.advance(seen.as_ref().map_or(Observed::Eof, Observed::Message)).map_err(|e| e.to_string())
    }

    async fn next(&mut self, phase: Phase) -> Result<Phase, String> {
        let seen = self.recv().await.map_err(|e| format!("read from init: {e}"))?;
        phase.advance(seen.as_ref().map_or(Observed::Eof, Observed::Message)).map_err(|e| e.to_string())
    }
}

/// Where the handshake stands, as seen by the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    ConfigSent,
    HooksRequested,
    HooksDone,
    Ready,
    StartSent,
    Execed,
}

/// What the parent observed on the channel.
#[derive(Debug)]
pub enum Observed<'a> {
    Message(&'a FromInit),
    Eof,
    SentHooksDone,
    SentStart,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("{0}")]
    InitFailed(String),
    #[error("init exited before it was ready")]
    DiedEarly,
    #[error("protocol violation: {observed} while {phase:?}")]
    OutOfOrder { phase: Phase, observed: String },
}

impl Phase {
    pub fn advance(self, seen: Observed<'_>) -> Result<Phase, HandshakeError> {
        use {Observed as O, Phase as P};
        match (self, seen) {
            (_, O::Message(FromInit::Failed(m))) => Err(HandshakeError::InitFailed(m.clone())),
            (P::ConfigSent | P::HooksDone, O::Message(FromInit::Ready)) => Ok(P::Ready),
            (P::ConfigSent, O::Message(FromInit::RunHooks)) => Ok(P::HooksRequested),
            (P::HooksRequested, O::SentHooksDone) => Ok(P::HooksDone),
            (P::ConfigSent | P::HooksRequested | P::HooksDone, O::Eof) => Err(HandshakeError::DiedEarly),
            (P::Ready, O::SentStart) => Ok(P::StartSent),
            (P::StartSent, O::Eof) => Ok(P::Execed),
            (phase, seen) => Err(HandshakeError::OutOfOrder { phase, observed: format!("{seen:?}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path() {
        let p = Phase::ConfigSent.advance(Observed::Message(&FromInit::Ready)).expect("ready");
        let p = p.advance(Observed::SentStart).expect("start");
        assert_eq!(p.advance(Observed::Eof), Ok(Phase::Execed));
    }

    #[test]
    fn the_path_through_create_hooks() {
        let p = Phase::ConfigSent.advance(Observed::Message(&FromInit::RunHooks)).expect("hooks");
        assert_eq!(p, Phase::HooksRequested);
        let p = p.advance(Observed::SentHooksDone).expect("done");
        assert_eq!(p.advance(Observed::Message(&FromInit::Ready)), Ok(Phase::Ready));
        assert!(matches!(p.advance(Observed::Message(&FromInit::RunHooks)), Err(HandshakeError::OutOfOrder { .. })));
        assert!(matches!(Phase::Ready.advance(Observed::SentHooksDone), Err(HandshakeError::OutOfOrder { .. })));
        assert_eq!(Phase::HooksDone.advance(Observed::Eof), Err(HandshakeError::DiedEarly));
    }

    #[test]
    fn failures_and_early_death_are_reported() {
        let f = FromInit::Failed("mount /proc: ENOENT".into());
        assert_eq!(
            Phase::ConfigSent.advance(Observed::Message(&f)),
            Err(HandshakeError::InitFailed("mount /proc: ENOENT".into()))
        );
        assert_eq!(Phase::StartSent.advance(Observed::Message(&f)).unwrap_err().to_string(), "mount /proc: ENOENT");
        assert_eq!(Phase::ConfigSent.advance(Observed::Eof), Err(HandshakeError::DiedEarly));
    }

    #[test]
    fn out_of_order_is_rejected() {
        assert!(matches!(Phase::ConfigSent.advance(Observed::SentStart), Err(HandshakeError::OutOfOrder { .. })));
        assert!(matches!(Phase::Ready.advance(Observed::Eof), Err(HandshakeError::OutOfOrder { .. })));
        assert!(matches!(
            Phase::StartSent.advance(Observed::Message(&FromInit::Ready)),
            Err(HandshakeError::OutOfOrder { .. })
        ));
        assert!(matches!(Phase::Execed.advance(Observed::SentStart), Err(HandshakeError::OutOfOrder { .. })));
    }

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut init = InitEnd(a);
        let mut raw = b;
        raw.write_all(&encode(&ToInit::Start).expect("enc")).expect("write");
        assert!(matches!(init.recv().expect("recv"), Some(ToInit::Start)));
        raw.write_all(&u32::MAX.to_le_bytes()).expect("write");
        assert!(init.recv().is_err());
        drop(raw);
        assert!(init.recv().expect("eof").is_none());
    }
}
