"""Where the head and spine joints sit: ground truth, base estimator and refinement, per file.

    python -m benchmarks.joint_geometry --val data/h36m/train_temporal.h5 --val data/varied_hips/val_temporal.h5 \\
        --max-sequences 60 --threads 1 --out benchmarks/results/joint_geometry

Datasets place joints differently (Bandai's neck/nose joint is its ``Head`` joint, on the line
from the thorax to the head top; Human3.6M's nose is in front of it), and weights trained on one
placement move another toward it. Per sequence (the mean over its frames; h36m17 poses, each
measured in its own torso axes, :func:`recipes.bodies.torso_axes`):

- ``nose_fraction``: the nose's position along the thorax-to-head-top line, a fraction of its length;
- ``nose_forward_mm``: how far the nose sits in front of that line (mm, along the torso's forward
  direction made orthogonal to the line);
- ``head_tilt_deg``: the forward lean of the thorax-to-head-top line from the pelvis-to-thorax
  direction, about the shoulders' axis (degrees);
- ``spine_back_deg``: how far the pelvis-to-spine direction leans behind the pelvis-to-thorax one.

Rows: the ground truth, the base estimator's poses and the refinement with ``refine``'s defaults,
each the 5th / 50th / 95th percentile over a seeded subsample of ``--max-sequences``. JSON
``{"benchmark", "run", "weights", "settings", "files": [{"estimator", "val_file", "sequences",
"rows": {source: {measure: [p5, p50, p95]}}}]}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.accuracy import estimator_label, load_scored
from benchmarks.report import count, fmt, markdown_table, report_head, run_probe
from d3prefine.errors import InputError
from d3prefine.refine import Refiner
from d3prefine.runtime import log
from d3prefine.skeleton import H36M_17
from recipes.bodies import orthogonal_unit, torso_axes

MEASURES = ("nose_fraction", "nose_forward_mm", "head_tilt_deg", "spine_back_deg")
SOURCES = ("ground truth", "base estimator", "d3prefine (defaults)")
PERCENTILES = (5, 50, 95)


def _lean_deg(v: np.ndarray, up: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Signed angle (degrees) of ``v (T, 3)`` from ``up`` toward ``forward`` (both unit, (T, 3))."""
    return np.degrees(np.arctan2((v * forward).sum(-1), (v * up).sum(-1)))


def head_geometry(poses: np.ndarray) -> dict[str, float]:
    """The four measures (module docstring) of ``poses (T, 17, 3)`` metres, h36m17, averaged over frames."""
    poses = np.asarray(poses, np.float64)
    _, up, forward = torso_axes(poses)
    thorax, nose, head_top, pelvis, spine = (poses[:, H36M_17.joint_names.index(name)]
                                             for name in ("thorax", "neck_nose", "head_top", "pelvis", "spine"))
    line = head_top - thorax
    length = np.linalg.norm(line, axis=-1)
    u = line / length[:, None]
    along = ((nose - thorax) * u).sum(-1)
    ahead = orthogonal_unit(forward, u)
    return {
        "nose_fraction": float(np.mean(along / length)),
        "nose_forward_mm": 1000 * float(np.mean(((nose - thorax) * ahead).sum(-1))),
        "head_tilt_deg": float(np.mean(_lean_deg(u, up, forward))),
        "spine_back_deg": -float(np.mean(_lean_deg(spine - pelvis, up, forward))),
    }


def percentiles(per_sequence: list[dict[str, float]]) -> dict[str, list[float]]:
    """``{measure: [p5, p50, p95]}`` over sequences."""
    return {m: np.percentile([g[m] for g in per_sequence], PERCENTILES).tolist() for m in MEASURES}


def score_file(path: Path, refiner: Refiner, args: argparse.Namespace) -> dict:
    sequences = load_scored(path, args.max_sequences, args.seed)
    for seq in sequences:
        if seq.layout != H36M_17:
            raise InputError(f"{path}: sequence {seq.name!r}: joint layout {seq.layout.name!r}, this probe measures h36m17")
    refined = [r.poses_3d for r in refiner.refine_sequences(sequences)]
    poses = {SOURCES[0]: [s.gt_3d for s in sequences], SOURCES[1]: [s.poses_3d for s in sequences], SOURCES[2]: refined}
    rows = {source: percentiles([head_geometry(p) for p in seqs]) for source, seqs in poses.items()}
    log(f"{path}: nose forward (mm, median) " + ", ".join(f"{s} {r['nose_forward_mm'][1]:.0f}" for s, r in rows.items()))
    return {"estimator": estimator_label(sequences, path), "val_file": str(path), "sequences": len(sequences), "rows": rows}


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    return {"settings": {"max_sequences": args.max_sequences, "seed": args.seed},
            "files": [score_file(path, refiner, args) for path in args.val]}


def markdown(document: dict) -> str:
    lines = [*report_head("Where the head and spine joints sit", document["run"]),
             "Per sequence, the mean over its frames; each cell the 5th / 50th / 95th percentile over the file's sequences "
             "(module docstring of `benchmarks/joint_geometry.py`).", ""]
    for f in document["files"]:
        lines += [f"## {f['estimator']} ({f['val_file']}, {f['sequences']} sequences)", "",
                  markdown_table(["poses", *MEASURES],
                                 [[source, *(" / ".join(fmt(v, 2 if m == "nose_fraction" else 0) for v in row[m]) for m in MEASURES)]
                                  for source, row in f["rows"].items()]), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="pose file with gt_3d, h36m17 (repeatable)")
    parser.add_argument("--max-sequences", type=count, default=60, help="seeded subsample per file")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.joint_geometry", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
