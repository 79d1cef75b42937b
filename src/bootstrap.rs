//! `start`: containerd runs this to get a shim. It binds the shim's socket,
//! starts the serving daemon with the socket as fd 3, records its pid and
//! address in the bundle, and answers with the address.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::args::ShimArgs;
use crate::sys;

/// Where this shim's state and socket live: `$MYSHIM_ROOT` or /run/myshim.
pub fn state_root() -> PathBuf {
    std::env::var_os("MYSHIM_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/myshim"))
}

/// The socket for (containerd, namespace, id): fixed length, well under the
/// 108-byte sun_path limit whatever the names.
pub fn socket_path(root: &Path, address: &str, namespace: &str, id: &str) -> PathBuf {
    root.join(format!("{:016x}", crate::fnv1a(address.as_bytes())))
        .join(format!("{:016x}.sock", crate::fnv1a(format!("{namespace}/{id}").as_bytes())))
}

/// containerd >= 2.3 writes BootstrapParams JSON on stdin and wants JSON back.
#[derive(Debug, Default, serde::Deserialize)]
pub struct BootstrapParams {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, alias = "containerd_grpc_address")]
    pub address: String,
}

#[derive(Debug, serde::Serialize)]
pub struct BootstrapResult {
    pub version: u32,
    pub address: String,
    pub protocol: String,
}

pub fn run(args: &mut ShimArgs) -> Result<String, String> {
    let params = read_params()?;
    if let Some(p) = &params {
        if !p.id.is_empty() {
            args.id = p.id.clone();
        }
        if !p.namespace.is_empty() {
            args.namespace = p.namespace.clone();
        }
        if !p.address.is_empty() {
            args.address = p.address.clone();
        }
    }
    let address = start(args)?;
    Ok(match params {
        None => address,
        Some(_) => serde_json::to_string(&BootstrapResult { version: 2, address, protocol: "ttrpc".into() })
            .map_err(|e| e.to_string())?,
    })
}

/// Params are there only when containerd piped JSON to us; a terminal or an
/// empty stdin means the flag-only protocol.
fn read_params() -> Result<Option<BootstrapParams>, String> {
    let stdin = std::io::stdin();
    if nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
        return Ok(None);
    }
    let mut buf = String::new();
    let _ = stdin.lock().read_to_string(&mut buf);
    let trimmed = buf.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(trimmed).map(Some).map_err(|e| format!("bootstrap params on stdin: {e}"))
}

fn start(args: &ShimArgs) -> Result<String, String> {
    if args.id.is_empty() || args.namespace.is_empty() {
        return Err("start: -id and -namespace are required".into());
    }
    let root = state_root();
    let socket = socket_path(&root, &args.address, &args.namespace, &args.id);
    let address = format!("unix://{}", socket.display());
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("start: mkdir {}: {e}", dir.display()))?;
    }
    if socket.exists() {
        if UnixStream::connect(&socket).is_ok() {
            // Already served (containerd retrying, or a pod's shim).
            return Ok(address);
        }
        let _ = std::fs::remove_file(&socket);
    }
    let listener = UnixListener::bind(&socket).map_err(|e| format!("start: listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("start: chmod socket: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("start: own path: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["-namespace", &args.namespace, "-address", &args.address, "-id", &args.id]);
    cmd.args(["-socket", &socket.to_string_lossy()]);
    if args.debug {
        cmd.arg("-debug");
    }
    cmd.arg("serve").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = sys::spawn_daemon(&mut cmd, listener.as_raw_fd()).map_err(|e| {
        let _ = std::fs::remove_file(&socket);
        format!("start: spawn shim: {e}")
    })?;
    // containerd reads these back after its own restart.
    let _ = std::fs::write("shim.pid", child.to_string());
    let _ = std::fs::write("address", &address);
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_short_and_distinct() {
        let root = Path::new("/run/myshim");
        let a = socket_path(root, "/run/containerd/containerd.sock", "default", &"x".repeat(200));
        let b = socket_path(root, "/run/containerd/containerd.sock", "k8s.io", &"x".repeat(200));
        let c = socket_path(root, "/tmp/other/containerd.sock", "default", &"x".repeat(200));
        assert!(a.as_os_str().len() < 60, "{a:?}");
        assert_ne!(a, b);
        assert_ne!(a.parent(), c.parent());
    }

    #[test]
    fn bootstrap_json_shapes() {
        let p: BootstrapParams =
            serde_json::from_str(r#"{"id":"c1","namespace":"default","address":"/run/c.sock","extra":1}"#)
                .expect("parse");
        assert_eq!((p.id.as_str(), p.namespace.as_str()), ("c1", "default"));
        let r = BootstrapResult { version: 2, address: "unix:///x".into(), protocol: "ttrpc".into() };
        assert_eq!(
            serde_json::to_string(&r).expect("json"),
            r#"{"version":2,"address":"unix:///x","protocol":"ttrpc"}"#
        );
    }
}
