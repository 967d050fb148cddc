"""How the default ``--smooth`` window was chosen: the refined poses with each candidate window.

Refines a seeded subsample of **training** sequences of each file (the validation split is kept
for the accuracy benchmark) with the shipped weights, K = 1, once per Savitzky-Golay window
(0 = no filter), and scores them against ``gt_3d`` (root-relative, pooled frame-weighted; mm,
mm/frame²). ``DEFAULT_SMOOTH`` in ``d3prefine/refine.py`` is the window with the lowest MPJPE
summed over the files.

    python -m benchmarks.smoothing --train data/train_temporal.h5 --train data/train_frame.h5 \\
        --out benchmarks/results/smoothing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.accuracy import estimator_label, load_scored, pooled_report
from benchmarks.report import change_pct, count, fmt, markdown_table, report_head, run_probe
from d3prefine.metrics import METRICS
from d3prefine.refine import DEFAULT_SMOOTH, SMOOTH_POLYORDER, Refiner
from d3prefine.runtime import log

WINDOWS = (0, 5, 7, 9, 11, 13)  # candidate windows (frames); 0 = the network output unfiltered
SCORED = ("mpjpe", "p_mpjpe", "accel_error")  # of d3prefine.metrics.METRICS


def score_windows(refiner: Refiner, path: Path, max_sequences: int, seed: int) -> dict:
    """Pooled metrics of ``max_sequences`` sequences of ``path`` refined with every window of :data:`WINDOWS`."""
    sequences = load_scored(path, max_sequences, seed)
    inputs = [(seq.poses_2d, seq.poses_3d, seq.image_size) for seq in sequences]
    rows = []
    for window in WINDOWS:
        refined = refiner.refine_many(inputs, smooth=window)
        report = pooled_report([r.poses_3d for r in refined], sequences)
        rows.append({"window": window, "metrics": {m: report.summary[m] for m in SCORED}})
    base = rows[0]["metrics"]
    for row in rows:
        row["change_pct_vs_unfiltered"] = {m: change_pct(row["metrics"][m], base[m]) for m in SCORED}
    label = estimator_label(sequences, path)
    log(f"{label}: " + ", ".join(f"window {r['window']}: MPJPE {r['metrics']['mpjpe']:.3f}" for r in rows))
    return {"estimator": label, "file": path, "sequences": len(sequences), "frames": sum(s.num_frames for s in sequences), "rows": rows}


def best_window(files: list[dict]) -> int:
    """The window (> 0) with the lowest MPJPE summed over the files."""
    totals = {w: sum(row["metrics"]["mpjpe"] for f in files for row in f["rows"] if row["window"] == w) for w in WINDOWS if w}
    return min(totals, key=totals.get)


def markdown(document: dict) -> str:
    lines = [*report_head("Choice of the --smooth window", document["run"]),
             f"Training sequences refined with K = 1 and a Savitzky-Golay filter of order {SMOOTH_POLYORDER}; in parentheses the change "
             "versus no filter (window 0). "
             f"Lowest MPJPE over all files: window {document['best_window']} (the default is {document['default_window']}).", ""]
    for f in document["files"]:
        header = ["window", *(f"{METRICS[m].title} ({METRICS[m].unit})" for m in SCORED)]
        table = [[str(r["window"]), *(f"{fmt(r['metrics'][m], 3 if m == 'mpjpe' else 2)} ({fmt(r['change_pct_vs_unfiltered'][m], 1, '%', signed=True)})"
                                      for m in SCORED)] for r in f["rows"]]
        lines += [f"## {f['estimator']}", "", f"{f['sequences']} sequences, {f['frames']:,} frames of `{f['file']}`.", "", markdown_table(header, table), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, action="append", required=True, help="training pose file with gt_3d (repeatable)")
    parser.add_argument("--sequences", type=count, default=150, help="seeded subsample of sequences per file")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    files = [score_windows(refiner, path, args.sequences, args.seed) for path in args.train]
    return {"settings": {"sequences": args.sequences, "seed": args.seed, "windows": list(WINDOWS), "polyorder": SMOOTH_POLYORDER},
            "best_window": best_window(files), "default_window": DEFAULT_SMOOTH, "files": files}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.smoothing", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
