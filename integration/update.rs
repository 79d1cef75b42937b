//! Issue 9 (part): Update from a ttrpc client (ctr 1.6 has no `task
//! update`): new limits reach the cgroup files; a limit the kernel refuses
//! fails with its reason and the old value stays.

use containerd_shim_protos::api::UpdateTaskRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use serde_json::json;

use crate::direct::*;
use crate::harness::*;

fn resources(v: serde_json::Value) -> MessageField<Any> {
    MessageField::some(Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: serde_json::to_vec(&v).expect("json"),
        ..Default::default()
    })
}

fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let p = std::path::Path::new("/sys/fs/cgroup").join(controller).join(NS).join(id).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

#[test]
fn update_changes_the_cgroup_and_an_impossible_one_changes_nothing() {
    let id = "update-limits";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;

        let up = UpdateTaskRequest {
            id: id.into(),
            resources: resources(json!({"memory": {"limit": 67108864}, "cpu": {"quota": 50000, "period": 100000}})),
            ..Default::default()
        };
        c.update(ctx(), &up).await.expect("Update");
        assert_eq!(cgroup_file("memory", id, "memory.limit_in_bytes"), "67108864");
        assert_eq!(cgroup_file("cpu", id, "cpu.cfs_quota_us"), "50000");

        // CPUs this machine does not have: the kernel refuses the cpuset.
        let cpus = cgroup_file("cpuset", id, "cpuset.cpus");
        let impossible = UpdateTaskRequest {
            id: id.into(),
            resources: resources(json!({"cpu": {"cpus": "4000-4001"}})),
            ..Default::default()
        };
        let e = c.update(ctx(), &impossible).await.expect_err("CPUs that do not exist");
        assert!(format!("{e:?}").contains("update") && format!("{e:?}").contains("cpuset"), "{e:?}");
        assert_eq!(cgroup_file("cpuset", id, "cpuset.cpus"), cpus, "the old cpuset stays");
        assert_eq!(cgroup_file("memory", id, "memory.limit_in_bytes"), "67108864");

        let bad = UpdateTaskRequest {
            id: id.into(),
            resources: resources(json!({"memory": {"limit": -7}})),
            ..Default::default()
        };
        let e = c.update(ctx(), &bad).await.expect_err("a negative limit");
        assert!(format!("{e:?}").contains("resources.memory.limit: -7 is not a limit"), "{e:?}");

        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// Issue 9 (part): Stats as `io.containerd.cgroups.v1.Metrics`, which
/// `ctr task metrics` decodes and prints.
#[test]
fn ctr_task_metrics_shows_the_containers_cgroup_figures() {
    let id = "metrics-v1";
    let (o, value) = task_metrics(id);
    assert_eq!(value("memory.limit_in_bytes"), Some(67108864), "{o}");
    assert!(value("memory.usage_in_bytes").is_some_and(|u| u > 0), "{o}");
    assert!(value("pids.current").is_some_and(|n| n >= 1), "{o}");
    assert!(value("cpuacct.usage").is_some_and(|n| n > 0), "{o}");
    remove(id);
    assert_no_leftovers(id);
}

/// The device rules and cpu shares are written by the adapter when they are
/// the only limits, by libcgroups when there are others: either way the
/// container gets the same list (deny all, then the default allows).
#[test]
fn device_rules_are_the_same_with_or_without_other_limits() {
    let plain = "devices-plain";
    let limited = "devices-limited";
    let weighted = "devices-weighted";
    for (id, extra) in [(plain, None), (limited, Some("--memory-limit=67108864")), (weighted, Some("--cpu-shares=512"))]
    {
        let mut args = vec!["run", "-d", "--runtime", RUNTIME];
        args.extend(extra);
        let image = image();
        args.extend([image.as_str(), id, "sleep", "1000"]);
        let run = ctr(&args);
        assert!(run.status.success(), "{id}: {}", text(&run.stderr));
    }
    let list = |id: &str| {
        let mut l: Vec<String> = cgroup_file("devices", id, "devices.list").lines().map(String::from).collect();
        l.sort();
        l
    };
    let mut want: Vec<String> = [
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    ]
    .map(String::from)
    .to_vec();
    want.sort();
    assert_eq!(list(plain), want);
    assert_eq!(list(limited), want);
    assert_eq!(list(weighted), want);
    assert_eq!(cgroup_file("memory", limited, "memory.limit_in_bytes"), "67108864");
    assert_eq!(cgroup_file("cpu", weighted, "cpu.shares"), "512");
    for id in [plain, limited, weighted] {
        remove(id);
        assert_no_leftovers(id);
    }
}
