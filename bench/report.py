#!/usr/bin/env python3
"""Turns the raw files of scripts/bench.sh into the table, results.json and the
plot. report.py RAW_DIR OUT_DIR QUICK (QUICK=1: fail if any figure is missing)."""
import datetime, json, os, platform, statistics, subprocess, sys

raw, out, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
RTS = ["myshim", "runc"]

def lines(name):
    p = os.path.join(raw, name)
    return [l.split() for l in open(p)] if os.path.exists(p) else []

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else None

def dist(xs):
    return {"median": statistics.median(xs), "p95": pct(xs, 0.95), "n": len(xs)} if xs else None

fig = {}
run = {r: [int(l[1]) / 1000 for l in lines("run.txt") if l[0] == r] for r in RTS}
fig["1_ctr_run_true_ms"] = {r: dist(run[r]) for r in RTS}
client = json.load(open(os.path.join(raw, "client.json")))
fig["2_shim_lifecycle_ms"] = {r: {step: dist(v) for step, v in client["samples_ms"].get(r, {}).items()} or None for r in RTS}
exe = {r: [int(l[1]) / 1000 for l in lines("exec.txt") if l[0] == r] for r in RTS}
fig["3_ctr_exec_true_ms"] = {r: dist(exe[r]) for r in RTS}
mem = {r: {} for r in RTS}
for r, n, rss, pss, anon, pte, charge in lines("mem.txt"):
    mem[r][int(n)] = {"rss_kib": int(rss), "pss_kib": int(pss), "anon_pte_kib": int(anon) + int(pte),
                      "charge_kib": None if charge == "-" else int(charge)}
fig["4_shim_memory_kib_per_shim"] = {r: mem[r] or None for r in RTS}
rounds = {r: [int(l[1]) / (int(l[2]) / 1e6) for l in lines("throughput.txt") if l[0] == r] for r in RTS}
fig["5_throughput_containers_per_s"] = {r: statistics.median(rounds[r]) if rounds[r] else None for r in RTS}
fig["5_throughput_rounds"] = rounds
def cpu_split(r):
    # Per container, over all rounds: the machine's busy CPU, ctr's, containerd's
    # own, and the rest (the runtime's: shims, runc or inits, the kernel's work).
    ls = [l for l in lines("throughput.txt") if l[0] == r and len(l) == 6]
    n = sum(int(l[1]) for l in ls)
    if not n:
        return None
    every, ctr, ctd = (sum(int(l[i]) for l in ls) / n for i in (3, 4, 5))
    return {"all": every, "ctr": ctr, "containerd": ctd, "runtime": every - ctr - ctd}
fig["5_cpu_ms_per_container"] = {r: cpu_split(r) for r in RTS}
# What no shim can beat: runc's CPU per container over what ctr and containerd
# alone spend per myshim container (the rounds are CPU-bound).
m, c = fig["5_cpu_ms_per_container"]["myshim"], fig["5_cpu_ms_per_container"]["runc"]
fig["5_throughput_ratio_ceiling"] = round(c["all"] / (m["ctr"] + m["containerd"]), 2) if m and c else None
fig["6_cpu_ms_per_lifecycle"] = {r: dist(client["cpu_ms"].get(r, [])) for r in RTS}
def hooks_fig(r):
    with_hooks = client["samples_ms"].get(r + "-hooks", {}).get("total", [])
    without = client["samples_ms"].get(r, {}).get("total", [])
    own = client.get("hooks_own_ms", {}).get(r + "-hooks", [])
    if not (with_hooks and without and own):
        return None
    added = statistics.median(with_hooks) - statistics.median(without)
    return {"total_with_hooks": dist(with_hooks), "added": added, "hooks_own": dist(own),
            "added_beyond_own": added - statistics.median(own)}
fig["7_lifecycle_with_6_true_hooks_ms"] = {r: hooks_fig(r) for r in RTS}

