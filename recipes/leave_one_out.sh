#!/usr/bin/env bash
# Leave-one-estimator-out on the simulated pool (issue 15): for each held-out base estimator,
# noise statistics and a denoiser trained from scratch on the other estimators' outputs of both
# builds (data/varied, data/actors; recipes/pool_weights.sh step 1 adds the pool members).
# benchmarks/leave_one_out.py then refines the held-out estimator's validation files with it.
#
#   bash recipes/leave_one_out.sh   # OUT=runs/loeo STEPS=1500 HOLD_OUT="temporal frame weak"
#
# Every fold has the same budget (STEPS; one thread: about 30 min with loading and fit-noise).
# The 9-frame lifter has no fold by default (CPU time): recipes/new_weights.sh trained on the
# 27-frame TemporalLifter and the FrameLifter of one build only, so its weights are one more
# model that never saw the 9-frame and the weak lifter (HOLD_OUT=temporal9 runs its fold).
#
# INIT=DIR continues the folds of an earlier run instead (train --init DIR/<fold>/denoiser.safetensors,
# its noise statistics copied): the shipped weights' budget in two legs, e.g.
#   OUT=runs/loeo_long INIT=runs/loeo STEPS=2364 bash recipes/leave_one_out.sh   # 1,500 + 2,364 steps
set -euo pipefail
BUILDS=${BUILDS:-"data/varied data/actors"}
OUT=${OUT:-runs/loeo}
HOLD_OUT=${HOLD_OUT:-"temporal frame weak"}
STEPS=${STEPS:-1500}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-40}
INIT=${INIT:-}
KINDS="temporal frame temporal9 weak"
mkdir -p "$OUT"

for held in $HOLD_OUT; do
    TRAIN=() VAL=()
    for build in $BUILDS; do
        for kind in $KINDS; do
            if [ "$kind" != "$held" ]; then TRAIN+=("$build/train_$kind.h5"); VAL+=(--val "$build/val_$kind.h5"); fi
        done
    done
    mkdir -p "$OUT/$held"
    START=()
    if [ -n "$INIT" ]; then
        cp "$INIT/$held/noise.safetensors" "$INIT/$held/fit_noise.txt" "$OUT/$held/"
        START=(--init "$INIT/$held/denoiser.safetensors" --anchor 0)  # a continued run, not anchored (train --anchor)
    else
        d3prefine fit-noise "${TRAIN[@]}" --estimator "pool without $held" -o "$OUT/$held/noise.safetensors" --overwrite > "$OUT/$held/fit_noise.txt"
    fi
    d3prefine train "${START[@]}" $(printf -- '--data %s ' "${TRAIN[@]}") "${VAL[@]:0:4}" --noise "$OUT/$held/noise.safetensors" \
        -o "$OUT/$held/denoiser.safetensors" --steps "$STEPS" --eval-every "$STEPS" --max-minutes "$MINUTES" --threads "$THREADS" \
        --device cpu --json --overwrite > "$OUT/$held/train.json" 2> "$OUT/$held/train.log"
    rm -f "$OUT/$held/denoiser.ckpt.safetensors"
done
