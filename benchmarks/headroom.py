"""Headroom: how far any mix of the input and the refinement could go, and what a window cannot see.

The fallback (``refine --fallback``, the default) leans each sequence's output on the input as
far as the guard flags it. This probe asks how much better *any* such choice could be, on data
with ground truth: per ``--val`` file it scores (root-relative MPJPE pooled frame-weighted, mm)

- the base estimator and the network's refinement without the fallback (``--no-fallback``);
- the defaults (with the fallback);
- the input moved by a share ``a`` of the correction, ``y + a (z - y)`` (``y`` the input, ``z`` the
  refinement), with the one ``a`` of 0, 0.05, ..., 1.5 best for the whole file: an oracle chosen
  on the scored file itself;
- each sequence with its own best ``a``: what a perfect guard could reach by leaning on the input;
- the input and the refinement with each sequence's constant per-joint offset from the ground
  truth removed: the part of the error that stays the same over a sequence, which a 27-frame
  window cannot tell from the pose; and that offset's length per joint, for both;
- which part of the correction ``z - y`` (no fallback) transfers: it is split into four parts
  (:func:`correction_parts`): its mean over the sequence (constant) and the rest (varying), each
  in the image plane (camera x, y) and in depth (camera z); per part the best single share for
  the file with the other three kept whole, the constant image-plane part's best share per subject
  (``provenance["subject"]``, where the file records it), and how often that part brings the
  pose closer to the 2D keypoints (:func:`image_misfit`; no ground truth needed).

Human3.6M, all sequences of the validation subject and of the three cross-fitted ones:

    python -m benchmarks.headroom --val data/h36m/val_temporal.h5 --val data/h36m/val_frame.h5 \\
        --val data/h36m/train_temporal.h5 --val data/h36m/train_frame.h5 --threads 1 --out benchmarks/results/headroom_h36m
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.accuracy import estimator_label, load_scored
from benchmarks.report import change_pct, count, fmt, markdown_table, report_head, run_probe
from d3prefine.metrics import mpjpe
from d3prefine.preprocess import root_relative
from d3prefine.refine import Refiner

SHARES = np.round(np.arange(0.0, 1.5 + 1e-9, 0.05), 2)  # the a of y + a (z - y)
WHOLE = int(np.flatnonzero(SHARES == 1.0)[0])  # the index of a = 1: the whole correction
BASE = "base estimator"
NETWORK = "refined, --no-fallback (a = 1)"
DEFAULT = "refined, defaults (with the fallback)"
GLOBAL = "best single a for the file (oracle)"
PER_SEQUENCE = "best a per sequence (oracle: a perfect guard)"
BASE_OFFSET = "base estimator, constant offset removed (oracle)"
NETWORK_OFFSET = "refined --no-fallback, constant offset removed (oracle)"
IMAGE_PLANE = np.array([1.0, 1.0, 0.0])  # camera x (right) and y (down): the axes of the 2D image
DEPTH = 1.0 - IMAGE_PLANE  # camera z (forward)
PARTS = ("constant, image plane", "constant, depth", "varying, image plane", "varying, depth")


def summed_mpjpe(poses: np.ndarray, x: np.ndarray) -> float:
    """Per-frame MPJPE (:func:`d3prefine.metrics.mpjpe`, root-relative) summed over the frames
    (metres x frames) of ``poses`` against ``x``, both ``(T, J, 3)`` metres."""
    return float(mpjpe(poses, x, reduce="frame").sum())


def share_errors(y: np.ndarray, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`summed_mpjpe` of ``y + a (z - y)`` for every ``a`` of :data:`SHARES`: ``y`` the input,
    ``z`` the refinement, ``x`` the ground truth, each ``(T, J, 3)`` metres. Returns ``(len(SHARES),)``."""
    y, z = y.astype(np.float64), z.astype(np.float64)
    return np.array([summed_mpjpe(y + a * (z - y), x) for a in SHARES])


