//! Issue 11 (part): exit statuses as containerd reports them, orphans the
//! shim inherits as a subreaper, an init that exits under running execs,
//! and many containers at once without cross-talk.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// Runs `jobs` through `ctr`, `width` at a time; their outputs in order.
fn ctr_batch(jobs: &[Vec<String>], width: usize) -> Vec<Output> {
    let mut out = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(width) {
        let running: Vec<_> =
            chunk.iter().map(|args| ctr_spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())).collect();
        out.extend(running.into_iter().map(|c| c.wait_with_output().expect("ctr")));
    }
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every exit code 0–255, and death by each signal that ends a process: the
/// status ctr gets is the code, or 128 + the signal.
#[test]
fn every_exit_code_and_every_fatal_signal_is_reported() {
    let id = "exit-codes";
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]).status.success());
    wait_status(id, "RUNNING");
    let jobs: Vec<Vec<String>> = (0..=255)
        .map(|n| strings(&["task", "exec", "--exec-id", &format!("x{n}"), id, "sh", "-c", &format!("exit {n}")]))
        .collect();
    let outs = ctr_batch(&jobs, 8);
    let mut wrong: Vec<String> = (0..=255)
        .zip(&outs)
        .filter(|(n, o)| o.status.code() != Some(*n))
        .map(|(n, o)| format!("exit {n}: got {:?} {}", o.status.code(), text(&o.stderr)))
        .collect();

    // Each signal whose default action ends a process, sent by Kill to an
    // exec'd sleep (a shell would ignore SIGQUIT); the ignored (CHLD, CONT,
    // URG, WINCH) and stopping ones (STOP, TSTP, TTIN, TTOU) end nothing.
    let harmless = [
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    let signals: Vec<i32> = (1..=31).filter(|s| !harmless.contains(s)).collect();
    let execs: Vec<_> = signals
        .iter()
        .map(|sig| ctr_spawn(&["task", "exec", "--exec-id", &format!("s{sig}"), id, "sleep", "100"]))
        .collect();
    for sig in &signals {
        let (exec_id, sig) = (format!("s{sig}"), sig.to_string());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !ctr(&["task", "kill", "--exec-id", &exec_id, "-s", &sig, id]).status.success() {
            assert!(std::time::Instant::now() < deadline, "exec {exec_id} never became killable");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for (sig, exec) in signals.iter().zip(execs) {
        let o = exec.wait_with_output().expect("ctr exec");
        if o.status.code() != Some(128 + sig) {
            wrong.push(format!("signal {sig}: got {:?} {}", o.status.code(), text(&o.stderr)));
        }
    }
    assert!(wrong.is_empty(), "{} wrong statuses: {wrong:#?}", wrong.len());
    remove(id);
    assert_no_leftovers(id);
}

/// The shim's children as /proc shows them: (pid, state).
fn children_of(parent: i32) -> Vec<(i32, char)> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut f = rest.split(' ');
            let state = f.next()?.chars().next()?;
            let ppid: i32 = f.next()?.parse().ok()?;
            (ppid == parent).then_some((pid, state))
        })
        .collect()
}

/// In the host's pid namespace an exec's orphans are the shim's (it is a
/// child subreaper): each is reaped, none left a zombie.
#[test]
fn orphans_that_land_on_the_shim_are_reaped() {
    let id = "exit-orphans";
    let root = rootfs(id);
    let mut s = spec(id, &root, &["sleep", "1000"]);
    s["linux"]["namespaces"] = json!(s["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter(|n| n["type"] != "pid")
        .collect::<Vec<_>>());
    let p = write_spec(id, &s);
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]).status.success());
    wait_status(id, "RUNNING");
    let shim = shim_pids(id)[0];
    let jobs: Vec<Vec<String>> = (0..10)
        .map(|i| {
            strings(&["task", "exec", "--exec-id", &format!("o{i}"), id, "sh", "-c", "sleep 0.3 & sleep 0.3 & exit 0"])
        })
        .collect();
    for o in ctr_batch(&jobs, 10) {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kids = children_of(shim);
        // The init (sleep 1000) stays; the 20 orphans must be gone, not zombies.
        if kids.len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "shim children left: {kids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    remove(id);
    assert_no_leftovers(id);
}

/// The init exits while an exec runs: the exec dies with the pid namespace
/// (SIGKILL, 137) and both exits are reported.
#[test]
fn an_init_that_exits_under_running_execs() {
    let id = "exit-init-first";
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", "sleep 1; exit 3"]).status.success());
    wait_status(id, "RUNNING");
    let exec = ctr_spawn(&["task", "exec", "--exec-id", "long", id, "sleep", "100"]);
    wait_status(id, "STOPPED");
    let out = exec.wait_with_output().expect("exec");
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let ls = text(&ctr(&["task", "ls"]).stdout);
    assert!(ls.lines().any(|l| l.starts_with(id) && l.contains("STOPPED")), "{ls}");
    remove(id);
    assert_no_leftovers(id);
}

/// 100 containers created, started and deleted concurrently against one
/// containerd: each gets its own output and its own exit status.
#[test]
fn a_hundred_concurrent_containers_keep_their_stdio_and_status() {
    let img = image();
    let jobs: Vec<Vec<String>> = (0..100)
        .map(|i| {
            let script = format!("echo out-{i}; echo err-{i} >&2; exit {}", i % 50);
            strings(&["run", "--rm", "--runtime", RUNTIME, &img, &format!("many-{i}"), "sh", "-c", &script])
        })
        .collect();
    let outs = ctr_batch(&jobs, 25);
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(text(&o.stdout), format!("out-{i}\n"), "stdout of many-{i}");
        assert!(text(&o.stderr).contains(&format!("err-{i}\n")), "stderr of many-{i}: {}", text(&o.stderr));
        assert_eq!(o.status.code(), Some((i % 50) as i32), "status of many-{i}");
    }
    for i in 0..100 {
        assert_no_leftovers(&format!("many-{i}"));
    }
}
