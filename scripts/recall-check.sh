#!/usr/bin/env bash
# The recurrence remembers: a small Block-Recurrent model trained by `brt train`
# recalls a digit from beyond a sliding-window model's reach, and the
# sliding-window model of the same size, trained the same way, cannot.
#
# Task (`brt recall`, one-digit values, dots between records): `<KEY=7>`, then
# the same key asked 24 bytes later, `<KEY?7>`. Model: width 32, 2 layers, window
# 8, 8 states (layer 1 recurrent), so Slide sees at most 2 x 8 = 16 bytes back
# and only Rec's state can carry the digit 3 blocks. Both train 8,000 steps of
# 8 x 64 bytes on one thread (about a minute each) from the same seed; scored on
# held-out documents (another seed). Passes when Rec's accuracy is at least 0.9
# and Slide's at most 0.3 (chance: 0.1).
#
# Usage: scripts/recall-check.sh [BRT] (default: builds and uses target/release/brt).
set -euo pipefail
cd "$(dirname "$0")/.."
brt=${1:-}
if [ -z "$brt" ]; then
    cargo build --release --quiet -p brt
    brt=target/release/brt
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Filler text only decides the documents' lengths here (it is replaced by dots),
# so any text will do: the README.
task=(--filler README.md --length 256 --gap 8 --min-distance 24 --max-distance 24 --max-pending 1
      --value-digits 1 --blank-filler)
"$brt" recall generate "${task[@]}" --documents 1000 --seed 1 --out "$work/train" >/dev/null
model=(--preset tiny --d-model 32 --heads 2 --head-dim 16 --mlp 128 --window 8 --states 8
       --segment 64 --batch 8 --steps 8000 --lr 2e-3 --warmup 200 --threads 1 --seed 0
       --checkpoint-every 100000 --eval-every 100000)

accuracy() { # MODEL -> accuracy of the asked digits on held-out documents
    "$brt" recall score "${task[@]}" --documents 100 --seed 2 --threads 1 --model "$1" --json \
        | python3 -c 'import json, sys; b = json.load(sys.stdin)["buckets"]; print(sum(x["accuracy"] * x["asked"] for x in b) / sum(x["asked"] for x in b))'
}

for kind in rec slide; do
    extra=()
    [ "$kind" = slide ] && extra=(--recurrent none)
    start=$(date +%s)
    "$brt" train --data "$work/train" "${model[@]}" "${extra[@]}" --out "$work/$kind" > "$work/$kind.log" 2>&1 \
        || { tail -5 "$work/$kind.log"; exit 1; }
    acc=$(accuracy "$work/$kind/model.safetensors")
    echo "recall check: $kind trained in $(( $(date +%s) - start )) s; accuracy on digits asked 24 bytes later: $acc"
    eval "${kind}_acc=$acc"
done
python3 - "$rec_acc" "$slide_acc" <<'PY'
import sys
rec, slide = map(float, sys.argv[1:])
if rec < 0.9 or slide > 0.3:
    sys.exit(f"recall check FAILED: Rec {rec:.3f} (needs >= 0.9), Slide {slide:.3f} (needs <= 0.3)")
print(f"recall check passed: Rec {rec:.3f} >= 0.9, Slide {slide:.3f} <= 0.3 (chance 0.1)")
PY
