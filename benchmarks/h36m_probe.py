"""Why the shipped weights fail on Human3.6M: one cause changed at a time.

    python -m benchmarks.h36m_probe --val data/h36m/val_temporal.h5 \\
        --estimator data/h36m/estimators/temporal_S8.safetensors \\
        --cameras ../shared/data/h36m-train/cameras.json --reference examples/walk.npz \\
        --out benchmarks/results/h36m_probe --max-sequences 12 --threads 1

On a seeded subsample of held-out sequences (``--val``, from ``recipes.h36m_build``), each
condition builds the refiner's input one way and refines it with the weights (default: the
shipped ones, K = 1, default smoothing): the real detections and the lifter's output as they
are; the same refined at the weights' frame rate (resampled there and back, as ``refine`` does
by default); the detector's neck/nose and head replaced by the projected mocap joints (joint
definitions); perfect 2D (the projected ground truth, with lens distortion) lifted by the same
lifter; perfect 2D with the ground truth as the 3D input (nothing to correct); and the lifter's
error halved (error magnitude). Reports MPJPE / P-MPJPE of input and refinement and the median
length of every bone (ground truth, input, refined, and the ``--reference`` file's ground truth,
e.g. a shipped Bandai example), in mm.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.accuracy import load_scored
from benchmarks.report import change_pct, count, fmt, markdown_table, report_head, run_probe
from d3prefine.io import PoseSequence, load_poses
from d3prefine.metrics import bone_lengths, mpjpe, p_mpjpe
from d3prefine.preprocess import normalize_screen
from d3prefine.refine import Refiner
from d3prefine.runtime import log
from d3prefine.skeleton import H36M_17
from recipes.estimators import load_lifter, predict
from recipes.h36m import load_cameras

#: Bones reported, by child joint of ``h36m17`` (the bone from its parent).
BONES = {"hip": 1, "thigh": 2, "shin": 3, "spine": 7, "thorax": 8, "neck": 9, "head": 10, "shoulder": 14, "upper arm": 15, "forearm": 16}
HEAD_JOINTS = (9, 10)  # neck_nose, head_top: the joints the Stacked-Hourglass detector defines differently


def median_bones_mm(sequences: list[np.ndarray]) -> dict[str, float]:
    """Median over frames of each bone in :data:`BONES`, averaged over sequences ``(T, J, 3)`` metres -> mm."""
    medians = np.mean([np.median(bone_lengths(poses, H36M_17), axis=0) for poses in sequences], axis=0)
    bones = {child: k for k, (_, child) in enumerate(H36M_17.bones)}
    return {name: 1000.0 * float(medians[bones[child]]) for name, child in BONES.items()}


def conditions(sequences: list[PoseSequence], lifter, cameras: dict) -> dict[str, list[PoseSequence]]:
    """The refiner inputs of every condition (same sequences, one cause changed each)."""

    def lifted(seq: PoseSequence, poses_2d: np.ndarray) -> PoseSequence:
        (poses_3d,) = predict(lifter, [normalize_screen(poses_2d, seq.image_size).astype(np.float32)])
        return replace(seq, poses_2d=poses_2d.astype(np.float32), poses_3d=poses_3d)

    perfect, mocap_head = [], []
    for seq in sequences:
        camera = cameras[seq.provenance["subject"]][seq.provenance["camera"]]
        projected = camera.project(seq.gt_3d.astype(np.float64)).astype(np.float32)
        perfect.append(lifted(seq, projected))
        head = seq.poses_2d.copy()
        head[:, HEAD_JOINTS] = projected[:, HEAD_JOINTS]
        mocap_head.append(lifted(seq, head))
    root = H36M_17.root
    return {
        "detections (as is)": sequences,
        "mocap neck/nose and head in the 2D": mocap_head,
        "perfect 2D (projected ground truth)": perfect,
        "perfect 2D, ground truth as 3D input": [replace(s, poses_3d=s.gt_3d - s.gt_3d[:, root : root + 1]) for s in perfect],
        "detections, lifter error halved": [
            replace(s, poses_3d=0.5 * (s.poses_3d + (s.gt_3d - s.gt_3d[:, root : root + 1]))) for s in sequences
        ],
    }


def measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    sequences = load_scored(args.val, args.max_sequences, args.seed)
    lifter, _ = load_lifter(args.estimator)
    inputs = conditions(sequences, lifter, load_cameras(args.cameras))
    rows = []
    for name, seqs in inputs.items():
        runs = [("50 fps as is", refiner.refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in seqs]))]
        if name == "detections (as is)" and refiner.fps is not None:
            runs.append((f"at the weights' {refiner.fps:g} fps", refiner.refine_sequences(seqs)))
        for how, results in runs:
            gt = np.concatenate([s.gt_3d for s in seqs])
            before, after = np.concatenate([s.poses_3d for s in seqs]), np.concatenate([r.poses_3d for r in results])
            row = {
                "condition": name, "refined": how, "frames": len(gt),
                "input_mpjpe": 1000.0 * float(mpjpe(before, gt)), "refined_mpjpe": 1000.0 * float(mpjpe(after, gt)),
                "input_p_mpjpe": 1000.0 * float(p_mpjpe(before, gt)), "refined_p_mpjpe": 1000.0 * float(p_mpjpe(after, gt)),
                "bones_input_mm": median_bones_mm([s.poses_3d for s in seqs]),
                "bones_refined_mm": median_bones_mm([r.poses_3d for r in results]),
            }
            log(f"{name}, {how}: MPJPE {row['input_mpjpe']:.1f} -> {row['refined_mpjpe']:.1f} mm")
            rows.append(row)
    reference = None
    if args.reference is not None:
        reference = {"file": args.reference, "bones_gt_mm": median_bones_mm([s.gt_3d for s in load_poses(args.reference)])}
    return {
        "settings": {"val": args.val, "estimator": args.estimator, "max_sequences": args.max_sequences, "seed": args.seed,
                     "weights_fps": refiner.fps},
        "sequences": [s.name for s in sequences],
        "bones_gt_mm": median_bones_mm([s.gt_3d for s in sequences]),
        "reference": reference,
        "rows": rows,
    }


def markdown(document: dict) -> str:
    rows = document["rows"]

    def change(after: float, before: float) -> str:  # no percentage of an error-free input
        return fmt(change_pct(after, before) if before >= 0.05 else None, 1, " %", signed=True)

    table = [
        [r["condition"], r["refined"], fmt(r["input_mpjpe"], 1), fmt(r["refined_mpjpe"], 1), change(r["refined_mpjpe"], r["input_mpjpe"]),
         fmt(r["input_p_mpjpe"], 1), fmt(r["refined_p_mpjpe"], 1), change(r["refined_p_mpjpe"], r["input_p_mpjpe"])]
        for r in rows
    ]
    header = ["condition", "refined", "input MPJPE", "refined MPJPE", "change", "input P-MPJPE", "refined P-MPJPE", "change"]
    bone_header = ["bone", "ground truth", *(f"{r['condition']}, {r['refined']}: input / refined" for r in rows)]
    reference = document["reference"]
    if reference:
        bone_header.insert(2, f"reference `{Path(reference['file']).name}` ground truth")
    bone_rows = []
    for bone, gt in document["bones_gt_mm"].items():
        cells = [bone, fmt(gt, 0)]
        if reference:
            cells.append(fmt(reference["bones_gt_mm"][bone], 0))
        cells += [f"{fmt(r['bones_input_mm'][bone], 0)} / {fmt(r['bones_refined_mm'][bone], 0)}" for r in rows]
        bone_rows.append(cells)
    return "\n".join([
        *report_head("Why the shipped weights fail on Human3.6M", document["run"]),
        (f"{len(document['sequences'])} held-out sequences; weights `{document['weights']['denoiser']['path']}` "
         f"(trained at {fmt(document['settings']['weights_fps'], 0)} fps), K = 1, default smoothing. Errors in mm, "
         "change = refined versus input."), "",
        markdown_table(header, table, align_right_from=2), "",
        "## Median bone lengths (mm)", "",
        markdown_table(bone_header, bone_rows), "",
    ])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, required=True, help="held-out pose file of one estimator from recipes.h36m_build")
    parser.add_argument("--estimator", type=Path, required=True, help="the lifter that produced --val (to lift the other 2D inputs)")
    parser.add_argument("--cameras", type=Path, required=True, help="Human3.6M cameras.json (to project the ground truth)")
    parser.add_argument("--reference", type=Path, default=None, help="a pose file with gt_3d whose bone lengths are shown (e.g. examples/walk.npz)")
    parser.add_argument("--max-sequences", type=count, default=12, help="seeded subsample of --val")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.h36m_probe", __doc__, argv, add_arguments, measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
