#!/usr/bin/env bash
# Side-by-side throughput of brt's CPU backend and the PyTorch implementation
# block-recurrent-transformer-pytorch 0.4.4 (lucidrains) on the `small`
# configuration with the same thread count: inference (streaming the same number
# of tokens) and training (forward, backward and AdamW step per segment).
#
#   bench/compare_pytorch.sh              # both parts, 1 and 2 threads, 3 rounds
#   TOKENS=16384 THREADS="1" ROUNDS=5 bench/compare_pytorch.sh
#   PARTS=training TRAIN_STEPS=20 bench/compare_pytorch.sh
#
# Training: both sides take TRAIN_STEPS steps of BATCH rows x TRAIN_SEGMENT tokens
# (8 x 256 by default, brt's defaults for `small`) from the Shakespeare corpus
# (data/plays/train, fetched by scripts/fetch-corpora.sh when missing), carrying
# the recurrent state and caches from step to step, with gradient clipping at 1
# and AdamW; tokens/s = steps * batch * segment / seconds of the training steps.
# brt is `brt train --preset small --backend cpu`, timed in its steps alone (its
# first step included; its final checkpoint and model writes are not, as the
# peer writes none). The peer is bench/peer_train.py.
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
PARTS=${PARTS:-"inference training"}
TRAIN_STEPS=${TRAIN_STEPS:-12}
BATCH=${BATCH:-8}
TRAIN_SEGMENT=${TRAIN_SEGMENT:-256}
DATA=${DATA:-data/plays/train}
# Both sides stream segments (calls) of 1024 tokens: the peer's default
# max_seq_len, walked block by block (W = 64) inside; brt runs each layer over
# the whole call (no feedback), the recurrent layer block by block.
SEGMENT=${SEGMENT:-1024}
VENV=${VENV:-bench/.venv} # e.g. an existing environment with the peer installed

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
cargo build --quiet --release -p brt

rate() { sed -E 's/.* = ([0-9.]+) tokens\/s.*/\1/' <<<"$1"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
faster() { # the line with the higher rate of two peer runs
    if awk -v a="$(rate "$1")" -v b="$(rate "$2")" 'BEGIN {exit !(a >= b)}'; then echo "$1"; else echo "$2"; fi
}

inference() {
for threads in $THREADS; do
    peer_rates=(); ours_rates=()
    for round in $(seq "$ROUNDS"); do
        peer_active=$("$VENV/bin/python" bench/peer_stream.py --threads "$threads" --tokens "$TOKENS" --segment "$SEGMENT" 2>/dev/null)
        peer_passive=$(OMP_WAIT_POLICY=PASSIVE "$VENV/bin/python" bench/peer_stream.py --threads "$threads" --tokens "$TOKENS" --segment "$SEGMENT" 2>/dev/null)
        echo "  round $round: (default OpenMP wait) $peer_active"
        echo "  round $round: (OMP_WAIT_POLICY=PASSIVE) $peer_passive"
        peer=$(faster "$peer_active" "$peer_passive")
        ours=$(target/release/examples/stream --config small --tokens "$TOKENS" --threads "$threads" --call "$SEGMENT" --no-gemm)
        ours=${ours%%$'\n'*} # the first line: tokens/s
        echo "  round $round: brt $ours"
        peer_rates+=("$(rate "$peer")")
        ours_rates+=("$(rate "$ours")")
    done
    p=$(printf '%s\n' "${peer_rates[@]}" | median)
    o=$(printf '%s\n' "${ours_rates[@]}" | median)
    echo "inference, threads $threads: peer median $p tokens/s, brt median $o tokens/s, brt/peer = $(awk -v o="$o" -v p="$p" 'BEGIN {printf "%.2f", o / p}')"
done
}

training() {
if [ ! -d "$DATA" ]; then
    scripts/fetch-corpora.sh
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for threads in $THREADS; do
    peer_rates=(); ours_rates=(); peer_cpu=(); ours_cpu=()
    for round in $(seq "$ROUNDS"); do
        peer_args=(--threads "$threads" --steps "$TRAIN_STEPS" --batch "$BATCH" --segment "$TRAIN_SEGMENT" --data "$DATA")
        peer_active=$("$VENV/bin/python" bench/peer_train.py "${peer_args[@]}" 2>/dev/null)
        peer_passive=$(OMP_WAIT_POLICY=PASSIVE "$VENV/bin/python" bench/peer_train.py "${peer_args[@]}" 2>/dev/null)
        echo "  round $round: (default OpenMP wait) $peer_active"
        echo "  round $round: (OMP_WAIT_POLICY=PASSIVE) $peer_passive"
        peer=$(faster "$peer_active" "$peer_passive")
        # The process's CPU time (user + system, start-up and final checkpoint
        # included) from bash's `time`.
        brt_cpu=$( { TIMEFORMAT='%U %S'; time target/release/brt train --data "$DATA" --preset small --backend cpu \
            --threads "$threads" --batch "$BATCH" --segment "$TRAIN_SEGMENT" --steps "$TRAIN_STEPS" --warmup 2 \
            --eval-every 1000000 --checkpoint-every 1000000 --out "$out/brt" >"$out/stdout" 2>/dev/null; } 2>&1 )
        brt_cpu=$(awk '{printf "%.3f", $1 + $2}' <<<"$brt_cpu")
        ours=$(tail -n 1 "$out/stdout")
        # "trained N steps in S s (R tokens/s; Q tokens/s in the steps alone, ...)" -> Q: the
        # steps alone, as the peer times its loop (no checkpoint or model written).
        ours_rate=$(sed -E 's/.*; ([0-9.]+) tokens\/s in the steps alone.*/\1/' <<<"$ours")
        echo "  round $round: brt ${ours%%;*}); $ours_rate tokens/s in the steps alone (process CPU time $brt_cpu s, whole run)"
        peer_rates+=("$(rate "$peer")")
        ours_rates+=("$ours_rate")
        peer_cpu+=("$(sed -E 's/.*process CPU time ([0-9.]+) s.*/\1/' <<<"$peer")")
        ours_cpu+=("$brt_cpu")
    done
    p=$(printf '%s\n' "${peer_rates[@]}" | median)
    o=$(printf '%s\n' "${ours_rates[@]}" | median)
    pc=$(printf '%s\n' "${peer_cpu[@]}" | median)
    oc=$(printf '%s\n' "${ours_cpu[@]}" | median)
    echo "training, threads $threads: peer median $p tokens/s, brt median $o tokens/s, brt/peer = $(awk -v o="$o" -v p="$p" 'BEGIN {printf "%.2f", o / p}')"
    echo "  CPU time: peer median $pc s (training loop), brt median $oc s (whole process); peer/brt = $(awk -v o="$oc" -v p="$pc" 'BEGIN {printf "%.2f", p / o}')"
done
}

for part in $PARTS; do
    case $part in
        inference) echo "inference (streaming $TOKENS tokens, calls of $SEGMENT):"; inference ;;
        training) echo "training ($TRAIN_STEPS steps of $BATCH x $TRAIN_SEGMENT tokens):"; training ;;
        *) echo "unknown part \`$part\` (inference, training)" >&2; exit 2 ;;
    esac
done
