"""The subject's skeleton (``refine --skeleton``): what known bone lengths add, and to what.

    python -m benchmarks.skeleton --val data/h36m/train_temporal.h5 --val data/h36m/train_frame.h5 \\
        --max-sequences 160 --threads 1 --out benchmarks/results/skeleton_h36m_s156

A biomechanics user often knows the subject's bone lengths (measured, or from a calibration
recording). Here the ground truth's median bone lengths of each sequence stand for that
calibration (the skeletons of Human3.6M's and Bandai's subjects are rigid: a subject's bones keep
one length over all their recordings). Per ``--val`` file (pose files with ``gt_3d``; a seeded
subsample of ``--max-sequences``) four rows: the base estimator; the base estimator on the
subject's skeleton (the classical use of a known skeleton, no model: its bone directions, the
subject's lengths); the refinement with ``refine``'s defaults (``Refiner.refine_sequences``:
a sequence at another frame rate than the weights' is refined at theirs and resampled back); and the same refinement on the
subject's skeleton, exactly as ``refine --skeleton`` gives it (the final poses re-chained by
:func:`d3prefine.bones.rechain`). MPJPE, P-MPJPE and acceleration error pooled frame-weighted
(:func:`benchmarks.accuracy.pooled_report`), and the share of sequences whose MPJPE a row makes
worse than the base estimator's (by more than :data:`WORSE_MM`). JSON ``{"benchmark", "run", "weights", "settings", "files":
[{"estimator", "val_file", "sequences", "frames", "rows": [{"method", "metrics": {"mpjpe",
"p_mpjpe", "accel_error"}, "worse_share"}]}]}``, in mm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.accuracy import estimator_label, load_scored, sequence_reports
from benchmarks.report import WORSE_MM, change_pct, count, fmt, made_worse, markdown_table, report_head, run_probe
from d3prefine.bones import median_bone_lengths, rechain
from d3prefine.io import PoseSequence
from d3prefine.metrics import METRICS, pool_reports
from d3prefine.refine import Refiner
from d3prefine.runtime import log

REPORTED = ("mpjpe", "p_mpjpe", "accel_error")  # of d3prefine.metrics.METRICS
BASE, BASE_SKELETON = "base estimator", "base estimator on the subject's skeleton"
REFINED, REFINED_SKELETON = "d3prefine (defaults)", "d3prefine --skeleton (the subject's)"


def on_skeleton(poses: list[np.ndarray], sequences: list[PoseSequence]) -> list[np.ndarray]:
    """``poses (T, J, 3)`` metres per sequence with every bone at the sequence's ground-truth
    median length (its subject's skeleton), directions and root trajectory kept."""
    return [rechain(p, median_bone_lengths(seq.gt_3d, seq.layout), seq.layout) for p, seq in zip(poses, sequences)]


def score_file(path: Path, refiner: Refiner, args: argparse.Namespace) -> dict:
    """The four rows (module docstring) on a seeded subsample of ``path``."""
    sequences = load_scored(path, args.max_sequences, args.seed)
    base = [seq.poses_3d for seq in sequences]
    refined = [r.poses_3d for r in refiner.refine_sequences(sequences)]  # as refine does: at the weights' frame rate and back
    predictions = {BASE: base, BASE_SKELETON: on_skeleton(base, sequences), REFINED: refined, REFINED_SKELETON: on_skeleton(refined, sequences)}
    reports = {method: sequence_reports(poses, sequences) for method, poses in predictions.items()}
    base_mpjpe = [r.summary["mpjpe"] for r in reports[BASE]]
    rows = []
    for method, own in reports.items():
        pooled = pool_reports(own).summary
        worse = np.mean(made_worse([r.summary["mpjpe"] for r in own], base_mpjpe))
        rows.append({"method": method, "metrics": {m: pooled[m] for m in REPORTED}, "worse_share": None if method == BASE else float(worse)})
    label = estimator_label(sequences, path)
    log(f"  {label}: " + ", ".join(f"{r['method']} {r['metrics']['mpjpe']:.2f}" for r in rows) + " mm MPJPE")
    return {"estimator": label, "val_file": str(path), "sequences": len(sequences), "frames": sum(s.num_frames for s in sequences), "rows": rows}


def markdown(document: dict) -> str:
    lines = [*report_head("The subject's skeleton (refine --skeleton)", document["run"]),
             "Each sequence's ground-truth median bone lengths stand for a calibration of its subject. MPJPE, P-MPJPE in mm and "
             "acceleration error in mm/frame², pooled frame-weighted; in parentheses the change versus the base estimator; the last "
             f"column the share of sequences whose MPJPE the row raises above the base estimator's by more than {WORSE_MM:g} mm.", ""]
    for f in document["files"]:
        base = f["rows"][0]["metrics"]
        table = [[r["method"], *(fmt(r["metrics"][m], 2) + ("" if r["method"] == BASE else f" ({fmt(change_pct(r['metrics'][m], base[m]), 1, '%', signed=True)})")
                                 for m in REPORTED),
                  "—" if r["worse_share"] is None else f"{100 * r['worse_share']:.0f} %"] for r in f["rows"]]
        lines += [f"## {f['estimator']}", "", f"{f['sequences']} sequences, {f['frames']:,} frames of `{f['val_file']}`.", "",
                  markdown_table(["method", *(f"{METRICS[m].title} ({METRICS[m].unit})" for m in REPORTED), "sequences made worse"], table), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="pose file with gt_3d (repeatable)")
    parser.add_argument("--max-sequences", type=count, default=None, help="seeded subsample of sequences per --val file (default: all)")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    return {"settings": {"max_sequences": args.max_sequences, "seed": args.seed, "threads": args.threads},
            "files": [score_file(path, refiner, args) for path in args.val]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.skeleton", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
