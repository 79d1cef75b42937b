//! OCI hooks through containerd: order, RPC, namespaces, state, env, the
//! failure rules, and poststop surviving a SIGKILLed shim.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// The probe (integration/probe/hook_probe.rs), built once per test run:
/// static, so it runs on the host and in the busybox rootfs alike. Where
/// there is no rustc (the VM stage) the one MYSHIM_TEST_HOOK_PROBE names,
/// built the same way by scripts/test.sh.
fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        if let Some(built) = std::env::var_os("MYSHIM_TEST_HOOK_PROBE") {
            return PathBuf::from(built);
        }
        let out = work_dir().join("hook-probe");
        let tmp = work_dir().join(format!("hook-probe.{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/probe/hook_probe.rs");
        let status = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args(["--edition", "2021", "-O", "-C", "target-feature=+crt-static", "-C", "debuginfo=0", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run rustc");
        assert!(status.success(), "building the hook probe failed");
        std::fs::rename(&tmp, &out).expect("install probe");
        out
    })
}

pub struct Setup {
    pub dir: PathBuf,
    pub spec: Value,
}

/// A rootfs with the probe's directory bound in at the same path, so hooks
/// on either side of pivot_root find the probe and the log.
pub fn setup(id: &str, args: &[&str]) -> Setup {
    let dir = work_dir().join(format!("hooks-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(probe_binary(), dir.join("probe")).expect("probe");
    let root = rootfs(id);
    let mut spec = spec(id, &root, args);
    spec["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": dir, "type": "bind", "source": dir, "options": ["rbind", "rw"]
    }));
    Setup { dir, spec }
}

pub fn hook(s: &Setup, kind: &str, idx: usize, extra_env: &[&str]) -> Value {
    let probe = s.dir.join("probe");
    let mut env = vec![format!("LOG={}", s.dir.join("log").display()), "PATH=/usr/bin:/bin".into(), "HOOKVAR=x".into()];
    env.extend(extra_env.iter().map(|e| e.to_string()));
    json!({"path": probe, "args": ["probe", kind, idx.to_string()], "env": env, "timeout": 10})
}

pub fn log(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(s.dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("probe line {l}: {e}")))
        .collect()
}

/// The hook kind a probe entry was run as (its argv[1]).
pub fn kind_of(e: &Value) -> &str {
    e["argv"][1].as_str().unwrap_or("")
}

pub fn kinds(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| format!("{}#{}", kind_of(e), e["argv"][2].as_str().unwrap_or(""))).collect()
}

pub const ALL: [&str; 6] = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}")).expect("ns").to_string_lossy().into_owned()
}

