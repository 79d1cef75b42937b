//! Issue 9 (part): Pause and Resume through the freezer, TaskPaused and
//! TaskResumed, State PAUSED, and SIGKILL of a paused container.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

fn counter(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join("c")).unwrap_or_default().trim().parse().unwrap_or(0)
}

/// Waits (bounded: the machine may be busy) for the counter to pass `than`.
fn grows(dir: &std::path::Path, than: u64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if counter(dir) > than {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_paused_container_makes_no_progress_resumes_and_can_be_killed() {
    let id = "pause-counter";
    let root = rootfs(id);
    let out = work_dir().join(format!("{id}-out"));
    std::fs::create_dir_all(&out).expect("out dir");
    let loop_ = "i=0; while true; do i=$((i+1)); echo $i > /out/c; sleep 0.02; done";
    let mut s = spec(id, &root, &["sh", "-c", loop_]);
    s["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}));
    let p = write_spec(id, &s);
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(grows(&out, 0), "the loop runs");

    let paused = ctr(&["task", "pause", id]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    let ls = text(&ctr(&["task", "ls"]).stdout);
    assert!(ls.lines().any(|l| l.starts_with(id) && l.contains("PAUSED")), "{ls}");
    let a = counter(&out);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(counter(&out), a, "a paused container made progress");
    let again = ctr(&["task", "pause", id]);
    assert!(!again.status.success(), "pausing a paused container must fail");

    let resumed = ctr(&["task", "resume", id]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(grows(&out, a), "no progress after resume");

    assert!(ctr(&["task", "pause", id]).status.success());
    let kill = ctr(&["task", "kill", "-s", "KILL", id]);
    assert!(kill.status.success(), "{}", text(&kill.stderr));
    wait_status(id, "STOPPED");
    remove(id);
    assert_no_leftovers(id);
}
