//! The Shim's verbs on a running process, without root: the runtime's side
//! is a double. `Spawned` is the seam: a pid, its pidfd and the parent's end
//! of the handshake channel. The double gives a real unprivileged child
//! (`sleep`) and plays the init's end of the channel itself; the reaper's
//! side is the oneshot the test completes when the child is reaped. What
//! runs is the verbs' own ordering: TaskStart before TaskOOM before TaskExit
//! before TaskDelete, Kill while a Start waits, the codes a misuse is
//! answered.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::Code;
use tokio::sync::oneshot;

use super::tests::{io, rt, shim};
use super::*;
use crate::cgroups::{Cgroup, Placement};
use crate::runtime::channel::{InitEnd, ParentEnd, Phase, ToInit};
use crate::runtime::Spawned;
use crate::stdio::Relays;
use crate::sys;

/// The init's side of one process: the child, the channel end it would
/// hold, and the reaper's report of its exit.
struct Double {
    child: Child,
    init: InitEnd,
    reaped: oneshot::Sender<u32>,
}

impl Double {
    /// Answers Start as an init that execs (its end of the channel closes
    /// with the exec), then reports the child's exit when it dies.
    fn run_when_started(mut self) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            assert!(matches!(self.init.recv(), Ok(Some(ToInit::Start))), "the init is told to start");
            self.exec_then_exit();
        })
    }

    /// What follows a Start that was read: the exec (its end of the channel
    /// closes), then the reaper's report of the child's exit.
    fn exec_then_exit(mut self) {
        drop(self.init);
        let status = self.child.wait().expect("reap the child");
        let _ = self.reaped.send(status.code().map_or_else(|| 128 + status_signal(&status), |c| c as u32));
    }

    /// The process ends as a real init's would: once the child is dead its
    /// end of the channel closes (the init held it) and the reaper reports.
    fn end_when_dead(mut self) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let status = self.child.wait().expect("reap the child");
            drop(self.init);
            let code = status.code().map_or_else(|| 128 + status_signal(&status), |c| c as u32);
            let _ = self.reaped.send(code);
        })
    }
}

fn status_signal(status: &std::process::ExitStatus) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0) as u32
}

/// Serves container `id` with a double as its init, Ready as after Create
/// (TaskCreate is Create's, which needs root, so it is not among the events).
fn serve(s: &Arc<Shim>, id: &str) -> Double {
    serve_watched(s, id, None)
}

/// A double's process as Create or Exec leaves it (Ready), and the
/// receiver of its exit.
fn spawn_double(is_exec: bool) -> (Double, Arc<Process>, oneshot::Receiver<u32>) {
    let child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let pid = child.id() as i32;
    let pidfd = sys::pidfd_open(pid).expect("pidfd_open");
    let (parent, init) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    parent.set_nonblocking(true).expect("nonblocking");
    let chan = ParentEnd(tokio::net::UnixStream::from_std(parent).expect("tokio stream"));
    let spawned = Spawned { pid, pidfd, chan, console: None };
    let p = Process::new(spawned, Phase::Ready, io(), Relays::default(), Default::default(), is_exec);
    let (reaped, rx) = oneshot::channel();
    (Double { child, init: InitEnd(init), reaped }, p, rx)
}

/// As `serve`, with the container's OOM watch.
fn serve_watched(s: &Arc<Shim>, id: &str, oom: Option<oom::Oom>) -> Double {
    let (double, p, rx) = spawn_double(false);
    let watch = oom.as_ref().map(|o| o.watch.clone());
    let dir = std::env::temp_dir().join(format!("myshim-unit-{}-{id}", std::process::id()));
    let c = Arc::new(Container {
        id: id.into(),
        bundle: dir.to_string_lossy().into_owned(),
        spec: None,
        init: p.clone(),
        execs: Default::default(),
        // Not the shim's: Delete leaves it alone (it does not exist).
        cgroup: Cgroup::recorded(Placement { path: "/myshim-unit/none".into(), systemd: None }, false),
        shared_pidns: false,
        rootfs_mount: None,
        state_dir: dir,
        confinement: Confinement { seccomp: None, personality: None, agent_spec: None },
        oom,
    });
    s.publish_exit_on(&p, rx, (id, ""), watch, None);
    s.containers.lock().expect("registry").insert(id.into(), c);
    double
}

