//! Hooks against the clock and against runc. Talking to the shim directly,
//! each hook's probe timestamp must fall inside the RPC the OCI spec puts it
//! in; then runc (Debian's 1.1.5) runs the same bundle with `runc create`,
//! `start` and `delete`, and every observation is compared field by field.
//! Where runc differs, the difference must be one listed in KNOWN with the
//! spec clause that makes ours right; any other difference fails the test.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, DeleteRequest, StartRequest, WaitRequest};
use serde_json::{json, Value};

use crate::direct::*;
use crate::harness::*;
use crate::hooks::{hook, kind_of, kinds, log, setup, Setup, ALL};

/// (hook kind, observation, ours, runc 1.1.5, why ours is right).
const KNOWN: &[(&str, &str, &str, &str, &str)] = &[
    (
        "poststart",
        "rpc",
        "start",
        "create",
        "runtime.md lifecycle step 8: poststart hooks are invoked after the user-specified process is \
         executed, before `start` returns (runc 1.1.5 runs them inside `runc create`)",
    ),
    (
        "poststart",
        "status",
        "running",
        "created",
        "config.md poststart: called after the user-specified process is executed; state.md: `running` \
         means the process has executed the user-specified program",
    ),
    (
        "poststart",
        "exe",
        "user program",
        "runtime init",
        "the same runc bug: in `runc create` the user process has not been executed yet",
    ),
    (
        "createContainer",
        "pid",
        "the init's pid as the runtime sees it",
        "other pid 1",
        "runtime.md State: pid is the ID of the container process, as seen by the host (runc's init \
         reports its own pid from inside the container's pid namespace)",
    ),
    (
        "startContainer",
        "pid",
        "the init's pid as the runtime sees it",
        "other pid 1",
        "the same clause: as seen by the host, even for a hook that runs in the container",
    ),
    (
        "createContainer",
        "exe",
        "runtime init",
        "not visible",
        "follows from the pid: before pivot_root runc's hook looks up pid 1 in a /proc that is not the container's",
    ),
    (
        "startContainer",
        "/proc/<pid> exists",
        "false",
        "true",
        "follows from the host's pid: the container's own /proc does not show it",
    ),
    ("startContainer", "exe", "not visible", "runtime init", "follows from the host's pid, as above"),
];

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn namespaces(pid: &str) -> Vec<String> {
    ["mnt", "pid", "net", "uts"]
        .iter()
        .map(|n| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).map(|p| p.display().to_string()).unwrap_or_default())
        .collect()
}

/// What one runtime did: the probe log, the init's pid and namespaces, and
/// the monotonic windows of its create, start and delete operations.
struct Observed {
    entries: Vec<Value>,
    init_pid: i64,
    init_ns: Vec<String>,
    windows: [(&'static str, i64, i64); 3],
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, i64, i64) {
    let t0 = monotonic_ns();
    let r = f();
    (r, t0, monotonic_ns())
}

fn through_myshim(id: &str, s: &Setup, bundle: &Path) -> Observed {
    let addr = text(&start(bundle, id, None));
    let observed = rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest { id: id.into(), bundle: bundle.to_string_lossy().into(), ..Default::default() };
        let t0 = monotonic_ns();
        let pid = c.create(ctx(), &req).await.expect("Create").pid;
        let t1 = monotonic_ns();
        let init_ns = namespaces(&pid.to_string());
        let t2 = monotonic_ns();
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        let t3 = monotonic_ns();
        c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        let t4 = monotonic_ns();
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        let t5 = monotonic_ns();
        shutdown(&c, shim).await;
        Observed {
            entries: Vec::new(),
            init_pid: i64::from(pid),
            init_ns,
            windows: [("create", t0, t1), ("start", t2, t3), ("delete", t4, t5)],
        }
    });
    Observed { entries: log(s), ..observed }
}

