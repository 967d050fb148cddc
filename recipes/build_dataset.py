"""Build the training/validation pose files from the raw Bandai-Namco motion capture.

    python -m recipes.build_dataset --raw /work/shared/data/bandai-namco-motion.tar.xz --out data/

Stages: read every BVH (2 processes) -> Human3.6M-17 world poses -> windows -> camera views with
simulated 2D detections -> two lifters trained with 3-fold cross-fitting on TRAIN (folds by
motion file) and on all of TRAIN for VAL -> ``{train,val}_{temporal,frame}.h5``, the lifter
weights under ``estimators/`` and ``build_summary.json``. Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from d3prefine.errors import D3PrefineError, InputError
from d3prefine.io import PoseSequence, save_poses
from d3prefine.runtime import run_reporting
from d3prefine.skeleton import H36M_17
from recipes.bandai import MotionInfo, Split, motion_info, read_h36m
from recipes.bodies import BodyVariation, HeadVariation, PostureVariation, reshape_body
from recipes.cameras import Camera, load_h36m_cameras, recentre
from recipes.detector import DETECTORS, DetectorNoise
from recipes.estimators import LIFTERS, FitConfig, LifterKind, estimator_summary, lifter_input, pooled_errors_mm
from recipes.estimators import cross_fit as cross_fit_lifter
from recipes.views import (
    Shot,
    ViewConfig,
    film,
    random_viewpoint,
    split_windows,
    stable_seed,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CAMERAS = REPO_ROOT.parent / "shared" / "data" / "h36m_cameras.json"
FPS = 30.0
NUM_FOLDS = 3
ROOT = H36M_17.root
FITS = {  # about 2-2.5 min per fit on 2 cores; 8 fits per build
    LifterKind.TEMPORAL: FitConfig(steps=1800, batch_frames=1024, chunk=16, lr=2e-3),
    LifterKind.FRAME: FitConfig(steps=1800, batch_frames=1024, lr=1e-3),
}
console = Console(stderr=True)


@dataclass(frozen=True)
class Motion:
    """One BVH file as Human3.6M-17 world poses ``(T, 17, 3)`` (Z up, metres)."""

    info: MotionInfo
    source: str
    poses: np.ndarray
    signature: tuple[float, ...]


@dataclass(frozen=True)
class Clip:
    """One motion window filmed by one camera."""

    name: str
    motion: Motion
    window: tuple[int, int]
    yaw_deg: float
    shot: Shot
    fold: int | None  # cross-fitting fold (TRAIN), None for VAL


# ---------------------------------------------------------------------------------------------
# Reading


def _find_bvh(root: Path) -> list[Path]:
    files = sorted(root.glob("**/Bandai-Namco-Research-Motiondataset-*/data/*.bvh"), key=lambda p: p.name)
    if not files:
        raise InputError(f"{root}: no Bandai-Namco-Research-Motiondataset-*/data/*.bvh files found")
    return files


def _extract(archive: Path, into: Path) -> Path:
    with console.status(f"extracting {archive.name}"), tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".bvh")]
        tar.extractall(into, members=members, filter="data")
    return into


def read_motions(files: list[Path], workers: int, progress: Progress) -> tuple[list[Motion], list[str]]:
    """Parse all files in parallel; unreadable (e.g. empty) files are skipped with a warning."""
    motions, skipped = [], []
    task = progress.add_task("reading BVH", total=len(files))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for path, poses, fps, signature, error in pool.imap(read_h36m, files, chunksize=16):
            progress.advance(task)
            if poses is None:
                console.log(f"[yellow]warning:[/] skipping {error}")
                skipped.append(path.name)
                continue
            if abs(fps - FPS) > 0.01:
                raise InputError(f"{path}: key 'Frame Time': expected {FPS} fps, got {fps:.3f}")
            source = str(path.relative_to(path.parents[2]))  # Bandai-Namco-Research-Motiondataset-N/data/<file>
            motions.append(Motion(motion_info(path.stem), source, poses, signature))
    return motions, skipped


def check_actors(motions: list[Motion]) -> dict:
    """Assert each actor group has one skeleton; report whether skeletons tell actors apart."""
    signatures: dict[str, set] = defaultdict(set)
    for motion in motions:
        signatures[motion.info.actor].add(motion.signature)
    for actor, found in signatures.items():
        assert len(found) == 1, f"actor {actor}: {len(found)} different skeletons, expected 1"
    distinct = len({next(iter(s)) for s in signatures.values()}) == len(signatures)
    if not distinct:
        console.log(
            "[yellow]note:[/] all actor groups share one skeleton (the dataset is proportion-aligned): "
            "actors are identified by style group only"
        )
    return {"actors": sorted(signatures), "one_skeleton_per_actor": True, "skeletons_distinguish_actors": distinct}


# ---------------------------------------------------------------------------------------------
# Views


def assign_folds(motions: list[Motion], seed: int) -> dict[str, int]:
    """TRAIN motion name -> cross-fitting fold, a seeded shuffle dealt round-robin."""
    names = sorted(m.info.name for m in motions if m.info.split == Split.TRAIN)
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[i]: rank % NUM_FOLDS for rank, i in enumerate(order)}


# --bodies: None keeps the actors' builds
BODIES: dict[str, BodyVariation | None] = {
    "actors": None,
    "varied": BodyVariation(),
    "varied-hips": BodyVariation(hip_raise_m=(0.0, 0.04)),
    "varied-head": BodyVariation(hip_raise_m=(0.0, 0.04), head=HeadVariation(), spine_back_m=(0.0, 0.03)),
    "varied-seated": BodyVariation(hip_raise_m=(0.0, 0.04), posture=PostureVariation()),
    # most windows seated and still below the waist, on chairs and on the floor (legs straight out to squatting)
    "varied-still": BodyVariation(hip_raise_m=(0.0, 0.04), posture=PostureVariation(
        share=0.6, hip_flexion_deg=(30.0, 120.0), knee_flexion_deg=(0.0, 150.0), lean_deg=(-20.0, 30.0), stillness=(0.5, 1.0))),
}


def make_clips(motions: list[Motion], h36m: list[Camera], folds: dict[str, int], seed: int, noise: DetectorNoise, config: ViewConfig, progress: Progress, bodies: BodyVariation | None = None) -> tuple[list[Clip], Counter, list[str]]:
    """All clips: TRAIN windows x (4 Human3.6M cameras + 1 random); VAL windows x (1 cycled Human3.6M + 1 random).

    ``bodies``: every window gets its own bone lengths (:mod:`recipes.bodies`); ``None`` keeps the actors'.

    Returns the clips, counts of dropped or partly visible views, and the motions too short for a window.
    """
    clips: list[Clip] = []
    stats: Counter = Counter()
    too_short: list[str] = []
    val_windows = 0
    task = progress.add_task("filming windows", total=len(motions))
    for motion in motions:
        progress.advance(task)
        windows = split_windows(motion.poses[:, ROOT, :2], config)
        if not windows:
            too_short.append(motion.info.name)
            continue
        for index, (start, end) in enumerate(windows):
            rng = np.random.default_rng(stable_seed(seed, motion.info.name, index))
            yaw = float(rng.uniform(0.0, 360.0))
            world = recentre(motion.poses[start:end].astype(np.float64), ROOT, np.deg2rad(yaw))
            if bodies is not None:
                world = reshape_body(rng, world, bodies)
            if motion.info.split == Split.TRAIN:
                cameras = list(h36m)
            else:
                cameras = [h36m[val_windows % len(h36m)]]
                val_windows += 1
            cameras.append(random_viewpoint(world, rng, h36m, config))
            for view, camera in enumerate(cameras):
                shot = film(world, camera, stable_seed(seed, motion.info.name, index, view), noise)
                if shot.gt_3d[..., 2].min() < config.min_depth_m:
                    stats["views_dropped_too_close"] += 1
                    continue
                stats["views_in_image_below_0.9"] += shot.in_image < 0.9
                name = f"{motion.info.name}_w{index}_{camera.id}"
                clips.append(Clip(name, motion, (start, end), yaw, shot, folds.get(motion.info.name)))
    return clips, stats, too_short


# ---------------------------------------------------------------------------------------------
# Estimators


def _inputs(clips: list[Clip]) -> list[np.ndarray]:
    """Normalized screen 2D ``(T, 17, 2)`` float32 of every clip (:func:`recipes.estimators.lifter_input`)."""
    return [lifter_input(c.shot.poses_2d, c.shot.camera.resolution) for c in clips]


def cross_fit(kind: LifterKind, train: list[Clip], val: list[Clip], out: Path, seed: int, progress: Progress) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """Predictions for every clip (TRAIN by the fold model that did not see it, VAL by the full
    model), the weights that made each, and the fit seconds: :func:`recipes.estimators.cross_fit`
    on the clips' folds, with a progress bar and log lines per fit."""
    fit_config = replace(FITS[kind], seed=seed)

    def bar(label: str):
        task = progress.add_task(f"training {label}", total=fit_config.steps)

        def report(step: int, loss: float) -> None:
            progress.update(task, completed=step + 1)
            if step % 400 == 0 or step == fit_config.steps - 1:
                console.log(f"{label}: step {step + 1}/{fit_config.steps}, train MPJPE {loss * 1000:.1f} mm")

        return report

    info = {"estimator": kind.estimator_name, "build_seed": seed}
    train_pred, train_weights, val_pred, val_weight, seconds = cross_fit_lifter(
        LIFTERS[kind], fit_config, _inputs(train), [c.shot.gt_3d for c in train], [c.fold for c in train], _inputs(val),
        out, kind.value, info, bar,
    )
    predictions = {c.name: pose for c, pose in zip(train + val, train_pred + val_pred, strict=True)}
    weights = {c.name: w for c, w in zip(train + val, train_weights + [val_weight] * len(val), strict=True)}
    return predictions, weights, seconds


