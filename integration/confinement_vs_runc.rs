//! Issue 6, acceptance 1: the same bundles under runc (Debian's 1.1.5, run
//! directly) and under the shim through containerd; the container's view of
//! its own confinement must be the same. A difference passes only if it is
//! listed in the case with the reason.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::harness::*;

/// Everything a container can see of its confinement, one fact per line,
/// with what differs run to run (mount ids, peer group numbers) left out.
const PROBE: &str = r#"
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status | tr -s '\t ' ' '
echo "id: $(id)"
echo "hostname: $(hostname)"
echo "oom_score_adj: $(cat /proc/self/oom_score_adj)"
echo "umask: $(umask)"
ulimit -a | sed 's/^/ulimit: /'
awk '{ prop = "private"; for (i = 7; $i != "-"; i++) { split($i, p, ":"); prop = p[1] }
       for (j = i; $j != "-"; j++) {}
       print "mount: " $5, $6, prop, $(j+1), $(j+3) }' /proc/self/mountinfo
for p in $PATHS; do
    r=-; w=-
    if [ -d "$p" ]; then
        ls "$p" >/dev/null 2>&1 && r=r
        touch "$p/.probe" 2>/dev/null && { w=w; rm -f "$p/.probe"; }
    else
        head -c 1 "$p" >/dev/null 2>&1 && r=r
        (: >> "$p") 2>/dev/null && w=w
    fi
    echo "access: $p $r$w"
done
for k in $SYSCTLS; do echo "sysctl: $k=$(cat /proc/sys/$(echo $k | tr . /))"; done
for d in /dev/* /dev/*/*; do [ -e "$d" ] || [ -L "$d" ] || continue; stat -c 'dev: %n %F %t:%T %a %u:%g' "$d"; done
if [ -n "$TRY" ]; then out=$(sh -c "$TRY" 2>&1); rc=$?; echo "$out" | sed 's/^/try: /'; fi
echo "try: rc=$rc"
"#;

struct Case {
    name: &'static str,
    edit: fn(&mut Value),
    /// Paths whose access the probe reports.
    paths: &'static str,
    sysctls: &'static str,
    /// A command whose outcome shows a seccomp rule at work.
    try_cmd: &'static str,
    /// (line under runc, line under the shim, why) differences allowed.
    known: &'static [(&'static str, &'static str, &'static str)],
    /// Owner the rootfs is given first (a user namespace's root).
    owner: Option<u32>,
}

/// Every capability this host's root has (here that is not all of them:
/// no CAP_SYS_RESOURCE, so a config asking for it fails under both).
fn all_caps() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("CapBnd");
    let names = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let held = names.iter().enumerate().filter(|(i, _)| bnd & (1 << i) != 0);
    json!(held.map(|(_, n)| format!("CAP_{n}")).collect::<Vec<_>>())
}

fn set_caps(s: &mut Value, caps: Value) {
    for set in ["bounding", "effective", "permitted"] {
        s["process"]["capabilities"][set] = caps.clone();
    }
}

fn seccomp(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}

const NETNS: &str = "myshim-test-diff";

const USERNS_ROOT: u32 = 100000;