fn through_runc(id: &str, s: &Setup, bundle: &Path) -> Observed {
    let root = work_dir().join("runc-root");
    let errors = work_dir().join(format!("{id}.runc-stderr"));
    let runc = |args: &[&str]| {
        // The container inherits runc create's stdio: no pipe it could hold open.
        let err = std::fs::File::create(&errors).expect("stderr file");
        let status = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(args)
            .current_dir(bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .expect("run runc");
        let msg = std::fs::read_to_string(&errors).unwrap_or_default();
        assert!(status.success(), "runc {args:?}: {msg}");
    };
    let state = |field: &str| -> Value {
        let out = Command::new("runc").arg("--root").arg(&root).args(["state", id]).output().expect("runc state");
        serde_json::from_slice::<Value>(&out.stdout).map(|v| v[field].clone()).unwrap_or(Value::Null)
    };
    let b = bundle.to_string_lossy().into_owned();
    let (_, t0, t1) = timed(|| runc(&["create", "--bundle", &b, id]));
    let init_pid = state("pid").as_i64().expect("runc state pid");
    let init_ns = namespaces(&init_pid.to_string());
    let (_, t2, t3) = timed(|| runc(&["start", id]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while state("status") != "stopped" {
        assert!(Instant::now() < deadline, "runc's container never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, t4, t5) = timed(|| runc(&["delete", id]));
    Observed {
        entries: log(s),
        init_pid,
        init_ns,
        windows: [("create", t0, t1), ("start", t2, t3), ("delete", t4, t5)],
    }
}

/// The hook plan `check --json` gives for `bundle`.
fn check_plan(bundle: &Path) -> Vec<Value> {
    let out = Command::new(shim_binary()).arg("check").arg("--json").arg(bundle).output().expect("check");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("check --json prints JSON");
    doc["hooks"].as_array().cloned().unwrap_or_default()
}

/// One probe entry as comparable observations, each a (name, value) pair.
fn observations(e: &Value, o: &Observed) -> Vec<(&'static str, String)> {
    let t = e["t"].as_i64().expect("t");
    let rpc = o.windows.iter().find(|(_, a, b)| (*a..=*b).contains(&t)).map_or("between operations", |w| w.0);
    let ns: Vec<String> = ["mnt", "pidns", "net", "uts"].iter().map(|n| e[n].as_str().unwrap_or("").into()).collect();
    let host: Vec<String> = namespaces("self");
    let place = if ns == host {
        "runtime namespaces".to_string()
    } else if ns == o.init_ns {
        "container namespaces".to_string()
    } else {
        format!("other namespaces {ns:?}")
    };
    let state = &e["state"];
    let pid = match state.get("pid").and_then(Value::as_i64) {
        None => "absent".to_string(),
        Some(p) if p == o.init_pid => "the init's pid as the runtime sees it".to_string(),
        Some(p) => format!("other pid {p}"),
    };
    let exe = e["exe"].as_str().unwrap_or("");
    let exe = if exe.is_empty() {
        "not visible"
    } else if exe.ends_with("busybox") {
        "user program"
    } else {
        // Not yet the user program: our binary through its detached view
        // ("/containerd-shim-myshim-v2"), or runc's init, whose exe the host
        // reads as "/".
        "runtime init"
    };
    vec![
        ("rpc", rpc.to_string()),
        ("namespaces", place),
        ("argv", e["argv"].to_string()),
        ("env", e["env"].to_string()),
        (
            "cwd",
            e["cwd"].as_str().unwrap_or("").replace(&state["bundle"].as_str().unwrap_or("?").to_string(), "$bundle"),
        ),
        ("status", state["status"].as_str().unwrap_or("").to_string()),
        ("id", state["id"].to_string()),
        ("ociVersion", state["ociVersion"].to_string()),
        ("bundle", state["bundle"].to_string()),
        ("annotations", state["annotations"].to_string()),
        ("pid", pid),
        ("/proc/<pid> exists", e["exists"].to_string()),
        ("exe", exe.to_string()),
    ]
}

#[test]
fn each_hook_runs_inside_its_rpc_and_differs_from_runc_only_where_runc_breaks_the_spec() {
    let id = "hk-vs-runc";
    // The process outlives poststart, which looks at it through /proc.
    let mut s = setup(id, &["sleep", "1"]);
    let mut hooks = serde_json::Map::new();
    for kind in ALL {
        hooks.insert(kind.into(), json!([hook(&s, kind, 0, &[]), hook(&s, kind, 1, &[])]));
    }
    s.spec["hooks"] = Value::Object(hooks);
    s.spec["annotations"] = json!({"io.example/hooked": "yes"});
    let bundle = work_dir().join(format!("bundle-{id}"));
    let _ = std::fs::remove_dir_all(&bundle);
    std::fs::create_dir_all(&bundle).expect("bundle");
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&s.spec).expect("spec")).expect("config");
    assert_checks_clean(&bundle);

    let ours = through_myshim(id, &s, &bundle);
    assert_no_leftovers(id);
    std::fs::rename(s.dir.join("log"), s.dir.join("log.myshim")).expect("keep our log");
    let theirs = through_runc(id, &s, &bundle);
    assert!(cgroups_of(id).is_empty(), "runc left cgroups");

    // Ours, on its own: the spec's order, each hook inside its RPC.
    let want: Vec<String> = ALL.iter().flat_map(|k| [format!("{k}#0"), format!("{k}#1")]).collect();
    assert_eq!(kinds(&ours.entries), want);
    for e in &ours.entries {
        let obs = observations(e, &ours);
        let rpc = match kind_of(e) {
            "prestart" | "createRuntime" | "createContainer" => "create",
            "startContainer" | "poststart" => "start",
            _ => "delete",
        };
        assert_eq!(obs[0].1, rpc, "{}: ran in the wrong RPC", kind_of(e));
    }

    // Issue 7: what `check` says of this bundle is what just happened, hook by
    // hook: the same order, RPC, namespaces and state status.
    let said: Vec<(String, String, String, String)> = check_plan(&bundle)
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or("").to_string();
            (
                format!("{}#{}", s("kind"), h["index"]),
                s("rpc").to_lowercase(),
                format!("{} namespaces", s("namespaces")),
                s("status"),
            )
        })
        .collect();
    let seen: Vec<(String, String, String, String)> = ours
        .entries
        .iter()
        .zip(kinds(&ours.entries))
        .map(|(e, k)| {
            let obs = observations(e, &ours);
            let get = |name: &str| obs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default();
            (k, get("rpc"), get("namespaces"), get("status"))
        })
        .collect();
    assert_eq!(said, seen, "`check` explains another run than the one that happened");

    // Side by side with runc, entry by entry (matched by kind and index).
    let mut differences = BTreeSet::new();
    for e in &ours.entries {
        let key = (kind_of(e), &e["argv"][2]);
        let Some(r) = theirs.entries.iter().find(|r| (kind_of(r), &r["argv"][2]) == key) else {
            differences.insert((kind_of(e).to_string(), "ran".to_string(), "yes".to_string(), "no".to_string()));
            continue;
        };
        for ((name, a), (_, b)) in observations(e, &ours).into_iter().zip(observations(r, &theirs)) {
            if a != b {
                differences.insert((kind_of(e).to_string(), name.to_string(), a, b));
            }
        }
    }
    let known: BTreeSet<(String, String, String, String)> =
        KNOWN.iter().map(|(k, f, a, b, _)| (k.to_string(), f.to_string(), a.to_string(), b.to_string())).collect();
    let unexplained: Vec<_> = differences.difference(&known).collect();
    assert!(
        unexplained.is_empty(),
        "differences from runc not explained by the spec: {unexplained:#?}\nrunc's probe log: {:#?}",
        theirs.entries
    );
    let gone: Vec<_> = known.difference(&differences).collect();
    assert!(gone.is_empty(), "listed differences runc no longer shows (update KNOWN): {gone:#?}");
    // runc 1.1.5's order follows from its poststart bug, and only from it.
    let mut runc_order = kinds(&theirs.entries);
    runc_order.retain(|k| !k.starts_with("poststart"));
    let mut ours_order = want.clone();
    ours_order.retain(|k| !k.starts_with("poststart"));
    assert_eq!(runc_order, ours_order, "runc's order apart from poststart");
}