/// Adds exec `exec_id` to container `id`, a double as its process, Ready
/// as after Exec.
fn serve_exec(s: &Arc<Shim>, id: &str, exec_id: &str) -> Double {
    let (double, p, rx) = spawn_double(true);
    s.publish_exit_on(&p, rx, (id, exec_id), None, None);
    let c = s.containers.lock().expect("registry").get(id).cloned().expect("the container");
    c.execs.lock().expect("execs").insert(exec_id.into(), p);
    double
}

fn topics_of(events: &super::tests::Recorded) -> Vec<&'static str> {
    events.0.lock().expect("events").clone()
}

/// The process exits while Start is still waiting for its answer (the exit
/// reaches the shim first): TaskStart is still published before TaskExit,
/// and Delete's TaskDelete after both.
#[test]
fn an_exit_that_overtakes_start_is_published_after_taskstart() {
    let (s, events) = shim();
    rt().block_on(async {
        let mut d = serve(&s, "c1");
        let init = std::thread::spawn(move || {
            assert!(matches!(d.init.recv(), Ok(Some(ToInit::Start))), "the init is told to start");
            d.child.kill().expect("kill the child");
            let status = d.child.wait().expect("reap");
            // The reaper reports before the init's channel closes.
            let _ = d.reaped.send(128 + status_signal(&status));
            std::thread::sleep(Duration::from_millis(50));
            drop(d.init);
        });
        s.start("c1", "").await.expect("start");
        let exit = s.wait("c1", "").await.expect("wait");
        assert_eq!(exit.code, 137);
        init.join().expect("init double");
        let (_, deleted) = s.delete("c1", "").await.expect("delete");
        assert_eq!(deleted.code, 137);
    });
    assert_eq!(
        topics_of(&events),
        [topics::TASK_START_EVENT_TOPIC, topics::TASK_EXIT_EVENT_TOPIC, topics::TASK_DELETE_EVENT_TOPIC]
    );
}

