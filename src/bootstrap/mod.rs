//! `start`: containerd runs this to get a shim. It binds the shim's socket,
//! forks the serving daemon, which keeps the socket, records its pid and
//! address in the bundle, and answers with the address.

pub(crate) mod params;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::args::ShimArgs;
use crate::sys;

/// What `start` leads to in this process.
pub enum Started {
    /// The answer for containerd, on stdout.
    Answer(Vec<u8>),
    /// This is the forked daemon: serve on the socket.
    Daemon(Daemon),
}

/// What the forked daemon serves with.
pub struct Daemon {
    pub args: ShimArgs,
    pub listener: UnixListener,
    pub socket: PathBuf,
    /// Where events go when containerd's BootstrapParams named it (older
    /// containerds say so in TTRPC_ADDRESS).
    pub ttrpc_address: Option<String>,
}

/// Where this shim's state and socket live: `$MYSHIM_ROOT` or /run/myshim.
pub fn state_root() -> PathBuf {
    std::env::var_os("MYSHIM_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/myshim"))
}

/// The socket for (containerd, namespace, id). The name is containerd's own
/// (containerd-shim's `socket_address`: a sha256 of the three, what the runc
/// shim listens on), cut to 128 bits, under our root rather than
/// /run/containerd/s so that a test containerd's shims stay in its dirs.
/// Collision-proof because `start` takes a live socket at that path for the
/// group's own shim: the 64-bit FNV names this replaced could be made to
/// collide with ~2^32 tries, handing a container to another namespace's shim.
pub fn socket_path(root: &Path, address: &str, namespace: &str, id: &str) -> PathBuf {
    let named = containerd_shim::socket_address(address, namespace, id);
    let hash = named.rsplit('/').next().unwrap_or_default();
    root.join("s").join(hash.get(..32).unwrap_or(hash))
}

/// Runs `start`: reads what containerd put on stdin, starts (or finds) the
/// shim, returns the answer bytes for stdout (or, in the forked daemon, what
/// it serves with).
pub fn run(mut args: ShimArgs) -> Result<Started, String> {
    let mut input = Vec::new();
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
        stdin.lock().take(10 << 20).read_to_end(&mut input).map_err(|e| format!("start: read stdin: {e}"))?;
    }
    let mut ttrpc_address = None;
    let encoding = match params::classify(&input, &args.id, &args.namespace).map_err(|e| format!("start: {e}"))? {
        params::Stdin::Flags => None,
        params::Stdin::Params(p, enc) => {
            for (flag, value) in
                [(&mut args.id, p.id), (&mut args.namespace, p.namespace), (&mut args.address, p.grpc_address)]
            {
                if !value.is_empty() {
                    *flag = value;
                }
            }
            ttrpc_address = Some(p.ttrpc_address).filter(|a| !a.is_empty());
            Some(enc)
        }
    };
    start(args, ttrpc_address, encoding)
}

/// Finds the group's serving shim, or binds its socket and forks one.
fn start(args: ShimArgs, ttrpc_address: Option<String>, encoding: Option<params::Encoding>) -> Result<Started, String> {
    if args.id.is_empty() || args.namespace.is_empty() {
        return Err("start: -id and -namespace are required".into());
    }
    let root = state_root();
    let group = group_of(Path::new("config.json")).unwrap_or_else(|| args.id.clone());
    let socket = socket_path(&root, &args.address, &args.namespace, &group);
    let address = format!("unix://{}", socket.display());
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("start: mkdir {}: {e}", dir.display()))?;
    }
    if socket.exists() {
        if UnixStream::connect(&socket).is_ok() {
            // Already served: containerd retrying, or the shim of this
            // container's pod, which serves it too.
            let _ = std::fs::write("address", &address);
            return Ok(Started::Answer(params::answer(&address, encoding)));
        }
        let _ = std::fs::remove_file(&socket);
    }
    let listener = UnixListener::bind(&socket).map_err(|e| format!("start: listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("start: chmod socket: {e}"))?;
    adjust_oom_score();
    let child = match sys::fork_daemon() {
        Ok(Some(child)) => child,
        Ok(None) => return Ok(Started::Daemon(Daemon { args, listener, socket, ttrpc_address })),
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(format!("start: fork shim: {e}"));
        }
    };
    // containerd reads these back after its own restart.
    let _ = std::fs::write("shim.pid", child.to_string());
    let _ = std::fs::write("address", &address);
    Ok(Started::Answer(params::answer(&address, encoding)))
}

