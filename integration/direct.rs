//! Talking to the shim directly, without containerd in between: `start` it
//! in a bundle, dial its ttrpc socket, drive the Task API, shut it down.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use containerd_shim_protos::api::ShutdownRequest;
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::ttrpc::context;

use crate::harness::*;

/// Runs `start` in `bundle`; `params` goes to stdin when given.
pub fn start(bundle: &Path, id: &str, params: Option<&[u8]>) -> Vec<u8> {
    start_in(&shim_root(), bundle, id, params)
}

/// `start` with the shim's state under `root`.
pub fn start_in(root: &Path, bundle: &Path, id: &str, params: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new(shim_binary())
        .args(["-namespace", NS, "-address", &address(), "-publish-binary", "/usr/bin/containerd", "-id", id, "start"])
        .current_dir(bundle)
        .env("MYSHIM_ROOT", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn start");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(p) = params {
        stdin.write_all(p).expect("params");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("start");
    assert!(out.status.success(), "start failed: {}", text(&out.stderr));
    out.stdout
}

/// A length-delimited protobuf field.
pub fn pb(field: u8, s: &str) -> Vec<u8> {
    let mut v = vec![(field << 3) | 2];
    let mut len = s.len();
    while len >= 0x80 {
        v.push((len as u8) | 0x80);
        len >>= 7;
    }
    v.push(len as u8);
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn bundle(name: &str) -> std::path::PathBuf {
    let b = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&b);
    std::fs::create_dir_all(&b).expect("bundle");
    b
}

/// A bundle whose config.json is the default spec running `args` on a
/// fresh rootfs, checked clean.
pub fn checked_bundle(id: &str, args: &[&str]) -> std::path::PathBuf {
    let b = bundle(&format!("bundle-{id}"));
    let s = spec(id, &rootfs(id), args);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    b
}

/// Connect, Create and Start of `bundle`'s container: the shim's pid.
pub async fn create_started(c: &TaskClient, id: &str, bundle: &Path) -> u32 {
    create_started_with(c, create_request(id, bundle)).await
}

/// A Create of `bundle`'s container with no stdio, to fill in further.
pub fn create_request(id: &str, bundle: &Path) -> containerd_shim_protos::api::CreateTaskRequest {
    containerd_shim_protos::api::CreateTaskRequest {
        id: id.into(),
        bundle: bundle.to_string_lossy().into(),
        ..Default::default()
    }
}

/// Connect, then `req`'s Create, then Start: the shim's pid.
pub async fn create_started_with(c: &TaskClient, req: containerd_shim_protos::api::CreateTaskRequest) -> u32 {
    use containerd_shim_protos::api::{ConnectRequest, StartRequest};
    let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
    c.create(ctx(), &req).await.expect("Create");
    c.start(ctx(), &StartRequest { id: req.id.clone(), ..Default::default() }).await.expect("Start");
    shim
}

/// Exec of `args` as `exec_id` into container `id`, no stdio, then Start:
/// the exec's pid (in the shim's pid namespace).
pub async fn exec_started(c: &TaskClient, id: &str, exec_id: &str, args: &[&str]) -> u32 {
    use containerd_shim_protos::api::StartRequest;
    c.exec(ctx(), &exec_request(id, exec_id, args)).await.expect("Exec");
    let start = StartRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
    c.start(ctx(), &start).await.expect("Start exec").pid
}

/// An Exec of `args` as `exec_id` into container `id`, as root, no stdio.
pub fn exec_request(id: &str, exec_id: &str, args: &[&str]) -> containerd_shim_protos::api::ExecProcessRequest {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    let process = serde_json::json!({"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}});
    let any = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: serde_json::to_vec(&process).expect("json"),
        ..Default::default()
    };
    containerd_shim_protos::api::ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        spec: Some(any).into(),
        ..Default::default()
    }
}

/// SIGKILL, Wait, Delete of container `id`, then Shutdown of its shim.
pub async fn kill_delete_shutdown(c: &TaskClient, id: &str, shim: u32) {
    use containerd_shim_protos::api::{DeleteRequest, KillRequest, WaitRequest};
    c.kill(ctx(), &KillRequest { id: id.into(), signal: 9, ..Default::default() }).await.expect("Kill");
    c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
    c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
    shutdown(c, shim).await;
}

pub async fn client(address: &str) -> TaskClient {
    TaskClient::new(Client::connect(address).await.expect("dial the shim"))
}

pub fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(10).as_nanos() as i64)
}

pub async fn shutdown(c: &TaskClient, shim_pid: u32) {
    let _ = c.shutdown(ctx(), &ShutdownRequest { id: String::new(), ..Default::default() }).await;
    assert!(wait_gone(shim_pid as i32, Duration::from_secs(5)), "shim did not exit after Shutdown");
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Create, Start, Wait, Delete and Shutdown of `bundle`'s container straight
/// through the shim, with no stdio: for configs containerd 1.6 would change
/// (its spec types drop keys newer than runtime-spec 1.0.2). The exit status.
pub fn run_direct(id: &str, bundle: &Path) -> u32 {
    use containerd_shim_protos::api::{DeleteRequest, WaitRequest};
    assert_checks_clean(bundle);
    let addr = text(&start(bundle, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, bundle).await;
        let status =
            c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait").exit_status;
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
        status
    })
}

/// The message of an RPC the shim refused with `code`; anything else (a
/// success, another code, a transport error) fails the test, naming `what`.
pub fn expect_code<T: std::fmt::Debug>(
    r: Result<T, containerd_shim_protos::ttrpc::Error>,
    code: containerd_shim_protos::ttrpc::Code,
    what: &str,
) -> String {
    match r {
        Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            s.message
        }
        other => panic!("{what}: {code:?} expected, got {other:?}"),
    }
}
