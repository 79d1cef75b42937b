//! Issue 21: behaviours of containerd's runc shim that clients rely on,
//! side by side with it where ctr can drive both.

use crate::harness::*;

/// The shim's oom_score_adj is containerd's + 1 (so the kernel picks it
/// before containerd), and a container with no `process.oomScoreAdj`
/// inherits it: the same under the runc shim.
#[test]
fn oom_score_adj_follows_containerd_plus_one_as_with_the_runc_shim() {
    let id = "parity-oom";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let score = |pid: i32| -> i32 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("oom_score_adj");
        s.trim().parse().expect("a number")
    };
    let shim = shim_pids(id);
    assert_eq!(shim.len(), 1, "{shim:?}");
    let containerd: i32 = std::fs::read_to_string(format!("/proc/{}/stat", shim[0]))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok()))
        .expect("the shim's parent");
    let want = (score(containerd) + 1).min(1000);
    assert_eq!(score(shim[0]), want, "the shim's own score");
    assert_eq!(score(task_pid(id)), want, "the container's inherited score");
    remove(id);
    assert_no_leftovers(id);

    // The pause after the output: ctr 1.6 can exit before it copied the
    // output of a process that ended at once (seen with the runc shim in
    // CI: an empty stdout and status 0).
    let probe = ["sh", "-c", "cat /proc/self/oom_score_adj; sleep 0.3"];
    let ours = run_image("parity-oom-run", &[], &probe);
    let theirs = ctr(&[
        &["run", "--rm", "--runtime", "io.containerd.runc.v2", &image(), "parity-oom-runc"],
        &probe[..],
    ]
    .concat());
    assert!(ours.status.success() && theirs.status.success(), "{} {}", text(&ours.stderr), text(&theirs.stderr));
    assert_eq!(text(&ours.stdout), text(&theirs.stdout), "myshim and the runc shim differ");
    assert_eq!(text(&ours.stdout).trim(), want.to_string());
}

