#!/usr/bin/env bash
# The cgroup v2 + systemd test host: a Debian bookworm VM with Debian's
# kernel, systemd as pid 1, the unified cgroup hierarchy, containerd 1.6.20,
# runc and the CNI plugins, all from Debian packages (mmdebstrap with this
# machine's own apt sources). Test infrastructure, not product.
#
#   scripts/vm.sh image            build the image (cached outside the work
#                                  tree, rebuilt when this recipe changes)
#   scripts/vm.sh run -- CMD ...   boot it (KVM where it works, else TCG; no
#                                  network device), run CMD as root in the
#                                  repository's own path (shared over 9p at the
#                                  same path), stream its output, power off,
#                                  and exit with CMD's status
#
# Each run boots the image with snapshot=on: nothing a run writes persists.
set -euo pipefail
source "$(dirname "$0")/common.sh"

CACHE=${MYSHIM_VM_CACHE:-/var/cache/myshim-vm}
VM_MEM=${MYSHIM_VM_MEM:-4096}
VM_TIMEOUT=${MYSHIM_VM_TIMEOUT:-2400}

# What the VM holds besides a minimal Debian: the test host's stack, and
# criu and iptables for checkpoint/restore.
PACKAGES=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,initramfs-tools,containerd,runc,containernetworking-plugins,busybox-static,iproute2,procps,util-linux,python3,strace,criu,iptables,e2fsprogs

# qemu-system-x86 from Debian, unpacked into the cache: installing it with
# apt would remove this machine's newer (backported) qemu-utils. Its
# libraries install normally.
QEMU_ROOT=$CACHE/qemu
qemu_bin() {
    if command -v qemu-system-x86_64 >/dev/null; then
        command -v qemu-system-x86_64
    else
        echo "$QEMU_ROOT/usr/bin/qemu-system-x86_64"
    fi
}

apt_updated=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq </dev/null
        apt_updated=1
    fi
    apt-get install -y -qq "$@" </dev/null >/dev/null
}