def constant_offset(poses: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The mean root-relative error of ``poses`` against ``x`` (both ``(T, J, 3)`` metres) over
    the sequence: ``(J, 3)`` metres, the part of the error that stays the same in every frame."""
    return (root_relative(poses, 0).astype(np.float64) - root_relative(x, 0)).mean(axis=0)


def offset_removed_error(poses: np.ndarray, x: np.ndarray) -> float:
    """:func:`summed_mpjpe` of ``poses`` ``(T, J, 3)`` less their :func:`constant_offset`."""
    return summed_mpjpe(poses - constant_offset(poses, x), x)


def correction_parts(y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """The correction ``z - y`` (input ``y``, refinement ``z``, both root-relative ``(T, J, 3)``
    metres, camera frame) split into the four :data:`PARTS`, each ``(T, J, 3)``; they sum to it."""
    correction = z.astype(np.float64) - y
    constant = np.broadcast_to(correction.mean(axis=0), correction.shape)
    varying = correction - constant
    return dict(zip(PARTS, (constant * IMAGE_PLANE, constant * DEPTH, varying * IMAGE_PLANE, varying * DEPTH)))


def part_share_errors(y: np.ndarray, parts: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Per part of ``parts`` (:func:`correction_parts` of ``y`` and a refinement), :func:`summed_mpjpe`
    of ``y`` plus the correction with that part scaled by every ``a`` of :data:`SHARES` (the other
    parts whole); ``x`` the ground truth, all root-relative ``(T, J, 3)`` metres. Returns
    ``{part: (len(SHARES),)}``."""
    whole = y + sum(parts.values())
    return {name: np.array([summed_mpjpe(whole + (a - 1.0) * part, x) for a in SHARES]) for name, part in parts.items()}


def image_misfit(poses: np.ndarray, poses_2d: np.ndarray) -> float:
    """How far root-relative poses ``(T, J, 3)`` (metres, camera frame) lie from the 2D keypoints
    ``(T, J, 2)`` (any image units, x right and y down) under a weak-perspective camera: per frame
    both are centred on their joints' mean and the poses' camera x, y scaled by the least-squares
    factor onto the keypoints; the mean residual length, in the keypoints' units."""
    xy = poses[..., :2].astype(np.float64)
    xy = xy - xy.mean(axis=1, keepdims=True)
    uv = poses_2d.astype(np.float64) - poses_2d.mean(axis=1, keepdims=True)
    scale = (xy * uv).sum(axis=(1, 2)) / np.maximum((xy * xy).sum(axis=(1, 2)), 1e-12)
    return float(np.linalg.norm(uv - scale[:, None, None] * xy, axis=-1).mean())


def best_share(errors: np.ndarray, frames: int) -> dict:
    """``{"share", "mpjpe_mm", "whole_mm", "none_mm"}`` of :data:`SHARES`-indexed summed errors
    (metres x frames) over ``frames``: the best share and the MPJPE (mm) there, at 1 and at 0."""
    mm = 1000 * errors / frames
    return {"share": float(SHARES[errors.argmin()]), "mpjpe_mm": float(mm.min()), "whole_mm": float(mm[WHOLE]), "none_mm": float(mm[0])}


def score_file(refiner: Refiner, path: Path, sequences: int | None, seed: int) -> dict:
    """The probe's rows (module docstring) for ``sequences`` seeded sequences of ``path``."""
    chosen = load_scored(path, sequences, seed)
    network = refiner.refine_sequences(chosen, fallback=False)
    defaults = refiner.refine_sequences(chosen)
    grid = np.zeros(len(SHARES))
    sums = {DEFAULT: 0.0, PER_SEQUENCE: 0.0, BASE_OFFSET: 0.0, NETWORK_OFFSET: 0.0}
    offsets = {BASE: 0.0, NETWORK: 0.0}  # frame-weighted sums of |constant offset| per joint, (J,) metres x frames
    parts = {name: np.zeros(len(SHARES)) for name in PARTS}
    subjects: dict[str, list] = {}  # subject: [constant image-plane part's share errors, frames]
    closer_to_2d = 0  # sequences whose constant image-plane correction lowers the image misfit
    for seq, net, default in zip(chosen, network, defaults):
        y, z = root_relative(seq.poses_3d, 0), root_relative(net.poses_3d, 0)
        split = correction_parts(y, z)
        part_errors = part_share_errors(y, split, root_relative(seq.gt_3d, 0))
        for name, errors in part_errors.items():
            parts[name] += errors
        if "subject" in seq.provenance:
            entry = subjects.setdefault(str(seq.provenance["subject"]), [np.zeros(len(SHARES)), 0])
            entry[0] += part_errors[PARTS[0]]
            entry[1] += seq.num_frames
        closer_to_2d += image_misfit(z, seq.poses_2d) < image_misfit(z - split[PARTS[0]], seq.poses_2d)
        offsets[BASE] = offsets[BASE] + seq.num_frames * np.linalg.norm(constant_offset(seq.poses_3d, seq.gt_3d), axis=-1)
        offsets[NETWORK] = offsets[NETWORK] + seq.num_frames * np.linalg.norm(constant_offset(net.poses_3d, seq.gt_3d), axis=-1)
        per_share = share_errors(seq.poses_3d, net.poses_3d, seq.gt_3d)
        grid += per_share
        sums[PER_SEQUENCE] += float(per_share.min())
        sums[DEFAULT] += summed_mpjpe(default.poses_3d, seq.gt_3d)
        sums[BASE_OFFSET] += offset_removed_error(seq.poses_3d, seq.gt_3d)
        sums[NETWORK_OFFSET] += offset_removed_error(net.poses_3d, seq.gt_3d)
    frames = sum(seq.num_frames for seq in chosen)
    best = int(grid.argmin())
    errors = {BASE: grid[0], NETWORK: grid[WHOLE], DEFAULT: sums[DEFAULT], GLOBAL: grid[best], PER_SEQUENCE: sums[PER_SEQUENCE],
              BASE_OFFSET: sums[BASE_OFFSET], NETWORK_OFFSET: sums[NETWORK_OFFSET]}
    rows = [{"method": label, "mpjpe_mm": 1000 * float(total) / frames} for label, total in errors.items()]
    for row in rows:
        row["change_pct_vs_base"] = change_pct(row["mpjpe_mm"], rows[0]["mpjpe_mm"])
    return {"estimator": estimator_label(chosen, path), "file": path, "sequences": len(chosen), "frames": frames,
            "best_share": float(SHARES[best]), "rows": rows, "joints": list(chosen[0].layout.joint_names),
            "offset_per_joint_mm": {label: (1000 * total / frames).tolist() for label, total in offsets.items()},
            "parts": {name: best_share(errors, frames) for name, errors in parts.items()},
            "constant_image_plane_by_subject": {s: best_share(e, n) for s, (e, n) in sorted(subjects.items())},
            "constant_image_plane_closer_to_2d_pct": 100.0 * closer_to_2d / len(chosen)}


def markdown(document: dict) -> str:
    lines = [*report_head("Headroom: any mix of the input and the refinement, and the constant offset", document["run"]),
             "MPJPE (mm, root-relative, pooled frame-weighted), in parentheses the change versus the base estimator. "
             "'Oracle' rows use the ground truth of the scored sequences: bounds, not settings.", ""]
    for f in document["files"]:
        table = [[r["method"], f"{fmt(r['mpjpe_mm'], 2)} ({fmt(r['change_pct_vs_base'], 1, '%', signed=True)})"] for r in f["rows"]]
        lines += [f"## {f['estimator']} (`{f['file']}`)", "",
                  f"{f['sequences']} sequences, {f['frames']:,} frames; best single a = {f['best_share']:.2f}.", "",
                  markdown_table(["method", "MPJPE (mm)"], table), "",
                  "The constant offset per joint (mm; the length of each sequence's mean root-relative error, frame-weighted "
                  "over the sequences):", "",
                  markdown_table(["joint", *f["offset_per_joint_mm"]],
                                 [[name, *(fmt(v[j], 1) for v in f["offset_per_joint_mm"].values())] for j, name in enumerate(f["joints"])]), "",
                  "Which part of the correction (no fallback) transfers: the best single share of each part for the file, "
                  "the other parts whole (oracle), and per subject for the constant image-plane part; the constant "
                  f"image-plane part brings the pose closer to the 2D keypoints in {fmt(f['constant_image_plane_closer_to_2d_pct'], 0)} % "
                  "of the sequences:", "",
                  markdown_table(["part", "best share", "MPJPE there (mm)", "at 1 (mm)", "at 0 (mm)"],
                                 [[name, fmt(b["share"], 2), fmt(b["mpjpe_mm"], 2), fmt(b["whole_mm"], 2), fmt(b["none_mm"], 2)]
                                  for name, b in [*f["parts"].items(),
                                                  *((f"{PARTS[0]}, {s}", b) for s, b in f["constant_image_plane_by_subject"].items())]]), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="pose file with gt_3d (repeatable)")
    parser.add_argument("--max-sequences", type=count, default=None, help="seeded subsample of sequences per --val file (default: all)")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    return {"settings": {"max_sequences": args.max_sequences, "seed": args.seed, "shares": SHARES.tolist()},
            "files": [score_file(refiner, path, args.max_sequences, args.seed) for path in args.val]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.headroom", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
