#!/usr/bin/env bash
# GPU acceptance check of the CUDA and wgpu backends.
#
#   scripts/gpu-check.sh OUTDIR
#       On a machine with an NVIDIA GPU (CUDA 13 driver): builds brt and the test
#       suites in release mode (or uses prebuilt binaries, see below), runs the
#       brt-cuda and brt-wgpu tests and the conformance suite with
#       BRT_REQUIRE_GPU=1 (a missing GPU is a failure, not a skip), checks the
#       official Meliad vectors through `brt logits` on both backends, and runs
#       `brt bench` for the `small` and `paper` configurations at batch 1 and 16
#       on each backend. Writes OUTDIR/summary.txt (results), OUTDIR/full.log
#       (everything) and OUTDIR/logs/ (one log per step). Finishes within
#       BRT_GPU_CHECK_BUDGET_S seconds (default 470: under 8 minutes, build
#       included): a step that would not fit is recorded as SKIPPED (no time).
#       Exits 0 only if every step passed.
#
#   scripts/gpu-check.sh --stand-in OUTDIR
#       Every step of the check where no GPU is (CI runs it on each change), so
#       that the only thing left to a real GPU is the hardware: wgpu on the
#       adapter WGPU_BACKEND picks (Mesa's lavapipe in CI), required as above;
#       the CUDA kernels and host logic through the conformance suite and the
#       brt-cuda tests on brt-cuda's CPU emulator (feature `emulator`; the
#       driver-only tests skip, loudly); `brt --backend cuda` must end in the
#       clear "no CUDA" error; small benchmarks only. Budget 3600 s.
#
#   scripts/gpu-check.sh --prebuild DIR
#       On a machine with the Rust toolchain (no GPU needed): builds the release
#       binaries the check runs (brt with the GPU backends and every test binary
#       of the suites) into DIR (default: prebuilt/). A GPU machine without Rust
#       runs them when DIR is carried with the working tree; the check uses
#       prebuilt/ (or $BRT_PREBUILT) whenever it holds a manifest.
#
# Offline builds: with a vendor/ folder at the repository root (made by
# `cargo vendor vendor`), cargo uses it and builds --offline; a CARGO_HOME with
# the registry already filled works as it is.
#
# On a GPU, products with f32 weights go through cuBLAS when it is installed:
# the check requires that it was (the availability test names it), and runs the
# CUDA conformance suite once more with BRT_CUDA_CUBLAS=0 for brt's own kernels.
#
# Environment: BRT_FEATURES (brt's features, default "cuda,wgpu"),
# BRT_GPU_CHECK_BACKENDS (default "cuda wgpu"; stand-in "wgpu"),
# BRT_CONFORMANCE_FEATURES (default "cuda,wgpu"; stand-in
# "cuda-emulator,wgpu"), BRT_PREBUILT,
# BRT_GPU_CHECK_BUDGET_S. Needs bash, coreutils `timeout`, python3 (standard
# library only) for the Meliad comparison.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STAND_IN=0
if [[ "${1:-}" == "--stand-in" ]]; then
    STAND_IN=1
    shift
fi

FEATURES="${BRT_FEATURES:-cuda,wgpu}"
START_S=$(date +%s)
# Test suites: name, cargo arguments, environment (VAR=value words, or -) and
# the tests' name filters. Every test run must need the GPU: under
# BRT_REQUIRE_GPU=1 every skip for a missing device fails, so the conformance
# suite runs only its GPU factories (not the CPU ones, which the workspace tests
# run, nor the suites that exist to skip; doctests are the API's examples, run by
# the workspace tests). Suites with the same cargo arguments share one binary.
if ((STAND_IN)); then
    CONFORMANCE_FEATURES="${BRT_CONFORMANCE_FEATURES:-cuda-emulator,wgpu}"
    BUDGET_S="${BRT_GPU_CHECK_BUDGET_S:-3600}"
    # Cold release builds on the two cores of a CI machine; the emulated CUDA
    # suites took about ten minutes there before the model checks gained a
    # second reference run per case and long-block cases (one in 32): room for
    # twice that.
    BUILD_LIMIT_S=1500
    TEST_LIMIT_S=2400
    SUITES=(
        # The emulator runs the kernels; the tests that need the driver skip.
        "brt-cuda|-p brt-cuda --features emulator --lib --tests|BRT_REQUIRE_GPU=0|"
        "brt-wgpu|-p brt-wgpu --lib --tests|-|"
        "conformance|-p conformance --features $CONFORMANCE_FEATURES --test suite|-|wgpu_ cuda_emulator_"
    )
    read -r -a BACKENDS <<<"${BRT_GPU_CHECK_BACKENDS:-wgpu}"
    # A software adapter is slow: small work, to show that each step runs.
    BENCHES=("small 256 128")
    BATCHES=(1 4)
