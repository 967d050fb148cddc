#!/usr/bin/env bash
# The own-estimator workflow on Human3.6M, exactly the commands a user runs (README, "Using
# d3prefine with your own estimator: Human3.6M"), on the files `python -m recipes.h36m_build
# --out data/h36m` writes. Run from the repository root:
#
#   bash recipes/h36m_workflow.sh        # STEPS=800 MINUTES=24 THREADS=1 WINDOW81=0 by default
#
# 1. fit-noise on the lifters' cross-fitted training outputs (never on the held-out subject);
# 2. train the denoiser on them, and side by side, at the same budget, the same network as a
#    plain regressor (the benchmark's baseline) and, with WINDOW81=1, one ablation (an 81-frame
#    window with 21 windows per batch: the same frames per step, three times the context of the
#    lifter's 27 frames; about 1.7 times the cost per step);
# 3. refine the held-out subject S8 and evaluate it.
# Wall times go to runs/h36m/times.txt. Everything it writes derives from Human3.6M: never commit it.
set -euo pipefail
STEPS=${STEPS:-800}
MINUTES=${MINUTES:-24}
WINDOW81=${WINDOW81:-0}
THREADS=${THREADS:-1}
OUT=runs/h36m
mkdir -p "$OUT"
TRAIN="--data data/h36m/train_temporal.h5 --data data/h36m/train_frame.h5"
VAL="--val data/h36m/val_temporal.h5 --val data/h36m/val_frame.h5"
COMMON="--steps $STEPS --max-minutes $MINUTES --ema-decay 0.99 --eval-every 100 --threads $THREADS --device cpu --json --overwrite"

timed() {  # timed NAME COMMAND...: run it, append "NAME <seconds> s" to times.txt
    local name=$1 start=$SECONDS
    shift
    "$@"
    echo "$name $((SECONDS - start)) s" >> "$OUT/times.txt"
}

timed fit-noise python -m d3prefine fit-noise data/h36m/train_temporal.h5 data/h36m/train_frame.h5 \
    --estimator "H36M TemporalLifter+FrameLifter" -o "$OUT/noise.safetensors" --overwrite > "$OUT/fit_noise.txt"

timed train-diffusion python -m d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/denoiser.safetensors" \
    $COMMON > "$OUT/denoiser.json" 2> "$OUT/denoiser.log" &
pids=($!)
timed train-regression python -m d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/regression.safetensors" \
    --objective regression $COMMON > "$OUT/regression.json" 2> "$OUT/regression.log" &
pids+=($!)
if [ "$WINDOW81" = 1 ]; then
    timed train-window81 python -m d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/window81.safetensors" \
        --window 81 --batch-size 21 $COMMON > "$OUT/window81.json" 2> "$OUT/window81.log" &
    pids+=($!)
fi
for pid in "${pids[@]}"; do wait "$pid"; done  # a bare 'wait' returns 0 even when a training failed

for kind in temporal frame; do
    timed "refine-$kind" python -m d3prefine refine "data/h36m/val_$kind.h5" --weights "$OUT/denoiser.safetensors" \
        --noise "$OUT/noise.safetensors" -o "$OUT/val_$kind.refined.h5" --overwrite
    timed "evaluate-$kind" python -m d3prefine evaluate "$OUT/val_$kind.refined.h5" --json > "$OUT/evaluate_$kind.json"
done
cat "$OUT/times.txt"