#[test]
fn all_six_kinds_run_in_order_in_the_right_namespaces_with_the_right_state() {
    let id = "hk-all";
    // The process outlives poststart, which looks at it through /proc, and
    // prints its namespaces for the container-side hooks to be compared with.
    let script = "for n in mnt pid net uts; do readlink /proc/self/ns/$n; done; sleep 1";
    let mut s = setup(id, &["sh", "-c", script]);
    let mut hooks = serde_json::Map::new();
    for kind in ALL {
        hooks.insert(kind.into(), json!([hook(&s, kind, 0, &[]), hook(&s, kind, 1, &[])]));
    }
    s.spec["hooks"] = Value::Object(hooks);
    s.spec["annotations"] = json!({"io.example/hooked": "yes"});
    let out = run_spec(id, &s.spec);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let inside: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(inside.len(), 4, "{inside:?}");
    let entries = log(&s);
    let want: Vec<String> = ALL.iter().flat_map(|k| [format!("{k}#0"), format!("{k}#1")]).collect();
    assert_eq!(kinds(&entries), want);
    for (e, spec_hook) in entries.iter().zip(ALL.iter().flat_map(|k| [&s.spec["hooks"][k][0], &s.spec["hooks"][k][1]]))
    {
        let kind = kind_of(e);
        let nss: Vec<String> =
            ["mnt", "pidns", "net", "uts"].iter().map(|n| e[n].as_str().unwrap_or("").into()).collect();
        let want_ns: Vec<String> = match kind {
            "createContainer" | "startContainer" => inside.clone(),
            _ => ["mnt", "pid", "net", "uts"].iter().map(|n| host_ns(n)).collect(),
        };
        assert_eq!(nss, want_ns, "{kind}: namespaces");
        // argv is args as given (args[0] as argv[0]); env is exactly the hook's.
        assert_eq!(e["argv"], spec_hook["args"], "{kind}: argv");
        let mut env: Vec<Value> = spec_hook["env"].as_array().expect("env").clone();
        env.sort_by_key(|v| v.as_str().unwrap_or("").to_string());
        assert_eq!(e["env"], Value::Array(env), "{kind}: env");
        let state = &e["state"];
        let cwd = match kind {
            "createContainer" => s.spec["root"]["path"].as_str().expect("root"),
            "startContainer" => "/",
            _ => state["bundle"].as_str().expect("bundle"),
        };
        assert_eq!(e["cwd"], cwd, "{kind}: cwd");
        let status = match kind {
            "prestart" | "createRuntime" | "createContainer" => "creating",
            "startContainer" => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        assert_eq!(state["status"], status, "{kind}");
        assert_eq!(state["id"], id);
        assert_eq!(state["ociVersion"], s.spec["ociVersion"]);
        assert_eq!(state["annotations"]["io.example/hooked"], "yes");
        assert!(state["bundle"].as_str().is_some_and(|b| b.ends_with(id)), "{kind}: {state}");
        match kind {
            "poststop" => assert!(state.get("pid").is_none(), "poststop: {state}"),
            // state.pid is the pid in the runtime's namespace; after pivot_root
            // the container's /proc shows its own pid namespace instead.
            "startContainer" => assert_eq!(e["exists"], false, "{kind}"),
            _ => assert_eq!(e["exists"], true, "{kind}: /proc/<state.pid> should exist"),
        }
        let exe = e["exe"].as_str().unwrap_or("");
        match kind {
            "poststart" => assert!(exe.ends_with("busybox"), "poststart runs after the exec: {exe}"),
            // Before the exec: the shim's binary, through its detached view.
            "prestart" | "createRuntime" => {
                assert_eq!(exe, "/containerd-shim-myshim-v2", "{kind} runs before the exec")
            }
            _ => {}
        }
    }
    assert_no_leftovers(id);
}

/// Runs a spec whose `kind` hook fails in `how`; returns ctr's stderr and the probe log.
fn failing(id: &str, kind: &str, how: &[&str], timeout: Option<i64>) -> (String, Vec<Value>, Setup) {
    let mut s = setup(id, &["sleep", "1000"]);
    let mut bad = hook(&s, kind, 0, how);
    if let Some(t) = timeout {
        bad["timeout"] = json!(t);
    }
    s.spec["hooks"] = json!({ kind: [bad], "poststop": [hook(&s, "poststop", 0, &[])] });
    let p = write_spec(id, &s.spec);
    let out = ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{kind} should fail its RPC: {stderr}");
    if kind == "startContainer" || kind == "poststart" {
        // The container was stopped; containerd sees the exit and can delete it.
        wait_status(id, "STOPPED");
    }
    remove(id);
    (stderr, log(&s), s)
}

#[test]
fn a_failing_hook_fails_its_rpc_names_itself_and_poststop_still_runs() {
    for kind in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"] {
        let id = format!("hk-fail-{}", kind.to_lowercase());
        let (stderr, entries, s) = failing(&id, kind, &["PROBE_FAIL=3"], None);
        let path = s.dir.join("probe");
        let want =
            format!("{kind} hook #0 ({}): exited with status 3; stderr: failing on purpose: {kind}", path.display());
        assert!(stderr.contains(&want), "{kind}: {stderr}");
        assert_eq!(
            kinds(&entries).last().map(String::as_str),
            Some("poststop#0"),
            "{kind}: poststop must run: {entries:?}"
        );
        assert_no_leftovers(&id);
    }
}

#[test]
fn a_hook_killed_by_a_signal_fails_its_rpc_and_poststop_still_runs() {
    for kind in ["createRuntime", "startContainer"] {
        let id = format!("hk-sig-{}", kind.to_lowercase());
        let (stderr, entries, s) = failing(&id, kind, &["PROBE_SIGNAL=9"], None);
        let want = format!(
            "{kind} hook #0 ({}): killed by signal 9 (status 137); stderr: killing myself: {kind}",
            s.dir.join("probe").display()
        );
        assert!(stderr.contains(&want), "{kind}: {stderr}");
        assert_eq!(kinds(&entries).last().map(String::as_str), Some("poststop#0"), "{kind}: {entries:?}");
        assert_no_leftovers(&id);
    }
}

