"""Frame rates: refining a sequence at the weights' training rate (resampled and back) versus as it is.

The shipped weights learned 30 fps motion (Bandai-Namco capture). ``refine`` resamples a
sequence of another rate to 30 fps, refines it and resamples the result back to the input's
frames (``--fps-policy resample``, the default); ``--fps-policy ignore`` refines the frames as
they are. This probe scores both, and the unrefined estimate, against ``gt_3d`` at the input's
frames (root-relative, pooled frame-weighted; mm, mm/frame²).

On Human3.6M (50 fps, real Stacked-Hourglass 2D, the issue-14 recipe's base-estimator files):

    python -m benchmarks.frame_rate --data data/h36m/<estimator>.h5 --out benchmarks/results/frame_rate_h36m

Without Human3.6M, ``--as-fps 50`` first resamples 30 fps files (2D, estimate and ground truth)
to 50 fps, a stand-in that is smoother than a real 50 fps estimator output:

    python -m benchmarks.frame_rate --data data/val_temporal.h5 --as-fps 50 --out benchmarks/results/frame_rate_bandai50
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from benchmarks.accuracy import estimator_label, load_scored, pooled_report
from benchmarks.report import change_pct, count, fmt, markdown_table, report_head, run_probe
from d3prefine.errors import InputError
from d3prefine.io import PoseSequence
from d3prefine.metrics import METRICS
from d3prefine.refine import Refiner
from d3prefine.resample import FpsPolicy, resample

SCORED = ("mpjpe", "p_mpjpe", "accel_error")  # of d3prefine.metrics.METRICS


def as_fps(seq: PoseSequence, fps: float) -> PoseSequence:
    """``seq`` resampled to ``fps`` (2D, estimate and ground truth), a stand-in for a video at that rate."""
    arrays = {key: resample(getattr(seq, key), seq.fps, fps) for key in ("poses_2d", "poses_3d", "gt_3d")}
    return dataclasses.replace(seq, **arrays, fps=fps)


def score_file(refiner: Refiner, path: Path, max_sequences: int | None, seed: int, fps: float | None) -> dict:
    """Pooled metrics of the estimate and of both ways of refining it, for ``max_sequences`` sequences of ``path``."""
    sequences = load_scored(path, max_sequences, seed)
    if fps is not None:
        sequences = [as_fps(seq, fps) for seq in sequences]
    rates = {seq.fps for seq in sequences}
    if refiner.fps is None or rates == {refiner.fps}:
        raise InputError(f"{path}: sequences at {sorted(rates)} fps, weights at {refiner.fps} fps: nothing to compare (try --as-fps)")
    as_is = refiner.refine_sequences(sequences, fps_policy=FpsPolicy.IGNORE)
    at_rate = refiner.refine_sequences(sequences, fps_policy=FpsPolicy.RESAMPLE)
    predictions = {
        "base estimator (no refinement)": [seq.poses_3d for seq in sequences],
        "refined as it is (--fps-policy ignore)": [r.poses_3d for r in as_is],
        f"refined at {refiner.fps:g} fps and back (--fps-policy resample, default)": [r.poses_3d for r in at_rate],
    }
    rows = [{"method": label, "metrics": {m: pooled_report(poses, sequences).summary[m] for m in SCORED}} for label, poses in predictions.items()]
    for row in rows:
        row["change_pct_vs_base"] = {m: change_pct(row["metrics"][m], rows[0]["metrics"][m]) for m in SCORED}
    return {
        "estimator": estimator_label(sequences, path), "file": path, "fps": sorted(rates), "resampled_from_file": fps is not None,
        "sequences": len(sequences), "frames": sum(s.num_frames for s in sequences), "rows": rows,
    }


def markdown(document: dict) -> str:
    lines = [*report_head("Frame rate: refined at the weights' rate versus as it is", document["run"]),
             f"Weights trained at {document['weights_fps']:g} fps; errors against ground truth at the input's frames, "
             "in parentheses the change versus the base estimator.", ""]
    for f in document["files"]:
        header = ["method", *(f"{METRICS[m].title} ({METRICS[m].unit})" for m in SCORED)]
        table = [[r["method"], *(f"{fmt(r['metrics'][m], 2)} ({fmt(r['change_pct_vs_base'][m], 1, '%', signed=True)})" for m in SCORED)]
                 for r in f["rows"]]
        source = " (resampled from the file's rate by --as-fps)" if f["resampled_from_file"] else ""
        lines += [f"## {f['estimator']}, {', '.join(f'{r:g}' for r in f['fps'])} fps{source}", "",
                  f"{f['sequences']} sequences, {f['frames']:,} frames of `{f['file']}`.", "", markdown_table(header, table), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, action="append", required=True, help="pose file with gt_3d and fps (repeatable)")
    parser.add_argument("--sequences", type=count, default=None, help="seeded subsample of sequences per file (default: all)")
    parser.add_argument("--as-fps", type=float, default=None, help="first resample every sequence to this rate (a stand-in)")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    files = [score_file(refiner, path, args.sequences, args.seed, args.as_fps) for path in args.data]
    return {"settings": {"sequences": args.sequences, "seed": args.seed, "as_fps": args.as_fps}, "weights_fps": refiner.fps, "files": files}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.frame_rate", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
