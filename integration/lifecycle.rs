//! Acceptance 1, 2, 3, 5 of the foundation: run, exit codes, kill, stdin.

use std::time::Duration;

use crate::harness::*;

#[test]
fn echo_prints_and_exits_zero() {
    let out = run_image("lc-echo", &[], &["/bin/echo", "hi"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    assert_no_leftovers("lc-echo");
}

#[test]
fn exit_code_propagates() {
    let out = run_image("lc-exit7", &[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));
    assert_no_leftovers("lc-exit7");
}

#[test]
fn sigkill_of_a_running_init_is_137() {
    let id = "lc-kill";
    let child = ctr_spawn(&["run", "--rm", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    wait_status(id, "RUNNING");
    let k = ctr(&["task", "kill", "-s", "KILL", id]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    let out = child.wait_with_output().expect("ctr run");
    assert_eq!(out.status.code(), Some(137), "stderr: {}", text(&out.stderr));
    assert_no_leftovers(id);
}

#[test]
fn pid1_ignores_signals_it_has_no_handler_for() {
    // As under runc: the kernel drops SIGKILL sent to a pid namespace's init by itself.
    let out = run_image("lc-self-kill", &[], &["sh", "-c", "kill -9 $$; echo survived"]);
    assert_eq!(text(&out.stdout), "survived\n", "stderr: {}", text(&out.stderr));
    assert!(out.status.success());
}

#[test]
fn detached_container_runs_traps_term_and_is_deleted() {
    let id = "lc-term";
    let script = "trap 'exit 143' TERM; while true; do sleep 0.1; done";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", script]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    assert!(ctr(&["task", "kill", id]).status.success());
    wait_status(id, "STOPPED");
    let del = ctr(&["task", "delete", id]);
    assert!(del.status.success(), "{}", text(&del.stderr));
    assert!(text(&del.stderr).contains("143"), "delete should report 143: {}", text(&del.stderr));
    assert!(ctr(&["container", "rm", id]).status.success());
    assert_no_leftovers(id);
}

#[test]
fn kill_all_kills_every_process() {
    let id = "lc-killall";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let procs = cgroup_dir("pids", &format!("{NS}/{id}")).join("cgroup.procs");
    let mut pids: Vec<i32> = Vec::new();
    for _ in 0..100 {
        pids = std::fs::read_to_string(&procs).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect();
        if pids.len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pids.len() >= 3, "expected sh and two sleeps in the cgroup: {pids:?}");
    // A host process moved into the container's cgroups: in the cgroup,
    // outside the container's pid namespace tree.
    let mut escaped = std::process::Command::new("sleep").arg("1000").spawn().expect("host sleep");
    for dir in cgroups_of(id) {
        std::fs::write(dir.join("cgroup.procs"), escaped.id().to_string()).expect("join the container's cgroup");
    }
    let k = ctr(&["task", "kill", "-a", "-s", "KILL", id]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    wait_status(id, "STOPPED");
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "pid {pid} survived kill -a");
    }
    let mut status = None;
    for _ in 0..250 {
        status = escaped.try_wait().expect("wait host sleep");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let _ = escaped.kill();
        let _ = escaped.wait();
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL), "the escaped process survived kill -a");
    assert!(ctr(&["task", "delete", id]).status.success());
    assert!(ctr(&["container", "rm", id]).status.success());
    assert_no_leftovers(id);
}

#[test]
fn task_ls_shows_running_and_pids_lists_the_init() {
    let id = "lc-ls";
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]).status.success());
    wait_status(id, "RUNNING");
    let pid = task_pid(id);
    let ps = text(&ctr(&["task", "ps", id]).stdout);
    assert!(ps.lines().any(|l| l.split_whitespace().next() == Some(&pid.to_string())), "{ps}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn stdin_is_piped() {
    let img = image();
    let out = ctr_with_stdin(&["run", "--rm", "--runtime", RUNTIME, &img, "lc-stdin", "head", "-n", "1"], b"abc\n");
    assert_eq!(text(&out.stdout), "abc\n", "stderr: {}", text(&out.stderr));
    assert!(out.status.success());
    assert_no_leftovers("lc-stdin");
}