def errors_mm(clips: list[Clip], predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Frame-pooled MPJPE and P-MPJPE (root-relative, millimetres)."""
    return pooled_errors_mm([predictions[c.name] for c in clips], [c.shot.gt_3d for c in clips])


# ---------------------------------------------------------------------------------------------
# Output


def to_sequence(clip: Clip, pose: np.ndarray, kind: LifterKind, weights: str, seed: int) -> PoseSequence:
    info = clip.motion.info
    return PoseSequence(
        name=clip.name,
        poses_2d=clip.shot.poses_2d.astype(np.float32),
        poses_3d=pose.astype(np.float32),
        gt_3d=clip.shot.gt_3d.astype(np.float32),
        image_size=clip.shot.camera.resolution,
        fps=FPS,
        provenance={
            "estimator": kind.estimator_name,
            "estimator_weights": weights,
            "camera": clip.shot.camera.id,
            "source_file": clip.motion.source,
            "frames": list(clip.window),
            "split": info.split.value,
            "actor": info.actor,
            "content": info.content,
            "style": info.style,
            "fold": clip.fold,
            "yaw_deg": round(clip.yaw_deg, 3),
            "detector_noise_seed": clip.shot.detector_seed,
            "build_seed": seed,
            "dataset": "Bandai-Namco-Research-Motiondataset (CC BY-NC 4.0)",
        },
    )


def split_counts(clips: list[Clip]) -> dict:
    windows = {(c.motion.info.name, c.window) for c in clips}
    return {
        "motions": len({c.motion.info.name for c in clips}),
        "windows": len(windows),
        "sequences": len(clips),
        "frames": int(sum(len(c.shot.gt_3d) for c in clips)),
        "unique_frames": int(sum(b - a for _, (a, b) in windows)),
        "min_in_image": round(min(c.shot.in_image for c in clips), 4),
        "mean_in_image": round(float(np.mean([c.shot.in_image for c in clips])), 4),
    }


def summary_table(summary: dict) -> Table:
    table = Table(title="d3prefine dataset build")
    for column in ("split", "motions", "windows", "sequences", "frames", "estimator", "MPJPE mm", "P-MPJPE mm"):
        table.add_column(column, justify="right")
    for split in ("train", "val"):
        counts = summary["splits"][split]
        for kind in LifterKind:
            err = summary["estimators"][kind.value][split]
            table.add_row(split, str(counts["motions"]), str(counts["windows"]), str(counts["sequences"]), str(counts["frames"]), kind.estimator_name, f"{err['mpjpe_mm']:.1f}", f"{err['p_mpjpe_mm']:.1f}")
    return table


def build(raw: Path, out: Path, cameras_path: Path, seed: int, workers: int, overwrite: bool, max_motions: int | None, detector: str = "bandai", bodies: BodyVariation | None = None) -> dict:
    started = time.perf_counter()
    outputs = [out / f"{split.value}_{kind.value}.h5" for split in Split for kind in LifterKind]
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise D3PrefineError(f"{existing[0]}: exists, pass --overwrite to replace the build")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(workers)
    h36m = load_h36m_cameras(cameras_path)
    noise, view_config = DETECTORS[detector], ViewConfig()
    timings: dict[str, float] = {}
    with ExitStack() as stack:
        if raw.is_file():
            raw = _extract(raw, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bandai-"))))
        files = _find_bvh(raw)
        if max_motions is not None:  # quick smoke builds: every n-th file
            files = files[:: max(1, len(files) // max_motions)]
        progress = stack.enter_context(
            Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        )
        motions, skipped = read_motions(files, workers, progress)
    timings["read_s"] = time.perf_counter() - started
    actors = check_actors(motions)
    folds = assign_folds(motions, seed)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
        clips, view_stats, too_short = make_clips(motions, h36m, folds, seed, noise, view_config, progress, bodies)
        timings["views_s"] = time.perf_counter() - started - timings["read_s"]
        train = [c for c in clips if c.motion.info.split == Split.TRAIN]
        val = [c for c in clips if c.motion.info.split == Split.VAL]
        overlap = {c.motion.info.actor for c in train} & {c.motion.info.actor for c in val}
        assert not overlap, f"actors {overlap} in both splits"
        console.log(f"{len(motions)} motions, {len(train)} train and {len(val)} val sequences")
        results, estimators = {}, {}
        for kind in LifterKind:
            t0 = time.perf_counter()
            predictions, weights, fit_seconds = cross_fit(kind, train, val, out, seed, progress)
            results[kind] = (predictions, weights)
            estimators[kind.value] = {
                **estimator_summary(kind, FITS[kind]),
                "fit_seconds": {k: round(v, 1) for k, v in fit_seconds.items()},
                "train": errors_mm(train, predictions),
                "val": errors_mm(val, predictions),
            }
            timings[f"estimator_{kind.value}_s"] = time.perf_counter() - t0
            console.log(f"{kind.estimator_name}: train (cross-fitted) {estimators[kind.value]['train']}, val {estimators[kind.value]['val']}")

    t0 = time.perf_counter()
    for kind, (predictions, weights) in results.items():
        for split, split_clips in ((Split.TRAIN, train), (Split.VAL, val)):
            path = out / f"{split.value}_{kind.value}.h5"
            with console.status(f"writing {path}"):
                save_poses(path, [to_sequence(c, predictions[c.name], kind, weights[c.name], seed) for c in split_clips], overwrite=overwrite)
    timings["write_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    summary = {
        "command": " ".join(["python -m recipes.build_dataset", *sys.argv[1:]]),
        "seed": seed,
        "skipped_files": skipped,
        "motions_too_short": too_short,
        "actors": actors,
        "split_rule": {"train": "dataset-1 (all) + dataset-2 actor M (masculine, normal)", "val": "dataset-2 actor A (active, elderly, exhausted)"},
        "cameras": {"train": "4 Human3.6M + 1 random per window", "val": "1 Human3.6M (cycled by window) + 1 random per window"},
        "splits": {"train": split_counts(train), "val": split_counts(val)},
        "view_stats": dict(view_stats),
        "view_config": asdict(view_config),
        "detector": detector,
        "detector_noise": asdict(noise),
        "bodies": None if bodies is None else asdict(bodies),
        "estimators": estimators,
        "files": [str(p.relative_to(out)) for p in outputs],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "torch_threads": torch.get_num_threads(),
    }
    (out / "build_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    console.print(summary_table(summary))
    console.log(f"done in {timings['total_s'] / 60:.1f} min; summary in {out / 'build_summary.json'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.build_dataset", description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="bandai-namco-motion.tar.xz or a directory holding the extracted dataset")
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. data/)")
    parser.add_argument("--cameras", type=Path, default=DEFAULT_CAMERAS, help=f"h36m_cameras.json (default {DEFAULT_CAMERAS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for reading and torch threads")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing build")
    parser.add_argument("--max-motions", type=int, default=None, help="smoke test: use about this many BVH files")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="bandai",
                        help="2D detector simulation: 'bandai' (the shipped weights' data), 'h36m-sh' (fitted on Human3.6M's Stacked-Hourglass detections), 'h36m-sh-posture' (the same with posture-dependent errors) or 'h36m-sh-views' (the same with each view's own constant offsets)")
    parser.add_argument("--bodies", choices=sorted(BODIES), default="actors",
                        help="'varied': per-window bone lengths (height 0.85-1.15, proportions +-10 %%, hips 60-150 mm, shoulders 110-190 mm "
                             "from their parent); 'varied-hips': the same with the hips first raised 0-40 mm toward the pelvis level; "
                             "'varied-head': varied-hips with the nose 33-55 %% up the thorax-head-top line and 0-80 mm in front of it, "
                             "that line tilted 0-15 degrees forward, the spine joint 0-30 mm back")
    args = parser.parse_args(argv)
    if not args.raw.exists():
        parser.error(f"--raw {args.raw}: no such file or directory")
    return run_reporting(lambda: build(
        args.raw, args.out, args.cameras, args.seed, args.workers, args.overwrite, args.max_motions, args.detector,
        BODIES[args.bodies],
    ))


if __name__ == "__main__":
    sys.exit(main())
