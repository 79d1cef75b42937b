//! Exec into a running container: output, exit codes, concurrency, ps, and
//! a clean refusal once the container has exited.

use crate::harness::*;

fn start_sleeper(id: &str) {
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
}

#[test]
fn exec_prints_its_pid_and_exit_code() {
    let id = "ex-basic";
    start_sleeper(id);
    let out = ctr(&["task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo pid=$$; exit 3"]);
    remove(id);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    let o = text(&out.stdout);
    let pid: i32 = o.trim().strip_prefix("pid=").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{o}"));
    assert!(pid > 1, "exec runs in the container's pid namespace, not as its init: {pid}");
    assert_no_leftovers(id);
}

#[test]
fn concurrent_execs_keep_their_own_output_and_status() {
    let id = "ex-many";
    start_sleeper(id);
    let children: Vec<_> = (0..10)
        .map(|i| {
            let script = format!("echo out-{i}; exit {i}");
            (i, ctr_spawn(&["task", "exec", "--exec-id", &format!("e{i}"), id, "sh", "-c", &script]))
        })
        .collect();
    for (i, child) in children {
        let out = child.wait_with_output().expect("exec");
        assert_eq!(text(&out.stdout), format!("out-{i}\n"), "stderr: {}", text(&out.stderr));
        assert_eq!(out.status.code(), Some(i));
    }
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn ps_lists_init_and_exec() {
    let id = "ex-ps";
    start_sleeper(id);
    let mut exec = ctr_spawn(&["task", "exec", "--exec-id", "sleeper", id, "sleep", "30"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ps = String::new();
    while std::time::Instant::now() < deadline {
        ps = text(&ctr(&["task", "ps", id]).stdout);
        if ps.contains("ExecID:sleeper") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = exec.kill();
    let _ = exec.wait();
    remove(id);
    assert!(ps.contains("ExecID:sleeper"), "{ps}");
    assert_eq!(ps.lines().count(), 3, "header, init, exec: {ps}");
    assert_no_leftovers(id);
}

#[test]
fn exec_into_an_exited_container_fails_cleanly() {
    let id = "ex-dead";
    start_sleeper(id);
    assert!(ctr(&["task", "kill", "-s", "KILL", id]).status.success());
    wait_status(id, "STOPPED");
    let out = ctr(&["task", "exec", "--exec-id", "late", id, "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not running"), "{}", text(&out.stderr));
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn exec_of_a_missing_binary_fails_at_exec() {
    let id = "ex-missing";
    start_sleeper(id);
    let out = ctr(&["task", "exec", "--exec-id", "m", id, "/no/such/tool"]);
    remove(id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("exec: \"/no/such/tool\""), "{}", text(&out.stderr));
    assert_no_leftovers(id);
}

/// `echo data | ctr task exec … cat` prints data and ends: containerd's
/// writer closing is the end of input, as with the runc shim.
#[test]
fn exec_stdin_ends_when_the_client_input_ends() {
    let id = "exec-stdin-eof";
    start_sleeper(id);
    let out = piped(&["task", "exec", "--exec-id", "cat", id, "cat"], b"data\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "data\n");
    let out = piped(
        &["task", "exec", "--exec-id", "loop", id, "sh", "-c", "while read l; do echo got-$l; done; echo end"],
        b"a\nb\n",
    );
    assert_eq!(text(&out.stdout), "got-a\ngot-b\nend\n");
    remove(id);
    assert_no_leftovers(id);
}

/// `printf … | ctr …`: the input, then end of input.
fn piped(args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("timeout")
        .args(["-k", "5", "30", "ctr", "--address", &address(), "-n", NS])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ctr");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("ctr output")
}
