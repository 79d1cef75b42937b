//! The shim-level benchmark (figure 2 of scripts/bench.sh): starts each shim
//! with its own `start` command on the same bundle and drives
//! Create -> Start -> Wait -> Delete -> Shutdown of /bin/true over ttrpc,
//! without containerd. Events go to a stand-in Events service. Shims are
//! interleaved after warm-up, every other round in reverse (A B, B A, ...),
//! so machine noise, and whatever one shim leaves for the next (page cache,
//! a cgroup being removed), hits all alike.
//!
//! bench-client --work DIR --spec SPEC.json --runs N --warmup K LABEL=SHIM[,SPEC] ...
//! prints one JSON object: per label, per step, every sample in ms, and the
//! CPU time (user+sys, start command + shim + what it reaped) per lifecycle.
//! A label with its own SPEC that has hooks also gets `hooks_own_ms`: the
//! time its hooks take when the client runs them itself, one after another,
//! so the bench can show what a shim adds beyond the hooks' own run time.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use containerd_shim_protos::api::{
    ConnectRequest, CreateTaskRequest, DeleteRequest, Empty, ShutdownRequest, StartRequest, WaitRequest,
};
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{create_events, Client, Events, TaskClient};
use containerd_shim_protos::ttrpc::asynchronous::{Server, TtrpcContext};
use containerd_shim_protos::ttrpc::context;

struct StandIn;

#[async_trait]
impl Events for StandIn {
    async fn forward(&self, _: &TtrpcContext, _: ForwardRequest) -> containerd_shim_protos::ttrpc::Result<Empty> {
        Ok(Empty::new())
    }
}

const STEPS: [&str; 7] = ["start", "create", "start_rpc", "wait", "delete", "shutdown", "total"];

type Samples = BTreeMap<String, BTreeMap<&'static str, Vec<f64>>>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn children_cpu_ms() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    tv(u.user_time()) + tv(u.system_time())
}

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

/// Reaps every exited descendant (we are their subreaper) until `pid` is gone.
fn reap_until(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => std::thread::sleep(Duration::from_micros(200)),
            Ok(s) if s.pid() == Some(nix::unistd::Pid::from_raw(pid)) => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
    panic!("shim {pid} did not exit after Shutdown");
}

async fn lifecycle(
    shim: &Path,
    work: &Path,
    spec: &serde_json::Value,
    id: &str,
    events: &Path,
) -> BTreeMap<&'static str, f64> {
    let bundle = work.join(id);
    let _ = std::fs::remove_dir_all(&bundle);
    std::fs::create_dir_all(&bundle).expect("bundle");
    let mut spec = spec.clone();
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/myshim-bench/{id}"));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec).expect("spec")).expect("config.json");
    // containerd's shim log fifo, which the runc shim refuses to run without;
    // we hold the read end as containerd does.
    nix::unistd::mkfifo(&bundle.join("log"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo log");
    let log = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(bundle.join("log"))
        .expect("open log fifo");
    let mut t = BTreeMap::new();
    let t0 = Instant::now();
    let out = Command::new(shim)
        .args(["-namespace", "bench", "-address", &work.join("containerd.sock").to_string_lossy()])
        .args(["-publish-binary", "/usr/bin/containerd", "-id", id, "start"])
        .current_dir(&bundle)
        .env("TTRPC_ADDRESS", events)
        .env("MYSHIM_ROOT", work.join("myshim-root"))
        .stdin(Stdio::null())
        .output()
        .expect("run start");
    assert!(out.status.success(), "{} start: {}", shim.display(), String::from_utf8_lossy(&out.stderr));
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let address = if answer.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(&answer).expect("json")["address"]
            .as_str()
            .expect("address")
            .to_string()
    } else {
        answer
    };
    t.insert("start", ms(t0.elapsed()));
    let c = TaskClient::new(Client::connect(&address).await.expect("dial"));
    // Connect only to learn the shim's pid (runc's shim writes no shim.pid); not timed.
    let connect = Instant::now();
    let shim_pid =
        c.connect(ctx(), &ConnectRequest { id: id.into(), ..Default::default() }).await.expect("Connect").shim_pid
            as i32;
    let untimed = connect.elapsed();
    let step = Instant::now();
    let create = CreateTaskRequest { id: id.into(), bundle: bundle.to_string_lossy().into(), ..Default::default() };
    c.create(ctx(), &create).await.expect("Create");
    t.insert("create", ms(step.elapsed()));
    let step = Instant::now();
    c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
    t.insert("start_rpc", ms(step.elapsed()));
    let step = Instant::now();
    let w = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
    assert_eq!(w.exit_status, 0, "/bin/true exited {}", w.exit_status);
    t.insert("wait", ms(step.elapsed()));
    let step = Instant::now();
    c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
    t.insert("delete", ms(step.elapsed()));
    let step = Instant::now();
    let _ = c.shutdown(ctx(), &ShutdownRequest { id: id.into(), ..Default::default() }).await;
    drop(c);
    reap_until(shim_pid);
    t.insert("shutdown", ms(step.elapsed()));
    t.insert("total", ms(t0.elapsed() - untimed));
    drop(log);
    let _ = std::fs::remove_dir_all(&bundle);
    t
}

