#!/usr/bin/env bash
# From a fresh machine to a container run by myshim: installs containerd, runc
# and busybox-static if missing, builds and installs the shim, starts a
# private containerd (under MYSHIM_DEMO_DIR or a temp dir), imports a locally
# built busybox image, runs one container, and shuts everything down.
set -euo pipefail
source "$(dirname "$0")/common.sh"

ensure_deps
build_shim
DIR=${MYSHIM_DEMO_DIR:-$(mktemp -d /tmp/myshim-demo.XXXXXX)}
trap 'stop_containerd "$DIR" || true' EXIT
say "starting a private containerd under $DIR"
start_containerd "$DIR"
say "importing $MYSHIM_IMAGE_REF (built locally from busybox-static)"
import_image default
say "ctr run --rm --runtime $RUNTIME $MYSHIM_IMAGE_REF demo ..."
myctr run --rm --runtime "$RUNTIME" "$MYSHIM_IMAGE_REF" demo \
    sh -c 'echo hello from myshim; cat /proc/self/status | grep -E "^(Pid|NSpid)"' </dev/null
