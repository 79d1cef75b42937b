//! Issue 25, Checkpoint: a container's processes dumped through CRIU. The
//! dumps (`criu_*`) need a kernel CRIU works on: they run in the VM stage
//! (`criu check` fails on this machine's kernel, and the v1 stage skips them);
//! the refusals need no CRIU and run everywhere.

use std::path::Path;
use std::time::Duration;

use containerd_shim_protos::api::{
    CheckpointTaskRequest, ConnectRequest, CreateTaskRequest, DeleteRequest, PauseRequest, ResumeRequest, StartRequest,
    StateRequest, WaitRequest,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use containerd_shim_protos::shim_async::TaskClient;
use containerd_shim_protos::ttrpc::Code;

use crate::direct::*;
use crate::harness::*;

/// Counts five times a second into /tmp/n.
const COUNTER: &str = "i=0; while :; do echo $i >/tmp/n; i=$((i+1)); sleep 0.2; done";

fn options(o: &CheckpointOptions) -> Any {
    Any {
        type_url: "containerd.runc.v1.CheckpointOptions".into(),
        value: o.write_to_bytes().expect("encode"),
        ..Default::default()
    }
}

/// The counter's last value, read through the init's root.
fn count(pid: i32) -> u64 {
    let n = std::fs::read_to_string(format!("/proc/{pid}/root/tmp/n")).unwrap_or_default();
    n.trim().parse().unwrap_or(0)
}

fn counts_on(pid: i32) -> bool {
    let before = count(pid);
    std::thread::sleep(Duration::from_millis(800));
    count(pid) > before
}

/// Checkpoint of `id` into `images` with `exit`, then its Wait: the exit
/// status.
async fn checkpoint_to_exit(c: &TaskClient, id: &str, images: &Path) -> u32 {
    let req = CheckpointTaskRequest {
        id: id.into(),
        path: images.to_string_lossy().into(),
        options: Some(options(&CheckpointOptions { exit: true, ..Default::default() })).into(),
        ..Default::default()
    };
    c.checkpoint(long(), &req).await.expect("Checkpoint");
    c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait").exit_status
}

/// A counter's checked bundle for `id`, and its images directory (none
/// yet).
fn counter(id: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let images = work_dir().join(format!("images-{id}"));
    let _ = std::fs::remove_dir_all(&images);
    (checked_bundle(id, &["sh", "-c", COUNTER]), images)
}

/// The shim for `id` of `bundle` (a counter) started, then Connect,
/// Create and Start through it: the client, the shim's pid and the init's,
/// once the init counts.
async fn counting(id: &str, bundle: &Path) -> (TaskClient, u32, i32) {
    let addr = text(&start(bundle, id, None));
    let c = client(addr.trim()).await;
    let shim = create_started(&c, id, bundle).await;
    let pid = c.state(ctx(), &StateRequest { id: id.into(), ..Default::default() }).await.expect("State").pid as i32;
    assert!(counts_on(pid), "the counter never counted");
    (c, shim, pid)
}

/// `id` (of `bundle`, a counter) started, checkpointed with `exit` into
/// `images` once it counts, then deleted: the count at the checkpoint.
/// `check` sees its init first.
fn counted_then_checkpointed(id: &str, bundle: &Path, images: &Path, check: impl FnOnce(i32)) -> u64 {
    let _ = std::fs::remove_dir_all(images);
    rt().block_on(async {
        let (c, shim, pid) = counting(id, bundle).await;
        check(pid);
        let before = count(pid);
        checkpoint_to_exit(&c, id, images).await;
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
        before
    })
}

/// Connect, Create of `id` from `images` (its stdout `stdout`, if any),
/// Start: the shim's pid and the restored init's.
async fn restored(c: &TaskClient, id: &str, bundle: &Path, images: &Path, stdout: &str) -> (u32, i32) {
    let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
    let mut req = create_request(id, bundle);
    req.checkpoint = images.to_string_lossy().into();
    req.stdout = stdout.into();
    let pid = c.create(long(), &req).await.expect("Create from the checkpoint").pid as i32;
    c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
    (shim, pid)
}

/// CRIU under TCG takes seconds.
fn long() -> containerd_shim_protos::ttrpc::context::Context {
    containerd_shim_protos::ttrpc::context::with_timeout(Duration::from_secs(60).as_nanos() as i64)
}

fn assert_criu() {
    let v = std::process::Command::new("criu").arg("--version").output();
    assert!(v.is_ok_and(|o| o.status.success()), "criu is not installed: the criu_ tests are for the VM stage");
}

/// `ctr containers checkpoint --task` (containerd's client: Pause,
/// Checkpoint, Resume): the container runs on, counting, and the
/// checkpoint is an image; TaskCheckpointed is published between the
/// pause and the resume.
#[test]
fn criu_a_running_container_is_checkpointed_and_runs_on() {
    assert_criu();
    let id = "ck-running";
    let ck = format!("{id}-image");
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", COUNTER]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let pid = task_pid(id);
    assert!(counts_on(pid), "the counter never counted");
    let topics = crate::events::topics_during(id, "/tasks/resumed", || {
        let out = ctr(&["containers", "checkpoint", "--task", "--rw", id, &ck]);
        assert!(out.status.success(), "checkpoint: {}", text(&out.stderr));
    });
    assert_eq!(topics, ["/tasks/paused", "/tasks/checkpointed", "/tasks/resumed"]);
    wait_status(id, "RUNNING");
    assert_eq!(task_pid(id), pid, "the same init runs on");
    assert!(counts_on(pid), "the counter stopped after the checkpoint");
    let images = text(&ctr(&["images", "ls", "-q"]).stdout);
    assert!(images.lines().any(|l| l == ck), "no checkpoint image {ck}: {images}");
    let _ = ctr(&["images", "rm", &ck]);
    remove(id);
    assert_no_leftovers(id);
}

/// Checkpoint with `exit` (straight through the shim: ctr sends options
/// only to runc): the images are written where the request says, then the
/// container is gone, its exit reported as a SIGKILL's.
#[test]
fn criu_a_checkpoint_with_exit_leaves_the_images_and_ends_the_container() {
    assert_criu();
    let id = "ck-exit";
    let (b, images) = counter(id);
    rt().block_on(async {
        let (c, shim, _) = counting(id, &b).await;
        assert_eq!(checkpoint_to_exit(&c, id, &images).await, 137, "ended by CRIU");
        assert!(Path::new(&images).join("inventory.img").exists(), "no inventory.img in {}", images.display());
        let fds = std::fs::read_to_string(images.join("descriptors.json")).expect("descriptors.json");
        let fds: Vec<String> = serde_json::from_str(&fds).expect("a JSON list");
        assert_eq!(fds, ["/dev/null", "/dev/null", "/dev/null"], "the stdio of a container without any");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
}

/// What is refused before CRIU runs, with the code that says whose mistake
/// it is: a container not yet started (FAILED_PRECONDITION, as the runc
/// shim), options naming what cannot be done or of a type nobody reads
/// (INVALID_ARGUMENT); the container is untouched.
#[test]
fn refused_checkpoints_name_why_and_leave_the_container_as_it_was() {
    let id = "ck-refused";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        c.create(ctx(), &create_request(id, &b)).await.expect("Create");
        let images = work_dir().join(format!("images-{id}")).to_string_lossy().into_owned();
        let ck = |o: Option<Any>| CheckpointTaskRequest {
            id: id.into(),
            path: images.clone(),
            options: o.into(),
            ..Default::default()
        };
        let m = expect_code(c.checkpoint(ctx(), &ck(None)).await, Code::FAILED_PRECONDITION, "a Created container");
        assert!(m.contains("Created"), "{m}");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        let ipc = CheckpointOptions { empty_namespaces: vec!["ipc".into()], ..Default::default() };
        let m = expect_code(c.checkpoint(ctx(), &ck(Some(options(&ipc)))).await, Code::INVALID_ARGUMENT, "ipc");
        assert!(m.contains("\"ipc\""), "{m}");
        let other = Any { type_url: "example.com/Other".into(), ..Default::default() };
        let m = expect_code(c.checkpoint(ctx(), &ck(Some(other))).await, Code::INVALID_ARGUMENT, "unknown type");
        assert!(m.contains("example.com/Other"), "{m}");
        let state = c.state(ctx(), &StateRequest { id: id.into(), ..Default::default() }).await.expect("State");
        assert_eq!(state.status.enum_value(), Ok(containerd_shim_protos::api::Status::RUNNING));
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// A dump CRIU refuses (a deleted file held open, larger than CRIU keeps
/// by default) fails naming CRIU's own reason, with its log kept in the
/// bundle, and leaves the container running as it was.
#[test]
fn criu_a_failed_dump_says_why_and_leaves_the_container_running() {
    assert_criu();
    let id = "ck-fails";
    let script =
        format!("dd if=/dev/zero of=/tmp/big bs=1M count=2 2>/dev/null; exec 3</tmp/big; rm /tmp/big; {COUNTER}");
    let b = checked_bundle(id, &["sh", "-c", &script]);
    let images = work_dir().join(format!("images-{id}"));
    rt().block_on(async {
        let (c, shim, pid) = counting(id, &b).await;
        let state = StateRequest { id: id.into(), ..Default::default() };
        let req = CheckpointTaskRequest { id: id.into(), path: images.to_string_lossy().into(), ..Default::default() };
        let m = expect_code(c.checkpoint(long(), &req).await, Code::INTERNAL, "a dump CRIU refuses");
        assert!(m.contains("ghost file") && m.contains("criu-dump.log"), "{m}");
        assert!(b.join("criu-dump.log").exists(), "the log is not kept in the bundle");
        let s = c.state(ctx(), &state).await.expect("State");
        assert_eq!(s.status.enum_value(), Ok(containerd_shim_protos::api::Status::RUNNING));
        assert!(counts_on(pid), "the counter stopped after the failed dump");
        kill_delete_shutdown(&c, id, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
}

/// Create from a checkpoint (after the original is gone, under its id, as
/// `ctr containers restore` does): the dumped processes come back in a new
/// container and count on from where they were, not from zero; Start makes
/// the task Running without a new program; Kill, Wait and Delete are as
/// for any container.
#[test]
fn criu_a_checkpoint_is_restored_and_counts_on() {
    assert_criu();
    let id = "ck-restore";
    let (b, images) = counter(id);
    let before = counted_then_checkpointed(id, &b, &images, |_| {});
    assert_no_leftovers(id);
    let b = checked_bundle(id, &["sh", "-c", COUNTER]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let (shim, pid) = restored(&c, id, &b, &images, "").await;
        let s = c.state(ctx(), &StateRequest { id: id.into(), ..Default::default() }).await.expect("State");
        assert_eq!(s.status.enum_value(), Ok(containerd_shim_protos::api::Status::RUNNING));
        assert!(counts_on(pid), "the restored counter does not count");
        assert!(count(pid) >= before, "the counter started again: {} after {before}", count(pid));
        // An exec joins the restored init's namespaces and sees its files.
        let mut exec = exec_request(id, "e1", &["sh", "-c", "test -s /tmp/n"]);
        exec.stdout = String::new();
        c.exec(ctx(), &exec).await.expect("Exec into the restored container");
        let start = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.start(ctx(), &start).await.expect("Start the exec");
        let wait = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait the exec").exit_status, 0, "the exec saw no /tmp/n");
        kill_delete_shutdown(&c, id, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
}

/// A paused container's checkpoint (left paused) restored into a new
/// container, its own id, bundle, cgroup and stdout, while the original
/// runs on: both count on, each in its own cgroup, the new one's output
/// going on from the count at the checkpoint in its own log (its stdout
/// pipe handed in for the dumped one), and the new one's prestart and
/// createRuntime hooks run at the restore with its restored init's pid, as
/// runc runs them (CRIU's setup-namespaces).
#[test]
fn criu_a_checkpoint_is_restored_into_a_new_container_beside_the_original() {
    assert_criu();
    let (a, b) = ("ck-twin-a", "ck-twin-b");
    let printing = format!("{}; echo $i >/tmp/n; i=$((i+1)); sleep 0.2; done", "i=0; while :; do echo $i");
    let ba = checked_bundle(a, &["sh", "-c", &printing]);
    let images = work_dir().join(format!("images-{a}"));
    let _ = std::fs::remove_dir_all(&images);
    let bb = bundle(&format!("bundle-{b}"));
    let mut s = spec(b, &rootfs(b), &["sh", "-c", &printing]);
    let hook = |kind: &str| {
        let out = bb.join(format!("{kind}.json"));
        serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]}])
    };
    s["hooks"] = serde_json::json!({"prestart": hook("prestart"), "createRuntime": hook("createRuntime")});
    std::fs::write(bb.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&bb);
    let (addr_a, addr_b) = (text(&start(&ba, a, None)), text(&start(&bb, b, None)));
    rt().block_on(async {
        let ca = client(addr_a.trim()).await;
        let mut req = create_request(a, &ba);
        req.stdout = format!("file://{}", ba.join("out.log").display());
        let shim_a = create_started_with(&ca, req).await;
        let pid_a = ca.state(ctx(), &StateRequest { id: a.into(), ..Default::default() }).await.expect("State").pid;
        let pid_a = pid_a as i32;
        assert!(counts_on(pid_a), "the counter never counted");
        // Dumped while paused (containerd's TestCheckpointOnPauseStatus):
        // it stays paused, and the restore still comes back running.
        ca.pause(ctx(), &PauseRequest { id: a.into(), ..Default::default() }).await.expect("Pause");
        let req = CheckpointTaskRequest { id: a.into(), path: images.to_string_lossy().into(), ..Default::default() };
        ca.checkpoint(long(), &req).await.expect("Checkpoint");
        let s = ca.state(ctx(), &StateRequest { id: a.into(), ..Default::default() }).await.expect("State");
        assert_eq!(s.status.enum_value(), Ok(containerd_shim_protos::api::Status::PAUSED));
        assert!(!counts_on(pid_a), "a paused container counted after the checkpoint");
        let at = count(pid_a);
        ca.resume(ctx(), &ResumeRequest { id: a.into(), ..Default::default() }).await.expect("Resume");
        let cb = client(addr_b.trim()).await;
        let out_b = format!("file://{}", bb.join("out.log").display());
        let (shim_b, pid_b) = restored(&cb, b, &bb, &images, &out_b).await;
        assert!(counts_on(pid_b) && counts_on(pid_a), "both count on");
        let printed = std::fs::read_to_string(bb.join("out.log")).unwrap_or_default();
        let printed: Vec<u64> = printed.lines().filter_map(|l| l.parse().ok()).collect();
        assert!(printed.len() > 1 && printed[0] >= at, "the restored output from {at} on: {printed:?}");
        let cgroup = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(cgroup(pid_b).contains(b) && cgroup(pid_a).contains(a), "{}\n{}", cgroup(pid_a), cgroup(pid_b));
        for kind in ["prestart", "createRuntime"] {
            let state = std::fs::read_to_string(bb.join(format!("{kind}.json"))).unwrap_or_default();
            let state: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
            assert_eq!((state["id"].as_str(), state["status"].as_str()), (Some(b), Some("creating")), "{kind}");
            assert_eq!(state["pid"].as_i64(), Some(pid_b as i64), "{kind}: the restored init's pid");
        }
        kill_delete_shutdown(&cb, b, shim_b).await;
        kill_delete_shutdown(&ca, a, shim_a).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(a);
    assert_no_leftovers(b);
}

/// Network, ipc and uts namespaces of their own held by a `sleep` (a
/// pod's, as CRI gives them by path), killed when dropped.
struct PodNs(std::process::Child);

/// The namespaces a pod's containers join by path: (config type, /proc name).
const POD_NS: [(&str, &str); 3] = [("network", "net"), ("ipc", "ipc"), ("uts", "uts")];

impl PodNs {
    fn new() -> PodNs {
        let mut unshare = std::process::Command::new("unshare");
        let ns = PodNs(unshare.args(["-n", "-i", "-u", "sleep", "1000"]).spawn().expect("unshare"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ns.inode("uts") == std::fs::read_link("/proc/self/ns/uts").ok() {
            assert!(std::time::Instant::now() < deadline, "unshare made no namespaces");
            std::thread::sleep(Duration::from_millis(10));
        }
        ns
    }

    fn path(&self, name: &str) -> String {
        format!("/proc/{}/ns/{name}", self.0.id())
    }

    fn inode(&self, name: &str) -> Option<std::path::PathBuf> {
        std::fs::read_link(self.path(name)).ok()
    }

    /// Whether `pid` is in these namespaces.
    fn holds(&self, pid: i32) -> bool {
        POD_NS.iter().all(|(_, n)| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).ok() == self.inode(n))
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bundle for `id` joining `pod`'s namespaces.
fn bundle_in_pod(id: &str, pod: &PodNs) -> std::path::PathBuf {
    let b = bundle(&format!("bundle-{id}"));
    let mut s = spec(id, &rootfs(id), &["sh", "-c", COUNTER]);
    let namespaces = s["linux"]["namespaces"].as_array_mut().expect("namespaces");
    namespaces.retain(|n| POD_NS.iter().all(|(t, _)| n["type"] != *t));
    namespaces.extend(POD_NS.iter().map(|(t, n)| serde_json::json!({"type": t, "path": pod.path(n)})));
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    b
}

/// A container that joined a pod's namespaces by path is restored into
/// those the new config names, as runc does it: the network's was left
/// external by the dump and is handed to CRIU under the same key, ipc and
/// uts are joined by CRIU.
#[test]
fn criu_a_container_in_joined_namespaces_is_restored_into_the_new_ones() {
    assert_criu();
    let (id, new) = ("ck-pod", "ck-pod-new");
    let (old_ns, new_ns) = (PodNs::new(), PodNs::new());
    let b = bundle_in_pod(id, &old_ns);
    let images = work_dir().join(format!("images-{id}"));
    counted_then_checkpointed(id, &b, &images, |pid| assert!(old_ns.holds(pid), "the container joined them"));
    let b = bundle_in_pod(new, &new_ns);
    let addr = text(&start(&b, new, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let (shim, pid) = restored(&c, new, &b, &images, "").await;
        assert!(new_ns.holds(pid), "restored into the new config's namespaces");
        assert!(counts_on(pid), "the restored counter does not count");
        kill_delete_shutdown(&c, new, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
    assert_no_leftovers(new);
}

/// A restore of `images` as `new` (bundle `b`) by a shim of its own,
/// which must fail INTERNAL (`what` names the case) and leave no container
/// `new` in the shim: the error's message.
fn failed_restore(new: &str, b: &Path, images: &Path, what: &str) -> String {
    let addr = text(&start(b, new, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let mut req = create_request(new, b);
        req.checkpoint = images.to_string_lossy().into();
        let m = expect_code(c.create(long(), &req).await, Code::INTERNAL, what);
        let state = c.state(ctx(), &StateRequest { id: new.into(), ..Default::default() }).await;
        assert!(state.is_err(), "the failed container is not there");
        shutdown(&c, shim).await;
        m
    })
}

/// A restore CRIU fails (an image file missing) names CRIU's reason and
/// leaves nothing behind: no process, cgroup, mount or state of the new
/// container.
#[test]
fn criu_a_failed_restore_says_why_and_leaves_nothing() {
    assert_criu();
    let (id, new) = ("ck-broken", "ck-broken-new");
    let (b, images) = counter(id);
    counted_then_checkpointed(id, &b, &images, |_| {});
    let cores: Vec<_> = std::fs::read_dir(&images)
        .expect("images")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("core-")))
        .collect();
    assert!(!cores.is_empty(), "no core-*.img in the checkpoint");
    cores.iter().for_each(|p| std::fs::remove_file(p).expect("rm"));
    let b = checked_bundle(new, &["sh", "-c", COUNTER]);
    let m = failed_restore(new, &b, &images, "a restore with no core image");
    assert!(m.contains("restore") && m.contains("core-"), "{m}");
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(new);
    assert_no_leftovers(id);
}

/// A restore whose createRuntime hook fails is refused at CRIU's
/// setup-namespaces notification (the handler's error nacks it): Create
/// fails naming the hook, and nothing of the new container is left.
#[test]
fn criu_a_restore_whose_create_runtime_hook_fails_leaves_nothing() {
    assert_criu();
    let (id, new) = ("ck-hookfail", "ck-hookfail-new");
    let (b, images) = counter(id);
    counted_then_checkpointed(id, &b, &images, |_| {});
    let b = bundle(&format!("bundle-{new}"));
    let mut s = spec(new, &rootfs(new), &["sh", "-c", COUNTER]);
    s["hooks"] =
        serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 3"]}]});
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    let m = failed_restore(new, &b, &images, "a restore with a failing hook");
    assert!(m.contains("setup-namespaces") && m.contains("createRuntime"), "{m}");
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(new);
}

/// The terminal fifos of `id`'s bundle `b`: the test's ends (stdin to
/// write, stdout to read without blocking) and the Create that uses them.
fn terminal_create(id: &str, b: &Path) -> (std::fs::File, std::fs::File, CreateTaskRequest) {
    use std::os::unix::fs::OpenOptionsExt;
    let (stdin, stdout) = (b.join("stdin"), b.join("stdout"));
    crate::terminal::fifo(&stdin);
    crate::terminal::fifo(&stdout);
    let out = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&stdout).expect("out");
    let inp = std::fs::OpenOptions::new().read(true).write(true).open(&stdin).expect("in");
    let mut req = create_request(id, b);
    req.terminal = true;
    req.stdin = stdin.to_string_lossy().into();
    req.stdout = stdout.to_string_lossy().into();
    (inp, out, req)
}

/// containerd's TestCheckpointRestorePTY, through the Task API: a shell
/// reading its terminal, checkpointed with exit, restored as a new
/// container with new fifos: what is typed into the new terminal reaches
/// the restored shell (the master CRIU makes, handed over at its
/// orphan-pts-master notification, behind the console copy), its answer
/// comes out, its exit is reported.
#[test]
fn criu_a_container_with_a_terminal_is_checkpointed_and_restored() {
    use std::io::Write;
    assert_criu();
    let (id, new) = ("ck-tty", "ck-tty-new");
    let script = "read A; echo z${A}z";
    let with_terminal = |id: &str| {
        let b = bundle(&format!("bundle-{id}"));
        let mut s = spec(id, &rootfs(id), &["sh", "-c", script]);
        s["process"]["terminal"] = serde_json::json!(true);
        std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
        assert_checks_clean(&b);
        b
    };
    let b = with_terminal(id);
    let images = work_dir().join(format!("images-{id}"));
    let _ = std::fs::remove_dir_all(&images);
    let (_in, _out, req) = terminal_create(id, &b);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started_with(&c, req).await;
        // The shell is reading its terminal when it is dumped.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(checkpoint_to_exit(&c, id, &images).await, 137, "ended by CRIU");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    let b = with_terminal(new);
    let (mut inp, mut out, mut req) = terminal_create(new, &b);
    req.checkpoint = images.to_string_lossy().into();
    let addr = text(&start(&b, new, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        c.create(long(), &req).await.expect("Create from the checkpoint of a terminal");
        c.start(ctx(), &StartRequest { id: new.into(), ..Default::default() }).await.expect("Start");
        inp.write_all(b"hello\n").expect("stdin");
        let mut got = String::new();
        crate::terminal::read_until(&mut out, &mut got, "zhelloz");
        let wait = WaitRequest { id: new.into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait").exit_status, 0, "{got:?}");
        c.delete(ctx(), &DeleteRequest { id: new.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
    assert_no_leftovers(new);
}

/// A Create from a directory that is no checkpoint fails naming what is
/// missing, and leaves nothing behind.
#[test]
fn refused_a_restore_from_what_is_no_checkpoint() {
    let id = "ck-notimages";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let empty = work_dir().join(format!("images-{id}"));
    std::fs::create_dir_all(&empty).expect("dir");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let mut req = create_request(id, &b);
        req.checkpoint = empty.to_string_lossy().into();
        let m = expect_code(c.create(ctx(), &req).await, Code::INVALID_ARGUMENT, "Create from an empty directory");
        assert!(m.contains("inventory.img"), "{m}");
        shutdown(&c, shim).await;
    });
    let _ = std::fs::remove_dir_all(&empty);
    assert_no_leftovers(id);
}

/// containerd's own restore: `ctr containers checkpoint --task --rw`, the
/// container and its task removed, then `ctr containers restore --live --rw`
/// from the checkpoint image (containerd unpacks it and sends it to Create,
/// with new stdio fifos): the task runs again and counts on.
#[test]
fn criu_ctr_restores_a_removed_container_from_its_checkpoint_image() {
    assert_criu();
    let id = "ck-ctr-restore";
    let ck = format!("{id}-image");
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", COUNTER]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let pid = task_pid(id);
    std::thread::sleep(Duration::from_millis(1500));
    let out = ctr(&["containers", "checkpoint", "--task", "--rw", id, &ck]);
    assert!(out.status.success(), "checkpoint: {}", text(&out.stderr));
    let before = count(pid);
    assert!(before > 0, "the counter never counted");
    remove(id);
    let out = ctr(&["containers", "restore", "--live", "--rw", id, &ck]);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    wait_status(id, "RUNNING");
    let pid = task_pid(id);
    assert!(counts_on(pid), "the restored counter does not count");
    assert!(count(pid) >= before, "the counter started again: {} after {before}", count(pid));
    let _ = ctr(&["images", "rm", &ck]);
    remove(id);
    assert_no_leftovers(id);
}

/// A container with a live exec checkpoints (left running) as under runc:
/// the dump is of the init's tree, which an exec (the shim's child, joined
/// by setns) is not in, and the init and the exec both run on.
#[test]
fn criu_a_container_with_a_live_exec_is_checkpointed_and_both_run_on() {
    assert_criu();
    let id = "ck-exec";
    let (b, images) = counter(id);
    rt().block_on(async {
        let (c, shim, pid) = counting(id, &b).await;
        let mut exec = exec_request(id, "e1", &["sleep", "1000"]);
        exec.stdout = String::new();
        c.exec(ctx(), &exec).await.expect("Exec");
        let start = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        let exec_pid = c.start(ctx(), &start).await.expect("Start the exec").pid as i32;
        let req = CheckpointTaskRequest { id: id.into(), path: images.to_string_lossy().into(), ..Default::default() };
        c.checkpoint(long(), &req).await.expect("Checkpoint with an exec running");
        assert!(images.join("inventory.img").exists(), "no images");
        for exec_id in ["", "e1"] {
            let req = StateRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
            let s = c.state(ctx(), &req).await.expect("State");
            assert_eq!(s.status.enum_value(), Ok(containerd_shim_protos::api::Status::RUNNING), "{exec_id:?}");
        }
        assert!(counts_on(pid), "the init stopped after the checkpoint");
        assert!(std::path::Path::new(&format!("/proc/{exec_pid}")).exists(), "the exec is gone");
        kill_delete_shutdown(&c, id, shim).await;
    });
    let _ = std::fs::remove_dir_all(&images);
    assert_no_leftovers(id);
}