/// An exec created and deleted without a Start reports status 0, as with
/// the runc shim (whose exec process does not exist before Start).
#[test]
fn an_exec_deleted_before_its_start_reports_zero() {
    use containerd_shim_protos::api::DeleteRequest;

    use crate::direct::*;
    let id = "parity-exec";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let exec = exec_request(id, "e1", &["true"]);
        c.exec(ctx(), &exec).await.expect("Exec");
        let del = DeleteRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.delete(ctx(), &del).await.expect("Delete exec").exit_status, 0);
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// A Kill of an exec between its Exec and its Start fails with
/// FailedPrecondition, as with the runc shim ("process not created"), and
/// leaves it to be started: ctr retries a Kill that races its own Start.
#[test]
fn an_exec_cannot_be_signalled_before_its_start_as_with_the_runc_shim() {
    use containerd_shim_protos::api::{KillRequest, StartRequest, WaitRequest};
    use containerd_shim_protos::ttrpc::Code;

    use crate::direct::*;
    let id = "parity-exec-kill";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        c.exec(ctx(), &exec_request(id, "e1", &["sh", "-c", "exit 7"])).await.expect("Exec");
        let kill = KillRequest { id: id.into(), exec_id: "e1".into(), signal: 1, ..Default::default() };
        expect_code(c.kill(ctx(), &kill).await, Code::FAILED_PRECONDITION, "Kill of an exec before its Start");
        let start = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.start(ctx(), &start).await.expect("Start after the refused Kill");
        let wait = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait").exit_status, 7);
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// containerd's stdin fifo keeps its reader until Delete, as with the runc
/// shim: containerd copies the client's stdin in for as long as the client
/// sends it, and a write after the exit (`crictl exec -it` sends the
/// terminal's pending bytes) must not be EPIPE ("Failed to redirect stdin").
/// With a terminal and without; Delete lets go of it.
#[test]
fn the_stdin_fifo_keeps_its_reader_until_delete_as_with_the_runc_shim() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    use containerd_shim_protos::api::{DeleteRequest, StartRequest, WaitRequest};

    use crate::direct::*;
    let id = "parity-stdin-held";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        for terminal in [true, false] {
            let exec_id = if terminal { "tty" } else { "pipe" };
            let stdin = b.join(format!("{exec_id}-stdin"));
            crate::terminal::fifo(&stdin);
            let mut req = exec_request(id, exec_id, &["true"]);
            if terminal {
                let process = serde_json::json!({
                    "args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "terminal": true, "user": {"uid": 0, "gid": 0}
                });
                req.spec.as_mut().expect("spec").value = serde_json::to_vec(&process).expect("json");
            }
            req.terminal = terminal;
            req.stdin = stdin.to_string_lossy().into();
            c.exec(ctx(), &req).await.expect("Exec");
            // Write-only, as containerd's copy: it opens only with a reader.
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&stdin)
                .expect("the shim reads the stdin fifo from Exec");
            let start = StartRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
            c.start(ctx(), &start).await.expect("Start exec");
            let wait = WaitRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
            assert_eq!(c.wait(ctx(), &wait).await.expect("Wait").exit_status, 0);
            w.write_all(b"typed after the exit\n").unwrap_or_else(|e| panic!("{exec_id}: write after the exit: {e}"));
            let del = DeleteRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
            c.delete(ctx(), &del).await.expect("Delete exec");
            let gone = w.write_all(b"x").err().and_then(|e| e.raw_os_error());
            assert_eq!(gone, Some(libc::EPIPE), "{exec_id}: Delete lets go of the stdin fifo");
        }
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// Start of an exec in a paused container fails at once, as runc's
/// `cannot exec in a paused container`, where it would wait for ever on a
/// frozen process; after Resume it starts.
#[test]
fn an_exec_does_not_start_in_a_paused_container_as_with_runc() {
    use containerd_shim_protos::api::{PauseRequest, ResumeRequest, StartRequest, WaitRequest};
    use containerd_shim_protos::ttrpc::Code;

    use crate::direct::*;
    let id = "parity-exec-paused";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        c.exec(ctx(), &exec_request(id, "e1", &["sh", "-c", "exit 5"])).await.expect("Exec");
        c.pause(ctx(), &PauseRequest { id: id.into(), ..Default::default() }).await.expect("Pause");
        let start = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        let what = "Start of an exec in a paused container";
        let message = expect_code(c.start(ctx(), &start).await, Code::FAILED_PRECONDITION, what);
        assert!(message.contains("paused"), "{message}");
        c.resume(ctx(), &ResumeRequest { id: id.into(), ..Default::default() }).await.expect("Resume");
        c.start(ctx(), &start).await.expect("Start after Resume");
        let wait = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait").exit_status, 5);
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// Exec of a program that does not exist: as with the runc shim, Exec
/// succeeds and Start fails naming the program (clients Exec, then Start,
/// then Delete on a Start error); Wait and Delete report 0, and nothing of
/// the exec is left in the container.
#[test]
fn an_exec_of_a_missing_program_fails_at_start_as_with_the_runc_shim() {
    use containerd_shim_protos::api::{DeleteRequest, PidsRequest, StartRequest, WaitRequest};

    use crate::direct::*;
    let id = "parity-exec-missing";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    let want = "exec: \"none\": executable file not found in $PATH";
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        c.exec(ctx(), &exec_request(id, "e1", &["none"])).await.expect("Exec of a missing program");
        let req = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        match c.start(ctx(), &req).await {
            Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => assert!(s.message.contains(want), "{s:?}"),
            r => panic!("Start of a missing program: {r:?}"),
        }
        let wait = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait").exit_status, 0);
        let del = DeleteRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.delete(ctx(), &del).await.expect("Delete exec").exit_status, 0);
        let pids = c.pids(ctx(), &PidsRequest { id: id.into(), ..Default::default() }).await.expect("Pids");
        assert_eq!(pids.processes.len(), 1, "only the init is left: {:?}", pids.processes);
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);

    // Through ctr, both runtimes name the program in the same words.
    for (runtime, cid) in [(RUNTIME, "parity-exec-missing-ctr"), ("io.containerd.runc.v2", "parity-exec-missing-runc")]
    {
        let run = ctr(&["run", "-d", "--runtime", runtime, &image(), cid, "sleep", "1000"]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        wait_status(cid, "RUNNING");
        let exec = ctr(&["task", "exec", "--exec-id", "e1", cid, "none"]);
        assert!(!exec.status.success() && text(&exec.stderr).contains(want), "{runtime}: {}", text(&exec.stderr));
        remove(cid);
        assert_no_leftovers(cid);
    }
}