/// A Start whose process never answers does not hold Kill: SIGKILL reaches
/// it, its end of the channel closes with Start unread, and Start (which
/// then fails, saying so), Kill and Wait all return; the exit is published.
#[test]
fn kill_answers_while_start_waits_on_a_silent_init() {
    let (s, events) = shim();
    rt().block_on(async {
        let d = serve(&s, "c1");
        let ended = d.end_when_dead();
        let starting = tokio::spawn({
            let s = s.clone();
            async move { s.start("c1", "").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!starting.is_finished(), "Start waits for the init's answer");
        let kill = tokio::time::timeout(Duration::from_secs(5), s.kill("c1", "", libc::SIGKILL as u32, false));
        kill.await.expect("Kill answered while Start waited").expect("kill");
        let started = tokio::time::timeout(Duration::from_secs(5), starting).await.expect("Start returned");
        let e = started.expect("start task").expect_err("a Start the process never read");
        assert!(e.to_string().contains("ended before it could start"), "{e}");
        assert_eq!(s.wait("c1", "").await.expect("wait").code, 137);
        ended.join().expect("double");
        // A second Start of a process that ran is the client's mistake.
        let again = s.start("c1", "").await.expect_err("a second Start");
        assert_eq!(again.code(), Code::FAILED_PRECONDITION, "{again}");
        s.delete("c1", "").await.expect("delete");
    });
    assert_eq!(topics_of(&events), [topics::TASK_EXIT_EVENT_TOPIC, topics::TASK_DELETE_EVENT_TOPIC]);
}

/// What a client that misuses a live container is answered: Delete of a
/// running one FAILED_PRECONDITION, a Kill of an exec that is not there
/// NOT_FOUND, a Kill after the exit NOT_FOUND; none of them publishes.
#[test]
fn misuse_of_a_live_container_is_answered_with_its_code() {
    let (s, events) = shim();
    rt().block_on(async {
        let d = serve(&s, "c1");
        let ended = d.run_when_started();
        s.start("c1", "").await.expect("start");
        let e = s.delete("c1", "").await.expect_err("delete of a running container");
        assert_eq!(e.code(), Code::FAILED_PRECONDITION, "{e}");
        let e = s.kill("c1", "e9", libc::SIGTERM as u32, false).await.expect_err("an exec that is not there");
        assert_eq!(e.code(), Code::NOT_FOUND, "{e}");
        s.kill("c1", "", libc::SIGKILL as u32, false).await.expect("kill");
        assert_eq!(s.wait("c1", "").await.expect("wait").code, 137);
        ended.join().expect("double");
        let e = s.kill("c1", "", libc::SIGKILL as u32, false).await.expect_err("kill after the exit");
        assert_eq!(e.code(), Code::NOT_FOUND, "{e}");
        s.delete("c1", "").await.expect("delete");
    });
    assert_eq!(
        topics_of(&events),
        [topics::TASK_START_EVENT_TOPIC, topics::TASK_EXIT_EVENT_TOPIC, topics::TASK_DELETE_EVENT_TOPIC]
    );
}

/// The OOM killer takes the init: the kill counter moves before the exit
/// reaches the shim, and TaskOOM is published before TaskExit. The watch's
/// fd here never fires (an eventfd nobody signals), so the TaskOOM can only
/// come from the exit path reading the counter itself before TaskExit, as
/// it must when the exit overtakes the watch's wake-up.
#[test]
fn an_oom_killed_init_has_its_task_oom_before_its_task_exit() {
    let (s, events) = shim();
    let counter = std::env::temp_dir().join(format!("myshim-unit-oom-{}", std::process::id()));
    std::fs::write(&counter, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n").expect("counter");
    rt().block_on(async {
        let source = crate::cgroups::OomSource { fd: sys::eventfd().expect("eventfd"), counter: counter.clone() };
        let oom = oom::Oom::start(source, s.events.clone(), "c1").expect("watch");
        let d = serve_watched(&s, "c1", Some(oom));
        let ended = d.run_when_started();
        s.start("c1", "").await.expect("start");
        std::fs::write(&counter, "oom_kill_disable 0\nunder_oom 1\noom_kill 1\n").expect("the kill counted");
        s.kill("c1", "", libc::SIGKILL as u32, false).await.expect("the kill itself");
        assert_eq!(s.wait("c1", "").await.expect("wait").code, 137);
        ended.join().expect("double");
        s.delete("c1", "").await.expect("delete");
    });
    let _ = std::fs::remove_file(&counter);
    assert_eq!(
        topics_of(&events),
        [
            topics::TASK_START_EVENT_TOPIC,
            topics::TASK_OOM_EVENT_TOPIC,
            topics::TASK_EXIT_EVENT_TOPIC,
            topics::TASK_DELETE_EVENT_TOPIC
        ]
    );
}

/// An exec is Created until its program runs: a Kill while its Start waits
/// for the answer is refused (FAILED_PRECONDITION, as the runc shim's exec
/// has no pid until then) instead of ending it before its program ran; once
/// Start has returned the Kill reaches it.
#[test]
fn an_exec_is_not_killed_while_its_start_waits_for_it() {
    let (s, events) = shim();
    rt().block_on(async {
        let init = serve(&s, "c1").run_when_started();
        s.start("c1", "").await.expect("start the init");
        let mut d = serve_exec(&s, "c1", "e1");
        let (told, asked) = std::sync::mpsc::channel();
        let (go, going) = std::sync::mpsc::channel::<()>();
        let exec = std::thread::spawn(move || {
            assert!(matches!(d.init.recv(), Ok(Some(ToInit::Start))), "the exec is told to start");
            told.send(()).expect("tell");
            going.recv().expect("go");
            d.exec_then_exit();
        });
        let starting = tokio::spawn({
            let s = s.clone();
            async move { s.start("c1", "e1").await }
        });
        tokio::task::spawn_blocking(move || asked.recv()).await.expect("join").expect("Start reached the exec");
        let e = s.kill("c1", "e1", libc::SIGHUP as u32, false).await.expect_err("a Kill before the program runs");
        assert_eq!(e.code(), Code::FAILED_PRECONDITION, "{e}");
        go.send(()).expect("go");
        starting.await.expect("start task").expect("the exec started");
        s.kill("c1", "e1", libc::SIGHUP as u32, false).await.expect("a Kill once it runs");
        assert_eq!(s.wait("c1", "e1").await.expect("wait").code, 128 + libc::SIGHUP as u32);
        exec.join().expect("exec double");
        s.kill("c1", "", libc::SIGKILL as u32, false).await.expect("kill the init");
        s.wait("c1", "").await.expect("wait");
        init.join().expect("init double");
        s.delete("c1", "").await.expect("delete");
    });
    assert_eq!(
        topics_of(&events),
        [
            topics::TASK_START_EVENT_TOPIC,
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            topics::TASK_EXIT_EVENT_TOPIC,
            topics::TASK_EXIT_EVENT_TOPIC,
            topics::TASK_DELETE_EVENT_TOPIC
        ]
    );
}
