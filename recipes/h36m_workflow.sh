#!/usr/bin/env bash
# The own-estimator workflow on Human3.6M, exactly the commands a user runs (README, "Using
# d3prefine with your own estimator: Human3.6M"), on the files `python -m recipes.h36m_build
# --out data/h36m` writes. Run from the repository root:
#
#   bash recipes/h36m_workflow.sh        # STEPS=1600 MINUTES=55 WINDOW=81 BATCH=21 THREADS=1 by default
#
# 1. fit-noise on the lifters' cross-fitted training outputs (never on the held-out subject);
# 2. train the denoiser on them and, side by side at the same budget, the same network as a
#    plain regressor (the benchmark's baseline): an 81-frame window (three times the context of
#    the lifter's 27 frames) with 21 windows per batch, the frames per step of the train
#    defaults (27 x 64);
# 3. fine-tune the shipped weights on the same outputs (the recommended model), refine the
#    held-out subject S8 with it and evaluate it.
# Wall times go to runs/h36m/times.txt. Everything it writes derives from Human3.6M: never commit it.
set -euo pipefail
STEPS=${STEPS:-1600}
MINUTES=${MINUTES:-55}
WINDOW=${WINDOW:-81}
BATCH=${BATCH:-21}
THREADS=${THREADS:-1}
OUT=runs/h36m
mkdir -p "$OUT"
TRAIN="--data data/h36m/train_temporal.h5 --data data/h36m/train_frame.h5"
VAL="--val data/h36m/val_temporal.h5 --val data/h36m/val_frame.h5"
COMMON="--window $WINDOW --batch-size $BATCH --steps $STEPS --max-minutes $MINUTES --ema-decay 0.995 --eval-every 400 --threads $THREADS --device cpu --json --overwrite"

timed() {  # timed NAME COMMAND...: run it, append "NAME <seconds> s" to times.txt
    local name=$1 start=$SECONDS
    shift
    "$@"
    echo "$name $((SECONDS - start)) s" >> "$OUT/times.txt"
}

timed fit-noise python -m d3prefine fit-noise data/h36m/train_temporal.h5 data/h36m/train_frame.h5 \
    --estimator "H36M TemporalLifter+FrameLifter" -o "$OUT/noise.safetensors" --overwrite > "$OUT/fit_noise.txt"

timed train-diffusion python -m d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/denoiser81.safetensors" \
    $COMMON > "$OUT/denoiser81.json" 2> "$OUT/denoiser81.log" &
pids=($!)
timed train-regression python -m d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/regression81.safetensors" \
    --objective regression $COMMON > "$OUT/regression81.json" 2> "$OUT/regression81.log" &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done  # a bare 'wait' returns 0 even when a training failed

# 4. the recommended model: the shipped weights fine-tuned on the same outputs (README, step 2; the
#    set measured there, weights/varied/, the default until stop 20)
# --anchor 0: thousands of pairs, where the pull toward the init weights costs (README, "Anchored fine-tuning")
timed train-finetuned python -m d3prefine train $TRAIN $VAL --init weights/varied/ --noise weights/varied/noise.safetensors \
    -o "$OUT/finetuned.safetensors" --anchor 0 --steps 1200 --max-minutes 20 --eval-every 400 --threads "$THREADS" --device cpu \
    --json --overwrite > "$OUT/finetuned.json" 2> "$OUT/finetuned.log"

for kind in temporal frame; do
    timed "refine-$kind" python -m d3prefine refine "data/h36m/val_$kind.h5" --weights "$OUT/finetuned.safetensors" \
        --noise weights/varied/noise.safetensors -o "$OUT/val_$kind.finetuned.h5" --overwrite --threads "$THREADS"
    timed "evaluate-$kind" python -m d3prefine evaluate "$OUT/val_$kind.finetuned.h5" --json > "$OUT/eval_finetuned_$kind.json"
done
cat "$OUT/times.txt"