/// Annotations that put a container in a group served by one shim: CRI's
/// sandbox id (a pod's containers share their sandbox's shim), and the
/// group label the runc shim honours.
const GROUP_ANNOTATIONS: [&str; 2] = ["io.kubernetes.cri.sandbox-id", "io.containerd.runc.v2.group"];

/// The group the bundle's config.json names, if any. An unreadable config
/// is left for Create to report.
fn group_of(config: &Path) -> Option<String> {
    let text = std::fs::read(config).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let annotations = spec.get("annotations")?;
    GROUP_ANNOTATIONS.iter().find_map(|k| annotations.get(k)?.as_str().filter(|v| !v.is_empty()).map(str::to_string))
}

/// As the runc shim: the shim's oom_score_adj is containerd's (its parent
/// here) plus one, at most 1000, so under memory pressure the shim goes
/// before containerd; a container without `process.oomScoreAdj` inherits
/// it. Raising needs no privilege; a failure only costs the ordering.
fn adjust_oom_score() {
    let parent = std::os::unix::process::parent_id();
    let Some(score) = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", oom_score_for_shim(score).to_string()) {
        log::warn!("start: oom_score_adj: {e}");
    }
}

fn oom_score_for_shim(containerd: i32) -> i32 {
    (containerd + 1).min(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_containers_are_grouped_by_their_sandbox() {
        let dir = std::env::temp_dir().join(format!("myshim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = dir.join("config.json");
        let with = |annotations: serde_json::Value| {
            std::fs::write(&config, serde_json::json!({"ociVersion": "1.0.2", "annotations": annotations}).to_string())
                .expect("write");
            group_of(&config)
        };
        let cri =
            serde_json::json!({"io.kubernetes.cri.sandbox-id": "sb1", "io.kubernetes.cri.container-type": "container"});
        assert_eq!(with(cri).as_deref(), Some("sb1"));
        assert_eq!(with(serde_json::json!({"io.containerd.runc.v2.group": "g"})).as_deref(), Some("g"));
        assert_eq!(with(serde_json::json!({"other": "x"})), None);
        assert_eq!(with(serde_json::json!({"io.kubernetes.cri.sandbox-id": ""})), None);
        std::fs::write(&config, "{not json").expect("write");
        assert_eq!(group_of(&config), None, "Create reports a broken config, not start");
        assert_eq!(group_of(&dir.join("absent.json")), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn socket_paths_are_short_and_distinct() {
        let root = Path::new("/run/myshim");
        let a = socket_path(root, "/run/containerd/containerd.sock", "default", &"x".repeat(200));
        let b = socket_path(root, "/run/containerd/containerd.sock", "k8s.io", &"x".repeat(200));
        let c = socket_path(root, "/tmp/other/containerd.sock", "default", &"x".repeat(200));
        assert_eq!(a.as_os_str().len(), "/run/myshim/s/".len() + 32, "{a:?}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        // containerd's name for the same triple, so the two can be matched.
        let named = containerd_shim::socket_address("/run/containerd/containerd.sock", "default", "c1");
        let ours = socket_path(root, "/run/containerd/containerd.sock", "default", "c1");
        let ours = ours.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(named.starts_with("unix:///run/containerd/s/") && named.contains(ours), "{named} {ours}");
    }

    #[test]
    fn the_shims_oom_score_is_containerds_plus_one_at_most_1000() {
        assert_eq!(super::oom_score_for_shim(0), 1);
        assert_eq!(super::oom_score_for_shim(-999), -998);
        assert_eq!(super::oom_score_for_shim(1000), 1000);
    }
}
