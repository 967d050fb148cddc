"""Bandai pose files with a stand-in base estimator, for when the lifters of the build are not at hand.

    python -m recipes.stand_in --raw ../shared/data/bandai-namco-motion.tar.xz --out runs/synth \\
        --train-motions 150 --val-motions 120

Clips are cut, filmed and detected exactly as ``recipes.build_dataset`` does (seed 0, the default
detector), for a seeded sample of TRAIN and VAL motions; instead of a trained lifter, the 3D
"estimate" is the ground truth plus an error drawn from the shipped noise statistics'
conditional Gaussian (``weights/noise.safetensors``; conditions: the clip's 2D and its ground
truth, root-relative), with the whitened draws AR(1)-correlated in time: rho 0.9 written as
``*_temporal.h5``, rho 0 as ``*_frame.h5``. Their errors are of the lifters' size (about 48-51 mm
MPJPE against 46 mm) but not their shape; this session's guard reference and uncertainty
calibration were fitted on them because the full build could not run (see weights/README.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from d3prefine.io import save_poses
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import model_inputs
from d3prefine.runtime import run_reporting
from recipes.bandai import Split
from recipes.build_dataset import (
    DEFAULT_CAMERAS,
    ROOT,
    Clip,
    _extract,
    _find_bvh,
    assign_folds,
    load_h36m_cameras,
    make_clips,
    read_motions,
    to_sequence,
)
from recipes.detector import DetectorNoise, ar1_noise
from recipes.estimators import LifterKind
from recipes.views import ViewConfig

STAND_INS = {LifterKind.TEMPORAL: 0.9, LifterKind.FRAME: 0.0}  # file kind -> AR(1) rho of the whitened draws


def stand_in(noise: NoiseModel, clip: Clip, rho: float, rng: np.random.Generator) -> np.ndarray:
    """Root-relative 3D ``(T, 17, 3)`` metres: the clip's ground truth plus one error draw."""
    x = model_inputs(clip.shot.poses_2d, clip.shot.gt_3d, clip.shot.camera.resolution, ROOT)
    mean = noise.mean(torch.from_numpy(x.p), torch.from_numpy(x.y))
    z = torch.from_numpy(ar1_noise(rng, x.y.shape, rho).astype(np.float32))
    return (x.y + noise.denormalize(z, mean).numpy()).astype(np.float32)


def build(raw: Path, out: Path, noise_path: Path, counts: dict[Split, int], seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    noise = NoiseModel.load(noise_path)
    with tempfile.TemporaryDirectory(prefix="bandai-") as tmp, Progress() as progress:
        root = _extract(raw, Path(tmp)) if raw.is_file() else raw
        motions, _ = read_motions(_find_bvh(root), 1, progress)
    folds = assign_folds(motions, seed)
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        pool = [m for m in motions if m.info.split == split]
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=min(len(pool), count), replace=False))]
        with Progress() as progress:
            clips, _, _ = make_clips(chosen, load_h36m_cameras(DEFAULT_CAMERAS), folds, seed, DetectorNoise(), ViewConfig(), progress)
        for kind, rho in STAND_INS.items():
            sequences = []
            for clip in clips:
                seq = to_sequence(clip, stand_in(noise, clip, rho, rng), kind, str(noise_path), seed)
                seq.provenance["estimator"] = f"noise-model stand-in (rho {rho:g})"
                sequences.append(seq)
            save_poses(out / f"{split.value}_{kind.value}.h5", sequences, overwrite=True)
            print(f"{split.value} {kind.value}: {len(chosen)} motions, {len(clips)} clips", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.stand_in", description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="bandai-namco-motion.tar.xz or its extracted folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--noise", type=Path, default=Path("weights/noise.safetensors"))
    parser.add_argument("--train-motions", type=int, default=150)
    parser.add_argument("--val-motions", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    counts = {Split.TRAIN: args.train_motions, Split.VAL: args.val_motions}
    return run_reporting(lambda: build(args.raw, args.out, args.noise, counts, args.seed))


if __name__ == "__main__":
    sys.exit(main())
