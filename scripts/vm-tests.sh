#!/usr/bin/env bash
# The cgroup v2 + systemd stage, run inside the VM of scripts/vm.sh (as
# `scripts/vm.sh run -- bash scripts/vm-tests.sh BINARY FILTER...`): the
# shim the host built, a private containerd 1.6.20 with its CRI plugin,
# the integration test binary the host built, the tests FILTER selects,
# then the leak check. Fails loudly when the host is not what it is for.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$MYSHIM_REPO"

[ -f /sys/fs/cgroup/cgroup.controllers ] || { say "not a cgroup v2 host"; exit 1; }
[ -d /run/systemd/system ] || { say "systemd is not running"; exit 1; }
bin=$1
shift
install -m 0755 "target/$SHIM_TARGET/release/containerd-shim-myshim-v2" /usr/local/bin/containerd-shim-myshim-v2
say "VM: $(uname -r), systemd $(systemctl --version | awk 'NR == 1 {print $2}'), $(containerd --version | awk '{print $3}'), cgroup v2: $(cat /sys/fs/cgroup/cgroup.controllers)"

DIR=$(mktemp -d /tmp/myshim-test.XXXXXX)
trap 'stop_containerd "$DIR" || true' EXIT
MYSHIM_CRI=1 start_containerd "$DIR"
import_image myshim-test
import_k8s_images

say "VM: integration tests: $*"
MYSHIM_TEST_CTR="$CTR_ADDR" MYSHIM_TEST_IMAGE="$MYSHIM_IMAGE_REF" MYSHIM_TEST_DIR="$DIR" \
    MYSHIM_TEST_SHIM=/usr/local/bin/containerd-shim-myshim-v2 \
    "$bin" --test-threads=2 "$@"

say "VM: leak check"
leaks=0
for pid in $(pgrep -f containerd-shim-myshim-v2 || true); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "MYSHIM_ROOT=$DIR/myshim"; then
        echo "leaked shim: $pid"; leaks=1
    fi
done
if find /sys/fs/cgroup/myshim-test -mindepth 1 -type d 2>/dev/null | grep -q .; then
    echo "leaked cgroups:"; find /sys/fs/cgroup/myshim-test -mindepth 1 -type d; leaks=1
fi
if systemctl list-units --all --plain --no-legend 'myshim-*.scope' 'cri-containerd-*.scope' | grep -q .; then
    echo "leaked scopes:"; systemctl list-units --all --plain --no-legend 'myshim-*.scope' 'cri-containerd-*.scope'; leaks=1
fi
[ "$leaks" = 0 ] || { echo "VM leak check: FAILED"; exit 1; }
echo "VM leak check: ok"
