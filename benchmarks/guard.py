"""The refine guard: its reference, its threshold, and how well it flags the sequences refinement makes worse.

1. **Reference** (shipped with the weights): the Gaussian of the per-joint conditions and the
   median correction length, fitted on a seeded subsample of **training** sequences (the data the
   weights were trained on) refined with K = 1 (:func:`d3prefine.guard.fit_reference`); the
   correction's from ``--correction-reference`` files instead when given.
2. **Threshold**: the highest score (or the ``--threshold-quantile``) of a seeded subsample of
   held-out **validation** sequences (in distribution, never trained on), rounded up to 0.1; a
   second, disjoint subsample checks how many in-distribution sequences it flags.
3. **Separation**: on every ``--test`` file (e.g. Human3.6M with real detections and real base
   estimators) and on perturbed copies of the validation sequences (``--perturb``), per sequence:
   the score, and whether refinement (K = 1, default settings) made its MPJPE worse. Reported:
   the share flagged, the share made worse, precision and recall of "flagged" for "made worse",
   the AUROC of the score and of each of its two parts, the AUROC of the score for "this set, not
   the validation" (domain) and for "made worse" over the set and the validation together, and
   the flags at two lower thresholds (the 99th and 95th percentiles of the validation scores).

    python -m benchmarks.guard --train data/train_temporal.h5 --train data/train_frame.h5 \\
        --val data/val_temporal.h5 --val data/val_frame.h5 --test data/h36m/val_temporal.h5 \\
        --test data/h36m/val_frame.h5 --perturb --threads 1 --out benchmarks/results/guard --write-weights

``--write-weights`` stores the reference and threshold in the denoiser file's metadata (tensors
unchanged). Perturbations (validation sequences, seeded): ``bodies`` (ground truth and estimator
output rebuilt with Human3.6M-like hips 120-140 mm and shoulders 160-190 mm from their parents,
height x 1.0-1.15, the 2D moved by the weak-perspective projection of the change), ``noisy-2d``
(extra AR(1) 2D noise of 2 % of the image width), ``scaled-3d`` (estimator output 15 % too large
about the root, 2D and ground truth unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from benchmarks.accuracy import estimator_label, load_scored
from benchmarks.report import count, fmt, made_worse, markdown_table, report_head, run_probe
from d3prefine.bones import median_bone_lengths, scale_bones
from d3prefine.checkpoint import set_denoiser_metadata
from d3prefine.guard import GUARD_METADATA_KEY, GuardReference
from d3prefine.guard_fit import reference_of, threshold_of
from d3prefine.io import PoseSequence
from d3prefine.metrics import mpjpe
from d3prefine.preprocess import normalize_screen
from d3prefine.refine import Refiner
from d3prefine.runtime import log
from d3prefine.skeleton import H36M_17
from recipes.bodies import BodyVariation, random_bone_scales
from recipes.detector import ar1_noise

PARTS = ("score", "condition", "correction")
H36M_BODIES = BodyVariation(height=(1.0, 1.15), proportion_std=0.05, hip_width_m=(0.12, 0.14), shoulder_width_m=(0.16, 0.19))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (ties count
    half); ``None`` without both classes."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def separation(rows: list[dict], threshold: float) -> dict:
    """Flag rates, precision, recall and AUROCs of per-sequence ``rows`` (see :func:`score_sequences`)."""
    worse = np.array([r["worse"] for r in rows])
    flagged = np.array([r["score"] > threshold for r in rows])
    hits = int((flagged & worse).sum())
    return {
        "sequences": len(rows),
        "frames": int(sum(r["frames"] for r in rows)),
        "flagged_share": float(flagged.mean()),
        "worse_share": float(worse.mean()),
        "precision": hits / int(flagged.sum()) if flagged.any() else None,
        "recall": hits / int(worse.sum()) if worse.any() else None,
        "auroc": {part: auroc(np.array([r[part] for r in rows]), worse) for part in PARTS},
        "input_mpjpe_mm": _pooled(rows, "input_mm"),
        "refined_mpjpe_mm": _pooled(rows, "refined_mm"),
        "refined_mpjpe_unflagged_mm": _pooled([r for r, f in zip(rows, flagged) if not f], "refined_mm"),
        "input_mpjpe_unflagged_mm": _pooled([r for r, f in zip(rows, flagged) if not f], "input_mm"),
    }


def _pooled(rows: list[dict], key: str) -> float | None:
    frames = sum(r["frames"] for r in rows)
    return sum(r[key] * r["frames"] for r in rows) / frames if frames else None


def score_sequences(refiner: Refiner, sequences: list[PoseSequence]) -> list[dict]:
    """Per sequence: guard score and parts, MPJPE (mm) of input and refinement (K = 1, defaults)."""
    results = refiner.refine_sequences(sequences)
    rows = []
    for seq, result in zip(sequences, results):
        before, after = 1000.0 * mpjpe(seq.poses_3d, seq.gt_3d), 1000.0 * mpjpe(result.poses_3d, seq.gt_3d)
        guard = result.guard
        rows.append({"name": seq.name, "frames": seq.num_frames, "input_mm": before, "refined_mm": after, "worse": bool(made_worse(after, before)),
                     "score": guard.score, "condition": guard.condition, "correction": guard.correction})
    return rows


def perturbed(sequences: list[PoseSequence], kind: str, seed: int) -> list[PoseSequence]:
    """Copies of ``sequences`` changed as the module docstring's ``kind`` says (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for seq in sequences:
        p2d, y, gt = seq.poses_2d.astype(np.float64), seq.poses_3d.astype(np.float64), seq.gt_3d.astype(np.float64)
        if kind == "bodies":
            scales = random_bone_scales(rng, median_bone_lengths(gt, H36M_17), H36M_BODIES)
            new_gt = scale_bones(gt, scales, H36M_17)
            # weak perspective: pixels per (metre / depth), fitted on the sequence's own 2D and ground truth
            proj, image = gt[..., :2] / gt[..., 2:], normalize_screen(p2d, seq.image_size)
            rel_p, rel_proj = image - image[:, :1], proj - proj[:, :1]
            gain = float((rel_p * rel_proj).sum() / (rel_proj**2).sum())
            delta = gain * (new_gt[..., :2] / new_gt[..., 2:] - proj)  # normalized units
            p2d = p2d + delta * seq.image_size[0] / 2.0  # normalized -> pixels (u = x / w * 2 - 1)
            y, gt = scale_bones(y, scales, H36M_17), new_gt
        elif kind == "noisy-2d":
            p2d = p2d + ar1_noise(rng, p2d.shape, 0.8) * 0.02 * seq.image_size[0]
        elif kind == "scaled-3d":
            y = y[:, :1] + 1.15 * (y - y[:, :1])
        else:
            raise ValueError(f"unknown perturbation {kind!r}")
        out.append(dataclasses.replace(seq, poses_2d=p2d.astype(np.float32), poses_3d=y.astype(np.float32), gt_3d=gt.astype(np.float32)))
    return out


