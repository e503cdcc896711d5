#!/usr/bin/env bash
# Builds the C static library (c-lib/, panic = "abort", no std, no allocator),
# compiles the C example against include/brt.h with every warning an error, runs
# it on real weights (the official Meliad checkpoint testdata/meliad/lstm_dual,
# and the built-in model, each converted to a model file by `brt convert`) and
# compares its logits with the host's `brt logits` for the same tokens.
#
# Tolerance 1e-5, absolute for logits up to 1 in magnitude and relative beyond
# (|c - host| <= 1e-5 * max(1, |host|)): both run brt-cpu's kernels at the same
# SIMD level on one thread, but the C program feeds the prompt in calls of 16
# tokens and then one token per call, while `brt logits` runs the document in
# one call, so the products take other paths (packed products for many rows, a
# streaming one for few) and round differently; nothing else differs. The
# rounding grows with the values: the built-in model's logits reach 16, where
# `brt logits` itself differs by 1.2e-5 between --chunk 512 and --chunk 1.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

(cd c-lib && cargo build --release --quiet)
# --gc-sections drops the unwinding tables of the precompiled `core`, which name a
# personality routine that a panic = "abort" library never needs.
cc -std=c11 -Wall -Wextra -Werror -O2 -I include -o "$out/brt-example" examples/c/main.c \
    c-lib/target/release/libbrt.a -lm -Wl,--gc-sections

(cd "$root" && cargo build --quiet -p brt)
brt="$root/target/debug/brt"

run() { # NAME SOURCE PROMPT
    echo "-- $1"
    "$brt" convert "$2" "$out/$1.gguf" >/dev/null 2>&1
    "$out/brt-example" "$out/$1.gguf" "$3" 24 "$out/$1.tokens" "$out/$1.logits"
    python3 examples/c/compare.py tokens "$out/$1.tokens" "$out/$1.in.safetensors"
    "$brt" logits --model "$out/$1.gguf" --input "$out/$1.in.safetensors" --output "$out/$1.host.safetensors" \
        --backend cpu --threads 1 >/dev/null
    python3 examples/c/compare.py logits "$out/$1.logits" "$out/$1.host.safetensors" 1e-5
}
run lstm_dual "$root/testdata/meliad/lstm_dual/checkpoint_0" "Block-Recurrent Transformers read long documents. "
run default "$root/brt/assets/default-model.safetensors" "The quick brown fox jumps over the lazy dog. "
