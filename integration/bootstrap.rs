//! Acceptance 8 (the >= 2.3 bootstrap) and the shim's own answers over ttrpc,
//! without containerd in between: Connect, a Create with a broken config.json,
//! a Checkpoint of a container that is not there, Shutdown.

use containerd_shim_protos::api::{CheckpointTaskRequest, ConnectRequest, CreateTaskRequest};
use containerd_shim_protos::ttrpc::Code;

use crate::direct::*;
use crate::harness::*;

/// The fields of a protobuf BootstrapResult: (version, address, protocol).
fn parse_result(mut b: &[u8]) -> (u64, String, String) {
    let (mut version, mut address, mut protocol) = (0, String::new(), String::new());
    while let Some((&key, rest)) = b.split_first() {
        b = rest;
        if key == 0x08 {
            version = u64::from(b[0]);
            b = &b[1..];
            continue;
        }
        let (mut len, mut shift) = (0usize, 0);
        while let Some((&byte, rest)) = b.split_first() {
            b = rest;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let value = text(&b[..len]);
        b = &b[len..];
        match key {
            0x12 => address = value,
            0x1a => protocol = value,
            _ => {}
        }
    }
    (version, address, protocol)
}

async fn connect_checkpoint_shutdown(addr: &str, id: &str) {
    let c = client(addr).await;
    let resp = c.connect(ctx(), &ConnectRequest { id: id.into(), ..Default::default() }).await.expect("Connect");
    assert!(resp.shim_pid > 0);
    let r = c.checkpoint(ctx(), &CheckpointTaskRequest { id: id.into(), ..Default::default() }).await;
    expect_code(r, Code::NOT_FOUND, "Checkpoint of a container never created");
    shutdown(&c, resp.shim_pid).await;
}

#[test]
fn protobuf_bootstrap_params_get_a_protobuf_answer_that_can_be_dialed() {
    // containerd >= 2.3: BootstrapParams{instance_id=1, namespace=2, containerd_ttrpc_address=5,
    // containerd_grpc_address=6} as protobuf on stdin.
    let id = "boot-proto";
    let b = bundle(id);
    let ttrpc = format!("{}.ttrpc", address());
    let params = [pb(1, id), pb(2, NS), vec![0x18, 0x00], pb(5, &ttrpc), pb(6, &address())].concat();
    let (version, addr, protocol) = parse_result(&start(&b, id, Some(&params)));
    assert_eq!((version, protocol.as_str()), (2, "ttrpc"));
    assert!(addr.starts_with("unix://"), "{addr}");
    rt().block_on(connect_checkpoint_shutdown(&addr, id));
    assert_eq!(std::fs::read_to_string(b.join("address")).expect("address file"), addr);
}

#[test]
fn json_bootstrap_params_get_a_json_answer_that_can_be_dialed() {
    let id = "boot-json";
    let b = bundle(id);
    let params =
        format!(r#"{{"instance_id":"{id}","namespace":"{NS}","containerd_ttrpc_address":"{}.ttrpc"}}"#, address());
    let out = text(&start(&b, id, Some(params.as_bytes())));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!((v["version"].as_u64(), v["protocol"].as_str()), (Some(2), Some("ttrpc")));
    let addr = v["address"].as_str().expect("address").to_string();
    rt().block_on(connect_checkpoint_shutdown(&addr, id));
}

#[test]
fn runtime_options_on_stdin_get_the_plain_address() {
    // containerd 1.6 pipes its runtime options (an Any) to start when it has them.
    let id = "boot-opts";
    let b = bundle(id);
    let any = [pb(1, "containerd.runc.v1.Options"), pb(2, "\u{32}\u{4}runc")].concat();
    let addr = text(&start(&b, id, Some(&any)));
    assert!(addr.starts_with("unix://") && !addr.contains('{'), "{addr}");
    rt().block_on(connect_checkpoint_shutdown(&addr, id));
}

#[test]
fn legacy_start_prints_a_plain_address_and_bad_config_fails_create() {
    let id = "boot-legacy";
    let b = bundle(id);
    std::fs::write(b.join("config.json"), "{\"ociVersion\": \"1.0.2\", \"process\": ").expect("config");
    let check = std::process::Command::new(shim_binary()).arg("check").arg(&b).output().expect("check");
    assert_eq!(check.status.code(), Some(2), "check accepts a broken config.json");
    let addr = text(&start(&b, id, None));
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

#[test]
fn miscased_and_misplaced_hooks_do_not_run_and_are_reported() {
    // Straight to the shim with a raw config.json: ctr (Go's encoding/json is
    // case-insensitive) would turn "Poststart" into "poststart" on the way.
    use containerd_shim_protos::api::{DeleteRequest, StartRequest, WaitRequest};
    let id = "boot-miscased";
    let s = crate::hooks::setup(id, &["true"]);
    let b = bundle(id);
    let h = crate::hooks::hook(&s, "poststart", 0, &[]);
    let mut spec = s.spec.clone();
    spec["hooks"] = serde_json::json!({"Poststart": [h.clone()], "postStop": [h.clone()]});
    spec["process"]["hooks"] = serde_json::json!({"poststart": [h.clone()]});
    spec["linux"]["hooks"] = serde_json::json!({"poststart": [h]});
    std::fs::write(b.join("config.json"), serde_json::to_vec(&spec).expect("spec")).expect("config");
    assert_checks_clean(&b);
    nix::unistd::mkfifo(&b.join("log"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("log fifo");
    let log = std::fs::OpenOptions::new().read(true).write(true).open(b.join("log")).expect("open log");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let pid = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
        c.create(ctx(), &req).await.expect("Create");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, pid).await;
    });
    assert!(crate::hooks::log(&s).is_empty(), "no hook may run: {:?}", crate::hooks::log(&s));
    let mut warnings = String::new();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&log);
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    let _ = std::io::Read::read_to_string(&mut &log, &mut warnings);
    for want in [
        "hooks.Poststart is not an OCI hook and will not run; did you mean hooks.poststart?",
        "hooks.postStop is not an OCI hook and will not run; did you mean hooks.poststop?",
        "process.hooks is not where OCI hooks go and will not run",
        "linux.hooks is not where OCI hooks go and will not run",
    ] {
        assert!(warnings.contains(want), "missing warning {want:?} in shim log:\n{warnings}");
    }
    assert_no_leftovers(id);
}

#[test]
fn strict_mode_turns_hook_key_warnings_into_a_create_error() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    let id = "boot-strict";
    let s = crate::hooks::setup(id, &["true"]);
    let b = bundle(id);
    let mut spec = s.spec.clone();
    spec["hooks"] = serde_json::json!({"Poststart": [crate::hooks::hook(&s, "poststart", 0, &[])]});
    std::fs::write(b.join("config.json"), serde_json::to_vec(&spec).expect("spec")).expect("config");
    assert_checks_clean(&b);
    let addr = text(&start(&b, id, None));
    let options = Any {
        type_url: "runtimeoptions.v1.Options".into(),
        value: pb(3, r#"{"hooks": {"strict": true}}"#),
        ..Default::default()
    };
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let pid = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest {
            id: id.into(),
            bundle: b.to_string_lossy().into(),
            options: Some(options).into(),
            ..Default::default()
        };
        let e = format!("{:?}", c.create(ctx(), &req).await.expect_err("strict mode must refuse"));
        assert!(
            e.contains("hooks strict mode") && e.contains("hooks.Poststart is not an OCI hook and will not run"),
            "{e}"
        );
        shutdown(&c, pid).await;
    });
    assert!(crate::hooks::log(&s).is_empty());
    assert_no_leftovers(id);
}
