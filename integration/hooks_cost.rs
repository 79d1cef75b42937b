//! Hooks add no hidden processes. strace follows the shim (and the init it
//! spawned as it started) through Create,
//! Start, Wait and Delete and records every exec: without hooks exactly one
//! process execs (the container's init: the shim's binary through its read-only view, then the user
//! program); with hooks, one more per hook and nothing else. The time side of
//! "no hidden cost" is figure 7 of scripts/bench.sh.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, DeleteRequest, StartRequest, WaitRequest};
use serde_json::{json, Value};

use crate::direct::*;
use crate::harness::*;

/// The distinct pids that called execve/execveat while `spec` went through
/// its lifecycle, and the exec'd paths.
fn execs_during_lifecycle(id: &str, spec: &Value) -> (BTreeSet<u32>, Vec<String>) {
    let b = bundle(id);
    std::fs::write(b.join("config.json"), serde_json::to_vec(spec).expect("spec")).expect("config");
    assert_checks_clean(&b);
    let trace = work_dir().join(format!("{id}.strace"));
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        // With the shim, its children: the init it spawned as it started,
        // before any Create (`container::early`).
        let traced_pids: Vec<String> = std::iter::once(shim).chain(children(shim)).map(|p| p.to_string()).collect();
        let mut strace = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=execve,execveat", "-o"])
            .arg(&trace)
            .args(traced_pids.iter().flat_map(|p| ["-p", p.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run strace (apt-get install strace)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let traced = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0"))
        };
        while !traced_pids.iter().all(|p| traced(p)) {
            assert!(Instant::now() < deadline, "strace never attached");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let req = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
        c.create(ctx(), &req).await.expect("Create");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(strace.id() as i32), nix::sys::signal::SIGINT)
            .expect("stop strace");
        let _ = strace.wait();
        shutdown(&c, shim).await;
    });
    let log = std::fs::read_to_string(&trace).expect("strace output");
    let mut pids = BTreeSet::new();
    let mut paths = Vec::new();
    for line in log.lines() {
        let Some((pid, call)) = line.split_once(' ') else { continue };
        let call = call.trim_start();
        if call.starts_with("execve(") || call.starts_with("execveat(") {
            pids.insert(pid.parse().expect("strace pid"));
            paths.push(call.split(',').next().unwrap_or(call).to_string());
        }
    }
    (pids, paths)
}

#[test]
fn without_hooks_only_the_init_execs_and_each_hook_adds_exactly_one_process() {
    let id = "hk-cost-none";
    let plain = spec(id, &rootfs(id), &["sh", "-c", "exit 0"]);
    let (pids, paths) = execs_during_lifecycle(id, &plain);
    assert_eq!(pids.len(), 1, "without hooks only the init may exec: {paths:?}");
    assert_no_leftovers(id);

    let id = "hk-cost-six";
    let mut spec = spec(id, &rootfs(id), &["sh", "-c", "exit 0"]);
    let kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
    spec["hooks"] =
        kinds.iter().map(|k| (k.to_string(), json!([{"path": "/bin/true", "args": ["true", k]}]))).collect();
    let (pids, paths) = execs_during_lifecycle(id, &spec);
    assert_eq!(pids.len(), 1 + kinds.len(), "the init and one process per hook: {paths:?}");
    assert_eq!(paths.iter().filter(|p| p.contains("\"/bin/true\"")).count(), kinds.len(), "{paths:?}");
    assert_no_leftovers(id);
}
