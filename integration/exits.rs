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
    // The init waits for the exec to run (a fixed sleep lost the race on a
    // loaded machine: the exec was still to be started when the init died).
    let init = "until [ -e /tmp/exec-runs ]; do sleep 0.05; done; exit 3";
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sh", "-c", init]).status.success());
    wait_status(id, "RUNNING");
    let exec = ctr_spawn(&["task", "exec", "--exec-id", "long", id, "sh", "-c", "touch /tmp/exec-runs; sleep 100"]);
    wait_status(id, "STOPPED");
    let out = exec.wait_with_output().expect("exec");
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let ls = text(&ctr(&["task", "ls"]).stdout);
    assert!(ls.lines().any(|l| l.starts_with(id) && l.contains("STOPPED")), "{ls}");
    remove(id);
    assert_no_leftovers(id);
}

/// 100 containers created, started and deleted at once against one
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
    let outs = ctr_batch(&jobs, 100);
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(text(&o.stdout), format!("out-{i}\n"), "stdout of many-{i}");
        assert!(text(&o.stderr).contains(&format!("err-{i}\n")), "stderr of many-{i}: {}", text(&o.stderr));
        assert_eq!(o.status.code(), Some((i % 50) as i32), "status of many-{i}");
    }
    for i in 0..100 {
        assert_no_leftovers(&format!("many-{i}"));
    }
}

/// A process at a chosen pid (clone3's set_tid, as root), running
/// `sleep 30`: None if the pid is taken.
fn sleeper_at(pid: i32) -> Option<i32> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let tid = [pid];
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tid.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // Made before the clone: the child only execs.
    let path = c"/bin/sleep";
    let argv = [c"sleep".as_ptr(), c"30".as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the child calls only execve and _exit (async-signal-safe) on
    // memory prepared above; the parent gets the child's pid or -1.
    let got = unsafe {
        let r = libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>());
        if r == 0 {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        r
    };
    (got > 0).then_some(got as i32)
}

/// An exec that has exited but is not yet deleted has a pid the kernel may
/// hand to someone else. Kill it, with its pid now another process's: the
/// shim says it has finished, and the other process lives (pidfds).
#[test]
fn a_recycled_pid_is_never_signalled() {
    use containerd_shim_protos::api::{DeleteRequest, KillRequest, WaitRequest};

    use crate::direct::*;

    let id = "exit-pid-reuse";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let (mut stranger, mut tries) = (None, 0);
        while stranger.is_none() {
            tries += 1;
            assert!(tries <= 20, "no exec pid could be taken over");
            let exec_id = format!("short{tries}");
            let pid = exec_started(&c, id, &exec_id, &["true"]).await;
            let wait = WaitRequest { id: id.into(), exec_id: exec_id.clone(), ..Default::default() };
            assert_eq!(c.wait(ctx(), &wait).await.expect("Wait exec").exit_status, 0);
            stranger = sleeper_at(pid as i32).map(|s| (s, exec_id));
        }
        let (sleeper, exec_id) = stranger.expect("a sleeper");
        let kill = KillRequest { id: id.into(), exec_id: exec_id.clone(), signal: 9, ..Default::default() };
        let e = c.kill(ctx(), &kill).await.expect_err("Kill of a finished exec");
        assert!(format!("{e:?}").contains("finished"), "{e:?}");
        std::thread::sleep(Duration::from_millis(200));
        let mut status = 0;
        // SAFETY: waitpid on our own child, without blocking.
        assert_eq!(unsafe { libc::waitpid(sleeper, &mut status, libc::WNOHANG) }, 0, "the process at the pid died");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper), nix::sys::signal::SIGKILL).expect("kill sleeper");
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(sleeper, &mut status, 0) };
        c.delete(ctx(), &DeleteRequest { id: id.into(), exec_id, ..Default::default() }).await.expect("Delete exec");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}
