//! The Kubernetes-level benchmark: the two runtime handlers scripts/common.sh
//! configures in containerd's CRI plugin (MYSHIM_CRI=1), `myshim` and `runc`,
//! driven through CRI exactly as integration/kubernetes.rs does (k8s-cri's
//! stubs over tonic on containerd's unix socket).
//!
//! bench-cri --address SOCK --containerd-pid PID [--runs 30] [--warmup 3] [--density 100]
//!           [--image REF] [--pause-image REF] [--work DIR] [--charge-cgroup DIR]
//!
//! 1. pod start: RunPodSandbox + CreateContainer + StartContainer of one
//!    `sleep 100000` container, timed to StartContainer's return;
//! 2. pod lifecycle: the same pod running `true`, ContainerStatus polled until
//!    it exited, then StopContainer, RemoveContainer, StopPodSandbox,
//!    RemovePodSandbox, timed end to end;
//!    both in rounds of A B B A order after warm-up, every sample kept (µs);
//! 3. density: N sleeping pods per handler, the memory of the shims serving
//!    them and containerd's RSS, read 1 s after the last RPC, and, given
//!    --charge-cgroup, the growth of the memory cgroup containerd runs in
//!    (its shims are born there), from before the first pod to that same
//!    moment. That is the only charge figure: a page's charge stays with the
//!    cgroup it was first charged to (cgroup v2 never moves it, and kernels
//!    from late 2024 on refuse v1's memory.move_charge_at_immigrate), so
//!    moving the shims into a cgroup of ours would not show it.
//!
//! One JSON document on stdout, progress on stderr. Every pod carries a label
//! with this run's pid, so whatever happens (an error, SIGINT, SIGTERM) the
//! pods this run made are listed and removed before it exits.
//!
//! main.rs: the command line, the run and its JSON document; pods.rs: pods
//! through CRI; figures.rs: what is timed and measured; procfs.rs: shims,
//! memory and cgroups as /proc and cgroupfs show them.

mod figures;
mod pods;
mod procfs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use figures::Samples;
use pods::Bench;

const HANDLERS: [&str; 2] = ["myshim", "runc"];

type Res<T> = Result<T, String>;

/// `?` with what was being done, for any displayable error.
trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

fn say(msg: &str) {
    eprintln!("bench-cri: {msg}");
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

struct Args {
    address: String,
    containerd_pid: i32,
    runs: usize,
    warmup: usize,
    density: usize,
    image: String,
    pause_image: String,
    /// The pods' log directories go in a directory of ours below it,
    /// removed at the end.
    logs: PathBuf,
    /// A memory cgroup containerd runs in, so every shim is born there.
    charge_cgroup: Option<PathBuf>,
}

const USAGE: &str = "usage: bench-cri --address SOCK --containerd-pid PID [--runs N] [--warmup W] [--density N] \
                     [--image REF] [--pause-image REF] [--work DIR] [--charge-cgroup DIR]";

fn parse_args() -> Res<Args> {
    // The images: scripts/common.sh's variables where the caller exported
    // them, else their defaults there.
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let mut a = Args {
        address: String::new(),
        containerd_pid: 0,
        runs: 30,
        warmup: 3,
        density: 100,
        image: env("MYSHIM_IMAGE_REF", "localhost/busybox:latest"),
        pause_image: env("MYSHIM_PAUSE_REF", "localhost/pause:latest"),
        logs: std::env::temp_dir(),
        charge_cgroup: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<usize>().ctx(|| format!("{flag} {v}"));
        match flag.as_str() {
            "--address" => a.address = val,
            "--containerd-pid" => a.containerd_pid = val.parse().ctx(|| format!("--containerd-pid {val}"))?,
            "--runs" => a.runs = num(&val)?,
            "--warmup" => a.warmup = num(&val)?,
            "--density" => a.density = num(&val)?,
            "--image" => a.image = val,
            "--pause-image" => a.pause_image = val,
            "--work" => a.logs = PathBuf::from(val),
            "--charge-cgroup" => a.charge_cgroup = Some(PathBuf::from(val)),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    a.logs = a.logs.join(format!("myshim-bench-cri-logs.{}", std::process::id()));
    if a.address.is_empty() || a.containerd_pid <= 0 {
        return Err(format!("--address and --containerd-pid are required\n{USAGE}"));
    }
    Ok(a)
}

fn check_containerd(args: &Args) -> Res<()> {
    let pid = args.containerd_pid;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ctx(|| format!("--containerd-pid {pid}"))?;
    if !exe.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("containerd")) {
        return Err(format!("--containerd-pid {pid} is {}, not containerd", exe.display()));
    }
    // The growth of a cgroup containerd is not in would not be its shims'.
    if let Some(dir) = &args.charge_cgroup {
        let procs = dir.join("cgroup.procs");
        let procs = std::fs::read_to_string(&procs).ctx(|| procs.display().to_string())?;
        if !procs.lines().any(|l| l.trim() == pid.to_string()) {
            return Err(format!("containerd ({pid}) is not in --charge-cgroup {}", dir.display()));
        }
    }
    Ok(())
}

/// The three figures, and the JSON document they make.
async fn measure(bench: &mut Bench) -> Res<Value> {
    bench.check_images().await?;
    let start = bench.rounds(false).await?;
    let life = bench.rounds(true).await?;
    let mut density = BTreeMap::new();
    for handler in HANDLERS {
        density.insert(handler, bench.density(handler).await?);
    }
    Ok(json!({
        "bench": "cri",
        "containerd_address": bench.args.address,
        "handlers": HANDLERS,
        "runs": bench.args.runs,
        "warmup": bench.args.warmup,
        "pod_network": "host",
        "pod_start": figure(&start),
        "pod_lifecycle": figure(&life),
        "status_poll_us": us(pods::STATUS_POLL),
        "density": density,
    }))
}

/// One figure's JSON: the totals per handler, and every step's samples.
fn figure(samples: &Samples) -> Value {
    let totals: BTreeMap<&str, &Vec<u64>> =
        samples.iter().filter_map(|(h, steps)| Some((*h, steps.get("total")?))).collect();
    let steps: BTreeMap<&str, BTreeMap<&str, &Vec<u64>>> = samples
        .iter()
        .map(|(h, steps)| (*h, steps.iter().filter(|(s, _)| **s != "total").map(|(s, v)| (*s, v)).collect()))
        .collect();
    json!({ "samples_us": totals, "steps_us": steps })
}

/// Resolves on SIGINT or SIGTERM, so the pods are removed before exiting.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run(args: Args) -> Res<Value> {
    check_containerd(&args)?;
    let mut bench = Bench::new(args).await?;
    let outcome = tokio::select! {
        r = measure(&mut bench) => r,
        s = interrupted() => Err(format!("interrupted by {s}")),
    };
    bench.cleanup().await;
    outcome
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        say(&e);
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(doc) => println!("{doc}"),
        Err(e) => {
            say(&e);
            std::process::exit(1)
        }
    }
}
