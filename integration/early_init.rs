//! The first container's init is spawned as the shim starts, before the
//! Create (`container::early`): the Create must use that very process and
//! hand it the Create's stdio; an early init no Create can use must not
//! outlive the Create, nor one no Create comes for its shim.

use std::path::Path;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ConnectRequest, DeleteRequest, StartRequest, WaitRequest};
use containerd_shim_protos::shim_async::TaskClient;

use crate::direct::*;
use crate::harness::*;

/// Starts a shim in `bundle` and connects: its client, its pid, and the
/// one child it spawned before any Create.
async fn started_with_early(bundle: &Path, id: &str) -> (TaskClient, u32, u32) {
    let addr = text(&start(bundle, id, None));
    let c = client(addr.trim()).await;
    let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match children(shim).as_slice() {
            [early] => return (c, shim, *early),
            more if more.len() > 1 => panic!("the shim has {} children before any Create", more.len()),
            _ if Instant::now() > deadline => panic!("the shim spawned no init before the Create"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[test]
fn the_first_create_takes_the_init_spawned_at_start_with_the_creates_stdio() {
    let id = "early-take";
    let b = checked_bundle(id, &["sh", "-c", "echo early-out; echo early-err >&2"]);
    let (out, err) = (work_dir().join("early-take.out"), work_dir().join("early-take.err"));
    for f in [&out, &err] {
        let _ = std::fs::remove_file(f);
    }
    rt().block_on(async {
        let (c, shim, early) = started_with_early(&b, id).await;
        let mut req = create_request(id, &b);
        req.stdout = format!("file://{}", out.display());
        req.stderr = format!("file://{}", err.display());
        let pid = c.create(ctx(), &req).await.expect("Create").pid;
        assert_eq!(pid, early, "the Create spawned an init instead of taking the one spawned at start");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        let status = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(status.exit_status, 0);
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_eq!(std::fs::read_to_string(&out).expect("stdout file"), "early-out\n");
    assert_eq!(std::fs::read_to_string(&err).expect("stderr file"), "early-err\n");
    assert_no_leftovers(id);
}

#[test]
fn an_early_init_no_create_can_use_is_killed() {
    // A Create of another bundle, whose config keeps the host's network:
    // the init spawned at start (with a network namespace) does not fit.
    let id = "early-misfit";
    let b = checked_bundle(id, &["true"]);
    let other = bundle("bundle-early-misfit-hostnet");
    let mut s = spec(id, &rootfs(id), &["true"]);
    let namespaces = s["linux"]["namespaces"].as_array_mut().expect("namespaces");
    namespaces.retain(|n| n["type"] != "network");
    std::fs::write(other.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    rt().block_on(async {
        let (c, shim, early) = started_with_early(&b, id).await;
        let pid = c.create(ctx(), &create_request(id, &other)).await.expect("Create").pid;
        assert_ne!(pid, early, "an init with a network namespace of its own was used for the host's network");
        assert!(wait_gone(early as i32, Duration::from_secs(5)), "the unused early init {early} lives on");
        let net = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/net")).expect("net ns");
        assert_eq!(net(pid), net(std::process::id()), "the container is not in the host's network namespace");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);

    // No Create at all: the early init goes with its shim.
    let id = "early-unused";
    let b = checked_bundle(id, &["true"]);
    rt().block_on(async {
        let (c, shim, early) = started_with_early(&b, id).await;
        shutdown(&c, shim).await;
        assert!(wait_gone(early as i32, Duration::from_secs(5)), "the early init {early} outlived its shim");
    });
    assert_no_leftovers(id);
}