const CASES: &[Case] = &[
    Case {
        name: "userns",
        edit: |s| {
            s["linux"]["namespaces"].as_array_mut().expect("namespaces").push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": USERNS_ROOT, "size": 65536}]);
            s["linux"]["uidMappings"] = map.clone();
            s["linux"]["gidMappings"] = map;
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]});
        },
        paths: "/etc/passwd /tmp /dev/null /proc/sys/net/ipv4/ip_forward",
        sysctls: "",
        try_cmd: "cat /proc/self/uid_map /proc/self/gid_map",
        known: &[(
            "dev: /dev/mqueue directory 0:0 1777 0:65534",
            "dev: /dev/mqueue directory 0:0 1777 65534:65534",
            "an ipc namespace's mqueue root belongs to whoever created the namespace: runc unshares it \
             after its setresuid to the user namespace's root but before its setresgid; one clone3 makes \
             all of ours as host root (unmapped: 65534). Same mode (1777), so the same access",
        )],
        owner: Some(USERNS_ROOT),
    },
    Case {
        name: "default",
        edit: |_| {},
        paths: "/proc/kcore /proc/sys /proc/sys/net/ipv4/ip_forward /sys/firmware /proc/acpi /etc /dev/null",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        name: "privileged",
        edit: |s| {
            set_caps(s, all_caps());
            s["linux"]["maskedPaths"] = json!([]);
            s["linux"]["readonlyPaths"] = json!([]);
            s["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
            // As `ctr run --privileged` lists them, /dev/ptmx among them.
            s["linux"]["devices"] = host_devices();
        },
        paths: "/proc/sys/net/ipv4/ip_forward /sys/firmware /sys/kernel",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        // `runc spec`'s own config: ambient capabilities that are not
        // inheritable (raised as far as the kernel allows: none), rlimits.
        name: "runc-spec",
        edit: |s| {
            let dir = work_dir().join("runc-spec");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            let ok = Command::new("runc").arg("spec").current_dir(&dir).status().expect("runc spec");
            assert!(ok.success(), "runc spec");
            let mut theirs: Value =
                serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config")).expect("json");
            for key in ["root", "hostname"] {
                theirs[key] = s[key].clone();
            }
            theirs["process"]["args"] = s["process"]["args"].clone();
            theirs["process"]["env"] = s["process"]["env"].clone();
            theirs["process"]["terminal"] = json!(false);
            theirs["linux"]["cgroupsPath"] = s["linux"]["cgroupsPath"].clone();
            *s = theirs;
        },
        paths: "/proc/kcore /proc/sys",
        sysctls: "",
        try_cmd: "",
        known: &[(
            "mount: /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime private tmpfs rw,mode=755",
            "mount: /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime private tmpfs ro,mode=755",
            "the config asks for the cgroup mount `ro`, and the shim makes the tmpfs holding the cgroup \
             binds read-only as asked; runc 1.1.5 leaves that tmpfs writable when the options carry \
             `relatime` (runc spec's do; with containerd's options it is read-only under both). The \
             binds themselves are read-only under both",
        )],
        owner: None,
    },
    Case {
        name: "cap-add-drop",
        edit: |s| {
            let mut caps: Vec<Value> = s["process"]["capabilities"]["bounding"].as_array().cloned().unwrap_or_default();
            caps.retain(|c| c != "CAP_CHOWN");
            caps.push(json!("CAP_NET_ADMIN"));
            caps.push(json!("CAP_SYS_TIME"));
            set_caps(s, json!(caps));
            s["process"]["capabilities"]["ambient"] = json!(["CAP_NET_ADMIN"]);
            s["process"]["capabilities"]["inheritable"] = json!(["CAP_NET_ADMIN"]);
        },
        paths: "",
        sysctls: "",
        try_cmd: "chown 1 /tmp",
        known: &[],
        owner: None,
    },
    Case {
        name: "read-only",
        edit: |s| s["root"]["readonly"] = json!(true),
        paths: "/ /etc /tmp",
        sysctls: "",
        try_cmd: "touch /x",
        known: &[],
        owner: None,
    },
    Case {
        name: "rlimits",
        edit: |s| {
            s["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                {"type": "RLIMIT_NPROC", "soft": 50, "hard": 60},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}
            ])
        },
        paths: "",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        name: "nnp-on",
        edit: |s| s["process"]["noNewPrivileges"] = json!(true),
        paths: "",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        name: "nnp-off",
        edit: |s| s["process"]["noNewPrivileges"] = json!(false),
        paths: "",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        name: "seccomp-mkdir-eperm",
        edit: |s| {
            s["linux"]["seccomp"] =
                seccomp(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]))
        },
        paths: "",
        sysctls: "",
        try_cmd: "mkdir /tmp/d",
        known: &[],
        owner: None,
    },
    Case {
        name: "seccomp-kill-unshare",
        edit: |s| {
            s["process"]["noNewPrivileges"] = json!(false);
            s["linux"]["seccomp"] = seccomp(json!([{"names": ["unshare"], "action": "SCMP_ACT_KILL_PROCESS"}]));
        },
        paths: "",
        sysctls: "",
        try_cmd: "unshare -u true",
        known: &[],
        owner: None,
    },
    Case {
        name: "netns-by-path",
        edit: |s| {
            for ns in s["linux"]["namespaces"].as_array_mut().into_iter().flatten() {
                if ns["type"] == "network" {
                    ns["path"] = json!(format!("/var/run/netns/{NETNS}"));
                }
            }
        },
        paths: "",
        sysctls: "net.ipv4.ip_forward net.ipv4.conf.all.forwarding",
        try_cmd: "cat /proc/net/dev | tail -n +3 | cut -d: -f1",
        known: &[],
        owner: None,
    },
    Case {
        name: "masked-readonly",
        edit: |s| {
            s["linux"]["maskedPaths"]
                .as_array_mut()
                .expect("maskedPaths")
                .extend([json!("/etc/group"), json!("/data")]);
            s["linux"]["readonlyPaths"].as_array_mut().expect("readonlyPaths").extend([json!("/etc"), json!("/tmp")]);
        },
        paths: "/etc/group /data /etc /tmp /etc/passwd /proc/sys/kernel/domainname",
        sysctls: "",
        try_cmd: "cat /etc/group; ls /data",
        known: &[],
        owner: None,
    },
    Case {
        name: "sysctls",
        edit: |s| {
            s["linux"]["sysctl"] = json!({
                "kernel.shm_rmid_forced": "1",
                "net.ipv4.ip_forward": "1",
                "kernel.domainname": "example.test",
                "fs.mqueue.msg_max": "64"
            })
        },
        paths: "",
        sysctls: "kernel.shm_rmid_forced net.ipv4.ip_forward kernel.domainname fs.mqueue.msg_max",
        try_cmd: "",
        known: &[],
        owner: None,
    },
    Case {
        name: "devices",
        edit: |s| {
            s["linux"]["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"path": "/dev/sda-ish", "type": "b", "major": 7, "minor": 200, "fileMode": 384, "uid": 1000, "gid": 1000}
            ]);
            s["linux"]["resources"]["devices"]
                .as_array_mut()
                .expect("device rules")
                .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
        },
        paths: "/dev/fuse /dev/sda-ish",
        sysctls: "",
        try_cmd: "head -c 1 /dev/sda-ish",
        known: &[],
        owner: None,
    },
    Case {
        name: "user-and-oom",
        edit: |s| {
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000], "umask": 23});
            s["process"]["oomScoreAdj"] = json!(500);
        },
        paths: "/etc/passwd /tmp",
        sysctls: "",
        try_cmd: "",
        known: &[],
        owner: None,
    },
];

