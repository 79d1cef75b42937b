#!/usr/bin/env bash
# Side-by-side benchmark: myshim vs containerd-shim-runc-v2 + runc on the same
# containerd, the same image, interleaved after warm-up. Prints a table with
# ratios and writes bench/results.json and bench/results.png
# (bench/out/ with --quick, which only checks that every figure is produced).
# With --vm the same figures are taken on the cgroup v2 + systemd host of
# scripts/vm.sh (fewer runs: TCG makes each container ~15x slower), into
# bench/vm/; only the ratios mean anything there.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$MYSHIM_REPO"

QUICK=0 VM=0
case "${1:-}" in --quick) QUICK=1 ;; --vm) VM=1 ;; esac
if [ "$VM" = 1 ] && [ -z "${MYSHIM_BENCH_IN_VM:-}" ]; then
    ensure_deps
    build_shim
    cargo build --release --quiet --example bench-client --example bench-cri
    exec bash scripts/vm.sh run -- MYSHIM_BENCH_IN_VM=1 bash scripts/bench.sh --vm
fi
if [ "$QUICK" = 1 ]; then RUNS=3 WARM=1 MEM_NS="1 3" THR=10 PAR=5 THR_ROUNDS=1 PODS=3 POD_RUNS=3 OUTDIR=bench/out
elif [ "$VM" = 1 ]; then RUNS=10 WARM=2 MEM_NS="1 5" THR=20 PAR=5 THR_ROUNDS=2 PODS=5 POD_RUNS=5 OUTDIR=bench/vm
else RUNS=${RUNS:-50} WARM=${WARM:-5} MEM_NS="1 20 100" THR=100 PAR=10 THR_ROUNDS=4 PODS=100 POD_RUNS=30 OUTDIR=bench; fi
mkdir -p "$OUTDIR" bench/out
RAW=$(mktemp -d /tmp/myshim-bench-raw.XXXXXX)

if [ -n "${MYSHIM_BENCH_IN_VM:-}" ]; then
    # Inside the VM: what the host built, shared at the same path.
    install -m 0755 "target/$SHIM_TARGET/release/containerd-shim-myshim-v2" /usr/local/bin/containerd-shim-myshim-v2
else
    ensure_deps
    python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet --disable-pip-version-check matplotlib </dev/null
    build_shim
    cargo build --release --quiet --example bench-client --example bench-cri