#[test]
fn start_hook_failures_reach_the_start_rpc() {
    let id = "hk-start-rpc";
    let mut s = setup(id, &["sleep", "1000"]);
    s.spec["hooks"] = json!({"poststart": [hook(&s, "poststart", 0, &["PROBE_FAIL=4"])]});
    let p = write_spec(id, &s.spec);
    assert!(ctr(&["container", "create", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]).status.success());
    let out = ctr(&["task", "start", id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("poststart hook #0") && err.contains("exited with status 4"), "{err}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn a_hook_that_hangs_is_killed_with_its_process_group() {
    let id = "hk-hang";
    let (stderr, entries, s) = failing(id, "createRuntime", &["PROBE_HANG=1"], Some(1));
    assert!(stderr.contains("createRuntime hook #0") && stderr.contains("timed out after 1s"), "{stderr}");
    assert_eq!(kinds(&entries), ["createRuntime#0", "poststop#0"]);
    std::thread::sleep(Duration::from_millis(300));
    let leftover = std::process::Command::new("pgrep").args(["-f", "sleep 1000"]).output().expect("pgrep");
    let pids: Vec<i32> = text(&leftover.stdout).lines().filter_map(|l| l.parse().ok()).collect();
    let ours: Vec<i32> = pids
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.contains(&s.dir.to_string_lossy().to_string()))
        })
        .filter(|p| !gone(*p))
        .collect();
    assert!(ours.is_empty(), "the hook's background child survived: {ours:?}");
    assert_no_leftovers(id);
}

#[test]
fn a_missing_hook_binary_fails_create() {
    let id = "hk-missing";
    let mut s = setup(id, &["true"]);
    s.spec["hooks"] = json!({"createRuntime": [{"path": "/no/such/hook"}]});
    let out = run_bad_spec(id, &s.spec);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("createRuntime hook #0 (/no/such/hook): could not run"), "{err}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn invalid_hook_values_fail_create() {
    let id = "hk-invalid";
    let mut s = setup(id, &["true"]);
    s.spec["hooks"] = json!({"prestart": [{"path": "/bin/true", "timeout": 0}]});
    let out = run_bad_spec(id, &s.spec);
    assert!(
        text(&out.stderr).contains("hooks.prestart[0].timeout: 0 must be greater than zero"),
        "{}",
        text(&out.stderr)
    );
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn poststop_runs_once_after_the_shim_is_killed() {
    let id = "hk-durable";
    let mut s = setup(id, &["sleep", "1000"]);
    s.spec["hooks"] = json!({"poststop": [hook(&s, "poststop", 0, &[])]});
    let p = write_spec(id, &s.spec);
    assert!(ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]).status.success());
    wait_status(id, "RUNNING");
    let shims = shim_pids(id);
    assert_eq!(shims.len(), 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::SIGKILL).expect("kill shim");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log(&s).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    remove(id);
    std::thread::sleep(Duration::from_millis(300));
    let entries = log(&s);
    assert_eq!(kinds(&entries), ["poststop#0"], "exactly once: {entries:?}");
    assert_eq!(entries[0]["state"]["status"], "stopped");
    assert_eq!(entries[0]["state"]["id"], id);
    assert_no_leftovers(id);
}

#[test]
fn a_create_runtime_hook_can_wire_up_the_network_and_poststop_removes_it() {
    // nerdctl's pattern, confined to namespaces this test makes: a veth pair
    // from the container's netns (the state's pid) to a test netns.
    let id = "hk-net";
    let netns = format!("myshim-hknet-{}", std::process::id());
    let mut s = setup(id, &["ping", "-c", "1", "-W", "2", "10.213.0.1"]);
    let up = format!(
        r#"#!/bin/sh
set -e
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
ip netns add {netns}
ip link add vh-{id} type veth peer name vc-{id}
ip link set vh-{id} netns {netns}
ip link set vc-{id} netns "$pid"
ip netns exec {netns} ip addr add 10.213.0.1/30 dev vh-{id}
ip netns exec {netns} ip link set vh-{id} up
nsenter -t "$pid" -n ip addr add 10.213.0.2/30 dev vc-{id}
nsenter -t "$pid" -n ip link set vc-{id} up
nsenter -t "$pid" -n ip link set lo up
"#
    );
    let down = format!("#!/bin/sh\nip netns exec {netns} ip link del vh-{id} 2>/dev/null\nip netns del {netns}\n");
    for (name, body) in [("net-up.sh", up), ("net-down.sh", down)] {
        std::fs::write(s.dir.join(name), body).expect("script");
        std::fs::set_permissions(s.dir.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    }
    let env = json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    s.spec["hooks"] = json!({
        "createRuntime": [{"path": s.dir.join("net-up.sh"), "env": env}],
        "poststop": [{"path": s.dir.join("net-down.sh"), "env": env}]
    });
    let out = run_spec(id, &s.spec);
    let netns_left = std::path::Path::new("/run/netns").join(&netns).exists();
    if netns_left {
        let _ = std::process::Command::new("ip").args(["netns", "del", &netns]).status();
    }
    assert!(out.status.success(), "stdout: {} stderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("1 packets received"), "{}", text(&out.stdout));
    assert!(!netns_left, "poststop should have removed {netns}");
    let links = std::process::Command::new("ip").args(["-o", "link"]).output().expect("ip link");
    assert!(!text(&links.stdout).contains(&format!("vh-{id}")), "interface left behind");
    assert_no_leftovers(id);
}
