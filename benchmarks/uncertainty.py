"""Calibration of ``refine --samples`` uncertainty, and its coverage on data the weights did not train on.

Held-out **validation** sequences (a seeded subsample of each file) are refined with S stochastic
samples (``--steps``, ``--samples``, ``--eta``, the README's example settings by default) and their
raw per-joint spread is compared with the refined pose's error against ``gt_3d`` (root-relative,
non-root joints, every frame). The sequences are split in two halves: the first fits the
split-conformal scale of a nominal ``--level`` (90 %) error radius
(:func:`d3prefine.calibration.conformal_scale`), the second, and every ``--test`` file (e.g. Human3.6M
with real detections: another domain), measure the share of errors within ``scale x spread``.
Every rule of :class:`d3prefine.calibration.Widening` is fitted and measured (the raw spread;
the spread times ``2**max(0, guard score)`` of its sequence, wider on sequences unlike the
training data; and, given a correction weight, the three rules that add the correction length);
``--widening`` (default ``guard``) picks the one written. Also reported: the Spearman correlation of spread and error, their medians, the coverage of
1 and 3 times the raw spread, and how the calibrated coverage spreads over a set's sequences
(10th / 50th / 90th percentile of the per-sequence coverage: a single sequence, such as an
example file, lands anywhere in that band).

``--pooling`` sets how the calibration half fits the scale: ``pooled`` (default) takes one quantile
over every ``--val`` file's errors together; ``worst-file`` fits each ``--val`` file (an estimator
on a build) on its own and takes the largest scale, so the radius reaches ``--level`` on every
calibration estimator rather than on their average: a hedge for a new estimator or domain, fitted
without it.

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
import json
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks.accuracy import estimator_label, load_scored
from benchmarks.report import count, fmt, markdown_table, report_head, run_probe
from d3prefine.calibration import (
    CALIBRATION_METADATA_KEY,
    CORRECTION_WEIGHTS,
    UncertaintyCalibration,
    Widening,
    conformal_scale,
    coverage,
    unscaled_radius,
)
from d3prefine.checkpoint import set_denoiser_metadata
from d3prefine.config import DEFAULT_FALLBACK
from d3prefine.errors import UsageError, WeightsError
from d3prefine.io import PoseSequence
from d3prefine.refine import Refiner
from d3prefine.runtime import log


@dataclass(frozen=True)
class Parts:
    """The pieces of every rule's radius, flat over the non-root joints of every frame of a set
    (metres): the samples' ``spread``, the ``correction`` (length of refined minus input), the
    guard ``score`` and ``condition`` ratio of each element's sequence (0 and 1 without a guard
    reference), the ``error``, and the index of each element's ``sequence`` in the set."""

    spread: np.ndarray
    correction: np.ndarray
    score: np.ndarray
    condition: np.ndarray
    error: np.ndarray
    sequence: np.ndarray

    def unscaled(self, rule: Rule) -> np.ndarray:
        """What the calibration's scale multiplies under ``rule`` (:func:`d3prefine.calibration.unscaled_radius`)."""
        return unscaled_radius(rule[0], self.spread, self.correction, self.score, rule[1], self.condition)


def concat_parts(parts: list[Parts]) -> Parts:
    """One :class:`Parts` of several sets, their sequence indices renumbered one after the other."""
    offsets = np.cumsum([0] + [int(p.sequence.max()) + 1 if len(p.sequence) else 0 for p in parts[:-1]])
    pooled = {field.name: np.concatenate([getattr(p, field.name) for p in parts]) for field in dataclasses.fields(Parts) if field.name != "sequence"}
    return Parts(**pooled, sequence=np.concatenate([p.sequence + offset for p, offset in zip(parts, offsets)]))


class Pooling(str, Enum):
    """How the calibration half's ``--val`` files fit the scale."""

    POOLED = "pooled"  # one conformal quantile over every file's ratios
    WORST_FILE = "worst-file"  # each file's own quantile; the largest


def fit_scale(files: list[Parts], rule: Rule, level: float, pooling: Pooling) -> float:
    """The conformal scale of ``rule`` on the calibration half, one :class:`Parts` per ``--val`` file."""
    if Pooling(pooling) is Pooling.WORST_FILE:
        return max(conformal_scale(p.error / p.unscaled(rule), level) for p in files)
    pooled = concat_parts(files)
    return conformal_scale(pooled.error / pooled.unscaled(rule), level)


Rule = tuple[Widening, float]  # a widening rule and its correction weight (0 unless the rule uses the correction)
FIXED_RULES: tuple[Rule, ...] = ((Widening.NONE, 0.0), (Widening.GUARD, 0.0))
CORRECTION_RULES: tuple[Rule, ...] = tuple((Widening.CORRECTION, w) for w in CORRECTION_WEIGHTS)


