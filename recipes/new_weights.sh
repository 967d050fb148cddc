#!/usr/bin/env bash
# The shipped weights/varied/ (the default of stops 15-19; issue 15: weights for estimators and detectors they never saw), from the
# Bandai-Namco motion capture only (CC BY-NC 4.0). Run from the repository root:
#
#   bash recipes/new_weights.sh        # OUT=runs/varied THREADS=1 MINUTES=58 by default
#
# 1. the dataset with a detector simulation fitted on real Stacked-Hourglass detections
#    (--detector h36m-sh, recipes/fit_detector.py) and every window with its own bone lengths
#    (--bodies varied, recipes/bodies.py); skipped when $DATA already holds it;
# 2. noise statistics of both lifters' cross-fitted training outputs, and the denoiser (the
#    train defaults: 4,000 steps of 64 windows; --max-minutes stops it earlier on a slow machine);
# 3. the guard reference and the uncertainty calibration, fitted on the same Bandai files (the
#    calibration's correction weight chosen on two more lifters of the build, which the weights
#    never saw) and written into the denoiser's metadata. Human3.6M is never read here.
# Copy $OUT/denoiser.safetensors and $OUT/noise.safetensors to weights/varied/ to ship them.
set -euo pipefail
DATA=${DATA:-data/varied}
OUT=${OUT:-runs/varied}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-58}
mkdir -p "$OUT"

if [ ! -f "$DATA/val_frame.h5" ]; then
    python -m recipes.build_dataset --raw ../shared/data/bandai-namco-motion.tar.xz --out "$DATA" \
        --detector h36m-sh --bodies varied --workers "$THREADS" > "$OUT/build.log" 2>&1
fi
TRAIN="--data $DATA/train_temporal.h5 --data $DATA/train_frame.h5"
VAL="--val $DATA/val_temporal.h5 --val $DATA/val_frame.h5"

d3prefine fit-noise "$DATA/train_temporal.h5" "$DATA/train_frame.h5" --estimator "TemporalLifter+FrameLifter" \
    -o "$OUT/noise.safetensors" --overwrite > "$OUT/fit_noise.txt"
# --no-guard: benchmarks.guard below fits and measures the shipped guard
d3prefine train $TRAIN $VAL --noise "$OUT/noise.safetensors" -o "$OUT/denoiser.safetensors" --eval-every 500 --no-guard \
    --max-minutes "$MINUTES" --threads "$THREADS" --device cpu --json --overwrite > "$OUT/train.json" 2> "$OUT/train.log"
rm -f "$OUT/denoiser.ckpt.safetensors"

# (benchmarks/README.md runs the same two with --test files added: what they write is the same)
python -m benchmarks.guard --weights "$OUT/denoiser.safetensors" \
    --train "$DATA/train_temporal.h5" --train "$DATA/train_frame.h5" $VAL \
    --sequences 300 --threshold-quantile 0.99 --out "$OUT/guard" --write-weights --threads "$THREADS" > "$OUT/guard.log" 2>&1
# the uncertainty's correction weight is chosen on two lifters these weights never saw (recipes/estimator_pool.py)
python -m recipes.estimator_pool --build "$DATA" --member temporal9 --member weak --skip-existing \
    --threads "$THREADS" >> "$OUT/pool.log" 2>&1
python -m benchmarks.uncertainty --weights "$OUT/denoiser.safetensors" $VAL --select "$DATA/val_temporal9.h5" --select "$DATA/val_weak.h5" \
    --widening correction --sequences 15 --out "$OUT/uncertainty" --write-weights --threads "$THREADS" > "$OUT/uncertainty.log" 2>&1
