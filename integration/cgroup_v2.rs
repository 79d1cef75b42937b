//! Issue 20: a cgroup v2 host with systemd (the VM of scripts/vm.sh; the
//! v1 stage of scripts/test.sh skips this module, the VM stage runs it and
//! fails here if the host is not v2): the device filter, limits and Update
//! with v2's conversions, v2 metrics, and systemd scopes.

use containerd_shim_protos::api::UpdateTaskRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use serde_json::json;

use crate::direct::*;
use crate::harness::*;

fn v2_host() {
    assert!(cgroup_v2(), "this module is for a cgroup v2 host (scripts/vm.sh): /sys/fs/cgroup is not unified");
}

/// The major:minor of the host's first disk.
fn host_disk() -> String {
    let disk = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vd") || n.starts_with("sd") || n.starts_with("nvme"))
        .expect("a disk");
    std::fs::read_to_string(format!("/sys/block/{disk}/dev")).expect("dev").trim().to_string()
}

/// What a default container (CAP_MKNOD among its capabilities) gets when it
/// makes a node for the host's disk and reads it.
fn read_disk(id: &str, runtime: &str, allow: bool) -> String {
    let dev = host_disk();
    let (major, minor) = dev.split_once(':').expect("major:minor");
    let probe =
        // The pause: ctr 1.6 can exit before it copied a quick process's output.
        format!("mknod /tmp/disk b {major} {minor} && head -c 512 /tmp/disk >/dev/null && echo READ || echo DENIED; sleep 0.3");
    let mut s = spec(id, &rootfs(id), &["sh", "-c", &probe]);
    if allow {
        let rule = json!({"allow": true, "type": "b", "major": major.parse::<i64>().expect("major"),
                          "minor": minor.parse::<i64>().expect("minor"), "access": "rwm"});
        s["linux"]["resources"]["devices"].as_array_mut().expect("device rules").push(rule);
    }
    let p = write_spec(id, &s);
    let out = ctr(&["run", "--rm", "--runtime", runtime, "--config", &p.to_string_lossy(), id]);
    assert!(out.status.success(), "{runtime}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// Guard: the eBPF device filter (libcgroups' cgroupsv2_devices). Without
/// it a container root reads the host's disk.
#[test]
fn the_hosts_disk_cannot_be_read_through_mknod_as_under_runc() {
    v2_host();
    assert_eq!(read_disk("v2-dev-runc", "io.containerd.runc.v2", false), "DENIED", "runc");
    assert_eq!(read_disk("v2-dev", RUNTIME, false), "DENIED", "myshim let a container read the host's disk");
    assert_eq!(read_disk("v2-dev-allowed", RUNTIME, true), "READ", "a rule that allows the disk");
    assert_no_leftovers("v2-dev");
}

fn file(id: &str, name: &str) -> String {
    let p = cgroup_dir("", &format!("{NS}/{id}")).join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

fn resources(v: serde_json::Value) -> MessageField<Any> {
    MessageField::some(Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: serde_json::to_vec(&v).expect("json"),
        ..Default::default()
    })
}

/// v1-style limits in the config become v2's files (runc's conversions);
/// Update changes them, and one the kernel refuses changes nothing.
#[test]
fn limits_and_update_use_v2_conversions() {
    v2_host();
    let id = "v2-limits";
    let b = bundle(&format!("bundle-{id}"));
    let mut s = spec(id, &rootfs(id), &["sleep", "1000"]);
    s["linux"]["resources"]["memory"] = json!({"limit": 67108864, "swap": 134217728});
    s["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    s["linux"]["resources"]["pids"] = json!({"limit": 50});
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        assert_eq!(file(id, "memory.max"), "67108864");
        // memory+swap 128 MiB is 64 MiB of swap beside 64 MiB of memory.
        assert_eq!(file(id, "memory.swap.max"), "67108864");
        // shares -> weight as crun and runc 1.3 convert (libcgroups): 1024,
        // v1's default, is v2's default 100, and 512 is 59 (runc 1.1.5's
        // linear formula gives 20, and makes the default 39).
        assert_eq!(file(id, "cpu.weight"), "59");
        assert_eq!(file(id, "cpu.max"), "50000 100000");
        assert_eq!(file(id, "pids.max"), "50");

        let up = UpdateTaskRequest {
            id: id.into(),
            resources: resources(json!({"memory": {"limit": 100663296, "swap": 201326592}, "pids": {"limit": 70}})),
            ..Default::default()
        };
        c.update(ctx(), &up).await.expect("Update");
        assert_eq!(file(id, "memory.max"), "100663296");
        assert_eq!(file(id, "pids.max"), "70");
        let impossible = UpdateTaskRequest {
            id: id.into(),
            resources: resources(json!({"cpu": {"cpus": "4000-4001"}})),
            ..Default::default()
        };
        c.update(ctx(), &impossible).await.expect_err("CPUs that do not exist");
        assert_eq!(file(id, "memory.max"), "100663296", "the old limits stay");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// `ctr task metrics` decodes io.containerd.cgroups.v2.Metrics: the memory
/// limit, pids, cpu, and an unlimited pids.max as the runc shim gives it.
#[test]
fn ctr_task_metrics_shows_v2_figures() {
    v2_host();
    let id = "v2-metrics";
    let (o, value) = task_metrics(id);
    assert_eq!(value("memory.usage_limit"), Some(67108864), "{o}");
    assert!(value("memory.usage").is_some_and(|u| u > 0), "{o}");
    assert!(value("pids.current").is_some_and(|n| n >= 1), "{o}");
    assert_eq!(value("pids.limit"), Some(u64::MAX), "unlimited, as the runc shim reports it: {o}");
    remove(id);
    assert_no_leftovers(id);
}

/// Where systemd runs, a `slice:prefix:name` cgroupsPath is a transient
/// scope in that slice (the slices made as needed), stopped at Delete.
#[test]
fn a_systemd_cgroup_path_is_a_scope_stopped_at_delete() {
    v2_host();
    assert!(std::path::Path::new("/run/systemd/system").is_dir(), "systemd is not running");
    let id = "v2-scope";
    let mut s = spec(id, &rootfs(id), &["sleep", "1000"]);
    s["linux"]["cgroupsPath"] = json!(format!("myshim-test-pod1.slice:myshim:{id}"));
    s["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    let p = write_spec(id, &s);
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let unit = format!("myshim-{id}.scope");
    let show = |prop: &str| {
        let o = std::process::Command::new("systemctl").args(["show", "-p", prop, "--value", &unit]).output();
        text(&o.expect("systemctl").stdout).trim().to_string()
    };
    assert_eq!(show("ActiveState"), "active");
    assert_eq!(show("Slice"), "myshim-test-pod1.slice");
    let dir = cgroup_dir("", &format!("myshim.slice/myshim-test.slice/myshim-test-pod1.slice/{unit}"));
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(procs.lines().any(|l| l.parse::<i32>().ok() == Some(task_pid(id))), "the init is not in {unit}: {procs}");
    assert_eq!(std::fs::read_to_string(dir.join("memory.max")).expect("memory.max").trim(), "67108864");
    remove(id);
    assert_ne!(show("ActiveState"), "active", "{unit} outlived the container");
    assert!(!dir.exists(), "{} left", dir.display());
    let _ = std::process::Command::new("systemctl").args(["stop", "myshim.slice"]).status();
    assert_no_leftovers(id);
}
