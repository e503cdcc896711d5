#!/usr/bin/env bash
# Cross builds and emulated tests of the portable crates (brt-cpu/README.md,
# "Targets"). CI runs it from .ci/run; a developer can run it by hand.
#
#   scripts/cross-check.sh           # both parts
#   scripts/cross-check.sh nostd     # 1. no_std builds for embedded and wasm targets
#   scripts/cross-check.sh aarch64   # 2. aarch64 Linux tests under QEMU (NEON)
#
# As root on Debian it installs the system packages it needs; otherwise it
# names the missing ones and stops. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
case "$what" in
    all | nostd | aarch64) ;;
    *)
        echo "usage: $0 [all|nostd|aarch64]" >&2
        exit 2
        ;;
esac

# Bare-metal and browser targets: 32-bit ARM with an FPU, 32-bit RISC-V with
# soft float, bare aarch64 (NEON), wasm32 (32-bit, no threads).
nostd_targets="thumbv7em-none-eabihf riscv32imac-unknown-none-elf aarch64-unknown-none wasm32-unknown-unknown"
arm64=aarch64-unknown-linux-gnu

# Installs the Debian packages named in "$@" that are missing.
need_packages() {
    local missing="" p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages:$missing (install them, or run this script as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
}

nostd() {
    echo "== cross: rustup targets"
    # shellcheck disable=SC2086
    rustup target add $nostd_targets

    # The linker that ships with rustc; used below to link the no_std guard for
    # each target, which fails on any symbol no crate provides (a float function
    # that should have come from libm, say).
    local lld
    lld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-lld"

    local t
    for t in $nostd_targets; do
        echo "== cross: $t, brt-core, brt-cpu and brt-gguf without std"
        cargo build -p brt-core -p brt-cpu -p brt-gguf --no-default-features --target "$t"
        cargo clippy -p brt-core -p brt-cpu -p brt-gguf --no-default-features --target "$t" -- -D warnings
        # The no_std guard (a whole forward through both crates) compiled and
        # linked for the target: everything it reaches is generated and resolved.
        cargo build --release --manifest-path guards/nostd/Cargo.toml --target "$t"
        local lib="guards/nostd/target/$t/release/libbrt_nostd_guard.a"
        local out
        out=$(mktemp -d)
        case "$t" in
            wasm32-*)
                "$lld" -flavor wasm --no-entry --gc-sections -o "$out/guard.wasm" "$lib" \
                    --export=brt_guard_f32_len --export=brt_guard_forward --export=brt_guard_forward_cpu
                ;;
            *)
                "$lld" -flavor gnu --gc-sections -o "$out/guard.elf" "$lib" \
                    -e brt_guard_forward_cpu -u brt_guard_forward -u brt_guard_f32_len
                ;;
        esac
        echo "linked the no_std guard for $t ($(wc -c <"$out"/guard.*) bytes)"
        rm -rf "$out"
    done
}

aarch64() {
    echo "== cross: aarch64 Linux under QEMU user-mode emulation (NEON)"
    rustup target add "$arm64"
    # The linker and runner are set here, in the environment, rather than in a
    # checked-in .cargo/config.toml: on an aarch64 machine the tests must run
    # natively (no QEMU), and a developer's own cargo configuration is left alone.
    if [ "$(uname -m)" != aarch64 ]; then
        need_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
        # -L: where the emulated program finds the aarch64 dynamic loader and libc.
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
        # Tests that run their own binary again in a child process (conformance's
        # skip.rs) need the runner too; cargo does not tell them.
        export BRT_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
    fi
    # The NEON suites must run: a skipped `neon` level fails instead.
    export BRT_REQUIRE_SIMD=neon
    # Fixed proptest seed, as in CI.
    export CI="${CI:-1}"

    # The library with std (the NEON level and the thread pool); its tests are
    # not aarch64-specific and are linted on x86-64.
    cargo clippy -p brt-core -p brt-cpu --target "$arm64" -- -D warnings
    # --no-fail-fast: every test binary runs and prints its counts. Only what
    # this architecture changes runs under emulation: the kernel suite for every
    # backend of the `neon` level (f32, f16 and bf16 weights, smallest tiles,
    # threads, attention tiles), the skip rules, and the gradient contract of the
    # NEON backends. Left to x86-64, where CI runs them: the portable code's own
    # factories (the reference, and the scalar level at its default and smallest
    # tiles: the same Rust, and IEEE f32 arithmetic that no target contracts or
    # reorders; here the reference still runs as every NEON check's oracle),
    # 200 s under QEMU, and the planted-fault meta tests, whose faults live in
    # the reference (320 s). The whole gradient binary would take 20 minutes.
    cargo test -p conformance --target "$arm64" --no-fail-fast --lib --test suite --test skip \
        -- --skip reference:: --skip cpu_scalar --skip cpu_smallest_tiles_scalar::
    cargo test -p conformance --target "$arm64" --no-fail-fast --test gradients -- cpu_neon
    # brt-cpu's own tests (the allocation count, the Meliad vectors, training)
    # build the whole `brt` crate for aarch64: BRT_CROSS_FULL=1 runs them too
    # (all pass; brt-cpu/README.md, "Targets").
    if [ "${BRT_CROSS_FULL:-0}" = 1 ]; then
        cargo test -p brt-cpu --target "$arm64" --lib --tests --no-fail-fast
        cargo test -p conformance --target "$arm64" --no-fail-fast --test gradients
    fi
}

case "$what" in
    all)
        nostd
        aarch64
        ;;
    nostd) nostd ;;
    aarch64) aarch64 ;;
esac
