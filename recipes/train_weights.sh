#!/usr/bin/env bash
# Train the shipped weights/ and the benchmark's comparison models from the dataset files that
# `python -m recipes.build_dataset --out data/` writes. Run from the repository root:
#
#   bash recipes/train_weights.sh            # writes weights/, runs/variants/ and their logs
#
# Every model gets the same architecture and the same number of optimizer steps (STEPS), so the
# benchmark compares them at an equal training budget. The first two runs go side by side with
# one CPU thread each, the last alone with two (a 2-core machine).
set -euo pipefail
STEPS=${STEPS:-4000}
DATA="--data data/train_temporal.h5 --data data/train_frame.h5 --val data/val_temporal.h5 --val data/val_frame.h5"
COMMON="--steps $STEPS --eval-every 500 --device cpu --json --overwrite"
mkdir -p weights runs/variants

# Noise statistics of both base estimators' cross-fitted training outputs (the shipped ones),
# and the unconditional N(0, s^2 I) reference.
d3prefine fit-noise data/train_temporal.h5 data/train_frame.h5 --estimator "TemporalLifter+FrameLifter" \
    -o weights/noise.safetensors --overwrite > weights/fit_noise.txt
d3prefine fit-noise data/train_temporal.h5 data/train_frame.h5 --estimator "TemporalLifter+FrameLifter" \
    --mode isotropic -o runs/variants/noise_isotropic.safetensors --overwrite > runs/variants/fit_noise_isotropic.txt

# The shipped denoiser (diffusion, mixed forward errors) and the plain regressor, side by side.
d3prefine train $DATA --noise weights/noise.safetensors -o weights/denoiser.safetensors $COMMON --threads 1 \
    > weights/train.json 2> weights/train.log &
main=$!
d3prefine train $DATA --noise weights/noise.safetensors -o runs/variants/regression.safetensors \
    --objective regression $COMMON --threads 1 > runs/variants/regression.json 2> runs/variants/regression.log &
regression=$!
wait "$main"
wait "$regression"
# The same network trained on unconditional isotropic noise (the paper's forward process with
# N(0, s^2 I) instead of the fitted conditional law).
d3prefine train $DATA --noise runs/variants/noise_isotropic.safetensors -o runs/variants/isotropic.safetensors \
    --forward-errors sampled $COMMON --threads 2 > runs/variants/isotropic.json 2> runs/variants/isotropic.log
rm -f weights/denoiser.ckpt.safetensors
