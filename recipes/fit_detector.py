"""Fit the 2D detector simulation's statistics from a real detector: Human3.6M's Stacked-Hourglass
detections versus the projected motion-capture joints.

    python -m recipes.fit_detector --data ../shared/data/h36m-train --out runs/detector_fit.json

For every subject of ``cameras.json`` (S1, S5, S6, S7, S8), action and camera the ground truth is projected with the camera's calibration
(``X_cam = (X_world - T) @ R``, distorted pinhole) and compared with the detections joint by
joint (``h36m17`` order; the detector's neck/nose is synthesised, see
:data:`d3prefine.keypoints.SH_16`). Everything is in units of the person size (the median larger
side of the projected ground truth's bounding box, :func:`recipes.detector.person_size`), so the
figures carry over to other resolutions. Per joint:

* ``offset``: median detection minus projection, in the 2D frame of the joint's bone (``along``
  from its parent toward it, ``across`` to the subject's left of that direction), fraction of
  the bone's 2D length; the systematic difference between the detector's and the mocap's joint
  definitions.
* ``std``: robust (1.4826 x median absolute deviation) std of the remaining error per axis,
  fraction of person size, without outliers.
* ``rho``: lag-1 autocorrelation of that error at the video's frame rate (50 fps).
* ``outlier_rate``: share of frames whose error, less the view's median error, exceeds
  ``OUTLIER`` x person size, the mean length of such runs and the median size of those errors.
* ``view_offset``: robust std over views, per image axis, of each view's median error once the
  projection is moved by ``h36m-sh``'s joint-definition offsets
  (:func:`recipes.detector.detector_joints`), fraction of person size: how far a view's constant
  offset strays from the median definitions (:class:`recipes.detector.DetectorNoise`'s ``view_offset``).

Per posture class and bin (:data:`recipes.detector.POSTURE_CLASSES`, :func:`recipes.detector.posture_bins`:
how foreshortened the joint's bone is, or a limb joint behind the torso), under ``posture``: the
share of joint-frames in the bin, the factor of its robust std relative to the class over all bins
and the factor of its outlier share relative to the detector's over all joints (so a class's own
level comes with it); :class:`recipes.detector.PostureErrors`' figures. Under ``per_action``, per
Human3.6M action (without its take number) and posture class, the share of joint-frames that are
outliers: what the posture figures stand in for (the seated actions' legs).

And for the whole detector: ``swap_rate``, the share of frames in which a left/right pair of a
distal limb joint is detected crossed (each detection nearer the other side's projection, both
farther than a tenth of the pair's distance from their own), with the mean run length; and
``missed``, the share of detections that are NaN or outside the image.

``--simulate PRESET`` computes the same figures with the detections replaced by the simulation
``recipes.detector.DETECTORS[PRESET]`` of the same projected ground truth (seeded; 30 fps presets
on 50 fps frames, so their start rates, run lengths and lag-1 correlations read as at 30 fps, while
the shares of frames are comparable): how well a preset reproduces the real figures, per action too.

Only summary figures come out (the JSON); they are written into :mod:`recipes.detector` by hand.
Human3.6M is research-licensed: never commit anything else derived from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from d3prefine.keypoints import SH_16
from d3prefine.skeleton import H36M_17
from recipes.detector import (
    DETECTORS,
    H36M_SH_NOISE,
    OCCLUDED_BIN,
    POSTURE_CLASS_OF_JOINT,
    POSTURE_CLASSES,
    DetectorNoise,
    bone_axes,
    detector_joints,
    person_size,
    posture_bins,
    simulate_detections,
)
from recipes.h36m import action_group, load_cameras

OUTLIER = 0.1  # error above this fraction of person size counts as an outlier
DISTAL_PAIRS = ((5, 2), (6, 3), (12, 15), (13, 16))  # (left, right): knees, ankles, elbows, wrists
FPS = 50.0


def views(data: Path, simulate: DetectorNoise | None = None, seed: int = 0):
    """``(action, detections (T, 17, 2), projected ground truth (T, 17, 2), ground truth (T, 17, 3)
    metres in the camera frame, image size)`` of every view; with ``simulate``, the detections are
    that simulation of the projected ground truth (one generator seeded ``seed``, views in order)."""
    rng = np.random.default_rng(seed)
    cameras = load_cameras(data / "cameras.json")
    for subject in sorted(cameras):
        with np.load(data / f"{subject}.npz", allow_pickle=False) as arrays:
            for key in sorted(k for k in arrays.files if "/sh_2d/" in k):
                action, _, cam = key.split("/")
                camera = cameras[subject][cam]
                gt_3d = camera.world_to_camera(arrays[f"{action}/world_3d"].astype(np.float64))
                gt = camera.project(gt_3d)
                det = SH_16.apply(arrays[key].astype(np.float64)) if simulate is None else simulate_detections(gt, rng, simulate, gt_3d)
                yield action, det, gt, gt_3d, camera.resolution


def bone_frame(vectors: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``vectors (T, J, 2)`` pixels in each joint's bone frame ``(along, across)`` of the projected
    ground truth ``gt (T, J, 2)`` (:func:`recipes.detector.bone_axes`), fractions of the 2D bone length."""
    along, across, length = bone_axes(gt)
    return np.stack([(vectors * along).sum(-1), (vectors * across).sum(-1)], axis=-1) / length