def radius_parts(refiner: Refiner, sequences: list[PoseSequence], args: argparse.Namespace) -> Parts:
    """Refine ``sequences`` with the sampling settings of ``args`` (uncalibrated) and collect :class:`Parts`."""
    refiner.calibration = None
    results = refiner.refine_sequences(sequences, steps=args.steps, samples=args.samples, eta=args.eta, seed=args.seed, fallback=DEFAULT_FALLBACK)
    root = refiner.layout.root
    moving = np.arange(refiner.layout.num_joints) != root
    pieces = []  # one Parts per sequence, its index 0; concat_parts numbers them
    for seq, result in zip(sequences, results):
        pred, gt, given = (a - a[:, root : root + 1] for a in (result.poses_3d, seq.gt_3d, seq.poses_3d))
        error = np.linalg.norm(pred - gt, axis=-1)[:, moving].ravel()
        score, condition = (0.0, 1.0) if result.guard is None else (result.guard.score, result.guard.condition)
        pieces.append(Parts(spread=result.uncertainty[:, moving].ravel(), correction=np.linalg.norm(pred - given, axis=-1)[:, moving].ravel(),
                            score=np.full(len(error), score), condition=np.full(len(error), condition), error=error,
                            sequence=np.zeros(len(error), dtype=int)))
    return concat_parts(pieces)


def choose_correction_weight(fit: list[Parts], select: list[Parts], level: float, pooling: Pooling) -> tuple[float, dict[float, dict]]:
    """The smallest :data:`CORRECTION_WEIGHTS` entry whose radius, scaled on ``fit`` (one :class:`Parts`
    per ``--val`` file, :func:`fit_scale`), covers at least ``level`` of the errors of every ``select``
    set (none does: the largest); and every weight's ``{"scale", "coverage": [share per select set]}``."""
    grid = {}
    for rule in CORRECTION_RULES:
        scale = fit_scale(fit, rule, level, pooling)
        grid[rule[1]] = {"scale": scale, "coverage": [coverage(parts.error, scale * parts.unscaled(rule)) for parts in select]}
    reaching = [weight for weight, row in grid.items() if min(row["coverage"]) >= level]
    return (min(reaching) if reaching else max(grid)), grid


