//! Acceptance 4: what the container sees matches its config.

use serde_json::json;

use crate::harness::*;

#[test]
fn identity_namespaces_and_rootfs_follow_the_config() {
    let id = "iso-ident";
    let root = rootfs(id);
    let script = "echo pid=$$; hostname; id -u; id -g; id -G; echo FOO=$FOO; pwd; \
                  awk '$5 == \"/\" {print \"rootmount\"}' /proc/self/mountinfo; umask";
    let mut s = spec(id, &root, &["sh", "-c", script]);
    s["hostname"] = json!("myhost");
    s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000], "umask": 23});
    s["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    s["process"]["cwd"] = json!("/work");
    let out = run_spec(id, &s);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let want = "pid=1\nmyhost\n1000\n1000\n1000 2000 3000\nFOO=bar\n/work\nrootmount\n0027\n";
    assert_eq!(text(&out.stdout), want);
    assert_no_leftovers(id);
}

#[test]
fn readonly_bind_mount_is_readonly() {
    let src = work_dir().join("ro-src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), "host").expect("write");
    let m = format!("type=bind,src={},dst=/data,options=rbind:ro", src.display());
    let out = run_image("iso-ro", &["--mount", &m], &["sh", "-c", "cat /data/f; echo; touch /data/x 2>&1; echo rc=$?"]);
    let o = text(&out.stdout);
    assert!(o.starts_with("host\n"), "{o}");
    assert!(o.contains("Read-only file system") && o.contains("rc=1"), "{o}");
    assert!(!src.join("x").exists());
    assert_no_leftovers("iso-ro");
}

#[test]
fn memory_limit_reaches_the_cgroup() {
    let id = "iso-mem";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--memory-limit", "33554432", &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{NS}/{id}/memory.limit_in_bytes")).expect("limit");
    let pid = task_pid(id);
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{NS}/{id}/cgroup.procs")).expect("procs");
    remove(id);
    assert_eq!(limit.trim(), "33554432");
    assert!(procs.lines().any(|l| l == pid.to_string()), "init {pid} not in its cgroup: {procs}");
    assert_no_leftovers(id);
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup_read_only() {
    let id = "iso-cgmount";
    let root = rootfs(id);
    let script =
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /sys/fs/cgroup/memory/x 2>/dev/null || echo ro";
    let mut s = spec(id, &root, &["sh", "-c", script]);
    s["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    s["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    let out = run_spec(id, &s);
    assert_eq!(text(&out.stdout), "67108864\nro\n", "stderr: {}", text(&out.stderr));
    assert_no_leftovers(id);
}

#[test]
fn namespaces_differ_from_the_host() {
    let out =
        run_image("iso-ns", &[], &["sh", "-c", "for n in pid mnt net uts ipc; do readlink /proc/self/ns/$n; done"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let inside = text(&out.stdout);
    for ns in ["pid", "mnt", "net", "uts", "ipc"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("host ns");
        assert!(!inside.contains(&host.to_string_lossy().to_string()), "{ns} is the host's: {inside}");
    }
}

#[test]
fn namespace_paths_are_joined() {
    let a = "iso-join-a";
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), a, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(a, "RUNNING");
    let pid = task_pid(a);
    let b = "iso-join-b";
    let root = rootfs(b);
    let mut s = spec(b, &root, &["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"]);
    for ns in s["linux"]["namespaces"].as_array_mut().expect("namespaces") {
        if ns["type"] == "network" || ns["type"] == "uts" {
            let name = if ns["type"] == "network" { "net" } else { "uts" };
            ns["path"] = json!(format!("/proc/{pid}/ns/{name}"));
        }
    }
    let out = run_spec(b, &s);
    let want = ["net", "uts"]
        .map(|n| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).expect("ns").to_string_lossy().into_owned())
        .join("\n");
    remove(a);
    assert_eq!(text(&out.stdout).trim(), want, "stderr: {}", text(&out.stderr));
    assert_no_leftovers(a);
    assert_no_leftovers(b);
}

/// Settings runc 1.1.5 does not know (so no comparison with it): a time
/// namespace with offsets, the personality, io priority and scheduler.
/// Straight through the shim: containerd 1.6 would drop timeOffsets and
/// personality from the spec.
#[test]
fn time_namespace_personality_io_priority_and_scheduler_apply() {
    let id = "iso-kernel";
    let root = rootfs(id);
    let out_dir = work_dir().join(format!("{id}-out"));
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let script = "{ cut -d. -f1 /proc/uptime; uname -m; ionice; \
                  awk '{print \"nice=\" $19, \"policy=\" $41}' /proc/self/stat; } > /out/result 2>&1";
    let mut s = spec(id, &root, &["sh", "-c", script]);
    s["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}));
    s["linux"]["namespaces"].as_array_mut().expect("namespaces").push(json!({"type": "time"}));
    s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    s["linux"]["personality"] = json!({"domain": "LINUX32"});
    s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    // Keys the spec does not define are ignored (with a warning), not fatal
    // (issue 6, acceptance 3): straight to the shim, as ctr would drop them.
    s["x-vendor"] = json!({"tuning": 3});
    s["linux"]["x-note"] = json!("ignored");
    let bundle = crate::direct::bundle(&format!("bundle-{id}"));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_eq!(crate::direct::run_direct(id, &bundle), 0);
    let o = std::fs::read_to_string(out_dir.join("result")).expect("result");
    let lines: Vec<&str> = o.lines().collect();
    let host: u64 =
        std::fs::read_to_string("/proc/uptime").expect("uptime").split('.').next().expect("s").parse().expect("n");
    let uptime: u64 = lines[0].parse().expect("container uptime");
    assert!((host + 864000 - 5..=host + 864000 + 60).contains(&uptime), "boottime offset: {uptime} vs host {host}");
    assert_eq!(&lines[1..], ["i686", "idle", "nice=7 policy=3"], "{o}");
    assert_no_leftovers(id);
}

/// An exec into a container with its own user namespace joins it: root in
/// there is uid 100000 outside, never the host's root.
#[test]
fn execs_join_the_containers_user_namespace() {
    let id = "iso-userns-exec";
    let root = rootfs(id);
    give_rootfs_to(&root, 100000);
    let mut s = spec(id, &root, &["sleep", "1000"]);
    s["linux"]["namespaces"].as_array_mut().expect("namespaces").push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    s["linux"]["uidMappings"] = map.clone();
    s["linux"]["gidMappings"] = map;
    let p = write_spec(id, &s);
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = ctr(&["task", "exec", "--exec-id", "e1", id, "sh", "-c", "id -u; cat /proc/self/uid_map; sleep 0.2"]);
    let o = text(&out.stdout);
    assert!(out.status.success(), "{o} {}", text(&out.stderr));
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "100000", "65536"], "{o}");
    let init = task_pid(id);
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("100000")), "{status}");
    remove(id);
    assert_no_leftovers(id);
}