/// Runs every hook of `spec` the way a runtime would (its args and env, a
/// state on stdin), one at a time; the total wall time in ms.
fn hooks_own_ms(spec: &serde_json::Value) -> Option<f64> {
    use std::io::Write;
    let hooks = spec.get("hooks")?.as_object()?;
    let t0 = Instant::now();
    for hook in hooks.values().filter_map(|v| v.as_array()).flatten() {
        let path = hook["path"].as_str().expect("hook path");
        let args: Vec<&str> =
            hook["args"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        let mut cmd = Command::new(path);
        if let Some((arg0, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, arg0).args(rest);
        }
        cmd.env_clear();
        for kv in hook["env"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn hook");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(br#"{"ociVersion":"1.0.2","id":"bench","status":"creating","bundle":"/"}"#);
        assert!(child.wait().expect("wait hook").success(), "hook {path} failed");
    }
    Some(ms(t0.elapsed()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut work, mut spec, mut runs, mut warmup, mut shims) = (None, None, 50usize, 5usize, Vec::new());
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("flag value");
        match a.as_str() {
            "--work" => work = Some(PathBuf::from(val())),
            "--spec" => spec = Some(PathBuf::from(val())),
            "--runs" => runs = val().parse().expect("runs"),
            "--warmup" => warmup = val().parse().expect("warmup"),
            s => {
                let (label, rest) = s.split_once('=').expect("LABEL=SHIM[,SPEC]");
                let (path, spec) = match rest.split_once(',') {
                    Some((path, spec)) => (path, Some(PathBuf::from(spec))),
                    None => (rest, None),
                };
                shims.push((label.to_string(), PathBuf::from(path), spec));
            }
        }
    }
    let work = work.expect("--work");
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("spec")
    };
    let spec = read(&spec.expect("--spec"));
    let shims: Vec<(String, PathBuf, serde_json::Value)> =
        shims.into_iter().map(|(l, p, s)| (l, p, s.map_or_else(|| spec.clone(), |s| read(&s)))).collect();
    std::fs::create_dir_all(&work).expect("work");
    nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async {
        let events = work.join("events.sock");
        let _ = std::fs::remove_file(&events);
        let mut server = Server::new()
            .bind(&format!("unix://{}", events.display()))
            .expect("bind events")
            .register_service(create_events(Arc::new(StandIn)));
        server.start().await.expect("events server");
        let mut samples: Samples = BTreeMap::new();
        let mut cpu: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut own: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for i in 0..warmup + runs {
            let order: Vec<_> = if i % 2 == 0 { shims.iter().collect() } else { shims.iter().rev().collect() };
            for (label, shim, spec) in order {
                let own_ms = hooks_own_ms(spec);
                let before = children_cpu_ms();
                let t = lifecycle(shim, &work, spec, &format!("{label}-{i}"), &events).await;
                if i < warmup {
                    continue;
                }
                if let Some(o) = own_ms {
                    own.entry(label.clone()).or_default().push(o);
                }
                cpu.entry(label.clone()).or_default().push(children_cpu_ms() - before);
                let per = samples.entry(label.clone()).or_default();
                for s in STEPS {
                    per.entry(s).or_default().push(t[s]);
                }
            }
        }
        serde_json::json!({"runs": runs, "samples_ms": samples, "cpu_ms": cpu, "hooks_own_ms": own})
    });
    println!("{result}");
}
