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
    cargo build --release --quiet --example bench-client
    exec bash scripts/vm.sh run -- MYSHIM_BENCH_IN_VM=1 bash scripts/bench.sh --vm
fi
if [ "$QUICK" = 1 ]; then RUNS=3 WARM=1 MEMN=3 THR=10 PAR=5 THR_ROUNDS=1 OUTDIR=bench/out
elif [ "$VM" = 1 ]; then RUNS=10 WARM=2 MEMN=5 THR=20 PAR=5 THR_ROUNDS=2 OUTDIR=bench/vm
else RUNS=${RUNS:-50} WARM=${WARM:-5} MEMN=20 THR=100 PAR=10 THR_ROUNDS=4 OUTDIR=bench; fi
mkdir -p "$OUTDIR" bench/out
RAW=$(mktemp -d /tmp/myshim-bench-raw.XXXXXX)

if [ -n "${MYSHIM_BENCH_IN_VM:-}" ]; then
    # Inside the VM: what the host built, shared at the same path.
    install -m 0755 "target/$SHIM_TARGET/release/containerd-shim-myshim-v2" /usr/local/bin/containerd-shim-myshim-v2
else
    ensure_deps
    python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet --disable-pip-version-check matplotlib </dev/null
    build_shim
    cargo build --release --quiet --example bench-client
fi
DIR=$(mktemp -d /tmp/myshim-bench.XXXXXX)
trap 'stop_containerd "$DIR" || true; rm -rf "$RAW"' EXIT
start_containerd "$DIR"
NS=myshim-bench
import_image "$NS"
C() { ctr --address "$CTR_ADDR" -n "$NS" "$@"; }
IMG=$MYSHIM_IMAGE_REF
declare -A RT=([myshim]=io.containerd.myshim.v2 [runc]=io.containerd.runc.v2)
now() { date +%s%N; }

say "figure 1: ctr run --rm /bin/true ($RUNS runs each, interleaved, $WARM warm-up)"
for i in $(seq 1 $((WARM + RUNS))); do
    for r in myshim runc; do
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

say "figure 3: ctr task exec /bin/true ($RUNS runs each, interleaved)"
for r in myshim runc; do C run -d --runtime "${RT[$r]}" "$IMG" "exec-$r" sleep 100000 </dev/null >/dev/null; done
for i in $(seq 1 $((WARM + RUNS))); do
    for r in myshim runc; do
        t0=$(now)
        if C task exec --exec-id "e$i" "exec-$r" /bin/true </dev/null >/dev/null 2>"$RAW/exec-$r.err"; then
            t1=$(now)
            [ "$i" -gt "$WARM" ] && echo "$r $(( (t1 - t0) / 1000 ))" >>"$RAW/exec.txt"
        fi
    done
done

shim_of() { # task id -> its shim's pid (the parent of the task's init)
    awk '{print $4}' "/proc/$(C task ls | awk -v id="$1" '$1 == id {print $2}')/stat"
}
mem_of() { # pid -> "rss_kib pss_kib"
    awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' "/proc/$1/smaps_rollup"
}
say "figure 4: shim memory, 1 and $MEMN sleeping containers (steady state: 1 s after the last RPC)"
# shim_of asks containerd (`task ls`: a State RPC to every shim), so the pids
# are looked up first and the memory read a second after that RPC.
for r in myshim runc; do
    first=$(shim_of "exec-$r")
    sleep 1
    echo "$r 1 $(mem_of "$first")" >>"$RAW/mem.txt"
    for i in $(seq 2 "$MEMN"); do C run -d --runtime "${RT[$r]}" "$IMG" "mem-$r-$i" sleep 100000 </dev/null >/dev/null; done
    pids=()
    for id in "exec-$r" $(seq -f "mem-$r-%g" 2 "$MEMN"); do pids+=("$(shim_of "$id")"); done
    sleep 1
    tot_r=0 tot_p=0
    for pid in "${pids[@]}"; do
        read -r rr pp <<<"$(mem_of "$pid")"
        tot_r=$((tot_r + rr)) tot_p=$((tot_p + pp))
    done
    echo "$r $MEMN $((tot_r / MEMN)) $((tot_p / MEMN))" >>"$RAW/mem.txt"
    for id in "exec-$r" $(seq -f "mem-$r-%g" 2 "$MEMN"); do
        C task kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    for id in "exec-$r" $(seq -f "mem-$r-%g" 2 "$MEMN"); do
        for _ in $(seq 50); do C task rm "$id" >/dev/null 2>&1 && break; sleep 0.1; done
        C container rm "$id" >/dev/null 2>&1 || true
    done
done

# Several rounds, in A B B A order, so a slow spell of this shared VM does
# not land on one runtime only; the report takes each runtime's median.
say "figure 5: throughput, $THR containers run to completion, $PAR in flight, $THR_ROUNDS round(s)"
for round in $(seq 1 "$THR_ROUNDS"); do
    order="myshim runc"
    [ $((round % 2)) = 0 ] && order="runc myshim"
    for r in $order; do
        t0=$(now)
        seq 1 "$THR" | xargs -P "$PAR" -I{} ctr --address "$CTR_ADDR" -n "$NS" run --rm --runtime "${RT[$r]}" "$IMG" "thr-$r-$round-{}" /bin/true
        t1=$(now)
        echo "$r $THR $(( (t1 - t0) / 1000 ))" >>"$RAW/throughput.txt"
    done
done

python3 bench/report.py "$RAW" "$OUTDIR" "$QUICK"