cri = json.load(open(os.path.join(raw, "cri.json"))) if os.path.exists(os.path.join(raw, "cri.json")) else {}
us_to_ms = lambda xs: [x / 1000 for x in xs]
fig["8_pod_start_ms"] = {r: dist(us_to_ms(cri.get("pod_start", {}).get("samples_us", {}).get(r, []))) for r in RTS}
fig["9_pod_lifecycle_ms"] = {r: dist(us_to_ms(cri.get("pod_lifecycle", {}).get("samples_us", {}).get(r, []))) for r in RTS}
def density(r):
    d = cri.get("density", {}).get(r)
    if not d or not d.get("shims"):
        return None
    n = d["shims"]
    growth = d.get("charge_cgroup_growth_bytes")
    return {"pods": d["pods"], "shims": n, "rss_kib": d["shim_rss_kib"] // n, "pss_kib": d["shim_pss_kib"] // n,
            "anon_pte_kib": (d["shim_anonymous_kib"] + d["shim_vm_pte_kib"]) // n,
            "charge_kib": None if growth is None else growth // 1024 // d["pods"],
            "containerd_rss_growth_kib": (d["containerd_rss_kib_after"] - d["containerd_rss_kib_before"]) // d["pods"]}
fig["10_pod_density_kib_per_pod"] = {r: density(r) for r in RTS}

def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None

rows = []
def row(name, a, b, unit):
    rows.append((name, a, b, ratio(a, b), unit))
g = lambda d, *ks: (lambda v: v)(__import__("functools").reduce(lambda x, k: x.get(k) if isinstance(x, dict) else None, ks, d))
for q in ("median", "p95"):
    row(f"1 ctr run --rm true ({q})", g(fig, "1_ctr_run_true_ms", "myshim", q), g(fig, "1_ctr_run_true_ms", "runc", q), "ms")
for step in ("start", "create", "start_rpc", "wait", "delete", "shutdown", "total"):
    for q in ("median", "p95"):
        row(f"2 shim {step} ({q})", g(fig, "2_shim_lifecycle_ms", "myshim", step, q), g(fig, "2_shim_lifecycle_ms", "runc", step, q), "ms")
for q in ("median", "p95"):
    row(f"3 ctr task exec true ({q})", g(fig, "3_ctr_exec_true_ms", "myshim", q), g(fig, "3_ctr_exec_true_ms", "runc", q), "ms")
MEM_ROWS = (("rss_kib", "RSS"), ("pss_kib", "PSS"), ("anon_pte_kib", "anonymous + page tables"), ("charge_kib", "memory cgroup charge"))
for n in sorted(set(mem["myshim"]) & set(mem["runc"])):
    for k, shown in MEM_ROWS:
        if k == "charge_kib" and mem["myshim"][n][k] is None:
            continue
        row(f"4 per shim, {n} running: {shown}", mem["myshim"][n][k], mem["runc"][n][k], "KiB")
row("5 throughput (median of rounds)", fig["5_throughput_containers_per_s"]["myshim"], fig["5_throughput_containers_per_s"]["runc"], "containers/s")
for k, shown in (("all", "all"), ("ctr", "ctr"), ("containerd", "containerd"), ("runtime", "the rest: shim, runtime, kernel")):
    row(f"5 CPU per container: {shown}", g(fig, "5_cpu_ms_per_container", "myshim", k), g(fig, "5_cpu_ms_per_container", "runc", k), "ms")
row("6 CPU per lifecycle (median)", g(fig, "6_cpu_ms_per_lifecycle", "myshim", "median"), g(fig, "6_cpu_ms_per_lifecycle", "runc", "median"), "ms")
row("7 lifecycle with 6 /bin/true hooks (median)", g(fig, "7_lifecycle_with_6_true_hooks_ms", "myshim", "total_with_hooks", "median"), g(fig, "7_lifecycle_with_6_true_hooks_ms", "runc", "total_with_hooks", "median"), "ms")
row("7 added by the hooks (median)", g(fig, "7_lifecycle_with_6_true_hooks_ms", "myshim", "added"), g(fig, "7_lifecycle_with_6_true_hooks_ms", "runc", "added"), "ms")
row("7 the hooks' own run time (median)", g(fig, "7_lifecycle_with_6_true_hooks_ms", "myshim", "hooks_own", "median"), g(fig, "7_lifecycle_with_6_true_hooks_ms", "runc", "hooks_own", "median"), "ms")

for q in ("median", "p95"):
    row(f"8 pod start: RunPodSandbox+CreateContainer+StartContainer ({q})", g(fig, "8_pod_start_ms", "myshim", q), g(fig, "8_pod_start_ms", "runc", q), "ms")
for q in ("median", "p95"):
    row(f"9 a pod's whole lifecycle ({q})", g(fig, "9_pod_lifecycle_ms", "myshim", q), g(fig, "9_pod_lifecycle_ms", "runc", q), "ms")
pods = g(fig, "10_pod_density_kib_per_pod", "myshim", "pods")
for k, shown in (("rss_kib", "shim RSS"), ("pss_kib", "shim PSS"), ("anon_pte_kib", "shim anonymous + page tables"),
                 ("charge_kib", "memory cgroup charge (shims + containerd)"), ("containerd_rss_growth_kib", "containerd's RSS growth")):
    row(f"10 per pod, {pods} pods: {shown}", g(fig, "10_pod_density_kib_per_pod", "myshim", k), g(fig, "10_pod_density_kib_per_pod", "runc", k), "KiB")
fmt = lambda v: "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
w = max(len(r[0]) for r in rows)
print(f"{'figure':<{w}}  {'myshim':>10}  {'runc-shim':>10}  {'ratio':>7}  unit")
for name, a, b, rt, unit in rows:
    print(f"{name:<{w}}  {fmt(a):>10}  {fmt(b):>10}  {fmt(rt):>7}  {unit}")

print(f"5: the throughput ratio's ceiling, a shim costing nothing: {fmt(fig['5_throughput_ratio_ceiling'])}"
      " (runc's CPU per container / ctr's + containerd's per myshim container)")

meta = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}",
    "containerd": subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.strip(),
    "runc": subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
    "quick": quick,
}
samples = {"ctr_run_ms": run, "ctr_exec_ms": exe, "shim_lifecycle_ms": client["samples_ms"], "cpu_ms": client["cpu_ms"],
           "cri": cri}
