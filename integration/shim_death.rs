//! Acceptance 7: a SIGKILLed shim is cleaned up by containerd's `delete`.

use std::time::Duration;

use crate::harness::*;

#[test]
fn killed_shim_is_cleaned_up_by_delete() {
    let id = "death-kill";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let task = task_pid(id);
    let shims = shim_pids(id);
    assert_eq!(shims.len(), 1, "one shim per container: {shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::SIGKILL).expect("kill shim");
    assert!(wait_gone(task, Duration::from_secs(5)), "container process survived its shim");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ls = text(&ctr(&["task", "ls"]).stdout);
        if !ls.lines().any(|l| l.starts_with(id) && l.contains("RUNNING")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "task still RUNNING: {ls}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ctr(&["task", "rm", "-f", id]);
    let rm = ctr(&["container", "rm", id]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_no_leftovers(id);
}