def per_sequence_coverage(error: np.ndarray, radius: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """Coverage of each sequence: the share of its elements with ``error <= radius`` (flat arrays,
    ``sequence`` the integer index of each element's sequence); one entry per index up to the largest."""
    inside = np.bincount(sequence, weights=(error <= radius).astype(float))
    return inside / np.bincount(sequence)


def describe(parts: Parts, rules: dict[str, Rule], scales: dict[str, float], chosen: str, sequences: list[PoseSequence],
             pooled_scale: float) -> dict:
    """Coverage of each rule's calibrated radius (``coverage_calibrated``: the ``chosen`` rule's;
    ``coverage_pooled_scale``: the chosen rule's with the pooled fit's scale) and raw-spread
    statistics of one set."""
    spread, error = parts.spread, parts.error
    unscaled = parts.unscaled(rules[chosen])
    radius = scales[chosen] * unscaled
    per_sequence = per_sequence_coverage(error, radius, parts.sequence)
    return {
        "sequences": len(sequences),
        "joint_frames": int(len(error)),
        "coverage_calibrated": coverage(error, radius),
        "coverage_pooled_scale": coverage(error, pooled_scale * unscaled),
        "coverage_per_sequence": {f"p{q}": float(np.percentile(per_sequence, q)) for q in (10, 50, 90)},
        "coverage_by_widening": {name: coverage(error, scales[name] * parts.unscaled(rule)) for name, rule in rules.items()},
        "coverage_raw_1x": coverage(error, spread),
        "coverage_raw_3x": coverage(error, 3 * spread),
        "spearman": float(spearmanr(spread, error).statistic),
        "median_spread_mm": 1000 * float(np.median(spread)),
        "median_error_mm": 1000 * float(np.median(error)),
        "median_radius_mm": 1000 * float(np.median(radius)),
    }


def markdown(document: dict) -> str:
    c = document["calibration"]
    widening = {Widening.NONE.value: "none: scale x spread", Widening.GUARD.value: "guard: scale x spread x 2^max(0, guard score)",
                Widening.CORRECTION.value: f"correction: scale x (spread + {c['correction_weight']:g} x correction length)",
                Widening.CORRECTION_GUARD.value: f"correction-guard: scale x (spread + {c['correction_weight']:g} x correction length) "
                                                 "x 2^max(0, guard score)",
                Widening.CORRECTION_CONDITION.value: f"correction-condition: scale x (spread + {c['correction_weight']:g} x correction "
                                                     "length) x sqrt(guard condition ratio)"}
    pooling = {Pooling.POOLED.value: "", Pooling.WORST_FILE.value: "; each validation file fitted on its own, the largest scale taken"}
    others = ", ".join(f"{rule} {scale:.2f}" for rule, scale in document["scales"].items() if rule != c["widening"])
    lines = [*report_head("Calibrated uncertainty of refine --samples", document["run"]),
             f"Settings: K = {c['steps']}, S = {c['samples']}, eta = {c['eta']}, widening **{widening[c['widening']]}**. Scale "
             f"**{c['scale']:.2f}** = split-conformal {100 * c['level']:g} % quantile of error / (widened) spread over "
             f"{document['fit']['joint_frames']:,} joint-frames of {document['fit']['sequences']} validation sequences (the first "
             f"half{pooling[document['settings']['pooling']]}); the other rules' scales: {others}. `uncertainty` is the radius (metres) of the ball around each refined joint "
             f"that should hold the true joint {100 * c['level']:g} % of the time.", ""]
    rules = list(document["scales"])
    worst = document["settings"]["pooling"] == Pooling.WORST_FILE.value
    pooled = [f"coverage at the pooled scale {document['pooled_scale']:.2f}"] if worst else []
    header = ["data", "sequences", "joint-frames", f"coverage of the {100 * c['level']:g} % radius", *pooled, "per sequence p10 / p50 / p90",
              *(f"coverage, widening {rule}" for rule in rules), "raw spread 1x / 3x",
              "Spearman(spread, error)", "median spread / radius / error (mm)"]
    rows = [[name, str(s["sequences"]), f"{s['joint_frames']:,}", fmt(100 * s["coverage_calibrated"], 1, " %"),
             *([fmt(100 * s["coverage_pooled_scale"], 1, " %")] if worst else []),
             " / ".join(fmt(100 * s["coverage_per_sequence"][p], 1, " %") for p in ("p10", "p50", "p90")),
             *(fmt(100 * s["coverage_by_widening"][rule], 1, " %") for rule in rules),
             f"{fmt(100 * s['coverage_raw_1x'], 1, ' %')} / {fmt(100 * s['coverage_raw_3x'], 1, ' %')}", fmt(s["spearman"], 2),
             f"{fmt(s['median_spread_mm'], 1)} / {fmt(s['median_radius_mm'], 1)} / {fmt(s['median_error_mm'], 1)}"]
            for name, s in document["sets"].items()]
    lines += [markdown_table(header, rows), "", "Target: 85-95 % coverage on data the weights did not train on."]
    grid = document["correction_grid"]
    if not grid and Widening.CORRECTION.value in document["scales"]:
        lines += ["", f"The correction weight {c['correction_weight']:g} was given (`--correction-weight`), not chosen on selection files."]
    if grid:
        lines += ["", "## Choosing the correction weight",
                  "",
                  f"Each weight's scale fitted on the calibration half; its coverage on the selection files (estimators the weights "
                  f"did not train on). Chosen: the smallest weight reaching {100 * c['level']:g} % on every selection file, "
                  f"**{grid['chosen']:g}**. Other sets were not used to choose.", "",
                  markdown_table(["weight", "scale", *grid["select"]],
                                 [[f"{float(w):g}", fmt(row["scale"], 2), *(fmt(100 * v, 1, " %") for v in row["coverage"])]
                                  for w, row in grid["weights"].items()])]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="held-out file with gt_3d (repeatable)")
    parser.add_argument("--select", type=Path, action="append", default=[],
                        help="file with gt_3d of an estimator the weights did not train on, to choose the correction weight (repeatable)")
    parser.add_argument("--correction-weight", type=float, default=None,
                        help="the correction widening's weight, given instead of chosen on --select files (weights that trained on "
                             "every estimator at hand: the weight chosen for another set)")
    parser.add_argument("--test", type=Path, action="append", default=[], help="other-domain file with gt_3d (repeatable)")
    parser.add_argument("--sequences", type=count, default=100, help="seeded subsample per --val file and half, and per --select and --test file")
    parser.add_argument("--max-frames", type=count, default=300, help="--select and --test sequences are cut to their first N frames")
    parser.add_argument("--steps", type=count, default=5)
    parser.add_argument("--samples", type=count, default=8)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--level", type=float, default=0.9, help="nominal coverage of the radius")
    parser.add_argument("--widening", type=Widening, choices=list(Widening), default=Widening.GUARD,
                        help="the rule written with --write-weights and shown as the calibrated coverage (all are measured; "
                             "correction, correction-guard and correction-condition need --select or --correction-weight)")
    parser.add_argument("--pooling", type=Pooling, choices=list(Pooling), default=Pooling.POOLED,
                        help="'pooled': one quantile over every --val file; 'worst-file': each --val file's own quantile, the largest")
    parser.add_argument("--write-weights", action="store_true", help="store the calibration in the denoiser file")


