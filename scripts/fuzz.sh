#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of what the shim parses from
# containerd and users: config.json, stdio URIs, runtime options, ttrpc
# requests and BootstrapParams. Each target runs FUZZ_SECONDS (60 by default)
# from its corpus in fuzz/corpus (kept in git; new finds go to a scratch
# directory). A crash fails the run and leaves its input in fuzz/artifacts/:
# fix it and add the input to the corpus, which the unit tests replay.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$MYSHIM_REPO/fuzz"

if ! command -v cargo-fuzz >/dev/null; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
# No sanitizer: the code is safe Rust (ASan would need a nightly compiler);
# libFuzzer still finds panics, aborts, hangs and runaway memory.
say "building the fuzz targets"
cargo fuzz build -s none 2>&1 | tail -1
scratch=$(mktemp -d /tmp/myshim-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for target in config stdio_uri runtime_options rpc; do
    mkdir -p "$scratch/$target"
    say "fuzzing $target for ${FUZZ_SECONDS:-60} s"
    if ! cargo fuzz run -s none "$target" "$scratch/$target" "$PWD/corpus/$target" -- \
        -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -timeout=10 >"$scratch/$target.log" 2>&1; then
        tail -40 "$scratch/$target.log" >&2
        echo "fuzz: $target found a crash (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$scratch/$target.log" | sed "s/^/fuzz $target: /"
done