fi
DIR=$(mktemp -d /tmp/myshim-bench.XXXXXX)
# containerd (and so every shim it starts) in a memory cgroup of the bench's:
# figure 4 reads its charge. Not under the namespace's name, which the
# containers' own cgroups take.
if [ -f /sys/fs/cgroup/memory/memory.usage_in_bytes ]; then CHARGE_CG=/sys/fs/cgroup/memory/myshim-bench-containerd
else CHARGE_CG=/sys/fs/cgroup/myshim-bench-containerd; fi
cleanup() {
    stop_containerd "$DIR" || true
    rm -rf "$RAW"
    for _ in $(seq 50); do [ -d "$CHARGE_CG" ] || break; rmdir "$CHARGE_CG" 2>/dev/null || sleep 0.1; done
    # The pods' cgroup parents of figures 8-10, if bench-cri was killed.
    find /sys/fs/cgroup/*/myshim-bench-cri /sys/fs/cgroup/myshim-bench-cri -depth -type d -exec rmdir {} + 2>/dev/null || true
    return 0
}
trap cleanup EXIT
# With the CRI plugin (figures 8-10); the others go through ctr as before.
MYSHIM_CRI=1 start_containerd "$DIR"
mkdir -p "$CHARGE_CG"
echo "$(cat "$DIR/containerd.pid")" >"$CHARGE_CG/cgroup.procs"
NS=myshim-bench
import_image "$NS"
import_k8s_images
C() { ctr --address "$CTR_ADDR" -n "$NS" "$@"; }
IMG=$MYSHIM_IMAGE_REF
declare -A RT=([myshim]=io.containerd.myshim.v2 [runc]=io.containerd.runc.v2)
now() { date +%s%N; }

# Every figure interleaves the runtimes in A B B A order (round i odd:
# myshim first; even: runc first), so neither always runs second, after the
# other has warmed or dirtied the machine.
order() { if [ $(($1 % 2)) = 1 ]; then echo myshim runc; else echo runc myshim; fi; }

say "figure 1: ctr run --rm /bin/true ($RUNS runs each, interleaved A B B A, $WARM warm-up)"
for i in $(seq 1 $((WARM + RUNS))); do
    for r in $(order "$i"); do
        t0=$(now)
        C run --rm --runtime "${RT[$r]}" "$IMG" "run-$r-$i" /bin/true </dev/null
        t1=$(now)
        [ "$i" -gt "$WARM" ] && echo "$r $(( (t1 - t0) / 1000 ))" >>"$RAW/run.txt"
    done
done

say "figures 2 and 7: shim-level lifecycle over ttrpc (bench-client), without and with hooks"
ROOTFS="$DIR/bench-rootfs"
mkdir -p "$ROOTFS"/{bin,proc,sys,dev,etc,tmp}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
C oci spec | python3 -c '
import json, sys
s = json.load(sys.stdin)
s["root"] = {"path": sys.argv[1], "readonly": False}
s["process"]["args"] = ["/bin/true"]
s["process"]["terminal"] = False
json.dump(s, open(sys.argv[2], "w"))
# Figure 7: the same with one /bin/true hook of each of the six kinds.
s["hooks"] = {k: [{"path": "/bin/true", "args": ["true", k]}] for k in
              ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")}
json.dump(s, open(sys.argv[3], "w"))' "$ROOTFS" "$DIR/bench-spec.json" "$DIR/bench-spec-hooks.json"
MYSHIM=/usr/local/bin/containerd-shim-myshim-v2 RUNC=/usr/bin/containerd-shim-runc-v2
PATH=/usr/sbin:/usr/bin:$PATH target/release/examples/bench-client --work "$DIR/client" --spec "$DIR/bench-spec.json" \
    --runs "$RUNS" --warmup "$WARM" myshim=$MYSHIM runc=$RUNC \
    myshim-hooks=$MYSHIM,"$DIR/bench-spec-hooks.json" runc-hooks=$RUNC,"$DIR/bench-spec-hooks.json" \
    >"$RAW/client.json"
for c in /sys/fs/cgroup/*/myshim-bench /sys/fs/cgroup/myshim-bench; do [ -d "$c" ] && rmdir "$c" 2>/dev/null || true; done

say "figure 3: ctr task exec /bin/true ($RUNS runs each, interleaved A B B A)"
for r in myshim runc; do C run -d --runtime "${RT[$r]}" "$IMG" "exec-$r" sleep 100000 </dev/null >/dev/null; done
for i in $(seq 1 $((WARM + RUNS))); do
    for r in $(order "$i"); do
        t0=$(now)
        if C task exec --exec-id "e$i" "exec-$r" /bin/true </dev/null >/dev/null 2>"$RAW/exec-$r.err"; then
            t1=$(now)
            [ "$i" -gt "$WARM" ] && echo "$r $(( (t1 - t0) / 1000 ))" >>"$RAW/exec.txt"
        fi
    done
done

# Figure 4: what a node pays per shim. Both runtimes' shims are read at the
# same moment, 1 s after the last RPC to any of them (`task ls` asks every
# shim for its state): RSS and PSS, and anonymous memory plus page tables
# (what no other process shares). And the memory cgroup's charge: containerd
# runs in a cgroup of the bench's (CHARGE_CG), so every shim is born there;
# each batch of one runtime's containers is charged as the growth of that
# cgroup from just before the batch to 1 s after its last RPC, divided by
# the shims (containerd's own per-task bookkeeping is in it, alike for both;
# kernels since 6.x move no charges, so this is the one way both v1 and v2
# count the same). Nothing else is shared between shims: the inits run from
# a read-only view of the shim's binary (no copy).
charge_now() { # bytes charged to CHARGE_CG
    cat "$CHARGE_CG/memory.usage_in_bytes" 2>/dev/null || cat "$CHARGE_CG/memory.current"
}
shim_pids() { # runtime -> the pids of the shims of its mem-* containers
    C task ls | awk -v p="mem-$1-" 'index($1, p) == 1 {print $2}' | while read -r pid; do
        awk '{print $4}' "/proc/$pid/stat"
    done
}
mem_of() { # pid -> "rss pss anon pte" in KiB
    { cat "/proc/$1/smaps_rollup"; grep VmPTE "/proc/$1/status"; } |
        awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Anonymous:/ {a=$2} /^VmPTE:/ {t=$2} END {print r, p, a, t}'
}
say "figure 4: shim memory with $MEM_NS sleeping containers per runtime, read 1 s after the last RPC"
have=0 step=0
declare -A CHARGED=([myshim]=0 [runc]=0)
for n in $MEM_NS; do
    step=$((step + 1))
    for r in $(order "$step"); do
        before=$(charge_now)
        for i in $(seq $((have + 1)) "$n"); do
            C run -d --runtime "${RT[$r]}" "$IMG" "mem-$r-$i" sleep 100000 </dev/null >/dev/null
        done
        C task ls >/dev/null
        sleep 1
        CHARGED[$r]=$((CHARGED[$r] + $(charge_now) - before))
    done
    have=$n
    declare -A PIDS=()
    for r in myshim runc; do PIDS[$r]=$(shim_pids "$r"); done
    sleep 1
    for r in myshim runc; do
        set -- ${PIDS[$r]}
        [ "$#" = "$n" ] || { say "figure 4: $r has $# shims for $n containers"; exit 1; }
        tot_r=0 tot_p=0 tot_a=0 tot_t=0
        for pid in "$@"; do
            read -r rr pp aa tt <<<"$(mem_of "$pid")"
            tot_r=$((tot_r + rr)) tot_p=$((tot_p + pp)) tot_a=$((tot_a + aa)) tot_t=$((tot_t + tt))
        done
        echo "$r $n $((tot_r / n)) $((tot_p / n)) $((tot_a / n)) $((tot_t / n)) $((CHARGED[$r] / 1024 / n))" >>"$RAW/mem.txt"
    done
done
for r in myshim runc; do
    for i in $(seq 1 "$have"); do C task kill -s KILL "mem-$r-$i" >/dev/null 2>&1 || true; done
done
for id in $(seq -f "mem-myshim-%g" 1 "$have") $(seq -f "mem-runc-%g" 1 "$have") exec-myshim exec-runc; do
    C task kill -s KILL "$id" >/dev/null 2>&1 || true
    for _ in $(seq 50); do C task rm "$id" >/dev/null 2>&1 && break; sleep 0.1; done
    C container rm "$id" >/dev/null 2>&1 || true
done

# Several rounds, in A B B A order, so a slow spell of this shared VM does
# not land on one runtime only; the report takes each runtime's median.
say "figure 5: throughput, $THR containers run to completion, $PAR in flight, $THR_ROUNDS round(s)"
# Where the CPU goes: the round is CPU-bound (2 cores busy throughout), so
# beside the wall time each round records the machine's busy CPU time and
# the share of the two parts no runtime changes: the ctr processes (the
# subshell's children, from `times`) and containerd itself (its own
# utime+stime). The rest is the runtime's: shims, runc or inits, the kernel.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK) CTD_PID=$(cat "$DIR/containerd.pid")
for round in $(seq 1 "$THR_ROUNDS"); do
    for r in $(order "$round"); do
        b0=$(busy_ticks) c0=$(own_ticks "$CTD_PID") t0=$(now)
        ctr_cpu=$(
            seq 1 "$THR" | xargs -P "$PAR" -I{} ctr --address "$CTR_ADDR" -n "$NS" run --rm --runtime "${RT[$r]}" "$IMG" "thr-$r-$round-{}" /bin/true >&2
            times >"$RAW/times" # not in a pipe: a forked `times` has no children
            awk 'NR == 2 {gsub(/[ms]/, " "); print int(($1 * 60 + $2 + $3 * 60 + $4) * 1000)}' "$RAW/times"
        )
        t1=$(now) b1=$(busy_ticks) c1=$(own_ticks "$CTD_PID")
        echo "$r $THR $(( (t1 - t0) / 1000 )) $(( (b1 - b0) * 1000 / HZ )) $ctr_cpu $(( (c1 - c0) * 1000 / HZ ))" >>"$RAW/throughput.txt"
    done
done

# Pods through containerd's CRI plugin, as kubelet drives it (host network:
# no CNI plugin runs, so only the runtimes differ), both handlers in A B B A
# order; the density figure's shims are born in CHARGE_CG like figure 4's.
say "figures 8-10: pods through CRI: start latency, a whole pod's lifecycle ($POD_RUNS runs each), $PODS pods' memory"
target/release/examples/bench-cri --address "$CTR_ADDR" --containerd-pid "$(cat "$DIR/containerd.pid")" \
    --runs "$POD_RUNS" --warmup "$WARM" --density "$PODS" --charge-cgroup "$CHARGE_CG" --work "$DIR" >"$RAW/cri.json"

python3 bench/report.py "$RAW" "$OUTDIR" "$QUICK"
