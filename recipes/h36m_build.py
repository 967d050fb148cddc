"""Human3.6M pose files with real base estimators on the real Stacked-Hourglass detections.

    python -m recipes.h36m_build --data ../shared/data/h36m-train --out data/h36m --threads 2

Reads the subjects (:mod:`recipes.h36m`), trains each lifter of :mod:`recipes.estimators`
cross-fitted by subject: the outputs of every training subject (S1, S5, S6, S7) come from the
lifter trained on the other three, those of the held-out subject S8 from the lifter trained on
all four. Writes ``train_<kind>.h5`` (cross-fitted training subjects), ``val_<kind>.h5`` (S8),
the lifters under ``estimators/`` and ``build_summary_<kind>.json`` (MPJPE per subject and fit times).
A lifter whose weights file exists is loaded instead of refitted (``--refit`` retrains), so an
interrupted build resumes. Everything written is derived from Human3.6M: never commit it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from d3prefine.errors import D3PrefineError
from d3prefine.io import save_poses
from d3prefine.runtime import log, run_reporting
from recipes.estimators import (
    LIFTERS,
    FitConfig,
    LifterKind,
    estimator_summary,
    fit_and_save,
    lifter_input,
    load_lifter,
    pooled_errors_mm,
    predict,
)
from recipes.h36m import H36MView, read_dataset, to_sequence

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7")
VAL_SUBJECT = "S8"
FITS = {  # sized for a CPU budget on a shared 2-core machine: 5 fits per lifter, one thread each, about 8 min per fit
    LifterKind.TEMPORAL: FitConfig(steps=700, batch_frames=1024, chunk=16, lr=2e-3),
    LifterKind.FRAME: FitConfig(steps=700, batch_frames=1024, lr=1e-3),
}


def lifter_inputs(views: list[H36MView]) -> list[np.ndarray]:
    """Normalized screen 2D ``(T, 17, 2)`` float32 of every view (:func:`recipes.estimators.lifter_input`)."""
    return [lifter_input(v.poses_2d, v.image_size) for v in views]


def fitted_lifter(kind: LifterKind, fit_config: FitConfig, train: list[H36MView], path: Path, refit: bool, info: dict) -> tuple[torch.nn.Module, float | None]:
    """The lifter at ``path`` if it exists (and not ``refit``), else one trained on ``train`` and saved there.

    Returns the model and the fit's wall time in seconds (``None`` when loaded).
    """
    if path.exists() and not refit:
        log(f"{path}: exists, loaded (pass --refit to retrain)")
        return load_lifter(path)[0], None
    label = f"{kind.estimator_name} {info['trained_on']}"

    def report(step: int, loss: float) -> None:
        if step % 250 == 0 or step == fit_config.steps - 1:
            log(f"{label}: step {step + 1}/{fit_config.steps}, train MPJPE {loss * 1000:.1f} mm")

    gt_3d = [v.gt_3d for v in train]
    model, seconds = fit_and_save(LIFTERS[kind], fit_config, lifter_inputs(train), gt_3d, path, info, {"train_frames": sum(map(len, gt_3d))}, report)
    log(f"{label}: {seconds / 60:.1f} min")
    return model, seconds


def cross_fit(
    kind: LifterKind, views: list[H36MView], fit_config: FitConfig, out: Path, refit: bool, folds: tuple[str, ...] = TRAIN_SUBJECTS
) -> tuple[dict[str, list], dict]:
    """Outputs of ``kind``: the training subjects ``folds`` by the lifter trained on the other
    training subjects, the held-out subject by the lifter trained on all training subjects.

    Returns ``{"train": [sequences], "val": [sequences]}`` and a summary (errors per subject, fit seconds).
    """
    subjects = {s: [v for v in views if v.subject == s] for s in (*TRAIN_SUBJECTS, VAL_SUBJECT)}
    folds = [(s, [v for t in TRAIN_SUBJECTS if t != s for v in subjects[t]], subjects[s]) for s in folds]
    folds.append((VAL_SUBJECT, [v for t in TRAIN_SUBJECTS for v in subjects[t]], subjects[VAL_SUBJECT]))
    sequences: dict[str, list] = {"train": [], "val": []}
    summary: dict = {"fit_seconds": {}, "errors": {}}
    for held_out, train, test in folds:
        trained_on = [t for t in TRAIN_SUBJECTS if t != held_out]
        path = out / "estimators" / f"{kind.value}_{held_out}.safetensors"
        info = {"estimator": kind.estimator_name, "trained_on": "+".join(trained_on), "predicts": held_out}
        model, seconds = fitted_lifter(kind, fit_config, train, path, refit, info)
        summary["fit_seconds"][held_out] = None if seconds is None else round(seconds, 1)
        predictions = predict(model, lifter_inputs(test))
        summary["errors"][held_out] = pooled_errors_mm(predictions, [v.gt_3d for v in test])
        log(f"{kind.estimator_name} on {held_out}: {summary['errors'][held_out]}")
        split = "val" if held_out == VAL_SUBJECT else "train"
        estimator = {**info, "estimator_weights": str(path.relative_to(out)), "fold": held_out, "split": split}
        sequences[split].extend(to_sequence(v, p, estimator) for v, p in zip(test, predictions))
    return sequences, summary


def build(
    data: Path, out: Path, kinds: list[LifterKind], steps: dict[LifterKind, int], threads: int, refit: bool, overwrite: bool,
    folds: tuple[str, ...] = TRAIN_SUBJECTS,
) -> dict:
    started = time.perf_counter()
    outputs = [out / f"{split}_{kind.value}.h5" for kind in kinds for split in ("train", "val")]
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise D3PrefineError(f"{existing[0]}: exists, pass --overwrite to replace it")
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    views = read_dataset(data, (*TRAIN_SUBJECTS, VAL_SUBJECT))
    log(f"{len(views)} views, {sum(len(v.gt_3d) for v in views)} frames")
    summary: dict = {"command": " ".join(["python -m recipes.h36m_build", *sys.argv[1:]]), "threads": threads, "cross_fitted": list(folds),
                     "estimators": {}}
    for kind in kinds:
        fit_config = replace(FITS[kind], steps=steps[kind])
        sequences, per_fold = cross_fit(kind, views, fit_config, out, refit, folds)
        summary["estimators"][kind.value] = {**estimator_summary(kind, fit_config), **per_fold}
        for split, seqs in sequences.items():
            save_poses(out / f"{split}_{kind.value}.h5", seqs, overwrite=overwrite)
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    path = out / f"build_summary_{'_'.join(k.value for k in kinds)}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    log(f"done in {summary['total_seconds'] / 60:.1f} min; summary in {path}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.h36m_build", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with S1.npz ... S8.npz and cameras.json")
    parser.add_argument("--out", type=Path, required=True, help="output folder (e.g. data/h36m)")
    parser.add_argument("--kinds", nargs="+", choices=[k.value for k in LifterKind], default=[k.value for k in LifterKind])
    parser.add_argument("--temporal-steps", type=int, default=FITS[LifterKind.TEMPORAL].steps, help="optimizer steps per TemporalLifter fit")
    parser.add_argument("--frame-steps", type=int, default=FITS[LifterKind.FRAME].steps, help="optimizer steps per FrameLifter fit")
    parser.add_argument("--cross-fit", nargs="+", choices=TRAIN_SUBJECTS, default=list(TRAIN_SUBJECTS),
                        help="training subjects whose cross-fitted outputs go into train_<kind>.h5 (one lifter fit each; "
                             "the held-out subject's lifter always trains on all four)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--refit", action="store_true", help="retrain lifters whose weights exist")
    parser.add_argument("--overwrite", action="store_true", help="replace existing pose files")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    if min(args.temporal_steps, args.frame_steps, args.threads) < 1:
        parser.error("--temporal-steps, --frame-steps and --threads must be >= 1")
    steps = {LifterKind.TEMPORAL: args.temporal_steps, LifterKind.FRAME: args.frame_steps}
    kinds = [LifterKind(k) for k in args.kinds]
    folds = tuple(s for s in TRAIN_SUBJECTS if s in args.cross_fit)
    return run_reporting(lambda: build(args.data, args.out, kinds, steps, args.threads, args.refit, args.overwrite, folds))


if __name__ == "__main__":
    sys.exit(main())