def run_lengths(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True along axis 0 of ``mask (T, ...)``, all columns together."""
    flat = mask.reshape(len(mask), -1)
    padded = np.vstack([np.zeros((1, flat.shape[1]), bool), flat, np.zeros((1, flat.shape[1]), bool)]).astype(np.int8)
    lengths = []
    for column in np.diff(padded, axis=0).T:
        starts, ends = np.flatnonzero(column == 1), np.flatnonzero(column == -1)
        lengths.extend((ends - starts).tolist())
    return lengths


def posture_factors(robust: np.ndarray, outlier: np.ndarray, bins: np.ndarray) -> dict:
    """Per posture class: each bin's share of joint-frames, its robust-std factor relative to the
    class and its outlier-share factor relative to all joints, from ``robust (N, 17, 2)`` errors
    (fractions of person size, NaN at the outliers), the ``outlier (N, 17)`` mask and posture
    ``bins (N, 17)``. A bin without frames gets factors 1."""
    robust = np.abs(robust)
    rate_all, figures = outlier.mean(), {}
    for c, name in enumerate(POSTURE_CLASSES):
        joints = [j for j, k in enumerate(POSTURE_CLASS_OF_JOINT) if k == c]
        b, o, r = bins[:, joints].ravel(), outlier[:, joints].ravel(), robust[:, joints].reshape(-1, 2)
        std_all = np.nanmedian(r)
        share, jitter, outliers = [], [], []
        for k in range(OCCLUDED_BIN + 1):
            m = b == k
            share.append(round(float(m.mean()), 4))
            jitter.append(round(float(np.nanmedian(r[m]) / std_all), 2) if np.isfinite(r[m]).any() else 1.0)
            outliers.append(round(float(o[m].mean() / rate_all), 2) if m.any() and rate_all > 0 else 1.0)
        figures[name] = {"share": share, "jitter": jitter, "outliers": outliers}
    return figures


def fit(data: Path, simulate: DetectorNoise | None = None) -> dict:
    """The figures described in the module docstring, JSON-ready (of ``simulate``'s detections if given)."""
    view_offsets: list[np.ndarray] = []  # per view (J, 2): median error beyond h36m-sh's joint definitions, fraction of person size
    offsets, errors, lag_products, lag_norms, outliers, runs, swaps, swap_runs, missed, frames = [], [], 0.0, 0.0, 0, [], 0, [], 0, 0
    total_outliers, outlier_sizes, outlier_masks, bins = np.zeros(H36M_17.num_joints), [], [], []
    classes = np.asarray(POSTURE_CLASS_OF_JOINT)
    by_action: dict[str, np.ndarray] = {}  # action group -> (outliers, joint-frames) per posture class
    for action, det, gt, gt_3d, (width, height) in views(data, simulate):
        size = person_size(gt)
        bad = ~np.isfinite(det).all(-1) | (det[..., 0] < 0) | (det[..., 0] >= width) | (det[..., 1] < 0) | (det[..., 1] >= height)
        missed += int(bad.sum())
        frames += len(det)
        diff = det - gt
        offsets.append(np.nanmedian(bone_frame(diff, gt), axis=0))
        view_offsets.append(np.nanmedian(det - detector_joints(gt, H36M_SH_NOISE.joint_offset), axis=0) / size)
        error = diff / size
        residual = error - np.median(error, axis=0)  # the view's systematic offset removed
        bins.append(posture_bins(gt_3d, gt))
        out = np.linalg.norm(residual, axis=-1) > OUTLIER
        outlier_masks.append(out)
        total_outliers += out.sum(0)
        counts = by_action.setdefault(action_group(action), np.zeros((2, len(POSTURE_CLASSES))))
        np.add.at(counts[0], classes, out.sum(0))
        np.add.at(counts[1], classes, len(out))
        outliers += int(out.sum())
        outlier_sizes.append(np.linalg.norm(residual[out], axis=-1))
        runs.extend(run_lengths(out))
        residual[out] = np.nan
        errors.append(residual)
        a, b = residual[1:], residual[:-1]
        ok = np.isfinite(a) & np.isfinite(b)
        lag_products = lag_products + np.where(ok, a * b, 0).sum((0, 2))
        lag_norms = lag_norms + np.where(ok, a * a, 0).sum((0, 2))
        crossed = np.zeros((len(det), len(DISTAL_PAIRS)), bool)
        for k, (left, right) in enumerate(DISTAL_PAIRS):
            own = np.linalg.norm(det[:, [left, right]] - gt[:, [left, right]], axis=-1)
            other = np.linalg.norm(det[:, [left, right]] - gt[:, [right, left]], axis=-1)
            gap = np.linalg.norm(gt[:, left] - gt[:, right], axis=-1)
            crossed[:, k] = (other < own).all(-1) & (own > 0.1 * gap[:, None]).all(-1)
        swaps += int(crossed.any(-1).sum())
        swap_runs.extend(run_lengths(crossed))
    residual = np.concatenate(errors)
    std = 1.4826 * np.nanmedian(np.abs(residual), axis=0).mean(-1)  # (J,), both axes pooled
    offset = np.nanmedian(np.stack(offsets), axis=0)
    view_offsets = np.stack(view_offsets)
    view_spread = 1.4826 * np.median(np.abs(view_offsets - np.median(view_offsets, axis=0)), axis=0)  # (J, 2)
    names = H36M_17.joint_names
    return {
        "detections": "real" if simulate is None else "simulated",
        "frames": frames,
        "units": "fractions of person size (std, outliers, view_offset) or of the joint's 2D bone length (offset)",
        "jitter_median_std": round(float(np.median(std[1:])), 5),
        "per_joint": {
            names[j]: {
                "offset_along": round(float(offset[j, 0]), 4),
                "offset_across": round(float(offset[j, 1]), 4),
                "std": round(float(std[j]), 5),
                "rho": round(float(lag_products[j] / lag_norms[j]), 3),
                "outlier_rate": round(float(total_outliers[j] / frames), 5),
                "view_offset": [round(float(v), 4) for v in view_spread[j]],
            }
            for j in range(H36M_17.num_joints)
        },
        "views": len(view_offsets),
        "rho_median": round(float(np.median(lag_products[1:] / lag_norms[1:])), 3),
        "fps": FPS,
        "outlier_threshold": OUTLIER,
        "outlier_rate": round(outliers / (frames * H36M_17.num_joints), 5),
        "outlier_mean_frames": round(float(np.mean(runs)), 2) if runs else 0.0,
        "outlier_median_size": round(float(np.median(np.concatenate(outlier_sizes))), 4) if outliers else 0.0,
        "swap_rate": round(swaps / frames, 5),
        "swap_mean_frames": round(float(np.mean(swap_runs)), 2) if swap_runs else 0.0,
        "missed_rate": round(missed / (frames * H36M_17.num_joints), 6),
        "posture": posture_factors(residual, np.concatenate(outlier_masks), np.concatenate(bins)),
        "per_action": {
            group: {name: round(float(counts[0, c] / counts[1, c]), 4) for c, name in enumerate(POSTURE_CLASSES)}
            for group, counts in sorted(by_action.items())
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/h36m-train"), help="folder with S*.npz and cameras.json")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the figures (research data: keep it out of git)")
    parser.add_argument("--simulate", choices=sorted(DETECTORS), default=None, help="figures of this simulated detector instead of the real detections")
    args = parser.parse_args(argv)
    figures = fit(args.data, None if args.simulate is None else DETECTORS[args.simulate])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
