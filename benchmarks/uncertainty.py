"""Calibration of ``refine --samples`` uncertainty, and its coverage on data the weights did not train on.

Held-out **validation** sequences (a seeded subsample of each file) are refined with S stochastic
samples (``--steps``, ``--samples``, ``--eta``, the README's example settings by default) and their
raw per-joint spread is compared with the refined pose's error against ``gt_3d`` (root-relative,
non-root joints, every frame). The sequences are split in two halves: the first fits the
split-conformal scale of a nominal ``--level`` (90 %) error radius
(:func:`d3prefine.calibration.conformal_scale`), the second, and every ``--test`` file (e.g. Human3.6M
with real detections: another domain), measure the share of errors within ``scale x spread``.
Both rules of :class:`d3prefine.calibration.Widening` are fitted and measured: the raw spread,
and the spread times ``2**max(0, guard score)`` of its sequence (wider on sequences unlike the
training data); ``--widening`` (default ``guard``) picks the one written. Also reported: the Spearman correlation of spread and error, their medians, and the coverage of
1 and 3 times the raw spread.

    python -m benchmarks.uncertainty --val data/val_temporal.h5 --val data/val_frame.h5 \\
        --test data/h36m/val_temporal.h5 --test data/h36m/val_frame.h5 --threads 1 \\
        --out benchmarks/results/uncertainty --write-weights

``--write-weights`` stores the scale (with the settings and the rule) in the denoiser file's
metadata; the tensors are unchanged. The guard rule needs the guard reference in the file first
(``python -m benchmarks.guard --write-weights``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks.accuracy import estimator_label, load_scored
from benchmarks.report import fmt, markdown_table, report_head, run_probe
from d3prefine.calibration import CALIBRATION_METADATA_KEY, UncertaintyCalibration, Widening, conformal_scale, coverage, widening_factor
from d3prefine.checkpoint import set_denoiser_metadata
from d3prefine.errors import WeightsError
from d3prefine.io import PoseSequence
from d3prefine.refine import Refiner
from d3prefine.runtime import log


def spread_and_error(refiner: Refiner, sequences: list[PoseSequence], args: argparse.Namespace) -> tuple[dict[Widening, np.ndarray], np.ndarray]:
    """The spread of each rule (raw, and times the guard widening of its sequence) and the error
    (metres), flat over the non-root joints of every frame of ``sequences``: ``({rule: spread}, error)``."""
    refiner.calibration = None
    results = refiner.refine_sequences(sequences, steps=args.steps, samples=args.samples, eta=args.eta, seed=args.seed)
    root = refiner.layout.root
    moving = np.arange(refiner.layout.num_joints) != root
    spreads: dict[Widening, list[np.ndarray]] = {rule: [] for rule in Widening}
    errors = []
    for seq, result in zip(sequences, results):
        pred = result.poses_3d - result.poses_3d[:, root : root + 1]
        gt = seq.gt_3d - seq.gt_3d[:, root : root + 1]
        errors.append(np.linalg.norm(pred - gt, axis=-1)[:, moving].ravel())
        for rule in Widening:
            factor = widening_factor(rule, None if result.guard is None else result.guard.score)
            spreads[rule].append(factor * result.uncertainty[:, moving].ravel())
    return {rule: np.concatenate(s) for rule, s in spreads.items()}, np.concatenate(errors)


def describe(spreads: dict[Widening, np.ndarray], error: np.ndarray, scales: dict[Widening, float], chosen: Widening,
             sequences: list[PoseSequence]) -> dict:
    """Coverage of each rule's calibrated radius (``coverage_calibrated``: the ``chosen`` rule's)
    and raw-spread statistics of one set."""
    spread = spreads[Widening.NONE]
    return {
        "sequences": len(sequences),
        "joint_frames": int(len(error)),
        "coverage_calibrated": coverage(error, scales[chosen] * spreads[chosen]),
        "coverage_by_widening": {rule.value: coverage(error, scales[rule] * spreads[rule]) for rule in Widening},
        "coverage_raw_1x": coverage(error, spread),
        "coverage_raw_3x": coverage(error, 3 * spread),
        "spearman": float(spearmanr(spread, error).statistic),
        "median_spread_mm": 1000 * float(np.median(spread)),
        "median_error_mm": 1000 * float(np.median(error)),
        "median_radius_mm": 1000 * scales[chosen] * float(np.median(spreads[chosen])),
    }


def markdown(document: dict) -> str:
    c = document["calibration"]
    widening = {Widening.NONE.value: "none: scale x spread", Widening.GUARD.value: "guard: scale x spread x 2^max(0, guard score)"}
    others = ", ".join(f"{rule} {scale:.2f}" for rule, scale in document["scales"].items() if rule != c["widening"])
    lines = [*report_head("Calibrated uncertainty of refine --samples", document["run"]),
             f"Settings: K = {c['steps']}, S = {c['samples']}, eta = {c['eta']}, widening **{widening[c['widening']]}**. Scale "
             f"**{c['scale']:.2f}** = split-conformal {100 * c['level']:g} % quantile of error / (widened) spread over "
             f"{document['fit']['joint_frames']:,} joint-frames of {document['fit']['sequences']} validation sequences (the first "
             f"half); the other rule's scale: {others}. `uncertainty` is the radius (metres) of the ball around each refined joint "
             f"that should hold the true joint {100 * c['level']:g} % of the time.", ""]
    header = ["data", "sequences", "joint-frames", f"coverage of the {100 * c['level']:g} % radius",
              *(f"coverage, widening {rule.value}" for rule in Widening), "raw spread 1x / 3x",
              "Spearman(spread, error)", "median spread / radius / error (mm)"]
    rows = [[name, str(s["sequences"]), f"{s['joint_frames']:,}", fmt(100 * s["coverage_calibrated"], 1, " %"),
             *(fmt(100 * s["coverage_by_widening"][rule.value], 1, " %") for rule in Widening),
             f"{fmt(100 * s['coverage_raw_1x'], 1, ' %')} / {fmt(100 * s['coverage_raw_3x'], 1, ' %')}", fmt(s["spearman"], 2),
             f"{fmt(s['median_spread_mm'], 1)} / {fmt(s['median_radius_mm'], 1)} / {fmt(s['median_error_mm'], 1)}"]
            for name, s in document["sets"].items()]
    return "\n".join([*lines, markdown_table(header, rows), "", "Target: 85-95 % coverage on data the weights did not train on."])


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="held-out file with gt_3d (repeatable)")
    parser.add_argument("--test", type=Path, action="append", default=[], help="other-domain file with gt_3d (repeatable)")
    parser.add_argument("--sequences", type=int, default=100, help="seeded subsample per --val file and half, and per --test file")
    parser.add_argument("--max-frames", type=int, default=300, help="--test sequences are cut to their first N frames")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--level", type=float, default=0.9, help="nominal coverage of the radius")
    parser.add_argument("--widening", type=Widening, choices=list(Widening), default=Widening.GUARD,
                        help="the rule written with --write-weights and shown as the calibrated coverage (both are measured)")
    parser.add_argument("--write-weights", action="store_true", help="store the calibration in the denoiser file")


def _cut(sequences: list[PoseSequence], frames: int) -> list[PoseSequence]:
    return [dataclasses.replace(s, poses_2d=s.poses_2d[:frames], poses_3d=s.poses_3d[:frames], gt_3d=s.gt_3d[:frames]) for s in sequences]


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    if args.widening is Widening.GUARD and refiner.guard is None:
        raise WeightsError(f"{refiner.weights_path}: --widening guard needs the guard reference in the file "
                           "(python -m benchmarks.guard --write-weights first), or pass --widening none")
    loaded = {path: load_scored(path, 2 * args.sequences, args.seed) for path in args.val}
    fit = [seq for seqs in loaded.values() for seq in seqs[0::2]]
    check = [seq for seqs in loaded.values() for seq in seqs[1::2]]
    spreads, error = spread_and_error(refiner, fit, args)
    scales = {rule: conformal_scale(error / spread, args.level) for rule, spread in spreads.items()}
    chosen = args.widening
    calibration = UncertaintyCalibration(scale=scales[chosen], level=args.level, steps=args.steps, samples=args.samples, eta=args.eta,
                                         widening=chosen)
    log(f"scales {', '.join(f'{rule.value} {scale:.3f}' for rule, scale in scales.items())} from {len(error):,} joint-frames")
    sets = {"validation, calibration half (fitted on)": describe(spreads, error, scales, chosen, fit),
            "validation, other half (held out)": describe(*spread_and_error(refiner, check, args), scales, chosen, check)}
    for path in args.test:
        sequences = _cut(load_scored(path, args.sequences, args.seed), args.max_frames)
        sets[f"{estimator_label(sequences, path)} ({path})"] = describe(*spread_and_error(refiner, sequences, args), scales, chosen, sequences)
    for name, s in sets.items():
        log(f"{name}: coverage {s['coverage_by_widening']}, Spearman {s['spearman']:.2f}")
    if args.write_weights:
        set_denoiser_metadata(refiner.weights_path, refiner.weights_path, {CALIBRATION_METADATA_KEY: calibration.to_json()})
        log(f"stored the calibration in {refiner.weights_path}")
    return {"settings": {"sequences": args.sequences, "seed": args.seed, "max_frames": args.max_frames},
            "calibration": {"scale": scales[chosen], "level": args.level, "steps": args.steps, "samples": args.samples, "eta": args.eta,
                            "widening": chosen.value},
            "scales": {rule.value: scale for rule, scale in scales.items()},
            "fit": {"sequences": len(fit), "joint_frames": int(len(error))}, "sets": sets}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.uncertainty", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