/// An exec gets the container's seccomp filter (runc applies it to execs too).
#[test]
fn execs_get_the_containers_seccomp_filter() {
    let id = "iso-seccomp-exec";
    let root = rootfs(id);
    let mut s = spec(id, &root, &["sleep", "1000"]);
    s["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let p = write_spec(id, &s);
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let script = "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?";
    let out = ctr(&["task", "exec", "--exec-id", "e1", id, "sh", "-c", script]);
    let o = text(&out.stdout);
    assert!(o.contains("Seccomp:\t2") && o.contains("Operation not permitted") && o.contains("rc=1"), "{o}");
    remove(id);
    assert_no_leftovers(id);
}

/// `linux.seccomp.listenerPath`: the agent gets the container process state
/// and the notify fd, and answers the container's notified syscalls.
#[test]
fn a_seccomp_agent_gets_the_notify_fd_and_answers_for_the_container() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;

    let id = "iso-seccomp-agent";
    let root = rootfs(id);
    let out_dir = work_dir().join(format!("{id}-out"));
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let sock = work_dir().join(format!("{id}.sock"));
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    // The agent: one connection, one notification, answered "done" without
    // doing it; the container sees success and no directory.
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 65536];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).expect("recvmsg");
        let fd = msg
            .cmsgs()
            .expect("cmsgs")
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd");
        let len = msg.bytes;
        let state: serde_json::Value = serde_json::from_slice(&buf[..len]).expect("state json");
        let req = libseccomp::ScmpNotifReq::receive(fd).expect("a notification");
        let name = req.data.syscall.get_name().unwrap_or_default();
        libseccomp::ScmpNotifResp::new_val(req.id, 0, libseccomp::ScmpNotifRespFlags::empty())
            .respond(fd)
            .expect("respond");
        (state, name)
    });
    let script =
        "mkdir /tmp/made-by-agent; echo rc=$? > /out/result; ls -d /tmp/made-by-agent >> /out/result 2>&1; true";
    let mut s = spec(id, &root, &["sh", "-c", script]);
    s["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}));
    s["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "from-the-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let bundle = crate::direct::bundle(&format!("bundle-{id}"));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_eq!(crate::direct::run_direct(id, &bundle), 0);
    let (state, syscall) = agent.join().expect("agent");
    assert!(syscall.starts_with("mkdir"), "notified for {syscall}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "from-the-test");
    assert_eq!(state["state"]["id"], id);
    assert_eq!(state["state"]["status"], "creating");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 1) && state["pid"] == state["state"]["pid"], "{state}");
    let o = std::fs::read_to_string(out_dir.join("result")).expect("result");
    assert!(o.starts_with("rc=0\n") && o.contains("No such file"), "{o}");
    assert_no_leftovers(id);
}
