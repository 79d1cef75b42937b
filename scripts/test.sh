#!/usr/bin/env bash
# All tests: format, lints, unit tests, then the integration tests against a
# private containerd 1.6 this script starts and removes again.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$MYSHIM_REPO"

ensure_deps
# What the VM stage runs (libtest filters): everything that holds on any
# host, with the v2 module; not the v1-only files (update's v1 figures,
# isolation's v1 memory files), the runc comparisons already made on v1, nor
# the soak (TCG makes it ~15x slower), nor the one test that types into a
# terminal on a timer (its sleeps assume native speed).
VM_TESTS="cgroup_v2:: lifecycle:: exec:: terminal:: pause:: events:: hooks:: shim_death:: cgroup_ownership::
    privileged:: kubernetes:: runc_shim_parity:: init_exe:: early_init:: output:: stdio_uris:: rootfs_mounts:: checkpoint:: --skip terminal::ctr_run_and_exec_with_a_terminal_under_script"
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
say "unit tests"
cargo test --quiet --lib --bins
build_shim

DIR=$(mktemp -d /tmp/myshim-test.XXXXXX)
trap 'stop_containerd "$DIR" || true' EXIT
MYSHIM_CRI=1 start_containerd "$DIR"
import_image myshim-test
import_k8s_images

say "integration tests against $(containerd --version | awk '{print $3}')"
MYSHIM_TEST_CTR="$CTR_ADDR" MYSHIM_TEST_IMAGE="$MYSHIM_IMAGE_REF" MYSHIM_TEST_DIR="$DIR" \
    MYSHIM_TEST_SHIM=/usr/local/bin/containerd-shim-myshim-v2 \
    cargo test --quiet --test integration -- --test-threads=4 --skip cgroup_v2:: --skip checkpoint::criu_

say "leak check"
leaks=0
if pgrep -f containerd-shim-myshim-v2 >/dev/null; then
    for pid in $(pgrep -f containerd-shim-myshim-v2); do
        if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "MYSHIM_ROOT=$DIR/myshim"; then
            echo "leaked shim: $pid $(tr '\0' ' ' </proc/$pid/cmdline)"; leaks=1
        fi
    done
fi
if awk -v d="$DIR/root" 'index($5, d) == 1' /proc/self/mountinfo | grep -q .; then
    echo "leaked mounts:"; awk -v d="$DIR/root" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo; leaks=1
fi
# Pods' cgroups (myshim-k8s/burstable/pod*) are the Kubernetes tests' to
# remove, as kubelet's; containers' below them the runtimes'.
cgroup_leaks() {
    find /sys/fs/cgroup/*/myshim-test -mindepth 1 -maxdepth 1 -type d 2>/dev/null
    find /sys/fs/cgroup/*/myshim-k8s -mindepth 2 -type d 2>/dev/null
}
if cgroup_leaks | grep -q .; then
    echo "leaked cgroups:"; cgroup_leaks; leaks=1
fi
if find "$DIR/myshim" -mindepth 3 -maxdepth 3 -type d 2>/dev/null | grep -q .; then
    echo "leaked state:"; find "$DIR/myshim" -mindepth 3 -maxdepth 3 -type d; leaks=1
fi
[ "$leaks" = 0 ] || { echo "leak check: FAILED"; exit 1; }
echo "leak check: ok"

# The hosts people run: cgroup v2 with systemd, in the VM of scripts/vm.sh
# (booted without a network device; TCG here, so each container is ~15x
# slower than on the machine). The same shim and test binary; the tests
# that hold on any host, the v2 module, CRI pods on cgroupfs and systemd
# parents. A VM that does not boot fails the run.
say "cgroup v2 + systemd stage (scripts/vm.sh)"
integration_bin=$(cargo test --no-run --quiet --test integration --message-format=json 2>/dev/null |
    python3 -c 'import sys, json
for m in map(json.loads, sys.stdin):
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "integration":
        print(m["executable"])')
[ -x "$integration_bin" ] || { echo "no integration test binary"; exit 1; }
# The hooks' probe, built here: the VM has no rustc.
probe=$MYSHIM_REPO/target/hook-probe
rustc --edition 2021 -O -C target-feature=+crt-static -C debuginfo=0 -o "$probe" integration/probe/hook_probe.rs
bash "$MYSHIM_REPO/scripts/vm.sh" run -- MYSHIM_TEST_HOOK_PROBE="$probe" bash scripts/vm-tests.sh "$integration_bin" $VM_TESTS

say "fuzzing (scripts/fuzz.sh: each target ${FUZZ_SECONDS:-60} s)"
bash "$MYSHIM_REPO/scripts/fuzz.sh"

say "benchmark smoke run (scripts/bench.sh --quick: every figure produced, no timing asserted)"
bash "$MYSHIM_REPO/scripts/bench.sh" --quick </dev/null
