#!/usr/bin/env bash
# Fuzzes every reader of outside data for SECONDS seconds each (default 20), one
# target after the other, and prints each target's executions and coverage.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# FEATURES=hf also fuzzes tokenizer.json files. A crash, a hang (one input
# running over 10 s), an allocation over 512 MiB or a memory use over 2 GiB fails
# the run; the input that did it is saved in fuzz/artifacts/TARGET/. New inputs
# go to fuzz/work/TARGET/ (not committed); the committed seeds in
# fuzz/corpus/TARGET/ are only read.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(meliad_checkpoint brt_weights session_file token_file tokenizer_input cli_flags gguf_model)
fi
features=()
if [ -n "${FEATURES:-}" ]; then
    features=(--features "$FEATURES")
fi

dict_for() {
    case "$1" in
        meliad_checkpoint) echo dicts/meliad.dict ;;
        brt_weights | session_file | token_file) echo dicts/safetensors.dict ;;
        cli_flags) echo dicts/config.dict ;;
        gguf_model) echo dicts/gguf.dict ;;
        *) echo "" ;;
    esac
}

cargo +nightly fuzz build "${features[@]}"
mkdir -p logs
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    dict=$(dict_for "$target")
    options=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1)
    if [ -n "$dict" ]; then
        options+=(-dict="$dict")
    fi
    echo "== $target ($seconds s)"
    status=0
    cargo +nightly fuzz run "${features[@]}" "$target" "work/$target" "corpus/$target" -- "${options[@]}" \
        > "logs/$target.log" 2>&1 || status=$?
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "logs/$target.log" | tail -n 1 || true)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
    line="$target: ${executions:-?} executions, cov ${cov:-?}, ft ${ft:-?}, exit $status"
    echo "$line"
    summary+=("$line")
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        tail -n 40 "logs/$target.log"
    fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "failed: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
    exit 1
fi
