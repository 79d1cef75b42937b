//! Issue 6, acceptance 3: bad configs, each with the exact error Create
//! (and `check`) gives for it.

use serde_json::{json, Value};

use super::parse;

fn base() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {
            "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        },
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "network"}, {"type": "uts"}]}
    })
}

type Edit = fn(&mut Value);

fn at<'a>(v: &'a mut Value, obj: &str) -> &'a mut serde_json::Map<String, Value> {
    let o = if obj.is_empty() { v } else { &mut v[obj] };
    o.as_object_mut().expect("object")
}

fn rename(v: &mut Value, obj: &str, from: &str, to: &str) {
    let o = at(v, obj);
    let x = o.remove(from).expect("key");
    o.insert(to.into(), x);
}

fn remove(v: &mut Value, obj: &str, key: &str) {
    at(v, obj).remove(key);
}

const BAD: &[(&str, Edit, &str)] = &[
    ("Linux mis-cased", |v| rename(v, "", "linux", "Linux"), "Linux is not an OCI key and would be ignored, weakening the container; did you mean linux?"),
    ("Namespaces mis-cased", |v| rename(v, "linux", "namespaces", "Namespaces"), "linux.Namespaces is not an OCI key and would be ignored, weakening the container; did you mean linux.namespaces?"),
    ("Capabilities mis-cased", |v| rename(v, "process", "capabilities", "Capabilities"), "process.Capabilities is not an OCI key and would be ignored, weakening the container; did you mean process.capabilities?"),
    ("Seccomp mis-cased", |v| v["linux"]["Seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"}), "linux.Seccomp is not an OCI key and would be ignored, weakening the container; did you mean linux.seccomp?"),
    ("readOnly mis-cased", |v| v["root"]["readOnly"] = json!(true), "root.readOnly is not an OCI key and would be ignored, weakening the container; did you mean root.readonly?"),
    ("mount Options mis-cased", |v| v["mounts"][0]["Options"] = json!(["ro"]), "mounts[0].Options is not an OCI key and would be ignored, weakening the container; did you mean mounts[0].options?"),
    ("NoNewPrivileges mis-cased", |v| v["process"]["NoNewPrivileges"] = json!(true), "process.NoNewPrivileges is not an OCI key and would be ignored, weakening the container; did you mean process.noNewPrivileges?"),
    ("seccomp args mis-cased", |v| {
        v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "Args": []}]})
    }, "linux.seccomp.syscalls[0].Args is not an OCI key and would be ignored, weakening the container; did you mean linux.seccomp.syscalls[0].args?"),
    ("seccomp at the top level", |v| v["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"}), "seccomp is not where OCI puts it and would be ignored, weakening the container; did you mean linux.seccomp?"),
    ("capabilities under linux", |v| v["linux"]["capabilities"] = json!({"bounding": []}), "linux.capabilities is not where OCI puts it and would be ignored, weakening the container; did you mean process.capabilities?"),
    ("maskedPaths under process", |v| v["process"]["maskedPaths"] = json!(["/proc/kcore"]), "process.maskedPaths is not where OCI puts it and would be ignored, weakening the container; did you mean linux.maskedPaths?"),
    ("unknown namespace type", |v| v["linux"]["namespaces"][1]["type"] = json!("netz"), "linux.namespaces[1].type: unknown variant `netz`, expected one of `mount`, `cgroup`, `uts`, `ipc`, `user`, `pid`, `network`, `time`"),
    ("duplicate namespace", |v| v["linux"]["namespaces"][1]["type"] = json!("mount"), "linux.namespaces[1]: duplicate namespace mnt"),
    ("relative namespace path", |v| v["linux"]["namespaces"][3]["path"] = json!("run/netns/x"), "linux.namespaces[3].path: \"run/netns/x\" must be an absolute path"),
    ("no mount namespace", |v| v["linux"]["namespaces"][0]["type"] = json!("cgroup"), "linux.namespaces: a mount namespace is required"),
    ("unknown capability", |v| v["process"]["capabilities"]["bounding"][0] = json!("CAP_FLY"), "process.capabilities.bounding[0]: unknown capability \"CAP_FLY\""),
    ("rlimit soft above hard", |v| v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]), "process.rlimits[0]: soft limit 10 exceeds hard limit 5"),
    ("unknown rlimit", |v| v["process"]["rlimits"] = json!([{"type": "RLIMIT_WISHES", "soft": 1, "hard": 1}]), "process.rlimits[0].type: unknown variant `RLIMIT_WISHES`, expected one of `RLIMIT_CPU`, `RLIMIT_FSIZE`, `RLIMIT_DATA`, `RLIMIT_STACK`, `RLIMIT_CORE`, `RLIMIT_RSS`, `RLIMIT_NPROC`, `RLIMIT_NOFILE`, `RLIMIT_MEMLOCK`, `RLIMIT_AS`, `RLIMIT_LOCKS`, `RLIMIT_SIGPENDING`, `RLIMIT_MSGQUEUE`, `RLIMIT_NICE`, `RLIMIT_RTPRIO`, `RLIMIT_RTTIME`"),
    ("relative mount destination", |v| v["mounts"][0]["destination"] = json!("proc"), "mounts[0].destination: \"proc\" must be an absolute path"),
    ("relative cwd", |v| v["process"]["cwd"] = json!("work"), "process.cwd: \"work\" must be an absolute path"),
    ("no ociVersion", |v| remove(v, "", "ociVersion"), "ociVersion: must be set"),
    ("no root", |v| remove(v, "", "root"), "root: must be set"),
    ("no process", |v| remove(v, "", "process"), "process: must be set"),
    ("no linux", |v| remove(v, "", "linux"), "linux: must be set on Linux"),
    ("empty args", |v| v["process"]["args"] = json!([]), "process.args: must name the program to run"),
    ("uid of the wrong type", |v| v["process"]["user"]["uid"] = json!("zero"), "process.user.uid: invalid type: string \"zero\", expected u32"),
    ("namespaces of the wrong type", |v| v["linux"]["namespaces"] = json!("mount"), "linux.namespaces: invalid type: string \"mount\", expected a sequence"),
    ("net sysctl without a network namespace", |v| {
        v["linux"]["namespaces"][3]["type"] = json!("cgroup");
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"})
    }, "linux.sysctl.net.ipv4.ip_forward: not allowed in the host's network namespace"),
    ("sysctl of no namespace", |v| v["linux"]["sysctl"] = json!({"kernel.panic": "1"}), "linux.sysctl.kernel.panic: not in a namespace of the container's own"),
    ("hostname as a sysctl", |v| v["linux"]["sysctl"] = json!({"kernel.hostname": "x"}), "linux.sysctl.kernel.hostname: set the hostname with the hostname field"),
    ("sysctl name with a path", |v| v["linux"]["sysctl"] = json!({"net/../../kernel/panic": "1"}), "linux.sysctl.net/../../kernel/panic: not a sysctl name"),
    ("unknown seccomp action", |v| v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_MAYBE"}), "linux.seccomp.defaultAction: unknown variant `SCMP_ACT_MAYBE`, expected one of `SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`, `SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_TRAP`, `SCMP_ACT_ERRNO`, `SCMP_ACT_NOTIFY`, `SCMP_ACT_TRACE`, `SCMP_ACT_LOG`, `SCMP_ACT_ALLOW`"),
    ("seccomp argument index out of range", |v| {
        v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]})
    }, "linux.seccomp.syscalls[0].args[0].index: 7 is not a syscall argument (0..5)"),
    ("seccomp notify as the default", |v| v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ("seccomp notify without a listener", |v| {
        v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    }, "linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listener for its fd"),
    ("oomScoreAdj out of range", |v| v["process"]["oomScoreAdj"] = json!(2000), "process.oomScoreAdj: 2000 is not in -1000..1000"),
    ("ioPriority out of range", |v| v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9}), "process.ioPriority.priority: 9 is not in 0..7"),
    ("unknown propagation", |v| v["linux"]["rootfsPropagation"] = json!("sideways"), "linux.rootfsPropagation: \"sideways\" is not a propagation mode"),
    ("user namespace without mappings", |v| v["linux"]["namespaces"].as_array_mut().expect("ns").push(json!({"type": "user"})), "linux.uidMappings: a new user namespace needs its id mappings"),
    ("mappings without a user namespace", |v| {
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }, "linux.uidMappings: mappings without a new user namespace would not apply"),
    ("time offsets without a time namespace", |v| v["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}), "linux.timeOffsets: offsets without a time namespace would not apply"),
    ("offset of a clock that has none", |v| {
        v["linux"]["namespaces"].as_array_mut().expect("ns").push(json!({"type": "time"}));
        v["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    }, "linux.timeOffsets.realtime: only monotonic and boottime clocks have offsets"),
    ("not an object", |v| *v = json!(["ociVersion"]), "config.json must be a JSON object"),
    ("cgroup root", |v| v["linux"]["cgroupsPath"] = json!("/"), "linux.cgroupsPath: \"/\" is the root of the cgroup hierarchy; a container needs a cgroup of its own"),
    ("cgroup root in other words", |v| v["linux"]["cgroupsPath"] = json!("//./"), "linux.cgroupsPath: \"//./\" is the root of the cgroup hierarchy; a container needs a cgroup of its own"),
];

#[test]
fn every_bad_config_fails_with_its_exact_error() {
    let mut wrong = Vec::new();
    for (name, edit, want) in BAD {
        let mut v = base();
        edit(&mut v);
        let got = match parse(v.to_string().as_bytes()) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        if got != *want {
            wrong.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(BAD.len() >= 25, "only {} cases", BAD.len());
}

#[test]
fn valid_configs_with_unknown_keys_still_load() {
    let mut v = base();
    v["x-vendor"] = json!({"anything": 1});
    v["process"]["x-extra"] = json!(true);
    v["linux"]["x-extra"] = json!("ok");
    let l = parse(v.to_string().as_bytes()).expect("loads");
    assert_eq!(l.warnings.len(), 3);
}

#[test]
fn ambient_capabilities_the_kernel_cannot_raise_are_a_warning() {
    let mut v = base();
    // `runc spec`'s default: ambient, bounding, effective, permitted; no inheritable.
    let three = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    v["process"]["capabilities"] = json!({"bounding": three, "effective": three, "permitted": three, "ambient": three});
    let l = parse(v.to_string().as_bytes()).expect("loads");
    let msgs: Vec<&str> = l.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["process.capabilities.ambient: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE not raised: an ambient \
          capability must also be inheritable and permitted"]
    );
    v["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]);
    assert!(parse(v.to_string().as_bytes()).expect("loads").warnings.is_empty());
}

#[test]
fn selinux_labels_load_only_where_selinux_cannot_apply_them() {
    let mut v = base();
    v["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
    v["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    let r = parse(v.to_string().as_bytes());
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        assert_eq!(
            r.err().map(|e| e.to_string()).as_deref(),
            Some("process.selinuxLabel: SELinux labels are not supported yet")
        );
    } else {
        assert!(r.is_ok(), "labels refused without SELinux");
    }
}

#[test]
fn update_resources_parse_with_paths_and_refuse_impossible_values() {
    use super::parse_resources;
    let r = parse_resources(br#"{"memory": {"limit": 67108864}, "cpu": {"quota": 50000, "period": 100000}}"#)
        .expect("valid");
    assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(67108864));
    assert!(parse_resources(br#"{"memory": {"limit": -1}}"#).is_ok(), "-1 is unlimited");
    assert_eq!(
        parse_resources(br#"{"memory": {"limit": -5}}"#).err().as_deref(),
        Some("resources.memory.limit: -5 is not a limit (-1 is unlimited)")
    );
    assert_eq!(
        parse_resources(br#"{"cpu": {"shares": "many"}}"#).err().as_deref(),
        Some("resources.cpu.shares: invalid type: string \"many\", expected u64 at line 1 column 25")
    );
}