def markdown(document: dict) -> str:
    t = document["threshold"]
    ref = document["reference"]
    lines = [*report_head("Refine guard: does its score flag the sequences refinement makes worse?", document["run"]),
             f"Condition reference fitted on {ref['sequences']} training sequences, correction reference {fmt(ref['correction_mm'], 1)} mm "
             f"(median over `{'`, `'.join(ref['correction_from'])}`); threshold **{t:g}** = the "
             f"{document['settings']['threshold_quantile']:g} quantile of the scores of {document['threshold_sequences']} validation sequences "
             "(1: the highest), rounded up to 0.1 (score = max(log2 condition, log2 correction), "
             "0 is typical of the training data). Per sequence, refined with K = 1 and default settings; 'worse': refined MPJPE above the input's.", ""]
    header = ["data", "sequences", "flagged", "made worse", "precision", "recall", "AUROC score", "AUROC condition", "AUROC correction",
              "AUROC domain", "AUROC with validation", "MPJPE input → refined (mm)", "unflagged only (mm)"]
    rows = []
    for name, s in document["sets"].items():
        rows.append([name, str(s["sequences"]), fmt(100 * s["flagged_share"], 1, " %"), fmt(100 * s["worse_share"], 1, " %"),
                     fmt(s["precision"], 2), fmt(s["recall"], 2), *(fmt(s["auroc"][p], 2) for p in PARTS),
                     fmt(s.get("auroc_domain"), 2), fmt((s.get("auroc_with_validation") or {}).get("score"), 2),
                     f"{fmt(s['input_mpjpe_mm'], 1)} → {fmt(s['refined_mpjpe_mm'], 1)}",
                     f"{fmt(s['input_mpjpe_unflagged_mm'], 1)} → {fmt(s['refined_mpjpe_unflagged_mm'], 1)}"])
    sweep = document["threshold_sweep"]
    sweep_rows = [[name, *(f"{fmt(100 * s['sweep'][k]['flagged_share'], 0, ' %')} ({fmt(s['sweep'][k]['precision'], 2)} / {fmt(s['sweep'][k]['recall'], 2)})"
                           for k in sweep)] for name, s in document["sets"].items()]
    lines += [markdown_table(header, rows), "",
              "AUROC: probability that a sequence made worse scores higher than one made better (0.5 = chance; '—' where every "
              "sequence falls in one class). AUROC domain: that a sequence of the set scores higher than a held-out validation one. "
              "AUROC with validation: the score for 'made worse' over the set and the held-out validation together. Precision/recall: "
              "of the flagged sequences, the share made worse; of those made worse, the share flagged ('—' where none is flagged or none "
              "made worse).", "", "Other thresholds (share flagged, precision / recall):", "",
              markdown_table(["data", *(f"{k}: {v:.2f}" if k == "threshold" else f"{k} of validation: {v:.2f}" for k, v in sweep.items())], sweep_rows)]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, action="append", required=True, help="training pose file (reference; repeatable)")
    parser.add_argument("--val", type=Path, action="append", required=True, help="held-out in-distribution file with gt_3d (threshold; repeatable)")
    parser.add_argument("--test", type=Path, action="append", default=[], help="other-domain file with gt_3d, e.g. real detections (repeatable)")
    parser.add_argument("--perturb", action="store_true", help="also score perturbed copies of the validation sequences")
    parser.add_argument("--sequences", type=count, default=300, help="seeded subsample per training file and per validation half")
    parser.add_argument("--threshold-quantile", type=float, default=1.0,
                        help="the threshold is this quantile of the validation scores, rounded up to 0.1 (1: the highest)")
    parser.add_argument("--correction-reference", type=Path, action="append", default=[],
                        help="files whose median correction is the reference (default: the --train files; repeatable)")
    parser.add_argument("--write-weights", action="store_true", help="store the reference and threshold in the denoiser file")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    train = [seq for path in args.train for seq in load_scored(path, args.sequences, args.seed)]
    reference = reference_of(refiner, train)
    if args.correction_reference:
        examples = [seq for path in args.correction_reference for seq in load_scored(path, None, args.seed)]
        correction = reference_of(refiner, examples).correction_m
        reference = GuardReference(reference.mean, reference.cov, correction, reference.threshold)
    log(f"reference: {len(train)} training sequences, median correction {1000 * reference.correction_m:.2f} mm")
    refiner.guard = reference
    halves = {path: load_scored(path, 2 * args.sequences, args.seed + 1) for path in args.val}
    pick = [seq for seqs in halves.values() for seq in seqs[0::2]]
    check = [seq for seqs in halves.values() for seq in seqs[1::2]]
    picked = np.array([r["score"] for r in score_sequences(refiner, pick)])
    threshold = threshold_of(picked, args.threshold_quantile)
    sweep = {"threshold": threshold, "p99": float(np.quantile(picked, 0.99)), "p95": float(np.quantile(picked, 0.95))}
    refiner.guard = reference = reference.with_threshold(threshold)
    log(f"threshold {threshold:g}")
    scored = {"validation (in distribution, held out)": score_sequences(refiner, check)}
    for path in args.test:
        sequences = load_scored(path, None, args.seed)
        scored[f"{estimator_label(sequences, path)} ({path})"] = score_sequences(refiner, sequences)
    if args.perturb:
        for kind in ("bodies", "noisy-2d", "scaled-3d"):
            scored[f"validation, {kind}"] = score_sequences(refiner, perturbed(check, kind, args.seed))
    in_distribution = next(iter(scored.values()))
    sets = {}
    for name, rows in scored.items():
        sets[name] = {**separation(rows, threshold), "sweep": {k: separation(rows, t) for k, t in sweep.items()}}
        if rows is not in_distribution:  # with the held-out validation: other domain or not, and worse or not
            both = in_distribution + rows
            sets[name]["auroc_domain"] = auroc(np.array([r["score"] for r in both]), np.arange(len(both)) >= len(in_distribution))
            sets[name]["auroc_with_validation"] = separation(both, threshold)["auroc"]
        s = sets[name]
        log(f"{name}: flagged {s['flagged_share']:.3f}, worse {s['worse_share']:.3f}, precision {s['precision']}, recall {s['recall']}, "
            f"AUROC {s['auroc']}, domain {s.get('auroc_domain')}, with validation {s.get('auroc_with_validation')}")
    if args.write_weights:
        set_denoiser_metadata(refiner.weights_path, refiner.weights_path, {GUARD_METADATA_KEY: reference.to_json()})
        log(f"stored the guard reference in {refiner.weights_path}")
    return {"settings": {"sequences": args.sequences, "seed": args.seed, "perturb": args.perturb, "threshold_quantile": args.threshold_quantile},
            "reference": {"sequences": len(train), "correction_mm": 1000 * reference.correction_m,
                          "correction_from": [str(p) for p in args.correction_reference] or [str(p) for p in args.train]},
            "threshold": threshold, "threshold_sweep": sweep, "threshold_sequences": len(pick), "sets": sets}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.guard", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
