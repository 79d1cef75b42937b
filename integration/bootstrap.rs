//! Acceptance 8 (the >= 2.3 bootstrap) and the shim's own answers over ttrpc,
//! without containerd in between: Connect, a Create with a broken config.json,
//! Unimplemented RPCs, Shutdown.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, PauseRequest, ShutdownRequest};
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::ttrpc::context;

use crate::harness::*;

/// Runs `start` in `bundle`; `params` goes to stdin when given.
fn start(bundle: &Path, id: &str, params: Option<&str>) -> String {
    let mut child = Command::new(shim_binary())
        .args(["-namespace", NS, "-address", &address(), "-publish-binary", "/usr/bin/containerd", "-id", id, "start"])
        .current_dir(bundle)
        .env("MYSHIM_ROOT", shim_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn start");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(p) = params {
        stdin.write_all(p.as_bytes()).expect("params");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("start");
    assert!(out.status.success(), "start failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn bundle(name: &str) -> std::path::PathBuf {
    let b = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&b);
    std::fs::create_dir_all(&b).expect("bundle");
    b
}

async fn client(address: &str) -> TaskClient {
    TaskClient::new(Client::connect(address).await.expect("dial the shim"))
}

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(10).as_nanos() as i64)
}

async fn shutdown(c: &TaskClient, shim_pid: u32) {
    let _ = c.shutdown(ctx(), &ShutdownRequest { id: String::new(), ..Default::default() }).await;
    assert!(wait_gone(shim_pid as i32, Duration::from_secs(5)), "shim did not exit after Shutdown");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn bootstrap_params_on_stdin_get_a_json_answer_that_can_be_dialed() {
    let id = "boot-json";
    let b = bundle(id);
    let params = format!(
        r#"{{"id":"{id}","namespace":"{NS}","address":"{}","ttrpc_address":"{}.ttrpc"}}"#,
        address(),
        address()
    );
    let out = start(&b, id, Some(&params));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(v["protocol"], "ttrpc");
    assert_eq!(v["version"], 2);
    let addr = v["address"].as_str().expect("address").to_string();
    assert!(addr.starts_with("unix://"), "{addr}");
    rt().block_on(async {
        let c = client(&addr).await;
        let resp = c.connect(ctx(), &ConnectRequest { id: id.into(), ..Default::default() }).await.expect("Connect");
        assert!(resp.shim_pid > 0);
        let e = c.pause(ctx(), &PauseRequest { id: id.into(), ..Default::default() }).await.expect_err("Pause");
        assert!(format!("{e:?}").contains("UNIMPLEMENTED") || format!("{e:?}").contains("Unimplemented"), "{e:?}");
        shutdown(&c, resp.shim_pid).await;
    });
    assert_eq!(std::fs::read_to_string(b.join("address")).expect("address file"), addr);
}

#[test]
fn legacy_start_prints_a_plain_address_and_bad_config_fails_create() {
    let id = "boot-legacy";
    let b = bundle(id);
    std::fs::write(b.join("config.json"), "{\"ociVersion\": \"1.0.2\", \"process\": ").expect("config");
    let addr = start(&b, id, None);
    assert!(addr.starts_with("unix://") && !addr.contains('{'), "{addr}");
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let pid = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
        let e = format!("{:?}", c.create(ctx(), &req).await.expect_err("broken config.json must fail"));
        assert!(e.contains(&format!("create {id}: config.json: parse")) && e.contains("EOF"), "{e}");
        shutdown(&c, pid).await;
    });
    assert_no_leftovers(id);
}
