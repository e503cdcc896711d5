#!/usr/bin/env bash
# Builds the firmware (a trained tiny model on a Cortex-M4F, model/tiny.gguf in
# flash), runs it on QEMU's mps2-an386 board and compares it with the host:
#
# - the logits after every token of its fixed prompt against `brt logits` for
#   the same tokens, at most 1e-5 apart, absolute for logits up to 1 in
#   magnitude and relative beyond (|board - host| <= 1e-5 * max(1, |host|)).
#   Both are brt-cpu's kernels in f32 on the same f16 weights, but not the same
#   arithmetic: the board runs the scalar level one token per call (the
#   streaming products, libm's expf), the host its widest SIMD level on the
#   whole prompt in one call (packed products, lanes summed in another order,
#   fused multiply-adds, a vectorised exp), so they round differently; the same
#   tolerance as brt-capi/check.sh, where the reasons are the same;
# - the greedy text of 64 tokens against `brt generate --temperature 0`: the
#   same bytes (the check also prints the smallest lead of a chosen token over
#   the next, far above the differences of the logits);
# - and reports flash and RAM (from the plan, the linker map and the painted
#   stack) and instructions per token (QEMU's -icount).
#
# As root on Debian it installs QEMU if missing; otherwise it names the package
# and stops. Idempotent; CI runs it from .ci/run.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

missing=""
dpkg -s qemu-system-arm >/dev/null 2>&1 || missing=qemu-system-arm
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian package: $missing (install it, or run this script as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$missing"
fi
rustup target list --installed | grep -qx thumbv7em-none-eabihf || rustup target add thumbv7em-none-eabihf

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo fmt --check
cargo clippy --release --quiet -- -D warnings
cargo build --release --quiet
elf=target/thumbv7em-none-eabihf/release/brt-firmware
map=target/thumbv7em-none-eabihf/release/brt-firmware.map

# -icount shift=0: the emulated clock advances 1 ns per instruction, so the
# firmware's SysTick ticks count instructions. The semihosting exit gives the
# firmware's status; the timeout guards against a hang.
if ! timeout 300 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf" >"$out/board.log" 2>&1; then
    echo "the firmware failed under QEMU; its output:" >&2
    cut -c1-300 "$out/board.log" | tail -n 40 >&2
    exit 1
fi
python3 report.py board "$out/board.log" "$out"

# The host program of this tree (BRT=path uses one already built instead).
if [ -z "${BRT:-}" ]; then
    (cd "$root" && cargo build --quiet -p brt)
fi
brt="${BRT:-$root/target/debug/brt}"
compare="$root/brt-capi/examples/c/compare.py"
python3 "$compare" tokens "$out/prompt.u32" "$out/prompt.safetensors"
"$brt" logits --model model/tiny.gguf --input "$out/prompt.safetensors" --output "$out/host.safetensors" \
    --backend cpu --threads 1 >/dev/null
python3 "$compare" logits "$out/logits.f32" "$out/host.safetensors" 1e-5 "firmware: Cortex-M4F (QEMU mps2-an386)"
python3 report.py greedy "$out/board.json" "$brt" model/tiny.gguf
python3 report.py figures "$out/board.json" "$map"
