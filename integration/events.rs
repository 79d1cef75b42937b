//! Lifecycle events reach containerd in order: create, start, exit, delete,
//! with TaskStart before TaskExit even for a process that exits at once.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Topics `ctr events` shows for `id` while `act` runs, until `last` shows.
pub fn topics_during(id: &str, last: &str, act: impl FnOnce()) -> Vec<String> {
    let mut events = ctr_spawn(&["events"]);
    let stdout = events.stdout.take().expect("events stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The subscription is live once it shows an event of ours: a marker
    // container made and removed, again until one shows (a fixed sleep
    // lost the first event on a loaded machine; so can a single marker).
    for attempt in 1.. {
        let marker = format!("{id}-subscribed-{attempt}");
        let made = ctr(&["containers", "create", &image(), &marker]);
        assert!(made.status.success(), "{}", text(&made.stderr));
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut seen = false;
        while !seen && Instant::now() < deadline {
            seen = rx.recv_timeout(Duration::from_millis(100)).is_ok_and(|l| l.contains(&marker));
        }
        let _ = ctr(&["containers", "rm", &marker]);
        if seen {
            break;
        }
        assert!(attempt < 40, "ctr events never showed a marker container");
    }
    act();
    let mut topics = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !topics.iter().any(|t| t == last) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains(id) {
                if let Some(t) = line.split_whitespace().find(|w| w.starts_with("/tasks/")) {
                    topics.push(t.to_string());
                }
            }
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    topics
}

#[test]
fn task_events_are_published_in_lifecycle_order() {
    let id = "ev-true";
    let topics = topics_during(id, "/tasks/delete", || {
        let out = run_image(id, &[], &["/bin/true"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    });
    assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "events seen for {id}");
}

/// Issue 8, acceptance 6: run + exec + kill + delete, each event once, in
/// causal order.
#[test]
fn run_exec_kill_delete_publish_exactly_their_events() {
    let id = "ev-exec";
    let topics = topics_during(id, "/tasks/delete", || {
        let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        let exec = ctr(&["task", "exec", "--exec-id", "e1", id, "true"]);
        assert!(exec.status.success(), "{}", text(&exec.stderr));
        remove(id);
    });
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events seen for {id}"
    );
    assert_no_leftovers(id);
}

/// Issue 8, acceptance 7: the shim's warnings reach containerd's own log,
/// with the shim's id.
#[test]
fn shim_warnings_appear_in_containerds_log() {
    let id = "ev-shim-log";
    let root = rootfs(id);
    let mut s = spec(id, &root, &["true"]);
    // A failing poststop hook is a warning (ctr would fix a mis-cased key
    // on its way: Go decodes JSON case-insensitively).
    s["hooks"] = serde_json::json!({"poststop": [{"path": "/bin/false", "args": ["false", "ev-shim-log-marker"]}]});
    let out = run_spec(id, &s);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log_path = work_dir().parent().expect("test dir").join("containerd.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let found = log.lines().any(|l| l.contains("level=warning") && l.contains("poststop") && l.contains(id));
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "no shim warning for {id} in {}", log_path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_no_leftovers(id);
}

/// Issue 9 (part): Pause and Resume publish TaskPaused and TaskResumed.
#[test]
fn pause_and_resume_publish_their_events() {
    let id = "ev-pause";
    let topics = topics_during(id, "/tasks/delete", || {
        let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        assert!(ctr(&["task", "pause", id]).status.success());
        assert!(ctr(&["task", "resume", id]).status.success());
        remove(id);
    });
    assert_eq!(
        topics,
        ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"],
        "events seen for {id}"
    );
    assert_no_leftovers(id);
}

/// Issue 9 (part): an init the OOM killer kills: TaskOOM before its
/// TaskExit, and the exit is 137 (cgroup v1 memory.oom_control eventfd).
#[test]
fn an_oom_killed_init_gets_task_oom_before_its_exit() {
    let id = "ev-oom";
    let root = rootfs(id);
    // The shell itself holds the command's output: it is the biggest, so
    // the OOM killer picks the init.
    let mut s = spec(id, &root, &["sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"]);
    s["linux"]["resources"]["memory"] = serde_json::json!({"limit": 33554432});
    let mut status = None;
    let topics = topics_during(id, "/tasks/delete", || {
        let out = run_spec(id, &s);
        status = out.status.code();
        assert!(!text(&out.stdout).contains("survived"), "the init was not OOM-killed");
    });
    assert_eq!(status, Some(137), "ctr reports the OOM kill");
    assert_eq!(
        topics,
        ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit", "/tasks/delete"],
        "events for {id}"
    );
    assert_no_leftovers(id);
}
