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