ensure_tools() {
    local missing=()
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
    [ -e /usr/share/seabios/bios-256k.bin ] || missing+=(seabios)
    [ ${#missing[@]} -eq 0 ] || { say "installing ${missing[*]}"; apt_install "${missing[@]}"; }
    [ -x "$(qemu_bin)" ] && return 0
    say "unpacking Debian's qemu-system-x86 into $QEMU_ROOT"
    local debs=$CACHE/debs pkgs=(qemu-system-x86 qemu-system-common qemu-system-data)
    local libs
    [ "$apt_updated" = 1 ] || { apt-get update -qq </dev/null; apt_updated=1; }
    libs=$(apt-cache depends "${pkgs[@]}" | awk '$1 == "Depends:" {print $2}' | grep -v -e '^qemu-' -e '^<' -e '^ipxe-qemu$' | sort -u)
    # shellcheck disable=SC2086
    apt_install $libs
    rm -rf "$debs" "$QEMU_ROOT.tmp"
    mkdir -p "$debs" "$QEMU_ROOT.tmp"
    (cd "$debs" && apt-get download -qq "${pkgs[@]}" </dev/null)
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$QEMU_ROOT.tmp"; done
    rm -rf "$QEMU_ROOT" && mv "$QEMU_ROOT.tmp" "$QEMU_ROOT"
}

# The runner inside the VM: mounts the run's directory and the repository,
# runs the command there, keeps its status, powers off. Debian's 6.1 kernel
# does not load a 9p transport on demand: the mount depends on udev having
# loaded 9pnet_virtio for the device, which under a slow TCG boot can come
# after this unit starts (the likely cause of one CI run whose command found
# no repository in its directory), so the runner loads it itself, retries a
# failed mount, and says so when a mount still fails.
RUNNER='#!/bin/sh
arg() { tr " " "\n" </proc/cmdline | sed -n "s/^myshim\.$1=//p"; }
repo=$(arg repo)
mount9p() {
    for _ in 1 2 3 4 5; do
        mount -t 9p -o "trans=virtio,version=9p2000.L$3" "$1" "$2" && return 0
        sleep 1
    done
    return 1
}
modprobe -a 9pnet_virtio 9p
mkdir -p "$repo" /run/myshim-vm
if ! mount9p run /run/myshim-vm ""; then
    echo "myshim-vm-run: cannot mount the run directory" >/dev/ttyS1
    systemctl --force poweroff
    exit 1
fi
status=0
if ! mount9p repo "$repo" ,msize=1048576 || ! cd "$repo"; then
    echo "myshim-vm-run: cannot mount the repository at $repo" >/dev/ttyS1
    status=125
else
    # This unit is part of the boot, so the state is "starting" here.
    systemctl is-system-running >/run/myshim-vm/system-state 2>&1 || true
    sh /run/myshim-vm/cmd >/dev/ttyS1 2>&1 || status=$?
fi
echo "$status" >/run/myshim-vm/status
sync
systemctl --force poweroff'

build_image() {
    if [ -s "$IMAGE_DIR/root.img" ]; then
        return 0
    fi
    ensure_tools
    say "building the VM image in $IMAGE_DIR (recipe $RECIPE)"
    local tmp=$CACHE/build-$RECIPE
    rm -rf "$tmp" && mkdir -p "$tmp"
    printf '%s\n' "$RUNNER" >"$tmp/runner"
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --customize-hook='echo myshim-vm >"$1/etc/hostname"' \
        --customize-hook="install -m 0755 $tmp/runner \"\$1/usr/local/sbin/myshim-vm-run\"" \
        --customize-hook='printf "[Unit]\nDescription=Run what the host asked\nAfter=basic.target\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/myshim-vm-run\nStandardOutput=journal+console\n[Install]\nWantedBy=multi-user.target\n" >"$1/etc/systemd/system/myshim-vm-run.service"' \
        --customize-hook='chroot "$1" systemctl enable myshim-vm-run.service' \
        --customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service serial-getty@ttyS1.service containerd.service apt-daily.timer apt-daily-upgrade.timer' \
        --customize-hook='echo "LABEL=myshim-root / ext4 rw,relatime 0 1" >"$1/etc/fstab"' \
        bookworm "$tmp/root" /etc/apt/sources.list.d/debian.sources
    cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
    cp "$tmp"/root/boot/initrd.img-* "$tmp/initrd.img"
    mkfs.ext4 -q -L myshim-root -d "$tmp/root" "$tmp/root.img" 8G
    rm -rf "$tmp/root"
    rm -rf "$CACHE"/image-* && mv "$tmp" "$IMAGE_DIR"
}

# The image is rebuilt when its recipe (the package list, the runner, the
# build steps) changes, not when the rest of this script does.
RECIPE=$(printf '%s\n' "$PACKAGES" "$RUNNER" "$(declare -f build_image)" | sha256sum | cut -c1-16)
IMAGE_DIR=$CACHE/image-$RECIPE

run_vm() {
    build_image
    ensure_tools
    local run accel
    run=$(mktemp -d /tmp/myshim-vm.XXXXXX)
    printf 'set -e\n%s\n' "$*" >"$run/cmd"
    if [ -w /dev/kvm ] && grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then
        accel=(-accel kvm -cpu host)
        say "VM: KVM"
    else
        accel=(-accel tcg,thread=multi -cpu max)
        say "VM: TCG (no usable KVM here: /dev/kvm $( [ -e /dev/kvm ] && echo 'without vmx/svm' || echo absent))"
    fi
    say "VM: booting; console log in $run/console.log"
    local rc=0
    timeout -k 10 "$VM_TIMEOUT" "$(qemu_bin)" "${accel[@]}" -machine q35 -smp 2 -m "$VM_MEM" \
        -L "$QEMU_ROOT/usr/share/qemu" -L /usr/share/seabios -L /usr/share/qemu \
        -display none -vga none -monitor none -nic none -no-reboot \
        -kernel "$IMAGE_DIR/vmlinuz" -initrd "$IMAGE_DIR/initrd.img" \
        -append "root=LABEL=myshim-root rw console=ttyS0 quiet systemd.unified_cgroup_hierarchy=1 myshim.repo=$MYSHIM_REPO" \
        -drive "file=$IMAGE_DIR/root.img,format=raw,if=virtio,snapshot=on" \
        -virtfs "local,path=$MYSHIM_REPO,mount_tag=repo,security_model=passthrough,id=repo" \
        -virtfs "local,path=$run,mount_tag=run,security_model=none,id=run" \
        -serial "file:$run/console.log" -serial stdio </dev/null || rc=$?
    if [ ! -s "$run/status" ]; then
        say "VM: no status from the VM (qemu exit $rc); the console's end:"
        tail -40 "$run/console.log" >&2 || true
        return 1
    fi
    rc=$(cat "$run/status")
    say "VM: the command exited $rc"
    rm -rf "$run"
    return "$rc"
}

case "${1:-}" in
    image) build_image ;;
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        [ $# -gt 0 ] || { echo "usage: $0 run -- CMD ..." >&2; exit 2; }
        run_vm "$@"
        ;;
    *) echo "usage: $0 image | run -- CMD ..." >&2; exit 2 ;;
esac
