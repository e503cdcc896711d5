#!/usr/bin/env bash
# Builds the no_std guard (a failure means brt-core needs std or alloc), links it
# into a C program and runs a forward on caller memory.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# --gc-sections drops the unwinding tables of the precompiled `core`, which name a
# personality routine that a panic = "abort" program never needs.
cc -O1 -o "$out/harness" harness.c target/release/libbrt_nostd_guard.a -lm -Wl,--gc-sections
"$out/harness"
