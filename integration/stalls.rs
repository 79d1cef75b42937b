//! Issue 22 (part): one shim serves a whole pod and its RPCs share one
//! thread, so what waits for long (a logging binary's ready signal, the
//! freezer, the cgroup's removal, the rootfs mount) waits off that thread.

use std::time::{Duration, Instant};

use containerd_shim_protos::api::{DeleteRequest, KillRequest, StartRequest, StateRequest, WaitRequest};
use containerd_shim_protos::ttrpc::{context, Code};

use crate::direct::*;
use crate::harness::*;

/// What "at once" means here. The stall guarded against is 10 s; a loaded
/// CI machine (four tests at a time on two cores) answers a State in a
/// few ms, but not always within the 100 ms an idle one does.
const AT_ONCE: Duration = Duration::from_secs(1);

/// A `binary://` logger that never says it is ready holds one container's
/// Create for 10 s; State and Kill of another container of the same shim
/// still answer at once. Guard: `Stdio::logger_ready` awaits the ready
/// pipe; when it was polled on the event loop, both waited the 10 s.
#[test]
fn a_logger_that_is_never_ready_stalls_no_other_container_of_its_shim() {
    let (id, slow) = ("stall-other", "stall-logger");
    let b = checked_bundle(id, &["sleep", "1000"]);
    let sb = checked_bundle(slow, &["true"]);
    // Keeps fd 5, its ready pipe, open and never writes to it.
    let logger = sb.join("never-ready");
    std::fs::write(&logger, "#!/bin/sh\nexec sleep 60\n").expect("logger");
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let mut req = create_request(slow, &sb);
        req.stdout = format!("binary://{}", logger.display());
        let c2 = c.clone();
        let held = tokio::spawn(async move {
            let long = context::with_timeout(Duration::from_secs(30).as_nanos() as i64);
            c2.create(long, &req).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let t = Instant::now();
            c.state(ctx(), &StateRequest { id: id.into(), ..Default::default() }).await.expect("State");
            slowest = slowest.max(t.elapsed());
        }
        let t = Instant::now();
        c.kill(ctx(), &KillRequest { id: id.into(), signal: 9, ..Default::default() }).await.expect("Kill");
        slowest = slowest.max(t.elapsed());
        eprintln!("State and Kill beside the held Create: slowest {slowest:?}");
        assert!(slowest < AT_ONCE, "State or Kill waited {slowest:?} behind the other container's logger");
        assert!(!held.is_finished(), "the Create was not held up by its logger: this test shows nothing");
        match held.await.expect("join") {
            Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => {
                assert!(s.message.contains("not ready after 10 s"), "{s:?}")
            }
            r => panic!("Create with a logger that is never ready: {r:?}"),
        }
        c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        let del = DeleteRequest { id: id.into(), ..Default::default() };
        c.delete(ctx(), &del).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_no_leftovers(id);
    assert_no_leftovers(slow);
}

/// A Start that waits on an exec that does not answer (stopped before its
/// exec) holds the exec's handshake; State and Kill of that very exec still
/// answer at once (Kill with FAILED_PRECONDITION: the exec is not running
/// until its program runs, as the runc shim's has no pid until then), and
/// Delete of the exec ends the Start. Guard: the lifecycle is read and moved
/// under a lock never held across an await (`Process::life`); when Start
/// held the one lock through its handshake, all of them waited for it.
#[test]
fn state_and_kill_answer_while_a_start_waits_on_its_exec() {
    let id = "stall-start";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        c.exec(ctx(), &exec_request(id, "e1", &["true"])).await.expect("Exec");
        let state = StateRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        let pid = c.state(ctx(), &state).await.expect("State").pid as i32;
        // SAFETY: a plain kill(2) of the exec's process, which this test owns.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "stop the exec");
        let c2 = c.clone();
        let held = tokio::spawn(async move {
            let long = context::with_timeout(Duration::from_secs(30).as_nanos() as i64);
            c2.start(long, &StartRequest { id: "stall-start".into(), exec_id: "e1".into(), ..Default::default() }).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        c.state(ctx(), &state).await.expect("State while Start waits");
        let kill = KillRequest { id: id.into(), exec_id: "e1".into(), signal: 9, ..Default::default() };
        let what = "Kill of an exec whose program has not run";
        expect_code(c.kill(ctx(), &kill).await, Code::FAILED_PRECONDITION, what);
        let del = DeleteRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.delete(ctx(), &del).await.expect("Delete exec while Start waits");
        let took = t.elapsed();
        eprintln!("State, Kill and Delete beside the held Start: {took:?}");
        assert!(took < AT_ONCE, "State, Kill or Delete waited {took:?} behind the exec's Start");
        assert!(held.await.expect("join").is_err(), "the Start of a deleted exec succeeded");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}