fn probe_spec(case: &Case, id: &str, root: &Path) -> Value {
    let mut s = spec(id, root, &["sh", "-c", PROBE]);
    s["process"]["env"] = json!([
        "PATH=/bin",
        format!("PATHS={}", case.paths),
        format!("SYSCTLS={}", case.sysctls),
        format!("TRY={}", case.try_cmd)
    ]);
    (case.edit)(&mut s);
    s
}

fn through_runc(id: &str, spec: &Value) -> String {
    let bundle = work_dir().join(format!("{id}-bundle"));
    std::fs::create_dir_all(&bundle).expect("bundle");
    let mut spec = spec.clone();
    spec["linux"]["cgroupsPath"] = json!(format!("/{NS}/{id}-runc"));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec).expect("json")).expect("config");
    // runc as containerd's runc shim starts it: at containerd's
    // oom_score_adj + 1 (this process's stands in for containerd's), which a
    // container with no oomScoreAdj of its own inherits.
    let score: i32 = std::fs::read_to_string("/proc/self/oom_score_adj").expect("score").trim().parse().expect("score");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo {} > /proc/self/oom_score_adj && exec \"$@\"", (score + 1).min(1000)))
        .args(["sh", "timeout", "-k", "5", "60", "runc", "--root"])
        .arg(work_dir().join("runc-root"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(format!("{id}-runc"))
        .stdin(Stdio::null())
        .output()
        .expect("runc run");
    assert!(out.status.success(), "runc run {id}: {}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&bundle);
    text(&out.stdout)
}

fn through_shim(id: &str, spec: &Value) -> String {
    let out = run_spec(id, spec);
    assert!(out.status.success(), "shim run {id}: {}", text(&out.stderr));
    assert_no_leftovers(id);
    text(&out.stdout)
}

/// Lines only one side has, both ways, minus the case's known ones.
fn unexplained(case: &Case, runc: &str, ours: &str) -> Vec<String> {
    let a: Vec<&str> = runc.lines().collect();
    let b: Vec<&str> = ours.lines().collect();
    let only_runc = a.iter().filter(|l| !b.contains(l));
    let only_ours = b.iter().filter(|l| !a.contains(l));
    let known_runc = |l: &&&str| case.known.iter().any(|(r, _, _)| r == *l);
    let known_ours = |l: &&&str| case.known.iter().any(|(_, o, _)| o == *l);
    let mut out: Vec<String> = only_runc
        .filter(|l| !known_runc(l))
        .map(|l| format!("runc only: {l}"))
        .chain(only_ours.filter(|l| !known_ours(l)).map(|l| format!("shim only: {l}")))
        .collect();
    // Later mounts cover earlier ones: the order is part of the result.
    // A listed difference stands in its place in either order.
    let mounts = |v: &[&str], known: &dyn Fn(&&&str) -> bool| {
        v.iter()
            .filter(|l| l.starts_with("mount: "))
            .map(|l| if known(&l) { "(listed)".to_string() } else { l.to_string() })
            .collect::<Vec<_>>()
    };
    if out.is_empty() && mounts(&a, &known_runc) != mounts(&b, &known_ours) {
        out.push("the same mounts in another order".into());
    }
    out
}

struct NetNs;

impl NetNs {
    fn add() -> Self {
        if Path::new("/run/netns").join(NETNS).exists() {
            let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
        }
        let ok = Command::new("ip").args(["netns", "add", NETNS]).status().expect("ip netns add");
        assert!(ok.success(), "ip netns add {NETNS}");
        NetNs
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    }
}

#[test]
fn the_container_sees_the_same_confinement_as_under_runc() {
    let _netns = NetNs::add();
    let mut failures = Vec::new();
    for case in CASES {
        let id = format!("diff-{}", case.name);
        let root = rootfs(&id);
        if let Some(uid) = case.owner {
            give_rootfs_to(&root, uid);
        }
        let spec = probe_spec(case, &id, &root);
        let runc = through_runc(&id, &spec);
        let ours = through_shim(&id, &spec);
        assert!(ours.contains("try: rc="), "{id}: the probe did not finish:\n{ours}");
        let diff = unexplained(case, &runc, &ours);
        if !diff.is_empty() {
            failures.push(format!("{id}:\n  {}\n--- runc:\n{runc}--- shim:\n{ours}", diff.join("\n  ")));
        }
        for (r, o, _) in case.known {
            assert!(runc.contains(r) && ours.contains(o), "{id}: listed difference gone: {r} / {o}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
    assert!(cgroups_of("diff-default-runc").is_empty(), "runc left a cgroup");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What runc refuses on this machine, the shim refuses too, for the same
/// reason: an AppArmor profile where AppArmor is absent (runc: "unable to
/// apply apparmor profile"), and an oom_score_adj below the shim's own
/// without CAP_SYS_RESOURCE.
#[test]
fn what_runc_cannot_apply_fails_create_here_too() {
    type Refused = (&'static str, fn(&mut Value), &'static str, &'static str);
    let cases: &[Refused] = &[
        (
            "apparmor",
            |s| s["process"]["apparmorProfile"] = json!("myshim-test-profile"),
            "apparmor",
            "apply apparmor profile \"myshim-test-profile\"",
        ),
        ("oom", |s| s["process"]["oomScoreAdj"] = json!(-999), "oom_score_adj", "set oom_score_adj to -999"),
    ];
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'));
    for (name, edit, runc_says, we_say) in cases {
        if *name == "apparmor" && apparmor {
            continue; // with AppArmor, both apply the profile: nothing fails
        }
        let id = format!("refuse-{name}");
        let root = rootfs(&id);
        let mut s = spec(&id, &root, &["true"]);
        edit(&mut s);
        let bundle = work_dir().join(format!("{id}-bundle"));
        std::fs::create_dir_all(&bundle).expect("bundle");
        let mut theirs = s.clone();
        theirs["linux"]["cgroupsPath"] = json!(format!("/{NS}/{id}-runc"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&theirs).expect("json")).expect("config");
        let runc = Command::new("runc")
            .arg("--root")
            .arg(work_dir().join("runc-root"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("{id}-runc"))
            .stdin(Stdio::null())
            .output()
            .expect("runc");
        assert!(!runc.status.success(), "{id}: runc ran it");
        assert!(text(&runc.stderr).contains(runc_says), "{id}: runc: {}", text(&runc.stderr));
        let ours = run_spec(&id, &s);
        assert!(!ours.status.success(), "{id}: the shim ran it");
        assert!(text(&ours.stderr).contains(we_say), "{id}: shim: {}", text(&ours.stderr));
        assert_no_leftovers(&id);
        let _ = std::fs::remove_dir_all(&bundle);
        let _ = std::fs::remove_dir_all(&root);
    }
}
