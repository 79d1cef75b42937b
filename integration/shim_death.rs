//! Acceptance 7: a SIGKILLed shim is cleaned up by containerd's `delete`.

use std::time::Duration;

use crate::harness::*;

#[test]
fn killed_shim_is_cleaned_up_by_delete() {
    let id = "death-kill";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let task = task_pid(id);
    let shims = shim_pids(id);
    assert_eq!(shims.len(), 1, "one shim per container: {shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::SIGKILL).expect("kill shim");
    assert!(wait_gone(task, Duration::from_secs(5)), "container process survived its shim");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ls = text(&ctr(&["task", "ls"]).stdout);
        if !ls.lines().any(|l| l.starts_with(id) && l.contains("RUNNING")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "task still RUNNING: {ls}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ctr(&["task", "rm", "-f", id]);
    let rm = ctr(&["container", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_no_leftovers(id);
}

/// What containerd runs after a shim died: `delete` in the bundle. Its
/// DeleteResponse says 137.
fn containerd_cleanup(bundle: &std::path::Path, id: &str) {
    let out = std::process::Command::new(shim_binary())
        .args(["-namespace", NS, "-address", &address(), "-publish-binary", "/usr/bin/containerd", "-id", id])
        .arg("-bundle")
        .arg(bundle)
        .arg("delete")
        .current_dir(bundle)
        .env("MYSHIM_ROOT", shim_root())
        .output()
        .expect("delete");
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    use containerd_shim_protos::protobuf::Message;
    let resp = containerd_shim_protos::api::DeleteResponse::parse_from_bytes(&out.stdout).expect("DeleteResponse");
    assert_eq!(resp.exit_status, 137);
}

/// Where the shim dies.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// While Create runs a createRuntime hook.
    DuringCreate,
    /// Created, never started.
    BetweenCreateAndStart,
    /// While Delete runs a poststop hook.
    DuringDelete,
}

fn pid_in(file: &std::path::Path) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "{} never written", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Once the hook has written its pid (the RPC that runs it is in flight),
/// `kill`; the hook's pid.
async fn hook_then(pid_file: &std::path::Path, kill: impl FnOnce()) -> i32 {
    let f = pid_file.to_path_buf();
    let pid = tokio::task::spawn_blocking(move || pid_in(&f)).await.expect("hook pid");
    kill();
    pid
}

fn die_at(step: Step) {
    use crate::direct::*;
    use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, DeleteRequest, StartRequest, WaitRequest};
    let id = match step {
        Step::DuringCreate => "death-create",
        Step::BetweenCreateAndStart => "death-created",
        Step::DuringDelete => "death-delete",
    };
    let b = bundle(&format!("bundle-{id}"));
    let hook_pid = b.join("hook.pid");
    let mut s = spec(id, &rootfs(id), &["true"]);
    let hook = serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 30", hook_pid.display())]}]);
    match step {
        Step::DuringCreate => s["hooks"] = serde_json::json!({"createRuntime": hook}),
        Step::DuringDelete => s["hooks"] = serde_json::json!({"poststop": hook}),
        Step::BetweenCreateAndStart => {}
    }
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    let addr = text(&start(&b, id, None));
    let kill_shim = |shim: u32| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim as i32), nix::sys::signal::SIGKILL).expect("kill shim");
        assert!(wait_gone(shim as i32, Duration::from_secs(5)), "the shim survived SIGKILL");
    };
    let mut doomed = Vec::new(); // processes that must be gone after the cleanup
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let create = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
        match step {
            Step::DuringCreate => {
                let pending = tokio::spawn({
                    let c = c.clone();
                    async move { c.create(ctx(), &create).await }
                });
                doomed.push(hook_then(&hook_pid, || kill_shim(shim)).await);
                assert!(pending.await.expect("join").is_err(), "Create cannot succeed without its shim");
            }
            Step::BetweenCreateAndStart => {
                let init = c.create(ctx(), &create).await.expect("Create").pid;
                doomed.push(init as i32);
                kill_shim(shim);
            }
            Step::DuringDelete => {
                c.create(ctx(), &create).await.expect("Create");
                c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
                c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
                let pending = tokio::spawn({
                    let c = c.clone();
                    async move { c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await }
                });
                doomed.push(hook_then(&hook_pid, || kill_shim(shim)).await);
                assert!(pending.await.expect("join").is_err(), "Delete cannot answer without its shim");
            }
        }
    });
    containerd_cleanup(&b, id);
    for pid in doomed {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{step:?}: process {pid} outlived the shim's cleanup");
    }
    assert_no_leftovers(id);
    // A second cleanup (containerd retries) finds nothing to do and says so.
    containerd_cleanup(&b, id);
}

#[test]
fn a_shim_killed_during_create_is_cleaned_up() {
    die_at(Step::DuringCreate);
}

#[test]
fn a_shim_killed_between_create_and_start_is_cleaned_up() {
    die_at(Step::BetweenCreateAndStart);
}

#[test]
fn a_shim_killed_during_delete_is_cleaned_up() {
    die_at(Step::DuringDelete);
}