else
    CONFORMANCE_FEATURES="${BRT_CONFORMANCE_FEATURES:-cuda,wgpu}"
    BUDGET_S="${BRT_GPU_CHECK_BUDGET_S:-470}"
    BUILD_LIMIT_S=300
    TEST_LIMIT_S=240
    SUITES=(
        "brt-cuda|-p brt-cuda --lib --tests|-|"
        "brt-wgpu|-p brt-wgpu --lib --tests|-|"
        "conformance|-p conformance --features $CONFORMANCE_FEATURES --test suite|-|wgpu_ cuda_"
        # brt's own product kernels, where cuBLAS would otherwise answer.
        "conformance|-p conformance --features $CONFORMANCE_FEATURES --test suite|BRT_CUDA_CUBLAS=0|cuda_f32"
    )
    read -r -a BACKENDS <<<"${BRT_GPU_CHECK_BACKENDS:-cuda wgpu}"
    # Benchmarks: configuration, tokens per document, tokens per call. The paper
    # model (12 layers, d = 1024, W = 512) at batch 16 streams 32k tokens per
    # repetition; three repetitions fit in about a minute even at a few TFLOP/s.
    BENCHES=("small 4096 1024" "paper 2048 1024")
    BATCHES=(1 16)
fi
DEADLINE_S=$((START_S + BUDGET_S))
CASES=(fixed_skip lstm_dual)

usage() {
    sed -n '2,46p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# cargo, with the vendored sources (and offline) when vendor/ exists.
cargo_cmd() {
    local global=()
    if [[ -d "$ROOT/vendor" ]]; then
        global+=(--offline
            --config 'source.crates-io.replace-with="vendored-sources"'
            --config "source.vendored-sources.directory=\"$ROOT/vendor\"")
    fi
    cargo "${global[@]}" "$@"
}

# The executables a `cargo test --no-run --message-format=json` run built.
test_executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg.get("profile", {}).get("test"):
        print(msg["executable"])
'
}

prebuild() {
    local dir="${1:-$ROOT/prebuilt}"
    mkdir -p "$dir/bin"
    rm -f "$dir/bin/"* "$dir/manifest.txt"
    # Small binaries: the carried folder is limited in size.
    export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
    cargo_cmd build --release -p brt --features "$FEATURES"
    cp "$ROOT/target/release/brt" "$dir/bin/brt"
    echo "brt bin/brt" >"$dir/manifest.txt"
    local spec name args env filters exe
    for spec in "${SUITES[@]}"; do
        IFS='|' read -r name args env filters <<<"$spec"
        # shellcheck disable=SC2086 # args are words
        cargo_cmd test --release $args --no-run --message-format=json | test_executables | while read -r exe; do
            # A second suite of the same binary (other environment or filters)
            # finds it already copied.
            cp "$exe" "$dir/bin/$name--$(basename "$exe")"
            echo "$name bin/$name--$(basename "$exe") $env $filters" >>"$dir/manifest.txt"
        done
    done
    echo "prebuilt into $dir:"
    cat "$dir/manifest.txt"
    du -sh "$dir"
}