json.dump({"meta": meta, "figures": fig, "samples": samples, "table": [dict(zip(("figure", "myshim", "runc", "ratio", "unit"), r)) for r in rows]},
          open(os.path.join(out, "results.json"), "w"), indent=1)

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    f, ax = plt.subplots(1, 4, figsize=(18, 4.5))
    ax[0].boxplot([run["myshim"], run["runc"]], showfliers=False); ax[0].set_xticks([1, 2], ["myshim", "runc-shim"]); ax[0].set_title("1: ctr run --rm true (ms)")
    tot = [client["samples_ms"].get(r, {}).get("total", []) for r in RTS]
    ax[1].boxplot(tot, showfliers=False); ax[1].set_xticks([1, 2], ["myshim", "runc-shim"]); ax[1].set_title("2: shim lifecycle, no containerd (ms)")
    ax[2].boxplot([exe["myshim"] or [0], exe["runc"] or [0]], showfliers=False); ax[2].set_xticks([1, 2], ["myshim", "runc-shim"]); ax[2].set_title("3: ctr task exec true (ms)")
    one = [mem[r].get(1, {}).get("anon_pte_kib", 0) / 1024 for r in RTS]
    ax[3].bar(["myshim", "runc-shim"], one, color=["tab:green", "tab:gray"]); ax[3].set_title("4: shim anonymous + page tables (MiB)")
    f.suptitle(f"myshim vs containerd-shim-runc-v2 + runc — {meta['date']} — {meta['machine']} (boxes: p25-p75, whiskers 1.5 IQR, outliers not drawn)")
    f.tight_layout()
    f.savefig(os.path.join(out, "results.png"), dpi=90)
    png = True
except ImportError:
    png = False
    print("no matplotlib: plot not written", file=sys.stderr)

missing = [name for name, a, b, _, _ in rows if a is None or b is None]
if not png:
    missing.append("plot")
if quick and missing:
    print("bench --quick: missing figures: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
