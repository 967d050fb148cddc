#!/usr/bin/env bash
# The pool recipe behind the shipped default weights/ (stop 20's default, stop 16's weights/pool/, and
# each default since, fine-tuned from the one before: weights/README.md has each run's command), trained on a pool of base
# estimators (issue 15), from the Bandai-Namco motion capture only (CC BY-NC 4.0). Run from the repository root after recipes/new_weights.sh
# (its weights are the starting point; it builds data/varied) and the idealised-detector build:
#
#   python -m recipes.build_dataset --raw ../shared/data/bandai-namco-motion.tar.xz --out data/actors
#   bash recipes/pool_weights.sh      # OUT=runs/pool INIT=runs/varied THREADS=1 MINUTES=50 by default
#
# 1. two more base estimators on each build (recipes/estimator_pool.py: a 9-frame TemporalLifter
#    and a weak FrameLifter), so the pool holds 8 estimator outputs from 45 to 100 mm;
# 2. noise statistics of all 8 cross-fitted training outputs, and the denoiser fine-tuned from
#    $INIT on them (4,000 steps; --max-minutes stops it earlier on a slow machine);
# 3. the guard reference (on the same Bandai files) and the uncertainty calibration (on the
#    real-detector build's validation, with the correction weight 2 chosen for weights/varied on
#    lifters it never saw; this set trained on all of them; since stop 30 times the square root of
#    the guard's condition ratio, --widening correction-condition; stops 28-29 doubled it per unit of
#    guard score above 0, correction-guard), written into the denoiser's metadata. Human3.6M is never read here.
# Copy $OUT/denoiser.safetensors and $OUT/noise.safetensors to weights/ to ship them.
#
# KINDS (the estimator outputs trained on, in every build) and EXTRA (more "build:member" outputs)
# widen the pool: stop 21's probe (benchmarks/README.md, "The pool's two ends in training") ran
#   OUT=runs/wide INIT=weights KINDS="temporal frame temporal9 weak weakest exact2d" \
#       EXTRA="data/actors:exact2d_strong" THREADS=2 MINUTES=40 bash recipes/pool_weights.sh
# NOISE (a noise.safetensors fitted on the same outputs) skips fit-noise and continues with those
# statistics; STEPS and LR set the training's schedule (4,000 steps from 2e-3 by default); MIRROR (0 by default) the
# share of training windows mirrored (train --mirror). Stop 26
# continued stop 25's run, cut by --max-minutes at step 2,680 of 4,000 (learning rate then about 6e-4):
#   OUT=runs/s26/continued INIT=runs/s25/pool_subject NOISE=runs/s25/pool_subject/noise.safetensors \
#       EXTRA="data/actors:exact2d_subject" STEPS=1500 LR=6e-4 THREADS=1 MINUTES=55 bash recipes/pool_weights.sh
# Stop 27's default swapped data/varied for the raised-hips build (recipes/README.md, --bodies varied-hips), same schedule:
#   OUT=runs/s27/hips INIT=runs/s25/pool_subject NOISE=runs/s25/pool_subject/noise.safetensors BUILDS="data/varied_hips data/actors" \
#       EXTRA="data/actors:exact2d_subject data/varied_hips:exact2d_subject" STEPS=1500 LR=6e-4 THREADS=2 MINUTES=55 bash recipes/pool_weights.sh
set -euo pipefail
BUILDS=${BUILDS:-"data/varied data/actors"}
OUT=${OUT:-runs/pool}
INIT=${INIT:-runs/varied}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-50}
KINDS=${KINDS:-"temporal frame temporal9 weak"}
EXTRA=${EXTRA:-}
NOISE=${NOISE:-}
STEPS=${STEPS:-4000}
MIRROR=${MIRROR:-0}
LR=${LR:-2e-3}
mkdir -p "$OUT"

TRAIN=() VAL=() OUTPUTS=()  # OUTPUTS: build:kind of every training file
for build in $BUILDS; do for kind in $KINDS; do OUTPUTS+=("$build:$kind"); done; done
for pair in $EXTRA; do OUTPUTS+=("$pair"); done
for pair in "${OUTPUTS[@]}"; do
    build=${pair%%:*} kind=${pair#*:}
    case $kind in
        temporal|frame) ;;  # the build's own lifters (recipes.build_dataset)
        *) python -m recipes.estimator_pool --build "$build" --member "$kind" --skip-existing \
               --threads "$THREADS" >> "$OUT/pool_$(basename "$build").log" 2>&1 ;;
    esac
    TRAIN+=("$build/train_$kind.h5")
done
for build in $BUILDS; do VAL+=(--val "$build/val_temporal.h5" --val "$build/val_frame.h5"); done

if [[ -n $NOISE ]]; then
    cp "$NOISE" "$OUT/noise.safetensors" && cp "$(dirname "$NOISE")/fit_noise.txt" "$OUT/fit_noise.txt"
else
    d3prefine fit-noise "${TRAIN[@]}" --estimator "pool: ${OUTPUTS[*]}" \
        -o "$OUT/noise.safetensors" --overwrite > "$OUT/fit_noise.txt"
fi
# --no-guard: benchmarks.guard below fits and measures the shipped guard; --anchor 0: a continued
# training on the whole pool, not a fine-tuning on a few pairs (train --anchor, since stop 23)
d3prefine train $(printf -- '--data %s ' "${TRAIN[@]}") "${VAL[@]}" --noise "$OUT/noise.safetensors" --init "$INIT/denoiser.safetensors" \
    --anchor 0 --steps "$STEPS" --lr "$LR" --mirror "$MIRROR" -o "$OUT/denoiser.safetensors" --eval-every 1000 --no-guard --max-minutes "$MINUTES" --threads "$THREADS" --device cpu --json --overwrite \
    > "$OUT/train.json" 2> "$OUT/train.log"
rm -f "$OUT/denoiser.ckpt.safetensors"

python -m benchmarks.guard --weights "$OUT/denoiser.safetensors" $(printf -- '--train %s ' "${TRAIN[@]}") "${VAL[@]}" \
    --sequences 300 --threshold-quantile 0.99 --out "$OUT/guard" --write-weights --threads "$THREADS" > "$OUT/guard.log" 2>&1
python -m benchmarks.uncertainty --weights "$OUT/denoiser.safetensors" --val data/varied/val_temporal.h5 --val data/varied/val_frame.h5 \
    --widening correction-condition --correction-weight 2 --sequences 15 --out "$OUT/uncertainty" --write-weights --threads "$THREADS" \
    > "$OUT/uncertainty.log" 2>&1