if [[ $# -lt 1 ]]; then
    usage
fi
if [[ "$1" == "--prebuild" ]]; then
    prebuild "${2:-$ROOT/prebuilt}"
    exit 0
fi
if [[ "$1" == -* ]]; then
    usage
fi

OUT="$1"
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/summary.txt"
FULL="$OUT/full.log"
: >"$SUMMARY"
: >"$FULL"
FAILURES=0
STEP=0
LAST_LOG=/dev/null

say() {
    echo "$*" | tee -a "$SUMMARY" "$FULL"
}

# step NAME MAX_SECONDS COMMAND...: runs COMMAND with a time limit (its own
# and what is left of the budget), logs its output, records the outcome.
step() {
    local name="$1" max="$2"
    shift 2
    STEP=$((STEP + 1))
    local log
    log="$OUT/logs/$(printf '%02d' "$STEP")-${name//[^A-Za-z0-9._-]/_}.log"
    local left=$((DEADLINE_S - $(date +%s) - 5))
    LAST_LOG=/dev/null
    if ((left < 15)); then
        say "SKIPPED (no time)  $name"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    local limit=$((max < left ? max : left))
    local begin status
    begin=$(date +%s)
    echo "==== $name (limit ${limit}s): $*" >>"$FULL"
    set +e
    # Through bash, so that COMMAND may be one of the exported functions.
    timeout --kill-after=5 "$limit" bash -c '"$@"' step "$@" >"$log" 2>&1
    status=$?
    set -e
    cat "$log" >>"$FULL"
    local took=$(($(date +%s) - begin))
    if ((status == 0)); then
        say "PASS     ${took}s  $name"
    elif ((status == 124 || status == 137)); then
        say "TIMEOUT  ${took}s  $name (limit ${limit}s; log: logs/$(basename "$log"))"
        FAILURES=$((FAILURES + 1))
    else
        say "FAIL     ${took}s  $name (exit $status; log: logs/$(basename "$log"))"
        FAILURES=$((FAILURES + 1))
    fi
    LAST_LOG="$log"
}

# Compares `brt logits` output with the official logits of a Meliad case: every
# position of every document. The official run streams each row's documents end
# to end, restarting the state where `start_of_sequence` says; `brt logits` starts
# every input document fresh, so each document becomes one input row (padded at
# its end: the model is causal, padding cannot change a compared position).
meliad_tokens_and_compare() {
    python3 - "$@" <<'PY'
import json, struct, sys
from array import array

def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        code = {"F32": "f", "I32": "i", "U8": "B", "I64": "q"}[t["dtype"]]
        a = array(code)
        a.frombytes(body[t["data_offsets"][0]:t["data_offsets"][1]])
        out[name] = (t["shape"], a)
    return out

def documents(vectors):
    """(row, first segment, segments) of every document, in row order."""
    (n, b, _), _ = vectors["tokens"]
    _, starts = vectors["start_of_sequence"]
    docs = []
    for row in range(b):
        first = 0
        for seg in range(1, n + 1):
            if seg == n or starts[seg * b + row] != 0:
                docs.append((row, first, seg - first))
                first = seg
    return docs

mode, vectors_path = sys.argv[1], sys.argv[2]
vectors = load(vectors_path)
(n, b, length), tokens = vectors["tokens"]
docs = documents(vectors)
width = max(segs for _, _, segs in docs) * length
if mode == "tokens":
    # [documents, longest] int32: each document's segments end to end, zeros after.
    out_path = sys.argv[3]
    rows = array("i")
    for row, first, segs in docs:
        for seg in range(first, first + segs):
            rows.extend(tokens[(seg * b + row) * length:(seg * b + row + 1) * length])
        rows.extend([0] * (width - segs * length))
    header = json.dumps({"tokens": {"dtype": "I32", "shape": [len(docs), width], "data_offsets": [0, len(rows) * 4]}})
    header = header.encode() + b" " * (-len(header) % 8)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + rows.tobytes())
else:
    ours_shape, ours = load(sys.argv[3])["logits"]
    (_, _, _, vocab), official = vectors["logits"]
    if ours_shape != [len(docs), width, vocab]:
        print(f"brt logits wrote shape {ours_shape}, expected {[len(docs), width, vocab]}")
        sys.exit(1)
    # By hand, NaN-safe: max() keeps its first argument against a NaN, so a
    # NaN logit would pass.
    worst, positions = 0.0, 0
    for d, (row, first, segs) in enumerate(docs):
        for p in range(segs * length):
            seg, t = divmod(p, length)
            mine = ours[(d * width + p) * vocab:][:vocab]
            theirs = official[(((first + seg) * b + row) * length + t) * vocab:][:vocab]
            for i, (x, y) in enumerate(zip(mine, theirs)):
                e = 0.0 if x == y else abs(x - y)
                if e != e:
                    print(f"NaN logit: document {d} (row {row}), position {p}, index {i} ({x} vs the official {y})")
                    sys.exit(1)
                worst = max(worst, e)
            positions += 1
    print(f"max abs error {worst:.3e} over every document ({len(docs)} documents, {positions} positions)")
    # What the README claims of every backend (measured: ~1e-6 on the CPU,
    # wgpu on lavapipe and the CUDA kernels on their emulator).
    sys.exit(0 if worst <= 1e-5 else 1)
PY
}

# Succeeds when COMMAND fails with the message of a missing CUDA (it names the
# CPU backend as the way out) and does not crash.
expect_no_cuda() {
    local status=0
    "$@" >/dev/null 2>"$OUT/logs/no-cuda.err" || status=$?
    cat "$OUT/logs/no-cuda.err"
    if ((status == 0)); then
        echo "expected an error: there is no CUDA driver here"
        return 1
    fi
    if ((status > 2)) || ! grep -q -- "--backend cpu" "$OUT/logs/no-cuda.err"; then
        echo "exit $status: not the clear 'no CUDA' error"
        return 1
    fi
}

export ROOT OUT
export -f cargo_cmd meliad_tokens_and_compare expect_no_cuda

say "brt GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "budget ${BUDGET_S}s"
say "---- machine"
{ timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"; } | tee -a "$SUMMARY" "$FULL"
{ ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so|libcublas\.so|libvulkan\.so' || echo "no CUDA/Vulkan libraries in the ld cache"; } | tee -a "$SUMMARY" "$FULL"
say "---- steps"

export BRT_REQUIRE_GPU=1
export BRT_TESTDATA="$ROOT/testdata"
export RUST_BACKTRACE=1

PREBUILT="${BRT_PREBUILT:-$ROOT/prebuilt}"
# Prebuilt binaries are the GPU run's (the stand-in builds its own suites).
if ((!STAND_IN)) && [[ -f "$PREBUILT/manifest.txt" ]]; then
    say "using prebuilt binaries from $PREBUILT"
    BRT="$PREBUILT/bin/brt"
    # Each manifest line is one run (suite, binary, environment, filters); a
    # suite with no line is a failure, not a silent gap.
    for spec in "${SUITES[@]}"; do
        name="${spec%%|*}"
        if ! grep -q "^$name " "$PREBUILT/manifest.txt"; then
            say "FAIL     0s  test $name (no prebuilt binary)"
            FAILURES=$((FAILURES + 1))
        fi
    done
    while read -r name path env filters; do
        [[ "$name" == brt ]] && continue
        # shellcheck disable=SC2086 # env and filters are words
        step "test $name $(basename "$path") ${env/#-/}" "$TEST_LIMIT_S" env ${env/#-/} "$PREBUILT/$path" $filters
    done <"$PREBUILT/manifest.txt"
elif command -v cargo >/dev/null 2>&1; then
    BRT="$ROOT/target/release/brt"
    step "build brt (release, features $FEATURES)" "$BUILD_LIMIT_S" cargo_cmd build --release -p brt --features "$FEATURES"
    for spec in "${SUITES[@]}"; do
        IFS='|' read -r name args env filters <<<"$spec"
        # shellcheck disable=SC2086 # args, env and filters are words
        step "test $name ${env/#-/}" "$TEST_LIMIT_S" env ${env/#-/} bash -c 'cargo_cmd "$@"' cargo test --release $args -- $filters
    done
else
    say "FAIL: no cargo and no prebuilt binaries ($PREBUILT/manifest.txt); see the top of this script"
    exit 1
fi

say "---- test summaries"
grep -hE "^test result:|SKIPPED|BRT_REQUIRE_GPU=1, but|max abs error|NVRTC:|CUDA available|emulator \(" "$OUT"/logs/*test* 2>/dev/null | sort | uniq -c | tee -a "$SUMMARY" "$FULL" || true
if ((STAND_IN)); then
    # What a user gets without a GPU: brt's clear error, naming the way out.
    step "brt --backend cuda without a GPU says so" 60 expect_no_cuda "$BRT" generate "To be" --max-tokens 4 --backend cuda
    cat "$LAST_LOG" | sed 's/^/         /' | tee -a "$SUMMARY" "$FULL"
else
    # cuBLAS must have been found and used for products with f32 weights.
    step "cuBLAS in use" 5 grep -h "products with f32 weights: cuBLAS" "$OUT"/logs/*test*brt-cuda*
fi

say "---- Meliad vectors through brt logits"
for case in "${CASES[@]}"; do
    vectors="$ROOT/testdata/meliad/$case/vectors.safetensors"
    tokens="$OUT/logs/$case-tokens.safetensors"
    if ! meliad_tokens_and_compare tokens "$vectors" "$tokens" >>"$FULL" 2>&1; then
        say "FAIL     0s  meliad $case: could not write the tokens (python3?)"
        FAILURES=$((FAILURES + 1))
        continue
    fi
    for backend in "${BACKENDS[@]}"; do
        logits="$OUT/logs/$case-$backend-logits.safetensors"
        step "meliad $case logits on $backend" 60 "$BRT" logits --model "$ROOT/testdata/meliad/$case/checkpoint_0" \
            --input "$tokens" --output "$logits" --backend "$backend" --chunk 48
        if [[ -f "$logits" ]]; then
            step "meliad $case compare $backend" 60 meliad_tokens_and_compare compare "$vectors" "$logits"
            tail -n 1 "$LAST_LOG" | sed "s/^/         $case on $backend: /" | tee -a "$SUMMARY" "$FULL"
        fi
    done
done

say "---- brt bench"
for backend in "${BACKENDS[@]}"; do
    for bench in "${BENCHES[@]}"; do
        read -r config tokens chunk <<<"$bench"
        for batch in "${BATCHES[@]}"; do
            step "bench $config on $backend, batch $batch" 90 "$BRT" bench --config "$config" --backend "$backend" \
                --batch "$batch" --tokens "$tokens" --chunk "$chunk" --repetitions 3
            sed 's/^/         /' "$LAST_LOG" | tee -a "$SUMMARY" "$FULL"
        done
    done
done

say "---- result"
say "total $(($(date +%s) - START_S))s; $FAILURES step(s) failed, timed out or skipped"
if ((FAILURES > 0)); then
    exit 1
fi