def _cut(sequences: list[PoseSequence], frames: int) -> list[PoseSequence]:
    return [dataclasses.replace(s, poses_2d=s.poses_2d[:frames], poses_3d=s.poses_3d[:frames], gt_3d=s.gt_3d[:frames]) for s in sequences]


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    if args.widening.uses_guard and refiner.guard is None:
        raise WeightsError(f"{refiner.weights_path}: --widening {args.widening.value} needs the guard reference in the file "
                           "(python -m benchmarks.guard --write-weights first), or pass --widening none")
    if args.select and args.correction_weight is not None:
        raise UsageError("--select chooses the correction weight, --correction-weight gives it: pass one of them")
    if args.widening.uses_correction and not args.select and args.correction_weight is None:
        raise UsageError(f"--widening {args.widening.value} chooses its weight on --select files (estimators the weights did not train on) "
                         "or takes --correction-weight")
    loaded = {path: load_scored(path, 2 * args.sequences, args.seed) for path in args.val}
    fit = [seq for seqs in loaded.values() for seq in seqs[0::2]]
    check = [seq for seqs in loaded.values() for seq in seqs[1::2]]
    fit_files = [radius_parts(refiner, seqs[0::2], args) for seqs in loaded.values()]
    fit_parts = concat_parts(fit_files)
    other = {}  # label -> (sequences, parts) of the --select and --test files
    for paths, kind in ((args.select, "selection"), (args.test, "test")):
        for path in paths:
            sequences = _cut(load_scored(path, args.sequences, args.seed), args.max_frames)
            other[f"{estimator_label(sequences, path)} ({path}, {kind})"] = sequences, radius_parts(refiner, sequences, args)
    rules = {rule.value: (rule, weight) for rule, weight in FIXED_RULES}
    grid, weight = {}, args.correction_weight
    if args.select:
        select = list(other)[: len(args.select)]
        weight, rows = choose_correction_weight(fit_files, [other[label][1] for label in select], args.level, args.pooling)
        grid = {"select": select, "chosen": weight, "weights": {str(w): row for w, row in rows.items()}}
    if weight is not None:
        rules.update({rule.value: (rule, weight) for rule in Widening if rule.uses_correction})
    scales = {name: fit_scale(fit_files, rule, args.level, args.pooling) for name, rule in rules.items()}
    chosen = args.widening.value
    calibration = UncertaintyCalibration(scale=scales[chosen], level=args.level, steps=args.steps, samples=args.samples, eta=args.eta,
                                         widening=args.widening, correction_weight=rules[chosen][1],
                                         fallback=DEFAULT_FALLBACK)  # refined as refine does by default
    log(f"scales {', '.join(f'{rule} {scale:.3f}' for rule, scale in scales.items())} from {len(fit_parts.error):,} joint-frames")
    pooled_scale = fit_scale(fit_files, rules[chosen], args.level, Pooling.POOLED)
    sets = {"validation, calibration half (fitted on)": describe(fit_parts, rules, scales, chosen, fit, pooled_scale),
            "validation, other half (held out)": describe(radius_parts(refiner, check, args), rules, scales, chosen, check, pooled_scale)}
    for label, (sequences, parts) in other.items():
        sets[label] = describe(parts, rules, scales, chosen, sequences, pooled_scale)
    for name, s in sets.items():
        log(f"{name}: coverage {s['coverage_by_widening']}, Spearman {s['spearman']:.2f}")
    if args.write_weights:
        set_denoiser_metadata(refiner.weights_path, refiner.weights_path, {CALIBRATION_METADATA_KEY: calibration.to_json()})
        log(f"stored the calibration in {refiner.weights_path}")
    return {"settings": {"sequences": args.sequences, "seed": args.seed, "max_frames": args.max_frames, "pooling": args.pooling.value},
            "calibration": json.loads(calibration.to_json()),
            "scales": scales, "pooled_scale": pooled_scale, "correction_grid": grid,
            "fit": {"sequences": len(fit), "joint_frames": int(len(fit_parts.error))}, "sets": sets}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.uncertainty", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
