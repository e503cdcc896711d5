#!/usr/bin/env bash
# Recall among natural text, learned by a curriculum of filler density.
#
# Trained on plays filler from scratch, no model here learns to write a digit into
# its state (the digit is one of 32 varied bytes the state's attention averages),
# while with dots as filler it learns to at once. So the filler is made denser in
# stages: first dots only (stage A: one digit among dots), then filler that keeps
# 25%, 50%, 75% of the plays' bytes (the rest turned into dots, line breaks kept),
# then the plays themselves. Each stage starts from the model of the one before.
# Every stage's set: 2,000 documents of 512 bytes, one-digit values asked 12 to 256
# bytes after they were given (log-uniform), one key waiting at a time. Each model
# is scored after every stage on held-out documents (other plays, another seed)
# of the stage's own density: accuracy of the asked digit by distance.
#
#   scripts/recall-curriculum.sh MODEL [RUNS]
#
# MODEL: rec (tiny: width 64, 2 layers, window 16, 16 states, layer 1 recurrent,
# fixed gate), lstm (the same with LSTM gates), feedback, slide (no recurrent
# layer: it sees 2 x 16 = 32 bytes back), xl (window = segment = 128). One thread;
# stage A takes 20,000 steps of 8 x 128 bytes, the others 10,000 (STEPS_A,
# STEPS). Runs go to RUNS (default data/recall-curriculum); a finished stage is
# kept and a stopped one continues from its checkpoint. Writes RUNS/MODEL-STAGE.json
# (`brt recall score --json`) for every stage.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/recall-curriculum.sh rec|lstm|feedback|slide|xl [RUNS]}
runs=${2:-data/recall-curriculum}
case $model in
    rec) flags=() ;;
    lstm) flags=(--gate lstm) ;;
    feedback) flags=(--feedback) ;;
    slide) flags=(--recurrent none) ;;
    xl) flags=(--recurrent none --window 128) ;;
    *) echo "unknown model \`$model\` (rec, lstm, feedback, slide, xl)" >&2; exit 2 ;;
esac
[ -d data/plays/train ] || scripts/fetch-corpora.sh
cargo build --release --quiet -p brt
brt=target/release/brt
mkdir -p "$runs"
task=(--length 512 --gap 8 --min-distance 12 --max-distance 256 --max-pending 1 --value-digits 1)

# Filler keeping a fraction of the bytes of every file of SOURCE (the rest dots;
# line breaks kept), deterministic.
thin() { # OUT FRACTION SOURCE
    [ -d "$1" ] && return 0
    python3 - "$2" "$3" "$1.partial" <<'PY'
import os, random, sys
keep, source, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
rng = random.Random(7)
for name in sorted(os.listdir(source)):
    text = open(os.path.join(source, name), "rb").read()
    thinned = bytes(b if b == 10 or rng.random() < keep else 46 for b in text)
    open(os.path.join(out, name), "wb").write(thinned)
PY
    mv "$1.partial" "$1"
}

# The training set of a stage (seed 1) and the filler its scores use.
stage_data() { # STAGE -> sets $train_set and $score_filler
    local stage=$1 train_filler=(--filler data/plays/train)
    case $stage in
        A)
            train_filler+=(--blank-filler)
            score_filler=(--filler data/plays/heldout --blank-filler)
            ;;
        100) score_filler=(--filler data/plays/heldout) ;;
        *)
            thin "$runs/filler-$stage-train" "0.$stage" data/plays/train
            thin "$runs/filler-$stage-heldout" "0.$stage" data/plays/heldout
            train_filler=(--filler "$runs/filler-$stage-train")
            score_filler=(--filler "$runs/filler-$stage-heldout")
            ;;
    esac
    train_set=$runs/set-$stage
    if [ ! -d "$train_set" ]; then
        # Written aside and moved into place, so a stopped run never leaves half a set.
        rm -rf "$train_set.partial"
        "$brt" recall generate "${train_filler[@]}" --out "$train_set.partial" --documents 2000 "${task[@]}" \
            --seed 1 >/dev/null
        mv "$train_set.partial" "$train_set"
    fi
}

previous=
for stage in A 25 50 75 100; do
    stage_data "$stage"
    out=$runs/$model-$stage
    # A stage is finished when its run wrote `done`; a stopped one (its checkpoint is
    # there, and a model.safetensors from that checkpoint) continues bit-identically.
    if [ ! -f "$out/done" ]; then
        steps=${STEPS:-10000}
        [ "$stage" = A ] && steps=${STEPS_A:-20000}
        if [ -f "$out/checkpoint.safetensors" ]; then
            start=(--resume "$out/checkpoint.safetensors")
        else
            start=(--preset tiny "${flags[@]}" --batch 8 --segment 128 --warmup 200 --lr 1e-3 --seed 0)
            [ "$stage" = A ] || start+=(--init "$previous/model.safetensors")
        fi
        "$brt" train --data "$train_set" "${start[@]}" --steps "$steps" --threads 1 --out "$out" >> "$out.log" 2>&1 \
            || { tail -n 5 "$out.log" >&2; exit 1; }
        touch "$out/done"
    fi
    "$brt" recall score --model "$out/model.safetensors" "${score_filler[@]}" --documents 400 "${task[@]}" \
        --seed 2 --threads 1 --json > "$runs/$model-$stage.json"
    python3 - "$runs/$model-$stage.json" "$model" "$stage" <<'PY'
import json, sys
buckets = json.load(open(sys.argv[1]))["buckets"]
cells = "  ".join(f"{b['from']}-{b['to'] - 1}: {b['accuracy']:.3f}" for b in buckets)
print(f"{sys.argv[2]} after stage {sys.argv[3]}: {cells}")
PY
    previous=$out
done
