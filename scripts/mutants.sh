#!/usr/bin/env bash
# Mutation testing of the kernel code (.cargo/mutants.toml says which files and
# which tests judge them): each mutant is built and judged on the fixed CI seed,
# with the first failing case reported as it is (no shrinking, nothing saved).
#
#   scripts/mutants.sh [cargo mutants options]      # e.g. --list, -f FILE,
#                                                   # --shard 0/40 --sharding round-robin
#
# Needs `cargo install cargo-mutants --locked` (27.1) and Python 3.11 (tomllib). Results in mutants.out/
# (caught.txt, missed.txt, unviable.txt, timeout.txt). Every mutant rebuilds the
# tests: all ~3,300 take days on 2 cores; a round-robin shard is an even sample.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || { echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2; exit 2; }
export CI=1 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 PROPTEST_MAX_SHRINK_ITERS=0
# cargo-mutants' own baseline runs the tests of the mutated packages (brt-core has
# no `suite`), not the configured ones, so the unmutated tree is tested here. A
# mutant's tests take 1.5 to 2.5 minutes on a loaded 2-core machine when it
# survives; 300 s stops the ones that make a loop endless.
# The packages and tests are read from .cargo/mutants.toml, the one place they are named.
mapfile -t judges < <(python3 -c '
import tomllib
config = tomllib.load(open(".cargo/mutants.toml", "rb"))
for package in config["test_package"]:
    print("-p"); print(package)
print("\n".join(config["additional_cargo_test_args"]))')
case " $* " in
    *" --list "* | *" --list-files "*) ;;
    *) cargo test -q "${judges[@]}" >/dev/null \
        || { echo "the unmutated tree fails its tests: fix that first" >&2; exit 1; } ;;
esac
exec cargo mutants --baseline skip --timeout 300 --build-timeout 900 "$@"