/// runc's `Options.ShimCgroup` (set by operators who account shims apart
/// from their pods): the shim moves itself there at Create.
#[test]
fn the_shim_moves_into_the_shim_cgroup_its_options_name() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::Message;
    use containerd_shim_protos::shim::oci::Options;

    use crate::cgroup_ownership::TestCgroup;
    use crate::direct::*;
    let id = "parity-shimcg";
    let _cg = TestCgroup::make("shims");
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let opts = Options { shim_cgroup: format!("/{NS}/shims"), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().expect("encode"),
            ..Default::default()
        };
        let mut req = create_request(id, &b);
        req.options = Some(any).into();
        let shim = create_started_with(&c, req).await;
        let own = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).expect("the shim's cgroups");
        let want = format!("/{NS}/shims");
        let lines: Vec<&str> = own.lines().filter(|l| !l.contains("name=systemd") && !l.starts_with("0::")).collect();
        let lines = if lines.is_empty() { own.lines().collect() } else { lines };
        assert!(lines.iter().all(|l| l.ends_with(&want)), "the shim is not in {want}:\n{own}");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// Every container process leads a session and a process group of its own
/// (runc's nsexec calls setsid for the init and each exec), without a
/// terminal too: CRIU refuses a tree whose session leader is outside its
/// pid namespace, and a group signal to it reaches none of the shim's.
#[test]
fn every_container_process_leads_its_own_session_as_with_runc() {
    // pid, process group and session of the shell that prints them.
    let probe = ["sh", "-c", "cut -d' ' -f1,5,6 /proc/$$/stat; sleep 0.3"];
    for (runtime, id) in [(RUNTIME, "parity-sid"), ("io.containerd.runc.v2", "parity-sid-runc")] {
        let run = ctr(&["run", "-d", "--runtime", runtime, &image(), id, "sleep", "1000"]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        wait_status(id, "RUNNING");
        let pid = task_pid(id);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let f: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
        assert_eq!((f[2], f[3]), (pid.to_string().as_str(), pid.to_string().as_str()), "{runtime}: the init's");
        let exec = ctr(&[&["task", "exec", "--exec-id", "sid", id][..], &probe[..]].concat());
        assert!(exec.status.success(), "{runtime}: {}", text(&exec.stderr));
        let out = text(&exec.stdout);
        let ids: Vec<&str> = out.split_whitespace().collect();
        assert!(ids.len() == 3 && ids.iter().all(|i| *i == ids[0]), "{runtime}: the exec's: {out}");
        remove(id);
    }
    assert_no_leftovers("parity-sid");
}

/// A container with no stdio (`--null-io`) has its own /dev/null at fds
/// 0-2, not the shim's (runc's init reopens it): the fd's mount is one of
/// the container's, as CRIU needs to dump it.
#[test]
fn a_container_without_stdio_holds_its_own_dev_null_as_with_runc() {
    for (runtime, id) in [(RUNTIME, "parity-null"), ("io.containerd.runc.v2", "parity-null-runc")] {
        let run = ctr(&["run", "-d", "--null-io", "--runtime", runtime, &image(), id, "sleep", "1000"]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        wait_status(id, "RUNNING");
        let pid = task_pid(id);
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
        let ids: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').next()).collect();
        for fd in 0..3 {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("fd link");
            assert_eq!(link, std::path::Path::new("/dev/null"), "{runtime}: fd {fd}");
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
            let mnt = info.lines().find_map(|l| l.strip_prefix("mnt_id:")).expect("mnt_id").trim();
            assert!(ids.contains(&mnt), "{runtime}: fd {fd} is on mount {mnt}, not one of the container's");
        }
        remove(id);
    }
    assert_no_leftovers("parity-null");
}
