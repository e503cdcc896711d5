#!/usr/bin/env bash
# Side-by-side throughput of brt's CPU backend and the PyTorch implementation
# block-recurrent-transformer-pytorch 0.4.4 (lucidrains) on the `small`
# configuration, streaming the same number of tokens with the same thread count.
#
#   bench/compare_pytorch.sh              # 8192 tokens, 1 and 2 threads, 3 rounds
#   TOKENS=16384 THREADS="1" ROUNDS=5 bench/compare_pytorch.sh
#
# The peer runs in its own virtual environment, bench/.venv (git-ignored),
# created on first use. PyPI's torch wheel for Linux is the CUDA build (several
# GB with its nvidia-* dependencies; it runs on the CPU without a GPU); set
# TORCH_INDEX_URL to a CPU-only wheel index to get a smaller one. The peer is
# installed without its declared dependency memorizing-transformers-pytorch,
# which its code never imports.
#
# Each round runs the peer, then brt, alternately, so both see the same machine
# load; the medians of the rounds are compared. The peer runs twice per round,
# with its OpenMP threads' default busy-waiting and with OMP_WAIT_POLICY=PASSIVE,
# and its faster run counts: on a shared machine the busy-waiting of two torch
# threads can collapse its throughput (seen here: 20x slower), which is not what
# this comparison is about. Besides wall-clock tokens/s each
# side reports its process CPU time, which shows how much of the machine it
# actually got when other work shares the cores. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENS=${TOKENS:-8192}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
# Both sides stream segments (calls) of 1024 tokens: the peer's default
# max_seq_len, walked block by block (W = 64) inside; brt runs each layer over
# the whole call (no feedback), the recurrent layer block by block.
SEGMENT=${SEGMENT:-1024}
VENV=bench/.venv

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import block_recurrent_transformer_pytorch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$VENV/bin/pip" install --quiet --index-url "$TORCH_INDEX_URL" torch
    else
        "$VENV/bin/pip" install --quiet torch
    fi
    "$VENV/bin/pip" install --quiet einops beartype packaging
    "$VENV/bin/pip" install --quiet --no-deps block-recurrent-transformer-pytorch==0.4.4
fi

cargo build --quiet --release -p brt-cpu --example stream

rate() { sed -E 's/.* = ([0-9.]+) tokens\/s.*/\1/' <<<"$1"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

for threads in $THREADS; do
    peer_rates=(); ours_rates=()
    for round in $(seq "$ROUNDS"); do
        peer_active=$("$VENV/bin/python" bench/peer_stream.py --threads "$threads" --tokens "$TOKENS" --segment "$SEGMENT" 2>/dev/null)
        peer_passive=$(OMP_WAIT_POLICY=PASSIVE "$VENV/bin/python" bench/peer_stream.py --threads "$threads" --tokens "$TOKENS" --segment "$SEGMENT" 2>/dev/null)
        echo "  round $round: (default OpenMP wait) $peer_active"
        echo "  round $round: (OMP_WAIT_POLICY=PASSIVE) $peer_passive"
        if awk -v a="$(rate "$peer_active")" -v b="$(rate "$peer_passive")" 'BEGIN {exit !(a >= b)}'; then
            peer=$peer_active
        else
            peer=$peer_passive
        fi
        ours=$(target/release/examples/stream --config small --tokens "$TOKENS" --threads "$threads" --call "$SEGMENT" --no-gemm)
        ours=${ours%%$'\n'*} # the first line: tokens/s
        echo "  round $round: brt $ours"
        peer_rates+=("$(rate "$peer")")
        ours_rates+=("$(rate "$ours")")
    done
    p=$(printf '%s\n' "${peer_rates[@]}" | median)
    o=$(printf '%s\n' "${ours_rates[@]}" | median)
    echo "threads $threads: peer median $p tokens/s, brt median $o tokens/s, brt/peer = $(awk -v o="$o" -v p="$p" 'BEGIN {printf "%.2f", o / p}')"
done
