# Shared by demo.sh, test.sh and bench.sh: dependencies, the shim build, a
# private containerd with its own root/state/sockets, the local busybox image,
# and a teardown that removes only what these scripts made.
# shellcheck shell=bash

MYSHIM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MYSHIM_IMAGE_REF=${MYSHIM_IMAGE_REF:-localhost/busybox:latest}
RUNTIME=io.containerd.myshim.v2

say() { printf '==> %s\n' "$*" >&2; }

# Installs what is missing, once; apt-get update only when something is.
ensure_deps() {
    local missing=()
    command -v containerd >/dev/null || missing+=(containerd)
    command -v runc >/dev/null || missing+=(runc)
    [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || missing+=(busybox-static)
    command -v python3 >/dev/null || missing+=(python3)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v strace >/dev/null || missing+=(strace)
    # Seccomp filters are built by libseccomp (runc uses it too).
    [ -e /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
    fi
}

build_shim() {
    say "building the shim (release)"
    (cd "$MYSHIM_REPO" && cargo build --release --quiet)
    install -m 0755 "$MYSHIM_REPO/target/release/containerd-shim-myshim-v2" /usr/local/bin/containerd-shim-myshim-v2
}

# start_containerd DIR: containerd 1.6 with everything under DIR; the shim
# keeps its state under DIR/myshim (MYSHIM_ROOT reaches it through containerd).
start_containerd() {
    local dir=$1
    mkdir -p "$dir"
    local cri='disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    [ "${MYSHIM_CRI:-0}" = 1 ] && cri=''
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
$cri
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
TOML
    PATH=/usr/local/bin:$PATH MYSHIM_ROOT="$dir/myshim" \
        setsid containerd --config "$dir/config.toml" --log-level debug >"$dir/containerd.log" 2>&1 </dev/null &
    echo $! >"$dir/containerd.pid"
    export CTR_ADDR="$dir/containerd.sock" MYSHIM_ROOT="$dir/myshim"
    local i
    for i in $(seq 100); do
        ctr --address "$CTR_ADDR" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "containerd did not come up; its log:"; tail -20 "$dir/containerd.log" >&2
    return 1
}

myctr() { ctr --address "$CTR_ADDR" "$@"; }

# import_image NAMESPACE: the busybox image, built once per machine.
import_image() {
    local ns=$1 tar="$MYSHIM_REPO/target/busybox-oci.tar"
    if [ ! -s "$tar" ] || [ /bin/busybox -nt "$tar" ]; then
        mkdir -p "$MYSHIM_REPO/target"
        python3 "$MYSHIM_REPO/scripts/busybox-image.py" "$tar" "$MYSHIM_IMAGE_REF"
    fi
    myctr -n "$ns" images import "$tar" >/dev/null
}

# stop_containerd DIR: tasks killed, containerd stopped, our shims (their
# cmdline or state under DIR) gone, mounts under DIR unmounted, DIR removed,
# and the cgroup parents our test namespaces created, if empty.
stop_containerd() {
    local dir=$1 ns id pid
    [ -d "$dir" ] || return 0
    if [ -S "$dir/containerd.sock" ]; then
        for ns in $(ctr --address "$dir/containerd.sock" namespaces ls -q 2>/dev/null); do
            for id in $(ctr --address "$dir/containerd.sock" -n "$ns" task ls -q 2>/dev/null); do
                timeout 10 ctr --address "$dir/containerd.sock" -n "$ns" task kill -a -s KILL "$id" >/dev/null 2>&1
                timeout 10 ctr --address "$dir/containerd.sock" -n "$ns" task rm -f "$id" >/dev/null 2>&1
            done
            for id in $(ctr --address "$dir/containerd.sock" -n "$ns" containers ls -q 2>/dev/null); do
                timeout 10 ctr --address "$dir/containerd.sock" -n "$ns" containers rm "$id" >/dev/null 2>&1
            done
            for c in /sys/fs/cgroup/*/"$ns"; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
        done
    fi
    if [ -f "$dir/containerd.pid" ]; then
        pid=$(cat "$dir/containerd.pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    fi
    for pid in $(pgrep -f containerd-shim 2>/dev/null); do
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$dir" ||
            tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "MYSHIM_ROOT=$dir/myshim"; then
            kill -9 "$pid" 2>/dev/null
        fi
    done
    awk -v d="$dir" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    rm -rf "$dir"
}
