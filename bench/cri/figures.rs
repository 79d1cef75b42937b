//! What is timed and measured: pod start and pod lifecycle in rounds of
//! A B B A order, and the density figure's memory of N pods per handler.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pods::{Bench, Pod};
use crate::procfs::{rss_kib, shims, sum_memory, usage_bytes};
use crate::{say, us, Res, HANDLERS};

/// The density figures are read this long after the last CRI call, so both
/// handlers are seen in the same steady state (myshim trims itself once idle
/// for 200 ms).
const SETTLE: Duration = Duration::from_secs(1);

pub type Samples = BTreeMap<&'static str, BTreeMap<&'static str, Vec<u64>>>;

/// Round `i` in A B B A order: a slow spell of this shared machine lands on
/// both handlers alike.
fn order(i: usize) -> [&'static str; 2] {
    if i % 2 == 0 {
        HANDLERS
    } else {
        [HANDLERS[1], HANDLERS[0]]
    }
}

/// Step times of one timed sequence, in the order they ran.
pub struct Laps {
    t0: Instant,
    last: Instant,
    steps: Vec<(&'static str, u64)>,
}

impl Laps {
    pub fn start() -> Self {
        let now = Instant::now();
        Laps { t0: now, last: now, steps: Vec::new() }
    }

    pub fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, us(now - self.last)));
        self.last = now;
    }

    /// The steps and, as "total", the whole sequence.
    fn finish(mut self) -> Vec<(&'static str, u64)> {
        self.steps.push(("total", us(self.last - self.t0)));
        self.steps
    }
}

impl Bench {
    /// Figure 1: from just before RunPodSandbox to StartContainer's return.
    async fn pod_start(&mut self, handler: &'static str, i: usize) -> Res<Vec<(&'static str, u64)>> {
        let config = self.sandbox_config("start", handler, i)?;
        let mut laps = Laps::start();
        let (pod, _) = self.start_pod(config, handler, &["sleep", "100000"], &mut laps).await?;
        let laps = laps.finish();
        self.remove_pod(&pod).await?;
        Ok(laps)
    }

    /// Figure 2: a pod's whole lifecycle, `true` run to completion.
    async fn pod_lifecycle(&mut self, handler: &'static str, i: usize) -> Res<Vec<(&'static str, u64)>> {
        let config = self.sandbox_config("life", handler, i)?;
        let mut laps = Laps::start();
        let (pod, container) = self.start_pod(config, handler, &["true"], &mut laps).await?;
        self.wait_exited(&container).await?;
        laps.lap("wait_exit");
        self.stop_container(&container).await?;
        laps.lap("stop_container");
        self.remove_container(&container).await?;
        laps.lap("remove_container");
        self.stop_sandbox(&pod.id).await?;
        laps.lap("stop_pod_sandbox");
        self.remove_sandbox(&pod.id).await?;
        laps.lap("remove_pod_sandbox");
        let laps = laps.finish();
        self.after_pods(std::slice::from_ref(&pod)).await?;
        Ok(laps)
    }

    /// Warm-up then the runs of one figure, in A B B A order; every step's
    /// samples per handler.
    pub async fn rounds(&mut self, lifecycle: bool) -> Res<Samples> {
        let what = if lifecycle { "pod lifecycle" } else { "pod start" };
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let mut samples = Samples::new();
        for i in 0..warmup + runs {
            let mut line = format!("{what} {}/{}:", i + 1, warmup + runs);
            for handler in order(i) {
                let laps =
                    if lifecycle { self.pod_lifecycle(handler, i).await? } else { self.pod_start(handler, i).await? };
                let total = laps.last().map_or(0, |(_, t)| *t);
                line += &format!(" {handler} {:.1} ms", total as f64 / 1e3);
                if i < warmup {
                    continue;
                }
                for (step, t) in laps {
                    samples.entry(handler).or_default().entry(step).or_default().push(t);
                }
            }
            say(&format!("{line}{}", if i < warmup { " (warm-up)" } else { "" }));
        }
        Ok(samples)
    }

    /// Figure 3 for one handler: N sleeping pods up, the shims' memory 1 s
    /// after the last RPC, then every pod removed, whether or not the
    /// measurement worked.
    pub async fn density(&mut self, handler: &'static str) -> Res<Value> {
        let mut pods = Vec::new();
        let measured = self.density_measure(handler, &mut pods).await;
        let removed = self.remove_pods(&pods).await;
        let value = measured?;
        removed?;
        Ok(value)
    }

    async fn density_measure(&mut self, handler: &'static str, pods: &mut Vec<Pod>) -> Res<Value> {
        let n = self.args.density;
        let containerd_before = rss_kib(self.args.containerd_pid)?;
        let growth_before = self.args.charge_cgroup.as_deref().map(usage_bytes).transpose()?;
        let t0 = Instant::now();
        for i in 0..n {
            let config = self.sandbox_config("density", handler, i)?;
            let (pod, _) = self.start_pod(config, handler, &["sleep", "100000"], &mut Laps::start()).await?;
            pods.push(pod);
        }
        let last_rpc = Instant::now();
        let found = self.shims_serving(handler, pods)?;
        if found.len() != n {
            say(&format!("density {handler}: {} shims found for {n} pods", found.len()));
        }
        // The same delay after the last RPC for both handlers, whatever the
        // scan took.
        tokio::time::sleep_until((last_rpc + SETTLE).into()).await;
        let delay = last_rpc.elapsed();
        let sum = sum_memory(&found)?;
        let growth_after = self.args.charge_cgroup.as_deref().map(usage_bytes).transpose()?;
        let growth = growth_before.zip(growth_after).map(|(b, a)| a as i64 - b as i64);
        let containerd_after = rss_kib(self.args.containerd_pid)?;
        let took = last_rpc - t0;
        say(&format!(
            "density {handler}: {n} pods in {:.1} s, {} shims: Rss {} KiB, Pss {} KiB, Anonymous {} KiB",
            took.as_secs_f64(),
            found.len(),
            sum.rss,
            sum.pss,
            sum.anonymous
        ));
        Ok(json!({
            "pods": n,
            "shims": found.len(),
            "create_all_us": us(took),
            "read_after_last_rpc_us": us(delay),
            "shim_rss_kib": sum.rss,
            "shim_pss_kib": sum.pss,
            "shim_anonymous_kib": sum.anonymous,
            "shim_vm_pte_kib": sum.vm_pte,
            "charge_cgroup_growth_bytes": growth,
            "containerd_rss_kib_before": containerd_before,
            "containerd_rss_kib_after": containerd_after,
        }))
    }

    /// The pids of `handler`'s shims serving `pods` (found by /proc alone:
    /// asking containerd would be an RPC to every shim).
    fn shims_serving(&self, handler: &str, pods: &[Pod]) -> Res<Vec<i32>> {
        let ids: BTreeSet<&str> = pods.iter().map(|p| p.id.as_str()).collect();
        Ok(shims(&self.args.address)?
            .into_iter()
            .filter(|s| s.handler == handler && ids.contains(s.id.as_str()))
            .map(|s| s.pid)
            .collect())
    }
}
