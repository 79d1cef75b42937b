# Shared by demo.sh, test.sh and bench.sh: dependencies, the shim build, a
# private containerd with its own root/state/sockets, the local busybox image,
# and a teardown that removes only what these scripts made.
# shellcheck shell=bash

MYSHIM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MYSHIM_IMAGE_REF=${MYSHIM_IMAGE_REF:-localhost/busybox:latest}
# A pod's sandbox image: the same busybox layer, sleeping.
MYSHIM_PAUSE_REF=${MYSHIM_PAUSE_REF:-localhost/pause:latest}
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
    # The v2 device filter (libcgroups' eBPF program): libbpf is built from
    # its vendored source and links libelf and zlib statically.
    [ -e /usr/include/libelf.h ] || missing+=(libelf-dev)
    [ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    # The Kubernetes tests: pod networking, and protoc for the CRI client.
    [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
    command -v protoc >/dev/null || missing+=(protobuf-compiler)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
    fi
}

# The installed shim is a static-pie: glibc and libseccomp linked in. Every
# container costs two loads of the binary (`start`, and the init's re-exec),
# and without the dynamic loader's work each is ~0.5 ms faster (measured:
# shim-level lifecycle 12.5 -> 10.9 ms). An explicit --target keeps the
# static flag off build scripts and proc-macros.
SHIM_TARGET=x86_64-unknown-linux-gnu
build_shim() {
    say "building the shim (release, static)"
    local seccomp_a
    seccomp_a=$(cc -print-file-name=libseccomp.a)
    (cd "$MYSHIM_REPO" && LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$(dirname "$seccomp_a")" \
        RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --quiet --target $SHIM_TARGET --bin containerd-shim-myshim-v2)
    install -m 0755 "$MYSHIM_REPO/target/$SHIM_TARGET/release/containerd-shim-myshim-v2" \
        /usr/local/bin/containerd-shim-myshim-v2
}

# The pod network of the Kubernetes tests: a bridge on a subnet that exists
# only here, no masquerade, no default route (the pods reach the bridge's
# address and nothing beyond).
CNI_BRIDGE=myshim-cni0
CNI_SUBNET=10.253.77.0/24

# start_containerd DIR: containerd 1.6 with everything under DIR; the shim
# keeps its state under DIR/myshim (MYSHIM_ROOT reaches it through containerd).
# With MYSHIM_CRI=1 the CRI plugin runs too, with a `myshim` runtime handler
# beside runc, the local pause image and the pod network above.
start_containerd() {
    local dir=$1
    mkdir -p "$dir"
    local cri='disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    if [ "${MYSHIM_CRI:-0}" = 1 ]; then
        cri=''
        mkdir -p "$dir/cni/net.d"
        cat >"$dir/cni/net.d/10-myshim.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "myshim-test", "plugins": [
  {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$CNI_SUBNET"}]], "dataDir": "$dir/cni/ipam"}}]}
JSON
        # The shim's own settings, as CRI passes them (runtimeoptions'
        # ConfigPath): one handler with a valid config, one with a typo.
        echo '{"hooks": {"strict": true}}' >"$dir/cni/myshim.json"
        echo '{"hooks": {"strikt": true}}' >"$dir/cni/myshim-bad.json"
    fi
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
    if [ "${MYSHIM_CRI:-0}" = 1 ]; then
        # restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and the
        # sandbox asks for -998 (runc fails without it too).
        cat >>"$dir/config.toml" <<TOML
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$MYSHIM_PAUSE_REF"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.myshim]
      runtime_type = "$RUNTIME"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.myshim.options]
        ConfigPath = "$dir/cni/myshim.json"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.myshim-bad-config]
      runtime_type = "$RUNTIME"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.myshim-bad-config.options]
        ConfigPath = "$dir/cni/myshim-bad.json"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
    fi
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

# import_image NAMESPACE [REF CMD_JSON]: the busybox image (or another
# image of the same layer with its own command), built once per machine.
import_image() {
    local ns=$1 ref=${2:-$MYSHIM_IMAGE_REF} cmd=${3:-'["sh"]'}
    local tar="$MYSHIM_REPO/target/$(printf '%s' "$ref" | tr -c 'a-zA-Z0-9' _)-oci.tar"
    if [ ! -s "$tar" ] || [ /bin/busybox -nt "$tar" ] || [ "$MYSHIM_REPO/scripts/busybox-image.py" -nt "$tar" ]; then
        mkdir -p "$MYSHIM_REPO/target"
        python3 "$MYSHIM_REPO/scripts/busybox-image.py" "$tar" "$ref" "$cmd"
    fi
    myctr -n "$ns" images import "$tar" >/dev/null
}

# import_k8s_images: the test image and the pause image into CRI's namespace.
import_k8s_images() {
    import_image k8s.io
    import_image k8s.io "$MYSHIM_PAUSE_REF" '["sleep", "2147483647"]'
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
            for c in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
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
    # The pods' cgroup parents the Kubernetes tests made, innermost first.
    find /sys/fs/cgroup/*/myshim-k8s /sys/fs/cgroup/myshim-k8s -depth -type d -exec rmdir {} + 2>/dev/null
    if [ -f "$dir/cni/net.d/10-myshim.conflist" ]; then
        ip link del "$CNI_BRIDGE" 2>/dev/null
    fi
    rm -rf "$dir"
}
