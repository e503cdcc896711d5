#!/usr/bin/env bash
# Mutation testing of the kernel code (.cargo/mutants.toml says which files and
# which tests judge them): each mutant is built and judged on the fixed CI seed,
# with the first failing case reported as it is (no shrinking, nothing saved).
#
#   scripts/mutants.sh [cargo mutants options]      # e.g. --list, -f FILE,
#                                                   # --shard 0/40 --sharding round-robin
#
# Needs `cargo install cargo-mutants --locked` (27.1), `cargo install cargo-nextest
# --locked` (0.9; it runs each mutant's tests and stops at the first failure) and
# Python 3.11 (tomllib). Results in mutants.out/
# (caught.txt, missed.txt, unviable.txt, timeout.txt, and caught-by-time-limit.txt:
# the caught mutants whose only failure was a test stopped after 60 s, to be read
# as timeouts are). Every mutant rebuilds the
# six judges (profile `mutants`: no debug information; 15-20 s on the 2-core Xeon)
# and runs them: seconds for most mutants, about 30 s at the screen's strength and
# 50 s at full strength for one that survives. All ~3,400 take about a day on 2
# cores; a round-robin shard is an even sample.
#
# A quicker screen: `PROPTEST_CASES=16 scripts/mutants.sh ...` halves the tests'
# time (the large fixed cases still run). What it catches is caught; what it
# misses must be run again at full strength: `scripts/mutants.sh --recheck
# mutants.out/missed.txt [options]` runs exactly those mutants.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || { echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2; exit 2; }
command -v cargo-nextest >/dev/null || { echo "cargo-nextest (the mutants' test runner) is not installed: cargo install cargo-nextest --locked" >&2; exit 2; }
export CI=1 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 PROPTEST_MAX_SHRINK_ITERS=0
# Every SIMD level this CPU has must run: a mutant that makes the detection hide
# one would otherwise only skip that level's checks (loudly, but passing). The
# levels come from the kernel's own report (/proc/cpuinfo), not from the code
# under test, with brt-cpu's rules (AVX2 with FMA and F16C; AVX-512F).
if [ -z "${BRT_REQUIRE_SIMD+set}" ] && [ -r /proc/cpuinfo ]; then
    flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    has() { [[ $flags == *" $1 "* ]]; }
    levels=scalar
    if has avx2 && has fma && has f16c; then levels+=,avx2; fi
    if has avx512f; then levels+=,avx512; fi
    export BRT_REQUIRE_SIMD=$levels
fi
# cargo-mutants' own baseline runs the tests of the mutated packages (brt-core has
# no `suite`), not the configured ones, so the unmutated tree is tested here. A
# mutant's tests take 1 to 1.5 minutes on a quiet 2-core machine when it survives
# (1.5 to 2.5 loaded). An endless loop is stopped by the per-test limit; the run's
# own timeout (300 s, MUTANTS_TIMEOUT) is the backstop for a mutant that makes
# every test slow. Every timeout is listed apart (timeout.txt) to be read.
# The packages and tests are read from .cargo/mutants.toml, the one place they are named.
mapfile -t judges < <(python3 -c '
import tomllib
config = tomllib.load(open(".cargo/mutants.toml", "rb"))
for package in config["test_package"]:
    print("-p"); print(package)
print("\n".join(config["additional_cargo_args"]))')
if [ "${1:-}" = --recheck ]; then
    [ -f "${2:-}" ] || { echo "--recheck needs a missed.txt from an earlier run" >&2; exit 2; }
    # Each line names one mutant ("FILE:LINE:COLUMN: replace ... with ..."): match it whole.
    pattern=$(python3 -c 'import re, sys; print("|".join("^" + re.escape(l.strip()) + "$" for l in open(sys.argv[1]) if l.strip()))' "$2")
    shift 2
    set -- --re "$pattern" "$@"
fi
case " $* " in
    *" --list "* | *" --list-files "*) ;;
    *) cargo test -q --profile mutants "${judges[@]}" >/dev/null \
        || { echo "the unmutated tree fails its tests: fix that first" >&2; exit 1; } ;;
esac
# Each test is stopped after 60 s (.config/nextest.toml's `mutants` profile).
export NEXTEST_PROFILE=mutants
status=0
cargo mutants --profile mutants --baseline skip --timeout "${MUTANTS_TIMEOUT:-300}" --build-timeout 900 "$@" || status=$?
# The mutants caught only because a test ran past its time limit are listed apart:
# an endless loop is a fault the tests caught, a mere slowdown is not.
output=.
while [ $# -gt 0 ]; do
    case $1 in
        -o | --output) output=${2:-.}; shift ;;
        --output=*) output=${1#--output=} ;;
    esac
    shift
done
if [ -f "$output/mutants.out/outcomes.json" ]; then
    python3 - "$output/mutants.out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = []
for outcome in json.load(open(out / "outcomes.json"))["outcomes"]:
    log = out / outcome["log_path"]
    text = log.read_text(errors="replace") if log.exists() else ""
    if outcome["summary"] == "CaughtMutant" and "TIMEOUT [" in text and "FAIL [" not in text:
        # The log's first "*** " line names the mutant as missed.txt does.
        name = next(l for l in text.splitlines() if l.startswith("*** "))
        lines.append(name.removeprefix("*** "))
(out / "caught-by-time-limit.txt").write_text("".join(line + "\n" for line in lines))
PY
fi
exit "$status"
